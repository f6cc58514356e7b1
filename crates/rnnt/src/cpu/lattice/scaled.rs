//! The α/β recursions over probabilities instead of log-probabilities, for small tall lattices:
//! α(t,u) = α(t−1,u)·P(blank | t−1,u) + α(t,u−1)·P(y | t,u−1) and likewise β, two products and
//! a sum a node where the log-space recursion needs an exp and a log1p. One S1 item, criterion
//! `lattice_item0/S1`: 29 µs against 51 µs in log space, of which the exps of the node
//! probabilities, the scaling and the copy into the skewed layout are most; and the gradient's
//! arc occupancies become products instead of exps.
//!
//! Exactness: each anti-diagonal d = t + u is rescaled by an exact power of two, 2^−scale[d], so
//! that its largest value lies in [1, 2); the exponents are kept apart. The lattice is only walked
//! this way when every finite log-probability lies in [[`MIN_LOG_PROB`], [`MAX_LOG_PROB`]] and
//! every node of a diagonal is either 0 or at least [`MIN_SCALED`] of its rescaled diagonal: then
//! no product can underflow (2^−700 · e^−200 is far above the smallest normal f64), so a value
//! is 0 exactly when no path reaches the node, and every value carries f64 precision. Otherwise
//! [`alpha_beta`] gives up and the caller walks the lattice in log space.
//!
//! Layout: anti-diagonal d is row d of a skewed array, node (t,u) at column u + 1, so that a
//! step's predecessors and probabilities lie side by side; the slot just before and the slot
//! just after each row's nodes hold 0 (the only slots outside the nodes that a step reads), the
//! others are unused.

use crate::cpu::front::NodeScores;
use crate::cpu::recycle::NodeVec;
use crate::cpu::simd;

/// The lowest finite log-probability walked in probability space.
const MIN_LOG_PROB: f64 = -200.0;

/// The highest log-probability walked in probability space (log-probabilities given as input
/// need not be ≤ 0).
const MAX_LOG_PROB: f64 = 30.0;

/// The smallest nonzero node value, relative to its diagonal's largest, walked in probability
/// space.
const MIN_SCALED: f64 = f64::from_bits((1023 - 700) << 52);

/// Lattices of at most this many nodes are walked in probability space (their arrays stay in
/// L2).
const MAX_NODES: usize = 1 << 14;

/// Whether a `frames` × `positions` lattice is small enough and tall enough (its skewed arrays at
/// most twice its nodes) to be walked in probability space.
pub fn fits(frames: usize, positions: usize) -> bool {
    let nodes = frames * positions;
    positions >= 2 && nodes <= MAX_NODES && (frames + positions - 1) * (positions + 2) <= 2 * nodes
}

/// α and β of one item as rescaled probabilities in skewed layout, with the node probabilities
/// they were walked with.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledLattice {
    frames: usize,
    positions: usize,
    /// Skewed P(blank | t,u) and P(y[u+1] | t,u).
    blank: NodeVec,
    emit: NodeVec,
    /// Skewed α and β, diagonal d divided by 2^alpha_scale[d] (2^beta_scale[d]).
    alpha: NodeVec,
    beta: NodeVec,
    alpha_scale: Vec<i32>,
    beta_scale: Vec<i32>,
    /// 2^(alpha_scale[d] + beta_scale[d + 1] − beta_scale[0]) / β(0,0), scaled: what an arc
    /// from diagonal d is multiplied by to become its occupancy.
    arc_scale: Vec<f64>,
    /// The same for the final blank, which has no β after it.
    final_scale: f64,
}

impl ScaledLattice {
    /// Columns per row.
    fn stride(&self) -> usize {
        self.positions + 2
    }

    /// The slot of node (t,u).
    fn slot(&self, t: usize, u: usize) -> usize {
        (t + u) * self.stride() + u + 1
    }

    /// ln P(y|x): β(0,0).
    pub fn log_p(&self) -> f64 {
        let start = self.slot(0, 0);
        self.beta[start].ln() + f64::from(self.beta_scale[0]) * std::f64::consts::LN_2
    }

    /// [`super::Lattice::frame_arcs`]: products of α, the arc's probability and β, times the
    /// diagonals' powers of two, over P.
    pub fn frame_arcs(&self, t: usize, blank_out: &mut [f64], emit_out: &mut [f64]) {
        let (frames, positions) = (self.frames, self.positions);
        // Node (t,u) and its successors (t+1,u), (t,u+1) move P + 3 slots a step in u.
        let step = self.stride() + 1;
        let at = self.slot(t, 0);
        let (alpha, blank, emit) = (&self.alpha[at..], &self.blank[at..], &self.emit[at..]);
        let arc_scale = &self.arc_scale[t..];
        let last = positions - 1;
        if t + 1 < frames {
            let below = &self.beta[self.slot(t + 1, 0)..];
            for (u, out) in blank_out.iter_mut().enumerate() {
                let k = u * step;
                *out = alpha[k] * blank[k] * below[k] * arc_scale[u];
            }
        } else {
            blank_out.fill(0.0);
            blank_out[last] = alpha[last * step] * blank[last * step] * self.final_scale;
        }
        let right = &self.beta[self.slot(t, 1)..];
        for (u, out) in emit_out[..last].iter_mut().enumerate() {
            let k = u * step;
            *out = alpha[k] * emit[k] * right[k] * arc_scale[u];
        }
        emit_out[last] = 0.0;
    }

    /// ln α and ln β, indexed like [`NodeScores`].
    pub fn log_alpha_beta(&self) -> (Vec<f64>, Vec<f64>) {
        let (frames, positions) = (self.frames, self.positions);
        let log = |values: &NodeVec, scale: &[i32]| {
            (0..frames * positions)
                .map(|n| {
                    let (t, u) = (n / positions, n % positions);
                    values[self.slot(t, u)].ln() + f64::from(scale[t + u]) * std::f64::consts::LN_2
                })
                .collect()
        };
        (
            log(&self.alpha, &self.alpha_scale),
            log(&self.beta, &self.beta_scale),
        )
    }
}

/// 2^k as an f64 (0 below the subnormal range, +inf above the largest).
fn pow2(k: i32) -> f64 {
    if k < -1074 {
        0.0
    } else if k > 1023 {
        f64::INFINITY
    } else if k < -1022 {
        f64::from_bits(1u64 << (k + 1074))
    } else {
        f64::from_bits(((k + 1023) as u64) << 52)
    }
}

/// The walk in probability space of `scores` (a lattice that [`fits`]), or None where a
/// log-probability or a node value leaves the bounds that keep it exact (see the module).
pub fn alpha_beta(scores: &NodeScores) -> Option<ScaledLattice> {
    let (frames, positions) = (scores.frames, scores.positions);
    debug_assert!(fits(frames, positions));
    let stride = positions + 2;
    let rows = frames + positions - 1;
    let columns = |d: usize| (d.saturating_sub(frames - 1) + 1, d.min(positions - 1) + 2);
    let probabilities = |log_probs: &[f64]| -> Option<NodeVec> {
        // The extremes, −inf aside, with eight running values each (one would be a chain of
        // dependent steps).
        let (mut lowest, mut highest) = ([0.0f64; 8], [0.0f64; 8]);
        for chunk in log_probs.chunks(8) {
            for ((low, high), &x) in lowest.iter_mut().zip(&mut highest).zip(chunk) {
                let finite = if x == f64::NEG_INFINITY { 0.0 } else { x };
                *low = if finite < *low { finite } else { *low };
                *high = if x > *high { x } else { *high };
            }
        }
        let lowest = lowest.iter().copied().fold(0.0, f64::min);
        let highest = highest.iter().copied().fold(0.0, f64::max);
        if lowest < MIN_LOG_PROB || highest > MAX_LOG_PROB {
            return None;
        }
        // −inf (probability 0) beside each row's nodes; one exp over the whole array (the
        // unused slots' values are never read).
        let mut skewed = skewed_array(rows, stride, columns, f64::NEG_INFINITY);
        for d in 0..rows {
            let (first, last) = columns(d);
            let row = &mut skewed[d * stride + first..d * stride + last];
            // Nodes (d − u, u) for u = first − 1 .., P − 1 apart.
            let first_node = (d + 1 - first) * positions + first - 1;
            let nodes = &log_probs[first_node - (row.len() - 1) * (positions - 1)..=first_node];
            for (k, slot) in row.iter_mut().enumerate() {
                *slot = nodes[nodes.len() - 1 - k * (positions - 1)];
            }
        }
        simd::exp_in_place(&mut skewed);
        Some(skewed)
    };
    let blank = probabilities(&scores.blank)?;
    let emit = probabilities(&scores.emit)?;
    let mut alpha = skewed_array(rows, stride, columns, 0.0);
    let mut beta = skewed_array(rows, stride, columns, 0.0);
    let mut alpha_scale = vec![0; rows];
    let mut beta_scale = vec![0; rows];
    alpha[1] = 1.0;
    let end = (rows - 1) * stride + positions;
    beta[end] = blank[end];
    let largest = beta[end];
    beta_scale[rows - 1] = rescale(&mut beta[end..end + 1], largest)?;
    for step in 1..rows {
        // α row d from row d − 1: columns c (via blank) and c − 1 (via emission).
        let d = step;
        let (first, last) = columns(d);
        let (before, here) = alpha.split_at_mut(d * stride);
        let previous = &before[(d - 1) * stride..];
        let from = (d - 1) * stride;
        let largest = simd::products_sum(
            [
                &previous[first..],
                &blank[from + first..],
                &previous[first - 1..],
                &emit[from + first - 1..],
            ],
            &mut here[first..last],
        );
        alpha_scale[d] = alpha_scale[d - 1] + rescale(&mut here[first..last], largest)?;
        // β row d from row d + 1: columns c (via blank) and c + 1 (via emission), with this
        // row's probabilities.
        let d = rows - 1 - step;
        let (first, last) = columns(d);
        let (here, after) = beta.split_at_mut((d + 1) * stride);
        let at = d * stride;
        let largest = simd::products_sum(
            [
                &after[first..],
                &blank[at + first..],
                &after[first + 1..],
                &emit[at + first..],
            ],
            &mut here[at + first..at + last],
        );
        beta_scale[d] = beta_scale[d + 1] + rescale(&mut here[at + first..at + last], largest)?;
    }
    let total = beta[1];
    let arc_scale = (0..rows - 1)
        .map(|d| pow2(alpha_scale[d] + beta_scale[d + 1] - beta_scale[0]) / total)
        .collect();
    let final_scale = pow2(alpha_scale[rows - 1] - beta_scale[0]) / total;
    Some(ScaledLattice {
        frames,
        positions,
        blank,
        emit,
        alpha,
        beta,
        alpha_scale,
        beta_scale,
        arc_scale,
        final_scale,
    })
}

/// Divides `values` (≥ 0, the largest `largest`) by the power of two that brings the largest
/// into [1, 2) and returns its exponent (0 for all zeros); None if a nonzero value is then below
/// [`MIN_SCALED`].
fn rescale(values: &mut [f64], largest: f64) -> Option<i32> {
    if largest == 0.0 {
        return Some(0);
    }
    let exponent = ((largest.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let threshold = MIN_SCALED * pow2(exponent);
    let below = simd::scale_checked(values, pow2(-exponent), threshold);
    (!below).then_some(exponent)
}

/// An array of `rows` skewed rows of `stride` slots for the walk: each row's two slots just
/// outside its `columns` hold `outside`, the only slots outside a row that a step reads (the
/// next row's range is the same or one wider or narrower at either end); the others are left to
/// be written, or unused.
fn skewed_array(
    rows: usize,
    stride: usize,
    columns: impl Fn(usize) -> (usize, usize),
    outside: f64,
) -> NodeVec {
    let mut values = NodeVec::overwritable(rows * stride);
    for (d, row) in values.chunks_exact_mut(stride).enumerate() {
        let (first, last) = columns(d);
        row[first - 1] = outside;
        row[last] = outside;
    }
    values
}
