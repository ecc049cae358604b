//! Reader for LIBFFM text files: one row per line, `label field:index:value ...`.
//!
//! A label greater than 0 is a positive (LIBFFM accepts `1`/`0` and `1`/`-1`). Blank lines
//! are skipped. Anything else that does not parse is an error naming the file and the
//! 1-based line number; the reader never panics on its input.

use std::path::Path;

use crate::dataset::{Dataset, MAX_FIELDS};
use crate::error::{Error, Result};

/// Reads a LIBFFM file into a dataset.
pub fn read_path(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// Parses LIBFFM text; `name` is used in error messages.
pub fn parse(bytes: &[u8], name: &str) -> Result<Dataset> {
    let mut indptr = vec![0u64];
    let (mut fields, mut indices, mut values, mut labels) = (vec![], vec![], vec![], vec![]);
    for (lineno, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let bad = |what: String| Error::Data(format!("{name}:{}: {what}", lineno + 1));
        let text = std::str::from_utf8(line).map_err(|_| bad("not valid UTF-8".into()))?;
        let mut tokens = text.split_ascii_whitespace();
        let Some(label) = tokens.next() else { continue };
        let y: f32 = label
            .parse()
            .ok()
            .filter(|y: &f32| y.is_finite())
            .ok_or_else(|| bad(format!("bad label {label:?}")))?;
        labels.push(if y > 0.0 { 1.0 } else { 0.0 });
        for tok in tokens {
            let (f, i, v) = parse_triple(tok)
                .ok_or_else(|| bad(format!("bad feature {tok:?}, expected field:index:value")))?;
            if f >= MAX_FIELDS {
                return Err(bad(format!(
                    "field {f} is out of range (at most {MAX_FIELDS} fields)"
                )));
            }
            fields.push(f);
            indices.push(i);
            values.push(v);
        }
        indptr.push(fields.len() as u64);
    }
    Dataset::from_owned(indptr, fields, indices, values, labels, None)
        .map_err(|e| Error::Data(format!("{name}: {e}")))
}

fn parse_triple(tok: &str) -> Option<(u32, u32, f32)> {
    let mut parts = tok.split(':');
    let f = parts.next()?.parse().ok()?;
    let i = parts.next()?.parse().ok()?;
    let v: f32 = parts.next()?.parse().ok()?;
    (parts.next().is_none() && v.is_finite()).then_some((f, i, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        let d = parse(b"1 0:3:1 1:7:0.5\n\n-1 2:4:2\n0\n", "t").unwrap();
        assert_eq!(d.num_rows(), 3);
        assert_eq!(d.labels(), &[1.0, 0.0, 0.0]);
        assert_eq!(d.row(0).indices, &[3, 7]);
        assert_eq!(d.row(1).fields, &[2]);
        assert!(d.row(2).fields.is_empty());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, line, what) in [
            ("1 0:1:1\nx 0:1:1\n", 2, "bad label"),
            ("1 0:1\n", 1, "bad feature"),
            ("1 0:1:1\n1 0:1:1\n0 a:1:1\n", 3, "bad feature"),
            ("1 0:1:1:1\n", 1, "bad feature"),
            ("1 0:1:nan\n", 1, "bad feature"),
            ("1 0:-1:1\n", 1, "bad feature"),
            ("1 5000:1:1\n", 1, "field 5000 is out of range"),
            ("inf 0:1:1\n", 1, "bad label"),
        ] {
            let e = parse(text.as_bytes(), "f.txt").unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("f.txt:{line}: {what}")),
                "{text:?} -> {e}"
            );
        }
        let e = parse(b"1 0:1:1\n\xff\n", "f.txt").unwrap_err().to_string();
        assert!(e.contains("f.txt:2: not valid UTF-8"), "{e}");
    }

    #[test]
    fn reads_the_criteo_sample() {
        // The shared samples sit beside the repository (`../shared/data`).
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/criteo-libffm-sample/small_test.txt"
        ));
        if !path.exists() {
            return;
        }
        let d = read_path(path).unwrap();
        assert!(d.num_rows() > 100);
        assert!(d.num_fields() >= 17);
        let e = read_path(Path::new("/nonexistent/x.ffm"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/x.ffm:"), "{e}");
    }
}
