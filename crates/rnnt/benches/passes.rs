//! Criterion benches of the row kernels (on rows that stay in L1), of the three passes on the
//! S1 and S2 benchmark shapes, and of the α/β lattice alone on the lattice sizes of S4 and S6, so
//! that regressions show. Kept short: `cargo bench -p rnnt`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array4;
use rnnt::internals::{alpha_beta, forward_variable, simd, FrameRows, GradRow, Isa, NodeScores};
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
            b.iter(|| simd::row_stats(Isa::detected(), std::hint::black_box(row), Some(row[0])))
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
            b.iter(|| {
                simd::grad_row(
                    Isa::detected(),
                    std::hint::black_box(row),
                    &mut out,
                    &params,
                    false,
                )
            })
        });
    }
    // The gradient kernel in place on one S1 item's rows (150 frames of 41 rows of 29, in L2):
    // the stored softmax terms turned into the gradient, every row with its arcs.
    let (frames, positions, vocab) = (150, 41, 29);
    let (shift, inv_sum) = (vec![0.0; positions], vec![1.0 / 15.0; positions]);
    let blank_arcs: Vec<f64> = (0..positions).map(|u| 0.3 + u as f64 * 0.005).collect();
    let emit_arcs: Vec<f64> = (0..positions).map(|u| 0.2 + u as f64 * 0.005).collect();
    let labels: Vec<u32> = (0..positions as u32 - 1)
        .map(|u| (u * 7) % 28 + 1)
        .collect();
    let rows = FrameRows {
        shift: &shift,
        inv_sum: &inv_sum,
        blank_arcs: &blank_arcs,
        emit_arcs: &emit_arcs,
        blank: 0,
        labels: &labels,
        softmax: true,
        scale: 0.5,
        clip: f64::INFINITY,
    };
    let terms: Vec<f32> = (0..frames * positions * vocab)
        .map(|k| ((k * 7919) % 97) as f32 / 97.0)
        .collect();
    let mut item = terms.clone();
    group.throughput(Throughput::Elements(terms.len() as u64));
    group.bench_function("grad_rows_in_place_f32/S1_item", |bench| {
        bench.iter(|| {
            item.copy_from_slice(&terms);
            for frame in item.chunks_mut(positions * vocab) {
                simd::grad_rows_in_place(
                    Isa::detected(),
                    std::hint::black_box(frame),
                    vocab,
                    &rows,
                );
            }
        })
    });
    let x: Vec<f32> = (0..4096).map(|i| -80.0 + i as f32 * 0.04).collect();
    let mut out = vec![0f32; x.len()];
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("exp_f32/4096", |b| {
        b.iter(|| {
            out.copy_from_slice(std::hint::black_box(&x));
            simd::exp_in_place(Isa::detected(), &mut out)
        })
    });
    let a: Vec<f64> = (0..4096).map(|i| -(i as f64) * 0.01).collect();
    let b: Vec<f64> = (0..4096)
        .map(|i| -((i * 7919) % 4096) as f64 * 0.01)
        .collect();
    let mut sum = vec![0f64; a.len()];
    group.bench_function("log_add_exp_f64/4096", |bench| {
        bench.iter(|| simd::log_add_exp(Isa::detected(), std::hint::black_box(&a), &b, &mut sum))
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
            let scores = forward.state().item(0).0;
            b.iter(|| alpha_beta(scores))
        });
    }
    group.finish();
}

/// The α/β lattice of one item of T frames and U labels, with log-probabilities spread over
/// [−8, 0] (the recursions' cost does not depend on the values).
fn lattice(c: &mut Criterion) {
    let mut group = c.benchmark_group("lattice");
    for (name, frames, labels) in [("S4", 1000, 200), ("S6", 3000, 400)] {
        let positions = labels + 1;
        let mut scores = NodeScores::new(frames, positions);
        let spread = |n: usize, salt: usize| -(((n * 2_654_435_761 + salt) % 4096) as f64) / 512.0;
        for (n, (blank, emit)) in scores
            .blank
            .iter_mut()
            .zip(scores.emit.iter_mut())
            .enumerate()
        {
            *blank = spread(n, 1);
            *emit = if n % positions == labels {
                f64::NEG_INFINITY
            } else {
                spread(n, 2)
            };
        }
        group.throughput(Throughput::Elements((frames * positions) as u64));
        group.bench_function(BenchmarkId::new("alpha_beta", name), |b| {
            b.iter(|| alpha_beta(std::hint::black_box(&scores)))
        });
        group.bench_function(BenchmarkId::new("viterbi_forward", name), |b| {
            b.iter(|| forward_variable(std::hint::black_box(&scores), f64::max))
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
    targets = kernels, passes, lattice
}
criterion_main!(benches);
