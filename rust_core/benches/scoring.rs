//! ns per scored row, single-row calls and batches, LR and FFM (`cargo bench --bench scoring`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rust_core::model::Algorithm;

mod common;

fn scoring(c: &mut Criterion) {
    let rows = 4096;
    for bits in [18u32, 22] {
        for (algorithm, k) in [
            (Algorithm::Lr, 0u32),
            (Algorithm::Ffm, 4),
            (Algorithm::Ffm, 8),
        ] {
            if bits == 22 && k == 8 {
                continue; // 1.3 GB of weights: too much for a shared machine
            }
            let model = common::random_model(algorithm, bits, k);
            for nnz in [10usize, 17, 20, 40] {
                let data = common::random_rows(rows, nnz, common::FIELDS, bits, 7);
                let mut g = c.benchmark_group(format!("{}_k{k}_bits{bits}", algorithm.name()));
                g.throughput(Throughput::Elements(rows as u64));
                g.bench_with_input(BenchmarkId::new("single_row", nnz), &data, |b, d| {
                    b.iter(|| {
                        let mut s = 0.0f32;
                        for i in 0..d.num_rows() {
                            let r = d.row(i);
                            s += model.predict_row(black_box(r.fields), r.indices, r.values);
                        }
                        s
                    });
                });
                g.bench_with_input(BenchmarkId::new("batch", nnz), &data, |b, d| {
                    b.iter(|| model.predict(black_box(d)));
                });
                g.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(1))
        .warm_up_time(std::time::Duration::from_millis(300));
    targets = scoring
}
criterion_main!(benches);
