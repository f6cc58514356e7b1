//! Front pass: one streaming read of an item's logits, giving per node (t, u) the log-probability
//! of blank, of the next label, and the row's log-sum-exp.

use crate::batch::{non_finite_logit, Batch};
use crate::cpu::kernels::Kernels;
use crate::error::Result;

/// Per-node scores of one item over its valid T_b × (U_b+1) nodes, row-major in (t, u).
#[derive(Debug, Clone, Default)]
pub struct NodeScores {
    /// T_b.
    pub frames: usize,
    /// U_b + 1.
    pub positions: usize,
    /// log P(blank | t, u).
    pub blank: Vec<f64>,
    /// log P(y[u+1] | t, u); −inf at u = U_b, where no label is left.
    pub emit: Vec<f64>,
    /// ln Σ_k exp(x[t,u,k]) (0 in log-probs mode, where the input is used as it is).
    pub lse: Vec<f64>,
}

impl NodeScores {
    /// Flat index of node (t, u).
    #[inline]
    pub fn node(&self, t: usize, u: usize) -> usize {
        t * self.positions + u
    }
}

/// Reads item `b`'s (T, U+1, V) block `logits` and scores its valid nodes.
///
/// Rejects a NaN or +inf inside the lengths; a row that is entirely −inf is a masked node whose
/// scores are all −inf.
pub fn front_pass<F: Kernels>(
    logits: &[F],
    batch: &Batch,
    b: usize,
    fused_log_softmax: bool,
    input_name: &str,
) -> Result<NodeScores> {
    let labels = batch.labels(b);
    let frames = batch.frames(b);
    let positions = labels.len() + 1;
    let v = batch.vocab;
    let nodes = frames * positions;
    let mut scores = NodeScores {
        frames,
        positions,
        blank: Vec::with_capacity(nodes),
        emit: Vec::with_capacity(nodes),
        lse: Vec::with_capacity(nodes),
    };
    for t in 0..frames {
        for u in 0..positions {
            let start = (t * batch.label_positions + u) * v;
            let row = &logits[start..start + v];
            let stats = F::row_stats(row);
            if stats.sum.is_nan() {
                return Err(non_finite_logit(row, input_name, (b, t, u)));
            }
            let lse = if !fused_log_softmax {
                0.0
            } else if stats.max == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                stats.max + stats.sum.ln()
            };
            let log_prob = |k: usize| {
                if lse == f64::NEG_INFINITY {
                    f64::NEG_INFINITY
                } else {
                    row[k].to_f64() - lse
                }
            };
            scores.blank.push(log_prob(batch.blank));
            scores.emit.push(if u < labels.len() {
                log_prob(labels[u] as usize)
            } else {
                f64::NEG_INFINITY
            });
            scores.lse.push(lse);
        }
    }
    Ok(scores)
}
