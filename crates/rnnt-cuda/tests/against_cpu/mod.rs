//! What the GPU tests and the emulator tests share: random ragged batches, the option sweep they
//! run them under, and the comparison of a device result with the CPU backend.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

use ndarray::{Array1, Array2, Array4};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;
use rnnt::{Float, LossAndGrad, Options, Reduction};

use crate::common::{max_abs_diff, OwnedInput};

/// A random ragged batch: lengths anywhere in their range (item 0 at the full lengths), labels
/// never blank, N(0, 2) scores.
pub fn random_input<F: Float>(
    rng: &mut StdRng,
    (batch, frames, labels, vocab): (usize, usize, usize, usize),
    blank: usize,
    to_elem: impl Fn(f64) -> F,
) -> OwnedInput<F, i32> {
    let logit_lengths: Array1<i32> = (0..batch)
        .map(|b| if b == 0 { frames } else { rng.random_range(1..=frames) } as i32)
        .collect();
    let target_lengths: Array1<i32> = (0..batch)
        .map(|b| if b == 0 { labels } else { rng.random_range(0..=labels) } as i32)
        .collect();
    let targets = Array2::from_shape_fn((batch, labels), |_| {
        let y = rng.random_range(0..vocab - 1);
        (if y >= blank { y + 1 } else { y }) as i32
    });
    let logits = Array4::from_shape_simple_fn((batch, frames, labels + 1, vocab), || {
        to_elem(2.0 * rng.sample::<f64, _>(StandardNormal))
    });
    OwnedInput {
        logits,
        padded: Some(targets),
        packed: None,
        logit_lengths,
        target_lengths,
    }
}

/// Case `i` of a sweep over `shapes`: blank last or first, each reduction, a clip on case 3,
/// FastEmit `fastemit_lambda` on case 2 and log-probs input on case 4. Returns the blank id and
/// the options.
pub fn swept_options(i: usize, vocab: usize, fastemit_lambda: f64) -> (usize, Options) {
    let blank = if i.is_multiple_of(2) { vocab - 1 } else { 0 };
    let options = Options {
        blank: blank as i64,
        reduction: [Reduction::Mean, Reduction::Sum, Reduction::None][i % 3],
        clamp: if i == 3 { 0.05 } else { -1.0 },
        fastemit_lambda: if i == 2 { fastemit_lambda } else { 0.0 },
        fused_log_softmax: i != 4,
        ..Options::default()
    };
    (blank, options)
}

/// The worst loss gap and the worst gradient gap between a device's result `ours` on `input`
/// and the CPU backend's.
pub fn gaps_to_cpu<F: Float>(
    ours: &LossAndGrad<F>,
    input: &OwnedInput<F, i32>,
    options: &Options,
) -> (f64, f64) {
    let cpu = rnnt::loss_and_grad(&input.view(), options).unwrap();
    let loss_gap = ours
        .losses
        .iter()
        .zip(&cpu.losses)
        .map(|(a, b)| if a == b { 0.0 } else { (a - b).abs() })
        .fold(0.0, f64::max);
    (
        loss_gap,
        max_abs_diff(&ours.grad, &cpu.grad.mapv(Float::to_f64)),
    )
}
