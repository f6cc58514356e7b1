//! `rnnt bench --joint H`: the joiner fused into the loss ([`rnnt::joint`]) against the same
//! shape unfused (the joiner's hidden activations and logits materialised with the same GEMM,
//! then [`rnnt::loss_and_grad_into`], then the chain rule back through the joiner), float32 or
//! float64, with each one's best forward + backward time and its peak memory above what was
//! resident before it ran (Linux: the process's peak resident set size, reset before each way).

use std::process::ExitCode;
use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, Array3, Array4, Axis, Zip};
use rnnt::joint::{self, Activation, JointFloat, JointInput};
use rnnt::{LossInput, Options, Reduction, Targets};

/// One shape's inputs: f (B, T, H), g (B, U+1, H), W (V, H), bias (V,), full-length labels.
struct Inputs<F> {
    encoder_out: Array3<F>,
    predictor_out: Array3<F>,
    weight: Array2<F>,
    bias: Array1<F>,
    targets: Array2<i32>,
    logit_lengths: Array1<i32>,
    target_lengths: Array1<i32>,
}

impl<F: JointFloat> Inputs<F> {
    /// Deterministic inputs of sizes (B, T, U, V) and `hidden` = H; blank is V − 1.
    fn new((batch, frames, labels, vocab): (usize, usize, usize, usize), hidden: usize) -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let bound = 1.0 / (hidden as f64).sqrt();
        let mut value = |scale: f64| F::from_f64((2.0 * uniform() - 1.0) * scale);
        let encoder_out = Array3::from_shape_simple_fn((batch, frames, hidden), || value(1.0));
        let predictor_out =
            Array3::from_shape_simple_fn((batch, labels + 1, hidden), || value(1.0));
        let weight = Array2::from_shape_simple_fn((vocab, hidden), || value(bound));
        let bias = Array1::from_shape_simple_fn(vocab, || value(bound));
        let mut label = 0;
        let targets = Array2::from_shape_simple_fn((batch, labels), || {
            label = (label * 7 + 3) % (vocab - 1).max(1);
            label as i32
        });
        Inputs {
            encoder_out,
            predictor_out,
            weight,
            bias,
            targets,
            logit_lengths: Array1::from_elem(batch, frames as i32),
            target_lengths: Array1::from_elem(batch, labels as i32),
        }
    }

    fn joint_input(&self) -> JointInput<'_, F, i32> {
        JointInput {
            encoder_out: self.encoder_out.view(),
            predictor_out: self.predictor_out.view(),
            weight: self.weight.view(),
            bias: Some(self.bias.view()),
            targets: Targets::Padded(self.targets.view()),
            logit_lengths: self.logit_lengths.view(),
            target_lengths: self.target_lengths.view(),
            activation: Activation::Tanh,
        }
    }
}

/// The unfused step: h and x materialised, the loss's gradient d x, then d f, d g, d W, d bias.
fn unfused<F: JointFloat>(inputs: &Inputs<F>, options: &Options) -> anyhow::Result<f64> {
    let (batch, frames, hidden) = inputs.encoder_out.dim();
    let positions = inputs.predictor_out.dim().1;
    let vocab = inputs.weight.dim().0;
    let rows = batch * frames * positions;
    let mut h = Array2::<F>::zeros((rows, hidden));
    for ((b, t, u), mut row) in ndarray::indices((batch, frames, positions))
        .into_iter()
        .zip(h.rows_mut())
    {
        Zip::from(&mut row)
            .and(inputs.encoder_out.slice(s![b, t, ..]))
            .and(inputs.predictor_out.slice(s![b, u, ..]))
            .for_each(|h, &f, &g| *h = Activation::Tanh.apply(f + g));
    }
    let mut x = Array2::<F>::zeros((rows, vocab));
    x.rows_mut()
        .into_iter()
        .for_each(|mut row| row.assign(&inputs.bias));
    general_mat_mul(F::one(), &h, &inputs.weight.t(), F::one(), &mut x);
    let x = x.into_shape_with_order((batch, frames, positions, vocab))?;
    let mut dx = Array4::<F>::zeros(x.raw_dim());
    let input = LossInput {
        logits: x.view(),
        targets: Targets::Padded(inputs.targets.view()),
        logit_lengths: inputs.logit_lengths.view(),
        target_lengths: inputs.target_lengths.view(),
    };
    let loss = rnnt::loss_and_grad_into(&input, options, dx.view_mut())?.loss();
    drop(x);
    let dx = dx.into_shape_with_order((rows, vocab))?;
    let mut dw = Array2::<F>::zeros(inputs.weight.raw_dim());
    general_mat_mul(F::one(), &dx.t(), &h, <F as rnnt::Float>::zero(), &mut dw);
    let _db = dx.sum_axis(Axis(0));
    let mut dz = Array2::<F>::zeros((rows, hidden));
    general_mat_mul(
        F::one(),
        &dx,
        &inputs.weight,
        <F as rnnt::Float>::zero(),
        &mut dz,
    );
    Zip::from(&mut dz)
        .and(&h)
        .for_each(|d, &h| *d = *d * Activation::Tanh.derivative_at_value(h));
    let dz = dz.into_shape_with_order((batch, frames, positions, hidden))?;
    let _df = dz.sum_axis(Axis(2));
    let _dg = dz.sum_axis(Axis(1));
    Ok(loss)
}

/// The fused step.
fn fused<F: JointFloat>(inputs: &Inputs<F>, options: &Options) -> anyhow::Result<f64> {
    Ok(joint::loss_and_grad(&inputs.joint_input(), options)?.loss)
}

/// The process's resident set size (`VmRSS`) or its peak since the last reset (`VmHWM`), bytes;
/// 0 where /proc is not there.
fn resident(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Best time of `repeat` runs of `step` and its peak memory above the resident size before it.
fn measure(
    repeat: usize,
    mut step: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<(f64, usize, f64)> {
    // Resetting the peak is a Linux facility; elsewhere the peak reads 0.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = resident("VmRSS");
    let mut best = f64::INFINITY;
    let mut loss = 0.0;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        loss = step()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((best, resident("VmHWM").saturating_sub(before), loss))
}

/// A shape's name and its sizes (B, T, U, V).
pub type NamedSizes = (String, (usize, usize, usize, usize));

/// Times both ways on each of `shapes` (B, T, U, V) with H = `hidden`, in `F`, and prints a table.
pub fn run<F: JointFloat>(
    shapes: &[NamedSizes],
    hidden: usize,
    threads: usize,
    repeat: usize,
) -> anyhow::Result<ExitCode> {
    let options = Options {
        reduction: Reduction::Mean,
        threads,
        ..Options::default()
    };
    println!(
        "rnnt bench --joint {hidden}: {}, {} thread(s); best of {repeat} forward + backward; peak \
         memory above the inputs",
        F::DTYPE,
        rnnt::internals::run_in_pool(threads, rayon::current_num_threads)?
    );
    println!(
        "{:<22} {:>11} {:>11} {:>9} {:>13} {:>13}",
        "shape (B,T,U,V)", "fused s", "unfused s", "speedup", "fused MB", "unfused MB"
    );
    for (name, shape) in shapes {
        let inputs = Inputs::<F>::new(*shape, hidden);
        let (fused_s, fused_bytes, fused_loss) = measure(repeat, || fused(&inputs, &options))?;
        let (unfused_s, unfused_bytes, unfused_loss) =
            measure(repeat, || unfused(&inputs, &options))?;
        let agree = (fused_loss - unfused_loss).abs() <= 1e-3 * unfused_loss.abs().max(1.0);
        anyhow::ensure!(
            agree,
            "{name}: fused loss {fused_loss} but unfused {unfused_loss}"
        );
        println!(
            "{name:<22} {fused_s:>11.4} {unfused_s:>11.4} {:>8.2}x {:>13.1} {:>13.1}",
            unfused_s / fused_s,
            fused_bytes as f64 / 1e6,
            unfused_bytes as f64 / 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}
