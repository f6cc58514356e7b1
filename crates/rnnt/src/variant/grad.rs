//! What a variant's forward keeps for its gradient (per node, the occupancy each head's columns
//! carry) and the gradient pass that writes both heads' rows, a run of frames at a time.
//!
//! As the standard loss's (`cpu::grad`), the pass writes each token row once with the row
//! kernel, rows no path of note goes through as zeros without reading their input, and a large
//! gradient with non-temporal stores (short rows, and rows with big-blank columns to finish,
//! computed into a stage in L1 and streamed out from it).

use std::ops::Range;

use crate::batch::Batch;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, store_fence, GradRow, Isa};
use crate::element::Float;
use crate::options::Options;
use crate::variant::arcs::{ItemShape, BLANK, LABEL};
use crate::variant::front::{Heads, ItemScores, RowNorms};
use crate::variant::lattice::ItemLattice;
use crate::variant::rows::RowsMut;
use crate::variant::topology::Variant;

/// Bytes of short gradient rows staged before they are streamed out together.
const STAGE_BYTES: usize = 16 << 10;

/// One item's state between forward and backward: per node the row normalisations and the
/// (FastEmit-scaled) occupancy of every column its arcs read, O(T·U·(slots + D)).
#[derive(Debug, Clone)]
pub(crate) struct ItemGrad {
    shape: ItemShape,
    slots: usize,
    columns: usize,
    slot_columns: Vec<usize>,
    token_norms: RowNorms,
    duration_norms: RowNorms,
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
            token_norms: scores.token_norms,
            duration_norms: scores.duration_norms,
            token_occupancy: occupancy.tokens,
            duration_occupancy: occupancy.durations,
            log_p: lattice.log_p,
        }
    }

    /// The row kernel's parameters for node (t, u)'s token row: the softmax term weighted by
    /// the sum of the node's column occupancies, the blank and label arcs subtracted (big
    /// blanks are finished by [`ItemGrad::finish_big_blanks`]).
    fn token_params(&self, n: usize, u: usize, weight: f64, settings: &GradSettings) -> GradRow {
        let occupancy = &self.token_occupancy[n * self.slots..(n + 1) * self.slots];
        let columns = &self.slot_columns[u * self.slots..(u + 1) * self.slots];
        GradRow {
            shift: self.token_norms.shift[n],
            inv_sum: self.token_norms.inv_sum[n],
            coef: if settings.fused {
                occupancy.iter().sum()
            } else {
                0.0
            },
            scale: weight,
            clip: settings.clip,
            arcs: [
                (columns[BLANK], occupancy[BLANK]),
                (columns[LABEL], occupancy[LABEL]),
            ],
        }
    }

    /// Whether node n's token row is all zeros: the row kernel writes only zeros, and would
    /// for the big blanks' occupancies too (by its rule: amounts below the normal range are
    /// none).
    fn token_row_is_zero<F: Float>(&self, n: usize, params: &GradRow) -> bool {
        let bigs = &self.token_occupancy[n * self.slots + 2..(n + 1) * self.slots];
        F::grad_row_is_zero(params)
            && bigs.chunks(2).all(|pair| {
                let second = pair.get(1).copied().unwrap_or(0.0);
                F::grad_row_is_zero(&GradRow {
                    coef: 0.0,
                    arcs: [(0, pair[0]), (0, second)],
                    ..*params
                })
            })
    }

    /// Writes the big blank columns of the token rows `out` of label positions `first..` of
    /// frame `t`, from their inputs `input` and the rows' kernel parameters `params`.
    fn finish_big_blanks<F: Float>(
        &self,
        (t, first): (usize, usize),
        (input, out): (&[F], &mut [F]),
        params: &[GradRow],
        vocab: usize,
    ) {
        for (j, params) in params.iter().enumerate() {
            let (u, n) = (first + j, self.shape.node(t, first + j));
            for slot in 2..self.slots {
                let k = self.slot_columns[u * self.slots + slot];
                let arc = GradRow {
                    arcs: [
                        (k, self.token_occupancy[n * self.slots + slot]),
                        (usize::MAX, 0.0),
                    ],
                    ..*params
                };
                let x = input[j * vocab + k].to_f64();
                out[j * vocab + k] = F::from_f64(arc.element(k, x));
            }
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

/// The settings of a gradient pass that are the same for every item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GradSettings {
    /// Whether the heads are logits (softmax term present) or log-probs.
    pub fused: bool,
    /// The clip bound (+inf for none).
    pub clip: f64,
    /// Write the token head's gradient with non-temporal stores.
    pub stream: bool,
}

/// Writes frames `frames` of item `b`'s block of both gradients (zeros in padding and for an
/// impossible item), scaled by `weight`.
///
/// # Safety
/// No other reference to these frames' rows of `grads` may be alive (one task per run of
/// frames).
pub(crate) unsafe fn write_frames<F: Float>(
    (batch, b, frames): (&Batch, usize, Range<usize>),
    heads: &Heads<'_, F>,
    (state, weight): (&ItemGrad, f64),
    settings: GradSettings,
    grads: &GradHeads<'_, F>,
) {
    let stride = batch.row_stride(b);
    let shape = state.shape;
    let possible = state.log_p > f64::NEG_INFINITY;
    let vocab = batch.vocab;
    let dense = heads.tokens.dense() && grads.tokens.dense();
    let stage_rows = STAGE_BYTES / (vocab * std::mem::size_of::<F>());
    let staged = settings.stream && (stage_rows > 0 || state.slots > 2);
    let mut stage = vec![F::zero(); if staged { stage_rows.max(1) * vocab } else { 0 }];
    let mut params = Vec::with_capacity(shape.positions);
    let mut exps = Vec::new();
    for t in frames {
        let r = batch.row(b, t, 0);
        let live = if possible && t < shape.frames {
            shape.positions
        } else {
            0
        };
        // SAFETY: the rows of this frame are this run's (the caller's guarantee), each borrowed
        // once here.
        unsafe { write_zero_rows(grads, r + live..r + stride, dense, settings.stream) };
        if live == 0 {
            continue;
        }
        params.clear();
        params
            .extend((0..live).map(|u| state.token_params(shape.node(t, u), u, weight, &settings)));
        let mut first = 0;
        while first < live {
            let zeros = state.token_row_is_zero::<F>(shape.node(t, first), &params[first]);
            let end = if dense {
                (first + 1..live)
                    .find(|&u| state.token_row_is_zero::<F>(shape.node(t, u), &params[u]) != zeros)
                    .unwrap_or(live)
            } else {
                first + 1
            };
            // SAFETY: as above.
            let out = unsafe { grads.tokens.rows_mut(r + first, end - first) };
            if zeros {
                F::write_zeros(out, settings.stream);
            } else {
                let input = heads.tokens.rows(r + first, end - first);
                let rows = (input, out, &params[first..end]);
                write_token_rows(
                    state,
                    (t, first),
                    rows,
                    vocab,
                    (&mut stage, settings.stream),
                );
            }
            first = end;
        }
        if let (Some(out), Some(_)) = (&grads.durations, &heads.durations) {
            // SAFETY: as above.
            unsafe {
                write_duration_rows(
                    state,
                    (batch, b, t),
                    heads,
                    (weight, settings),
                    out,
                    &mut exps,
                )
            };
        }
    }
    if settings.stream {
        store_fence();
    }
}

/// Writes zeros into rows `rows` of both gradients.
///
/// # Safety
/// No other reference to these rows may be alive.
unsafe fn write_zero_rows<F: Float>(
    grads: &GradHeads<'_, F>,
    rows: Range<usize>,
    dense: bool,
    stream: bool,
) {
    if rows.is_empty() {
        return;
    }
    let group = if dense { rows.len() } else { 1 };
    for r in rows.clone().step_by(group) {
        // SAFETY: the caller's guarantee.
        F::write_zeros(unsafe { grads.tokens.rows_mut(r, group) }, stream);
    }
    if let Some(durations) = &grads.durations {
        for r in rows {
            // SAFETY: the caller's guarantee.
            unsafe { durations.rows_mut(r, 1) }.fill(F::zero());
        }
    }
}

/// Writes the token gradient rows `(input, out, params)` of label positions `first..` of frame
/// `t` (big blank columns included): directly, or through `stage` when streamed.
fn write_token_rows<F: Float>(
    state: &ItemGrad,
    (t, first): (usize, usize),
    (input, out, params): (&[F], &mut [F], &[GradRow]),
    vocab: usize,
    (stage, stream): (&mut [F], bool),
) {
    if stage.is_empty() {
        F::grad_rows(input, out, vocab, params, stream);
        if state.slots > 2 {
            state.finish_big_blanks((t, first), (input, out), params, vocab);
        }
        return;
    }
    let rows_per_stage = stage.len() / vocab;
    let chunks = out
        .chunks_mut(stage.len())
        .zip(input.chunks(stage.len()))
        .zip(params.chunks(rows_per_stage))
        .enumerate();
    for (i, ((chunk_out, chunk_input), chunk_params)) in chunks {
        let staged = &mut stage[..chunk_out.len()];
        F::grad_rows(chunk_input, staged, vocab, chunk_params, false);
        if state.slots > 2 {
            let at = (t, first + i * rows_per_stage);
            state.finish_big_blanks(at, (chunk_input, staged), chunk_params, vocab);
        }
        F::stream_copy(staged, chunk_out);
    }
}

/// Writes the duration gradient rows of frame `t` of item `b` (rows with nodes), their exps
/// taken together in `exps`.
///
/// # Safety
/// No other reference to these rows may be alive.
unsafe fn write_duration_rows<F: Float>(
    state: &ItemGrad,
    (batch, b, t): (&Batch, usize, usize),
    heads: &Heads<'_, F>,
    (weight, settings): (f64, GradSettings),
    out: &RowsMut<'_, F>,
    exps: &mut Vec<f64>,
) {
    let Some(durations) = &heads.durations else {
        return;
    };
    let (positions, columns) = (state.shape.positions, state.columns);
    let nodes = state.shape.node(t, 0)..state.shape.node(t, positions);
    let occupancy = &state.duration_occupancy[nodes.start * columns..nodes.end * columns];
    let coefs = occupancy.chunks(columns).map(|c| -> f64 { c.iter().sum() });
    exps.clear();
    for ((u, n), coef) in (0..positions).zip(nodes.clone()).zip(coefs) {
        let row = durations.rows(batch.row(b, t, u), 1);
        let (shift, inv_sum) = (
            state.duration_norms.shift[n],
            state.duration_norms.inv_sum[n],
        );
        if settings.fused && coef > 0.0 && inv_sum > 0.0 {
            exps.extend(row.iter().map(|x| x.to_f64() - shift));
        } else {
            exps.extend(row.iter().map(|_| f64::NEG_INFINITY));
        }
    }
    simd::exp_in_place(Isa::detected(), exps);
    let rows = exps
        .chunks(columns)
        .zip(occupancy.chunks(columns))
        .zip(nodes);
    for (u, ((exps, occupancy), n)) in rows.enumerate() {
        let coef: f64 = occupancy.iter().sum();
        let factor = coef * state.duration_norms.inv_sum[n];
        // SAFETY: the caller's guarantee.
        let g = unsafe { out.rows_mut(batch.row(b, t, u), 1) };
        for ((g, &e), &c) in g.iter_mut().zip(exps).zip(occupancy) {
            let soft = if e > 0.0 { factor * e } else { 0.0 };
            *g = F::from_f64(weight * (soft - c).clamp(-settings.clip, settings.clip));
        }
    }
}
