//! One item's float64 lattice over the topology's arcs, in log space, from the log-probabilities
//! its front pass gathered per node.

use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, Isa};
use crate::variant::arcs::{Arc, Dest, BLANK};
use crate::variant::front::ItemScores;
use crate::variant::template::{ArcKind, Landing};
use crate::variant::topology::Variant;

impl ItemScores {
    /// The weight of `arc` leaving node (t, ·): its reads, its duration and its constant.
    #[inline]
    pub(crate) fn weight(&self, arc: &Arc, t: usize, source: usize) -> f64 {
        let mut w = arc.bonus;
        for &(u, slot) in &arc.reads[..arc.token_reads] {
            w += self.token_lp[self.shape.node(t, u) * self.slots + slot];
        }
        if let Some(i) = arc.duration {
            w += self.duration_lp[source * self.columns + i];
        }
        w
    }

    /// The node an arc lands on, or `None` for the end.
    #[inline]
    pub(crate) fn dest(&self, arc: &Arc) -> Option<usize> {
        match arc.dest {
            Dest::Node(t, u) => Some(self.shape.node(t, u)),
            Dest::End => None,
        }
    }
}

/// α and β of one item in log space, and ln P = β(0, 0).
#[derive(Debug, Clone)]
pub(crate) struct ItemLattice {
    /// ln of the weight of every path prefix from (0, 0) to each node.
    pub alpha: NodeVec,
    /// ln of the weight of every path suffix from each node to the end.
    pub beta: NodeVec,
    /// ln P, the log-sum over every path (−inf when none exists).
    pub log_p: f64,
}

/// The item's arc kinds, split by whether they stay on their frame.
struct Kinds {
    /// Kinds that advance at least one frame: a frame's sums over them are vectorised over u.
    later: Vec<ArcKind>,
    /// The kind that emits on the same frame ((t, u) → (t, u + 1)), if any: a chain over u.
    same: Option<ArcKind>,
}

impl Kinds {
    /// The kinds of `variant`.
    fn of(variant: &Variant) -> Kinds {
        let mut all = Vec::new();
        variant.arc_kinds(&mut all);
        let same = all.iter().copied().find(|kind| kind.frames == 0);
        debug_assert!(all.iter().filter(|kind| kind.frames == 0).count() <= 1);
        all.retain(|kind| kind.frames > 0);
        Kinds { later: all, same }
    }
}

/// ln(e^a + e^b).
#[inline]
fn log_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a > b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        high
    } else {
        high + (low - high).exp().ln_1p()
    }
}

/// Per label position u, ln Σ_k exp(terms[k·P + u]) of the `terms` (kinds × P, kind-major)
/// into `out` (P values), with the exps vectorised; `largest` is scratch of P values.
fn log_sums(terms: &mut [f64], largest: &mut [f64], out: &mut [f64]) {
    let positions = out.len();
    largest.fill(f64::NEG_INFINITY);
    for kind in terms.chunks(positions) {
        for (m, &x) in largest.iter_mut().zip(kind) {
            *m = m.max(x);
        }
    }
    for kind in terms.chunks_mut(positions) {
        for (x, &m) in kind.iter_mut().zip(largest.iter()) {
            // A position with no term gets exp(−inf) = 0 everywhere.
            *x = if m > f64::NEG_INFINITY {
                *x - m
            } else {
                f64::NEG_INFINITY
            };
        }
    }
    simd::exp_in_place(Isa::detected(), terms);
    out.fill(0.0);
    for kind in terms.chunks(positions) {
        for (o, &e) in out.iter_mut().zip(kind) {
            *o += e;
        }
    }
    for (o, &m) in out.iter_mut().zip(largest.iter()) {
        *o = if m > f64::NEG_INFINITY { m + o.ln() } else { m };
    }
}

impl ItemScores {
    /// The weight of the arc of `kind` leaving (t, u) (t < T), whether or not it exists: its
    /// constant, its token reads, its duration read (in the order of [`ItemScores::weight`]).
    #[inline]
    fn kind_weight(&self, kind: &ArcKind, bonus: f64, (t, u): (usize, usize)) -> f64 {
        let n = self.shape.node(t, u);
        let mut w = bonus + self.token_lp[n * self.slots + kind.slot];
        if kind.next_blank {
            w += self.token_lp[(n + 1) * self.slots + BLANK];
        }
        if let Some(i) = kind.duration {
            w += self.duration_lp[n * self.columns + i];
        }
        w
    }
}

/// The ln-weight of the arc of `kind` from (t, u) (t < T) and of every path from where it
/// lands (β of its node, 0 at the end): −inf where the arc does not exist.
#[inline]
fn arc_and_rest(
    scores: &ItemScores,
    beta: &[f64],
    (kind, bonus): (&ArcKind, f64),
    (t, u): (usize, usize),
) -> f64 {
    let shape = &scores.shape;
    let rest = match kind.landing(shape, (t, u)) {
        Landing::Node(t, u) => beta[shape.node(t, u)],
        Landing::End => 0.0,
        Landing::None => return f64::NEG_INFINITY,
    };
    scores.kind_weight(kind, bonus, (t, u)) + rest
}

impl ItemLattice {
    /// The log-space α/β of the loss, a frame at a time over the topology's arc kinds: the sums
    /// over the arcs that change frame are vectorised over the frame's label positions (their
    /// exps and logarithms together), the arcs that stay on it (a label of duration 0) chained
    /// after them.
    pub(crate) fn sum(variant: &Variant, scores: &ItemScores) -> ItemLattice {
        let kinds = Kinds::of(variant);
        let shape = scores.shape;
        let nodes = shape.nodes();
        let positions = shape.positions;
        let mut alpha = NodeVec::filled(nodes, f64::NEG_INFINITY);
        let mut beta = NodeVec::filled(nodes, f64::NEG_INFINITY);
        let mut terms = vec![0.0; kinds.later.len() * positions];
        let (mut largest, mut sums) = (vec![0.0; positions], vec![0.0; positions]);
        let frames = shape.frames;
        // β, from the last frame back.
        for t in (0..shape.node_frames).rev() {
            let row = shape.node(t, 0)..shape.node(t, 0) + positions;
            if t >= frames {
                // k2's end frame: only (T, U) goes on, by the arc that reads nothing.
                beta[row.end - 1] = 0.0;
                continue;
            }
            for (kind, terms) in kinds.later.iter().zip(terms.chunks_mut(positions)) {
                let bonus = kind.bonus(variant, frames, t);
                for (u, x) in terms.iter_mut().enumerate() {
                    *x = arc_and_rest(scores, &beta, (kind, bonus), (t, u));
                }
            }
            log_sums(&mut terms, &mut largest, &mut sums);
            let beta = &mut beta[row];
            beta.copy_from_slice(&sums);
            if let Some(kind) = &kinds.same {
                let bonus = kind.bonus(variant, frames, t);
                for u in (0..positions - 1).rev() {
                    let w = scores.kind_weight(kind, bonus, (t, u));
                    beta[u] = log_add(beta[u], w + beta[u + 1]);
                }
            }
        }
        // α, from (0, 0) on: each node pulls the arcs that land on it.
        for t in 0..shape.node_frames {
            for (kind, terms) in kinds.later.iter().zip(terms.chunks_mut(positions)) {
                let source = t.checked_sub(kind.frames).filter(|&s| s < frames);
                let bonus = source.map_or(0.0, |s| kind.bonus(variant, frames, s));
                let du = usize::from(kind.label);
                for (u, x) in terms.iter_mut().enumerate() {
                    *x = match source {
                        Some(s)
                            if u >= du && kind.landing(&shape, (s, u - du)) != Landing::None =>
                        {
                            let from = (s, u - du);
                            alpha[shape.node(s, u - du)] + scores.kind_weight(kind, bonus, from)
                        }
                        _ => f64::NEG_INFINITY,
                    };
                }
            }
            log_sums(&mut terms, &mut largest, &mut sums);
            let row = shape.node(t, 0)..shape.node(t, 0) + positions;
            let alpha = &mut alpha[row];
            alpha.copy_from_slice(&sums);
            if t == 0 {
                alpha[0] = 0.0;
            }
            if let (Some(kind), true) = (&kinds.same, t < frames) {
                let bonus = kind.bonus(variant, frames, t);
                for u in 1..positions {
                    let w = scores.kind_weight(kind, bonus, (t, u - 1));
                    alpha[u] = log_add(alpha[u], alpha[u - 1] + w);
                }
            }
        }
        let log_p = beta[0];
        ItemLattice { alpha, beta, log_p }
    }

    /// [`ItemLattice::sum`] and the occupancy of every column the arcs read (see
    /// [`ColumnOccupancy`]): label arcs' token reads scaled by `label_scale` (1 + λ, FastEmit),
    /// duration reads unscaled; all zero for an impossible item. A frame's occupancies of each
    /// kind are taken together (vectorised exps), then added onto the columns they read.
    pub(crate) fn sum_with_columns(
        variant: &Variant,
        scores: &ItemScores,
        label_scale: f64,
    ) -> (ItemLattice, ColumnOccupancy) {
        let lattice = Self::sum(variant, scores);
        let shape = scores.shape;
        let nodes = shape.nodes();
        let mut out = ColumnOccupancy {
            tokens: NodeVec::filled(nodes * scores.slots, 0.0),
            durations: NodeVec::filled(nodes * scores.columns, 0.0),
        };
        if lattice.log_p == f64::NEG_INFINITY {
            return (lattice, out);
        }
        let mut kinds = Vec::new();
        variant.arc_kinds(&mut kinds);
        let positions = shape.positions;
        let mut terms = vec![0.0; kinds.len() * positions];
        for t in 0..shape.frames {
            for (kind, terms) in kinds.iter().zip(terms.chunks_mut(positions)) {
                let bonus = kind.bonus(variant, shape.frames, t);
                for (u, x) in terms.iter_mut().enumerate() {
                    let a = lattice.alpha[shape.node(t, u)] - lattice.log_p;
                    *x = a + arc_and_rest(scores, &lattice.beta, (kind, bonus), (t, u));
                }
            }
            simd::exp_in_place(Isa::detected(), &mut terms);
            for (kind, terms) in kinds.iter().zip(terms.chunks(positions)) {
                let scale = if kind.label { label_scale } else { 1.0 };
                for (u, &occupancy) in terms.iter().enumerate() {
                    let n = shape.node(t, u);
                    out.tokens[n * scores.slots + kind.slot] += occupancy * scale;
                    if kind.next_blank && occupancy > 0.0 {
                        out.tokens[(n + 1) * scores.slots + BLANK] += occupancy * scale;
                    }
                    if let Some(i) = kind.duration {
                        out.durations[n * scores.columns + i] += occupancy;
                    }
                }
            }
        }
        (lattice, out)
    }

    /// Calls `visit(t, u, arc, occupancy)` for every arc of positive occupancy
    /// exp(α(src) + w + β(dst) − ln P); nothing for an impossible item.
    pub(crate) fn occupancies(
        &self,
        variant: &Variant,
        scores: &ItemScores,
        mut visit: impl FnMut(usize, usize, &Arc, f64),
    ) {
        if self.log_p == f64::NEG_INFINITY {
            return;
        }
        let shape = scores.shape;
        let mut arcs = Vec::with_capacity(16);
        for t in 0..shape.node_frames {
            for u in 0..shape.positions {
                let n = shape.node(t, u);
                let a = self.alpha[n];
                if a == f64::NEG_INFINITY {
                    continue;
                }
                variant.arcs(shape, (t, u), &mut arcs);
                for arc in &arcs {
                    let rest = scores.dest(arc).map_or(0.0, |d| self.beta[d]);
                    let w = scores.weight(arc, t, n);
                    let occupancy = (a + w + rest - self.log_p).exp();
                    if occupancy > 0.0 {
                        visit(t, u, arc, occupancy);
                    }
                }
            }
        }
    }
}

/// Per node of one item, the occupancy of every column its arcs read.
#[derive(Debug)]
pub(crate) struct ColumnOccupancy {
    /// c_tok(n, slot), nodes × slots.
    pub tokens: NodeVec,
    /// c_dur(n, i), nodes × columns.
    pub durations: NodeVec,
}
