//! `rnnt loss IN.npz -o OUT.npz`: losses and gradient of one batch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rnnt::{Options, Reduction};
use rnnt_cases::write_result;

use crate::case_input::{fast_loss_any_rank, CaseArgs};

/// Arguments of `rnnt loss`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArgs,
    /// Output .npz: `losses` (B,), `loss` (after the reduction) and `grad` (d loss / d input, of
    /// the input's shape, padded or packed), all float64. Written only when the loss succeeds.
    #[arg(short, long)]
    output: PathBuf,
    /// How per-item losses are combined into `loss` (`none` reports their sum, and `grad` is the
    /// gradient of that sum).
    #[arg(long, default_value = "mean", value_parser = parse_reduction)]
    reduction: Reduction,
    /// FastEmit λ: scales emission-arc gradients by (1 + λ); the loss is unchanged.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    fastemit_lambda: f64,
    /// Clip each item's gradient to [-C, C] (torchaudio semantics); <= 0 disables it.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    clamp: f64,
    /// Report impossible items (probability 0, loss +inf) as loss 0.
    #[arg(long)]
    zero_infinity: bool,
    /// The lattice: regular, tdt, multiblank, modified or constrained. Anything but a plain
    /// regular call reads the variants' format (docs/variants-format.md): `logits` or,
    /// for tdt, `token_logits` and `duration_logits`; `durations`, `big_blank_durations`,
    /// `sigma`, `delay_penalty` from the .npz; writes `losses`, `loss` and `grad` (tdt:
    /// `grad_token_logits`, `grad_duration_logits`).
    #[arg(long, default_value = "regular")]
    variant: String,
    /// k2's delay penalty (overrides the .npz's `delay_penalty`).
    #[arg(long, allow_negative_numbers = true)]
    delay_penalty: Option<f64>,
    /// Undernormalisation σ (overrides the .npz's `sigma`).
    #[arg(long, allow_negative_numbers = true)]
    sigma: Option<f64>,
}

/// `rnnt loss` on a variant.
fn run_variant(args: &Args) -> anyhow::Result<ExitCode> {
    let (arrays, variant, options) = crate::variant_case::read_case(
        &args.case,
        &args.variant,
        (args.sigma, args.delay_penalty),
    )?;
    let options = Options {
        reduction: args.reduction,
        clamp: args.clamp,
        fastemit_lambda: args.fastemit_lambda,
        zero_infinity: args.zero_infinity,
        ..options
    };
    let out = crate::variant_case::run(&arrays, &variant, &options)?;
    let mut written = vec![
        (
            "losses",
            ndarray::Array1::from(out.losses.clone()).into_dyn(),
        ),
        ("loss", ndarray::arr0(out.loss).into_dyn()),
    ];
    match out.duration_grad {
        Some(d) => {
            written.push(("grad_token_logits", out.grad));
            written.push(("grad_duration_logits", d));
        }
        None => written.push(("grad", out.grad)),
    }
    rnnt_cases::variants::write_arrays(&args.output, &written)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "loss = {} ({} over B = {}) -> {}",
        out.loss,
        args.variant,
        out.losses.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_reduction(text: &str) -> Result<Reduction, String> {
    text.parse().map_err(|e: rnnt::Error| e.to_string())
}

/// Runs `rnnt loss`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.variant != "regular" || args.sigma.is_some() || args.delay_penalty.is_some() {
        return run_variant(args);
    }
    let (case, mode, options) = args.case.read_any_rank()?;
    let options = Options {
        reduction: args.reduction,
        clamp: args.clamp,
        fastemit_lambda: args.fastemit_lambda,
        zero_infinity: args.zero_infinity,
        ..options
    };
    let result = fast_loss_any_rank(&case, mode.scores(&case)?, &options, mode.name())?;
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
