//! The α/β recursions over probabilities instead of log-probabilities, for small lattices:
//! α(t,u) = α(t−1,u)·P(blank | t−1,u) + α(t,u−1)·P(y | t,u−1) and likewise β, two products and
//! a sum a node where the log-space recursion needs an exp and a log1p; and the gradient's arc
//! occupancies become products instead of exps.
//!
//! Layout: frame-major, like the node scores and the gradient ([`simd::frame_walks`]): each frame
//! takes the blank arcs from the frame before as one vector product, then runs along its label
//! positions, a chain of dependent multiply-adds, α forwards and β backwards side by side. A walk
//! along anti-diagonals would run every step as vectors, but pay a strided gather of the node
//! probabilities, a call and a rescaling per diagonal, and strided reads for the arcs; frame-major,
//! the gradient pass reads the arcs of contiguous nodes.
//!
//! Exactness: the walk keeps f64 precision only within bounds on the log-probabilities and on
//! each frame's values, stated and checked next to the walk (module `cpu::simd::lattice`, through
//! [`simd::probabilities`] and [`simd::frame_walks`]); where a check fails, [`alpha_beta`] gives
//! up and the caller walks the lattice in log space.

use crate::cpu::front::NodeScores;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, Isa, MAX_LOG_PROB, MIN_LOG_PROB};

/// Lattices of at most this many nodes are walked in probability space (their arrays stay in
/// L2, and the walk's dependent chains, 4 cycles a node, stay short).
const MAX_NODES: usize = 1 << 14;

/// Whether a `frames` × `positions` lattice is small enough to be walked in probability space.
pub fn fits(frames: usize, positions: usize) -> bool {
    let nodes = frames * positions;
    nodes > 0 && nodes <= MAX_NODES
}

/// α and β of one item as rescaled probabilities, frame-major, with the node probabilities
/// they were walked with.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledLattice {
    frames: usize,
    positions: usize,
    /// P(blank | t,u) and P(y[u+1] | t,u) (0 at u = U), indexed like [`NodeScores`].
    blank: NodeVec,
    emit: NodeVec,
    /// α and β, frame t divided by 2^alpha_scale[t] (2^beta_scale[t]).
    alpha: NodeVec,
    beta: NodeVec,
    alpha_scale: Vec<i32>,
    beta_scale: Vec<i32>,
    /// What the blank arcs from frame t are multiplied by to become their occupancies:
    /// 2^(alpha_scale[t] + beta_scale[t + 1] − beta_scale[0]) / β(0,0), rescaled; for the last
    /// frame, whose only blank arc is the final one, 2^(alpha_scale[T − 1] − beta_scale[0]) /
    /// β(0,0), rescaled.
    blank_arc_scale: Vec<f64>,
    /// The same for the emission arcs of frame t: 2^(alpha_scale[t] + beta_scale[t] −
    /// beta_scale[0]) / β(0,0), rescaled.
    emit_arc_scale: Vec<f64>,
}

impl ScaledLattice {
    /// ln P(y|x): β(0,0).
    pub fn log_p(&self) -> f64 {
        self.beta[0].ln() + f64::from(self.beta_scale[0]) * std::f64::consts::LN_2
    }

    /// [`super::Lattice::frame_arcs`]: products of α, the arc's probability and β, times the
    /// frames' powers of two, over P.
    pub fn frame_arcs(&self, t: usize, blank_out: &mut [f64], emit_out: &mut [f64]) {
        let (frames, p) = (self.frames, self.positions);
        let here = t * p..(t + 1) * p;
        let (alpha, blank, emit) = (
            &self.alpha[here.clone()],
            &self.blank[here.clone()],
            &self.emit[here.clone()],
        );
        let scale = self.blank_arc_scale[t];
        if t + 1 < frames {
            let below = &self.beta[here.end..here.end + p];
            for (((out, &a), &b), &beta) in blank_out.iter_mut().zip(alpha).zip(blank).zip(below) {
                *out = a * b * beta * scale;
            }
        } else {
            blank_out.fill(0.0);
            blank_out[p - 1] = alpha[p - 1] * blank[p - 1] * scale;
        }
        let (right, scale) = (&self.beta[here.start + 1..here.end], self.emit_arc_scale[t]);
        for (((out, &a), &e), &beta) in emit_out.iter_mut().zip(alpha).zip(emit).zip(right) {
            *out = a * e * beta * scale;
        }
        emit_out[p - 1] = 0.0;
    }

    /// ln α and ln β, indexed like [`NodeScores`].
    pub fn log_alpha_beta(&self) -> (Vec<f64>, Vec<f64>) {
        let p = self.positions;
        let log = |values: &NodeVec, scale: &[i32]| {
            values
                .iter()
                .enumerate()
                .map(|(n, v)| v.ln() + f64::from(scale[n / p]) * std::f64::consts::LN_2)
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

/// The node probabilities e^x of `log_probs`, or None if a finite one is out of
/// [[`MIN_LOG_PROB`], [`MAX_LOG_PROB`]].
fn probabilities(isa: Isa, log_probs: &[f64]) -> Option<NodeVec> {
    let mut values = NodeVec::overwritable(log_probs.len());
    let bounds = [MIN_LOG_PROB, MAX_LOG_PROB];
    simd::probabilities(isa, log_probs, &mut values, bounds).then_some(values)
}

/// The walk in probability space of `scores` (a lattice that [`fits`]), or None where a
/// log-probability or a frame leaves the bounds that keep it exact (see the module).
pub fn alpha_beta(scores: &NodeScores) -> Option<ScaledLattice> {
    let (frames, positions) = (scores.frames, scores.positions);
    debug_assert!(fits(frames, positions));
    let isa = Isa::detected();
    let blank = probabilities(isa, &scores.blank)?;
    let emit = probabilities(isa, &scores.emit)?;
    let nodes = frames * positions;
    let mut alpha = NodeVec::overwritable(nodes);
    let mut beta = NodeVec::overwritable(nodes);
    let mut alpha_scale = vec![0; frames];
    let mut beta_scale = vec![0; frames];
    let walked = simd::frame_walks(
        isa,
        [&blank, &emit],
        positions,
        [&mut alpha, &mut beta],
        (&mut alpha_scale, &mut beta_scale),
    );
    if !walked {
        return None;
    }
    let total = beta[0];
    let occupancy = |k: i32| pow2(k - beta_scale[0]) / total;
    let last = frames - 1;
    let blank_arc_scale: Vec<f64> = (0..frames)
        .map(|t| match t {
            _ if t == last => occupancy(alpha_scale[t]),
            _ => occupancy(alpha_scale[t] + beta_scale[t + 1]),
        })
        .collect();
    let emit_arc_scale: Vec<f64> = (0..frames)
        .map(|t| occupancy(alpha_scale[t] + beta_scale[t]))
        .collect();
    // An impossible item (β(0,0) = 0) has no arcs to scale; elsewhere a scale out of range
    // would turn products into infinities.
    let finite = blank_arc_scale
        .iter()
        .chain(&emit_arc_scale)
        .all(|s| s.is_finite());
    if total > 0.0 && !finite {
        return None;
    }
    Some(ScaledLattice {
        frames,
        positions,
        blank,
        emit,
        alpha,
        beta,
        alpha_scale,
        beta_scale,
        blank_arc_scale,
        emit_arc_scale,
    })
}
