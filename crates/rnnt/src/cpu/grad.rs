//! Gradient pass: one more read of the logits and one write of the gradient.
//!
//! grad[t,u,k] = w_b · clip(c(t,u) · softmax(x)[t,u,k] − arcs(t,u,k)), where the arcs are the blank
//! arc at k = blank and the (FastEmit-scaled) emission arc at k = y[u+1], and c is the sum of the
//! node's (scaled) arcs, so that each row of the unclipped gradient sums to zero. In log-probs mode
//! the softmax term is absent. Padding and impossible items get zeros, written once.
//!
//! Like the front pass, the work is split into runs of frames across the whole batch. Each element
//! is written exactly once, by the row kernel, so a large gradient can go out with non-temporal
//! stores ([`GradSettings::stream`]) and never be read into the caches.

use crate::batch::Batch;
use crate::cpu::front::NodeScores;
use crate::cpu::kernels::Kernels;
use crate::cpu::lattice::Lattice;
use crate::cpu::simd::{store_fence, GradRow};

/// The settings of a gradient pass that are the same for every item.
#[derive(Debug, Clone, Copy)]
pub struct GradSettings {
    /// Whether the input is logits (softmax term present) or log-probs.
    pub fused_log_softmax: bool,
    /// 1 + FastEmit λ, the scale of emission arcs.
    pub emit_scale: f64,
    /// Gradient clip bound, if any.
    pub clip: Option<f64>,
    /// Write with non-temporal stores (worth it when the gradient does not fit in cache).
    pub stream: bool,
}

/// One item's state for its gradient: node scores, α/β, and the upstream gradient w_b.
#[derive(Debug, Clone, Copy)]
pub struct ItemState<'a> {
    /// The item's node scores.
    pub scores: &'a NodeScores,
    /// The item's α/β.
    pub lattice: &'a Lattice,
    /// d objective / d loss_b.
    pub weight: f64,
}

/// Writes frames `first_frame..` of item `b`'s gradient into `out` (a whole number of
/// (U+1, V) frames), reading the item's (T, U+1, V) logits block `logits`.
pub fn grad_frames<F: Kernels>(
    logits: &[F],
    out: &mut [F],
    first_frame: usize,
    batch: &Batch,
    b: usize,
    item: ItemState<'_>,
    settings: GradSettings,
) {
    let v = batch.vocab;
    let labels = batch.labels(b);
    let frame_len = batch.label_positions * v;
    let ItemState {
        scores,
        lattice,
        weight,
    } = item;
    let possible = lattice.log_p > f64::NEG_INFINITY;
    let zero = |out: &mut [F], start: usize| {
        let input = &logits[start..start + out.len()];
        F::grad_row(input, out, &GradRow::ZERO, settings.stream);
    };
    for (i, frame) in out.chunks_mut(frame_len).enumerate() {
        let t = first_frame + i;
        let frame_start = t * frame_len;
        if !possible || t >= scores.frames {
            zero(frame, frame_start);
            continue;
        }
        let (rows, padding) = frame.split_at_mut(scores.positions * v);
        zero(padding, frame_start + rows.len());
        for (u, row_out) in rows.chunks_mut(v).enumerate() {
            let start = frame_start + u * v;
            let row = &logits[start..start + v];
            let node = scores.node(t, u);
            let blank_arc = lattice.blank_arc[node];
            let emit_arc = lattice.emit_arc[node] * settings.emit_scale;
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
                shift: scores.shift[node],
                inv_sum: scores.inv_sum[node],
                coef,
                scale: weight,
                clip: settings.clip.unwrap_or(f64::INFINITY),
                arcs: [(batch.blank, blank_arc), emit],
            };
            F::grad_row(row, row_out, &params, settings.stream);
        }
    }
    if settings.stream {
        store_fence();
    }
}
