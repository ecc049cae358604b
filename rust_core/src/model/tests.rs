use super::format::{self, HEADER_LEN};
use super::*;
use crate::rng::SplitMix64;
use crate::simd::Kernel;

fn ffm_model(seed: u64) -> Model {
    let header = Header {
        algorithm: Algorithm::Ffm,
        bits: 4,
        fields: 3,
        k: 2,
        stride: 2,
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
        stride: 0,
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

/// A file image of `payload` under header `h` (the checksums consistent), laid out as this
/// version writes it.
fn file_of(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut c = format::encode(h, payload.len() as u64, format::checksum(payload)).to_vec();
    c.resize(format::payload_offset(h), 0);
    c.extend_from_slice(payload);
    c
}

/// The same model as written by format version 2: the payload right after the header.
fn as_version_2(b: &[u8]) -> Vec<u8> {
    let (_, payload) = format::parse(b).unwrap();
    let mut c = b[..HEADER_LEN].to_vec();
    c[8..12].copy_from_slice(&2u32.to_le_bytes());
    c[100..104].fill(0);
    let covered: Vec<u8> = c[..88].iter().chain(&c[96..]).copied().collect();
    let sum = xxhash_rust::xxh3::xxh3_64(&covered);
    c[88..96].copy_from_slice(&sum.to_le_bytes());
    c.extend_from_slice(&b[payload.offset..]);
    c
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
            format::payload_offset(m.header()) + 4 * m.weights().len()
        );
    }
}

#[test]
fn header_layout_is_pinned() {
    let b = image(&ffm_model(1));
    assert_eq!(&b[0..8], b"BIDSCORE");
    assert_eq!(b[8..12], 3u32.to_le_bytes());
    assert_eq!(b[12..16], 2u32.to_le_bytes());
    assert_eq!(b[16..20], 4u32.to_le_bytes());
    assert_eq!(b[20..24], 3u32.to_le_bytes());
    assert_eq!(b[24..28], 2u32.to_le_bytes());
    assert_eq!(b[28..32], 1u32.to_le_bytes());
    assert_eq!(b[32..64], [7u8; 32]);
    assert_eq!(b[64..72], 0.25f64.to_le_bytes());
    // 16 buckets: bias and linear weights are 17 floats (68 bytes), so 60 zero bytes follow
    // the header and the latent blocks start at byte 256.
    let offset = 188;
    let payload_len = (b.len() - offset) as u64;
    assert_eq!(b[72..80], payload_len.to_le_bytes());
    assert_eq!(b[80..88], format::checksum(&b[offset..]).to_le_bytes());
    assert_eq!(b[96..100], 2u32.to_le_bytes());
    assert_eq!(b[100..104], (offset as u32).to_le_bytes());
    assert!(b[104..offset].iter().all(|&x| x == 0));
    assert_eq!(
        format::payload_offset(&lr_model().header().clone()),
        HEADER_LEN
    );
}

#[test]
fn latent_blocks_start_on_cache_lines() {
    let dir = tempdir("lines");
    for bits in [1, 4, 5, 10] {
        let mut m = ffm_model(4);
        m.header.bits = bits;
        let m = Model::new(
            m.header.clone(),
            vec![0.25; m.header.payload_len().unwrap()],
        )
        .unwrap();
        let path = dir.join(format!("m{bits}.bin"));
        m.save(&path).unwrap();
        let v0 = m.header.ffm_shape().latent_start();
        let offset = format::payload_offset(m.header());
        assert_eq!((offset + 4 * v0) % 64, 0, "bits {bits}");
        for loaded in [
            Model::load(&path).unwrap(),
            Model::load_huge(&path).unwrap(),
        ] {
            let at = loaded.weights().as_ptr() as usize + 4 * v0;
            assert_eq!(at % 64, 0, "bits {bits} huge {}", loaded.is_huge());
            assert_eq!(loaded.weights(), m.weights());
        }
    }
}

#[test]
fn version_2_files_load_and_score_as_before() {
    let dir = tempdir("v2");
    for m in [ffm_model(5), lr_model()] {
        let v2 = as_version_2(&image(&m));
        assert_eq!(v2.len(), HEADER_LEN + 4 * m.weights().len());
        let path = dir.join("v2.bin");
        std::fs::write(&path, &v2).unwrap();
        for back in [Model::from_bytes(&v2).unwrap(), Model::load(&path).unwrap()] {
            assert_eq!(back.header(), m.header());
            assert_eq!(back.weights(), m.weights());
            let row = ([0u32, 1, 2], [3u32, 10, 5], [1.0f32, 0.5, 2.0]);
            assert_eq!(
                back.predict_row(&row.0, &row.1, &row.2).to_bits(),
                m.predict_row(&row.0, &row.1, &row.2).to_bits()
            );
        }
    }
}

#[test]
fn a_wrong_payload_offset_is_refused() {
    let m = ffm_model(6);
    let b = image(&m);
    let (_, payload) = format::parse(&b).unwrap();
    // Offsets other than the one the dimensions give, with the header checksum recomputed:
    // the header encodes it, so re-encode and patch it in.
    for offset in [0u32, 128, 187, 189, 192, 4096] {
        let mut c = b.clone();
        c[100..104].copy_from_slice(&offset.to_le_bytes());
        let covered: Vec<u8> = c[..88].iter().chain(&c[96..HEADER_LEN]).copied().collect();
        let sum = xxhash_rust::xxh3::xxh3_64(&covered);
        c[88..96].copy_from_slice(&sum.to_le_bytes());
        let e = Model::from_bytes(&c).unwrap_err().to_string();
        assert!(e.contains("payload offset"), "{offset}: {e}");
    }
    // A non-zero byte in the gap, and a file cut inside it.
    let mut c = b.clone();
    c[payload.offset - 1] = 1;
    let e = Model::from_bytes(&c).unwrap_err().to_string();
    assert!(e.contains("before the payload are not zero"), "{e}");
    let e = Model::from_bytes(&b[..payload.offset - 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
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
    version[8..12].copy_from_slice(&4u32.to_le_bytes());
    assert!(Model::from_bytes(&version)
        .unwrap_err()
        .to_string()
        .contains("version 4"));
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
        assert_eq!(model.header().stride, model.k());
        for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
            let got = model.predict_with(kernel, &rows);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                // The kernels of version 1 (legacy, sse; and every path for an unpadded k
                // off the 4-lane grain) give the same bits; the others round differently.
                let same_kernel = matches!(kernel, Kernel::Legacy | Kernel::Sse)
                    || (model.k() % 4 != 0 && kernel != Kernel::Scalar);
                if same_kernel {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{name} {kernel:?} row {i}: {g} vs {w}"
                    );
                } else {
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs(),
                        "{name} {kernel:?} row {i}: {g} vs {w}"
                    );
                }
            }
        }
        // Saved again, a version-1 model becomes a version-2 file that scores the same.
        let dir = tempdir("v1-resave");
        model.save(dir.join("m.bin")).unwrap();
        let again = Model::load(dir.join("m.bin")).unwrap();
        assert_eq!(again.checksum(), model.checksum());
        let bits = |m: &Model| {
            m.predict(&rows)
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&again), bits(&model));
    }
}

/// An FFM with random weights in LIBFFM's initial range (latent weights within
/// `1/sqrt(k)` of 0, linear weights within 0.5), padding lanes zero.
fn padded_model(k: u32, stride: u32, seed: u64) -> Model {
    let header = Header {
        algorithm: Algorithm::Ffm,
        bits: 6,
        fields: 5,
        k,
        stride,
        normalize: seed.is_multiple_of(2),
        fingerprint: [1; 32],
        downsample_rate: 1.0,
    };
    let mut rng = SplitMix64::new(seed);
    let v0 = (1usize << header.bits) + 1;
    let w = (0..header.payload_len().unwrap())
        .map(|i| {
            if i < v0 {
                rng.next_f32() - 0.5
            } else if (i - v0) % stride as usize >= k as usize {
                0.0
            } else {
                (2.0 * rng.next_f32() - 1.0) / (k as f32).sqrt()
            }
        })
        .collect();
    Model::new(header, w).unwrap()
}

fn random_rows(n: usize, fields: u32, nnz: usize, seed: u64) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let mut indptr = vec![0u64];
    let (mut f, mut j, mut x) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        for q in 0..nnz {
            // Mostly one feature per field, sometimes a repeated field or feature; values in
            // [0, 1) like LIBFFM's normalised features.
            f.push(if rng.next_f32() < 0.1 {
                0
            } else {
                q as u32 % fields
            });
            j.push(if rng.next_f32() < 0.05 {
                7
            } else {
                (rng.next_f64() * 1000.0) as u32
            });
            x.push(rng.next_f32());
        }
        indptr.push(f.len() as u64);
    }
    let y = vec![0.0f32; n];
    Dataset::from_owned(indptr, f, j, x, y, None).unwrap()
}

#[test]
fn every_kernel_agrees_with_the_scalar_reference_for_every_k() {
    let rows = random_rows(200, 5, 9, 3);
    for k in 1..=17u32 {
        for stride in [k, k.div_ceil(4) * 4] {
            let m = padded_model(k, stride, u64::from(k));
            let want = m.predict_with(Kernel::Scalar, &rows);
            for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
                let got = m.predict_with(kernel, &rows);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs(),
                        "k {k} stride {stride} {kernel:?} row {i}: {g} vs {w}"
                    );
                }
                // Single rows score like the batch.
                let one = m.raw_score_with(kernel, rows.row(5));
                let p = calibrate(math::sigmoid(one), 1.0);
                assert_eq!(p.to_bits(), got[5].to_bits(), "k {k} {kernel:?}");
            }
        }
    }
}

#[test]
fn padding_is_recorded_and_checked() {
    let m = padded_model(3, 4, 1);
    let b = image(&m);
    assert_eq!(b[96..100], 4u32.to_le_bytes());
    let back = Model::from_bytes(&b).unwrap();
    assert_eq!((back.k(), back.header().stride), (3, 4));
    // A stride that is neither k nor k rounded up to 4 lanes, with consistent checksums.
    for stride in [0, 2, 5, 8, 400] {
        let h = Header {
            stride,
            ..m.header().clone()
        };
        let payload = &b[format::payload_offset(m.header())..];
        let c = file_of(&h, payload);
        let e = Model::from_bytes(&c).unwrap_err().to_string();
        assert!(
            e.contains("latent stride") || e.contains("payload length"),
            "{stride}: {e}"
        );
    }
    // A non-zero padding lane, with consistent checksums.
    let mut w = m.weights().to_vec();
    let v0 = (1usize << 6) + 1;
    w[v0 + 4 * 7 + 3] = 0.5;
    let payload: &[u8] = bytemuck::cast_slice(&w);
    let c = file_of(m.header(), payload);
    let e = Model::from_bytes(&c).unwrap_err().to_string();
    assert!(e.contains("non-zero padding"), "{e}");
    assert!(Model::new(m.header().clone(), w).is_err());
}
