//! ns per scored row, single-row calls and batches, LR and FFM (`cargo bench --bench scoring`);
//! and the experiment assignment a routed request adds (`cargo bench --bench scoring -- experiment`).

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

/// One routed model's cost per request: BLAKE2b-64 of salt + key value, then the comparison.
fn experiment(c: &mut Criterion) {
    use rust_core::serving::experiment::{bucket, Mode, Routing};
    let routing = Routing {
        experiment: "e1".into(),
        mode: Mode::Split,
        key: "user_id".into(),
        salt: "exp-2026-11-ctr".into(),
        share: 0.1,
    };
    let users: Vec<String> = (0..1024).map(|i| format!("user-{i:05}")).collect();
    let mut g = c.benchmark_group("experiment");
    g.throughput(Throughput::Elements(users.len() as u64));
    g.bench_function("bucket", |b| {
        b.iter(|| {
            users
                .iter()
                .map(|u| bucket(black_box(&routing.salt), u))
                .sum::<f64>()
        });
    });
    g.bench_function("arm", |b| {
        b.iter(|| {
            users
                .iter()
                .filter(|u| routing.arm(Some(black_box(u.as_str())), true) as u8 == 2)
                .count()
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(1))
        .warm_up_time(std::time::Duration::from_millis(300));
    targets = scoring, experiment
}
criterion_main!(benches);
