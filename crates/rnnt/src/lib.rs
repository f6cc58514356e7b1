//! # rnnt — the exact RNN-Transducer loss
//!
//! For each item b of a batch, a joiner gives scores x[t,u,k] over T_b frames × (U_b+1) label
//! positions × V symbols, one of them `blank`. The loss is −log P(y_b|x_b), the log-sum over every
//! monotonic path through the lattice (blank moves t→t+1, label y[u+1] moves u→u+1, and the path
//! ends with a blank at (T_b−1, U_b)). It is computed by the α/β recursions in f64 whatever the
//! input dtype, and the gradient w.r.t. the logits is softmax × node occupancy minus the
//! occupancy of each arc (DESIGN.md §2).
//!
//! ```
//! use ndarray::{Array1, Array2, Array4};
//! use rnnt::{loss_and_grad, LossInput, Options, Reduction, Targets};
//!
//! // B=1, T=2, U=1, V=2: every probability ½ (zero logits), blank = 1.
//! let logits = Array4::<f32>::zeros((1, 2, 2, 2));
//! let targets = Array2::<i32>::from_elem((1, 1), 0);
//! let (logit_lengths, target_lengths) = (Array1::from_elem(1, 2), Array1::from_elem(1, 1));
//! let input = LossInput {
//!     logits: logits.view(),
//!     targets: Targets::Padded(targets.view()),
//!     logit_lengths: logit_lengths.view(),
//!     target_lengths: target_lengths.view(),
//! };
//! let options = Options { blank: 1, reduction: Reduction::Sum, ..Options::default() };
//! let out = loss_and_grad(&input, &options).unwrap();
//! assert!((out.loss - 4f64.ln()).abs() < 1e-6); // two paths of probability 1/8 each
//! ```
//!
//! Logits may also come packed, (ΣT_b·(U_b+1), V): each item's T_b × (U_b+1) rows, frame-major,
//! one item after the other (optimized_transducer's layout, no padding). A 2-D `logits` view
//! says so, and the gradient then has the packed shape:
//!
//! ```
//! use ndarray::{Array1, Array2};
//! use rnnt::{loss_and_grad, LossInput, Options, Reduction, Targets};
//!
//! // The batch above, packed: T_0·(U_0+1) = 2·2 rows of V = 2.
//! let logits = Array2::<f32>::zeros((4, 2));
//! let targets = Array2::<i32>::from_elem((1, 1), 0);
//! let (logit_lengths, target_lengths) = (Array1::from_elem(1, 2), Array1::from_elem(1, 1));
//! let input = LossInput {
//!     logits: logits.view(),
//!     targets: Targets::Padded(targets.view()),
//!     logit_lengths: logit_lengths.view(),
//!     target_lengths: target_lengths.view(),
//! };
//! let options = Options { blank: 1, reduction: Reduction::Sum, ..Options::default() };
//! let out = loss_and_grad(&input, &options).unwrap();
//! assert!((out.loss - 4f64.ln()).abs() < 1e-6);
//! assert_eq!(out.grad.dim(), (4, 2));
//! ```
//!
//! Modules: [`batch`] (inputs and all validation), [`loss`] (entry points and the bookkeeping
//! every backend shares), [`backend`] (the boundary the passes sit behind, and the CPU backend),
//! [`reference`] (the plain f64 oracle), [`align`](mod@align) (best path and occupancy).

pub mod align;
pub mod backend;
pub mod batch;
mod cpu;
mod element;
pub mod error;
pub mod logspace;
pub mod loss;
pub mod options;
pub mod reference;
pub mod variant;

pub use align::{align, Alignment, ArcKind, BestPath, FrameSpread};
pub use backend::{Backend, Cpu};
pub use batch::{Batch, Labels, LossInput, ScoresDim, ScoresShape, Targets};
pub use cpu::backend::STREAM_MIN_BYTES;
pub use element::{Float, Index};
pub use error::{Error, Result};
pub use loss::{
    backward, backward_with, forward, forward_with, loss_and_grad, loss_and_grad_into,
    loss_and_grad_with, Forward, LossAndGrad,
};
pub use options::{Options, Reduction};
pub use variant::{
    Topology, Variant, VariantForward, VariantGrad, VariantInput, VariantLossAndGrad,
};

/// Not part of the API: the CPU backend's internals that the criterion benchmarks and
/// `rnnt bench` measure directly. Anything here may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::cpu::front::NodeScores;
    pub use crate::cpu::lattice::{alpha_beta, forward_variable};
    pub use crate::cpu::simd::{self, FrameRows, GradRow, Isa};
    pub use crate::cpu::threads::run_in_pool;
    pub use crate::cpu::triad::Triad;
}
