//! Random models and rows for the benchmarks (shared by the bench targets).

// Each bench target compiles this module and uses a different part of it.
#![allow(dead_code)]

use rust_core::dataset::Dataset;
use rust_core::model::{Algorithm, Header, Model};
use rust_core::rng::SplitMix64;

pub const FIELDS: u32 = 10;

/// A model with random weights (scoring cost does not depend on their values).
#[must_use]
pub fn random_model(algorithm: Algorithm, bits: u32, k: u32) -> Model {
    let header = Header {
        algorithm,
        bits,
        fields: FIELDS,
        k,
        stride: k,
        normalize: algorithm == Algorithm::Ffm,
        fingerprint: [0; 32],
        downsample_rate: 1.0,
    };
    let mut rng = SplitMix64::new(1);
    let len = header.payload_len().unwrap();
    let w = (0..len).map(|_| rng.next_f32() * 0.1 - 0.05).collect();
    Model::new(header, w).unwrap()
}

/// `rows` rows of `nnz` features spread over `fields` fields, indices uniform in 2^bits.
#[must_use]
pub fn random_rows(rows: usize, nnz: usize, fields: u32, bits: u32, seed: u64) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let mut f = Vec::with_capacity(rows * nnz);
    let mut j = Vec::with_capacity(rows * nnz);
    for _ in 0..rows {
        for i in 0..nnz {
            f.push(i as u32 % fields);
            j.push(rng.below(1 << bits) as u32);
        }
    }
    let labels = (0..rows)
        .map(|_| f32::from(u8::from(rng.next_f32() < 0.2)))
        .collect();
    let indptr = (0..=rows).map(|r| (r * nnz) as u64).collect();
    Dataset::from_owned(indptr, f, j, vec![1.0; rows * nnz], labels, None).unwrap()
}
