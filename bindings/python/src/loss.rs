//! `forward` and `backward` over arrays lent through DLPack, and the state kept between them.

use ndarray::{Ix1, Ix2};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rnnt::{LossInput, Options, Reduction, ScoresDim, Targets};

use crate::array::{Array, FloatDtype, IndexDtype, Scalar};
use crate::errors::to_py_err;
use crate::variant::{token_name, GradArrays, VariantArgs, VariantArrays};

/// Runs `$body` with `$f` bound to the float type of `$float` and `$i` to the integer type of
/// `$index`: one generic body, instantiated for every accepted pair of dtypes.
macro_rules! with_dtypes {
    ($float:expr, $index:expr, |$f:ident, $i:ident| $body:block) => {{
        // Named here so that the macro also expands in modules that do not import them.
        use $crate::array::{FloatDtype, IndexDtype};
        use half::{bf16, f16};
        match ($float, $index) {
            (FloatDtype::F32, IndexDtype::I32) => with_dtypes!(@ $f = f32, $i = i32, $body),
            (FloatDtype::F32, IndexDtype::I64) => with_dtypes!(@ $f = f32, $i = i64, $body),
            (FloatDtype::F64, IndexDtype::I32) => with_dtypes!(@ $f = f64, $i = i32, $body),
            (FloatDtype::F64, IndexDtype::I64) => with_dtypes!(@ $f = f64, $i = i64, $body),
            (FloatDtype::F16, IndexDtype::I32) => with_dtypes!(@ $f = f16, $i = i32, $body),
            (FloatDtype::F16, IndexDtype::I64) => with_dtypes!(@ $f = f16, $i = i64, $body),
            (FloatDtype::BF16, IndexDtype::I32) => with_dtypes!(@ $f = bf16, $i = i32, $body),
            (FloatDtype::BF16, IndexDtype::I64) => with_dtypes!(@ $f = bf16, $i = i64, $body),
        }
    }};
    (@ $f:ident = $ft:ty, $i:ident = $it:ty, $body:block) => {{
        type $f = $ft;
        type $i = $it;
        $body
    }};
}
pub(crate) use with_dtypes;

/// Runs `$body` with `$d` bound to the rank of the scores, which says their layout: `Ix2` for
/// 2-D (packed) scores, `Ix4` otherwise (padded; see [`Inputs::scores_rank`]).
macro_rules! with_rank {
    ($rank:expr, |$d:ident| $body:block) => {{
        if $rank == 2 {
            type $d = ndarray::Ix2;
            $body
        } else {
            type $d = ndarray::Ix4;
            $body
        }
    }};
}
pub(crate) use with_rank;

/// The four arrays of a loss call, lent by Python through DLPack:
/// `(logits, targets, logit_lengths, target_lengths)`.
pub(crate) struct Inputs {
    logits: Array,
    targets: Array,
    logit_lengths: Array,
    target_lengths: Array,
}

/// `(logits, targets, logit_lengths, target_lengths)` as passed from Python: NumPy arrays, torch
/// CPU tensors or DLPack capsules.
pub(crate) type InputObjects<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

impl Inputs {
    /// Imports the four arrays (see [`Array::import`]); the 4-D one is called `input_name` in
    /// messages.
    pub(crate) fn import(objects: &InputObjects<'_>, input_name: &str) -> PyResult<Inputs> {
        let (logits, targets, logit_lengths, target_lengths) = objects;
        Ok(Inputs {
            logits: Array::import(logits, input_name)?,
            targets: Array::import(targets, "targets")?,
            logit_lengths: Array::import(logit_lengths, "logit_lengths")?,
            target_lengths: Array::import(target_lengths, "target_lengths")?,
        })
    }

    /// The dtypes to instantiate the loss with; targets and both lengths must share one integer
    /// dtype (the Python side converts mixed ones).
    pub(crate) fn dtypes(&self, input_name: &str) -> PyResult<(FloatDtype, IndexDtype)> {
        let float = self.logits.float_dtype(input_name)?;
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

    /// The number of axes of the scores (named `input_name`): 4 padded, 2 packed; any other
    /// is a `ValueError`.
    pub(crate) fn scores_rank(&self, input_name: &str) -> PyResult<usize> {
        match self.logits.shape() {
            shape if shape.len() == 4 || shape.len() == 2 => Ok(shape.len()),
            shape => Err(PyValueError::new_err(format!(
                "{input_name} has {} dimensions (shape {shape:?}): expected 4, (B, T, U+1, V) \
                 padded, or 2, (sum of T_b*(U_b+1), V) packed",
                shape.len()
            ))),
        }
    }

    /// Views of the four arrays: 4-D (padded) or 2-D (packed) logits, as `D` says, 1-D (packed)
    /// or 2-D (padded) targets, 1-D lengths.
    pub(crate) fn input<F: Scalar, I: Scalar, D: ScoresDim>(
        &self,
        input_name: &str,
    ) -> PyResult<LossInput<'_, F, I, D>> {
        let targets = match self.targets.shape().len() {
            1 => Targets::Packed(self.targets.view::<I, Ix1>("targets")?),
            _ => Targets::Padded(self.targets.view::<I, Ix2>("targets")?),
        };
        Ok(LossInput {
            logits: self.logits.view::<F, D>(input_name)?,
            targets,
            logit_lengths: self.logit_lengths.view::<I, Ix1>("logit_lengths")?,
            target_lengths: self.target_lengths.view::<I, Ix1>("target_lengths")?,
        })
    }

    /// The input and the gradient buffer of a call that writes one, checked: a float `grad` that
    /// shares no byte with an input.
    fn input_and_grad<'a, F: Scalar, I: Scalar, D: ScoresDim>(
        &'a self,
        grad: &'a mut Array,
        input_name: &str,
    ) -> PyResult<InputAndGrad<'a, F, I, D>> {
        grad.float_dtype("grad")?;
        self.check_disjoint(grad, input_name)?;
        Ok((
            self.input::<F, I, D>(input_name)?,
            grad.view_mut::<F, D>("grad")?,
        ))
    }

    /// Rejects a gradient buffer that shares bytes with an input: it is written while they are
    /// read.
    fn check_disjoint(&self, grad: &Array, input_name: &str) -> PyResult<()> {
        let inputs = [
            (&self.logits, input_name),
            (&self.targets, "targets"),
            (&self.logit_lengths, "logit_lengths"),
            (&self.target_lengths, "target_lengths"),
        ];
        match inputs.iter().find(|(array, _)| grad.overlaps(array)) {
            Some((_, name)) => Err(PyValueError::new_err(format!(
                "grad overlaps {name} in memory: pass a fresh buffer"
            ))),
            None => Ok(()),
        }
    }
}

/// A loss input and the gradient buffer of its shape.
type InputAndGrad<'a, F, I, D> = (LossInput<'a, F, I, D>, ndarray::ArrayViewMut<'a, F, D>);

/// The result of `forward`: per-item losses and the O(B·T·U) lattice state that `backward`
/// needs (never a B·T·(U+1)·V buffer).
#[pyclass(frozen, module = "rnnt._rnnt")]
pub struct ForwardState {
    inner: Kept,
    fused_log_softmax: bool,
    reduction: Reduction,
}

/// The core's forward result: of the standard loss, or of a variant.
enum Kept {
    /// `rnnt::forward`.
    Standard(rnnt::Forward),
    /// `rnnt::variant::forward`.
    Variant(rnnt::VariantForward),
}

impl Kept {
    /// Per-item losses.
    fn losses(&self) -> &[f64] {
        match self {
            Kept::Standard(f) => f.losses(),
            Kept::Variant(f) => f.losses(),
        }
    }
}

#[pymethods]
impl ForwardState {
    /// Per-item losses −log P(y_b|x_b), in float64.
    fn losses(&self) -> Vec<f64> {
        self.inner.losses().to_vec()
    }

    /// The loss after the reduction given to `forward` (the sum for "none").
    fn loss(&self) -> f64 {
        self.reduction.reduce(self.inner.losses())
    }

    /// d(reported loss)/d loss_b for every item, given d(objective)/d(reported loss) = `upstream`.
    fn item_weights(&self, upstream: f64) -> Vec<f64> {
        self.reduction
            .item_weights(upstream, self.inner.losses().len())
    }
}

/// Validates `inputs` = `(logits, targets, logit_lengths, target_lengths)`, streams the logits
/// once and runs the α/β lattice (GIL released).
#[pyfunction]
#[pyo3(signature = (inputs, *, blank, reduction, fused_log_softmax, clamp, fastemit_lambda,
    zero_infinity, rnnt_type="regular", terminal_blank=false, delay_penalty=0.0, sigma=0.0,
    big_blank_durations=None, durations=None))]
#[allow(clippy::too_many_arguments)] // the options of the Python API, one each
pub fn forward<'py>(
    py: Python<'py>,
    inputs: Bound<'py, PyTuple>,
    blank: Blank,
    reduction: &str,
    fused_log_softmax: bool,
    clamp: f64,
    fastemit_lambda: f64,
    zero_infinity: bool,
    rnnt_type: &str,
    terminal_blank: bool,
    delay_penalty: f64,
    sigma: f64,
    big_blank_durations: Option<Vec<i64>>,
    durations: Option<Vec<i64>>,
) -> PyResult<ForwardState> {
    let options = loss_options(
        blank.0,
        reduction,
        fused_log_softmax,
        clamp,
        fastemit_lambda,
        zero_infinity,
    )?;
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
        let inner = with_dtypes!(float, index, |F, I| {
            with_rank!(arrays.scores_rank(name)?, |D| {
                let input = arrays.input::<F, I, D>(name)?;
                py.detach(|| rnnt::variant::forward(&input, &options, &variant))
            })
        })
        .map_err(to_py_err)?;
        return Ok(ForwardState {
            inner: Kept::Variant(inner),
            fused_log_softmax,
            reduction: options.reduction,
        });
    }
    let inputs: InputObjects<'py> = inputs.extract()?;
    let name = input_name(fused_log_softmax);
    let inputs = Inputs::import(&inputs, name)?;
    let (float, index) = inputs.dtypes(name)?;
    let inner = with_dtypes!(float, index, |F, I| {
        with_rank!(inputs.scores_rank(name)?, |D| {
            let input = inputs.input::<F, I, D>(name)?;
            py.detach(|| rnnt::forward(&input, &options))
        })
    })
    .map_err(to_py_err)?;
    Ok(ForwardState {
        inner: Kept::Standard(inner),
        fused_log_softmax,
        reduction: options.reduction,
    })
}

/// The blank id, any Python integer: one outside `i64` is a `ValueError` (the core then rejects
/// any id outside the vocabulary) rather than an `OverflowError`.
pub(crate) struct Blank(pub(crate) i64);

impl<'a, 'py> FromPyObject<'a, 'py> for Blank {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        obj.extract::<i64>().map(Blank).map_err(|error| {
            if error.is_instance_of::<PyOverflowError>(obj.py()) {
                PyValueError::new_err(format!("blank = {} is out of range", obj.to_owned()))
            } else {
                error
            }
        })
    }
}

/// The core's options from the Python API's keywords.
fn loss_options(
    blank: i64,
    reduction: &str,
    fused_log_softmax: bool,
    clamp: f64,
    fastemit_lambda: f64,
    zero_infinity: bool,
) -> PyResult<Options> {
    Ok(Options {
        blank,
        reduction: reduction.parse().map_err(to_py_err)?,
        fused_log_softmax,
        clamp,
        fastemit_lambda,
        zero_infinity,
        ..Options::default()
    })
}

/// `forward` and `backward` of the reported (reduced) loss in one call (GIL released), the
/// gradient written into `grad` (a fresh C-contiguous buffer of the input's shape and dtype):
/// where the gradient stays in cache, the softmax terms are kept in `grad` between the passes
/// instead of computed twice ([`rnnt::loss_and_grad_into`]).
#[pyfunction]
#[pyo3(signature = (inputs, grad, *, blank, reduction, fused_log_softmax, clamp, fastemit_lambda,
    zero_infinity, rnnt_type="regular", terminal_blank=false, delay_penalty=0.0, sigma=0.0,
    big_blank_durations=None, durations=None, duration_grad=None))]
#[allow(clippy::too_many_arguments)] // the options of the Python API, one each
pub fn loss_and_grad_into<'py>(
    py: Python<'py>,
    inputs: Bound<'py, PyTuple>,
    grad: Bound<'py, PyAny>,
    blank: Blank,
    reduction: &str,
    fused_log_softmax: bool,
    clamp: f64,
    fastemit_lambda: f64,
    zero_infinity: bool,
    rnnt_type: &str,
    terminal_blank: bool,
    delay_penalty: f64,
    sigma: f64,
    big_blank_durations: Option<Vec<i64>>,
    durations: Option<Vec<i64>>,
    duration_grad: Option<Bound<'py, PyAny>>,
) -> PyResult<ForwardState> {
    let options = loss_options(
        blank.0,
        reduction,
        fused_log_softmax,
        clamp,
        fastemit_lambda,
        zero_infinity,
    )?;
    let variant = VariantArgs {
        rnnt_type,
        terminal_blank,
        delay_penalty,
        sigma,
        big_blank_durations,
        durations,
    }
    .variant()?;
    if !variant.is_standard() || inputs.len() != 4 || duration_grad.is_some() {
        let name = token_name(&variant, fused_log_softmax);
        let arrays = VariantArrays::import(&inputs, name)?;
        let mut grads = GradArrays::import(&grad, duration_grad.as_ref(), &arrays, name)?;
        let (float, index) = arrays.dtypes(name)?;
        let inner = with_dtypes!(float, index, |F, I| {
            with_rank!(arrays.scores_rank(name)?, |D| {
                let input = arrays.input::<F, I, D>(name)?;
                let grads = grads.views::<F, D>()?;
                py.detach(|| rnnt::variant::loss_and_grad_into(&input, &options, &variant, grads))
            })
        })
        .map_err(to_py_err)?;
        return Ok(ForwardState {
            inner: Kept::Variant(inner),
            fused_log_softmax,
            reduction: options.reduction,
        });
    }
    let inputs: InputObjects<'py> = inputs.extract()?;
    let name = input_name(fused_log_softmax);
    let inputs = Inputs::import(&inputs, name)?;
    let mut grad = Array::import(&grad, "grad")?;
    let (float, index) = inputs.dtypes(name)?;
    let inner = with_dtypes!(float, index, |F, I| {
        with_rank!(inputs.scores_rank(name)?, |D| {
            let (input, grad) = inputs.input_and_grad::<F, I, D>(&mut grad, name)?;
            py.detach(|| rnnt::loss_and_grad_into(&input, &options, grad))
        })
    })
    .map_err(to_py_err)?;
    Ok(ForwardState {
        inner: Kept::Standard(inner),
        fused_log_softmax,
        reduction: options.reduction,
    })
}

/// Writes d objective / d input into `grad` given d objective / d loss_b = `item_weights[b]`
/// (GIL released). `inputs` must describe the arrays `forward` saw; after a TDT forward,
/// `duration_grad` receives the duration head's gradient.
#[pyfunction]
#[pyo3(signature = (state, inputs, item_weights, grad, duration_grad=None))]
pub fn backward<'py>(
    py: Python<'py>,
    state: &ForwardState,
    inputs: Bound<'py, PyTuple>,
    item_weights: Vec<f64>,
    grad: Bound<'py, PyAny>,
    duration_grad: Option<Bound<'py, PyAny>>,
) -> PyResult<()> {
    let forward = match &state.inner {
        Kept::Variant(forward) => forward,
        Kept::Standard(forward) => {
            if duration_grad.is_some() {
                return Err(PyValueError::new_err(
                    "duration_grad is given but forward was not a TDT call",
                ));
            }
            return standard_backward(py, state, forward, &inputs.extract()?, item_weights, grad);
        }
    };
    let name = token_name(forward.variant(), state.fused_log_softmax);
    let arrays = VariantArrays::import(&inputs, name)?;
    let mut grads = GradArrays::import(&grad, duration_grad.as_ref(), &arrays, name)?;
    let (float, index) = arrays.dtypes(name)?;
    with_dtypes!(float, index, |F, I| {
        with_rank!(arrays.scores_rank(name)?, |D| {
            let input = arrays.input::<F, I, D>(name)?;
            let grads = grads.views::<F, D>()?;
            py.detach(|| rnnt::variant::backward(&input, forward, &item_weights, grads))
        })
    })
    .map_err(to_py_err)
}

/// `backward` after a standard forward.
fn standard_backward(
    py: Python<'_>,
    state: &ForwardState,
    forward: &rnnt::Forward,
    inputs: &InputObjects<'_>,
    item_weights: Vec<f64>,
    grad: Bound<'_, PyAny>,
) -> PyResult<()> {
    let name = input_name(state.fused_log_softmax);
    let inputs = Inputs::import(inputs, name)?;
    let mut grad = Array::import(&grad, "grad")?;
    let (float, index) = inputs.dtypes(name)?;
    with_dtypes!(float, index, |F, I| {
        with_rank!(inputs.scores_rank(name)?, |D| {
            let (input, grad) = inputs.input_and_grad::<F, I, D>(&mut grad, name)?;
            py.detach(|| rnnt::backward(&input, forward, &item_weights, grad))
        })
    })
    .map_err(to_py_err)
}

/// The name of the scores in messages, by input mode (as the core names it).
pub(crate) fn input_name(fused_log_softmax: bool) -> &'static str {
    if fused_log_softmax {
        "logits"
    } else {
        "log_probs"
    }
}
