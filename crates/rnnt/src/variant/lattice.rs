//! One item's float64 lattice over the topology's arcs, in log space, from the log-probabilities
//! its front pass gathered per node.

use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, Isa};
use crate::variant::arcs::{Arc, Dest, BLANK};
use crate::variant::front::ItemScores;
use crate::variant::template::ArcKind;
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

/// Per label position u, the largest of the `terms` (kinds × P, kind-major) into `largest`
/// and Σ_k exp(terms[k·P + u] − largest[u]) into `sums` (0 where every term is −inf), the exps
/// vectorised.
fn scaled_sums(terms: &mut [f64], largest: &mut [f64], sums: &mut [f64]) {
    let positions = sums.len();
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
    sums.fill(0.0);
    for kind in terms.chunks(positions) {
        for (o, &e) in sums.iter_mut().zip(kind) {
            *o += e;
        }
    }
}

/// The same-frame arcs of a frame, chained: `links[u]` is the ln-weight of the arc from
/// (t, u) to (t, u + 1), walked towards higher u (α) or, `backwards`, towards lower u (β).
#[derive(Debug, Clone, Copy)]
struct Chain<'a> {
    links: &'a [f64],
    backwards: bool,
}

/// ln of a frame's sums, `out[u]` = ln(sums[u]) + largest[u] (see [`scaled_sums`]), then,
/// with a `chain`, each position's value also gathering the one before it along the chain:
/// out[u] = ln(e^{that} + e^{link + out[before]}). The chain is summed relative to its
/// max-plus bound M (the largest term any position gathers, up to its sums), so its exps are
/// vectorised and each position takes one logarithm; `exps` is scratch.
fn frame_logs(
    (largest, sums): (&[f64], &[f64]),
    chain: Option<Chain<'_>>,
    exps: &mut Vec<f64>,
    out: &mut [f64],
) {
    let n = out.len();
    let log = |m: f64, s: f64| if m > f64::NEG_INFINITY { m + s.ln() } else { m };
    let Some(Chain { links, backwards }) = chain else {
        for ((o, &m), &s) in out.iter_mut().zip(largest).zip(sums) {
            *o = log(m, s);
        }
        return;
    };
    // The k-th position along the chain, the one before it, and the link between them.
    let at = |k: usize| if backwards { n - 1 - k } else { k };
    let before = |u: usize| if backwards { u + 1 } else { u - 1 };
    let link = |u: usize| if backwards { links[u] } else { links[u - 1] };
    // M, in `out`.
    out[at(0)] = largest[at(0)];
    for k in 1..n {
        let u = at(k);
        out[u] = largest[u].max(link(u) + out[before(u)]);
    }
    // exp(largest − M) and exp(link + M(before) − M): at most 1, one of them 1.
    exps.clear();
    exps.extend((0..n).map(|u| match out[u] {
        m if m > f64::NEG_INFINITY => largest[u] - m,
        _ => f64::NEG_INFINITY,
    }));
    exps.extend((0..n).map(|u| match out[u] {
        m if m > f64::NEG_INFINITY && u != at(0) => link(u) + out[before(u)] - m,
        _ => f64::NEG_INFINITY,
    }));
    simd::exp_in_place(Isa::detected(), exps);
    let (own, carried) = exps.split_at_mut(n);
    // S(u) = sums(u)·own(u) + carried(u)·S(before), in `own`; ≥ 1 wherever M is finite.
    own[at(0)] *= sums[at(0)];
    for k in 1..n {
        let u = at(k);
        own[u] = sums[u] * own[u] + carried[u] * own[before(u)];
    }
    for (o, &s) in out.iter_mut().zip(own.iter()) {
        *o = log(*o, s);
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

/// Per label position u of frame t (t < T), into `terms`: the ln-weight of the arc of `kind`
/// from (t, u) plus that of every path from where it lands (β of its node, 0 at the end); −inf
/// where the arc does not exist. The arcs that exist are a run of positions (or the end arc
/// from (t, U)), filled by a loop without branches.
fn arcs_and_rests(
    scores: &ItemScores,
    beta: &[f64],
    (kind, bonus): (&ArcKind, f64),
    t: usize,
    terms: &mut [f64],
) {
    let shape = &scores.shape;
    let arcs = kind.leaving(shape, t);
    terms.fill(f64::NEG_INFINITY);
    let (to, du) = (t + kind.frames, usize::from(kind.label));
    let rests = &beta[shape.node(to, du).min(beta.len())..];
    let nodes = terms[arcs.nodes.clone()]
        .iter_mut()
        .zip(arcs.nodes)
        .zip(rests);
    for ((x, u), &rest) in nodes {
        *x = scores.kind_weight(kind, bonus, (t, u)) + rest;
    }
    if arcs.end {
        let last = shape.positions - 1;
        terms[last] = scores.kind_weight(kind, bonus, (t, last));
    }
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
        let (mut links, mut exps) = (Vec::with_capacity(positions), Vec::new());
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
                arcs_and_rests(scores, &beta, (kind, bonus), t, terms);
            }
            scaled_sums(&mut terms, &mut largest, &mut sums);
            let chain = kinds.same.as_ref().map(|kind| {
                let bonus = kind.bonus(variant, frames, t);
                links.clear();
                links.extend((0..positions - 1).map(|u| scores.kind_weight(kind, bonus, (t, u))));
                Chain {
                    links: &links,
                    backwards: true,
                }
            });
            frame_logs((&largest, &sums), chain, &mut exps, &mut beta[row]);
        }
        // α, from (0, 0) on: each node pulls the arcs that land on it.
        for t in 0..shape.node_frames {
            for (kind, terms) in kinds.later.iter().zip(terms.chunks_mut(positions)) {
                // Every arc of the kind from frame s = t − frames lands on frame t (a label
                // from (s, u − 1) on (t, u)).
                terms.fill(f64::NEG_INFINITY);
                let Some(s) = t.checked_sub(kind.frames).filter(|&s| s < frames) else {
                    continue;
                };
                let bonus = kind.bonus(variant, frames, s);
                let du = usize::from(kind.label);
                let sources = kind.leaving(&shape, s).nodes;
                let alpha = &alpha[shape.node(s, 0)..];
                for u in sources {
                    terms[u + du] = alpha[u] + scores.kind_weight(kind, bonus, (s, u));
                }
            }
            scaled_sums(&mut terms, &mut largest, &mut sums);
            if t == 0 {
                // The paths' start, α(0, 0) = 0: no arc lands there.
                (largest[0], sums[0]) = (0.0, 1.0);
            }
            let chain = kinds.same.as_ref().filter(|_| t < frames).map(|kind| {
                let bonus = kind.bonus(variant, frames, t);
                links.clear();
                links.extend((0..positions - 1).map(|u| scores.kind_weight(kind, bonus, (t, u))));
                Chain {
                    links: &links,
                    backwards: false,
                }
            });
            let row = shape.node(t, 0)..shape.node(t, 0) + positions;
            frame_logs((&largest, &sums), chain, &mut exps, &mut alpha[row]);
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
                arcs_and_rests(scores, &lattice.beta, (kind, bonus), t, terms);
                let alpha = &lattice.alpha[shape.node(t, 0)..shape.node(t, positions)];
                for (x, &a) in terms.iter_mut().zip(alpha) {
                    *x += a - lattice.log_p;
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
