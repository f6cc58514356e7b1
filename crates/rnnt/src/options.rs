//! Loss options and the batch reduction.

use crate::error::{Error, Result};

/// How per-item losses are combined into the reported loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Keep one loss per item; gradients are those of the sum.
    None,
    /// Sum over the batch.
    Sum,
    /// Mean over the batch (torchaudio's default): the sum divided by B, not by target lengths.
    #[default]
    Mean,
}

impl Reduction {
    /// Reduces per-item losses to the reported scalar (`None` reports the sum, the quantity whose
    /// gradient is taken).
    pub fn reduce(self, losses: &[f64]) -> f64 {
        let sum: f64 = losses.iter().sum();
        match self {
            Reduction::None | Reduction::Sum => sum,
            Reduction::Mean => sum / losses.len().max(1) as f64,
        }
    }

    /// The per-item upstream gradient d(reported loss)/d loss_b, given d(objective)/d(reported
    /// loss) = `upstream` and a batch of `batch_size` items.
    pub fn item_weights(self, upstream: f64, batch_size: usize) -> Vec<f64> {
        let weight = match self {
            Reduction::None | Reduction::Sum => upstream,
            Reduction::Mean => upstream / batch_size.max(1) as f64,
        };
        vec![weight; batch_size]
    }
}

impl std::str::FromStr for Reduction {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Reduction::None),
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            other => Err(Error::Value(format!(
                "reduction = {other:?} is not one of \"none\", \"sum\", \"mean\""
            ))),
        }
    }
}

/// Options of the loss, with torchaudio's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Blank id; negative values count from the end of the vocabulary (−1 is the last symbol).
    pub blank: i64,
    /// How per-item losses are combined.
    pub reduction: Reduction,
    /// `true`: the input holds logits and log_softmax over V is applied inside the loss.
    /// `false`: the input already holds log-probabilities, used as they are; the gradient is then
    /// d loss / d log_probs with the log-probs treated as free inputs.
    pub fused_log_softmax: bool,
    /// Gradient clip (torchaudio semantics): when > 0, d loss_b / d input is clipped to
    /// [−clamp, clamp] before the upstream gradient is applied.
    pub clamp: f64,
    /// FastEmit regularisation λ (Yu et al. 2021): emission-arc gradient terms are scaled by
    /// (1 + λ); the reported loss stays −log P.
    pub fastemit_lambda: f64,
    /// Report impossible items (P = 0, loss +inf) as loss 0; their gradient is 0 either way.
    pub zero_infinity: bool,
    /// Worker threads for the CPU backend; 0 uses `RNNT_NUM_THREADS` or else every core.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            blank: -1,
            reduction: Reduction::Mean,
            fused_log_softmax: true,
            clamp: -1.0,
            fastemit_lambda: 0.0,
            zero_infinity: false,
            threads: 0,
        }
    }
}

impl Options {
    /// Checks the options that do not depend on the input.
    pub fn validate(&self) -> Result<()> {
        if self.clamp.is_nan() {
            return Err(Error::Value(
                "clamp = NaN: use a value <= 0 to disable clipping".into(),
            ));
        }
        if !self.fastemit_lambda.is_finite() || self.fastemit_lambda < 0.0 {
            return Err(Error::Value(format!(
                "fastemit_lambda = {} must be finite and >= 0",
                self.fastemit_lambda
            )));
        }
        Ok(())
    }

    /// The clip bound, `None` when clipping is off.
    pub fn clip_bound(&self) -> Option<f64> {
        (self.clamp > 0.0).then_some(self.clamp)
    }
}
