//! A small driver of the FFM kernels for instruction counts under valgrind (cachegrind's
//! counts do not depend on the machine's load, unlike wall-clock time):
//!
//! `kernel_ir predict|train KERNEL FIELDS BITS K ROWS REPS`
//!
//! Rows have one feature per field, fields in order, indices Zipf-like (the benchmark's
//! shape). Run it with REPS = 1 and 3 and take the difference over 2 * ROWS for the cost
//! per row with set-up cancelled (see docs/benchmarks.md, "FFM kernels").

use rust_core::dataset::Dataset;
use rust_core::ffm::{self, Shape};
use rust_core::rng::SplitMix64;
use rust_core::simd::Kernel;
use rust_core::train::{self, Common, FfmParams};

fn rows(rows: usize, fields: u32, bits: u32, seed: u64) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let n = f64::from(1u32 << bits);
    let (mut f, mut j) = (Vec::new(), Vec::new());
    for _ in 0..rows {
        for i in 0..fields {
            // Zipf-like: small indices far more often than large ones.
            let u = f64::from(rng.next_f32());
            f.push(i);
            j.push((n * u * u * u) as u32 + i * 7919);
        }
    }
    let nnz = fields as usize;
    let labels = (0..rows)
        .map(|_| f32::from(u8::from(rng.next_f32() < 0.2)))
        .collect();
    let indptr = (0..=rows).map(|r| (r * nnz) as u64).collect();
    Dataset::from_owned(indptr, f, j, vec![1.0; rows * nnz], labels, None).unwrap()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let num = |i: usize| a[i].parse::<u32>().expect("a number");
    let (mode, kernel) = (a[1].as_str(), Kernel::from_name(&a[2]).expect("a kernel"));
    let (fields, bits, k, n, reps) = (num(3), num(4), num(5), num(6) as usize, num(7));
    let data = rows(n, fields, bits, 7);
    if mode == "train" {
        let p = FfmParams {
            k,
            kernel: Some(kernel),
            common: Common {
                epochs: reps,
                threads: 1,
                bits: Some(bits),
                ..Common::default()
            },
            ..FfmParams::default()
        };
        train::train_ffm(&data, None, &p, &mut |_| Ok(())).unwrap();
        return;
    }
    let stride = if kernel.pads() { k.div_ceil(4) * 4 } else { k };
    let shape = Shape {
        bits,
        fields,
        k,
        stride,
        normalize: true,
    };
    let mut rng = SplitMix64::new(1);
    let w: Vec<f32> = (0..shape.payload_len().unwrap())
        .map(|_| rng.next_f32() * 0.1 - 0.05)
        .collect();
    let mut sum = 0.0f64;
    for _ in 0..reps {
        ffm::score_batch(kernel, &w[..], &shape, &data, |t| sum += f64::from(t));
    }
    println!("{sum}");
}
