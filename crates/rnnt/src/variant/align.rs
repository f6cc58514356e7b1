//! Alignments on any topology: the best path (for TDT each token's frame and duration), node
//! occupancies and each label's emission-frame posterior, read off the same front pass and
//! arcs as the loss.

use ndarray::Array2;
use rayon::prelude::*;

use crate::align::{Alignment, ArcKind, BestPath};
use crate::batch::ScoresDim;
use crate::cpu::threads::run_in_pool;
use crate::element::{Float, Index};
use crate::error::Result;
use crate::options::Options;
use crate::variant::arcs::Dest;
use crate::variant::front::ItemScores;
use crate::variant::lattice::ItemLattice;
use crate::variant::topology::Variant;
use crate::variant::{validated, VariantInput};

/// Aligns every item of a batch on `variant`'s lattice: validation and front pass as in
/// [`crate::variant::forward`], then per item the best path and the occupancies. The best path's
/// `nodes` run from (0, 0) to the node its final arc leaves (for k2's one-symbol-per-frame
/// lattices without terminal blank, to (T, U), with one arc fewer than nodes); `durations` holds
/// the frames each arc advances.
///
/// # Errors
/// As [`crate::variant::forward`].
pub fn align<F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'_, F, I, D>,
    options: &Options,
    variant: &Variant,
) -> Result<Vec<Alignment>> {
    let (batch, heads) = validated(input, options, variant)?;
    run_in_pool(options.threads, || {
        (0..batch.batch_size)
            .into_par_iter()
            .map(|b| {
                let scores = ItemScores::read(variant, &batch, b, &heads)?;
                Ok(align_item(variant, &scores, batch.labels(b)))
            })
            .collect::<Result<Vec<_>>>()
    })?
}

/// One item's alignment.
fn align_item(variant: &Variant, scores: &ItemScores, labels: &[u32]) -> Alignment {
    let shape = scores.shape;
    let lattice = ItemLattice::sum(variant, scores);
    let mut occupancy = Array2::zeros((shape.node_frames, shape.positions));
    let mut emit_posterior = Array2::zeros((labels.len(), shape.frames));
    lattice.occupancies(variant, scores, |t, u, arc, p| {
        occupancy[(t, u)] += p;
        if arc.label {
            emit_posterior[(u, t)] += p;
        }
    });
    let best_path = if lattice.log_p > f64::NEG_INFINITY {
        best_path(variant, scores, labels.len())
    } else {
        None
    };
    Alignment {
        labels: labels.to_vec(),
        log_p: lattice.log_p,
        best_path,
        occupancy,
        emit_posterior,
    }
}

/// The Viterbi path: the max-plus α with, per node, the best incoming arc (the first found on
/// ties: the earliest source node), then a backtrace from the best final arc.
fn best_path(variant: &Variant, scores: &ItemScores, labels: usize) -> Option<BestPath> {
    let shape = scores.shape;
    let mut best = vec![f64::NEG_INFINITY; shape.nodes()];
    // Per node: (source node, label?, frames) of its best incoming arc.
    let mut from = vec![(usize::MAX, false, 0usize); shape.nodes()];
    let mut end = (f64::NEG_INFINITY, usize::MAX, false, 0usize);
    best[0] = 0.0;
    let mut arcs = Vec::new();
    for t in 0..shape.node_frames {
        for u in 0..shape.positions {
            let n = shape.node(t, u);
            if best[n] == f64::NEG_INFINITY {
                continue;
            }
            variant.arcs(shape, (t, u), &mut arcs);
            for arc in &arcs {
                let score = best[n] + scores.weight(arc, t, n);
                match arc.dest {
                    Dest::Node(dt, du) => {
                        let d = shape.node(dt, du);
                        if score > best[d] {
                            best[d] = score;
                            from[d] = (n, arc.label, arc.frames);
                        }
                    }
                    Dest::End if score > end.0 => end = (score, n, arc.label, arc.frames),
                    Dest::End => {}
                }
            }
        }
    }
    let (score, last, last_label, last_frames) = end;
    if score == f64::NEG_INFINITY {
        return None;
    }
    let node_of = |n: usize| (n / shape.positions, n % shape.positions);
    let mut nodes = vec![node_of(last)];
    // The final arc: a blank, unless it is the pseudo-arc that ends at (T, U) reading nothing.
    let ends_on_node =
        variant.topology.one_symbol_per_frame() && !variant.topology.ends_with_blank();
    let (mut kinds, mut durations) = if ends_on_node {
        (Vec::new(), Vec::new())
    } else {
        (
            vec![if last_label {
                ArcKind::Emit
            } else {
                ArcKind::Blank
            }],
            vec![last_frames],
        )
    };
    let mut emit_frames = vec![0; labels];
    let mut n = last;
    while n != 0 {
        let (source, label, frames) = from[n];
        let (t, u) = node_of(source);
        if label {
            emit_frames[u] = t;
        }
        kinds.push(if label { ArcKind::Emit } else { ArcKind::Blank });
        durations.push(frames);
        nodes.push((t, u));
        n = source;
    }
    nodes.reverse();
    kinds.reverse();
    durations.reverse();
    Some(BestPath {
        nodes,
        arcs: kinds,
        score,
        emit_frames,
        durations,
    })
}
