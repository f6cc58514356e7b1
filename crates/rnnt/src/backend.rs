//! The backend boundary: where the three passes of the loss run.
//!
//! A loss call splits into bookkeeping that is the same everywhere — checking the options and the
//! labels into a [`Batch`], turning ln P into losses (`zero_infinity`), reducing them and deriving
//! the item weights, checking that a backward call matches its forward — and three passes that
//! depend on where the scores live and how they are read (DESIGN.md §3):
//!
//! 1. the **front pass** reads the scores once and keeps, per node (t, u), the log-probabilities
//!    of the arcs leaving it and the row's softmax normalisation;
//! 2. the **lattice** computes α/β in f64 over those node scores, giving ln P(y_b|x_b);
//! 3. the **gradient pass** reads the scores again and writes d objective / d scores once.
//!
//! A [`Backend`] implements the passes and decides how to schedule them (threads, item by item,
//! kernels on a stream); what it keeps between forward and backward is its [`Backend::State`],
//! O(B·T·U), never a B·T·(U+1)·V buffer. The bookkeeping lives once, in [`crate::loss`]
//! ([`forward_with`](crate::forward_with), [`backward_with`](crate::backward_with),
//! [`loss_and_grad_with`](crate::loss_and_grad_with)), for every backend.
//!
//! The crate's own backend is [`Cpu`]; the `rnnt-cuda` crate implements the trait for NVIDIA
//! GPUs. How lattice topologies other than the standard one and a joiner computed tile by tile
//! plug into this boundary is written down in `docs/design.md`.

use crate::batch::Batch;
use crate::element::Float;
use crate::error::Result;
use crate::options::Options;

pub use crate::batch::ScoresShape;
pub use crate::cpu::backend::{Cpu, CpuGrad, CpuScores, CpuState};

/// The (B, T, U+1, V) sizes of a batch's padded scores.
pub type Dims = (usize, usize, usize, usize);

/// A place where the three passes of the loss run, for scores of element type `F`.
///
/// Every method receives a validated [`Batch`] (lengths in range, labels valid and not blank;
/// where each item's rows are: [`Batch::item_rows`], [`Batch::row_stride`]) and validated
/// [`Options`]; a backend checks only what is its own: the layout of its buffers, whether it
/// takes packed scores ([`Batch::is_packed`]), and the values of the scores, which it sees while
/// it streams them.
pub trait Backend<F: Float> {
    /// The scores of a batch as this backend reads them (logits, or log-probs when
    /// `fused_log_softmax` is off), padded (B, T, U+1, V) or, where the backend takes them,
    /// packed (ΣT_b·(U_b+1), V): array views for the CPU, a device buffer for a GPU.
    type Scores<'a>: Copy;
    /// A buffer of the scores' shape that the gradient pass writes (every element).
    type Grad<'a>;
    /// What the forward passes keep for the gradient pass: per-node state, O(B·T·U).
    type State;

    /// The layout and sizes of `scores`, once checked that this backend can read them; `name`
    /// is the argument's name in messages (`"logits"` or `"log_probs"`).
    ///
    /// # Errors
    /// [`Error::Layout`](crate::Error::Layout) for scores the backend cannot read in place.
    fn scores_dims(scores: &Self::Scores<'_>, name: &str) -> Result<ScoresShape>;

    /// The layout and sizes of `grad`, once checked that this backend can write it.
    ///
    /// # Errors
    /// [`Error::Layout`](crate::Error::Layout) for a buffer the backend cannot write in place.
    fn grad_dims(grad: &Self::Grad<'_>) -> Result<ScoresShape>;

    /// The front pass and the lattice: the state for [`Backend::backward`] and ln P(y_b|x_b) for
    /// every item (−inf for an impossible one).
    ///
    /// # Errors
    /// [`Error::Value`](crate::Error::Value) naming the first NaN or +inf score within the
    /// lengths; a backend's own failure ([`Error::Unavailable`](crate::Error::Unavailable)).
    fn forward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: Self::Scores<'_>,
    ) -> Result<(Self::State, Vec<f64>)>;

    /// The gradient pass: d objective / d scores into `grad`, given d objective / d loss_b =
    /// `item_weights[b]` (B of them, checked), with `state` from [`Backend::forward`] on the
    /// same `scores`. Padding and impossible items get zeros.
    ///
    /// # Errors
    /// A backend's own failure.
    fn backward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: Self::Scores<'_>,
        state: &Self::State,
        item_weights: &[f64],
        grad: Self::Grad<'_>,
    ) -> Result<()>;

    /// Both: the forward passes and the gradient of the reported (reduced) loss into `grad`.
    /// A backend overrides it where doing both at once saves work (the CPU keeps the softmax
    /// terms in `grad` between its passes).
    ///
    /// # Errors
    /// As [`Backend::forward`] and [`Backend::backward`].
    fn forward_backward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: Self::Scores<'_>,
        grad: Self::Grad<'_>,
    ) -> Result<(Self::State, Vec<f64>)> {
        let (state, log_p) = self.forward(batch, options, scores)?;
        let weights = options.reduction.item_weights(1.0, batch.batch_size);
        self.backward(batch, options, scores, &state, &weights, grad)?;
        Ok((state, log_p))
    }
}
