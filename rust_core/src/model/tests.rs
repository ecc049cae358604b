use super::format::{self, HEADER_LEN};
use super::*;
use crate::rng::SplitMix64;

fn ffm_model(seed: u64) -> Model {
    let header = Header {
        algorithm: Algorithm::Ffm,
        bits: 4,
        fields: 3,
        k: 2,
        normalize: true,
        fingerprint: [7; 32],
        downsample_rate: 0.25,
    };
    let mut rng = SplitMix64::new(seed);
    let len = header.payload_len().unwrap();
    Model::new(header, (0..len).map(|_| rng.next_f32() - 0.5).collect()).unwrap()
}

fn lr_model() -> Model {
    let header = Header {
        algorithm: Algorithm::Lr,
        bits: 3,
        fields: 2,
        k: 0,
        normalize: false,
        fingerprint: [0; 32],
        downsample_rate: 1.0,
    };
    Model::new(header, (0..9).map(|i| i as f32 * 0.1).collect()).unwrap()
}

fn image(m: &Model) -> Vec<u8> {
    let dir = tempdir("image");
    let path = dir.join("m.bin");
    m.save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rust_core-model-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn round_trip_through_a_mapped_file() {
    for m in [ffm_model(1), lr_model()] {
        let dir = tempdir("rt");
        let path = dir.join("model.bin");
        m.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert!(loaded.is_mapped());
        assert_eq!(loaded.header(), m.header());
        assert_eq!(loaded.checksum(), m.checksum());
        assert_eq!(loaded.weights(), m.weights());
        let row = ([0u32, 1, 2, 9], [3u32, 100, 5, 1], [1.0f32, 0.5, 2.0, 1.0]);
        assert_eq!(
            loaded.predict_row(&row.0, &row.1, &row.2).to_bits(),
            m.predict_row(&row.0, &row.1, &row.2).to_bits()
        );
        // Only the final file remains: the temporary was renamed.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("model.bin")]);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            HEADER_LEN + 4 * m.weights().len()
        );
    }
}

#[test]
fn header_layout_is_pinned() {
    let b = image(&ffm_model(1));
    assert_eq!(&b[0..8], b"BIDSCORE");
    assert_eq!(b[8..12], 1u32.to_le_bytes());
    assert_eq!(b[12..16], 2u32.to_le_bytes());
    assert_eq!(b[16..20], 4u32.to_le_bytes());
    assert_eq!(b[20..24], 3u32.to_le_bytes());
    assert_eq!(b[24..28], 2u32.to_le_bytes());
    assert_eq!(b[28..32], 1u32.to_le_bytes());
    assert_eq!(b[32..64], [7u8; 32]);
    assert_eq!(b[64..72], 0.25f64.to_le_bytes());
    let payload_len = (b.len() - HEADER_LEN) as u64;
    assert_eq!(b[72..80], payload_len.to_le_bytes());
    assert_eq!(b[80..88], format::checksum(&b[HEADER_LEN..]).to_le_bytes());
    assert!(b[96..128].iter().all(|&x| x == 0));
}

#[test]
fn every_truncation_is_refused() {
    let b = image(&ffm_model(2));
    let boundaries = [
        0, 1, 7, 8, 12, 16, 20, 24, 28, 32, 64, 72, 80, 88, 96, 127, 128, 129,
    ];
    let mid = HEADER_LEN + (b.len() - HEADER_LEN) / 2;
    for cut in boundaries.into_iter().chain([mid, b.len() - 1]) {
        let e = Model::from_bytes(&b[..cut]).unwrap_err();
        assert!(matches!(e, Error::Format(_)), "cut at {cut}: {e}");
    }
    let mut padded = b.clone();
    padded.extend_from_slice(&[0; 4]);
    assert!(Model::from_bytes(&padded)
        .unwrap_err()
        .to_string()
        .contains("padded"));
}

#[test]
fn every_flipped_byte_is_refused() {
    let b = image(&ffm_model(3));
    for at in 0..b.len() {
        for bit in [0x01u8, 0x80] {
            let mut c = b.clone();
            c[at] ^= bit;
            assert!(
                Model::from_bytes(&c).is_err(),
                "flip {bit:#x} at byte {at} was accepted"
            );
        }
    }
}

#[test]
fn foreign_and_future_files_are_refused_clearly() {
    let b = image(&lr_model());
    let mut magic = b.clone();
    magic[..8].copy_from_slice(b"PK\x03\x04abcd");
    assert!(Model::from_bytes(&magic)
        .unwrap_err()
        .to_string()
        .contains("bad magic"));
    let mut version = b.clone();
    version[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(Model::from_bytes(&version)
        .unwrap_err()
        .to_string()
        .contains("version 2"));
    // A consistent header (checksums recomputed) with impossible dimensions.
    let h = Header {
        bits: 31,
        ..lr_model().header().clone()
    };
    let bad = format::encode(&h, 36, 0);
    assert!(format::parse(&bad)
        .unwrap_err()
        .to_string()
        .contains("hash bits 31"));
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempdir("load");
    let path = dir.join("short.bin");
    std::fs::write(&path, b"BIDSCORE").unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.contains("short.bin") && e.contains("truncated"), "{e}");
    let e = Model::load(dir.join("missing.bin")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
}

#[test]
fn non_finite_weights_are_refused() {
    let mut w = lr_model().weights().to_vec();
    w[3] = f32::NAN;
    assert!(Model::new(lr_model().header().clone(), w).is_err());
}

#[test]
fn calibration_undoes_negative_downsampling() {
    // p from a model trained with negatives kept at rate w, odds scaled by 1/w.
    let q = 0.02f64;
    let w = 0.1;
    let p = (q / w) / ((q / w) + (1.0 - q));
    assert!((f64::from(calibrate(p as f32, w)) - q).abs() < 1e-6);
    assert_eq!(calibrate(0.3, 1.0).to_bits(), 0.3f32.to_bits());
    let m = ffm_model(4);
    let row = Row {
        fields: &[0, 1],
        indices: &[1, 2],
        values: &[1.0, 1.0],
    };
    let p = m.predict_raw(row);
    assert_eq!(
        m.predict_row(row.fields, row.indices, row.values).to_bits(),
        calibrate(p, 0.25).to_bits()
    );
}

#[test]
fn batch_and_single_row_agree() {
    let m = ffm_model(5);
    let d = Dataset::from_owned(
        vec![0, 3, 5, 5],
        vec![0, 2, 7, 1, 1],
        vec![4, 99, 3, 8, 8],
        vec![1.0, 0.5, 1.0, 2.0, 1.0],
        vec![0.0, 1.0, 0.0],
        None,
    )
    .unwrap();
    let batch = m.predict(&d);
    for (i, p) in batch.iter().enumerate() {
        let r = d.row(i);
        assert_eq!(
            p.to_bits(),
            m.predict_row(r.fields, r.indices, r.values).to_bits()
        );
    }
}

/// Files written by format version 1 (`tests/fixtures/v1_*.bin`, trained and saved by the
/// code of that version) with that code's predictions on `v1_rows.libffm`.
fn v1_fixture(name: &str) -> (Model, Vec<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let model = Model::load(dir.join(format!("v1_{name}.bin"))).unwrap();
    let scores = std::fs::read_to_string(dir.join(format!("v1_{name}.scores"))).unwrap();
    let scores = scores
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| f32::from_bits(u32::from_str_radix(l.trim(), 16).unwrap()))
        .collect();
    (model, scores)
}

fn v1_rows() -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    crate::libffm::read_path(&dir.join("v1_rows.libffm")).unwrap()
}

#[test]
fn version_1_files_load_and_score_as_they_did() {
    let rows = v1_rows();
    for name in ["ffm_k3", "ffm_k4", "lr"] {
        let (model, want) = v1_fixture(name);
        let got = model.predict(&rows);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{name} row {i}: {g} vs {w}");
        }
    }
}
