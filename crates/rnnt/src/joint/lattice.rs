//! The one call into the crate's lattice: α/β in f64 over one item's node scores, and the arc
//! occupancies of a frame for the gradient.

use crate::cpu::front::NodeScores;
use crate::cpu::lattice::{alpha_beta, Lattice};

/// One item's node scores (as the CPU front pass keeps them) and its α/β.
#[derive(Debug)]
pub struct ItemLattice {
    scores: NodeScores,
    lattice: Lattice,
}

impl ItemLattice {
    /// Runs α/β over `scores`, filled for every node.
    pub fn new(scores: NodeScores) -> ItemLattice {
        let lattice = alpha_beta(&scores);
        ItemLattice { scores, lattice }
    }

    /// ln P(y|x); −inf for an impossible item.
    pub fn log_p(&self) -> f64 {
        self.lattice.log_p
    }

    /// The node scores (per node: blank and label log-probabilities, the row's shift and
    /// 1 / Σ exp(x − shift)).
    pub fn scores(&self) -> &NodeScores {
        &self.scores
    }

    /// The occupancies of the arcs leaving frame `t`'s nodes (see [`Lattice::frame_arcs`]).
    pub fn frame_arcs(&self, t: usize, blank_out: &mut [f64], emit_out: &mut [f64]) {
        self.lattice
            .frame_arcs(&self.scores, t, blank_out, emit_out);
    }
}
