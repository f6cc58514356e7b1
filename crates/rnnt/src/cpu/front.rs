//! Front pass: one streaming read of the logits, giving per node (t, u) the log-probability of
//! blank, of the next label, and the row's softmax normalisation (shift and 1 / Σ exp(x − shift));
//! on request it also stores each row's softmax terms for the gradient pass.
//!
//! The work is split into runs of frames ([`FrameRun`]) across the whole batch, so that a batch of
//! one long item still keeps every thread busy; each run writes its own slice of the item's
//! [`NodeScores`].

use crate::batch::Batch;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, FrameScores, Isa, ScoreColumns};
use crate::element::Float;
use crate::error::Result;

/// Per-node scores of one item over its valid T_b × (U_b+1) nodes, row-major in (t, u).
#[derive(Debug, Clone, Default)]
pub struct NodeScores {
    /// T_b.
    pub frames: usize,
    /// U_b + 1.
    pub positions: usize,
    /// log P(blank | t, u).
    pub blank: NodeVec,
    /// log P(y[u+1] | t, u); −inf at u = U_b, where no label is left.
    pub emit: NodeVec,
    /// The row's shift (see [`RowStats`](crate::cpu::simd::RowStats): the larger of
    /// x[t,u,blank] and x[t,u,y[u+1]], or the row's maximum over k; 0 in log-probs mode, where
    /// the input is used as it is): the gradient pass's softmax is exp(x − shift) · inv_sum.
    pub shift: NodeVec,
    /// 1 / Σ_k exp(x[t,u,k] − shift), at most 1 (0 in log-probs mode and for a row that is all
    /// −inf).
    pub inv_sum: NodeVec,
}

impl NodeScores {
    /// Scores of `frames` × `positions` nodes, to be filled by [`FrameRun::score`] (which writes
    /// every node; the buffers come from the [`crate::cpu::node_buffers`] pool unwritten).
    pub fn new(frames: usize, positions: usize) -> NodeScores {
        let nodes = frames * positions;
        NodeScores {
            frames,
            positions,
            blank: NodeVec::overwritable(nodes),
            emit: NodeVec::overwritable(nodes),
            shift: NodeVec::overwritable(nodes),
            inv_sum: NodeVec::overwritable(nodes),
        }
    }

    /// Flat index of node (t, u).
    #[inline]
    pub fn node(&self, t: usize, u: usize) -> usize {
        t * self.positions + u
    }

    /// Splits the scores into runs of at most `frames_per_run` frames, in frame order.
    pub fn frame_runs(&mut self, item: usize, frames_per_run: usize) -> Vec<FrameRun<'_>> {
        let chunk = frames_per_run.max(1) * self.positions;
        if chunk == 0 {
            return Vec::new();
        }
        self.blank
            .chunks_mut(chunk)
            .zip(self.emit.chunks_mut(chunk))
            .zip(self.shift.chunks_mut(chunk))
            .zip(self.inv_sum.chunks_mut(chunk))
            .enumerate()
            .map(|(i, (((blank, emit), shift), inv_sum))| FrameRun {
                item,
                first_frame: i * frames_per_run.max(1),
                blank,
                emit,
                shift,
                inv_sum,
            })
            .collect()
    }
}

/// A run of consecutive frames of one item: the unit of work of the front pass.
#[derive(Debug)]
pub struct FrameRun<'a> {
    /// The item b.
    pub item: usize,
    /// The run's first frame t.
    pub first_frame: usize,
    blank: &'a mut [f64],
    emit: &'a mut [f64],
    shift: &'a mut [f64],
    inv_sum: &'a mut [f64],
}

impl FrameRun<'_> {
    /// Reads the run's rows of item `self.item`'s block `logits` (its rows in the scores, frames
    /// [`Batch::row_stride`] rows apart: (T, U+1, V) padded, (T_b, U_b+1, V) packed) and scores
    /// them.
    ///
    /// Rejects a NaN or +inf inside the lengths (naming the run's first bad element); a row that
    /// is entirely −inf is a masked node whose scores are all −inf. Per frame, the row
    /// statistics come first and the rows' scores are then normalised together, with the
    /// vectorised `simd::normalise_scores`.
    ///
    /// With `exps` (the run's frames of the item's gradient block, laid out like `logits`), each
    /// row's softmax terms exp(x − shift) are stored there too, for
    /// [`Float::grad_rows_in_place`].
    pub fn score<F: Float>(
        &mut self,
        logits: &[F],
        mut exps: Option<&mut [F]>,
        batch: &Batch,
        fused_log_softmax: bool,
        input_name: &str,
    ) -> Result<()> {
        let b = self.item;
        let labels = batch.labels(b);
        let positions = labels.len() + 1;
        let v = batch.vocab;
        let frame_len = batch.row_stride(b) * v;
        let nodes = self
            .blank
            .chunks_mut(positions)
            .zip(self.emit.chunks_mut(positions))
            .zip(self.shift.chunks_mut(positions))
            .zip(self.inv_sum.chunks_mut(positions));
        // Each row's blank and next label scores, kept (−inf at u = U_b, where no label is
        // left), and its anchor (see `RowStats`): where either dominates the row, the shift is
        // then its maximum, found without a search.
        let columns = ScoreColumns {
            blank: batch.blank,
            labels,
        };
        for (i, (((blank, emit), shift), inv_sum)) in nodes.enumerate() {
            let t = self.first_frame + i;
            let frame = &logits[t * frame_len..];
            let frame_exps = exps
                .as_deref_mut()
                .map(|exps| &mut exps[i * frame_len..i * frame_len + positions * v]);
            let out = FrameScores {
                blank: &mut *blank,
                emit: &mut *emit,
                shift: &mut *shift,
                sum: &mut *inv_sum,
            };
            if !F::frame_scores(frame, v, out, frame_exps, columns) {
                let u = inv_sum.iter().position(|sum| sum.is_nan()).unwrap_or(0);
                let row = &frame[u * v..(u + 1) * v];
                return Err(batch.non_finite_score(row, input_name, (b, t, u)));
            }
            if fused_log_softmax {
                simd::normalise_scores(Isa::detected(), blank, emit, shift, inv_sum);
            } else {
                // Log-probabilities are used as they are (a masked row's are −inf already).
                shift.fill(0.0);
                inv_sum.fill(0.0);
            }
        }
        Ok(())
    }
}
