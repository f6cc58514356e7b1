//! `rnnt loss IN.npz -o OUT.npz`: losses and gradient of one batch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rnnt::{Options, Reduction};
use rnnt_cases::{read_case, write_result};

use crate::case_input::{fast_loss, Mode};

/// Arguments of `rnnt loss`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input .npz: `logits` (or `log_probs`), `targets` (B, U) padded or (ΣU_b,) packed,
    /// `logit_lengths` (B,), `target_lengths` (B,), optionally `blank`.
    input: PathBuf,
    /// Output .npz: `losses` (B,), `loss` (after the reduction) and `grad` (d loss / d input),
    /// all float64. Written only when the loss succeeds.
    #[arg(short, long)]
    output: PathBuf,
    /// Blank id; negative counts from the end of the vocabulary. Overrides the file's `blank`
    /// [default: the file's `blank`, else -1].
    #[arg(long, allow_negative_numbers = true)]
    blank: Option<i64>,
    /// How per-item losses are combined into `loss` (`none` reports their sum, and `grad` is the
    /// gradient of that sum).
    #[arg(long, default_value = "mean", value_parser = parse_reduction)]
    reduction: Reduction,
    /// Read `log_probs` instead of `logits` (no log_softmax inside the loss).
    #[arg(long)]
    log_probs: bool,
    /// FastEmit λ: scales emission-arc gradients by (1 + λ); the loss is unchanged.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    fastemit_lambda: f64,
    /// Clip each item's gradient to [-C, C] (torchaudio semantics); <= 0 disables it.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    clamp: f64,
    /// Report impossible items (probability 0, loss +inf) as loss 0.
    #[arg(long)]
    zero_infinity: bool,
    /// CPU threads (0: RNNT_NUM_THREADS, else every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_reduction(text: &str) -> Result<Reduction, String> {
    text.parse().map_err(|e: rnnt::Error| e.to_string())
}

/// Runs `rnnt loss`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let case = read_case(&args.input)?;
    let mode = if args.log_probs {
        Mode::LogProbs
    } else {
        Mode::Logits
    };
    let options = Options {
        blank: args.blank.or(case.blank).unwrap_or(-1),
        reduction: args.reduction,
        fused_log_softmax: mode == Mode::Logits,
        clamp: args.clamp,
        fastemit_lambda: args.fastemit_lambda,
        zero_infinity: args.zero_infinity,
        threads: args.threads,
    };
    let result = fast_loss(&case, mode.scores(&case)?, &options)?;
    write_result(&args.output, &result)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "loss = {} ({:?} over B = {}) -> {}",
        result.loss,
        args.reduction,
        result.losses.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
