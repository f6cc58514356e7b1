//! The user's choice of lattice ([`Topology`]) and its additive arc terms ([`Variant`]), and
//! their checks against a batch.

use crate::batch::{Batch, ScoresShape};
use crate::error::{Error, Result};

/// Which arcs leave each node of an item's lattice (the standard RNN-T lattice, or one of the
/// variants users train today). A topology is data read by every pass (`variant::arcs`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Topology {
    /// The standard lattice: a blank moves t → t+1, label y[u+1] moves u → u+1 on the same frame,
    /// paths end with a blank from (T−1, U).
    #[default]
    Regular,
    /// k2's `rnnt_type="modified"`: one symbol per frame; a label moves (t, u) → (t+1, u+1); no
    /// terminal blank: paths end at (T, U) (needs T ≥ U). With `terminal_blank`,
    /// optimized_transducer's `one_sym_per_frame`: paths end with a blank from (T−1, U) (needs
    /// T ≥ U+1).
    Modified {
        /// End every path with a blank from (T−1, U).
        terminal_blank: bool,
    },
    /// k2's `rnnt_type="constrained"`: as `Modified` (no terminal blank), and the label arc
    /// also reads the blank of the next context, lp[t, u+1, blank], on the same frame.
    Constrained,
    /// The Token-and-Duration Transducer (Xu et al. 2023): a second head over `durations`
    /// (ascending, distinct, ≥ 0); a blank of duration d > 0 moves (t, u) → (t+d, u), a label of
    /// duration d ≥ 0 moves (t, u) → (t+d, u+1); paths end with a blank landing exactly on T.
    Tdt {
        /// The duration of each column of the duration head.
        durations: Vec<usize>,
    },
    /// The multi-blank transducer (Xu et al. 2022): big blank i, symbol blank − 1 − i, moves
    /// t → t + `big_blank_durations[i]` (each ≥ 2); a path may end with any blank landing on T.
    MultiBlank {
        /// The duration of each big blank.
        big_blank_durations: Vec<usize>,
    },
}

/// A lattice topology and the constants its arcs add: the whole description of a transducer
/// variant, beside [`Options`](crate::Options) (whose fields — blank, reduction, input mode,
/// clamp, FastEmit, `zero_infinity`, threads — apply to every variant).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variant {
    /// Which arcs leave each node.
    pub topology: Topology,
    /// Undernormalisation σ: subtracted from every arc that reads the token head (once per arc).
    pub sigma: f64,
    /// k2's delay penalty δ: each label arc read at frame t gains δ·((T_b − 1)/2 − t) (regular,
    /// modified and constrained lattices); the reported loss includes it.
    pub delay_penalty: f64,
}

impl Variant {
    /// The standard loss: the regular lattice, no additive terms.
    pub fn is_standard(&self) -> bool {
        self.topology == Topology::Regular && self.sigma == 0.0 && self.delay_penalty == 0.0
    }

    /// The variant named as the front ends name it: `rnnt_type` ("regular", "modified",
    /// "constrained"), `terminal_blank`, and TDT when `durations` is given, multi-blank when
    /// `big_blank_durations` is non-empty. Durations are checked by [`Variant::validate`].
    ///
    /// # Errors
    /// [`Error::Value`] for an unknown `rnnt_type`, a negative duration, or options that do not
    /// combine (each named).
    pub fn from_names(
        rnnt_type: &str,
        terminal_blank: bool,
        durations: Option<&[i64]>,
        big_blank_durations: Option<&[i64]>,
        (sigma, delay_penalty): (f64, f64),
    ) -> Result<Variant> {
        let unsigned = |values: &[i64], name: &str| -> Result<Vec<usize>> {
            values
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    usize::try_from(d).map_err(|_| {
                        Error::Value(format!("{name}[{i}] = {d} is negative: durations are >= 0"))
                    })
                })
                .collect()
        };
        let big = big_blank_durations.filter(|d| !d.is_empty());
        let topology = match (rnnt_type, durations, big) {
            (_, Some(_), Some(_)) => {
                return Err(Error::Value(
                    "durations and big_blank_durations are both given: TDT and multi-blank do \
                     not combine"
                        .into(),
                ))
            }
            ("regular", Some(durations), None) => Topology::Tdt {
                durations: unsigned(durations, "durations")?,
            },
            ("regular", None, Some(big)) => Topology::MultiBlank {
                big_blank_durations: unsigned(big, "big_blank_durations")?,
            },
            ("regular", None, None) => Topology::Regular,
            ("modified", None, None) => Topology::Modified { terminal_blank },
            ("constrained", None, None) => Topology::Constrained,
            ("modified" | "constrained", _, _) => {
                return Err(Error::Value(format!(
                    "rnnt_type = {rnnt_type:?} does not combine with durations or \
                     big_blank_durations (TDT and multi-blank use the regular lattice)"
                )))
            }
            (other, _, _) => {
                return Err(Error::Value(format!(
                    "rnnt_type = {other:?} is not one of \"regular\", \"modified\", \
                     \"constrained\""
                )))
            }
        };
        if terminal_blank && !matches!(topology, Topology::Modified { .. }) {
            return Err(Error::Value(format!(
                "terminal_blank = true applies to rnnt_type = \"modified\" only, not {}",
                topology.name()
            )));
        }
        Ok(Variant {
            topology,
            sigma,
            delay_penalty,
        })
    }

    /// Checks what does not depend on the input: finite constants, durations ascending and
    /// distinct with at least one blank duration, big blank durations ≥ 2, the delay penalty only
    /// where it is defined.
    ///
    /// # Errors
    /// [`Error::Value`] naming the argument and value.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("sigma", self.sigma), ("delay_penalty", self.delay_penalty)] {
            if !value.is_finite() {
                return Err(Error::Value(format!("{name} = {value} must be finite")));
            }
        }
        match &self.topology {
            Topology::Tdt { durations } => {
                if durations.is_empty() {
                    return Err(Error::Value(
                        "durations = []: TDT needs at least one duration".into(),
                    ));
                }
                if let Some(i) = (1..durations.len()).find(|&i| durations[i] <= durations[i - 1]) {
                    let how = if durations[i] == durations[i - 1] {
                        "repeated"
                    } else {
                        "not ascending"
                    };
                    return Err(Error::Value(format!(
                        "durations = {durations:?} is {how} at index {i}: durations must be \
                         ascending and distinct"
                    )));
                }
                if durations.iter().all(|&d| d == 0) {
                    return Err(Error::Value(format!(
                        "durations = {durations:?} has no duration > 0: a blank of duration 0 \
                         does not exist, so no path could end"
                    )));
                }
            }
            Topology::MultiBlank {
                big_blank_durations,
            } => {
                if let Some((i, d)) = big_blank_durations.iter().enumerate().find(|(_, &d)| d < 2) {
                    return Err(Error::Value(format!(
                        "big_blank_durations[{i}] = {d}: a big blank lasts at least 2 frames \
                         (the standard blank lasts 1)"
                    )));
                }
            }
            _ => {}
        }
        if self.delay_penalty != 0.0
            && matches!(
                self.topology,
                Topology::Tdt { .. } | Topology::MultiBlank { .. }
            )
        {
            return Err(Error::Value(format!(
                "delay_penalty = {} is defined on the regular, modified and constrained \
                 lattices, not on {}",
                self.delay_penalty,
                self.topology.name()
            )));
        }
        Ok(())
    }

    /// Checks the variant against a validated batch of token scores and the shape of the
    /// duration head (`None` when absent): the head's presence and size, big blank ids, T ≥ U
    /// for one symbol per frame.
    ///
    /// # Errors
    /// [`Error::Value`] or [`Error::Shape`] naming the argument and value.
    pub fn check_batch(
        &self,
        batch: &Batch,
        duration_shape: Option<ScoresShape>,
        token_name: &str,
    ) -> Result<()> {
        match (&self.topology, duration_shape) {
            (Topology::Tdt { durations }, Some(shape)) => {
                let expected = with_last(batch.shape(), durations.len());
                if shape != expected {
                    return Err(Error::Shape(format!(
                        "duration_logits has shape {shape} but {token_name} {} and \
                         len(durations) = {} need {expected}",
                        batch.shape(),
                        durations.len()
                    )));
                }
            }
            (Topology::Tdt { .. }, None) => {
                return Err(Error::Value(
                    "TDT (durations given) needs duration_logits".into(),
                ))
            }
            (other, Some(_)) => {
                return Err(Error::Value(format!(
                    "duration_logits are given but the lattice is {}: pass durations for TDT",
                    other.name()
                )))
            }
            _ => {}
        }
        match &self.topology {
            Topology::MultiBlank {
                big_blank_durations,
            } => {
                for i in 0..big_blank_durations.len() {
                    let id = batch.blank as i64 - 1 - i as i64;
                    if id < 0 {
                        return Err(Error::Value(format!(
                            "big_blank_durations has {} entries but blank = {}: big blank {i} \
                             would be symbol blank - 1 - {i} = {id} < 0",
                            big_blank_durations.len(),
                            batch.blank
                        )));
                    }
                    for b in 0..batch.batch_size {
                        if let Some(u) = batch.labels(b).iter().position(|&y| i64::from(y) == id) {
                            return Err(Error::Value(format!(
                                "targets[{b}][{u}] = {id} is big blank {i} (blank - 1 - {i}): \
                                 labels must not be blanks"
                            )));
                        }
                    }
                }
            }
            Topology::Modified { .. } | Topology::Constrained => {
                let extra = usize::from(self.topology.ends_with_blank());
                for b in 0..batch.batch_size {
                    let (frames, labels) = (batch.frames(b), batch.labels(b).len());
                    if frames < labels + extra {
                        let need = if extra == 1 { "U_b + 1" } else { "U_b" };
                        return Err(Error::Value(format!(
                            "logit_lengths[{b}] = {frames} is below {need} = {} \
                             (target_lengths[{b}] = {labels}): {} emits one symbol per frame",
                            labels + extra,
                            self.topology.name()
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `shape` with its last axis of extent `last`.
fn with_last(shape: ScoresShape, last: usize) -> ScoresShape {
    match shape {
        ScoresShape::Padded((b, t, u, _)) => ScoresShape::Padded((b, t, u, last)),
        ScoresShape::Packed { rows, .. } => ScoresShape::Packed { rows, vocab: last },
    }
}

impl Topology {
    /// The topology's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Regular => "rnnt_type = \"regular\"",
            Topology::Modified {
                terminal_blank: false,
            } => "rnnt_type = \"modified\"",
            Topology::Modified {
                terminal_blank: true,
            } => "rnnt_type = \"modified\" with terminal_blank",
            Topology::Constrained => "rnnt_type = \"constrained\"",
            Topology::Tdt { .. } => "TDT",
            Topology::MultiBlank { .. } => "multi-blank",
        }
    }

    /// Whether every arc consumes one frame (k2's "modified" and "constrained").
    pub(crate) fn one_symbol_per_frame(&self) -> bool {
        matches!(self, Topology::Modified { .. } | Topology::Constrained)
    }

    /// Whether paths end with a blank arc (all but k2's one-symbol-per-frame lattices).
    pub(crate) fn ends_with_blank(&self) -> bool {
        !matches!(
            self,
            Topology::Modified {
                terminal_blank: false
            } | Topology::Constrained
        )
    }

    /// The number of token-head columns a node's arcs read: blank, the next label, each big
    /// blank (the slots of `variant::arcs`).
    pub(crate) fn token_slots(&self) -> usize {
        match self {
            Topology::MultiBlank {
                big_blank_durations,
            } => 2 + big_blank_durations.len(),
            _ => 2,
        }
    }

    /// The number of columns of the duration head (0 without one).
    pub(crate) fn duration_columns(&self) -> usize {
        match self {
            Topology::Tdt { durations } => durations.len(),
            _ => 0,
        }
    }
}
