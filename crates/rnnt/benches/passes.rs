//! Criterion benches of the row kernels (on rows that stay in L1) and of the three passes on the
//! S1 and S2 benchmark shapes, so that regressions show. Kept short: `cargo bench -p rnnt`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array4;
use rnnt::cpu::lattice::alpha_beta;
use rnnt::cpu::simd::{self, GradRow};
use rnnt::{LossInput, Options, Targets};
use rnnt_cases::synthetic::{self, Shape};
use rnnt_cases::{Labels, Scores};

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernels");
    for vocab in [29usize, 128, 1024, 5000] {
        let row: Vec<f32> = (0..vocab)
            .map(|k| ((k * 7919) % 97) as f32 / 13.0)
            .collect();
        let mut out = vec![0f32; vocab];
        group.throughput(Throughput::Elements(vocab as u64));
        group.bench_with_input(BenchmarkId::new("row_stats_f32", vocab), &row, |b, row| {
            b.iter(|| simd::row_stats(std::hint::black_box(row)))
        });
        let params = GradRow {
            shift: 96.0 / 13.0,
            inv_sum: 1.0 / 150.0,
            coef: 0.9,
            scale: 0.5,
            clip: f64::INFINITY,
            arcs: [(vocab - 1, 0.5), (vocab / 2, 0.4)],
        };
        group.bench_with_input(BenchmarkId::new("grad_row_f32", vocab), &row, |b, row| {
            b.iter(|| simd::grad_row(std::hint::black_box(row), &mut out, &params, false))
        });
    }
    let x: Vec<f32> = (0..4096).map(|i| -80.0 + i as f32 * 0.04).collect();
    let mut out = vec![0f32; x.len()];
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("exp_f32/4096", |b| {
        b.iter(|| simd::exp_with(simd::Isa::detected(), std::hint::black_box(&x), &mut out))
    });
    group.finish();
}

fn passes(c: &mut Criterion) {
    let mut group = c.benchmark_group("passes");
    for (name, shape) in [
        ("S1", Shape::new(16, 150, 40, 29)),
        ("S2", Shape::new(8, 300, 60, 256)),
    ] {
        let case = synthetic::batch(shape, 0);
        let Some(Scores::F32(logits)) = &case.logits else {
            unreachable!("synthetic batches hold float32 logits")
        };
        let Labels::Padded(targets) = &case.targets else {
            unreachable!("synthetic batches are padded")
        };
        let input = LossInput {
            logits: logits.view(),
            targets: Targets::Padded(targets.view()),
            logit_lengths: case.logit_lengths.view(),
            target_lengths: case.target_lengths.view(),
        };
        let options = Options {
            blank: case.blank.unwrap_or(-1),
            threads: 2,
            ..Options::default()
        };
        let forward = rnnt::forward(&input, &options).unwrap();
        let weights = vec![1.0; shape.batch];
        let mut grad = Array4::<f32>::zeros(logits.dim());
        group.throughput(Throughput::Elements(shape.elements() as u64));
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| rnnt::forward(&input, &options).unwrap())
        });
        group.bench_function(BenchmarkId::new("backward", name), |b| {
            b.iter(|| rnnt::backward(&input, &forward, &weights, grad.view_mut()).unwrap())
        });
        group.bench_function(BenchmarkId::new("lattice_item0", name), |b| {
            let scores = forward.item(0).0;
            b.iter(|| alpha_beta(scores))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = kernels, passes
}
criterion_main!(benches);
