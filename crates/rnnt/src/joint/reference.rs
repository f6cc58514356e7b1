//! The plain float64 oracle of the fused loss: the joiner's logits materialised in f64 for every
//! node of the padded (B, T, U+1, V) block, the crate's [`reference`](crate::reference) loss on
//! them, and the chain rule through the joiner written out element by element.

use ndarray::{Array1, Array2, Array3, Array4};

use crate::batch::{LossInput, Targets};
use crate::element::{Float, Index};
use crate::error::Result;
use crate::joint::backward::JointGrads;
use crate::joint::input::JointInput;
use crate::options::Options;
use crate::reference;

/// The oracle's result: losses and the four gradients, all in f64.
#[derive(Debug, Clone)]
pub struct JointReference {
    /// Per-item losses (as [`reference::ReferenceOutput::losses`]).
    pub losses: Vec<f64>,
    /// The reported loss after the reduction.
    pub loss: f64,
    /// d loss / d encoder_out, predictor_out, weight, bias.
    pub grads: JointGrads<f64>,
}

/// Losses and gradients of the reduced loss of `input`, in plain f64.
///
/// # Errors
/// As [`forward`](crate::joint::forward) (shapes, lengths, labels), and as
/// [`reference::loss_and_grad`].
pub fn loss_and_grad<F: Float, I: Index>(
    input: &JointInput<'_, F, I>,
    options: &Options,
) -> Result<JointReference> {
    let (dims, _) = input.batch(options)?;
    let (bsz, frames, positions, hidden, vocab) = (
        dims.batch_size,
        dims.frames,
        dims.positions,
        dims.hidden,
        dims.vocab,
    );
    let f = input.encoder_out.mapv(Float::to_f64);
    let g = input.predictor_out.mapv(Float::to_f64);
    let w = input.weight.mapv(Float::to_f64);
    let bias = input.bias.map(|bias| bias.mapv(Float::to_f64));
    let act = input.activation;
    // h[b,t,u,:] and x[b,t,u,:] for every node, padding included.
    let h = Array4::from_shape_fn((bsz, frames, positions, hidden), |(b, t, u, j)| {
        act.apply(f[[b, t, j]] + g[[b, u, j]])
    });
    let x = Array4::from_shape_fn((bsz, frames, positions, vocab), |(b, t, u, k)| {
        let dot: f64 = (0..hidden).map(|j| w[[k, j]] * h[[b, t, u, j]]).sum();
        dot + bias.as_ref().map_or(0.0, |bias| bias[k])
    });
    let loss_input = LossInput {
        logits: x.view(),
        targets: match &input.targets {
            Targets::Padded(targets) => Targets::Padded(targets.view()),
            Targets::Packed(targets) => Targets::Packed(targets.view()),
        },
        logit_lengths: input.logit_lengths.view(),
        target_lengths: input.target_lengths.view(),
    };
    let out = reference::loss_and_grad(&loss_input, options)?;
    let dx = out.grad;
    let mut grads = JointGrads {
        encoder_out: Array3::zeros((bsz, frames, hidden)),
        predictor_out: Array3::zeros((bsz, positions, hidden)),
        weight: Array2::zeros((vocab, hidden)),
        bias: bias.as_ref().map(|_| Array1::zeros(vocab)),
    };
    for b in 0..bsz {
        for t in 0..frames {
            for u in 0..positions {
                for j in 0..hidden {
                    let hv = h[[b, t, u, j]];
                    let dh: f64 = (0..vocab).map(|k| dx[[b, t, u, k]] * w[[k, j]]).sum();
                    let dz = dh * act.derivative_at_value(hv);
                    grads.encoder_out[[b, t, j]] += dz;
                    grads.predictor_out[[b, u, j]] += dz;
                    for k in 0..vocab {
                        grads.weight[[k, j]] += dx[[b, t, u, k]] * hv;
                    }
                }
                if let Some(db) = &mut grads.bias {
                    for k in 0..vocab {
                        db[k] += dx[[b, t, u, k]];
                    }
                }
            }
        }
    }
    Ok(JointReference {
        losses: out.losses,
        loss: out.loss,
        grads,
    })
}
