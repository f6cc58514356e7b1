//! `forward` and `backward` over described arrays, and the state kept between them.

use ndarray::{Ix1, Ix2, Ix4};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rnnt::{Element, Index, LossInput, Options, Reduction, Targets};

use crate::array::{ArrayDesc, FloatDtype, IndexDtype};
use crate::errors::to_py_err;

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

/// The four arrays of a loss call as described by Python:
/// `(logits, targets, logit_lengths, target_lengths)`.
pub(crate) struct Described {
    logits: ArrayDesc,
    targets: ArrayDesc,
    logit_lengths: ArrayDesc,
    target_lengths: ArrayDesc,
}

impl From<DescribedTuple> for Described {
    fn from((logits, targets, logit_lengths, target_lengths): DescribedTuple) -> Self {
        Described {
            logits,
            targets,
            logit_lengths,
            target_lengths,
        }
    }
}

/// `(logits, targets, logit_lengths, target_lengths)` as passed from Python.
pub(crate) type DescribedTuple = (ArrayDesc, ArrayDesc, ArrayDesc, ArrayDesc);

impl Described {
    /// The dtypes to instantiate the loss with; targets and both lengths must share one integer
    /// dtype (the Python side converts mixed ones).
    pub(crate) fn dtypes(&self, input_name: &str) -> PyResult<(FloatDtype, IndexDtype)> {
        let float = self.logits.float_dtype(input_name)?;
        let index = self.targets.index_dtype("targets")?;
        for (desc, name) in [
            (&self.logit_lengths, "logit_lengths"),
            (&self.target_lengths, "target_lengths"),
        ] {
            if desc.index_dtype(name)? != index {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "{name} has dtype {} but targets has {}: use one integer dtype",
                    desc.dtype, self.targets.dtype
                )));
            }
        }
        Ok((float, index))
    }

    /// Views of the four arrays: 4-D logits, 1-D (packed) or 2-D (padded) targets, 1-D lengths.
    ///
    /// # Safety
    /// Every descriptor must describe live memory of its stated shape and dtype that is not
    /// written during `'a` (see [`ArrayDesc::view`]).
    pub(crate) unsafe fn input<'a, F: Element, I: Index>(
        &self,
        input_name: &str,
    ) -> PyResult<LossInput<'a, F, I>> {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            let targets = match self.targets.shape.len() {
                1 => Targets::Packed(self.targets.view::<I, Ix1>("targets", I::DTYPE)?),
                _ => Targets::Padded(self.targets.view::<I, Ix2>("targets", I::DTYPE)?),
            };
            Ok(LossInput {
                logits: self.logits.view::<F, Ix4>(input_name, F::DTYPE)?,
                targets,
                logit_lengths: self
                    .logit_lengths
                    .view::<I, Ix1>("logit_lengths", I::DTYPE)?,
                target_lengths: self
                    .target_lengths
                    .view::<I, Ix1>("target_lengths", I::DTYPE)?,
            })
        }
    }
}

/// The input and the gradient buffer of a call that writes one, checked: a float `grad` that
/// shares no byte with an input.
///
/// # Safety
/// As [`Described::input`]; in addition `grad` must describe a live buffer owned by the caller
/// and written by nothing else during `'a`.
unsafe fn input_and_grad<'a, F: Element, I: Index>(
    described: &Described,
    grad: &ArrayDesc,
    input_name: &str,
) -> PyResult<(LossInput<'a, F, I>, ndarray::ArrayViewMut4<'a, F>)> {
    grad.float_dtype("grad")?;
    check_disjoint(described, grad, input_name)?;
    // SAFETY: forwarded from this function's contract; the buffers are disjoint (checked above).
    unsafe {
        Ok((
            described.input::<F, I>(input_name)?,
            grad.view_mut::<F, Ix4>("grad", F::DTYPE)?,
        ))
    }
}

/// The result of `forward`: per-item losses and the O(B·T·U) lattice state that `backward`
/// needs (never a B·T·(U+1)·V buffer).
#[pyclass(frozen, module = "rnnt._rnnt")]
pub struct ForwardState {
    inner: rnnt::Forward,
    fused_log_softmax: bool,
    reduction: Reduction,
}

#[pymethods]
impl ForwardState {
    /// Per-item losses −log P(y_b|x_b), in float64.
    fn losses(&self) -> Vec<f64> {
        self.inner.losses().to_vec()
    }

    /// The loss after the reduction given to `forward` (the sum for "none").
    fn loss(&self) -> f64 {
        self.inner.loss()
    }

    /// d(reported loss)/d loss_b for every item, given d(objective)/d(reported loss) = `upstream`.
    fn item_weights(&self, upstream: f64) -> Vec<f64> {
        self.reduction
            .item_weights(upstream, self.inner.batch().batch_size)
    }
}

/// Validates `inputs` = `(logits, targets, logit_lengths, target_lengths)`, streams the logits
/// once and runs the α/β lattice (GIL released).
#[pyfunction]
#[pyo3(signature = (inputs, *, blank, reduction, fused_log_softmax, clamp, fastemit_lambda,
    zero_infinity))]
#[allow(clippy::too_many_arguments)] // the options of the Python API, one each
pub fn forward(
    py: Python<'_>,
    inputs: DescribedTuple,
    blank: i64,
    reduction: &str,
    fused_log_softmax: bool,
    clamp: f64,
    fastemit_lambda: f64,
    zero_infinity: bool,
) -> PyResult<ForwardState> {
    let options = loss_options(
        blank,
        reduction,
        fused_log_softmax,
        clamp,
        fastemit_lambda,
        zero_infinity,
    )?;
    let described = Described::from(inputs);
    let name = input_name(fused_log_softmax);
    let (float, index) = described.dtypes(name)?;
    let inner = with_dtypes!(float, index, |F, I| {
        // SAFETY: the Python caller describes live arrays that it keeps referenced and does not
        // write during this call.
        let input = unsafe { described.input::<F, I>(name)? };
        py.detach(|| rnnt::forward(&input, &options))
    })
    .map_err(to_py_err)?;
    Ok(ForwardState {
        inner,
        fused_log_softmax,
        reduction: options.reduction,
    })
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
    zero_infinity))]
#[allow(clippy::too_many_arguments)] // the options of the Python API, one each
pub fn loss_and_grad_into(
    py: Python<'_>,
    inputs: DescribedTuple,
    grad: ArrayDesc,
    blank: i64,
    reduction: &str,
    fused_log_softmax: bool,
    clamp: f64,
    fastemit_lambda: f64,
    zero_infinity: bool,
) -> PyResult<ForwardState> {
    let options = loss_options(
        blank,
        reduction,
        fused_log_softmax,
        clamp,
        fastemit_lambda,
        zero_infinity,
    )?;
    let described = Described::from(inputs);
    let name = input_name(fused_log_softmax);
    let (float, index) = described.dtypes(name)?;
    let inner = with_dtypes!(float, index, |F, I| {
        // SAFETY: as in `backward`.
        let (input, grad) = unsafe { input_and_grad::<F, I>(&described, &grad, name)? };
        py.detach(|| rnnt::loss_and_grad_into(&input, &options, grad))
    })
    .map_err(to_py_err)?;
    Ok(ForwardState {
        inner,
        fused_log_softmax,
        reduction: options.reduction,
    })
}

/// Writes d objective / d input into `grad` given d objective / d loss_b = `item_weights[b]`
/// (GIL released). `inputs` must describe the arrays `forward` saw.
#[pyfunction]
pub fn backward(
    py: Python<'_>,
    state: &ForwardState,
    inputs: DescribedTuple,
    item_weights: Vec<f64>,
    grad: ArrayDesc,
) -> PyResult<()> {
    let described = Described::from(inputs);
    let name = input_name(state.fused_log_softmax);
    let (float, index) = described.dtypes(name)?;
    with_dtypes!(float, index, |F, I| {
        // SAFETY: as in `forward`; in addition `grad` is a fresh buffer owned by the caller,
        // written by nothing else during the call (and checked not to overlap any input).
        let (input, grad) = unsafe { input_and_grad::<F, I>(&described, &grad, name)? };
        py.detach(|| rnnt::backward(&input, &state.inner, &item_weights, grad))
    })
    .map_err(to_py_err)
}

/// The name of the 4-D input in messages, by input mode (as the core names it).
pub(crate) fn input_name(fused_log_softmax: bool) -> &'static str {
    if fused_log_softmax {
        "logits"
    } else {
        "log_probs"
    }
}

/// Rejects a gradient buffer that shares bytes with an input: it is written while they are read.
fn check_disjoint(described: &Described, grad: &ArrayDesc, input_name: &str) -> PyResult<()> {
    let inputs = [
        (&described.logits, input_name),
        (&described.targets, "targets"),
        (&described.logit_lengths, "logit_lengths"),
        (&described.target_lengths, "target_lengths"),
    ];
    match inputs.iter().find(|(desc, _)| grad.overlaps(desc)) {
        Some((_, name)) => Err(PyValueError::new_err(format!(
            "grad overlaps {name} in memory: pass a fresh buffer"
        ))),
        None => Ok(()),
    }
}
