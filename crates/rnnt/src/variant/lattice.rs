//! One item's float64 lattice over the topology's arcs, in log space, from the log-probabilities
//! its front pass gathered per node.

use std::cell::RefCell;

use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, Isa};
use crate::variant::arcs::{Arc, Dest};
use crate::variant::front::ItemScores;
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

impl ItemLattice {
    /// The log-space α/β of the loss, with one exp per arc and direction: α is pushed along
    /// each arc into a running (largest, scaled sum) pair per node, finished to a logarithm when
    /// the walk reaches the node (every arc lands on a later node); each arc's destination,
    /// weight and reads are kept for β, which sums a node's arcs relative to their largest term
    /// (the terms' exps vectorised).
    pub(crate) fn sum(variant: &Variant, scores: &ItemScores) -> ItemLattice {
        ARC_SCRATCH.with_borrow_mut(|scratch| Self::walk(variant, scores, scratch))
    }

    /// [`ItemLattice::sum`] and, from the arcs it kept, the occupancy of every column the arcs
    /// read (see [`ColumnOccupancy`]): label arcs' token reads scaled by `label_scale` (1 + λ,
    /// FastEmit), duration reads unscaled; all zero for an impossible item.
    pub(crate) fn sum_with_columns(
        variant: &Variant,
        scores: &ItemScores,
        label_scale: f64,
    ) -> (ItemLattice, ColumnOccupancy) {
        ARC_SCRATCH.with_borrow_mut(|scratch| {
            let lattice = Self::walk(variant, scores, scratch);
            let columns = lattice.column_occupancies(scores, scratch, label_scale);
            (lattice, columns)
        })
    }

    /// The two walks of [`ItemLattice::sum`] over `scratch`, which keeps the arcs.
    fn walk(variant: &Variant, scores: &ItemScores, scratch: &mut ArcScratch) -> ItemLattice {
        let shape = scores.shape;
        let nodes = shape.nodes();
        // Per node: the largest incoming α + w and Σ exp(α + w − largest).
        let mut peak = NodeVec::filled(nodes, f64::NEG_INFINITY);
        let mut scaled = NodeVec::filled(nodes, 0.0);
        let mut alpha = NodeVec::filled(nodes, f64::NEG_INFINITY);
        let mut beta = NodeVec::filled(nodes, f64::NEG_INFINITY);
        let ArcScratch {
            starts,
            kept,
            arcs,
            terms,
        } = scratch;
        starts.clear();
        kept.clear();
        for t in 0..shape.node_frames {
            for u in 0..shape.positions {
                let n = shape.node(t, u);
                starts.push(kept.len());
                let a = if n == 0 {
                    0.0
                } else if scaled[n] > 0.0 {
                    peak[n] + scaled[n].ln()
                } else {
                    f64::NEG_INFINITY
                };
                alpha[n] = a;
                variant.arcs(shape, (t, u), arcs);
                for arc in arcs.iter() {
                    let w = scores.weight(arc, t, n);
                    if w == f64::NEG_INFINITY {
                        continue;
                    }
                    let dest = scores.dest(arc);
                    kept.push(KeptArc::new(scores, arc, (t, n), w, dest));
                    if let (Some(d), true) = (dest, a > f64::NEG_INFINITY) {
                        let v = a + w;
                        if v > peak[d] {
                            scaled[d] = scaled[d] * (peak[d] - v).exp() + 1.0;
                            peak[d] = v;
                        } else {
                            scaled[d] += (v - peak[d]).exp();
                        }
                    }
                }
            }
        }
        starts.push(kept.len());
        let isa = Isa::detected();
        for n in (0..nodes).rev() {
            let arcs = &kept[starts[n]..starts[n + 1]];
            terms.clear();
            terms.extend(arcs.iter().map(|arc| arc.weight + arc.rest(&beta)));
            let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if largest > f64::NEG_INFINITY {
                terms.iter_mut().for_each(|x| *x -= largest);
                simd::exp_in_place(isa, terms);
                let sum: f64 = terms.iter().sum();
                beta[n] = largest + sum.ln();
            }
        }
        let log_p = beta[0];
        ItemLattice { alpha, beta, log_p }
    }

    /// The column occupancies of [`ItemLattice::sum_with_columns`] from the arcs that
    /// [`ItemLattice::walk`] kept in `scratch`: every arc's exp(α(src) + w + β(dst) − ln P) at
    /// once (vectorised), then scattered onto the columns it reads.
    fn column_occupancies(
        &self,
        scores: &ItemScores,
        scratch: &mut ArcScratch,
        label_scale: f64,
    ) -> ColumnOccupancy {
        let nodes = scores.shape.nodes();
        let mut out = ColumnOccupancy {
            tokens: NodeVec::filled(nodes * scores.slots, 0.0),
            durations: NodeVec::filled(nodes * scores.columns, 0.0),
        };
        if self.log_p == f64::NEG_INFINITY {
            return out;
        }
        let ArcScratch {
            starts,
            kept,
            terms,
            ..
        } = scratch;
        terms.clear();
        for n in 0..nodes {
            let a = self.alpha[n] - self.log_p;
            let arcs = &kept[starts[n]..starts[n + 1]];
            terms.extend(arcs.iter().map(|arc| a + arc.weight + arc.rest(&self.beta)));
        }
        simd::exp_in_place(Isa::detected(), terms);
        for (arc, &occupancy) in kept.iter().zip(terms.iter()) {
            if occupancy > 0.0 {
                let scaled = if arc.label {
                    occupancy * label_scale
                } else {
                    occupancy
                };
                for &k in arc.tokens.iter().filter(|&&k| k != u32::MAX) {
                    out.tokens[k as usize] += scaled;
                }
                if arc.duration != u32::MAX {
                    out.durations[arc.duration as usize] += occupancy;
                }
            }
        }
        out
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

/// An arc kept between the walks: its weight, where it lands, and the columns it reads (as
/// indices into [`ColumnOccupancy`]'s buffers, `u32::MAX` for none).
#[derive(Debug, Clone, Copy)]
struct KeptArc {
    weight: f64,
    /// The destination node; `u32::MAX`: the end.
    dest: u32,
    /// source · columns + duration column.
    duration: u32,
    /// node(t, u') · slots + slot of each token read.
    tokens: [u32; 2],
    label: bool,
}

impl KeptArc {
    /// `arc` leaving node `source` on frame `t`, of weight `weight`, landing on `dest`.
    #[inline]
    fn new(
        scores: &ItemScores,
        arc: &Arc,
        (t, source): (usize, usize),
        weight: f64,
        dest: Option<usize>,
    ) -> KeptArc {
        let mut tokens = [u32::MAX; 2];
        for (k, &(u, slot)) in tokens.iter_mut().zip(&arc.reads[..arc.token_reads]) {
            *k = (scores.shape.node(t, u) * scores.slots + slot) as u32;
        }
        KeptArc {
            weight,
            dest: dest.map_or(u32::MAX, |d| d as u32),
            duration: arc
                .duration
                .map_or(u32::MAX, |i| (source * scores.columns + i) as u32),
            tokens,
            label: arc.label,
        }
    }

    /// β of where the arc lands (0 at the end).
    #[inline]
    fn rest(&self, beta: &[f64]) -> f64 {
        match self.dest {
            u32::MAX => 0.0,
            d => beta[d as usize],
        }
    }
}

/// Per-thread buffers of [`ItemLattice::sum`]: each node's first arc, every arc kept between
/// the walks, the arcs of one node, and the terms of a sum. Reused from item to item, so a walk
/// takes no page faults.
#[derive(Default)]
struct ArcScratch {
    starts: Vec<usize>,
    kept: Vec<KeptArc>,
    arcs: Vec<Arc>,
    terms: Vec<f64>,
}

thread_local! {
    /// This thread's [`ArcScratch`].
    static ARC_SCRATCH: RefCell<ArcScratch> = RefCell::new(ArcScratch::default());
}
