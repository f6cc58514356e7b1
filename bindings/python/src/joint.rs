//! `joint_loss`: the fused joiner and loss ([`rnnt::joint`]) over arrays lent through DLPack,
//! with the four gradients written into buffers the caller passes.

use ndarray::{Array as NdArray, ArrayViewMut, Dimension, Ix1, Ix2, Ix3};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use rnnt::joint::{self, JointFloat, JointInput};
use rnnt::{Index, Options, Targets};

use crate::array::{Array, FloatDtype, IndexDtype, Scalar};
use crate::errors::to_py_err;
use crate::loss::Blank;

/// `(encoder_out, predictor_out, weight, bias, targets, logit_lengths, target_lengths)` as passed
/// from Python (`bias` may be None).
type JointObjects<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Option<Bound<'py, PyAny>>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// The gradient buffers `(encoder_out, predictor_out, weight, bias)` as passed from Python.
type GradObjects<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Option<Bound<'py, PyAny>>,
);

/// The seven arrays of a fused call, imported.
struct JointArrays {
    encoder_out: Array,
    predictor_out: Array,
    weight: Array,
    bias: Option<Array>,
    targets: Array,
    logit_lengths: Array,
    target_lengths: Array,
}

/// The four gradient buffers, imported.
struct GradArrays {
    encoder_out: Array,
    predictor_out: Array,
    weight: Array,
    bias: Option<Array>,
}

impl JointArrays {
    fn import(objects: &JointObjects<'_>) -> PyResult<JointArrays> {
        let (encoder_out, predictor_out, weight, bias, targets, logit_lengths, target_lengths) =
            objects;
        Ok(JointArrays {
            encoder_out: Array::import(encoder_out, "encoder_out")?,
            predictor_out: Array::import(predictor_out, "predictor_out")?,
            weight: Array::import(weight, "weight")?,
            bias: bias
                .as_ref()
                .map(|b| Array::import(b, "bias"))
                .transpose()?,
            targets: Array::import(targets, "targets")?,
            logit_lengths: Array::import(logit_lengths, "logit_lengths")?,
            target_lengths: Array::import(target_lengths, "target_lengths")?,
        })
    }

    /// The floats' dtype (float32 or float64, one for all four) and the integers' (one for
    /// targets and both lengths).
    fn dtypes(&self) -> PyResult<(FloatDtype, IndexDtype)> {
        let float = match self.encoder_out.float_dtype("encoder_out")? {
            FloatDtype::F32 => FloatDtype::F32,
            FloatDtype::F64 => FloatDtype::F64,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "encoder_out has dtype {}: the fused joiner takes float32 or float64",
                    self.encoder_out.dtype_name()
                )))
            }
        };
        let floats = [
            (Some(&self.predictor_out), "predictor_out"),
            (Some(&self.weight), "weight"),
            (self.bias.as_ref(), "bias"),
        ];
        for (array, name) in floats {
            if let Some(array) = array {
                if array.dtype_name() != self.encoder_out.dtype_name() {
                    return Err(PyTypeError::new_err(format!(
                        "{name} has dtype {} but encoder_out has {}: use one float dtype",
                        array.dtype_name(),
                        self.encoder_out.dtype_name()
                    )));
                }
            }
        }
        let index = self.targets.index_dtype("targets")?;
        for (array, name) in [
            (&self.logit_lengths, "logit_lengths"),
            (&self.target_lengths, "target_lengths"),
        ] {
            if array.index_dtype(name)? != index {
                return Err(PyTypeError::new_err(format!(
                    "{name} has dtype {} but targets has {}: use one integer dtype",
                    array.dtype_name(),
                    self.targets.dtype_name()
                )));
            }
        }
        Ok((float, index))
    }

    /// Views of the arrays as the core's input.
    fn input<F: Scalar, I: Scalar>(&self, activation: &str) -> PyResult<JointInput<'_, F, I>> {
        let targets = match self.targets.shape().len() {
            1 => Targets::Packed(self.targets.view::<I, Ix1>("targets")?),
            _ => Targets::Padded(self.targets.view::<I, Ix2>("targets")?),
        };
        Ok(JointInput {
            encoder_out: self.encoder_out.view::<F, Ix3>("encoder_out")?,
            predictor_out: self.predictor_out.view::<F, Ix3>("predictor_out")?,
            weight: self.weight.view::<F, Ix2>("weight")?,
            bias: self
                .bias
                .as_ref()
                .map(|bias| bias.view::<F, Ix1>("bias"))
                .transpose()?,
            targets,
            logit_lengths: self.logit_lengths.view::<I, Ix1>("logit_lengths")?,
            target_lengths: self.target_lengths.view::<I, Ix1>("target_lengths")?,
            activation: activation.parse().map_err(to_py_err)?,
        })
    }

    /// Rejects a gradient buffer that shares bytes with an input or another buffer.
    fn check_disjoint(&self, grads: &GradArrays) -> PyResult<()> {
        let inputs = [
            (Some(&self.encoder_out), "encoder_out"),
            (Some(&self.predictor_out), "predictor_out"),
            (Some(&self.weight), "weight"),
            (self.bias.as_ref(), "bias"),
            (Some(&self.targets), "targets"),
            (Some(&self.logit_lengths), "logit_lengths"),
            (Some(&self.target_lengths), "target_lengths"),
        ];
        let outputs = [
            (Some(&grads.encoder_out), "grad_encoder_out"),
            (Some(&grads.predictor_out), "grad_predictor_out"),
            (Some(&grads.weight), "grad_weight"),
            (grads.bias.as_ref(), "grad_bias"),
        ];
        for (i, (output, out_name)) in outputs.iter().enumerate() {
            let Some(output) = output else { continue };
            let others = inputs.iter().chain(&outputs[i + 1..]);
            for (other, name) in others {
                if other.is_some_and(|other| output.overlaps(other)) {
                    return Err(PyValueError::new_err(format!(
                        "{out_name} overlaps {name} in memory: pass a fresh buffer"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Copies `source` into the buffer `target` (argument `name`), which must have its shape.
fn write<F: Scalar, D: Dimension>(
    source: &NdArray<F, D>,
    target: &mut Array,
    name: &str,
) -> PyResult<()> {
    let mut view: ArrayViewMut<'_, F, D> = target.view_mut::<F, D>(name)?;
    if view.shape() != source.shape() {
        return Err(PyValueError::new_err(format!(
            "{name} has shape {:?} but the gradient has {:?}",
            view.shape(),
            source.shape()
        )));
    }
    view.assign(source);
    Ok(())
}

/// The fused call in `F` and `I`: the per-item losses and the reported loss, the gradients
/// written into `grads` when given.
fn run<F: JointFloat + Scalar, I: Index + Scalar>(
    py: Python<'_>,
    arrays: &JointArrays,
    grads: Option<&mut GradArrays>,
    (activation, options, item_weights): (&str, &Options, Option<Vec<f64>>),
) -> PyResult<(Vec<f64>, f64)> {
    let input = arrays.input::<F, I>(activation)?;
    let Some(grads) = grads else {
        let state = py
            .detach(|| joint::forward(&input, options))
            .map_err(to_py_err)?;
        return Ok((state.losses().to_vec(), state.loss()));
    };
    if grads.bias.is_some() != arrays.bias.is_some() {
        return Err(PyValueError::new_err(
            "grad_bias must be given exactly when bias is",
        ));
    }
    let (losses, loss, result) = py
        .detach(|| {
            let state = joint::forward(&input, options)?;
            let weights = item_weights
                .unwrap_or_else(|| options.reduction.item_weights(1.0, state.losses().len()));
            let result = joint::backward(&input, &state, &weights)?;
            Ok::<_, rnnt::Error>((state.losses().to_vec(), state.loss(), result))
        })
        .map_err(to_py_err)?;
    write(
        &result.encoder_out,
        &mut grads.encoder_out,
        "grad_encoder_out",
    )?;
    write(
        &result.predictor_out,
        &mut grads.predictor_out,
        "grad_predictor_out",
    )?;
    write(&result.weight, &mut grads.weight, "grad_weight")?;
    if let (Some(source), Some(target)) = (&result.bias, &mut grads.bias) {
        write(source, target, "grad_bias")?;
    }
    Ok((losses, loss))
}

/// The fused joiner and RNN-T loss (GIL released): `arrays` = `(encoder_out, predictor_out,
/// weight, bias, targets, logit_lengths, target_lengths)`, `bias` None for none. Returns the
/// per-item losses and the reported loss; with `grads` = `(grad_encoder_out,
/// grad_predictor_out, grad_weight, grad_bias)` (fresh C-contiguous buffers of the inputs' shapes
/// and dtype; `grad_bias` None when `bias` is), writes there the gradients of the reported loss,
/// or, with `item_weights`, of Σ_b item_weights[b] · loss_b.
#[pyfunction]
#[pyo3(signature = (arrays, grads, *, activation, blank, reduction, clamp, fastemit_lambda,
    zero_infinity, item_weights))]
#[allow(clippy::too_many_arguments)] // the options of the Python API, one each
pub fn joint_loss<'py>(
    py: Python<'py>,
    arrays: JointObjects<'py>,
    grads: Option<GradObjects<'py>>,
    activation: &str,
    blank: Blank,
    reduction: &str,
    clamp: f64,
    fastemit_lambda: f64,
    zero_infinity: bool,
    item_weights: Option<Vec<f64>>,
) -> PyResult<(Vec<f64>, f64)> {
    let options = Options {
        blank: blank.0,
        reduction: reduction.parse().map_err(to_py_err)?,
        clamp,
        fastemit_lambda,
        zero_infinity,
        ..Options::default()
    };
    let arrays = JointArrays::import(&arrays)?;
    let mut grads = grads
        .map(|(encoder_out, predictor_out, weight, bias)| {
            Ok::<_, PyErr>(GradArrays {
                encoder_out: Array::import(&encoder_out, "grad_encoder_out")?,
                predictor_out: Array::import(&predictor_out, "grad_predictor_out")?,
                weight: Array::import(&weight, "grad_weight")?,
                bias: bias.map(|b| Array::import(&b, "grad_bias")).transpose()?,
            })
        })
        .transpose()?;
    if let Some(grads) = &grads {
        arrays.check_disjoint(grads)?;
    }
    let (float, index) = arrays.dtypes()?;
    let call = (activation, &options, item_weights);
    match (float, index) {
        (FloatDtype::F32, IndexDtype::I32) => run::<f32, i32>(py, &arrays, grads.as_mut(), call),
        (FloatDtype::F32, IndexDtype::I64) => run::<f32, i64>(py, &arrays, grads.as_mut(), call),
        (FloatDtype::F64, IndexDtype::I32) => run::<f64, i32>(py, &arrays, grads.as_mut(), call),
        (FloatDtype::F64, IndexDtype::I64) => run::<f64, i64>(py, &arrays, grads.as_mut(), call),
        (other, _) => Err(PyTypeError::new_err(format!(
            "encoder_out has dtype {other:?}: the fused joiner takes float32 or float64"
        ))),
    }
}
