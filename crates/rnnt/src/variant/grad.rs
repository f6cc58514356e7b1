//! What a variant's forward keeps for its gradient (per node, the occupancy each head's columns
//! carry) and the gradient pass that writes both heads' rows.

use crate::batch::Batch;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::GradRow;
use crate::element::Float;
use crate::options::Options;
use crate::variant::arcs::{ItemShape, BLANK, LABEL};
use crate::variant::lattice::{Heads, ItemLattice, ItemScores};
use crate::variant::rows::RowsMut;
use crate::variant::topology::Variant;

/// One item's state between forward and backward: per node the row normalisers and the
/// (FastEmit-scaled) occupancy of every column its arcs read, O(T·U·(slots + D)).
#[derive(Debug, Clone)]
pub(crate) struct ItemGrad {
    shape: ItemShape,
    slots: usize,
    columns: usize,
    slot_columns: Vec<usize>,
    token_lse: NodeVec,
    duration_lse: NodeVec,
    /// c_tok(n, slot), nodes × slots.
    token_occupancy: NodeVec,
    /// c_dur(n, i), nodes × columns.
    duration_occupancy: NodeVec,
    /// ln P (with the arcs' constants).
    pub log_p: f64,
}

impl ItemGrad {
    /// The lattice of `scores` and the occupancies of the columns its arcs read: label arcs'
    /// token reads scaled by 1 + λ (FastEmit), duration reads unscaled.
    pub(crate) fn new(variant: &Variant, options: &Options, scores: ItemScores) -> ItemGrad {
        let (slots, columns, shape) = (scores.slots, scores.columns, scores.shape);
        let (lattice, occupancy) =
            ItemLattice::sum_with_columns(variant, &scores, 1.0 + options.fastemit_lambda);
        ItemGrad {
            shape,
            slots,
            columns,
            slot_columns: scores.slot_columns,
            token_lse: scores.token_lse,
            duration_lse: scores.duration_lse,
            token_occupancy: occupancy.tokens,
            duration_occupancy: occupancy.durations,
            log_p: lattice.log_p,
        }
    }
}

/// The gradient rows of both heads, writable.
pub(crate) struct GradHeads<'a, F> {
    /// The token head's gradient.
    pub tokens: RowsMut<'a, F>,
    /// The duration head's gradient (TDT).
    pub durations: Option<RowsMut<'a, F>>,
}

/// w·clip(c·softmax − occupancy) for one element in f64 (`fused`: with the softmax term).
#[inline]
fn element_grad(
    x: f64,
    lse: f64,
    coef: f64,
    occupancy: f64,
    fused: bool,
    w: f64,
    clip: f64,
) -> f64 {
    let soft = if fused && coef > 0.0 {
        coef * (x - lse).exp()
    } else {
        0.0
    };
    w * (soft - occupancy).clamp(-clip, clip)
}

/// Writes item `b`'s rows of both gradients (its whole block: zeros in padding and for an
/// impossible item), scaled by `weight`.
///
/// # Safety
/// No other reference to item `b`'s rows of `grads` may be alive (one task per item).
pub(crate) unsafe fn write_item<F: Float>(
    batch: &Batch,
    b: usize,
    heads: &Heads<'_, F>,
    state: &ItemGrad,
    (weight, clip): (f64, f64),
    grads: &GradHeads<'_, F>,
) {
    let rows = batch.item_rows(b);
    let stride = batch.row_stride(b);
    let shape = state.shape;
    let possible = state.log_p > f64::NEG_INFINITY;
    let vocab = batch.vocab;
    for r in rows.clone() {
        let (t, u) = ((r - rows.start) / stride, (r - rows.start) % stride);
        // SAFETY: row r belongs to item b, whose rows only this call writes (the caller's
        // guarantee); each row is borrowed once, here.
        let out = unsafe { grads.tokens.row_mut(r) };
        // SAFETY: as above, for the duration head.
        let duration_out = grads.durations.as_ref().map(|d| unsafe { d.row_mut(r) });
        if !possible || t >= shape.frames || u >= shape.positions {
            out.fill(F::zero());
            if let Some(d) = duration_out {
                d.fill(F::zero());
            }
            continue;
        }
        let n = shape.node(t, u);
        let occupancy = &state.token_occupancy[n * state.slots..(n + 1) * state.slots];
        let columns = &state.slot_columns[u * state.slots..(u + 1) * state.slots];
        let coef: f64 = occupancy.iter().sum();
        let lse = state.token_lse[n];
        let row = heads.tokens.row(r);
        let params = GradRow {
            shift: if heads.fused { lse } else { 0.0 },
            inv_sum: 1.0,
            coef: if heads.fused { coef } else { 0.0 },
            scale: weight,
            clip,
            arcs: [
                (columns[BLANK], occupancy[BLANK]),
                (columns[LABEL], occupancy[LABEL]),
            ],
        };
        F::grad_rows(row, out, vocab, &[params], false);
        for slot in 2..state.slots {
            let k = columns[slot];
            let g = element_grad(
                row[k].to_f64(),
                lse,
                coef,
                occupancy[slot],
                heads.fused,
                weight,
                clip,
            );
            out[k] = F::from_f64(g);
        }
        if let (Some(d), Some(durations)) = (duration_out, &heads.durations) {
            let occupancy = &state.duration_occupancy[n * state.columns..(n + 1) * state.columns];
            let coef: f64 = occupancy.iter().sum();
            let lse = state.duration_lse[n];
            for ((g, x), &occ) in d.iter_mut().zip(durations.row(r)).zip(occupancy) {
                *g = F::from_f64(element_grad(
                    x.to_f64(),
                    lse,
                    coef,
                    occ,
                    heads.fused,
                    weight,
                    clip,
                ));
            }
        }
    }
}
