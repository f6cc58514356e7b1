//! `align`: best paths and occupancies of a batch lent by Python ([`rnnt::align()`]).

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rnnt::{Alignment, ArcKind, Options};

use crate::errors::to_py_err;
use crate::loss::{input_name, with_dtypes, with_rank, Blank, InputObjects, Inputs};
use crate::variant::{token_name, VariantArgs, VariantArrays};

/// The alignment of one item; the Python package turns it into NumPy arrays.
#[pyclass(frozen, module = "rnnt._rnnt")]
pub struct ItemAlignment {
    inner: Alignment,
}

#[pymethods]
impl ItemAlignment {
    /// The item's labels y[1..=U_b].
    fn labels(&self) -> Vec<u32> {
        self.inner.labels.clone()
    }

    /// T_b, the item's number of frames.
    fn frames(&self) -> usize {
        self.inner.emit_posterior.ncols()
    }

    /// The best path's (t, u) nodes from (0, 0) to (T_b−1, U_b); empty when P = 0.
    fn path(&self) -> Vec<(usize, usize)> {
        self.inner
            .best_path
            .as_ref()
            .map_or_else(Vec::new, |path| path.nodes.clone())
    }

    /// ln probability of the best path, final blank included; −inf when P = 0.
    fn score(&self) -> f64 {
        self.inner.score()
    }

    /// The frame at which the best path emits each label; empty when P = 0.
    fn emit_frames(&self) -> Vec<usize> {
        self.inner
            .best_path
            .as_ref()
            .map_or_else(Vec::new, |path| path.emit_frames.clone())
    }

    /// For each label the best path emits, (frame, duration of its arc); empty when P = 0.
    fn token_durations(&self) -> Vec<(usize, usize)> {
        self.arcs_of(ArcKind::Emit)
    }

    /// For each blank on the best path, final one included, (frame, duration); empty when P = 0.
    fn blank_durations(&self) -> Vec<(usize, usize)> {
        self.arcs_of(ArcKind::Blank)
    }

    /// ln P(y|x) over all paths.
    fn log_prob(&self) -> f64 {
        self.inner.log_p
    }

    /// γ(t, u), row-major (T_b, U_b+1).
    fn occupancy(&self) -> Vec<f64> {
        self.inner.occupancy.iter().copied().collect()
    }

    /// P(label j+1 emitted at frame t), row-major (U_b, T_b).
    fn emit_posterior(&self) -> Vec<f64> {
        self.inner.emit_posterior.iter().copied().collect()
    }

    /// (mean, standard deviation) of each label's emission frame.
    fn emit_frame_spreads(&self) -> Vec<(f64, f64)> {
        self.inner
            .emit_frame_spreads()
            .into_iter()
            .map(|spread| (spread.mean, spread.std_dev))
            .collect()
    }
}

impl ItemAlignment {
    /// (frame, duration) of each arc of `kind` on the best path.
    fn arcs_of(&self, kind: ArcKind) -> Vec<(usize, usize)> {
        self.inner.best_path.as_ref().map_or_else(Vec::new, |path| {
            path.arcs
                .iter()
                .zip(&path.durations)
                .zip(&path.nodes)
                .filter(|((&arc, _), _)| arc == kind)
                .map(|((_, &duration), &(t, _))| (t, duration))
                .collect()
        })
    }
}

/// Validates `inputs` = `(logits, targets, logit_lengths, target_lengths)` (TDT: and
/// `duration_logits`) as the loss does and aligns every item on the chosen topology (GIL
/// released).
#[pyfunction]
#[pyo3(signature = (inputs, *, blank, fused_log_softmax, rnnt_type="regular",
    terminal_blank=false, delay_penalty=0.0, sigma=0.0, big_blank_durations=None,
    durations=None))]
#[allow(clippy::too_many_arguments)] // the options of the Python API, one each
pub fn align<'py>(
    py: Python<'py>,
    inputs: Bound<'py, PyTuple>,
    blank: Blank,
    fused_log_softmax: bool,
    rnnt_type: &str,
    terminal_blank: bool,
    delay_penalty: f64,
    sigma: f64,
    big_blank_durations: Option<Vec<i64>>,
    durations: Option<Vec<i64>>,
) -> PyResult<Vec<ItemAlignment>> {
    let options = Options {
        blank: blank.0,
        fused_log_softmax,
        ..Options::default()
    };
    let variant = VariantArgs {
        rnnt_type,
        terminal_blank,
        delay_penalty,
        sigma,
        big_blank_durations,
        durations,
    }
    .variant()?;
    if !variant.is_standard() || inputs.len() != 4 {
        let name = token_name(&variant, fused_log_softmax);
        let arrays = VariantArrays::import(&inputs, name)?;
        let (float, index) = arrays.dtypes(name)?;
        let alignments = with_dtypes!(float, index, |F, I| {
            with_rank!(arrays.scores_rank(name)?, |D| {
                let input = arrays.input::<F, I, D>(name)?;
                py.detach(|| rnnt::variant::align(&input, &options, &variant))
            })
        })
        .map_err(to_py_err)?;
        return Ok(alignments
            .into_iter()
            .map(|inner| ItemAlignment { inner })
            .collect());
    }
    let inputs: InputObjects<'py> = inputs.extract()?;
    let name = input_name(fused_log_softmax);
    let inputs = Inputs::import(&inputs, name)?;
    let (float, index) = inputs.dtypes(name)?;
    let alignments = with_dtypes!(float, index, |F, I| {
        with_rank!(inputs.scores_rank(name)?, |D| {
            let input = inputs.input::<F, I, D>(name)?;
            py.detach(|| rnnt::align(&input, &options))
        })
    })
    .map_err(to_py_err)?;
    Ok(alignments
        .into_iter()
        .map(|inner| ItemAlignment { inner })
        .collect())
}
