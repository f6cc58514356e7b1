//! The α/β dynamic programme over one item's lattice, in f64.

use crate::cpu::front::NodeScores;
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
}

/// Runs the α and β recursions of DESIGN.md §2 over `scores`.
pub fn alpha_beta(scores: &NodeScores) -> Lattice {
    let (frames, positions) = (scores.frames, scores.positions);
    let alpha = forward_variable(scores, log_add_exp);
    let mut beta = vec![f64::NEG_INFINITY; frames * positions];
    for t in (0..frames).rev() {
        for u in (0..positions).rev() {
            let n = scores.node(t, u);
            let by_blank = if t + 1 < frames {
                beta[scores.node(t + 1, u)] + scores.blank[n]
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
        }
    }
    let log_p = beta[0];
    Lattice { alpha, beta, log_p }
}

/// The forward recursion over `scores` with `combine` joining the two ways into a node:
/// `log_add_exp` gives α (all partial paths), `f64::max` the Viterbi score of the best partial
/// path from (0,0) to each node. Indexed like [`NodeScores`]; (0,0) holds 0.
pub fn forward_variable(scores: &NodeScores, combine: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (frames, positions) = (scores.frames, scores.positions);
    let mut alpha = vec![f64::NEG_INFINITY; frames * positions];
    alpha[0] = 0.0;
    for t in 0..frames {
        for u in 0..positions {
            let n = scores.node(t, u);
            if n == 0 {
                continue;
            }
            let (from_blank, from_emit) = incoming(scores, &alpha, t, u);
            alpha[n] = combine(from_blank, from_emit);
        }
    }
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

/// Occupancies of the two arcs leaving node (t,u): (blank arc, emission arc), each
/// exp(α + arc score + β(next) − ln P). The final blank at (T_b−1, U_b) leaves the lattice.
#[inline]
pub fn arc_occupancies(scores: &NodeScores, lattice: &Lattice, t: usize, u: usize) -> (f64, f64) {
    let n = scores.node(t, u);
    let a = lattice.alpha[n] - lattice.log_p;
    let blank = if t + 1 < scores.frames {
        (a + scores.blank[n] + lattice.beta[scores.node(t + 1, u)]).exp()
    } else if u + 1 == scores.positions {
        (a + scores.blank[n]).exp()
    } else {
        0.0
    };
    let emit = if u + 1 < scores.positions {
        (a + scores.emit[n] + lattice.beta[n + 1]).exp()
    } else {
        0.0
    };
    (blank, emit)
}
