//! Turns a case read from .npz into the loss's borrowed input and runs the loss (or the
//! alignment) on it, whatever the stored dtype; and the command-line arguments that name a case.

use std::path::PathBuf;

use ndarray::{Array4, ArrayView4};
use rnnt::{Float, LossInput, Options, Targets};
use rnnt_cases::{read_case, Case, Labels, LossResult, Scores};

/// The arguments of every command that reads one case: the file, its blank and input mode.
#[derive(Debug, clap::Args)]
pub struct CaseArgs {
    /// Input .npz: `logits` (or `log_probs`), `targets` (B, U) padded or (ΣU_b,) packed,
    /// `logit_lengths` (B,), `target_lengths` (B,), optionally `blank`.
    pub input: PathBuf,
    /// Blank id; negative counts from the end of the vocabulary. Overrides the file's `blank`
    /// [default: the file's `blank`, else -1].
    #[arg(long, allow_negative_numbers = true)]
    pub blank: Option<i64>,
    /// Read `log_probs` instead of `logits` (used as they are: no log_softmax is applied).
    #[arg(long)]
    pub log_probs: bool,
    /// CPU threads (0: RNNT_NUM_THREADS, else every core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl CaseArgs {
    /// Reads the case, and gives the array the mode reads and the options these arguments set
    /// (blank, input mode, threads; the rest at their defaults).
    pub fn read(&self) -> anyhow::Result<(Case, Mode, Options)> {
        let case = read_case(&self.input)?;
        let mode = if self.log_probs {
            Mode::LogProbs
        } else {
            Mode::Logits
        };
        let options = Options {
            blank: self.blank.or(case.blank).unwrap_or(-1),
            fused_log_softmax: mode == Mode::Logits,
            threads: self.threads,
            ..Options::default()
        };
        Ok((case, mode, options))
    }
}

/// Which 4-D array of a case the loss reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `logits`, normalised inside the loss (`fused_log_softmax = true`).
    Logits,
    /// `log_probs`, used as they are (`fused_log_softmax = false`).
    LogProbs,
}

impl Mode {
    /// The array's name in the file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Logits => "logits",
            Mode::LogProbs => "log_probs",
        }
    }

    /// The array of `case` this mode reads, or an error naming the missing array.
    pub fn scores(self, case: &Case) -> anyhow::Result<&Scores> {
        match self {
            Mode::Logits => case.logits.as_ref(),
            Mode::LogProbs => case.log_probs.as_ref(),
        }
        .ok_or_else(|| anyhow::anyhow!("the file holds no `{}` array", self.name()))
    }

    /// The truth gradient of `case` for this mode, if stored.
    pub fn truth_grad(self, case: &Case) -> Option<&Array4<f64>> {
        case.truth.as_ref().map(|truth| match self {
            Mode::Logits => &truth.grad_logits,
            Mode::LogProbs => &truth.grad_log_probs,
        })
    }
}

/// Borrows `scores` and the integer arrays of `case` as a loss input.
pub fn loss_input<'a, F>(case: &'a Case, scores: ArrayView4<'a, F>) -> LossInput<'a, F, i64> {
    LossInput {
        logits: scores,
        targets: match &case.targets {
            Labels::Padded(padded) => Targets::Padded(padded.view()),
            Labels::Packed(packed) => Targets::Packed(packed.view()),
        },
        logit_lengths: case.logit_lengths.view(),
        target_lengths: case.target_lengths.view(),
    }
}

/// Runs the fast loss on `scores` (in their stored dtype) and widens the result to f64.
pub fn fast_loss(case: &Case, scores: &Scores, options: &Options) -> rnnt::Result<LossResult> {
    fn typed<F: Float>(
        case: &Case,
        scores: &Array4<F>,
        options: &Options,
    ) -> rnnt::Result<LossResult> {
        let out = rnnt::loss_and_grad(&loss_input(case, scores.view()), options)?;
        Ok(LossResult {
            losses: out.losses.into(),
            loss: out.loss,
            grad: out.grad.mapv(Float::to_f64),
        })
    }
    match scores {
        Scores::F32(scores) => typed(case, scores, options),
        Scores::F64(scores) => typed(case, scores, options),
    }
}

/// Runs the scalar float64 reference on `scores`.
pub fn reference_loss(case: &Case, scores: &Scores, options: &Options) -> rnnt::Result<LossResult> {
    fn typed<F: Float>(
        case: &Case,
        scores: &Array4<F>,
        options: &Options,
    ) -> rnnt::Result<LossResult> {
        let out = rnnt::reference::loss_and_grad(&loss_input(case, scores.view()), options)?;
        Ok(LossResult {
            losses: out.losses.into(),
            loss: out.loss,
            grad: out.grad,
        })
    }
    match scores {
        Scores::F32(scores) => typed(case, scores, options),
        Scores::F64(scores) => typed(case, scores, options),
    }
}

/// Aligns every item of `case` on `scores` (in their stored dtype): best paths and occupancies.
pub fn fast_align(
    case: &Case,
    scores: &Scores,
    options: &Options,
) -> rnnt::Result<Vec<rnnt::Alignment>> {
    match scores {
        Scores::F32(scores) => rnnt::align(&loss_input(case, scores.view()), options),
        Scores::F64(scores) => rnnt::align(&loss_input(case, scores.view()), options),
    }
}
