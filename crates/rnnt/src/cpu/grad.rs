//! Gradient pass: one more read of an item's logits and one write of its gradient.
//!
//! grad[t,u,k] = w_b · clip(c(t,u) · softmax(x)[t,u,k] − arcs(t,u,k)), where the arcs are the blank
//! arc at k = blank and the (FastEmit-scaled) emission arc at k = y[u+1], and c is the sum of the
//! node's (scaled) arcs, so that each row of the unclipped gradient sums to zero. In log-probs mode
//! the softmax term is absent. Padding and impossible items get zeros.

use crate::batch::Batch;
use crate::cpu::front::NodeScores;
use crate::cpu::kernels::Kernels;
use crate::cpu::lattice::{arc_occupancies, Lattice};
use crate::cpu::simd::GradRow;

/// The settings of a gradient pass that are the same for every item.
#[derive(Debug, Clone, Copy)]
pub struct GradSettings {
    /// Whether the input is logits (softmax term present) or log-probs.
    pub fused_log_softmax: bool,
    /// 1 + FastEmit λ, the scale of emission arcs.
    pub emit_scale: f64,
    /// Gradient clip bound, if any.
    pub clip: Option<f64>,
}

/// Writes item `b`'s (T, U+1, V) gradient block `out` from its logits block.
pub fn grad_pass<F: Kernels>(
    logits: &[F],
    out: &mut [F],
    batch: &Batch,
    b: usize,
    (scores, lattice): (&NodeScores, &Lattice),
    weight: f64,
    settings: GradSettings,
) {
    let v = batch.vocab;
    let labels = batch.labels(b);
    let frame_len = batch.label_positions * v;
    if lattice.log_p == f64::NEG_INFINITY {
        out.fill(F::zero());
        return;
    }
    let valid_frames = scores.frames * frame_len;
    out[valid_frames..].fill(F::zero());
    for t in 0..scores.frames {
        let frame = &mut out[t * frame_len..(t + 1) * frame_len];
        frame[scores.positions * v..].fill(F::zero());
        for u in 0..scores.positions {
            let start = (t * batch.label_positions + u) * v;
            let row = &logits[start..start + v];
            let row_out = &mut frame[u * v..(u + 1) * v];
            let (blank_arc, emit_arc) = arc_occupancies(scores, lattice, t, u);
            let emit_arc = emit_arc * settings.emit_scale;
            let coef = if settings.fused_log_softmax {
                blank_arc + emit_arc
            } else {
                0.0
            };
            let emit = match labels.get(u) {
                Some(&y) => (y as usize, emit_arc),
                None => (usize::MAX, 0.0),
            };
            let params = GradRow {
                lse: scores.lse[scores.node(t, u)],
                coef,
                scale: weight,
                clip: settings.clip.unwrap_or(f64::INFINITY),
                arcs: [(batch.blank, blank_arc), emit],
            };
            F::grad_row(row, row_out, &params, false);
        }
    }
}
