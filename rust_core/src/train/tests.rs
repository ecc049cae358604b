//! Learning tests on generated data with a planted model.

use super::*;
use crate::math::sigmoid;
use crate::metrics::auc;
use crate::rng::SplitMix64;
use crate::shards::ShardSet;

/// Rows of one categorical feature per field (index = field * vocab + value, value 1),
/// values drawn with a skew so that some features are frequent and some rare.
fn rows(n: usize, fields: u32, vocab: u32, rng: &mut SplitMix64) -> Vec<Vec<(u32, u32)>> {
    (0..n)
        .map(|_| {
            (0..fields)
                .map(|f| {
                    let u = rng.next_f64();
                    (f, f * vocab + ((u * u) * f64::from(vocab)) as u32)
                })
                .collect()
        })
        .collect()
}

/// A dataset labelled by `truth(row) -> probability`, optionally dropping negatives.
fn label(
    rows: &[Vec<(u32, u32)>],
    truth: &dyn Fn(&[u32], &[u32]) -> f32,
    keep_negatives: f64,
    rng: &mut SplitMix64,
) -> (Dataset, Vec<f32>) {
    let (mut indptr, mut fields, mut indices, mut labels, mut probs) =
        (vec![0u64], vec![], vec![], vec![], vec![]);
    for r in rows {
        let (f, j): (Vec<u32>, Vec<u32>) = r.iter().copied().unzip();
        let p = truth(&f, &j);
        let y = rng.next_f32() < p;
        if !y && rng.next_f64() >= keep_negatives {
            continue;
        }
        fields.extend(f);
        indices.extend(j);
        indptr.push(fields.len() as u64);
        labels.push(if y { 1.0 } else { 0.0 });
        probs.push(p);
    }
    let values = vec![1.0; fields.len()];
    (
        Dataset::from_owned(indptr, fields, indices, values, labels, None).unwrap(),
        probs,
    )
}

fn planted_ffm(shape: &ffm::Shape, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut w: Vec<f32> = (0..shape.payload_len().unwrap())
        .map(|_| 2.0 * rng.next_f32() - 1.0)
        .collect();
    w[0] = -1.5;
    for x in &mut w[1..] {
        *x *= 0.8;
    }
    w
}

fn no_progress() -> impl FnMut(&Epoch) -> Result<()> {
    |_| Ok(())
}

struct Planted {
    train: Dataset,
    test: Dataset,
    test_probs: Vec<f32>,
}

fn planted_ffm_data(n_train: usize, n_test: usize, seed: u64) -> Planted {
    let shape = ffm::Shape {
        bits: 7,
        fields: 6,
        k: 4,
        stride: 4,
        normalize: true,
    };
    let truth_w = planted_ffm(&shape, seed);
    let truth = |f: &[u32], j: &[u32]| {
        sigmoid(ffm::score(
            &truth_w[..],
            &shape,
            crate::dataset::Row {
                fields: f,
                indices: j,
                values: &[1.0; 6],
            },
        ))
    };
    let mut rng = SplitMix64::new(seed + 1);
    let (train, _) = label(&rows(n_train, 6, 20, &mut rng), &truth, 1.0, &mut rng);
    let (test, test_probs) = label(&rows(n_test, 6, 20, &mut rng), &truth, 1.0, &mut rng);
    Planted {
        train,
        test,
        test_probs,
    }
}

#[test]
fn ffm_recovers_a_planted_model() {
    let d = planted_ffm_data(60_000, 10_000, 11);
    let valid = planted_ffm_data(10, 10_000, 11).test;
    let common = Common {
        epochs: 40,
        auto_stop: true,
        bits: Some(7),
        ..Common::default()
    };
    let p = FfmParams {
        eta: 0.05,
        common,
        ..FfmParams::default()
    };
    let m = train_ffm(&d.train, Some(&valid), &p, &mut no_progress()).unwrap();
    let ours = auc(&m.predict(&d.test), d.test.labels()).unwrap();
    let planted = auc(&d.test_probs, d.test.labels()).unwrap();
    eprintln!(
        "trained AUC {ours:.4} vs planted {planted:.4}, best epoch {:?}",
        m.best_epoch()
    );
    assert!(
        planted - ours < 0.01,
        "trained AUC {ours:.4} vs planted {planted:.4}"
    );
}

#[test]
fn lr_recovers_a_planted_model() {
    let (fields, vocab) = (8u32, 30u32);
    let mut rng = SplitMix64::new(5);
    let w: Vec<f32> = (0..fields * vocab)
        .map(|_| 2.0 * rng.next_f32() - 1.0)
        .collect();
    let truth =
        |_: &[u32], j: &[u32]| sigmoid(-1.0 + j.iter().map(|&j| w[j as usize]).sum::<f32>());
    let (train, _) = label(
        &rows(30_000, fields, vocab, &mut rng),
        &truth,
        1.0,
        &mut rng,
    );
    let (test, probs) = label(
        &rows(10_000, fields, vocab, &mut rng),
        &truth,
        1.0,
        &mut rng,
    );
    let p = LrParams {
        common: Common {
            epochs: 5,
            ..Common::default()
        },
        ..LrParams::default()
    };
    let m = train_lr(&train, None, &p, &mut no_progress()).unwrap();
    assert_eq!(m.hash_bits(), 8, "bits=None covers the 240 feature indices");
    let ours = auc(&m.predict(&test), test.labels()).unwrap();
    let planted = auc(&probs, test.labels()).unwrap();
    assert!(
        planted - ours < 0.01,
        "trained AUC {ours:.4} vs planted {planted:.4}"
    );
}

#[test]
fn without_linear_terms_only_the_pairwise_weights_train() {
    // `linear: false` is LIBFFM's model: bias and linear weights stay 0 on every kernel,
    // the latent weights start from the same draws as with linear terms and still learn.
    let d = planted_ffm_data(3_000, 2_000, 5);
    for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
        let p = FfmParams {
            linear: false,
            kernel: Some(kernel),
            common: Common {
                epochs: 4,
                seed: 3,
                ..Common::default()
            },
            ..FfmParams::default()
        };
        let m = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
        let n = 1usize << m.hash_bits();
        let w = m.weights();
        assert!(
            w[..=n].iter().all(|&x| x == 0.0),
            "{kernel:?}: bias or linear weights moved"
        );
        let first = FfmParams {
            common: Common {
                epochs: 1,
                ..p.common.clone()
            },
            ..p.clone()
        };
        let one = train_ffm(&d.train, None, &first, &mut no_progress()).unwrap();
        assert!(
            one.weights()[n + 1..] != w[n + 1..],
            "{kernel:?}: latent weights did not train"
        );
        let ours = auc(&m.predict(&d.test), d.test.labels()).unwrap();
        assert!(ours > 0.6, "{kernel:?}: AUC {ours:.4} without linear terms");
    }
}

#[test]
fn single_thread_training_is_bit_for_bit_reproducible() {
    let d = planted_ffm_data(3_000, 10, 3);
    let p = FfmParams {
        common: Common {
            epochs: 3,
            seed: 9,
            ..Common::default()
        },
        ..FfmParams::default()
    };
    let a = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
    let b = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
    assert_eq!(a.checksum(), b.checksum());
    let bits = |m: &Model| m.weights().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    let other = FfmParams {
        common: Common {
            seed: 10,
            ..p.common.clone()
        },
        ..p.clone()
    };
    assert_ne!(
        train_ffm(&d.train, None, &other, &mut no_progress())
            .unwrap()
            .checksum(),
        a.checksum()
    );
    let lp = LrParams {
        common: Common {
            epochs: 2,
            seed: 4,
            ..Common::default()
        },
        ..LrParams::default()
    };
    let la = train_lr(&d.train, None, &lp, &mut no_progress()).unwrap();
    assert_eq!(
        la.checksum(),
        train_lr(&d.train, None, &lp, &mut no_progress())
            .unwrap()
            .checksum()
    );
}

#[test]
fn hogwild_threads_learn_too() {
    let d = planted_ffm_data(20_000, 5_000, 21);
    let p = FfmParams {
        common: Common {
            epochs: 6,
            threads: 2,
            ..Common::default()
        },
        ..FfmParams::default()
    };
    let m = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
    let ours = auc(&m.predict(&d.test), d.test.labels()).unwrap();
    let planted = auc(&d.test_probs, d.test.labels()).unwrap();
    assert!(
        planted - ours < 0.03,
        "2-thread AUC {ours:.4} vs planted {planted:.4}"
    );
    let lp = LrParams {
        common: Common {
            epochs: 2,
            threads: 2,
            ..Common::default()
        },
        ..LrParams::default()
    };
    let lm = train_lr(&d.train, None, &lp, &mut no_progress()).unwrap();
    assert!(auc(&lm.predict(&d.test), d.test.labels()).unwrap() > 0.6);
}

#[test]
fn hogwild_learns_through_the_chunk_view_and_the_pairs() {
    // AVX kernels on padded blocks share 16-byte chunks (`Quads`), at k = 4 and at k = 15
    // (16 lanes); the SSE kernel shares 64-bit pairs.
    let d = planted_ffm_data(20_000, 5_000, 23);
    let planted = auc(&d.test_probs, d.test.labels()).unwrap();
    for (kernel, k, chunks) in [
        (Kernel::Avx2, 4, true),
        (Kernel::Avx2, 15, true),
        (Kernel::Sse, 4, false),
    ] {
        if !kernel.available() {
            continue;
        }
        let shape = ffm::Shape {
            bits: 12,
            fields: d.train.num_fields(),
            k,
            stride: k.div_ceil(4) * 4,
            normalize: true,
        };
        let (state, _) = ffm::TrainState::new(&shape, kernel).unwrap();
        assert_eq!(state.chunks_of_four(), chunks, "{kernel:?} k={k}");
        let p = FfmParams {
            k,
            kernel: Some(kernel),
            common: Common {
                epochs: 4,
                threads: 2,
                ..Common::default()
            },
            ..FfmParams::default()
        };
        let m = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
        let ours = auc(&m.predict(&d.test), d.test.labels()).unwrap();
        assert!(
            planted - ours < 0.03,
            "{kernel:?} k={k}: 2-thread AUC {ours:.4} vs planted {planted:.4}"
        );
    }
}

#[test]
fn hogwild_with_a_latent_size_off_the_pair_grain_learns() {
    // An unpadded k = 3 takes the element-wise atomic view instead of the 64-bit pairs.
    let d = planted_ffm_data(20_000, 5_000, 22);
    let p = FfmParams {
        k: 3,
        // Unpadded (legacy): 3 lanes are off the pair grain.
        kernel: Some(Kernel::Legacy),
        common: Common {
            epochs: 6,
            threads: 2,
            ..Common::default()
        },
        ..FfmParams::default()
    };
    let m = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
    let ours = auc(&m.predict(&d.test), d.test.labels()).unwrap();
    let planted = auc(&d.test_probs, d.test.labels()).unwrap();
    assert!(
        planted - ours < 0.03,
        "2-thread k=3 AUC {ours:.4} vs planted {planted:.4}"
    );
}

#[test]
fn hogwild_threads_share_out_every_row_once() {
    let order: Vec<u32> = (0..3 * BLOCK as u32 + 17).rev().collect();
    let seen: Vec<std::sync::atomic::AtomicU32> = order
        .iter()
        .map(|_| std::sync::atomic::AtomicU32::new(0))
        .collect();
    for threads in [1, 2, 5] {
        let rows = hogwild(&order, threads, |ids| {
            for &i in ids {
                seen[i as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            ids.len() as f64
        });
        assert_eq!(rows as usize, order.len());
    }
    assert!(seen
        .iter()
        .all(|n| n.load(std::sync::atomic::Ordering::Relaxed) == 3));
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    // A small training set and a large learning rate overfit within a few epochs.
    let d = planted_ffm_data(1_500, 3_000, 8);
    let common = Common {
        epochs: 40,
        auto_stop: true,
        seed: 2,
        ..Common::default()
    };
    let p = FfmParams {
        eta: 0.5,
        k: 8,
        l2: 0.0,
        common,
        ..FfmParams::default()
    };
    let mut seen: Vec<Epoch> = vec![];
    let m = train_ffm(&d.train, Some(&d.test), &p, &mut |e: &Epoch| {
        seen.push(*e);
        Ok(())
    })
    .unwrap();
    let best = m.best_epoch().unwrap();
    let losses: Vec<f64> = seen.iter().map(|e| e.valid_logloss.unwrap()).collect();
    assert!(seen.len() < 40, "training should stop early: {losses:?}");
    assert_eq!(
        seen.len() as u32,
        best + 1,
        "stops one epoch after the best"
    );
    let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(losses[best as usize - 1].to_bits(), min.to_bits());
    let ours = metrics::logloss(&m.predict_uncalibrated(&d.test), d.test.labels(), None);
    assert_eq!(
        ours.to_bits(),
        min.to_bits(),
        "the returned weights are the best epoch's"
    );
    // The same run stopped at the best epoch by hand gives the same weights.
    let fixed = FfmParams {
        common: Common {
            epochs: best,
            auto_stop: false,
            ..p.common.clone()
        },
        ..p.clone()
    };
    let again = train_ffm(&d.train, None, &fixed, &mut no_progress()).unwrap();
    assert_eq!(again.checksum(), m.checksum());
}

#[test]
fn recorded_downsampling_rate_calibrates_the_mean() {
    // Low CTR; negatives kept at rate 0.1 in training, the rate recorded in the model.
    let shape = ffm::Shape {
        bits: 7,
        fields: 6,
        k: 4,
        stride: 4,
        normalize: true,
    };
    let mut truth_w = planted_ffm(&shape, 4);
    truth_w[0] = -4.0;
    let truth = |f: &[u32], j: &[u32]| {
        sigmoid(ffm::score(
            &truth_w[..],
            &shape,
            crate::dataset::Row {
                fields: f,
                indices: j,
                values: &[1.0; 6],
            },
        ))
    };
    let mut rng = SplitMix64::new(77);
    let (train, _) = label(&rows(150_000, 6, 20, &mut rng), &truth, 0.1, &mut rng);
    let (full, probs) = label(&rows(30_000, 6, 20, &mut rng), &truth, 1.0, &mut rng);
    let common = Common {
        epochs: 4,
        downsample_rate: 0.1,
        ..Common::default()
    };
    let m = train_ffm(
        &train,
        None,
        &FfmParams {
            common,
            ..FfmParams::default()
        },
        &mut no_progress(),
    )
    .unwrap();
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    let (predicted, true_rate) = (mean(&m.predict(&full)), mean(&probs));
    assert!(
        (predicted / true_rate - 1.0).abs() < 0.05,
        "mean prediction {predicted:.5} vs true rate {true_rate:.5}"
    );
    let raw = mean(&m.predict_uncalibrated(&full));
    assert!(
        raw > 2.0 * true_rate,
        "uncorrected scores are inflated ({raw:.4})"
    );
}

#[test]
fn bad_parameters_are_refused() {
    let d = planted_ffm_data(10, 10, 1);
    let err = |p: FfmParams| {
        train_ffm(&d.train, None, &p, &mut no_progress())
            .unwrap_err()
            .to_string()
    };
    assert!(err(FfmParams {
        k: 0,
        ..FfmParams::default()
    })
    .contains("k must be"));
    assert!(err(FfmParams {
        eta: -1.0,
        ..FfmParams::default()
    })
    .contains("eta must be"));
    let c = |c: Common| FfmParams {
        common: c,
        ..FfmParams::default()
    };
    assert!(err(c(Common {
        epochs: 0,
        ..Common::default()
    }))
    .contains("epochs"));
    assert!(err(c(Common {
        threads: 0,
        ..Common::default()
    }))
    .contains("threads"));
    assert!(err(c(Common {
        bits: Some(31),
        ..Common::default()
    }))
    .contains("bits"));
    assert!(err(c(Common {
        downsample_rate: 0.0,
        ..Common::default()
    }))
    .contains("downsample_rate"));
    let stop = train_ffm(&d.train, None, &FfmParams::default(), &mut |_| {
        Err(Error::Interrupted)
    });
    assert!(matches!(stop, Err(Error::Interrupted)));
}

/// The `name=literal` defaults of one `#[pyo3(signature = (...))]` in the bindings source,
/// for the function whose `pub fn` follows it.
fn signature_defaults(source: &str, function: &str) -> Vec<(String, String)> {
    let end = source
        .find(&format!("pub fn {function}("))
        .unwrap_or_else(|| panic!("no `pub fn {function}` in the bindings"));
    let start = source[..end]
        .rfind("signature = (")
        .unwrap_or_else(|| panic!("no signature before `pub fn {function}`"));
    let body = &source[start + "signature = (".len()..end];
    let body = &body[..body.find("))]").expect("unterminated signature")];
    body.split(',')
        .filter_map(|item| {
            let (name, value) = item.split_once('=')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

#[test]
fn binding_signatures_repeat_the_default_structs() {
    let source = include_str!("../bindings/train.rs");
    for (function, table) in [
        ("train_ffm", FfmParams::defaults()),
        ("train_lr", LrParams::defaults()),
    ] {
        let literals = signature_defaults(source, function);
        for (name, value) in &table {
            let (_, literal) = literals
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{function}: no default for {name} in the signature"));
            let same = match *value {
                DefaultValue::Int(x) => literal.parse::<u64>().ok() == Some(x),
                DefaultValue::Float(x) => literal.parse::<f64>().ok() == Some(x),
                DefaultValue::Bool(x) => literal.parse::<bool>().ok() == Some(x),
            };
            assert!(
                same,
                "{function}: {name}={literal} in the signature, {value:?} in Rust"
            );
        }
        // Every keyword with a literal default is in the table, except the two whose default
        // is "nothing" (None, "").
        for (name, literal) in &literals {
            let known = table.iter().any(|(n, _)| n == name);
            assert!(
                known || ["None", "\"\""].contains(&literal.as_str()),
                "{function}: {name}={literal} is not in the defaults table"
            );
        }
    }
}

// --- out of core and warm start ---------------------------------------------------------

use crate::shards::tests::{shard_dataset, tempdir};

fn checksum_of(m: &Model) -> u64 {
    m.checksum()
}

#[test]
fn shards_in_stored_order_train_the_in_memory_model_bit_for_bit() {
    let d = planted_ffm_data(3_000, 10, 21);
    let dir = tempdir("bitwise");
    // Uneven shards (the last one short) test the carry-over of state across shards.
    shard_dataset(&dir, &d.train, 700);
    let set = ShardSet::open_root(&dir).unwrap().with_prefetch(1);
    let common = Common {
        epochs: 3,
        shuffle: false,
        seed: 9,
        ..Common::default()
    };
    for kernel in [Kernel::Scalar, Kernel::active()] {
        let p = FfmParams {
            kernel: Some(kernel),
            common: common.clone(),
            ..FfmParams::default()
        };
        let mem = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
        let disk = fit_ffm(Source::Shards(&set), None, &p, None, &mut no_progress()).unwrap();
        assert_eq!(checksum_of(&mem), checksum_of(&disk), "{kernel:?}");
        assert_eq!(mem.header(), disk.header());
    }
    let p = LrParams {
        common: common.clone(),
        ..LrParams::default()
    };
    let mem = train_lr(&d.train, None, &p, &mut no_progress()).unwrap();
    let disk = fit_lr(Source::Shards(&set), None, &p, None, &mut no_progress()).unwrap();
    assert_eq!(checksum_of(&mem), checksum_of(&disk));
    // Shuffled, the two differ in row order but learn as well.
    let p = FfmParams {
        common: Common {
            shuffle: true,
            ..common
        },
        ..FfmParams::default()
    };
    let mem = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
    let disk = fit_ffm(Source::Shards(&set), None, &p, None, &mut no_progress()).unwrap();
    assert_ne!(checksum_of(&mem), checksum_of(&disk));
    let ll =
        |m: &Model| metrics::logloss(&m.predict_uncalibrated(&d.train), d.train.labels(), None);
    assert!(
        (ll(&mem) - ll(&disk)).abs() < 0.01,
        "{} vs {}",
        ll(&mem),
        ll(&disk)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_corrupt_shard_stops_training_with_a_data_error() {
    let d = planted_ffm_data(500, 10, 3);
    let dir = tempdir("corrupt-train");
    let dirs = shard_dataset(&dir, &d.train, 100);
    std::fs::write(dirs[3].join("indices.npy"), b"\x93NUMPY\x01\x00\x10\x00").unwrap();
    let set = ShardSet::open_root(&dir).unwrap();
    let e = fit_ffm(
        Source::Shards(&set),
        None,
        &FfmParams::default(),
        None,
        &mut no_progress(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Data(_)), "{e}");
    assert!(e.to_string().contains("part-00003"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn warm_start_continues_from_the_model_and_refuses_another_shape() {
    let d = planted_ffm_data(4_000, 2_000, 31);
    let common = Common {
        epochs: 2,
        bits: Some(7),
        ..Common::default()
    };
    let p = FfmParams {
        eta: 0.05,
        common: common.clone(),
        ..FfmParams::default()
    };
    let first = train_ffm(&d.train, None, &p, &mut no_progress()).unwrap();
    // One epoch from the trained model is better than one from scratch.
    let one = FfmParams {
        common: Common {
            epochs: 1,
            ..common.clone()
        },
        ..p.clone()
    };
    let ll = |m: &Model| metrics::logloss(&m.predict_uncalibrated(&d.test), d.test.labels(), None);
    let cold = train_ffm(&d.train, None, &one, &mut no_progress()).unwrap();
    let warm = fit_ffm(
        Source::Memory(&d.train),
        None,
        &one,
        Some(&first),
        &mut no_progress(),
    )
    .unwrap();
    assert!(
        ll(&warm) < ll(&cold),
        "warm {} cold {}",
        ll(&warm),
        ll(&cold)
    );
    // Zero learning... is not allowed; a tiny one keeps the model nearly where it was.
    let still = FfmParams {
        eta: 1e-9,
        ..one.clone()
    };
    let kept = fit_ffm(
        Source::Memory(&d.train),
        None,
        &still,
        Some(&first),
        &mut no_progress(),
    )
    .unwrap();
    assert!((ll(&kept) - ll(&first)).abs() < 1e-4);

    let refuse = |p: &FfmParams, init: &Model| {
        fit_ffm(
            Source::Memory(&d.train),
            None,
            p,
            Some(init),
            &mut no_progress(),
        )
        .unwrap_err()
        .to_string()
    };
    let k8 = FfmParams {
        k: 8,
        ..one.clone()
    };
    assert!(refuse(&k8, &first).contains("k = 4 where training uses k = 8"));
    let bits = FfmParams {
        common: Common {
            bits: Some(8),
            ..one.common.clone()
        },
        ..one.clone()
    };
    assert!(refuse(&bits, &first).contains("7 hash bits where training uses 8"));
    let fp = FfmParams {
        common: Common {
            fingerprint: [1; 32],
            ..one.common.clone()
        },
        ..one.clone()
    };
    assert!(refuse(&fp, &first).contains("feature-spec fingerprint"));
    let lr = train_lr(
        &d.train,
        None,
        &LrParams {
            common: common.clone(),
            ..LrParams::default()
        },
        &mut no_progress(),
    )
    .unwrap();
    assert!(refuse(&one, &lr).contains("algorithm lr where ffm is trained"));
}

#[test]
fn lr_warm_start_reproduces_the_model_before_any_update() {
    let d = planted_ffm_data(4_000, 2_000, 31);
    let common = Common {
        epochs: 2,
        bits: Some(7),
        ..Common::default()
    };
    let lr = train_lr(
        &d.train,
        None,
        &LrParams {
            common: common.clone(),
            ..LrParams::default()
        },
        &mut no_progress(),
    )
    .unwrap();
    // LR: the warm state reproduces the model's weights before any update.
    let lp = LrParams {
        common: Common {
            epochs: 1,
            ..common
        },
        ..LrParams::default()
    };
    let tiny = LrParams {
        ftrl: lr::Ftrl {
            alpha: 1e-12,
            ..lp.ftrl
        },
        ..lp.clone()
    };
    let again = fit_lr(
        Source::Memory(&d.train),
        None,
        &tiny,
        Some(&lr),
        &mut no_progress(),
    )
    .unwrap();
    let (a, b) = (lr.predict(&d.test), again.predict(&d.test));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "{worst}");
}
