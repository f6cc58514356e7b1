//! The variants' front pass: per node, the log-probability of every column its arcs read and
//! each row's softmax normalisation, read a run of frames at a time ([`FrontRun`]) so that the
//! runs of a whole batch share the threads however ragged its items.
//!
//! A frame's token rows go through the SIMD row kernel together where the head's rows are
//! dense (one row at a time otherwise); its duration rows (TDT) are widened to f64 and their
//! exps taken together, vectorised.

use crate::batch::Batch;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, FrameScores, Isa, ScoreColumns};
use crate::element::Float;
use crate::error::Result;
use crate::variant::arcs::{big_blank, ItemShape, BLANK, LABEL};
use crate::variant::rows::Rows;
use crate::variant::topology::Variant;

/// The heads of a call and their names in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads<'a, F> {
    /// The token head.
    pub tokens: Rows<'a, F>,
    /// The duration head (TDT).
    pub durations: Option<Rows<'a, F>>,
    /// The token head's name (`logits`, `log_probs`, `token_logits`).
    pub token_name: &'a str,
    /// Whether log_softmax is applied to the heads.
    pub fused: bool,
}

/// Each row's softmax normalisation, per node: softmax(x)_k = exp(x_k − shift) · inv_sum. In
/// log-probs mode both are 0 (no softmax term); for a row that is all −inf, inv_sum is 0.
#[derive(Debug, Clone)]
pub(crate) struct RowNorms {
    /// The row's shift (its largest element, or the kernel's anchor: see
    /// [`RowStats`](crate::cpu::simd::RowStats)).
    pub shift: NodeVec,
    /// 1 / Σ exp(x − shift).
    pub inv_sum: NodeVec,
}

impl RowNorms {
    /// Zeros for `nodes` nodes (0 nodes for a head the topology lacks).
    fn new(nodes: usize) -> RowNorms {
        RowNorms {
            shift: NodeVec::filled(nodes, 0.0),
            inv_sum: NodeVec::filled(nodes, 0.0),
        }
    }
}

/// Per node of one item: the log-probabilities its arcs read, and each row's normalisation.
#[derive(Debug, Clone)]
pub(crate) struct ItemScores {
    /// The lattice's sizes.
    pub shape: ItemShape,
    /// Token-head slots per node (`Topology::token_slots`).
    pub slots: usize,
    /// Duration-head columns per node (0 without one).
    pub columns: usize,
    /// The token head's column of each slot at each label position (`usize::MAX`: none).
    pub slot_columns: Vec<usize>,
    /// lp of every slot, nodes × slots (−inf where a node has no row).
    pub token_lp: NodeVec,
    /// ld of every duration column, nodes × columns.
    pub duration_lp: NodeVec,
    /// The token rows' normalisation.
    pub token_norms: RowNorms,
    /// The duration rows' normalisation (no nodes without a duration head).
    pub duration_norms: RowNorms,
}

/// x − lse, −inf when the row is all −inf.
#[inline]
fn normalised(x: f64, lse: f64) -> f64 {
    if lse == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else {
        x - lse
    }
}

/// (shift, 1 / sum, lse) of a row from its kernel statistics, in the input mode `fused`.
#[inline]
fn norms(shift: f64, sum: f64, fused: bool) -> (f64, f64, f64) {
    if !fused {
        (0.0, 0.0, 0.0)
    } else if shift == f64::NEG_INFINITY || sum == 0.0 {
        (shift, 0.0, f64::NEG_INFINITY)
    } else {
        (shift, 1.0 / sum, shift + sum.ln())
    }
}

/// `slice` cut into `count` consecutive pieces of `len` elements (the last may be shorter;
/// empty pieces for an empty `slice`).
fn pieces(mut slice: &mut [f64], len: usize, count: usize) -> Vec<&mut [f64]> {
    (0..count)
        .map(|_| {
            let cut = len.min(slice.len());
            let (piece, rest) = std::mem::take(&mut slice).split_at_mut(cut);
            slice = rest;
            piece
        })
        .collect()
}

impl ItemScores {
    /// Item `b`'s buffers, to be filled by its [`FrontRun`]s (nodes without a row keep −inf).
    pub(crate) fn new(variant: &Variant, batch: &Batch, b: usize) -> ItemScores {
        let labels = batch.labels(b);
        let shape = ItemShape::new(&variant.topology, batch.frames(b), labels.len());
        let slots = variant.topology.token_slots();
        let columns = variant.topology.duration_columns();
        let mut slot_columns = vec![usize::MAX; shape.positions * slots];
        for u in 0..shape.positions {
            let at = &mut slot_columns[u * slots..(u + 1) * slots];
            at[BLANK] = batch.blank;
            if let Some(&y) = labels.get(u) {
                at[LABEL] = y as usize;
            }
            for i in 0..slots - 2 {
                at[big_blank(i)] = batch.blank - 1 - i;
            }
        }
        let nodes = shape.nodes();
        ItemScores {
            shape,
            slots,
            columns,
            slot_columns,
            token_lp: NodeVec::filled(nodes * slots, f64::NEG_INFINITY),
            duration_lp: NodeVec::filled(nodes * columns, f64::NEG_INFINITY),
            token_norms: RowNorms::new(nodes),
            duration_norms: RowNorms::new(if columns > 0 { nodes } else { 0 }),
        }
    }

    /// The front pass of item `b` in one run (for the alignments).
    ///
    /// # Errors
    /// As [`FrontRun::score`].
    pub(crate) fn read<F: Float>(
        variant: &Variant,
        batch: &Batch,
        b: usize,
        heads: &Heads<'_, F>,
    ) -> Result<ItemScores> {
        let mut scores = ItemScores::new(variant, batch, b);
        for mut run in scores.frame_runs(b, batch.frames(b).max(1)) {
            run.score(batch, heads)?;
        }
        Ok(scores)
    }

    /// The item's frames with rows (T_b) in runs of at most `frames_per_run`, in frame order.
    pub(crate) fn frame_runs(&mut self, item: usize, frames_per_run: usize) -> Vec<FrontRun<'_>> {
        let (frames, positions) = (self.shape.frames, self.shape.positions);
        let per_run = frames_per_run.max(1);
        let count = frames.div_ceil(per_run);
        let nodes = frames * positions;
        let run_nodes = per_run * positions;
        let (slots, columns) = (self.slots, self.columns);
        let duration_nodes = if columns > 0 { nodes } else { 0 };
        let duration_run = if columns > 0 { run_nodes } else { 0 };
        let token_lp = pieces(
            &mut self.token_lp[..nodes * slots],
            run_nodes * slots,
            count,
        );
        let duration_lp = pieces(
            &mut self.duration_lp[..nodes * columns],
            run_nodes * columns,
            count,
        );
        let RowNorms { shift, inv_sum } = &mut self.token_norms;
        let token_shift = pieces(&mut shift[..nodes], run_nodes, count);
        let token_inv_sum = pieces(&mut inv_sum[..nodes], run_nodes, count);
        let RowNorms { shift, inv_sum } = &mut self.duration_norms;
        let duration_shift = pieces(&mut shift[..duration_nodes], duration_run, count);
        let duration_inv_sum = pieces(&mut inv_sum[..duration_nodes], duration_run, count);
        let (shape, slot_columns) = (self.shape, &self.slot_columns[..]);
        // Every piece list has `count` entries, so the zip loses none.
        token_lp
            .into_iter()
            .zip(duration_lp)
            .zip(token_shift.into_iter().zip(token_inv_sum))
            .zip(duration_shift.into_iter().zip(duration_inv_sum))
            .enumerate()
            .map(
                |(i, (((token_lp, duration_lp), (token_shift, token_inv_sum)), duration_norms))| {
                    FrontRun {
                        item,
                        first_frame: i * per_run,
                        frames: per_run.min(frames - i * per_run),
                        shape,
                        slots,
                        columns,
                        slot_columns,
                        token_lp,
                        duration_lp,
                        token_shift,
                        token_inv_sum,
                        duration_shift: duration_norms.0,
                        duration_inv_sum: duration_norms.1,
                    }
                },
            )
            .collect()
    }
}

/// A run of consecutive frames of one item: the unit of work of the front pass, writing its
/// frames' nodes of the item's [`ItemScores`].
#[derive(Debug)]
pub(crate) struct FrontRun<'a> {
    /// The item b.
    pub item: usize,
    first_frame: usize,
    frames: usize,
    shape: ItemShape,
    slots: usize,
    columns: usize,
    slot_columns: &'a [usize],
    token_lp: &'a mut [f64],
    duration_lp: &'a mut [f64],
    token_shift: &'a mut [f64],
    token_inv_sum: &'a mut [f64],
    duration_shift: &'a mut [f64],
    duration_inv_sum: &'a mut [f64],
}

impl FrontRun<'_> {
    /// Reads the run's rows of both heads once and scores them.
    ///
    /// # Errors
    /// [`crate::Error::Value`] naming the first NaN or +inf within the lengths (of the run).
    pub(crate) fn score<F: Float>(&mut self, batch: &Batch, heads: &Heads<'_, F>) -> Result<()> {
        let positions = self.shape.positions;
        let mut stats = vec![0.0; 2 * positions];
        let (mut lse, mut wide) = (Vec::new(), Vec::new());
        for i in 0..self.frames {
            self.score_tokens(batch, heads, i, (&mut stats, &mut lse))?;
            if let Some(durations) = &heads.durations {
                self.score_durations(batch, durations, heads.fused, i, &mut wide)?;
            }
        }
        Ok(())
    }

    /// The token rows of the run's frame `i`: the row kernel over all of them at once where
    /// the head's rows are dense, else row by row; `stats` holds 2 · positions values, `lse`
    /// is scratch.
    fn score_tokens<F: Float>(
        &mut self,
        batch: &Batch,
        heads: &Heads<'_, F>,
        i: usize,
        (stats, lse): (&mut [f64], &mut Vec<f64>),
    ) -> Result<()> {
        let (b, t) = (self.item, self.first_frame + i);
        let (positions, slots, vocab) = (self.shape.positions, self.slots, batch.vocab);
        let labels = batch.labels(b);
        let group = if heads.tokens.dense() { positions } else { 1 };
        let (blank, emit) = stats.split_at_mut(positions);
        for first in (0..positions).step_by(group) {
            let n = group.min(positions - first);
            let rows = heads.tokens.rows(batch.row(b, t, first), n);
            let at = i * positions + first..i * positions + first + n;
            let out = FrameScores {
                blank: &mut blank[..n],
                emit: &mut emit[..n],
                shift: &mut self.token_shift[at.clone()],
                sum: &mut self.token_inv_sum[at.clone()],
            };
            let columns = ScoreColumns {
                blank: batch.blank,
                labels: &labels[first.min(labels.len())..],
            };
            if !F::frame_scores(rows, vocab, out, None, columns) {
                let j = self.token_inv_sum[at]
                    .iter()
                    .position(|sum| sum.is_nan())
                    .unwrap_or(0);
                let row = &rows[j * vocab..(j + 1) * vocab];
                return Err(batch.non_finite_score(row, heads.token_name, (b, t, first + j)));
            }
            // The big blanks' columns are normalised by each row's log-sum-exp, taken before
            // the blank and label scores are normalised together (vectorised).
            let (shift, sum) = (
                &mut self.token_shift[at.clone()],
                &mut self.token_inv_sum[at],
            );
            lse.clear();
            if slots > 2 {
                let rows = shift.iter().zip(sum.iter());
                lse.extend(rows.map(|(&shift, &sum)| norms(shift, sum, heads.fused).2));
            }
            if heads.fused {
                simd::normalise_scores(
                    Isa::detected(),
                    &mut blank[..n],
                    &mut emit[..n],
                    shift,
                    sum,
                );
            } else {
                // Log-probabilities are used as they are.
                shift.fill(0.0);
                sum.fill(0.0);
            }
            for j in 0..n {
                let (u, node) = (first + j, i * positions + first + j);
                let lp = &mut self.token_lp[node * slots..(node + 1) * slots];
                (lp[BLANK], lp[LABEL]) = (blank[j], emit[j]);
                let columns = &self.slot_columns[u * slots..(u + 1) * slots];
                let row = &rows[j * vocab..(j + 1) * vocab];
                for slot in 2..slots {
                    lp[slot] = normalised(row[columns[slot]].to_f64(), lse[j]);
                }
            }
        }
        Ok(())
    }

    /// The duration rows of the run's frame `i`, widened into `wide` and their exps taken
    /// together.
    fn score_durations<F: Float>(
        &mut self,
        batch: &Batch,
        durations: &Rows<'_, F>,
        fused: bool,
        i: usize,
        wide: &mut Vec<f64>,
    ) -> Result<()> {
        let (b, t) = (self.item, self.first_frame + i);
        let (positions, columns) = (self.shape.positions, self.columns);
        wide.clear();
        for u in 0..positions {
            let row = durations.rows(batch.row(b, t, u), 1);
            if row.iter().any(|x| {
                let x = x.to_f64();
                x.is_nan() || x == f64::INFINITY
            }) {
                return Err(batch.non_finite_score(row, "duration_logits", (b, t, u)));
            }
            wide.extend(row.iter().map(|x| x.to_f64()));
        }
        let at = i * positions..(i + 1) * positions;
        let lp = &mut self.duration_lp[at.start * columns..at.end * columns];
        lp.copy_from_slice(wide);
        for (row, shift) in wide
            .chunks_mut(columns)
            .zip(&mut self.duration_shift[at.clone()])
        {
            *shift = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if *shift > f64::NEG_INFINITY {
                row.iter_mut().for_each(|x| *x -= *shift);
            }
        }
        simd::exp_in_place(Isa::detected(), wide);
        let rows = lp
            .chunks_mut(columns)
            .zip(wide.chunks(columns))
            .zip(&mut self.duration_shift[at.clone()])
            .zip(&mut self.duration_inv_sum[at]);
        for (((lp, exps), shift), inv_sum) in rows {
            let (s, inv, lse) = norms(*shift, exps.iter().sum(), fused);
            (*shift, *inv_sum) = (s, inv);
            lp.iter_mut().for_each(|x| *x = normalised(*x, lse));
        }
        Ok(())
    }
}
