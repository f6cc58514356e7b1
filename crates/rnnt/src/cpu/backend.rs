//! The CPU backend: the three passes scheduled over rayon threads.
//!
//! The front and gradient passes split the batch into runs of frames of similar size (so one long
//! item still uses every thread; see [`frames_per_run`]); the lattice runs per item. For batches
//! of small items whose gradient stays in cache, [`Backend::forward_backward`] runs the three
//! passes item by item instead, each item's on one thread ([`ITEM_MAJOR_BYTES`]).

use std::sync::Mutex;

use ndarray::{ArrayView2, ArrayView4, ArrayViewMut2, ArrayViewMut4};
use rayon::prelude::*;

use crate::backend::Backend;
use crate::batch::{contiguous_shape, Batch, ScoresShape};
use crate::cpu::front::{FrameRun, NodeScores};
use crate::cpu::grad::{grad_frames, GradSettings, ItemState, SoftmaxTerms};
use crate::cpu::huge_pages::advise_huge_pages;
use crate::cpu::lattice::{alpha_beta, Lattice};
use crate::cpu::threads::{pool_size, run_in_pool};
use crate::element::Float;
use crate::error::{Error, Result};
use crate::options::Options;

/// The CPU backend, on `options.threads` threads (0: all of rayon's global pool).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu;

/// What the CPU keeps between forward and backward: per item its node scores (three f64 and a
/// shift per node) and α/β.
#[derive(Debug, Clone)]
pub struct CpuState {
    items: Vec<(NodeScores, Lattice)>,
}

impl CpuState {
    /// Node scores and α/β of item `b` (for the alignments and the benchmarks of the passes).
    #[doc(hidden)]
    pub fn item(&self, b: usize) -> (&NodeScores, &Lattice) {
        let (scores, lattice) = &self.items[b];
        (scores, lattice)
    }

    /// The state of `items`, with ln P of each.
    fn with_log_p(items: Vec<(NodeScores, Lattice)>) -> (CpuState, Vec<f64>) {
        let log_p = items.iter().map(|(_, lattice)| lattice.log_p).collect();
        (CpuState { items }, log_p)
    }
}

/// Scores as the CPU backend reads them: a C-contiguous host array, padded or packed (made from a
/// view by [`ScoresDim::cpu_scores`](crate::batch::ScoresDim::cpu_scores), or directly).
#[derive(Debug, Clone, Copy)]
pub enum CpuScores<'a, F> {
    /// (B, T, U+1, V) padded scores.
    Padded(ArrayView4<'a, F>),
    /// (ΣT_b·(U_b+1), V) packed scores.
    Packed(ArrayView2<'a, F>),
}

/// A gradient buffer as the CPU backend writes it: C-contiguous, of the scores' layout.
#[derive(Debug)]
pub enum CpuGrad<'a, F> {
    /// (B, T, U+1, V), for padded scores.
    Padded(ArrayViewMut4<'a, F>),
    /// (ΣT_b·(U_b+1), V), for packed scores.
    Packed(ArrayViewMut2<'a, F>),
}

impl<'a, F> CpuScores<'a, F> {
    /// The layout and sizes, once checked to be C-contiguous.
    fn shape(&self, name: &str) -> Result<ScoresShape> {
        match self {
            CpuScores::Padded(scores) => contiguous_shape(scores, name),
            CpuScores::Packed(scores) => contiguous_shape(scores, name),
        }
    }

    /// The elements in order (the layout checked by [`Backend::scores_dims`] before any pass
    /// runs).
    fn elements(&self) -> &'a [F] {
        match self {
            CpuScores::Padded(scores) => scores.to_slice(),
            CpuScores::Packed(scores) => scores.to_slice(),
        }
        .expect("Backend::scores_dims checked the layout")
    }
}

impl<F> CpuGrad<'_, F> {
    /// The elements in order (the layout checked by [`Backend::grad_dims`]), advised to take
    /// huge pages.
    fn elements(&mut self) -> &mut [F] {
        let out = match self {
            CpuGrad::Padded(grad) => grad.as_slice_mut(),
            CpuGrad::Packed(grad) => grad.as_slice_mut(),
        }
        .expect("Backend::grad_dims checked the layout");
        advise_huge_pages(out);
        out
    }
}

/// Gradients at least this large (in bytes) are written with non-temporal stores: they would not
/// stay in cache anyway, and streaming them saves reading each line before writing it. (Short
/// rows are staged and streamed several at a time, see `cpu::grad`.) Below it,
/// [`loss_and_grad_into`](crate::loss_and_grad_into) keeps the softmax terms in the gradient
/// between its passes, which makes it faster than [`forward`](crate::forward) then
/// [`backward`](crate::backward).
pub const STREAM_MIN_BYTES: usize = 64 << 20;

/// Items whose logits block is at most this large (in bytes) are done one at a time by
/// [`Backend::forward_backward`], when the batch has at least two per thread: the front pass,
/// the lattice and the gradient pass of an item one after the other on one thread, so that the
/// softmax terms the front pass stores are read back from L2, not from memory or L3 (a core's L2
/// is 1–2 MiB on the machines this is tuned for).
const ITEM_MAJOR_BYTES: usize = 1 << 20;

impl<F: Float> Backend<F> for Cpu {
    type Scores<'a> = CpuScores<'a, F>;
    type Grad<'a> = CpuGrad<'a, F>;
    type State = CpuState;

    fn scores_dims(scores: &CpuScores<'_, F>, name: &str) -> Result<ScoresShape> {
        scores.shape(name)
    }

    fn grad_dims(grad: &CpuGrad<'_, F>) -> Result<ScoresShape> {
        let (contiguous, shape) = match grad {
            CpuGrad::Padded(grad) => (grad.is_standard_layout(), ScoresShape::Padded(grad.dim())),
            CpuGrad::Packed(grad) => {
                let (rows, vocab) = grad.dim();
                (
                    grad.is_standard_layout(),
                    ScoresShape::Packed { rows, vocab },
                )
            }
        };
        if !contiguous {
            return Err(Error::Layout("grad must be C-contiguous".to_string()));
        }
        Ok(shape)
    }

    fn forward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: CpuScores<'_, F>,
    ) -> Result<(CpuState, Vec<f64>)> {
        forward_storing(batch, options, scores.elements(), None)
    }

    fn backward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: CpuScores<'_, F>,
        state: &CpuState,
        item_weights: &[f64],
        mut grad: CpuGrad<'_, F>,
    ) -> Result<()> {
        let out = grad.elements();
        let logits = scores.elements();
        backward_into(batch, options, logits, state, item_weights, out, false)
    }

    /// Where the gradient stays in cache (unstreamed, below [`STREAM_MIN_BYTES`]) and the input
    /// is logits, the front pass stores each row's softmax terms exp(x − shift) in `grad` as it
    /// sums them, and the gradient pass turns them into the gradient in place: a store and a
    /// load per element instead of a second exp, which is most of the gradient pass's work when
    /// the data is in cache. Elsewhere it is forward then backward.
    fn forward_backward(
        &self,
        batch: &Batch,
        options: &Options,
        scores: CpuScores<'_, F>,
        mut grad: CpuGrad<'_, F>,
    ) -> Result<(CpuState, Vec<f64>)> {
        let out = grad.elements();
        let logits = scores.elements();
        let stored = options.fused_log_softmax
            && F::STORES_SOFTMAX_TERMS
            && std::mem::size_of_val(out) < STREAM_MIN_BYTES;
        let item_bytes = std::mem::size_of_val(out) / batch.batch_size.max(1);
        let by_item = stored
            && batch.batch_size >= 2 * pool_size(options.threads)?
            && item_bytes <= ITEM_MAJOR_BYTES;
        if by_item {
            return by_item_in_place(batch, options, logits, out);
        }
        let (state, log_p) = forward_storing(batch, options, logits, stored.then_some(&mut *out))?;
        let weights = options.reduction.item_weights(1.0, batch.batch_size);
        backward_into(batch, options, logits, &state, &weights, out, stored)?;
        Ok((state, log_p))
    }
}

/// Item `b`'s block of `elements`, the batch's scores (or a buffer of their shape): its rows
/// [`Batch::item_rows`].
fn item_block<'a, F>(elements: &'a [F], batch: &Batch, b: usize) -> &'a [F] {
    let rows = batch.item_rows(b);
    &elements[rows.start * batch.vocab..rows.end * batch.vocab]
}

/// `buffer` (of the scores' shape) split into the items' blocks, in batch order: the blocks are
/// consecutive and cover it, padded or packed.
fn item_blocks_mut<'a, F>(buffer: &'a mut [F], batch: &Batch) -> Vec<&'a mut [F]> {
    let mut rest = buffer;
    (0..batch.batch_size)
        .map(|b| {
            let (block, tail) =
                std::mem::take(&mut rest).split_at_mut(batch.item_rows(b).len() * batch.vocab);
            rest = tail;
            block
        })
        .collect()
}

/// The name of the scores in messages, by input mode.
fn input_name(options: &Options) -> &'static str {
    crate::loss::input_name(options)
}

/// The front pass and the lattice over `logits` (the scores' elements, padded or packed: each
/// item's block is found through the batch, [`item_block`]), also storing each valid row's
/// softmax terms exp(x − shift) at its place in `terms` (a C-contiguous buffer of the input's
/// shape) when given.
fn forward_storing<F: Float>(
    batch: &Batch,
    options: &Options,
    logits: &[F],
    terms: Option<&mut [F]>,
) -> Result<(CpuState, Vec<f64>)> {
    let name = input_name(options);
    let mut scores: Vec<NodeScores> = (0..batch.batch_size)
        .map(|b| NodeScores::new(batch.frames(b), batch.labels(b).len() + 1))
        .collect();
    let lattices = run_in_pool(options.threads, || {
        let frames_per_run = frames_per_run(batch, rayon::current_num_threads());
        let mut blocks: Vec<Option<&mut [F]>> = match terms {
            Some(buffer) => item_blocks_mut(buffer, batch)
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..batch.batch_size).map(|_| None).collect(),
        };
        // Each run with its frames of the item's block of `terms`.
        let mut runs: Vec<(FrameRun<'_>, Option<&mut [F]>)> = scores
            .iter_mut()
            .zip(blocks.iter_mut())
            .enumerate()
            .flat_map(|(b, (item, block))| {
                let run_len = frames_per_run[b] * batch.row_stride(b) * batch.vocab;
                let mut chunks = block.take().map(|block| block.chunks_mut(run_len));
                item.frame_runs(b, frames_per_run[b])
                    .into_iter()
                    .map(move |run| (run, chunks.as_mut().and_then(Iterator::next)))
            })
            .collect();
        let outcomes: Vec<Result<()>> = runs
            .par_iter_mut()
            .map(|(run, terms)| {
                let block = item_block(logits, batch, run.item);
                let terms = terms.as_deref_mut();
                run.score(block, terms, batch, options.fused_log_softmax, name)
            })
            .collect();
        drop(runs);
        // The first bad element in batch order, whichever thread saw it first.
        outcomes.into_iter().collect::<Result<()>>()?;
        Ok::<_, Error>(scores.par_iter().map(alpha_beta).collect::<Vec<_>>())
    })??;
    Ok(CpuState::with_log_p(
        scores.into_iter().zip(lattices).collect(),
    ))
}

/// The gradient pass into `out`, with the softmax terms that [`forward_storing`] stored in it
/// when `stored`.
fn backward_into<F: Float>(
    batch: &Batch,
    options: &Options,
    logits: &[F],
    state: &CpuState,
    item_weights: &[f64],
    out: &mut [F],
    stored: bool,
) -> Result<()> {
    let settings = grad_settings(options, out);
    run_in_pool(options.threads, || {
        let frames_per_run = frames_per_run(batch, rayon::current_num_threads());
        let runs: Vec<(usize, usize, &mut [F])> = item_blocks_mut(out, batch)
            .into_iter()
            .enumerate()
            .flat_map(|(b, block)| {
                let frames = frames_per_run[b];
                let frame_len = batch.row_stride(b) * batch.vocab;
                block
                    .chunks_mut(frames * frame_len)
                    .enumerate()
                    .map(move |(i, run)| (b, i * frames, run))
            })
            .collect();
        runs.into_par_iter().for_each(|(b, first_frame, run)| {
            let (scores, lattice) = state.item(b);
            let item = ItemState {
                scores,
                lattice,
                weight: item_weights[b],
            };
            let terms = if stored {
                SoftmaxTerms::Stored
            } else {
                SoftmaxTerms::FromLogits(item_block(logits, batch, b))
            };
            grad_frames(terms, run, first_frame, batch, b, item, settings);
        })
    })
}

/// The gradient pass's settings for `options` and the gradient `out`.
fn grad_settings<F>(options: &Options, out: &[F]) -> GradSettings {
    GradSettings {
        fused_log_softmax: options.fused_log_softmax,
        emit_scale: 1.0 + options.fastemit_lambda,
        clip: options.clip_bound(),
        stream: std::mem::size_of_val(out) >= STREAM_MIN_BYTES,
    }
}

/// The three passes item by item (see [`ITEM_MAJOR_BYTES`]), the items in parallel, into the
/// gradient `out`, with the softmax terms stored in it between the passes.
fn by_item_in_place<F: Float>(
    batch: &Batch,
    options: &Options,
    logits: &[F],
    out: &mut [F],
) -> Result<(CpuState, Vec<f64>)> {
    let name = input_name(options);
    let weights = options.reduction.item_weights(1.0, batch.batch_size);
    let settings = grad_settings(options, out);
    let item = |b: usize, grad: &mut [F]| -> Result<(NodeScores, Lattice)> {
        let mut scores = NodeScores::new(batch.frames(b), batch.labels(b).len() + 1);
        let block = item_block(logits, batch, b);
        for mut run in scores.frame_runs(b, batch.frames(b)) {
            run.score(block, Some(&mut *grad), batch, true, name)?;
        }
        let lattice = alpha_beta(&scores);
        let state = ItemState {
            scores: &scores,
            lattice: &lattice,
            weight: weights[b],
        };
        grad_frames(SoftmaxTerms::Stored, grad, 0, batch, b, state, settings);
        Ok((scores, lattice))
    };
    // Largest items first, each taken by the next free thread: the last ones to finish are the
    // smallest, so the threads end within a small item of each other.
    let mut queue: Vec<(usize, &mut [F])> = item_blocks_mut(out, batch)
        .into_iter()
        .enumerate()
        .collect();
    queue.sort_by_key(|&(b, _)| std::cmp::Reverse(batch.frames(b) * (batch.labels(b).len() + 1)));
    let queue = Mutex::new(queue.into_iter());
    let finished = Mutex::new(Vec::with_capacity(batch.batch_size));
    run_in_pool(options.threads, || {
        rayon::broadcast(|_| loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some((b, grad)) = next else { break };
            let outcome = item(b, grad);
            finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((b, outcome));
        })
    })?;
    let mut outcomes = finished.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by_key(|&(b, _)| b);
    let outcomes = outcomes.into_iter().map(|(_, outcome)| outcome);
    // The first bad element in batch order, whichever thread saw it first.
    let items = outcomes.collect::<Result<Vec<_>>>()?;
    Ok(CpuState::with_log_p(items))
}

/// Frames per unit of work for each item, so that the whole batch splits into about eight runs
/// per thread of similar size (a B = 1 batch keeps every thread busy), but no run is smaller than
/// about 64 Ki elements (rayon's overhead per run stays negligible).
fn frames_per_run(batch: &Batch, threads: usize) -> Vec<usize> {
    let frame_elements = |b: usize| (batch.labels(b).len() + 1) * batch.vocab;
    let total: usize = (0..batch.batch_size)
        .map(|b| batch.frames(b) * frame_elements(b))
        .sum();
    let per_run = (total / (8 * threads.max(1))).max(1 << 16);
    (0..batch.batch_size)
        .map(|b| per_run.div_ceil(frame_elements(b)).max(1))
        .collect()
}
