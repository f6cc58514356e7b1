//! Gradient pass: one more read of the logits and one write of the gradient (or, where the
//! gradient stays in cache, a read and a write of the softmax terms the front pass stored in it:
//! [`SoftmaxTerms::Stored`]).
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
use crate::cpu::lattice::Lattice;
use crate::cpu::simd::{store_fence, FrameRows, GradRow};
use crate::element::Float;

/// Bytes of short gradient rows staged before they are streamed out together.
const STAGE_BYTES: usize = 16 << 10;

/// Bytes of a cache line.
const LINE_BYTES: usize = 64;

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

/// Where the gradient pass gets each row's softmax terms exp(x − shift).
#[derive(Debug, Clone, Copy)]
pub enum SoftmaxTerms<'a, F> {
    /// Computed again from the item's block of the logits (see [`grad_frames`]).
    FromLogits(&'a [F]),
    /// Stored in the output by the front pass ([`Float::frame_scores`] with `exps`), for a type
    /// with [`Float::STORES_SOFTMAX_TERMS`] and unstreamed settings.
    Stored,
}

/// Writes frames `first_frame..` of item `b`'s gradient into `out` (a whole number of frames of
/// [`Batch::row_stride`] rows: (U+1, V) padded, (U_b+1, V) packed), with the softmax terms from
/// `terms`.
///
/// # Panics
/// With [`SoftmaxTerms::Stored`] when the settings stream or the type stores no terms.
pub fn grad_frames<F: Float>(
    terms: SoftmaxTerms<'_, F>,
    out: &mut [F],
    first_frame: usize,
    batch: &Batch,
    b: usize,
    item: ItemState<'_>,
    settings: GradSettings,
) {
    let v = batch.vocab;
    let labels = batch.labels(b);
    let frame_len = batch.row_stride(b) * v;
    let ItemState {
        scores,
        lattice,
        weight,
    } = item;
    let possible = lattice.log_p > f64::NEG_INFINITY;
    let logits = match terms {
        SoftmaxTerms::FromLogits(logits) => Some(logits),
        SoftmaxTerms::Stored => {
            assert!(!settings.stream && F::STORES_SOFTMAX_TERMS);
            None
        }
    };
    // Streamed rows shorter than the stage are computed into it (in L1) and streamed out a few
    // rows at a time, so that only the stage's ends, not every row's, are partial lines. Rows of
    // whole lines that start on a line have none: they are streamed as they are computed.
    let row_bytes = v * std::mem::size_of::<F>();
    let stage_rows = STAGE_BYTES / row_bytes;
    let whole_lines =
        row_bytes.is_multiple_of(LINE_BYTES) && (out.as_ptr() as usize).is_multiple_of(LINE_BYTES);
    let mut stage = if settings.stream && stage_rows > 0 && !whole_lines {
        vec![F::zero(); stage_rows * v]
    } else {
        Vec::new()
    };
    let zero = |out: &mut [F]| F::write_zeros(out, settings.stream);
    let mut blank_arcs = vec![0.0; scores.positions];
    let mut emit_arcs = vec![0.0; scores.positions];
    let mut params = Vec::with_capacity(scores.positions);
    for (i, frame) in out.chunks_mut(frame_len).enumerate() {
        let t = first_frame + i;
        let frame_start = t * frame_len;
        if !possible || t >= scores.frames {
            zero(frame);
            continue;
        }
        let (rows, padding) = frame.split_at_mut(scores.positions * v);
        zero(padding);
        lattice.frame_arcs(scores, t, &mut blank_arcs, &mut emit_arcs);
        if settings.emit_scale != 1.0 {
            emit_arcs
                .iter_mut()
                .for_each(|arc| *arc *= settings.emit_scale);
        }
        let here = scores.node(t, 0)..scores.node(t, 0) + scores.positions;
        let frame_rows = FrameRows {
            shift: &scores.shift[here.clone()],
            inv_sum: &scores.inv_sum[here],
            blank_arcs: &blank_arcs,
            emit_arcs: &emit_arcs,
            blank: batch.blank,
            labels,
            softmax: settings.fused_log_softmax,
            scale: weight,
            clip: settings.clip.unwrap_or(f64::INFINITY),
        };
        let Some(logits) = logits else {
            F::grad_rows_in_place(rows, v, &frame_rows);
            continue;
        };
        params.clear();
        params.extend((0..frame_rows.len()).map(|u| frame_rows.row(u)));
        let input = &logits[frame_start..frame_start + rows.len()];
        if !settings.stream {
            // Rows that stay in cache all go through the row kernel, which writes a zero row
            // without reading its input: finding the runs first would cost each short row a
            // second look at its parameters.
            F::grad_rows(input, rows, v, &params, false);
            continue;
        }
        // Runs of rows no path of note goes through (all zeros: on long items, most of each
        // frame) are streamed out at once; the other runs go through the row kernel.
        let mut first = 0;
        while first < params.len() {
            let zeros = F::grad_row_is_zero(&params[first]);
            let end = params[first..]
                .iter()
                .position(|p| F::grad_row_is_zero(p) != zeros)
                .map_or(params.len(), |n| first + n);
            let span = first * v..end * v;
            if zeros {
                zero(&mut rows[span]);
            } else {
                let run = (&input[span.clone()], &mut rows[span], &params[first..end]);
                write_rows(run, v, &mut stage, settings.stream);
            }
            first = end;
        }
    }
    if settings.stream {
        store_fence();
    }
}

/// Writes the gradient rows `(input, out, params)` of `len` elements: with a stage (streamed
/// short rows), computed into it a stage at a time and streamed out; otherwise directly.
fn write_rows<F: Float>(
    (input, out, params): (&[F], &mut [F], &[GradRow]),
    len: usize,
    stage: &mut [F],
    stream: bool,
) {
    if stage.is_empty() {
        F::grad_rows(input, out, len, params, stream);
        return;
    }
    let rows_per_stage = stage.len() / len;
    let chunks = out
        .chunks_mut(stage.len())
        .zip(input.chunks(stage.len()))
        .zip(params.chunks(rows_per_stage));
    for ((chunk_out, chunk_input), chunk_params) in chunks {
        let staged = &mut stage[..chunk_out.len()];
        F::grad_rows(chunk_input, staged, len, chunk_params, false);
        F::stream_copy(staged, chunk_out);
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array4};

    use super::{grad_frames, GradSettings, ItemState};
    use crate::{forward, LossInput, Options, Targets};

    /// Streamed (staged for short rows, direct for long ones) and plain stores write the same
    /// bits, at several alignments of the output, padding (a frame and a label position beyond
    /// the lengths) included.
    #[test]
    fn streaming_writes_what_plain_stores_write() {
        let (frames, positions) = (3, 4);
        for vocab in [7usize, 37, 1000, 4099, 5000] {
            let mut seed = vocab as u64;
            let logits = Array4::from_shape_fn((1, frames, positions, vocab), |_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 40) as f32 / (1u64 << 22) as f32 - 2.0
            });
            let targets =
                Array2::from_shape_fn((1, positions - 1), |(_, u)| (1 + u % (vocab - 1)) as i32);
            let logit_lengths = Array1::from_elem(1, frames as i32 - 1);
            let target_lengths = Array1::from_elem(1, (positions - 2) as i32);
            let input = LossInput {
                logits: logits.view(),
                targets: Targets::Padded(targets.view()),
                logit_lengths: logit_lengths.view(),
                target_lengths: target_lengths.view(),
            };
            let state = forward(&input, &Options::default()).unwrap();
            let (scores, lattice) = state.state().item(0);
            let item = ItemState {
                scores,
                lattice,
                weight: 0.5,
            };
            let block = logits.as_slice().unwrap();
            let write = |out: &mut [f32], stream: bool| {
                let settings = GradSettings {
                    fused_log_softmax: true,
                    emit_scale: 1.0,
                    clip: None,
                    stream,
                };
                let terms = super::SoftmaxTerms::FromLogits(block);
                grad_frames(terms, out, 0, state.batch(), 0, item, settings);
            };
            let mut plain = vec![f32::NAN; block.len()];
            write(&mut plain, false);
            let frame_len = positions * vocab;
            let padding = (0..frames - 1)
                .flat_map(|t| t * frame_len + (positions - 1) * vocab..(t + 1) * frame_len)
                .chain((frames - 1) * frame_len..block.len());
            assert!(padding.map(|i| plain[i]).all(|g| g == 0.0), "V = {vocab}");
            for offset in 0..4 {
                let mut streamed = vec![f32::NAN; block.len() + offset];
                write(&mut streamed[offset..], true);
                assert_eq!(
                    streamed[offset..]
                        .iter()
                        .map(|x| x.to_bits())
                        .collect::<Vec<_>>(),
                    plain.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "V = {vocab}, offset {offset}"
                );
            }
        }
    }
}
