//! Alignments: the Viterbi best path through each item's lattice, the occupancy of every node and
//! the posterior of each label's emission frame.
//!
//! Everything is read off the lattice the loss already computes ([`forward`]): the front pass
//! gives blank(t,u) and emit(t,u), α/β give the occupancies of DESIGN.md §2, and the best path is
//! the same forward recursion with `max` in place of `logaddexp`
//! ([`forward_variable`]), in f64, followed by a backtrace.
//!
//! A path visits nodes (t,u) from (0,0) to (T_b−1,U_b): a blank arc moves t→t+1, an emission arc
//! emits label y[u+1] at frame t and moves u→u+1, and the path ends with the final blank at
//! (T_b−1,U_b). Each step raises t+u by one, so every path crosses each anti-diagonal t+u = d
//! exactly once: the occupancy summed over an anti-diagonal is 1.
//!
//! **Ties.** When two paths have exactly the same (f64) score, the one that emits labels earlier
//! wins: the backtrace from (T_b−1,U_b) takes the blank arc into a node whenever it is at least as
//! good as the emission arc. Among all best paths, the one returned emits every label at its
//! earliest possible frame (the best paths of a grid lattice are closed under taking, frame by
//! frame, the larger label position of two of them).
//!
//! **Impossible items** (P = 0, every path masked by −inf): no best path ([`Alignment::best_path`]
//! is `None`, [`Alignment::score`] is −inf) and all occupancies and posteriors are 0.

use ndarray::Array2;
use rayon::prelude::*;

use crate::batch::{LossInput, ScoresDim};
use crate::cpu::front::NodeScores;
use crate::cpu::lattice::{forward_variable, incoming, Lattice};
use crate::cpu::threads::run_in_pool;
use crate::element::{Float, Index};
use crate::error::Result;
use crate::loss::forward;
use crate::options::Options;

/// The kind of an arc of the lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArcKind {
    /// A blank: t → t+1 (or, at (T_b−1,U_b), the final blank that leaves the lattice).
    Blank,
    /// The emission of the next label y[u+1] at frame t: u → u+1.
    Emit,
}

/// The most probable path through one item's lattice.
#[derive(Debug, Clone, PartialEq)]
pub struct BestPath {
    /// The nodes visited, (t, u) from (0, 0) to (T_b−1, U_b): T_b + U_b nodes.
    pub nodes: Vec<(usize, usize)>,
    /// `arcs[i]` is the arc leaving `nodes[i]`; the last is the final blank.
    pub arcs: Vec<ArcKind>,
    /// ln of the path's probability, final blank included (≤ ln P).
    pub score: f64,
    /// For each label y[j+1] (j = 0..U_b), the frame t at which the path emits it.
    pub emit_frames: Vec<usize>,
    /// `durations[i]`: the frames `arcs[i]` advances (1 for a standard blank, 0 for a standard
    /// label; a TDT arc's duration, a big blank's, 1 for every arc of one symbol per frame).
    pub durations: Vec<usize>,
}

/// Mean and standard deviation of a label's emission frame under the posterior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSpread {
    /// Expected emission frame Σ_t t·P(t).
    pub mean: f64,
    /// Standard deviation of the emission frame.
    pub std_dev: f64,
}

/// The alignment of one item: best path, node occupancy and emission-frame posteriors.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// The item's labels y[1..=U_b].
    pub labels: Vec<u32>,
    /// ln P(y|x), the log-sum over every path (−inf for an impossible item).
    pub log_p: f64,
    /// The Viterbi path; `None` for an impossible item.
    pub best_path: Option<BestPath>,
    /// (T_b, U_b+1) node occupancy γ(t,u) = exp(α + β − ln P): the probability that a path
    /// visits (t,u).
    pub occupancy: Array2<f64>,
    /// (U_b, T_b) posterior of each label's emission frame: row j, column t is the occupancy of
    /// the emission arc (t,j) → (t,j+1), the probability that label y[j+1] is emitted at frame t.
    /// Each row sums to 1.
    pub emit_posterior: Array2<f64>,
}

impl Alignment {
    /// The best path's score: its natural-log probability, or −inf when there is no path.
    pub fn score(&self) -> f64 {
        self.best_path
            .as_ref()
            .map_or(f64::NEG_INFINITY, |path| path.score)
    }

    /// Mean and spread of each label's emission frame under [`Self::emit_posterior`] (U_b
    /// entries; NaN for an impossible item, whose posteriors are 0).
    pub fn emit_frame_spreads(&self) -> Vec<FrameSpread> {
        self.emit_posterior
            .rows()
            .into_iter()
            .map(|row| {
                let mass: f64 = row.sum();
                let moment = |power: i32| {
                    row.iter()
                        .enumerate()
                        .map(|(t, p)| p * (t as f64).powi(power))
                        .sum::<f64>()
                        / mass
                };
                let mean = moment(1);
                let variance = (moment(2) - mean * mean).max(0.0);
                FrameSpread {
                    mean,
                    std_dev: variance.sqrt(),
                }
            })
            .collect()
    }
}

/// Aligns every item of a batch: validation and front pass as in [`forward`], then per item the
/// best path and the occupancies.
///
/// `input` is as for the loss: (B, T, U+1, V) padded or (ΣT_b·(U_b+1), V) packed logits
/// (log-probs when `fused_log_softmax` is off), padded or packed targets, (B,) lengths. Of `options` only `blank`, `fused_log_softmax` and
/// `threads` matter. Returns B alignments in batch order.
///
/// # Errors
/// As [`forward`]: a shape, value or layout error naming the argument at fault.
pub fn align<F: Float, I: Index, D: ScoresDim>(
    input: &LossInput<'_, F, I, D>,
    options: &Options,
) -> Result<Vec<Alignment>> {
    let lattices = forward(input, options)?;
    run_in_pool(options.threads, || {
        (0..lattices.batch().batch_size)
            .into_par_iter()
            .map(|b| {
                let (scores, lattice) = lattices.state().item(b);
                align_item(scores, lattice, lattices.batch().labels(b))
            })
            .collect()
    })
}

/// Aligns one item from its node scores, α/β and labels.
pub(crate) fn align_item(scores: &NodeScores, lattice: &Lattice, labels: &[u32]) -> Alignment {
    let (frames, positions) = (scores.frames, scores.positions);
    let mut occupancy = Array2::zeros((frames, positions));
    let mut emit_posterior = Array2::zeros((labels.len(), frames));
    if lattice.log_p > f64::NEG_INFINITY {
        let (mut blank_arcs, mut emit_arcs) = (vec![0.0; positions], vec![0.0; positions]);
        for t in 0..frames {
            lattice.frame_arcs(scores, t, &mut blank_arcs, &mut emit_arcs);
            for u in 0..positions {
                // Every path through a node leaves it by one of its two arcs (the last node by
                // the final blank).
                occupancy[(t, u)] = blank_arcs[u] + emit_arcs[u];
                if u < labels.len() {
                    emit_posterior[(u, t)] = emit_arcs[u];
                }
            }
        }
    }
    Alignment {
        labels: labels.to_vec(),
        log_p: lattice.log_p,
        // An impossible item has no best path, even where a max-plus sum overflowed to +inf
        // and the final blank's −inf made its score NaN (log-probs near f64::MAX; fuzzing).
        best_path: if lattice.log_p > f64::NEG_INFINITY {
            best_path(scores)
        } else {
            None
        },
        occupancy,
        emit_posterior,
    }
}

/// The Viterbi path of one item, `None` when every path has probability 0. Ties prefer the
/// blank arc into a node (earlier emissions; see the module documentation).
fn best_path(scores: &NodeScores) -> Option<BestPath> {
    let (frames, positions) = (scores.frames, scores.positions);
    let best = forward_variable(scores, f64::max);
    let (mut t, mut u) = (frames - 1, positions - 1);
    let last = scores.node(t, u);
    let score = best[last] + scores.blank[last];
    if score == f64::NEG_INFINITY {
        return None;
    }
    let mut nodes = vec![(t, u)];
    let mut arcs = vec![ArcKind::Blank];
    let mut emit_frames = vec![0; positions - 1];
    while (t, u) != (0, 0) {
        let (from_blank, from_emit) = incoming(scores, &best, t, u);
        if from_blank >= from_emit {
            t -= 1;
            arcs.push(ArcKind::Blank);
        } else {
            u -= 1;
            emit_frames[u] = t;
            arcs.push(ArcKind::Emit);
        }
        nodes.push((t, u));
    }
    nodes.reverse();
    arcs.reverse();
    let durations = arcs
        .iter()
        .map(|&kind| usize::from(kind == ArcKind::Blank))
        .collect();
    Some(BestPath {
        nodes,
        arcs,
        score,
        emit_frames,
        durations,
    })
}
