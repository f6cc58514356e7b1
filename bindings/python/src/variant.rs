//! The variants' path (`rnnt::variant`): TDT (a 5-tuple of inputs with the duration head),
//! multi-blank, k2's one-symbol-per-frame lattices, the delay penalty and σ. The heads and their
//! gradients may be strided views (NeMo's joint split in two); the core checks their rows.

use ndarray::{Ix1, Ix2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rnnt::{ScoresDim, Targets, Variant, VariantGrad, VariantInput};

use crate::array::{Array, Scalar};
use crate::errors::to_py_err;

/// The variant keywords of `forward`, `loss_and_grad_into` and `align`.
pub(crate) struct VariantArgs<'a> {
    /// "regular", "modified" or "constrained".
    pub rnnt_type: &'a str,
    /// optimized_transducer's terminal blank on "modified".
    pub terminal_blank: bool,
    /// k2's delay penalty.
    pub delay_penalty: f64,
    /// Undernormalisation.
    pub sigma: f64,
    /// Multi-blank's big blank durations.
    pub big_blank_durations: Option<Vec<i64>>,
    /// TDT's durations.
    pub durations: Option<Vec<i64>>,
}

impl VariantArgs<'_> {
    /// The core's variant.
    pub(crate) fn variant(&self) -> PyResult<Variant> {
        Variant::from_names(
            self.rnnt_type,
            self.terminal_blank,
            self.durations.as_deref(),
            self.big_blank_durations.as_deref(),
            (self.sigma, self.delay_penalty),
        )
        .map_err(to_py_err)
    }
}

/// The arrays of a variant call: the four of the standard loss and TDT's duration head.
pub(crate) struct VariantArrays {
    /// Token head, targets, lengths.
    pub logits: Array,
    targets: Array,
    logit_lengths: Array,
    target_lengths: Array,
    /// TDT's duration head.
    pub durations: Option<Array>,
}

impl VariantArrays {
    /// Imports a 4-tuple, or a 5-tuple whose last entry is the duration head.
    pub(crate) fn import(inputs: &Bound<'_, PyTuple>, token_name: &str) -> PyResult<Self> {
        let n = inputs.len();
        if n != 4 && n != 5 {
            return Err(PyValueError::new_err(format!(
                "inputs has {n} entries: expected (logits, targets, logit_lengths, \
                 target_lengths) or, for TDT, (token_logits, targets, logit_lengths, \
                 target_lengths, duration_logits)"
            )));
        }
        Ok(VariantArrays {
            logits: Array::import(&inputs.get_item(0)?, token_name)?,
            targets: Array::import(&inputs.get_item(1)?, "targets")?,
            logit_lengths: Array::import(&inputs.get_item(2)?, "logit_lengths")?,
            target_lengths: Array::import(&inputs.get_item(3)?, "target_lengths")?,
            durations: if n == 5 {
                Some(Array::import(&inputs.get_item(4)?, "duration_logits")?)
            } else {
                None
            },
        })
    }

    /// Every input array with its name, for the overlap checks.
    pub(crate) fn named<'a>(&'a self, token_name: &'a str) -> Vec<(&'a Array, &'a str)> {
        let mut all = vec![
            (&self.logits, token_name),
            (&self.targets, "targets"),
            (&self.logit_lengths, "logit_lengths"),
            (&self.target_lengths, "target_lengths"),
        ];
        if let Some(d) = &self.durations {
            all.push((d, "duration_logits"));
        }
        all
    }

    /// The targets' and lengths' integer dtype and the heads' float dtype.
    pub(crate) fn dtypes(
        &self,
        token_name: &str,
    ) -> PyResult<(crate::array::FloatDtype, crate::array::IndexDtype)> {
        let float = self.logits.float_dtype(token_name)?;
        if let Some(d) = &self.durations {
            if d.float_dtype("duration_logits")? != float {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "duration_logits has dtype {} but {token_name} has {}: use one dtype",
                    d.dtype_name(),
                    self.logits.dtype_name()
                )));
            }
        }
        let index = self.targets.index_dtype("targets")?;
        for (array, name) in [
            (&self.logit_lengths, "logit_lengths"),
            (&self.target_lengths, "target_lengths"),
        ] {
            if array.index_dtype(name)? != index {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "{name} has dtype {} but targets has {}: use one integer dtype",
                    array.dtype_name(),
                    self.targets.dtype_name()
                )));
            }
        }
        Ok((float, index))
    }

    /// The heads' rank: 4 padded, 2 packed.
    pub(crate) fn scores_rank(&self, token_name: &str) -> PyResult<usize> {
        match self.logits.shape().len() {
            rank @ (2 | 4) => Ok(rank),
            rank => Err(PyValueError::new_err(format!(
                "{token_name} has {rank} dimensions (shape {:?}): expected 4 (padded) or 2 \
                 (packed)",
                self.logits.shape()
            ))),
        }
    }

    /// Views of the arrays as the core's input.
    pub(crate) fn input<F: Scalar, I: Scalar, D: ScoresDim>(
        &self,
        token_name: &str,
    ) -> PyResult<VariantInput<'_, F, I, D>> {
        let targets = match self.targets.shape().len() {
            1 => Targets::Packed(self.targets.view::<I, Ix1>("targets")?),
            _ => Targets::Padded(self.targets.view::<I, Ix2>("targets")?),
        };
        Ok(VariantInput {
            logits: self.logits.view_strided::<F, D>(token_name)?,
            duration_logits: self
                .durations
                .as_ref()
                .map(|d| d.view_strided::<F, D>("duration_logits"))
                .transpose()?,
            targets,
            logit_lengths: self.logit_lengths.view::<I, Ix1>("logit_lengths")?,
            target_lengths: self.target_lengths.view::<I, Ix1>("target_lengths")?,
        })
    }
}

/// The gradient buffers of a variant call, checked to share no byte with an input (the two
/// gradients may interleave as the two heads of one tensor, but not overlap).
pub(crate) struct GradArrays {
    grad: Array,
    durations: Option<Array>,
}

impl GradArrays {
    /// Imports `grad` and `duration_grad`, checked against `inputs`.
    pub(crate) fn import(
        grad: &Bound<'_, PyAny>,
        duration_grad: Option<&Bound<'_, PyAny>>,
        inputs: &VariantArrays,
        token_name: &str,
    ) -> PyResult<Self> {
        let grad = Array::import(grad, "grad")?;
        let durations = duration_grad
            .map(|d| Array::import(d, "duration_grad"))
            .transpose()?;
        let mut outputs = vec![(&grad, "grad")];
        if let Some(d) = &durations {
            outputs.push((d, "duration_grad"));
        }
        for (out, out_name) in &outputs {
            out.float_dtype(out_name)?;
            if let Some((_, name)) = inputs
                .named(token_name)
                .into_iter()
                .find(|(a, _)| out.overlaps(a))
            {
                return Err(PyValueError::new_err(format!(
                    "{out_name} overlaps {name} in memory: pass a fresh buffer"
                )));
            }
        }
        if let Some(d) = &durations {
            if grad.overlaps(d) {
                return Err(PyValueError::new_err(
                    "grad and duration_grad overlap in memory: pass disjoint buffers (two \
                     column ranges of one tensor are fine)",
                ));
            }
        }
        Ok(GradArrays { grad, durations })
    }

    /// Writable views.
    pub(crate) fn views<F: Scalar, D: ScoresDim>(&mut self) -> PyResult<VariantGrad<'_, F, D>> {
        Ok(VariantGrad {
            logits: self.grad.view_mut_strided::<F, D>("grad")?,
            duration_logits: self
                .durations
                .as_mut()
                .map(|d| d.view_mut_strided::<F, D>("duration_grad"))
                .transpose()?,
        })
    }
}

/// The token head's name in messages.
pub(crate) fn token_name(variant: &Variant, fused_log_softmax: bool) -> &'static str {
    match (&variant.topology, fused_log_softmax) {
        (rnnt::Topology::Tdt { .. }, true) => "token_logits",
        (rnnt::Topology::Tdt { .. }, false) => "token_log_probs",
        (_, true) => "logits",
        (_, false) => "log_probs",
    }
}
