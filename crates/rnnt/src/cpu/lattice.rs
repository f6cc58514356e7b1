//! The α/β dynamic programme over one item's lattice, in f64.

use crate::cpu::front::NodeScores;
use crate::cpu::simd;
use crate::logspace::log_add_exp;

/// Forward and backward variables of one item, indexed like [`NodeScores`].
#[derive(Debug, Clone, Default)]
pub struct Lattice {
    /// α(t,u): log-probability of all partial paths from (0,0) to (t,u).
    pub alpha: Vec<f64>,
    /// β(t,u): log-probability of all paths from (t,u) to the end, final blank included.
    pub beta: Vec<f64>,
    /// ln P(y|x) = β(0,0); −inf for an impossible item.
    pub log_p: f64,
    /// Occupancy of the blank arc leaving (t,u): exp(α(t,u) + blank(t,u) + β(t+1,u) − ln P), the
    /// final blank at (T_b−1, U_b) included; 0 where there is no arc or the item is impossible.
    pub blank_arc: Vec<f64>,
    /// Occupancy of the emission arc leaving (t,u): exp(α(t,u) + emit(t,u) + β(t,u+1) − ln P);
    /// 0 at u = U_b or when the item is impossible.
    pub emit_arc: Vec<f64>,
}

/// Runs the α and β recursions of DESIGN.md §2 over `scores`, the two at once on the current rayon
/// pool (they only share the read-only scores).
pub fn alpha_beta(scores: &NodeScores) -> Lattice {
    let (alpha, beta) = rayon::join(|| forward_variable(scores, log_add_exp), || beta(scores));
    let log_p = beta[0];
    let (blank_arc, emit_arc) = arc_occupancy_arrays(scores, &alpha, &beta, log_p);
    Lattice {
        alpha,
        beta,
        log_p,
        blank_arc,
        emit_arc,
    }
}

/// Rows per band of the wavefront order below.
const BAND: usize = 8;

/// Visits every node (t, u) of a frames × positions lattice so that each one comes after the
/// nodes it depends on: (t−1, u) and (t, u−1), or, `reversed`, (t+1, u) and (t, u+1).
///
/// The order is a wavefront over bands of [`BAND`] rows: at each step the band's rows advance one
/// position each, row j one position behind row j−1. The nodes of one step do not depend on each
/// other, so the out-of-order core overlaps their exp / log1p chains instead of waiting on one
/// long dependency chain per row, while each row is still read in order.
#[inline(always)]
fn wavefront(frames: usize, positions: usize, reversed: bool, mut visit: impl FnMut(usize, usize)) {
    for band_start in (0..frames).step_by(BAND) {
        let rows = BAND.min(frames - band_start);
        for step in 0..positions + rows - 1 {
            for j in 0..rows.min(step + 1) {
                let lag = step - j;
                if lag >= positions {
                    continue;
                }
                if reversed {
                    visit(frames - 1 - band_start - j, positions - 1 - lag);
                } else {
                    visit(band_start + j, lag);
                }
            }
        }
    }
}

/// The forward recursion over `scores` with `combine` joining the two ways into a node:
/// `log_add_exp` gives α (all partial paths), `f64::max` the Viterbi score of the best partial
/// path from (0,0) to each node. Indexed like [`NodeScores`]; (0,0) holds 0. Visited in the
/// [`wavefront`] order.
pub fn forward_variable(scores: &NodeScores, combine: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (frames, positions) = (scores.frames, scores.positions);
    let mut alpha = vec![f64::NEG_INFINITY; frames * positions];
    alpha[0] = 0.0;
    wavefront(frames, positions, false, |t, u| {
        if t == 0 && u == 0 {
            return;
        }
        let (from_blank, from_emit) = incoming(scores, &alpha, t, u);
        alpha[scores.node(t, u)] = combine(from_blank, from_emit);
    });
    alpha
}

/// The two candidate scores of node (t,u) under a forward variable `alpha`: (via the blank arc
/// from (t−1,u), via the emission arc from (t,u−1)); −inf where that predecessor does not exist.
#[inline]
pub fn incoming(scores: &NodeScores, alpha: &[f64], t: usize, u: usize) -> (f64, f64) {
    let from_blank = if t > 0 {
        let p = scores.node(t - 1, u);
        alpha[p] + scores.blank[p]
    } else {
        f64::NEG_INFINITY
    };
    let from_emit = if u > 0 {
        let p = scores.node(t, u - 1);
        alpha[p] + scores.emit[p]
    } else {
        f64::NEG_INFINITY
    };
    (from_blank, from_emit)
}

/// β(t,u) = logaddexp(β(t+1,u) + blank(t,u), β(t,u+1) + emit(t,u)), β(T−1,U) = blank(T−1,U).
fn beta(scores: &NodeScores) -> Vec<f64> {
    let (frames, positions) = (scores.frames, scores.positions);
    let mut beta = vec![f64::NEG_INFINITY; frames * positions];
    wavefront(frames, positions, true, |t, u| {
        let n = scores.node(t, u);
        let by_blank = if t + 1 < frames {
            beta[n + positions] + scores.blank[n]
        } else if u + 1 == positions {
            scores.blank[n]
        } else {
            f64::NEG_INFINITY
        };
        let by_emit = if u + 1 < positions {
            beta[n + 1] + scores.emit[n]
        } else {
            f64::NEG_INFINITY
        };
        beta[n] = log_add_exp(by_blank, by_emit);
    });
    beta
}

/// Occupancies of the two arcs leaving node (t,u): (blank arc, emission arc), each
/// exp(α + arc score + β(next) − ln P) (see [`Lattice::blank_arc`], [`Lattice::emit_arc`]).
#[inline]
pub fn arc_occupancies(scores: &NodeScores, lattice: &Lattice, t: usize, u: usize) -> (f64, f64) {
    let n = scores.node(t, u);
    (lattice.blank_arc[n], lattice.emit_arc[n])
}

/// Occupancies of the two arcs leaving every node: (blank arcs, emission arcs), each
/// exp(α + arc score + β(next) − ln P), the exps vectorised. The final blank at (T_b−1, U_b)
/// leaves the lattice.
fn arc_occupancy_arrays(
    scores: &NodeScores,
    alpha: &[f64],
    beta: &[f64],
    log_p: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (frames, positions) = (scores.frames, scores.positions);
    let nodes = frames * positions;
    if log_p == f64::NEG_INFINITY {
        return (vec![0.0; nodes], vec![0.0; nodes]);
    }
    let mut blank_arc = Vec::with_capacity(nodes);
    let mut emit_arc = Vec::with_capacity(nodes);
    for (n, (t, u)) in (0..frames)
        .flat_map(|t| (0..positions).map(move |u| (t, u)))
        .enumerate()
    {
        let a = alpha[n] - log_p;
        blank_arc.push(if t + 1 < frames {
            a + scores.blank[n] + beta[n + positions]
        } else if u + 1 == positions {
            a + scores.blank[n]
        } else {
            f64::NEG_INFINITY
        });
        emit_arc.push(if u + 1 < positions {
            a + scores.emit[n] + beta[n + 1]
        } else {
            f64::NEG_INFINITY
        });
    }
    simd::exp_in_place(&mut blank_arc);
    simd::exp_in_place(&mut emit_arc);
    (blank_arc, emit_arc)
}
