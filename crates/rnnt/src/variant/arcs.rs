//! The one definition of each topology's arcs, read by the reference, the CPU passes and the
//! alignments.
//!
//! An item of T frames and U labels has nodes (t, u), u ≤ U, for t < T (and t = T for k2's
//! one-symbol-per-frame lattices without a terminal blank, whose paths end at (T, U)). An arc
//! leaves a node, reads token-head columns at nodes of its own frame (by *slot*: [`BLANK`],
//! [`LABEL`] = y[u+1], [`big_blank`] i = blank − 1 − i) and possibly one duration-head column,
//! adds a constant, and lands on a node or ends the path.

use crate::variant::topology::{Topology, Variant};

/// The slot of the blank column.
pub(crate) const BLANK: usize = 0;
/// The slot of the next label's column, y[u+1] (only at u < U).
pub(crate) const LABEL: usize = 1;

/// The slot of big blank `i`.
pub(crate) const fn big_blank(i: usize) -> usize {
    2 + i
}

/// Where an arc lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Node (t, u).
    Node(usize, usize),
    /// The end of the path.
    End,
}

/// One arc leaving a node (t, u).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arc {
    /// Where it lands.
    pub dest: Dest,
    /// The token-head reads: (label position u' on frame t, slot); the first `token_reads`.
    pub reads: [(usize, usize); 2],
    /// How many of `reads` are used (0 for the pseudo-arc that ends a one-symbol-per-frame path).
    pub token_reads: usize,
    /// The duration head's column, for TDT.
    pub duration: Option<usize>,
    /// Whether the arc emits a label (FastEmit and the delay penalty act on these).
    pub label: bool,
    /// The constant the arc adds: −σ if it reads the token head, plus the delay bonus.
    pub bonus: f64,
    /// The frames the arc advances (its duration; 0 for a regular label).
    pub frames: usize,
}

/// The sizes of one item's lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemShape {
    /// T_b, frames of logits.
    pub frames: usize,
    /// U_b + 1, label positions.
    pub positions: usize,
    /// Frames of nodes: T_b, or T_b + 1 where paths end at (T, U).
    pub node_frames: usize,
}

impl ItemShape {
    /// The shape of an item of `frames` frames and `labels` labels under `topology`.
    pub(crate) fn new(topology: &Topology, frames: usize, labels: usize) -> ItemShape {
        let ends_on_node = topology.one_symbol_per_frame() && !topology.ends_with_blank();
        ItemShape {
            frames,
            positions: labels + 1,
            node_frames: frames + usize::from(ends_on_node),
        }
    }

    /// The number of nodes.
    pub(crate) fn nodes(&self) -> usize {
        self.node_frames * self.positions
    }

    /// The index of node (t, u), frame-major.
    #[inline]
    pub(crate) fn node(&self, t: usize, u: usize) -> usize {
        t * self.positions + u
    }
}

/// An arc with the given fields and no duration read.
fn arc(dest: Dest, reads: &[(usize, usize)], label: bool, bonus: f64, frames: usize) -> Arc {
    let mut all = [(0, 0); 2];
    all[..reads.len()].copy_from_slice(reads);
    Arc {
        dest,
        reads: all,
        token_reads: reads.len(),
        duration: None,
        label,
        bonus,
        frames,
    }
}

impl Variant {
    /// Pushes onto `out` (cleared first) the arcs leaving node (t, u) of an item of `shape`.
    pub(crate) fn arcs(&self, shape: ItemShape, (t, u): (usize, usize), out: &mut Vec<Arc>) {
        out.clear();
        let (frames, last) = (shape.frames, shape.positions - 1);
        let sigma = -self.sigma;
        let delay = sigma + self.delay_penalty * ((frames as f64 - 1.0) / 2.0 - t as f64);
        // A blank-like arc of `d` frames from (t, u): to (t+d, u) inside, to the end exactly at T.
        let landing = |d: usize| {
            if t + d < frames {
                Some(Dest::Node(t + d, u))
            } else if t + d == frames && u == last {
                Some(Dest::End)
            } else {
                None
            }
        };
        match &self.topology {
            Topology::Regular | Topology::MultiBlank { .. } => {
                if let Some(dest) = landing(1) {
                    out.push(arc(dest, &[(u, BLANK)], false, sigma, 1));
                }
                if let Topology::MultiBlank {
                    big_blank_durations,
                } = &self.topology
                {
                    for (i, &d) in big_blank_durations.iter().enumerate() {
                        if let Some(dest) = landing(d) {
                            out.push(arc(dest, &[(u, big_blank(i))], false, sigma, d));
                        }
                    }
                }
                if u < last {
                    out.push(arc(Dest::Node(t, u + 1), &[(u, LABEL)], true, delay, 0));
                }
            }
            Topology::Tdt { durations } => {
                for (i, &d) in durations.iter().enumerate() {
                    if d > 0 {
                        if let Some(dest) = landing(d) {
                            let mut blank = arc(dest, &[(u, BLANK)], false, sigma, d);
                            blank.duration = Some(i);
                            out.push(blank);
                        }
                    }
                    if u < last && t + d < frames {
                        let dest = Dest::Node(t + d, u + 1);
                        let mut label = arc(dest, &[(u, LABEL)], true, sigma, d);
                        label.duration = Some(i);
                        out.push(label);
                    }
                }
            }
            Topology::Modified { terminal_blank } => {
                if *terminal_blank && t + 1 == frames {
                    if u == last {
                        out.push(arc(Dest::End, &[(u, BLANK)], false, sigma, 1));
                    }
                    return;
                }
                self.one_symbol_arcs(shape, (t, u), false, (sigma, delay), out);
            }
            Topology::Constrained => self.one_symbol_arcs(shape, (t, u), true, (sigma, delay), out),
        }
    }

    /// The arcs of k2's one-symbol-per-frame lattices from (t, u): a blank and a label, each to
    /// the next frame, the label also reading the next context's blank when `constrained`; the
    /// node (T, U) ends the path with an arc that reads nothing.
    fn one_symbol_arcs(
        &self,
        shape: ItemShape,
        (t, u): (usize, usize),
        constrained: bool,
        (sigma, delay): (f64, f64),
        out: &mut Vec<Arc>,
    ) {
        let last = shape.positions - 1;
        if t == shape.frames {
            if u == last {
                out.push(arc(Dest::End, &[], false, 0.0, 0));
            }
            return;
        }
        out.push(arc(Dest::Node(t + 1, u), &[(u, BLANK)], false, sigma, 1));
        if u < last {
            let reads: &[(usize, usize)] = if constrained {
                &[(u, LABEL), (u + 1, BLANK)]
            } else {
                &[(u, LABEL)]
            };
            out.push(arc(Dest::Node(t + 1, u + 1), reads, true, delay, 1));
        }
    }
}
