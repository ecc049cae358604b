//! Out-of-core training data: a list of CSR shards on disk (docs/scale.md, "Shard format"),
//! read one at a time by a background thread while the previous one trains.
//!
//! A [`ShardSet`] holds only what training needs before the first row: each shard's size
//! and the totals (rows, label and weight sums, field and feature counts). Opening it reads
//! every `meta.json` and every shard's labels (and weights), so that the base rate and the
//! weight total are summed row by row in file order, exactly as [`Dataset`] training sums
//! them: a model trained from shards can be bit-identical to one trained in memory.
//!
//! `.npy` files are parsed here rather than through `npyz` or `ndarray-npy`: we only ever
//! read 1-d little-endian arrays of three element types that our own writer produced with
//! `numpy.save`, the header is a dozen bytes plus a Python dict literal, and a hand parser
//! keeps the crate free of another dependency tree (and is tested below, including
//! truncated and mistyped files).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use serde::Deserialize;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// `format` and `version` of `shards.json` this reader understands.
pub const INDEX_FORMAT: &str = "bidscore-shards";
pub const VERSION: u64 = 1;
const INDEX_NAME: &str = "shards.json";
const META_NAME: &str = "meta.json";

/// An element type a shard array may have, with its `.npy` type string.
pub(crate) trait NpyElem: bytemuck::Pod {
    const DESCR: &'static str;
}
impl NpyElem for u64 {
    const DESCR: &'static str = "<u8";
}
impl NpyElem for u32 {
    const DESCR: &'static str = "<u4";
}
impl NpyElem for f32 {
    const DESCR: &'static str = "<f4";
}

fn data_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Data(format!("{}: {what}", path.display()))
}

/// The value after `'key':` in a `.npy` header dict, up to the next top-level comma.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}':"))? + key.len() + 3;
    let rest = header[at..].trim_start();
    if rest.starts_with('(') {
        let end = rest.find(')')?;
        return Some(&rest[..=end]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// Reads a 1-d `.npy` array (format 1.x, 2.x or 3.x, little-endian, C order) of `T`.
fn read_npy<T: NpyElem>(path: &Path) -> Result<Vec<T>> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut pre = [0u8; 8];
    f.read_exact(&mut pre)
        .map_err(|_| data_err(path, "truncated (no .npy header)"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(data_err(path, "not a .npy file"));
    }
    let header_len = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            f.read_exact(&mut b)
                .map_err(|_| data_err(path, "truncated .npy header"))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            f.read_exact(&mut b)
                .map_err(|_| data_err(path, "truncated .npy header"))?;
            u32::from_le_bytes(b) as usize
        }
        v => {
            return Err(data_err(
                path,
                format!(".npy format version {v} is unknown"),
            ))
        }
    };
    if header_len > 1 << 20 {
        return Err(data_err(path, "implausibly long .npy header"));
    }
    let mut header = vec![0u8; header_len];
    f.read_exact(&mut header)
        .map_err(|_| data_err(path, "truncated .npy header"))?;
    let header = String::from_utf8_lossy(&header);
    let descr = header_value(&header, "descr").map(|d| d.trim_matches(['\'', '"']));
    if descr != Some(T::DESCR) {
        return Err(data_err(
            path,
            format!(
                "element type {} where {} was expected",
                descr.unwrap_or("?"),
                T::DESCR
            ),
        ));
    }
    if header_value(&header, "fortran_order") != Some("False") {
        return Err(data_err(path, "not a C-order array"));
    }
    let shape = header_value(&header, "shape").unwrap_or("");
    let dims: Vec<&str> = shape
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let len = match dims.as_slice() {
        [n] => n
            .parse::<usize>()
            .map_err(|_| data_err(path, format!("bad shape {shape}")))?,
        _ => return Err(data_err(path, format!("shape {shape} is not 1-d"))),
    };
    let start = f.stream_position().map_err(|e| Error::io(path, e))?;
    let size = f.seek(SeekFrom::End(0)).map_err(|e| Error::io(path, e))?;
    let expected = (len as u64).checked_mul(size_of::<T>() as u64);
    if expected.and_then(|e| e.checked_add(start)) != Some(size) {
        return Err(data_err(
            path,
            format!("{size} bytes, expected a header of {start} and {len} elements"),
        ));
    }
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let mut out = vec![T::zeroed(); len];
    f.read_exact(bytemuck::cast_slice_mut(&mut out))
        .map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// A shard's `meta.json` (fields we need; others are ignored).
#[derive(Clone, Debug, Deserialize)]
struct Meta {
    format: String,
    version: u64,
    rows: u64,
    nnz: u64,
    #[serde(default)]
    weighted: bool,
    /// One more than the largest field id (written since the first version of the
    /// Python writer; absent: unknown, read from the data).
    #[serde(default)]
    num_fields: Option<u32>,
    #[serde(default)]
    num_features: Option<u64>,
}

/// One shard: where it is and what its `meta.json` says.
#[derive(Clone, Debug)]
pub struct Shard {
    pub path: PathBuf,
    pub rows: u64,
    pub nnz: u64,
    pub weighted: bool,
}

impl Shard {
    /// Reads and validates the shard's arrays (and checks them against its `meta.json`).
    pub fn load(&self) -> Result<Dataset> {
        let p = |name: &str| self.path.join(name);
        let weights = if self.weighted {
            Some(read_npy::<f32>(&p("weights.npy"))?)
        } else {
            None
        };
        let d = Dataset::from_owned(
            read_npy::<u64>(&p("indptr.npy"))?,
            read_npy::<u32>(&p("fields.npy"))?,
            read_npy::<u32>(&p("indices.npy"))?,
            read_npy::<f32>(&p("values.npy"))?,
            read_npy::<f32>(&p("labels.npy"))?,
            weights,
        )
        .map_err(|e| data_err(&self.path, e))?;
        if d.num_rows() as u64 != self.rows || d.nnz() as u64 != self.nnz {
            return Err(data_err(
                &self.path,
                format!(
                    "holds {} rows and {} non-zeros, its {META_NAME} says {} and {}",
                    d.num_rows(),
                    d.nnz(),
                    self.rows,
                    self.nnz
                ),
            ));
        }
        Ok(d)
    }
}

/// The shards of one training set and their totals.
#[derive(Clone, Debug)]
pub struct ShardSet {
    shards: Vec<Shard>,
    rows: u64,
    nnz: u64,
    num_fields: u32,
    num_features: u64,
    /// Row-by-row f64 sums in file order (see the module docs).
    positive_weight: f64,
    weight_sum: f64,
    label_sum: f64,
    /// Loaded shards the reader may queue ahead of training.
    prefetch: usize,
}

/// Default of [`ShardSet::prefetch`].
pub const DEFAULT_PREFETCH: usize = 2;

#[derive(Deserialize)]
struct IndexEntry {
    name: String,
}

#[derive(Deserialize)]
struct Index {
    format: String,
    version: u64,
    shards: Vec<IndexEntry>,
}

impl ShardSet {
    /// The shards listed in `root/shards.json`, in its order.
    pub fn open_root(root: &Path) -> Result<ShardSet> {
        let path = root.join(INDEX_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                data_err(
                    &path,
                    "missing: not a shard root, or its writing never finished",
                )
            } else {
                Error::io(&path, e)
            }
        })?;
        let index: Index = serde_json::from_str(&text)
            .map_err(|e| data_err(&path, format!("corrupt shard index ({e})")))?;
        if index.format != INDEX_FORMAT {
            return Err(data_err(&path, "not a bidscore shard index"));
        }
        if index.version != VERSION {
            return Err(data_err(
                &path,
                format!(
                    "shard format version {}; this build reads version {VERSION}",
                    index.version
                ),
            ));
        }
        for e in &index.shards {
            if e.name.is_empty() || e.name.contains(['/', '\\']) || e.name.starts_with('.') {
                return Err(data_err(&path, format!("bad shard name {:?}", e.name)));
            }
        }
        let dirs: Vec<PathBuf> = index.shards.iter().map(|e| root.join(&e.name)).collect();
        Self::open(&dirs)
    }

    /// The shard directories `dirs`, in this order.
    pub fn open(dirs: &[PathBuf]) -> Result<ShardSet> {
        if dirs.is_empty() {
            return Err(Error::Data("no shards to train on".into()));
        }
        let mut set = ShardSet {
            shards: Vec::with_capacity(dirs.len()),
            rows: 0,
            nnz: 0,
            num_fields: 0,
            num_features: 0,
            positive_weight: 0.0,
            weight_sum: 0.0,
            label_sum: 0.0,
            prefetch: DEFAULT_PREFETCH,
        };
        for dir in dirs {
            let meta_path = dir.join(META_NAME);
            let text = std::fs::read_to_string(&meta_path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    data_err(dir, format!("shard is missing (no {META_NAME})"))
                } else {
                    Error::io(&meta_path, e)
                }
            })?;
            let meta: Meta = serde_json::from_str(&text)
                .map_err(|e| data_err(&meta_path, format!("corrupt ({e})")))?;
            if meta.format != "bidscore-shard" || meta.version != VERSION {
                return Err(data_err(
                    &meta_path,
                    format!(
                        "format {:?} version {}; expected \"bidscore-shard\" version {VERSION}",
                        meta.format, meta.version
                    ),
                ));
            }
            let shard = Shard {
                path: dir.clone(),
                rows: meta.rows,
                nnz: meta.nnz,
                weighted: meta.weighted,
            };
            // Labels and weights only: a few bytes per row, summed as training sums them.
            let labels = read_npy::<f32>(&dir.join("labels.npy"))?;
            let weights = if meta.weighted {
                Some(read_npy::<f32>(&dir.join("weights.npy"))?)
            } else {
                None
            };
            if labels.len() as u64 != meta.rows
                || weights.as_ref().is_some_and(|w| w.len() != labels.len())
            {
                return Err(data_err(
                    dir,
                    format!("labels or weights do not have {} rows", meta.rows),
                ));
            }
            for (i, &y) in labels.iter().enumerate() {
                let w = weights.as_ref().map_or(1.0, |w| f64::from(w[i]));
                set.positive_weight += w * f64::from(y);
                set.weight_sum += w;
                set.label_sum += f64::from(y);
            }
            let (fields, features) =
                if let (Some(f), Some(n)) = (meta.num_fields, meta.num_features) {
                    (f, n)
                } else {
                    // Not recorded: read the shard once to find out.
                    let d = shard.load()?;
                    (d.num_fields(), d.num_features())
                };
            set.num_fields = set.num_fields.max(fields);
            set.num_features = set.num_features.max(features);
            set.rows += meta.rows;
            set.nnz += meta.nnz;
            set.shards.push(shard);
        }
        Ok(set)
    }

    /// The same shards, the reader queueing up to `n` (at least 1) loaded shards ahead.
    #[must_use]
    pub fn with_prefetch(mut self, n: usize) -> ShardSet {
        self.prefetch = n.max(1);
        self
    }

    /// Loaded shards the reader may queue ahead of training.
    #[must_use]
    pub fn prefetch(&self) -> usize {
        self.prefetch
    }

    #[must_use]
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    #[must_use]
    pub fn num_rows(&self) -> u64 {
        self.rows
    }

    #[must_use]
    pub fn nnz(&self) -> u64 {
        self.nnz
    }

    /// One more than the largest field id over all shards.
    #[must_use]
    pub fn num_fields(&self) -> u32 {
        self.num_fields
    }

    /// One more than the largest feature index over all shards.
    #[must_use]
    pub fn num_features(&self) -> u64 {
        self.num_features
    }

    /// Total importance weight (rows when unweighted).
    #[must_use]
    pub fn weight_sum(&self) -> f64 {
        self.weight_sum
    }

    #[must_use]
    pub fn label_sum(&self) -> f64 {
        self.label_sum
    }

    /// Weighted share of positives, summed as [`Dataset`] training sums it.
    #[must_use]
    pub fn base_rate(&self) -> f64 {
        if self.weight_sum > 0.0 {
            self.positive_weight / self.weight_sum
        } else {
            0.5
        }
    }

    /// Shard order of each of `epochs` epochs: shuffled per epoch by a generator of its own
    /// (seeded from `seed`, so that the reader thread can compute it without touching the
    /// training run's generator), or the listed order.
    #[must_use]
    pub fn epoch_orders(&self, epochs: u32, seed: u64, shuffle: bool) -> Vec<Vec<usize>> {
        // A fixed odd constant decorrelates this stream from the training generator's.
        let mut rng = SplitMix64::new(seed ^ 0x5348_4152_4453_4554);
        (0..epochs)
            .map(|_| {
                let mut order: Vec<usize> = (0..self.shards.len()).collect();
                if shuffle {
                    rng.shuffle(&mut order);
                }
                order
            })
            .collect()
    }

    /// Streams the shards of every epoch in `orders` through a channel holding at most
    /// [`ShardSet::prefetch`] loaded shards, read by a thread spawned in `scope`. The
    /// consumer dropping the receiver stops the reader at its next send. At most
    /// `prefetch + 2` shards are in memory at a time: the queue, the one being read and the
    /// one being trained.
    #[must_use]
    pub fn stream<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        orders: Vec<Vec<usize>>,
    ) -> Receiver<Result<Dataset>> {
        let (tx, rx) = sync_channel(self.prefetch);
        scope.spawn(move || {
            for i in orders.into_iter().flatten() {
                let loaded = self.shards[i].load();
                let failed = loaded.is_err();
                if tx.send(loaded).is_err() || failed {
                    return;
                }
            }
        });
        rx
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `data` as `.npy` version 1.0, as `numpy.save` does.
    pub fn write_npy<T: NpyElem>(path: &Path, data: &[T]) {
        let dict = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': ({},), }}",
            T::DESCR,
            data.len()
        );
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(bytemuck::cast_slice(data));
        std::fs::write(path, out).unwrap();
    }

    /// Writes rows `rows` of `d` as shard `name` under `root` (meta.json included).
    pub fn write_shard(root: &Path, name: &str, d: &Dataset, rows: std::ops::Range<usize>) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (mut indptr, mut fields, mut indices, mut values, mut labels, mut weights) =
            (vec![0u64], vec![], vec![], vec![], vec![], vec![]);
        let (mut max_field, mut max_index) = (0u32, 0u64);
        for i in rows {
            let r = d.row(i);
            fields.extend_from_slice(r.fields);
            indices.extend_from_slice(r.indices);
            values.extend_from_slice(r.values);
            indptr.push(fields.len() as u64);
            labels.push(d.labels()[i]);
            weights.push(d.weight(i));
            max_field = r.fields.iter().fold(max_field, |m, &f| m.max(f + 1));
            max_index = r
                .indices
                .iter()
                .fold(max_index, |m, &j| m.max(u64::from(j) + 1));
        }
        write_npy(&dir.join("indptr.npy"), &indptr);
        write_npy(&dir.join("fields.npy"), &fields);
        write_npy(&dir.join("indices.npy"), &indices);
        write_npy(&dir.join("values.npy"), &values);
        write_npy(&dir.join("labels.npy"), &labels);
        let weighted = d.weights().is_some();
        if weighted {
            write_npy(&dir.join("weights.npy"), &weights);
        }
        let meta = format!(
            r#"{{"format": "bidscore-shard", "version": 1, "name": "{name}", "rows": {}, "nnz": {}, "weighted": {weighted}, "num_fields": {max_field}, "num_features": {max_index}}}"#,
            labels.len(),
            fields.len()
        );
        std::fs::write(dir.join(META_NAME), meta).unwrap();
    }

    /// Splits `d` into shards of `size` rows under `root`, with an index.
    pub fn shard_dataset(root: &Path, d: &Dataset, size: usize) -> Vec<PathBuf> {
        let mut names = vec![];
        let mut start = 0;
        while start < d.num_rows() {
            let name = format!("part-{:05}", names.len());
            write_shard(root, &name, d, start..(start + size).min(d.num_rows()));
            names.push(name);
            start += size;
        }
        let list: Vec<String> = names
            .iter()
            .map(|n| format!(r#"{{"name": "{n}"}}"#))
            .collect();
        let index = format!(
            r#"{{"format": "bidscore-shards", "version": 1, "shards": [{}]}}"#,
            list.join(", ")
        );
        std::fs::write(root.join(INDEX_NAME), index).unwrap();
        names.iter().map(|n| root.join(n)).collect()
    }

    pub fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rust_core-shards-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn small() -> Dataset {
        Dataset::from_owned(
            vec![0, 2, 3, 5],
            vec![0, 1, 2, 0, 1],
            vec![5, 9, 1, 7, 3],
            vec![1.0, 0.5, 2.0, 1.0, 1.0],
            vec![1.0, 0.0, 1.0],
            Some(vec![1.0, 2.0, 0.5]),
        )
        .unwrap()
    }

    #[test]
    fn npy_round_trip_and_refusals() {
        let dir = tempdir("npy");
        let p = dir.join("a.npy");
        write_npy(&p, &[1u32, 2, 3]);
        assert_eq!(read_npy::<u32>(&p).unwrap(), vec![1, 2, 3]);
        let e = read_npy::<f32>(&p).unwrap_err().to_string();
        assert!(e.contains("element type <u4 where <f4"), "{e}");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let e = read_npy::<u32>(&p).unwrap_err().to_string();
        assert!(e.contains("bytes, expected"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read_npy::<u32>(&p)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        std::fs::write(&p, b"garbage!garbage!").unwrap();
        assert!(read_npy::<u32>(&p)
            .unwrap_err()
            .to_string()
            .contains("not a .npy file"));
        write_npy::<u64>(&p, &[]);
        assert!(read_npy::<u64>(&p).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn header_values() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }";
        assert_eq!(header_value(h, "descr"), Some("'<f4'"));
        assert_eq!(header_value(h, "fortran_order"), Some("False"));
        assert_eq!(header_value(h, "shape"), Some("(12,)"));
        assert_eq!(header_value(h, "nope"), None);
    }

    #[test]
    fn set_totals_match_the_dataset() {
        let dir = tempdir("totals");
        let d = small();
        shard_dataset(&dir, &d, 2);
        let set = ShardSet::open_root(&dir).unwrap();
        assert_eq!(set.shards().len(), 2);
        assert_eq!((set.num_rows(), set.nnz()), (3, 5));
        assert_eq!((set.num_fields(), set.num_features()), (3, 10));
        assert!((set.weight_sum() - 3.5).abs() < 1e-12);
        assert!((set.base_rate() - 1.5 / 3.5).abs() < 1e-12);
        let first = set.shards()[0].load().unwrap();
        assert_eq!(first.num_rows(), 2);
        assert_eq!(first.row(1).indices, &[1]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_and_corrupt_shards_are_data_errors() {
        let dir = tempdir("corrupt");
        let e = ShardSet::open_root(&dir).unwrap_err();
        assert!(matches!(e, Error::Data(_)));
        assert!(e.to_string().contains("shards.json: missing"), "{e}");
        let d = small();
        let dirs = shard_dataset(&dir, &d, 2);
        std::fs::write(dirs[1].join("values.npy"), b"\x93NUMPY\x01\x00").unwrap();
        let set = ShardSet::open_root(&dir).unwrap();
        let e = set.shards()[1].load().unwrap_err().to_string();
        assert!(e.contains("part-00001") && e.contains("values.npy"), "{e}");
        std::fs::remove_dir_all(&dirs[1]).unwrap();
        let e = ShardSet::open_root(&dir).unwrap_err().to_string();
        assert!(e.contains("part-00001: shard is missing"), "{e}");
        std::fs::write(
            dir.join(INDEX_NAME),
            "{\"format\": \"bidscore-shards\", \"version\": 2, \"shards\": []}",
        )
        .unwrap();
        let e = ShardSet::open_root(&dir).unwrap_err().to_string();
        assert!(e.contains("version 2"), "{e}");
        std::fs::write(dir.join(INDEX_NAME), "{").unwrap();
        let e = ShardSet::open_root(&dir).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stream_delivers_in_order_and_stops_early() {
        let dir = tempdir("stream");
        let d = small();
        shard_dataset(&dir, &d, 1);
        let set = ShardSet::open_root(&dir).unwrap().with_prefetch(1);
        let orders = set.epoch_orders(2, 7, false);
        assert_eq!(orders, vec![vec![0, 1, 2], vec![0, 1, 2]]);
        let rows: Vec<f32> = std::thread::scope(|s| {
            let rx = set.stream(s, orders);
            rx.iter().map(|r| r.unwrap().labels()[0]).collect()
        });
        assert_eq!(rows, vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        // Dropping the receiver after one shard ends the reader (the scope would hang if not).
        std::thread::scope(|s| {
            let rx = set.stream(s, set.epoch_orders(50, 1, true));
            assert!(rx.recv().unwrap().is_ok());
        });
        let shuffled = set.epoch_orders(20, 3, true);
        assert!(shuffled.iter().any(|o| o != &vec![0, 1, 2]));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
