//! `rnnt bench --variant …`: each variant's forward + backward on the benchmark shapes, against
//! the memory floor of its heads (every head's bytes read twice, its gradient written once),
//! float32, padded.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use ndarray::{Array1, Array2, Array4};
use rnnt::internals::Triad;
use rnnt::variant::{self, VariantGrad, VariantInput};
use rnnt::{Options, Reduction, Targets, Variant};
use rnnt_cases::synthetic::{self, Shape};
use rnnt_cases::{Labels, Scores};

/// The variant flags of `rnnt bench`.
#[derive(Debug, Clone)]
pub struct VariantBench {
    /// The variant: tdt, multiblank, modified, constrained (or regular with a delay penalty).
    pub variant: Variant,
    /// Columns of the duration head (TDT).
    pub duration_columns: usize,
    /// Big blanks (multi-blank), whose ids labels must avoid.
    pub big_blanks: usize,
}

/// Times every shape; returns the exit status.
pub fn run(
    bench: &VariantBench,
    shapes: &[(String, Shape)],
    (threads, repeat): (usize, usize),
) -> anyhow::Result<ExitCode> {
    let mut triad = Triad::new(threads, 1 << 26)?;
    println!(
        "rnnt bench: {:?}, float32 padded, {threads} thread(s) (0: all); best of {repeat} runs, \
         floor = 3 x bytes of every head / best triad",
        bench.variant
    );
    println!(
        "{:<6} {:>12} {:>10} {:>10} {:>8}",
        "shape", "fwd+bwd ms", "triad GB/s", "floor ms", "ratio"
    );
    for (name, shape) in shapes {
        let case = synthetic::batch(*shape, 0);
        let Some(Scores::F32(logits)) = case.logits else {
            unreachable!("synthetic batches hold float32 logits")
        };
        let Labels::Padded(mut targets) = case.targets else {
            unreachable!("synthetic batches hold padded labels")
        };
        let vocab = shape.vocab as i64;
        // Labels off the big blanks' ids (just below blank = V − 1).
        targets.mapv_inplace(|y| {
            if y >= vocab - 1 - bench.big_blanks as i64 {
                y % (vocab - 1 - bench.big_blanks as i64).max(1)
            } else {
                y
            }
        });
        let (b, t, u1, _) = logits.dim();
        let durations = (bench.duration_columns > 0).then(|| {
            Array4::from_shape_fn((b, t, u1, bench.duration_columns), |(i, j, k, l)| {
                ((i * 7 + j * 3 + k * 5 + l) % 11) as f32 / 5.0 - 1.0
            })
        });
        let seconds = time(
            bench,
            &logits,
            durations.as_ref(),
            (&targets, &case.logit_lengths, &case.target_lengths),
            (threads, repeat),
        )
        .with_context(|| name.clone())?;
        let bytes = 4 * (logits.len() + durations.as_ref().map_or(0, |d| d.len()));
        let bandwidth = triad.bandwidth()?;
        let floor = 3.0 * bytes as f64 / bandwidth;
        println!(
            "{name:<6} {:>12.2} {:>10.1} {:>10.2} {:>8.2}",
            seconds * 1e3,
            bandwidth / 1e9,
            floor * 1e3,
            seconds / floor
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The best forward + backward time over `repeat` runs (after one untimed run).
fn time(
    bench: &VariantBench,
    logits: &Array4<f32>,
    durations: Option<&Array4<f32>>,
    (targets, frames, lengths): (&Array2<i64>, &Array1<i64>, &Array1<i64>),
    (threads, repeat): (usize, usize),
) -> anyhow::Result<f64> {
    let input = VariantInput {
        logits: logits.view(),
        duration_logits: durations.map(|d| d.view()),
        targets: Targets::Padded(targets.view()),
        logit_lengths: frames.view(),
        target_lengths: lengths.view(),
    };
    let options = Options {
        blank: -1,
        reduction: Reduction::Mean,
        threads,
        ..Options::default()
    };
    let mut grad = Array4::<f32>::zeros(logits.dim());
    let mut duration_grad = durations.map(|d| Array4::<f32>::zeros(d.dim()));
    let mut best = f64::INFINITY;
    for _ in 0..=repeat.max(1) {
        let start = Instant::now();
        std::hint::black_box(variant::loss_and_grad_into(
            &input,
            &options,
            &bench.variant,
            VariantGrad {
                logits: grad.view_mut(),
                duration_logits: duration_grad.as_mut().map(|d| d.view_mut()),
            },
        )?);
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}
