//! The scalar float64 reference implementation: the oracle for tests and `rnnt check`.
//!
//! Written for clarity, not speed: every quantity of DESIGN.md §2 is materialised as a plain
//! nested vector in f64, in the order the maths states it. Every fast path is tested against it.

use ndarray::{Array, Ix4};

use crate::batch::{Batch, LossInput, ScoresDim};
use crate::element::{Float, Index};
use crate::error::Result;
use crate::logspace::log_add_exp;
use crate::options::Options;

/// What the reference computes for a batch; `D` is the input's rank (padded by default, see
/// [`ScoresDim`]).
#[derive(Debug, Clone)]
pub struct ReferenceOutput<D: ScoresDim = Ix4> {
    /// Per-item losses −log P(y_b | x_b) (+inf for an impossible item, 0 with `zero_infinity`).
    pub losses: Vec<f64>,
    /// The reported loss after `options.reduction` (the sum for `Reduction::None`).
    pub loss: f64,
    /// d loss / d input in f64, same shape as the input; exactly 0 in padding.
    pub grad: Array<f64, D>,
}

/// Computes losses and the gradient of the reduced loss in plain float64 arithmetic, for padded
/// or packed input alike: node (t, u) of item b is row [`Batch::row`] of the scores.
pub fn loss_and_grad<F: Float, I: Index, D: ScoresDim>(
    input: &LossInput<'_, F, I, D>,
    options: &Options,
) -> Result<ReferenceOutput<D>> {
    options.validate()?;
    let input_name = if options.fused_log_softmax {
        "logits"
    } else {
        "log_probs"
    };
    let batch = Batch::new(input, options.blank, input_name)?;
    let weights = options.reduction.item_weights(1.0, batch.batch_size);
    let mut grad = Array::<f64, D>::zeros(input.logits.raw_dim());
    let vocab = batch.vocab;
    // Both C-contiguous (checked by `Batch::new`; `zeros` is): row r is elements r·V..(r+1)·V.
    let scores = input
        .logits
        .to_slice()
        .expect("Batch::new checked the layout");
    let grad_rows = grad.as_slice_mut().expect("a new array is contiguous");
    let mut losses = Vec::with_capacity(batch.batch_size);
    for b in 0..batch.batch_size {
        let frames = batch.frames(b);
        let labels = batch.labels(b);
        let positions = labels.len() + 1;
        let blank = batch.blank;

        // log_probs[t][u][k], the normalised scores of every valid node.
        let mut log_probs = vec![vec![Vec::new(); positions]; frames];
        for (t, row_t) in log_probs.iter_mut().enumerate() {
            for (u, row) in row_t.iter_mut().enumerate() {
                let start = batch.row(b, t, u) * vocab;
                let raw = &scores[start..start + vocab];
                let x: Vec<f64> = raw.iter().map(|v| v.to_f64()).collect();
                if x.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
                    return Err(batch.non_finite_score(raw, input_name, (b, t, u)));
                }
                *row = if options.fused_log_softmax {
                    let lse = x
                        .iter()
                        .fold(f64::NEG_INFINITY, |acc, &v| log_add_exp(acc, v));
                    x.iter()
                        .map(|&v| {
                            if lse == f64::NEG_INFINITY {
                                f64::NEG_INFINITY
                            } else {
                                v - lse
                            }
                        })
                        .collect()
                } else {
                    x
                };
            }
        }
        let blank_lp = |t: usize, u: usize| log_probs[t][u][blank];
        let emit_lp = |t: usize, u: usize| log_probs[t][u][labels[u] as usize];

        // α(t,u): log-probability of reaching node (t,u) from (0,0).
        let mut alpha = vec![vec![f64::NEG_INFINITY; positions]; frames];
        for t in 0..frames {
            for u in 0..positions {
                alpha[t][u] = if t == 0 && u == 0 {
                    0.0
                } else {
                    let from_blank = if t > 0 {
                        alpha[t - 1][u] + blank_lp(t - 1, u)
                    } else {
                        f64::NEG_INFINITY
                    };
                    let from_emit = if u > 0 {
                        alpha[t][u - 1] + emit_lp(t, u - 1)
                    } else {
                        f64::NEG_INFINITY
                    };
                    log_add_exp(from_blank, from_emit)
                };
            }
        }
        // β(t,u): log-probability of finishing from node (t,u), final blank included.
        let mut beta = vec![vec![f64::NEG_INFINITY; positions]; frames];
        for t in (0..frames).rev() {
            for u in (0..positions).rev() {
                beta[t][u] = if t == frames - 1 && u == positions - 1 {
                    blank_lp(t, u)
                } else {
                    let by_blank = if t + 1 < frames {
                        beta[t + 1][u] + blank_lp(t, u)
                    } else {
                        f64::NEG_INFINITY
                    };
                    let by_emit = if u + 1 < positions {
                        beta[t][u + 1] + emit_lp(t, u)
                    } else {
                        f64::NEG_INFINITY
                    };
                    log_add_exp(by_blank, by_emit)
                };
            }
        }
        let log_p = beta[0][0];
        if log_p == f64::NEG_INFINITY {
            losses.push(if options.zero_infinity {
                0.0
            } else {
                f64::INFINITY
            });
            continue;
        }
        losses.push(-log_p);

        let emit_scale = 1.0 + options.fastemit_lambda;
        for t in 0..frames {
            for u in 0..positions {
                let blank_arc = if t + 1 < frames {
                    (alpha[t][u] + blank_lp(t, u) + beta[t + 1][u] - log_p).exp()
                } else if u + 1 == positions {
                    (alpha[t][u] + blank_lp(t, u) - log_p).exp()
                } else {
                    0.0
                };
                let emit_arc = if u + 1 < positions {
                    (alpha[t][u] + emit_lp(t, u) + beta[t][u + 1] - log_p).exp()
                } else {
                    0.0
                };
                // d loss / d log_probs: minus each arc's occupancy (emission arcs scaled by FastEmit).
                let mut d_log_probs = vec![0.0; batch.vocab];
                d_log_probs[blank] -= blank_arc;
                if u + 1 < positions {
                    d_log_probs[labels[u] as usize] -= emit_scale * emit_arc;
                }
                let occupancy = blank_arc + emit_scale * emit_arc;
                for (k, &d_lp) in d_log_probs.iter().enumerate() {
                    // Chain rule through log_softmax: d x_k = d lp_k + softmax_k · Σ_j (−d lp_j).
                    let mut d_input = if options.fused_log_softmax && occupancy > 0.0 {
                        d_lp + occupancy * log_probs[t][u][k].exp()
                    } else {
                        d_lp
                    };
                    if let Some(bound) = options.clip_bound() {
                        d_input = d_input.clamp(-bound, bound);
                    }
                    grad_rows[batch.row(b, t, u) * vocab + k] = weights[b] * d_input;
                }
            }
        }
    }
    let loss = options.reduction.reduce(&losses);
    Ok(ReferenceOutput { losses, loss, grad })
}
