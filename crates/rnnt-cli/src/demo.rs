//! `rnnt demo`: the seed notebook's worked examples, its random batch from logits and from
//! log-probs, the gradient checked against the scalar reference, and a speed comparison.

use std::process::ExitCode;
use std::time::Instant;

use ndarray::{Array1, Array2, Array4, Axis};
use rnnt::{Options, Reduction};
use rnnt_cases::synthetic::{self, Shape};
use rnnt_cases::{Case, Labels, Scores};

use crate::case_input::{fast_loss, reference_loss};

/// Arguments of `rnnt demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CPU threads for the speed comparison (0: RNNT_NUM_THREADS, else every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Runs `rnnt demo`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    worked_example_1()?;
    worked_example_2()?;
    let gradient_ok = random_batch()?;
    speed(args.threads)?;
    Ok(if gradient_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A single-item case from (T, U+1, V) scores.
fn one_item(scores: Array4<f64>, labels: &[i64], blank: i64) -> Case {
    let (_, frames, _, _) = scores.dim();
    Case {
        logits: Some(Scores::F64(scores)),
        log_probs: None,
        targets: Labels::Padded(
            Array2::from_shape_vec((1, labels.len()), labels.to_vec()).unwrap(),
        ),
        logit_lengths: Array1::from(vec![frames as i64]),
        target_lengths: Array1::from(vec![labels.len() as i64]),
        blank: Some(blank),
        truth: None,
    }
}

fn loss_of(case: &Case, fused_log_softmax: bool) -> anyhow::Result<f64> {
    let options = Options {
        blank: case.blank.unwrap_or(-1),
        reduction: Reduction::Sum,
        fused_log_softmax,
        ..Options::default()
    };
    let scores = case.logits.as_ref().expect("demo cases hold scores");
    Ok(fast_loss(case, scores, &options)?.loss)
}

/// Near one-hot probabilities: the lattice has one likely path, so the loss is about the
/// probability mass that leaks off it.
fn worked_example_1() -> anyhow::Result<()> {
    println!("1. Near one-hot probabilities (T=3, U=2, V=3: labels a=0, b=1, blank=2)");
    println!("   Each node gives its likely symbol probability 1-2e and the other two e:");
    println!("   a at frame 1, b at frame 2, blank elsewhere. Loss = -log P(a b | x).");
    // The likely symbol of node (t, u).
    let hot = [[0, 2, 2], [2, 1, 2], [2, 2, 2]];
    let mut previous = 0.0;
    for eps in [1e-6f64, 1e-5, 1e-4, 1e-3] {
        let log_probs = Array4::from_shape_fn((1, 3, 3, 3), |(_, t, u, k)| {
            if hot[t][u] == k {
                (1.0 - 2.0 * eps).ln()
            } else {
                f64::ln(eps)
            }
        });
        let loss = loss_of(&one_item(log_probs, &[0, 1], 2), false)?;
        println!("   e = {eps:.0e}: loss = {loss:.4e}");
        anyhow::ensure!(loss > previous, "the loss must grow with e");
        previous = loss;
    }
    println!("   The loss grows with e, and is about 1e-4 at e = 1e-5 (the seed's value).\n");
    Ok(())
}

/// Every probability ½: two paths of probability (½)³, so P = ¼ and the loss is ln 4.
fn worked_example_2() -> anyhow::Result<()> {
    println!("2. All probabilities 1/2 (T=2, U=1, V=2, one label)");
    let loss = loss_of(&one_item(Array4::zeros((1, 2, 2, 2)), &[0], 1), true)?;
    println!(
        "   Two paths, each (1/2)^3: loss = {loss:.4} (ln 4 = {:.4})\n",
        4f64.ln()
    );
    anyhow::ensure!((loss - 4f64.ln()).abs() < 1e-12, "expected ln 4");
    Ok(())
}

/// The seed's random batch, from logits and from log-probs, and its gradient vs the reference.
fn random_batch() -> anyhow::Result<bool> {
    println!("3. The seed's random batch: B=2, T=4, U=2, V=6, blank=5, frame lengths [4, 2]");
    let mut case = synthetic::batch(
        Shape {
            batch: 2,
            frames: 4,
            labels: 2,
            vocab: 6,
        },
        0,
    );
    case.targets = Labels::Padded(ndarray::array![[0, 1], [1, 0]]);
    case.logit_lengths = Array1::from(vec![4, 2]);
    case.target_lengths = Array1::from(vec![2, 2]);
    let logits = case
        .logits
        .as_ref()
        .expect("synthetic cases hold logits")
        .to_f64();
    let lse = logits.map_axis(Axis(3), |row| {
        let max = row.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
    });
    let log_probs = &logits - &lse.insert_axis(Axis(3));
    let options = |fused_log_softmax| Options {
        blank: 5,
        reduction: Reduction::None,
        fused_log_softmax,
        ..Options::default()
    };
    let from_logits = fast_loss(&case, &Scores::F64(logits.clone()), &options(true))?;
    let from_log_probs = fast_loss(&case, &Scores::F64(log_probs.clone()), &options(false))?;
    let from_log_probs_fused = fast_loss(&case, &Scores::F64(log_probs), &options(true))?;
    println!(
        "   losses from logits:                    {}",
        from_logits.losses
    );
    println!(
        "   losses from log-probs (used as given): {}",
        from_log_probs.losses
    );
    println!(
        "   losses from log-probs + log_softmax:   {}",
        from_log_probs_fused.losses
    );
    println!("   They agree: log_softmax is idempotent, so feeding log-probs to a loss that");
    println!("   normalises again changes nothing (no sign heuristic is involved).");
    let reference = reference_loss(&case, &Scores::F64(logits), &options(true))?;
    let error = from_logits
        .grad
        .iter()
        .zip(&reference.grad)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let ok = error < 1e-12;
    println!(
        "   gradient vs the scalar float64 reference: max |difference| = {error:.1e} ({})\n",
        if ok { "ok" } else { "MISMATCH" }
    );
    Ok(ok)
}

/// The fast path against the scalar reference on the S1 benchmark shape.
fn speed(threads: usize) -> anyhow::Result<()> {
    let shape = Shape {
        batch: 16,
        frames: 150,
        labels: 40,
        vocab: 29,
    };
    println!(
        "4. Speed, loss + gradient in float32 on (B, T, U, V) = ({}, {}, {}, {}):",
        shape.batch, shape.frames, shape.labels, shape.vocab
    );
    let case = synthetic::batch(shape, 0);
    let scores = case.logits.as_ref().expect("synthetic cases hold logits");
    let options = Options {
        threads,
        ..Options::default()
    };
    let time = |run: &dyn Fn() -> rnnt::Result<rnnt_cases::LossResult>| {
        let start = Instant::now();
        run().map(|out| (start.elapsed().as_secs_f64(), out.loss))
    };
    let (fast_s, fast_loss_value) = (0..3)
        .map(|_| time(&|| fast_loss(&case, scores, &options)))
        .collect::<rnnt::Result<Vec<_>>>()?
        .into_iter()
        .fold((f64::INFINITY, 0.0), |best, run| {
            if run.0 < best.0 {
                run
            } else {
                best
            }
        });
    let (reference_s, reference_loss_value) = time(&|| reference_loss(&case, scores, &options))?;
    println!(
        "   fast path {:.1} ms, scalar reference {:.1} ms: {:.0}x faster; losses {:.6} and {:.6}",
        fast_s * 1e3,
        reference_s * 1e3,
        reference_s / fast_s,
        fast_loss_value,
        reference_loss_value
    );
    println!("   (`rnnt bench` measures every benchmark shape against the memory floor.)");
    Ok(())
}
