//! Turns a case read from .npz into the loss's borrowed input and runs the loss (or the
//! alignment) on it, whatever the stored dtype; and the command-line arguments that name a case.

use std::path::PathBuf;

use ndarray::{Array4, ArrayD, ArrayView, Dimension, Ix2, Ix4, IxDyn};
use rnnt::{Float, LossInput, Options, ScoresDim, Targets};
use rnnt_cases::{read_case, read_case_as, Case, Labels, LossResult, Scores};

/// The arguments of every command that reads one case: the file, its blank and input mode.
#[derive(Debug, clap::Args)]
pub struct CaseArgs {
    /// Input .npz: `logits` (or `log_probs`; `rnnt loss` also takes them packed, 2-D
    /// (ΣT_b·(U_b+1), V)), `targets` (B, U) padded or (ΣU_b,) packed, `logit_lengths` (B,),
    /// `target_lengths` (B,), optionally `blank`.
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
        let (mode, options) = self.mode_and_options(&case);
        Ok((case, mode, options))
    }

    /// As [`CaseArgs::read`], with scores of any rank (4-D padded or 2-D packed).
    pub fn read_any_rank(&self) -> anyhow::Result<(Case<IxDyn>, Mode, Options)> {
        let case = read_case_as::<IxDyn>(&self.input)?;
        let (mode, options) = self.mode_and_options(&case);
        Ok((case, mode, options))
    }

    /// The mode and options these arguments set for `case`.
    fn mode_and_options<D: Dimension>(&self, case: &Case<D>) -> (Mode, Options) {
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
        (mode, options)
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
    pub fn scores<D: Dimension>(self, case: &Case<D>) -> anyhow::Result<&Scores<D>> {
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

/// Borrows `scores` (padded or packed, as `D` says) and the integer arrays of `case` as a loss
/// input.
pub fn loss_input<'a, F, D: ScoresDim, E: Dimension>(
    case: &'a Case<E>,
    scores: ArrayView<'a, F, D>,
) -> LossInput<'a, F, i64, D> {
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

/// Runs the fast loss on `scores` of any rank — (B, T, U+1, V) padded or (ΣT_b·(U_b+1), V)
/// packed — in their stored dtype, and widens the result to f64 (the gradient of their shape).
pub fn fast_loss_any_rank(
    case: &Case<IxDyn>,
    scores: &Scores<IxDyn>,
    options: &Options,
    name: &str,
) -> anyhow::Result<LossResult<IxDyn>> {
    fn typed<F: Float, D: ScoresDim>(
        case: &Case<IxDyn>,
        scores: ArrayView<'_, F, D>,
        options: &Options,
    ) -> rnnt::Result<LossResult<IxDyn>> {
        let out = rnnt::loss_and_grad(&loss_input(case, scores), options)?;
        Ok(LossResult {
            losses: out.losses.into(),
            loss: out.loss,
            grad: out.grad.mapv(Float::to_f64).into_dyn(),
        })
    }
    fn ranked<F: Float>(
        case: &Case<IxDyn>,
        scores: &ArrayD<F>,
        options: &Options,
        name: &str,
    ) -> anyhow::Result<LossResult<IxDyn>> {
        Ok(match scores.ndim() {
            4 => typed(case, scores.view().into_dimensionality::<Ix4>()?, options)?,
            2 => typed(case, scores.view().into_dimensionality::<Ix2>()?, options)?,
            n => anyhow::bail!(
                "`{name}` has {n} dimensions: expected 4, (B, T, U+1, V) padded, or 2, \
                 (sum of T_b*(U_b+1), V) packed"
            ),
        })
    }
    match scores {
        Scores::F32(scores) => ranked(case, scores, options, name),
        Scores::F64(scores) => ranked(case, scores, options, name),
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
