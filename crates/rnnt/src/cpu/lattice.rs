//! The α/β dynamic programme over one item's lattice, in f64.

use crate::cpu::front::NodeScores;
use crate::cpu::recycle::NodeVec;
use crate::cpu::simd;

/// Forward and backward variables of one item, indexed like [`NodeScores`].
#[derive(Debug, Clone, Default)]
pub struct Lattice {
    /// α(t,u): log-probability of all partial paths from (0,0) to (t,u).
    pub alpha: NodeVec,
    /// β(t,u): log-probability of all paths from (t,u) to the end, final blank included.
    pub beta: NodeVec,
    /// ln P(y|x) = β(0,0); −inf for an impossible item.
    pub log_p: f64,
}

impl Lattice {
    /// The occupancies of the arcs leaving the nodes of frame `t` (the gradient's arc terms):
    /// `blank_out[u]` = exp(α(t,u) + blank(t,u) + β(t+1,u) − ln P), the final blank at
    /// (T_b−1, U_b) included, and `emit_out[u]` = exp(α(t,u) + emit(t,u) + β(t,u+1) − ln P); 0
    /// where there is no arc or the item is impossible.
    ///
    /// Computed a frame at a time, where they are used (the gradient pass), so that no arrays of
    /// every node's occupancies are written and read back: the exponents are written and then
    /// exponentiated in place with the vector exp while the row is in L1.
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
        let n = t * positions;
        let here = n..n + positions;
        let (a, blank, emit) = (
            &self.alpha[here.clone()],
            &scores.blank[here.clone()],
            &scores.emit[here],
        );
        if t + 1 < frames {
            let beta_below = &self.beta[n + positions..n + 2 * positions];
            for (((out, &a), &score), &b) in blank_out.iter_mut().zip(a).zip(blank).zip(beta_below)
            {
                *out = a - log_p + score + b;
            }
        } else {
            blank_out.fill(f64::NEG_INFINITY);
            blank_out[positions - 1] = a[positions - 1] - log_p + blank[positions - 1];
        }
        let beta_right = &self.beta[n + 1..n + positions];
        for (((out, &a), &score), &b) in emit_out.iter_mut().zip(a).zip(emit).zip(beta_right) {
            *out = a - log_p + score + b;
        }
        emit_out[positions - 1] = f64::NEG_INFINITY;
        simd::exp_in_place(blank_out);
        simd::exp_in_place(emit_out);
    }
}

/// Runs the α and β recursions of DESIGN.md §2 over `scores`, the two at once on the current rayon
/// pool (they only share the read-only scores), each a [`diagonal_walk`] with the vectorised
/// log-space sum.
pub fn alpha_beta(scores: &NodeScores) -> Lattice {
    let (alpha, beta) = rayon::join(|| alpha(scores), || beta(scores));
    let log_p = beta.first().copied().unwrap_or(f64::NEG_INFINITY);
    Lattice { alpha, beta, log_p }
}

/// α(t,u) = logaddexp(α(t−1,u) + blank(t−1,u), α(t,u−1) + emit(t,u−1)), α(0,0) = 0.
fn alpha(scores: &NodeScores) -> NodeVec {
    diagonal_walk::<false>(scores, 0.0, simd::log_add_exp)
}

/// β(t,u) = logaddexp(β(t+1,u) + blank(t,u), β(t,u+1) + emit(t,u)), β(T−1,U) = blank(T−1,U).
fn beta(scores: &NodeScores) -> NodeVec {
    let last = scores.blank.last().copied().unwrap_or(f64::NEG_INFINITY);
    diagonal_walk::<true>(scores, last, simd::log_add_exp)
}

/// The forward recursion over `scores` with `combine` joining the two ways into a node:
/// `log_add_exp` gives α (all partial paths), `f64::max` the Viterbi score of the best partial
/// path from (0,0) to each node. Indexed like [`NodeScores`]; (0,0) holds 0.
pub fn forward_variable(scores: &NodeScores, combine: impl Fn(f64, f64) -> f64) -> NodeVec {
    diagonal_walk::<false>(scores, 0.0, |via_blank, via_emit, out| {
        for ((out, &a), &b) in out.iter_mut().zip(via_blank).zip(via_emit) {
            *out = combine(a, b);
        }
    })
}

/// How far ahead of its current column [`diagonal_walk`] prefetches each row: 4 cache lines
/// (about 5% faster on S6 than no prefetch; 64 and 128 columns measured no better).
const PREFETCH_COLUMNS: usize = 32;

/// Rows per band of [`diagonal_walk`]: enough lanes per step (2 AVX-512 vectors) to overlap the
/// latency of the log-space sum, few enough rows that a band's cache lines and pages stay in L1
/// and its TLB (on S6, with the gather without per-lane branches: 8 rows 12.8 ms, 16 rows
/// 8.1 ms, 32 rows 9.0 ms, 64 rows 9.9 ms).
const BAND: usize = 16;

/// Lattices of at most this many nodes are walked as one band (their α, scores and output, 24
/// bytes a node, stay within L2): on S1 (6150 nodes an item) the lattice phase takes 0.43 ms
/// instead of 0.53.
const SINGLE_BAND_NODES: usize = 1 << 14;

/// One recursion over the lattice: forward, v(t,u) = combine(v(t−1,u) + blank(t−1,u),
/// v(t,u−1) + emit(t,u−1)) from v(0,0) = `start`; `REVERSED`, v(t,u) = combine(v(t+1,u) +
/// blank(t,u), v(t,u+1) + emit(t,u)) from v(T−1,U) = `start`. Indexed like [`NodeScores`]; −inf
/// where no path reaches.
///
/// The nodes of one anti-diagonal do not depend on each other, so `combine(via_blank, via_emit,
/// out)` gets many nodes' candidates at once, in contiguous scratch, and can run them through
/// vector instructions. The lattice is walked in bands of [`BAND`] rows; within a band, step s
/// visits the band's stretch of anti-diagonal s, lane r at row r and column s − r, so that each
/// row is still read in order (one cache line every 8 steps) and a band's rows stay in L1. A
/// lane's two predecessors are the previous step's values of lanes r−1 and r, kept in scratch
/// indexed by lane; lane 0 reads the row above the band from a copy of the previous band's last
/// row.
///
/// The walk is written in walker coordinates (i, j): (t, u) forward, (T−1−t, U−u) reversed, so
/// that walker index n = i·P + j is node n forward and node N−1−n reversed and one loop serves
/// both directions.
fn diagonal_walk<const REVERSED: bool>(
    scores: &NodeScores,
    start: f64,
    mut combine: impl FnMut(&[f64], &[f64], &mut [f64]),
) -> NodeVec {
    let (frames, positions) = (scores.frames, scores.positions);
    let nodes = frames * positions;
    // Every node is written below (each band's steps give each of its rows every column).
    let mut out = NodeVec::overwritable(nodes);
    if nodes == 0 {
        return out;
    }
    // The node holding walker index n and the nodes whose scores label the arcs into it from
    // walker (i−1, j) and (i, j−1). Wrapping, as the prefetches below may look past the ends.
    let node = |n: usize| {
        if REVERSED {
            (nodes - 1).wrapping_sub(n)
        } else {
            n
        }
    };
    let blank_arc = |n: usize| {
        if REVERSED {
            (nodes - 1).wrapping_sub(n)
        } else {
            n.wrapping_sub(positions)
        }
    };
    let emit_arc = |n: usize| {
        if REVERSED {
            (nodes - 1).wrapping_sub(n)
        } else {
            n.wrapping_sub(1)
        }
    };
    let slots = &mut out[..];
    // A small lattice fits in L2 whole: one band of every row makes fewer, longer steps.
    let band = if nodes <= SINGLE_BAND_NODES {
        frames
    } else {
        BAND.min(frames)
    };
    // `lanes[r]`: the value of walker node (band_start + r, step − r) after each step; `above[j]`:
    // the previous band's last row.
    let mut lanes = vec![f64::NEG_INFINITY; band];
    let mut above = vec![f64::NEG_INFINITY; positions];
    let mut via_blank = vec![f64::NEG_INFINITY; band];
    let mut via_emit = vec![f64::NEG_INFINITY; band];
    // Walker index n moves by `diagonal_stride` from lane r to lane r + 1 of a step (one row
    // down, one column left); in node order that is ±(P − 1).
    let diagonal_stride = positions as isize - 1;
    let node_stride = if REVERSED {
        -diagonal_stride
    } else {
        diagonal_stride
    };
    for band_start in (0..frames).step_by(band) {
        let rows = band.min(frames - band_start);
        for step in 0..positions + rows - 1 {
            let first = step.saturating_sub(positions - 1);
            let last = step.min(rows - 1);
            let n_first = (band_start + first) * positions + step - first;
            // Lanes with both predecessors inside the band: r ≥ 1 (the row above is in the
            // band) and r < step (column j ≥ 1). The others are set apart below.
            let inner_first = first.max(1);
            let inner_last = last.min(step.wrapping_sub(1));
            if inner_first <= inner_last && step > 0 {
                let n = n_first + (inner_first - first) * positions - (inner_first - first);
                let count = inner_last - inner_first + 1;
                let (blank_at, emit_at) = (blank_arc(n) as isize, emit_arc(n) as isize);
                let before = &lanes[inner_first - 1..inner_last];
                let here = &lanes[inner_first..=inner_last];
                let blank_out = &mut via_blank[inner_first..=inner_last];
                let emit_out = &mut via_emit[inner_first..=inner_last];
                for k in 0..count {
                    let offset = k as isize * node_stride;
                    // SAFETY: lane inner_first + k is the node n + k·(P − 1) (walker index),
                    // which lies in the lattice with its predecessors (r ≥ 1, j ≥ 1), so both
                    // arc indices are in 0..nodes.
                    let (blank, emit) = unsafe {
                        (
                            *scores.blank.get_unchecked((blank_at + offset) as usize),
                            *scores.emit.get_unchecked((emit_at + offset) as usize),
                        )
                    };
                    blank_out[k] = before[k] + blank;
                    emit_out[k] = here[k] + emit;
                }
            }
            if first == 0 {
                // Lane 0: its blank predecessor is the previous band's last row.
                via_blank[0] = if band_start > 0 {
                    above[step] + scores.blank[blank_arc(n_first)]
                } else {
                    f64::NEG_INFINITY
                };
                via_emit[0] = if step > 0 {
                    lanes[0] + scores.emit[emit_arc(n_first)]
                } else {
                    f64::NEG_INFINITY
                };
            }
            if last == step && step > 0 {
                // Column 0: no emission arc leads in.
                let n = (band_start + last) * positions;
                via_blank[last] = lanes[last - 1] + scores.blank[blank_arc(n)];
                via_emit[last] = f64::NEG_INFINITY;
            }
            // Fetch a line PREFETCH_COLUMNS ahead for the lanes at a line's start (j ≡ 0 mod 8):
            // the hardware prefetchers lose track of a band's dozens of streams.
            for r in (first + (step - first) % 8..=last).step_by(8) {
                let ahead = (band_start + r) * positions + step - r + PREFETCH_COLUMNS;
                simd::prefetch(scores.blank.as_ptr().wrapping_add(blank_arc(ahead)));
                simd::prefetch(scores.emit.as_ptr().wrapping_add(emit_arc(ahead)));
                simd::prefetch(slots.as_ptr().wrapping_add(node(ahead)));
            }
            let values = &mut lanes[first..=last];
            if band_start == 0 && step == 0 {
                values[0] = start;
            } else {
                combine(&via_blank[first..=last], &via_emit[first..=last], values);
            }
            let out_at = node(n_first) as isize;
            for (k, &value) in values.iter().enumerate() {
                let at = out_at + k as isize * node_stride;
                slots[at as usize] = value;
            }
            if last == rows - 1 {
                above[step - last] = lanes[last];
            }
        }
    }
    out
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
