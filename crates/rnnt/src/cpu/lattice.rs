//! The α/β dynamic programme over one item's lattice, in f64.

use crate::cpu::front::NodeScores;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, Isa};

mod scaled;
mod walk;

use scaled::ScaledLattice;
use walk::DiagonalWalk;

/// Forward and backward variables of one item: in log space, or, for small tall lattices whose
/// probabilities allow it, as rescaled probabilities (module `lattice::scaled`).
#[derive(Debug, Clone, Default)]
pub struct Lattice {
    values: Values,
    /// ln P(y|x) = β(0,0); −inf for an impossible item.
    pub log_p: f64,
}

/// How a [`Lattice`] holds α and β.
#[derive(Debug, Clone)]
enum Values {
    /// α(t,u), the log-probability of all partial paths from (0,0) to (t,u), and β(t,u), of all
    /// paths from (t,u) to the end, final blank included; indexed like [`NodeScores`].
    Log { alpha: NodeVec, beta: NodeVec },
    /// The same as rescaled probabilities.
    Scaled(ScaledLattice),
}

impl Default for Values {
    fn default() -> Self {
        Values::Log {
            alpha: NodeVec::default(),
            beta: NodeVec::default(),
        }
    }
}

impl Lattice {
    /// Whether α and β were walked in probability space (module `lattice::scaled`).
    pub fn is_scaled(&self) -> bool {
        matches!(self.values, Values::Scaled(_))
    }

    /// ln α and ln β, indexed like [`NodeScores`].
    pub fn log_alpha_beta(&self) -> (Vec<f64>, Vec<f64>) {
        match &self.values {
            Values::Log { alpha, beta } => (alpha.to_vec(), beta.to_vec()),
            Values::Scaled(scaled) => scaled.log_alpha_beta(),
        }
    }

    /// The occupancies of the arcs leaving the nodes of frame `t` (the gradient's arc terms):
    /// `blank_out[u]` = exp(α(t,u) + blank(t,u) + β(t+1,u) − ln P), the final blank at
    /// (T_b−1, U_b) included, and `emit_out[u]` = exp(α(t,u) + emit(t,u) + β(t,u+1) − ln P); 0
    /// where there is no arc or the item is impossible.
    ///
    /// Computed a frame at a time, where they are used (the gradient pass), so that no arrays of
    /// every node's occupancies are written and read back: in log space the exponents are
    /// written and then exponentiated in place with the vector exp while the row is in L1; over
    /// probabilities they are products of α, the arc's probability and β.
    ///
    /// # Panics
    /// If an output is not `scores.positions` long or `t` is not a frame of `scores`.
    pub fn frame_arcs(
        &self,
        scores: &NodeScores,
        t: usize,
        blank_out: &mut [f64],
        emit_out: &mut [f64],
    ) {
        let (frames, positions) = (scores.frames, scores.positions);
        assert!(t < frames, "frame {t} of {frames}");
        assert!(blank_out.len() == positions && emit_out.len() == positions);
        let log_p = self.log_p;
        if log_p == f64::NEG_INFINITY {
            blank_out.fill(0.0);
            emit_out.fill(0.0);
            return;
        }
        let (alpha, beta) = match &self.values {
            Values::Log { alpha, beta } => (alpha, beta),
            Values::Scaled(scaled) => return scaled.frame_arcs(t, blank_out, emit_out),
        };
        let n = t * positions;
        let here = n..n + positions;
        let (a, blank, emit) = (
            &alpha[here.clone()],
            &scores.blank[here.clone()],
            &scores.emit[here],
        );
        if t + 1 < frames {
            let beta_below = &beta[n + positions..n + 2 * positions];
            for (((out, &a), &score), &b) in blank_out.iter_mut().zip(a).zip(blank).zip(beta_below)
            {
                *out = at_most_one(a - log_p + score + b);
            }
        } else {
            blank_out.fill(f64::NEG_INFINITY);
            blank_out[positions - 1] = at_most_one(a[positions - 1] - log_p + blank[positions - 1]);
        }
        let beta_right = &beta[n + 1..n + positions];
        for (((out, &a), &score), &b) in emit_out.iter_mut().zip(a).zip(emit).zip(beta_right) {
            *out = at_most_one(a - log_p + score + b);
        }
        emit_out[positions - 1] = f64::NEG_INFINITY;
        let isa = Isa::detected();
        simd::exp_in_place(isa, blank_out);
        simd::exp_in_place(isa, emit_out);
    }
}

/// The log of an arc occupancy, a probability, kept ≤ 0 (NaN stays NaN). With log-probabilities
/// of huge magnitude (log-probs input of 1e38) the sum α + score + β − ln P loses every digit
/// below the rounding of its terms, and could exceed 0 by far: its exp would be +inf, and the
/// gradient infinite where its true value lies in [−1, 0] (found by fuzzing).
fn at_most_one(log_occupancy: f64) -> f64 {
    if log_occupancy > 0.0 {
        0.0
    } else {
        log_occupancy
    }
}

/// Runs the α and β recursions of DESIGN.md §2 over `scores`: over probabilities, frame by
/// frame, for a lattice of at most 16 Ki nodes within the bounds that keep that exact (module
/// `lattice::scaled`), else in log space, α and β each a `DiagonalWalk` (they only share the
/// read-only scores) with the vectorised log-space sum:
/// α(t,u) = logaddexp(α(t−1,u) + blank(t−1,u), α(t,u−1) + emit(t,u−1)) from α(0,0) = 0, and
/// β(t,u) = logaddexp(β(t+1,u) + blank(t,u), β(t,u+1) + emit(t,u)) from β(T−1,U) = blank(T−1,U).
///
/// In log space, a lattice walked as one band goes α and β in lock-step on this thread, both
/// walks' steps through one call of the log-space sum: a small lattice is not worth handing to
/// another thread, and the two walks' independent vectors can overlap. Larger lattices walk α and β at once on the current rayon
/// pool.
pub fn alpha_beta(scores: &NodeScores) -> Lattice {
    if scaled::fits(scores.frames, scores.positions) {
        if let Some(scaled) = scaled::alpha_beta(scores) {
            return Lattice {
                log_p: scaled.log_p(),
                values: Values::Scaled(scaled),
            };
        }
    }
    let last = scores.blank.last().copied().unwrap_or(f64::NEG_INFINITY);
    let mut alpha = DiagonalWalk::<false>::new(scores, 0.0);
    let mut beta = DiagonalWalk::<true>::new(scores, last);
    let isa = Isa::detected();
    if alpha.is_single_band() {
        let width = alpha.width() + beta.width();
        let mut via_blank = vec![f64::NEG_INFINITY; width];
        let mut via_emit = vec![f64::NEG_INFINITY; width];
        let mut values = vec![0.0; width];
        loop {
            let a = alpha.gather(&mut via_blank, &mut via_emit);
            let b = beta.gather(&mut via_blank[a..], &mut via_emit[a..]);
            if a + b == 0 {
                break;
            }
            let n = a + b;
            simd::log_add_exp(isa, &via_blank[..n], &via_emit[..n], &mut values[..n]);
            alpha.scatter(&values[..a]);
            beta.scatter(&values[a..n]);
        }
    } else {
        rayon::join(
            || alpha.run(|a, b, out| simd::log_add_exp(isa, a, b, out)),
            || beta.run(|a, b, out| simd::log_add_exp(isa, a, b, out)),
        );
    }
    let beta = beta.into_values();
    let log_p = beta.first().copied().unwrap_or(f64::NEG_INFINITY);
    Lattice {
        values: Values::Log {
            alpha: alpha.into_values(),
            beta,
        },
        log_p,
    }
}

/// The forward recursion over `scores` with `combine` joining the two ways into a node:
/// `log_add_exp` gives α (all partial paths), `f64::max` the Viterbi score of the best partial
/// path from (0,0) to each node. Indexed like [`NodeScores`]; (0,0) holds 0.
pub fn forward_variable(scores: &NodeScores, combine: impl Fn(f64, f64) -> f64) -> NodeVec {
    let mut walk = DiagonalWalk::<false>::new(scores, 0.0);
    walk.run(|via_blank, via_emit, out| {
        for ((out, &a), &b) in out.iter_mut().zip(via_blank).zip(via_emit) {
            *out = combine(a, b);
        }
    });
    walk.into_values()
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

#[cfg(test)]
mod tests;
