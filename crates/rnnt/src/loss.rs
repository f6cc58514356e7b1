//! The public entry points and the bookkeeping every backend shares.
//!
//! [`forward`], [`backward`], [`loss_and_grad`] and [`loss_and_grad_into`] run on the CPU
//! ([`Cpu`]); [`forward_with`], [`backward_with`] and [`loss_and_grad_with`] run on any
//! [`Backend`]. Around the backend's passes this module checks the options and the labels into
//! a [`Batch`], turns ln P into losses (`zero_infinity`), reduces them, derives the item weights
//! and checks that a backward call matches its forward (dtype, shape, number of weights).

use ndarray::{Array, ArrayViewMut, Ix4};

use crate::backend::{Backend, Cpu, CpuState};
use crate::batch::{Batch, Labels, LossInput, ScoresDim, ScoresShape};
use crate::element::{Float, Index};
use crate::error::{Error, Result};
use crate::options::Options;

/// The result of a forward call: per-item losses and the O(B·T·U) state that the backward call
/// needs (`S`: the backend's [`Backend::State`]; the CPU's by default), never a B·T·(U+1)·V
/// buffer.
#[derive(Debug, Clone)]
pub struct Forward<S = CpuState> {
    batch: Batch,
    options: Options,
    dtype: &'static str,
    state: S,
    losses: Vec<f64>,
}

impl<S> Forward<S> {
    /// Per-item losses −log P(y_b|x_b): +inf for an impossible item (0 with `zero_infinity`).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// The reported loss after the options' reduction (the sum for `Reduction::None`).
    pub fn loss(&self) -> f64 {
        self.options.reduction.reduce(&self.losses)
    }

    /// The validated batch description.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// The options of the call.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The backend's state, kept for the backward call.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The forward result of `batch` from a backend's state and ln P of every item.
    fn new<F: Float>(batch: Batch, options: &Options, (state, log_p): (S, Vec<f64>)) -> Self {
        let losses = log_p
            .into_iter()
            .map(|log_p| match -log_p {
                loss if loss == f64::INFINITY && options.zero_infinity => 0.0,
                loss => loss,
            })
            .collect();
        Forward {
            batch,
            options: *options,
            dtype: F::DTYPE,
            state,
            losses,
        }
    }
}

/// The name of the scores in messages, by input mode (`"logits"` or `"log_probs"`).
pub fn input_name(options: &Options) -> &'static str {
    if options.fused_log_softmax {
        "logits"
    } else {
        "log_probs"
    }
}

/// The options and the labels checked against the scores' sizes: the batch description.
///
/// # Errors
/// As [`forward_with`].
fn validated<F: Float, I: Index, B: Backend<F>>(
    scores: &B::Scores<'_>,
    labels: &Labels<'_, I>,
    options: &Options,
) -> Result<Batch> {
    options.validate()?;
    let name = input_name(options);
    let dims = B::scores_dims(scores, name)?;
    Batch::for_shape(
        dims,
        &labels.targets,
        (labels.logit_lengths, labels.target_lengths),
        options.blank,
        name,
    )
}

/// Validates the options and labels, runs `backend`'s front pass and lattice on `scores`, and
/// returns per-item losses with the state for [`backward_with`].
///
/// # Errors
/// [`Error::Shape`], [`Error::Value`] or [`Error::Layout`] naming the argument and value at fault
/// (DESIGN.md §5), including a NaN or +inf score within the lengths; a backend's own failure.
pub fn forward_with<F: Float, I: Index, B: Backend<F>>(
    backend: &B,
    scores: B::Scores<'_>,
    labels: &Labels<'_, I>,
    options: &Options,
) -> Result<Forward<B::State>> {
    let batch = validated::<F, I, B>(&scores, labels, options)?;
    let outcome = backend.forward(&batch, options, scores)?;
    Ok(Forward::new::<F>(batch, options, outcome))
}

/// Writes d objective / d scores into `grad`, given d objective / d loss_b = `item_weights[b]`,
/// on `backend`. `scores` must be the scores `forward` was computed from. Padding and impossible
/// items get 0.
///
/// # Errors
/// [`Error::DType`] if `F` is not the element type of the forward call, [`Error::Shape`] if
/// `scores`, `grad` or `item_weights` do not match the batch, [`Error::Layout`] if the backend
/// cannot write `grad` in place; a backend's own failure.
pub fn backward_with<F: Float, B: Backend<F>>(
    backend: &B,
    scores: B::Scores<'_>,
    forward: &Forward<B::State>,
    item_weights: &[f64],
    grad: B::Grad<'_>,
) -> Result<()> {
    let batch = &forward.batch;
    let options = &forward.options;
    let name = input_name(options);
    if F::DTYPE != forward.dtype {
        return Err(Error::DType(format!(
            "{name} is {} but forward was computed from {}",
            F::DTYPE,
            forward.dtype
        )));
    }
    let dims = batch.shape();
    let scores_dims = B::scores_dims(&scores, name)?;
    if scores_dims != dims {
        return Err(Error::Shape(format!(
            "{name} has shape {scores_dims} but forward saw {dims}"
        )));
    }
    check_grad::<F, B>(&grad, dims)?;
    if item_weights.len() != batch.batch_size {
        return Err(Error::Shape(format!(
            "item_weights has {} entries but the batch has B = {} items",
            item_weights.len(),
            batch.batch_size
        )));
    }
    backend.backward(batch, options, scores, &forward.state, item_weights, grad)
}

/// Checks `grad` against the input's sizes `dims` and the backend's layout.
fn check_grad<F: Float, B: Backend<F>>(grad: &B::Grad<'_>, dims: ScoresShape) -> Result<()> {
    grad_matches(B::grad_dims(grad)?, dims)
}

/// An error unless the gradient's sizes `grad_dims` are the input's `dims`.
fn grad_matches(grad_dims: ScoresShape, dims: ScoresShape) -> Result<()> {
    if grad_dims != dims {
        return Err(Error::Shape(format!(
            "grad has shape {grad_dims} but the input has {dims}"
        )));
    }
    Ok(())
}

/// Forward and backward in one call on `backend`: the forward result, whose losses are the
/// call's, and the gradient of the reported (reduced) loss in `grad` (every element written).
///
/// # Errors
/// As [`forward_with`], and [`Error::Shape`] or [`Error::Layout`] for `grad` (checked first);
/// `grad` is unspecified after an error.
pub fn loss_and_grad_with<F: Float, I: Index, B: Backend<F>>(
    backend: &B,
    scores: B::Scores<'_>,
    labels: &Labels<'_, I>,
    options: &Options,
    grad: B::Grad<'_>,
) -> Result<Forward<B::State>> {
    let name = input_name(options);
    let grad_dims = B::grad_dims(&grad)?;
    grad_matches(grad_dims, B::scores_dims(&scores, name)?)?;
    let batch = validated::<F, I, B>(&scores, labels, options)?;
    let outcome = backend.forward_backward(&batch, options, scores, grad)?;
    Ok(Forward::new::<F>(batch, options, outcome))
}

/// Validates the input, streams the logits once and runs the lattice on the CPU: per-item losses
/// and the state for [`backward`]. The logits are padded (B, T, U+1, V) or packed
/// (ΣT_b·(U_b+1), V), as their rank says ([`ScoresDim`]).
///
/// # Errors
/// [`Error::Shape`], [`Error::Value`] or [`Error::Layout`] naming the argument and value at fault
/// (DESIGN.md §5), including a NaN or +inf logit within the lengths and packed logits whose
/// number of rows is not ΣT_b·(U_b+1).
pub fn forward<F: Float, I: Index, D: ScoresDim>(
    input: &LossInput<'_, F, I, D>,
    options: &Options,
) -> Result<Forward> {
    forward_with(&Cpu, D::cpu_scores(input.logits), &input.labels(), options)
}

/// Writes d objective / d input into `grad`, given d objective / d loss_b = `item_weights[b]`.
///
/// `input` must be the input `forward` was computed from (padded or packed alike), `grad` of its
/// shape. Padding and impossible items get 0.
///
/// # Errors
/// [`Error::Shape`] if `grad` or `item_weights` do not match the batch, [`Error::Layout`] if
/// `grad` is not C-contiguous.
pub fn backward<F: Float, I: Index, D: ScoresDim>(
    input: &LossInput<'_, F, I, D>,
    forward: &Forward,
    item_weights: &[f64],
    grad: ArrayViewMut<'_, F, D>,
) -> Result<()> {
    let scores = D::cpu_scores(input.logits);
    backward_with(&Cpu, scores, forward, item_weights, D::cpu_grad(grad))
}

/// Losses and gradient of one call; `D` is the rank of the input (padded by default, see
/// [`ScoresDim`]).
#[derive(Debug, Clone)]
pub struct LossAndGrad<F, D: ScoresDim = Ix4> {
    /// Per-item losses (see [`Forward::losses`]).
    pub losses: Vec<f64>,
    /// The reported loss after the reduction (the sum for `Reduction::None`).
    pub loss: f64,
    /// d loss / d input, the input's shape and dtype; 0 in padding.
    pub grad: Array<F, D>,
}

/// Forward and backward in one call: the gradient of the reported (reduced) loss, of the input's
/// shape (padded or packed).
///
/// # Errors
/// As [`forward`].
pub fn loss_and_grad<F: Float, I: Index, D: ScoresDim>(
    input: &LossInput<'_, F, I, D>,
    options: &Options,
) -> Result<LossAndGrad<F, D>> {
    let mut grad = Array::from_elem(input.logits.raw_dim(), F::zero());
    let forward = loss_and_grad_into(input, options, grad.view_mut())?;
    Ok(LossAndGrad {
        losses: forward.losses.clone(),
        loss: forward.loss(),
        grad,
    })
}

/// [`loss_and_grad`] into a caller's `grad` (the input's shape, C-contiguous; every element is
/// written): the forward state, whose losses are the call's, and the gradient of the reported
/// (reduced) loss in `grad`.
///
/// Where the gradient stays in cache (below [`STREAM_MIN_BYTES`](crate::STREAM_MIN_BYTES)) and
/// the input is logits, the softmax terms are kept in `grad` between the passes, which makes
/// this faster than [`forward`] then [`backward`].
///
/// # Errors
/// As [`forward`], and [`Error::Shape`] or [`Error::Layout`] for `grad` (checked first); `grad`
/// is unspecified after an error.
pub fn loss_and_grad_into<F: Float, I: Index, D: ScoresDim>(
    input: &LossInput<'_, F, I, D>,
    options: &Options,
    grad: ArrayViewMut<'_, F, D>,
) -> Result<Forward> {
    let scores = D::cpu_scores(input.logits);
    loss_and_grad_with(&Cpu, scores, &input.labels(), options, D::cpu_grad(grad))
}
