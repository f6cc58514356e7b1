//! The diagonal walk against the recursions computed row by row in libm arithmetic (the order and
//! arithmetic of the scalar code it replaced).

use proptest::prelude::*;

use super::{alpha_beta, forward_variable};
use crate::cpu::front::NodeScores;
use crate::logspace::log_add_exp;

/// Scores of a frames × positions lattice from `values` (blank scores, then emission scores);
/// the emission scores at u = U are −inf, as the front pass leaves them.
fn lattice_scores(frames: usize, positions: usize, values: &[f64]) -> NodeScores {
    let nodes = frames * positions;
    let mut scores = NodeScores::new(frames, positions);
    scores.blank.copy_from_slice(&values[..nodes]);
    scores.emit.copy_from_slice(&values[nodes..2 * nodes]);
    for t in 0..frames {
        let last = scores.node(t, positions - 1);
        scores.emit[last] = f64::NEG_INFINITY;
    }
    scores
}

/// The forward and backward variables row by row, joined with `combine`.
fn row_by_row(scores: &NodeScores, combine: impl Fn(f64, f64) -> f64) -> (Vec<f64>, Vec<f64>) {
    let (frames, positions) = (scores.frames, scores.positions);
    let ninf = f64::NEG_INFINITY;
    let mut alpha = vec![ninf; frames * positions];
    let mut beta = vec![ninf; frames * positions];
    for t in 0..frames {
        for u in 0..positions {
            let n = scores.node(t, u);
            alpha[n] = if n == 0 {
                0.0
            } else {
                let from_blank = if t > 0 {
                    alpha[n - positions] + scores.blank[n - positions]
                } else {
                    ninf
                };
                let from_emit = if u > 0 {
                    alpha[n - 1] + scores.emit[n - 1]
                } else {
                    ninf
                };
                combine(from_blank, from_emit)
            };
        }
    }
    for t in (0..frames).rev() {
        for u in (0..positions).rev() {
            let n = scores.node(t, u);
            beta[n] = if t + 1 == frames && u + 1 == positions {
                scores.blank[n]
            } else {
                let by_blank = if t + 1 < frames {
                    beta[n + positions] + scores.blank[n]
                } else {
                    ninf
                };
                let by_emit = if u + 1 < positions {
                    beta[n + 1] + scores.emit[n]
                } else {
                    ninf
                };
                combine(by_blank, by_emit)
            };
        }
    }
    (alpha, beta)
}

/// Asserts `got` ≈ `want` element-wise: the same infinities, else within `relative` of the larger
/// magnitude (or of 1).
fn assert_close(what: &str, got: &[f64], want: &[f64], relative: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (n, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_infinite() || g.is_infinite() {
            assert_eq!(g, w, "{what}[{n}]");
        } else {
            let scale = g.abs().max(w.abs()).max(1.0);
            assert!(
                (g - w).abs() <= relative * scale,
                "{what}[{n}] = {g}, want {w}"
            );
        }
    }
}

/// α, β, ln P and the arc occupancies of [`alpha_beta`] against the row-by-row recursions, and the
/// Viterbi forward variable exactly.
fn check_lattice(scores: &NodeScores) {
    let lattice = alpha_beta(scores);
    let (alpha, beta) = row_by_row(scores, log_add_exp);
    let (got_alpha, got_beta) = lattice.log_alpha_beta();
    assert_close("alpha", &got_alpha, &alpha, 1e-12);
    assert_close("beta", &got_beta, &beta, 1e-12);
    assert_close("log_p", &[lattice.log_p], &[beta[0]], 1e-12);
    let (frames, positions) = (scores.frames, scores.positions);
    let log_p = beta[0];
    let occupancy = |a: f64, score: f64, b: f64| {
        if log_p == f64::NEG_INFINITY {
            0.0
        } else {
            (a + score + b - log_p).exp()
        }
    };
    let (mut blank_arcs, mut emit_arcs) = (vec![0.0; positions], vec![0.0; positions]);
    for t in 0..frames {
        lattice.frame_arcs(scores, t, &mut blank_arcs, &mut emit_arcs);
        for u in 0..positions {
            let n = scores.node(t, u);
            let blank_next = if t + 1 < frames {
                beta[n + positions]
            } else if u + 1 == positions {
                0.0
            } else {
                f64::NEG_INFINITY
            };
            let emit_next = if u + 1 < positions {
                beta[n + 1]
            } else {
                f64::NEG_INFINITY
            };
            let want_blank = occupancy(alpha[n], scores.blank[n], blank_next);
            let want_emit = occupancy(alpha[n], scores.emit[n], emit_next);
            let tolerance = 1e-12 * log_p.abs().max(1.0);
            for (what, got, want) in [
                ("blank arc", blank_arcs[u], want_blank),
                ("emission arc", emit_arcs[u], want_emit),
            ] {
                assert!(
                    (got - want).abs() <= tolerance,
                    "{what} ({t}, {u}) = {got}, want {want}"
                );
            }
        }
    }
    let (best, _) = row_by_row(scores, f64::max);
    let walked = forward_variable(scores, f64::max);
    assert_eq!(
        walked.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        best.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "Viterbi forward variable"
    );
}

/// A node score: mostly ordinary log-probabilities, some −inf (masked), some huge negatives.
fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -12.0..0.0f64,
        1 => Just(f64::NEG_INFINITY),
        1 => -1e5..-1e3f64,
    ]
}

/// A lattice of 1..72 frames (one to three bands of the walk) × 1..24 positions (U = 0 and T = 1
/// included) and its scores.
fn small_lattice() -> impl Strategy<Value = NodeScores> {
    (1..72usize, 1..24usize).prop_flat_map(|(frames, positions)| {
        prop::collection::vec(score(), 2 * frames * positions)
            .prop_map(move |values| lattice_scores(frames, positions, &values))
    })
}

proptest! {
    #[test]
    fn diagonal_walk_matches_row_by_row(scores in small_lattice()) {
        check_lattice(&scores);
    }
}

#[test]
fn long_lattices_match_row_by_row() {
    // A deterministic spread of log-probabilities, long enough in T and in U that errors would
    // accumulate over thousands of nodes: tall, wide and square.
    for (frames, positions) in [(900, 41), (37, 700), (300, 300)] {
        let values: Vec<f64> = (0..2 * frames * positions)
            .map(|n| ((n as u64).wrapping_mul(2_654_435_761) % 4096) as f64 / -512.0)
            .collect();
        check_lattice(&lattice_scores(frames, positions, &values));
    }
}

/// A tall lattice of log-probabilities spread over [−8, 0] with `low` at every emission of
/// position 3 (−inf, very low, or ordinary).
fn tall_lattice(low: f64) -> NodeScores {
    let (frames, positions) = (150, 41);
    let values: Vec<f64> = (0..2 * frames * positions)
        .map(|n| {
            let node = n % (frames * positions);
            if n >= frames * positions && node % positions == 3 {
                low
            } else {
                ((n as u64).wrapping_mul(2_654_435_761) % 4096) as f64 / -512.0
            }
        })
        .collect();
    lattice_scores(frames, positions, &values)
}

#[test]
fn tall_lattices_walk_in_probability_space_within_its_bounds_only() {
    // Ordinary, very low (within the bound of −200) and −inf scores: in probability space; a
    // score below its bound, or one that spreads a frame's values beyond 2^700: in log space.
    // Either way the same as the row-by-row recursions.
    let cases = [
        (-3.0, true),
        (-150.0, true),
        (f64::NEG_INFINITY, true),
        (-250.0, false),
    ];
    for (low, scaled) in cases {
        let scores = tall_lattice(low);
        assert_eq!(
            alpha_beta(&scores).is_scaled(),
            scaled,
            "emission score {low}"
        );
        check_lattice(&scores);
    }
    let mut spread = tall_lattice(-3.0);
    for t in 0..spread.frames {
        let n = spread.node(t, 0);
        spread.blank[n] = -190.0;
    }
    assert!(!alpha_beta(&spread).is_scaled(), "a spread beyond 2^700");
    check_lattice(&spread);
}
