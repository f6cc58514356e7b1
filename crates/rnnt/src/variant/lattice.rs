//! One item's front pass (the log-probabilities each arc reads, gathered per node) and its
//! float64 lattice over the topology's arcs, in log space.

use std::cell::RefCell;

use crate::batch::Batch;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd::{self, FrameScores, Isa, ScoreColumns};
use crate::element::Float;
use crate::error::Result;
use crate::variant::arcs::{big_blank, Arc, Dest, ItemShape, BLANK, LABEL};
use crate::variant::rows::Rows;
use crate::variant::topology::Variant;

/// The heads of a call and their names in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads<'a, F> {
    /// The token head.
    pub tokens: Rows<'a, F>,
    /// The duration head (TDT).
    pub durations: Option<Rows<'a, F>>,
    /// The token head's name (`logits`, `log_probs`, `token_logits`).
    pub token_name: &'a str,
    /// Whether log_softmax is applied to the heads.
    pub fused: bool,
}

/// Per node of one item: the log-probabilities its arcs read, and each row's log-sum-exp.
#[derive(Debug, Clone)]
pub(crate) struct ItemScores {
    /// The lattice's sizes.
    pub shape: ItemShape,
    /// Token-head slots per node (`Topology::token_slots`).
    pub slots: usize,
    /// Duration-head columns per node (0 without one).
    pub columns: usize,
    /// The token head's column of each slot at each label position (`usize::MAX`: none).
    pub slot_columns: Vec<usize>,
    /// lp of every slot, nodes × slots (−inf where a node has no row).
    pub token_lp: NodeVec,
    /// ld of every duration column, nodes × columns.
    pub duration_lp: NodeVec,
    /// The log-sum-exp of each node's token row (0 for log-probs input).
    pub token_lse: NodeVec,
    /// The log-sum-exp of each node's duration row.
    pub duration_lse: NodeVec,
}

/// ln Σ exp over a row in f64, and whether every element is finite or −inf.
fn row_lse<F: Float>(row: &[F]) -> (f64, bool) {
    let max = row
        .iter()
        .map(|x| x.to_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    if row.iter().any(|x| {
        let x = x.to_f64();
        x.is_nan() || x == f64::INFINITY
    }) {
        return (f64::NAN, false);
    }
    if max == f64::NEG_INFINITY {
        return (max, true);
    }
    let sum: f64 = row.iter().map(|x| (x.to_f64() - max).exp()).sum();
    (max + sum.ln(), true)
}

/// x − lse, −inf when the row is all −inf.
#[inline]
fn normalised(x: f64, lse: f64) -> f64 {
    if lse == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else {
        x - lse
    }
}

impl ItemScores {
    /// The front pass of item `b`: reads each of its token rows once (the SIMD row kernel) and
    /// each duration row, keeping per node the log-probabilities its arcs read.
    ///
    /// # Errors
    /// [`crate::Error::Value`] naming the first NaN or +inf within the lengths.
    pub(crate) fn read<F: Float>(
        variant: &Variant,
        batch: &Batch,
        b: usize,
        heads: &Heads<'_, F>,
    ) -> Result<ItemScores> {
        let labels = batch.labels(b);
        let shape = ItemShape::new(&variant.topology, batch.frames(b), labels.len());
        let slots = variant.topology.token_slots();
        let columns = variant.topology.duration_columns();
        let mut slot_columns = vec![usize::MAX; shape.positions * slots];
        for u in 0..shape.positions {
            let at = &mut slot_columns[u * slots..(u + 1) * slots];
            at[BLANK] = batch.blank;
            if let Some(&y) = labels.get(u) {
                at[LABEL] = y as usize;
            }
            for i in 0..slots - 2 {
                at[big_blank(i)] = batch.blank - 1 - i;
            }
        }
        let nodes = shape.nodes();
        let mut out = ItemScores {
            shape,
            slots,
            columns,
            slot_columns,
            token_lp: NodeVec::filled(nodes * slots, f64::NEG_INFINITY),
            duration_lp: NodeVec::filled(nodes * columns, f64::NEG_INFINITY),
            token_lse: NodeVec::filled(nodes, 0.0),
            duration_lse: NodeVec::filled(nodes, 0.0),
        };
        let vocab = batch.vocab;
        for t in 0..shape.frames {
            for u in 0..shape.positions {
                let n = shape.node(t, u);
                let r = batch.row(b, t, u);
                let row = heads.tokens.row(r);
                let (mut x, mut e, mut shift, mut sum) = ([0.0], [0.0], [0.0], [0.0]);
                let finite = F::frame_scores(
                    row,
                    vocab,
                    FrameScores {
                        blank: &mut x,
                        emit: &mut e,
                        shift: &mut shift,
                        sum: &mut sum,
                    },
                    None,
                    ScoreColumns {
                        blank: batch.blank,
                        labels: &[],
                    },
                );
                if !finite {
                    return Err(batch.non_finite_score(row, heads.token_name, (b, t, u)));
                }
                let lse = if !heads.fused {
                    0.0
                } else if shift[0] == f64::NEG_INFINITY {
                    f64::NEG_INFINITY
                } else {
                    shift[0] + sum[0].ln()
                };
                out.token_lse[n] = lse;
                for slot in 0..slots {
                    let k = out.slot_columns[u * slots + slot];
                    if k != usize::MAX {
                        out.token_lp[n * slots + slot] = normalised(row[k].to_f64(), lse);
                    }
                }
                if let Some(durations) = &heads.durations {
                    let row = durations.row(r);
                    let (lse, finite) = row_lse(row);
                    if !finite {
                        return Err(batch.non_finite_score(row, "duration_logits", (b, t, u)));
                    }
                    let lse = if heads.fused { lse } else { 0.0 };
                    out.duration_lse[n] = lse;
                    for (i, x) in row.iter().enumerate() {
                        out.duration_lp[n * columns + i] = normalised(x.to_f64(), lse);
                    }
                }
            }
        }
        Ok(out)
    }

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
