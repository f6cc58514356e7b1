//! The joiner fused into the loss: the exact RNN-T loss of the logits
//! x[b,t,u,:] = W · act(f[b,t,:] + g[b,u,:]) + bias, computed from the joiner's inputs without
//! ever holding the B·T·(U+1)·V logits (docs/joint.md).
//!
//! - [`input`]: the arrays of a call ([`JointInput`]), the [`Activation`] and all validation;
//! - [`tile`]: a run of lattice rows' hidden activations and logits, made with a GEMM in a
//!   per-thread buffer and dropped after use;
//! - [`forward`]: the row statistics the lattice needs, tile by tile, and the α/β lattice;
//! - [`lattice`]: the one call into the crate's lattice;
//! - [`backward`]: the tiles of the rows whose gradient is not zero made again, d loss / d x
//!   formed in them, and d f, d g, d W, d bias accumulated with two more GEMMs a tile;
//! - [`tanh`]: tanh in float32 without a library call;
//! - [`reference`]: the plain float64 oracle (the logits materialised, then
//!   [`crate::reference`]).
//!
//! ```
//! use ndarray::{Array1, Array2, Array3};
//! use rnnt::joint::{self, Activation, JointInput};
//! use rnnt::{Options, Targets};
//!
//! // B = 1, T = 2, U = 1, H = 3, V = 2: a zero weight gives every symbol probability ½.
//! let encoder_out = Array3::<f32>::ones((1, 2, 3));
//! let predictor_out = Array3::<f32>::ones((1, 2, 3));
//! let weight = Array2::<f32>::zeros((2, 3));
//! let targets = Array2::<i32>::zeros((1, 1));
//! let (logit_lengths, target_lengths) = (Array1::from_elem(1, 2), Array1::from_elem(1, 1));
//! let input = JointInput {
//!     encoder_out: encoder_out.view(),
//!     predictor_out: predictor_out.view(),
//!     weight: weight.view(),
//!     bias: None,
//!     targets: Targets::Padded(targets.view()),
//!     logit_lengths: logit_lengths.view(),
//!     target_lengths: target_lengths.view(),
//!     activation: Activation::Tanh,
//! };
//! let out = joint::loss_and_grad(&input, &Options::default()).unwrap();
//! assert!((out.loss - 8f64.ln() + 2f64.ln()).abs() < 1e-6); // two paths of probability 1/8
//! assert_eq!(out.grads.weight.dim(), (2, 3));
//! ```

pub mod backward;
pub mod forward;
pub mod input;
pub mod lattice;
pub mod reference;
pub mod tanh;
pub mod tile;

#[cfg(test)]
mod tests;

pub use backward::{backward, JointGrads};
pub use forward::{forward, JointForward};
pub use input::{Activation, JointFloat, JointInput};

use crate::error::Result;
use crate::options::Options;

/// Losses and the four gradients of one fused call.
#[derive(Debug, Clone)]
pub struct JointLossAndGrad<F> {
    /// Per-item losses −log P(y_b|x_b) (+inf for an impossible item, 0 with `zero_infinity`).
    pub losses: Vec<f64>,
    /// The reported loss after the reduction (the sum for `Reduction::None`).
    pub loss: f64,
    /// d loss / d encoder_out, predictor_out, weight and bias.
    pub grads: JointGrads<F>,
}

/// Forward and backward in one call: the losses and the gradients of the reported (reduced)
/// loss with respect to the joiner's inputs and parameters.
///
/// # Errors
/// As [`forward`].
pub fn loss_and_grad<F: JointFloat, I: crate::Index>(
    input: &JointInput<'_, F, I>,
    options: &Options,
) -> Result<JointLossAndGrad<F>> {
    let state = forward(input, options)?;
    let weights = options.reduction.item_weights(1.0, state.losses().len());
    let grads = backward(input, &state, &weights)?;
    Ok(JointLossAndGrad {
        losses: state.losses().to_vec(),
        loss: state.loss(),
        grads,
    })
}
