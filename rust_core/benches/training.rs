//! Training throughput in row-epochs per second, 1 and 2 threads (`cargo bench --bench training`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rust_core::train::{self, Common, FfmParams, LrParams};

mod common;

fn training(c: &mut Criterion) {
    let rows = 50_000;
    // 17 non-zeros over 17 fields, 2^16 distinct features: LIBFFM's reference shape.
    let data = common::random_rows(rows, 17, 17, 16, 3);
    let mut g = c.benchmark_group("train_row_epochs");
    g.throughput(Throughput::Elements(rows as u64));
    for threads in [1usize, 2] {
        let common = Common {
            epochs: 1,
            threads,
            bits: Some(16),
            ..Common::default()
        };
        let ffm = FfmParams {
            common: common.clone(),
            ..FfmParams::default()
        };
        g.bench_with_input(BenchmarkId::new("ffm_k4_nnz17", threads), &ffm, |b, p| {
            b.iter(|| train::train_ffm(&data, None, p, &mut |_| Ok(())).unwrap());
        });
        let lr = LrParams {
            common,
            ..LrParams::default()
        };
        g.bench_with_input(BenchmarkId::new("lr_nnz17", threads), &lr, |b, p| {
            b.iter(|| train::train_lr(&data, None, p, &mut |_| Ok(())).unwrap());
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = training
}
criterion_main!(benches);
