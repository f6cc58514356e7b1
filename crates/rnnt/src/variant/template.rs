//! Each topology's arcs as a few arc *kinds*, the same at every node where they exist: what the
//! fast lattice walks, frame by frame, vectorised over label positions. They describe the same
//! arcs as [`Variant::arcs`](crate::variant::topology::Variant) (`variant::arcs`), against which
//! the tests check the passes that use them.

use std::ops::Range;

use crate::variant::arcs::{big_blank, ItemShape, BLANK, LABEL};
use crate::variant::topology::{Topology, Variant};

/// One kind of arc leaving node (t, u): to (t + frames, u + [label]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArcKind {
    /// The frames it advances.
    pub frames: usize,
    /// Whether it emits label y[u+1] (and moves to u + 1).
    pub label: bool,
    /// The token slot it reads at (t, u).
    pub slot: usize,
    /// Whether it also reads the blank of (t, u + 1) (k2's "constrained").
    pub next_blank: bool,
    /// The duration head's column it reads (TDT).
    pub duration: Option<usize>,
}

/// The arcs of one kind that leave one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameArcs {
    /// The label positions u whose arc lands on node (t + frames, u + [label]).
    pub nodes: Range<usize>,
    /// Whether the arc from (t, U) ends the path.
    pub end: bool,
}

impl ArcKind {
    /// The kind with these fields and no duration read.
    const fn new(frames: usize, label: bool, slot: usize) -> ArcKind {
        ArcKind {
            frames,
            label,
            slot,
            next_blank: false,
            duration: None,
        }
    }

    /// The arcs of this kind leaving frame t (t < T) of an item of `shape`: a label needs a
    /// label left and its node; a blank lands on its node, or ends the path exactly at (T, U).
    #[inline]
    pub(crate) fn leaving(&self, shape: &ItemShape, t: usize) -> FrameArcs {
        let to = t + self.frames;
        let none = FrameArcs {
            nodes: 0..0,
            end: false,
        };
        if to < shape.node_frames {
            FrameArcs {
                nodes: 0..shape.positions - usize::from(self.label),
                end: false,
            }
        } else if !self.label && to == shape.frames {
            FrameArcs { end: true, ..none }
        } else {
            none
        }
    }

    /// The constant the arc adds at frame t of an item of T frames: −σ, plus the delay bonus
    /// δ·((T − 1)/2 − t) on a label.
    #[inline]
    pub(crate) fn bonus(&self, variant: &Variant, frames: usize, t: usize) -> f64 {
        let sigma = -variant.sigma;
        if self.label {
            sigma + variant.delay_penalty * ((frames as f64 - 1.0) / 2.0 - t as f64)
        } else {
            sigma
        }
    }
}

impl Variant {
    /// The kinds of arc that read the token head, pushed onto `out` (cleared first). k2's
    /// lattices without a terminal blank also end every path with an arc from (T, U) that reads
    /// nothing, which the walks handle themselves.
    pub(crate) fn arc_kinds(&self, out: &mut Vec<ArcKind>) {
        out.clear();
        match &self.topology {
            Topology::Regular | Topology::MultiBlank { .. } => {
                out.push(ArcKind::new(1, false, BLANK));
                if let Topology::MultiBlank {
                    big_blank_durations,
                } = &self.topology
                {
                    let bigs = big_blank_durations.iter().enumerate();
                    out.extend(bigs.map(|(i, &d)| ArcKind::new(d, false, big_blank(i))));
                }
                out.push(ArcKind::new(0, true, LABEL));
            }
            Topology::Tdt { durations } => {
                for (i, &d) in durations.iter().enumerate() {
                    if d > 0 {
                        out.push(ArcKind {
                            duration: Some(i),
                            ..ArcKind::new(d, false, BLANK)
                        });
                    }
                    out.push(ArcKind {
                        duration: Some(i),
                        ..ArcKind::new(d, true, LABEL)
                    });
                }
            }
            Topology::Modified { .. } | Topology::Constrained => {
                out.push(ArcKind::new(1, false, BLANK));
                out.push(ArcKind {
                    next_blank: self.topology == Topology::Constrained,
                    ..ArcKind::new(1, true, LABEL)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::variant::arcs::{Arc, Dest, ItemShape, BLANK};
    use crate::variant::template::ArcKind;
    use crate::variant::topology::{Topology, Variant};

    /// At every node of items of several sizes, the kinds give exactly the arcs of
    /// `Variant::arcs` (as a set: the reads, the duration, the constant, where it lands).
    #[test]
    fn kinds_give_the_arcs_of_every_node() {
        let topologies = [
            Topology::Regular,
            Topology::MultiBlank {
                big_blank_durations: vec![2, 3],
            },
            Topology::Tdt {
                durations: vec![0, 1, 3],
            },
            Topology::Tdt {
                durations: vec![1, 2],
            },
            Topology::Modified {
                terminal_blank: false,
            },
            Topology::Modified {
                terminal_blank: true,
            },
            Topology::Constrained,
        ];
        for topology in topologies {
            let delay = if matches!(topology, Topology::Tdt { .. } | Topology::MultiBlank { .. }) {
                0.0
            } else {
                0.25
            };
            let variant = Variant {
                topology,
                sigma: 0.5,
                delay_penalty: delay,
            };
            let mut kinds = Vec::new();
            variant.arc_kinds(&mut kinds);
            for (frames, labels) in [(1, 0), (3, 2), (5, 3), (6, 1)] {
                let shape = ItemShape::new(&variant.topology, frames, labels);
                let mut arcs = Vec::new();
                for t in 0..shape.node_frames {
                    for u in 0..shape.positions {
                        variant.arcs(shape, (t, u), &mut arcs);
                        let mut expected: Vec<String> = arcs
                            .iter()
                            .filter(|arc| arc.token_reads > 0)
                            .map(describe)
                            .collect();
                        let mut got: Vec<String> = if t < frames {
                            kinds
                                .iter()
                                .filter_map(|kind| as_arc(&variant, kind, shape, (t, u)))
                                .map(|arc| describe(&arc))
                                .collect()
                        } else {
                            Vec::new()
                        };
                        expected.sort();
                        got.sort();
                        assert_eq!(got, expected, "{:?} at ({t}, {u})", variant.topology);
                    }
                }
            }
        }
    }

    /// The arc of `kind` from (t, u), as `Variant::arcs` writes it.
    fn as_arc(
        variant: &Variant,
        kind: &ArcKind,
        shape: ItemShape,
        (t, u): (usize, usize),
    ) -> Option<Arc> {
        let arcs = kind.leaving(&shape, t);
        let dest = if arcs.nodes.contains(&u) {
            Dest::Node(t + kind.frames, u + usize::from(kind.label))
        } else if arcs.end && u == shape.positions - 1 {
            Dest::End
        } else {
            return None;
        };
        let mut reads = [(u, kind.slot), (0, 0)];
        if kind.next_blank {
            reads[1] = (u + 1, BLANK);
        }
        Some(Arc {
            dest,
            reads,
            token_reads: 1 + usize::from(kind.next_blank),
            duration: kind.duration,
            label: kind.label,
            bonus: kind.bonus(variant, shape.frames, t),
            frames: kind.frames,
        })
    }

    /// An arc's fields as text, to compare sets of arcs.
    fn describe(arc: &Arc) -> String {
        format!("{arc:?}")
    }
}
