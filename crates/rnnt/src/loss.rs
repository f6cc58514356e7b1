//! The public entry points: forward, backward and the one-shot `loss_and_grad`.

use std::sync::Mutex;

use ndarray::{Array4, ArrayViewMut4};
use rayon::prelude::*;

use crate::batch::{Batch, LossInput};
use crate::cpu::front::{FrameRun, NodeScores};
use crate::cpu::grad::{grad_frames, GradSettings, ItemState, SoftmaxTerms};
use crate::cpu::huge_pages::advise_huge_pages;
use crate::cpu::kernels::Kernels;
use crate::cpu::lattice::{alpha_beta, Lattice};
use crate::cpu::threads::{pool_size, run_in_pool};
use crate::element::Index;
use crate::error::{Error, Result};
use crate::options::Options;

/// The result of [`forward`]: per-item losses and the O(B·T·U) state that [`backward`] needs.
///
/// Holds per node three scores and α, β (all f64), never a B·T·(U+1)·V buffer.
#[derive(Debug, Clone)]
pub struct Forward {
    batch: Batch,
    options: Options,
    items: Vec<(NodeScores, Lattice)>,
    losses: Vec<f64>,
}

impl Forward {
    /// Per-item losses −log P(y_b|x_b): +inf for an impossible item (0 with `zero_infinity`).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// The reported loss after the options' reduction (the sum for `Reduction::None`).
    pub fn loss(&self) -> f64 {
        self.options.reduction.reduce(&self.losses)
    }

    /// The validated batch description.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Node scores and α/β of item `b`.
    pub fn item(&self, b: usize) -> (&NodeScores, &Lattice) {
        let (scores, lattice) = &self.items[b];
        (scores, lattice)
    }
}

/// The name of the 4-D input in messages, by input mode (`"logits"` or `"log_probs"`).
pub fn input_name(options: &Options) -> &'static str {
    if options.fused_log_softmax {
        "logits"
    } else {
        "log_probs"
    }
}

/// Validates the input, streams the logits once and runs the lattice: per-item losses and the
/// state for [`backward`].
///
/// # Errors
/// [`Error::Shape`], [`Error::Value`] or [`Error::Layout`] naming the argument and value at fault
/// (DESIGN.md §5), including a NaN or +inf logit within the lengths.
pub fn forward<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
) -> Result<Forward> {
    forward_storing(input, options, None)
}

/// [`forward`], also storing each valid row's softmax terms exp(x − shift) at its place in
/// `terms` (a C-contiguous buffer of the input's shape) when given.
fn forward_storing<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
    terms: Option<&mut [F]>,
) -> Result<Forward> {
    let (batch, logits) = validated(input, options)?;
    let name = input_name(options);
    let item_len = batch.item_len();
    let mut scores: Vec<NodeScores> = (0..batch.batch_size)
        .map(|b| NodeScores::new(batch.frames(b), batch.labels(b).len() + 1))
        .collect();
    let lattices = run_in_pool(options.threads, || {
        let frames_per_run = frames_per_run(&batch, rayon::current_num_threads());
        let frame_len = batch.label_positions * batch.vocab;
        let mut blocks: Vec<Option<&mut [F]>> = match terms {
            Some(buffer) if item_len > 0 => buffer.chunks_mut(item_len).map(Some).collect(),
            _ => (0..batch.batch_size).map(|_| None).collect(),
        };
        // Each run with its frames of the item's block of `terms`.
        let mut runs: Vec<(FrameRun<'_>, Option<&mut [F]>)> = scores
            .iter_mut()
            .zip(blocks.iter_mut())
            .enumerate()
            .flat_map(|(b, (item, block))| {
                let run_len = frames_per_run[b] * frame_len;
                let mut chunks = block.take().map(|block| block.chunks_mut(run_len));
                item.frame_runs(b, frames_per_run[b])
                    .into_iter()
                    .map(move |run| (run, chunks.as_mut().and_then(Iterator::next)))
            })
            .collect();
        let outcomes: Vec<Result<()>> = runs
            .par_iter_mut()
            .map(|(run, terms)| {
                let block = &logits[run.item * item_len..(run.item + 1) * item_len];
                let terms = terms.as_deref_mut();
                run.score(block, terms, &batch, options.fused_log_softmax, name)
            })
            .collect();
        drop(runs);
        // The first bad element in batch order, whichever thread saw it first.
        outcomes.into_iter().collect::<Result<()>>()?;
        Ok::<_, Error>(scores.par_iter().map(alpha_beta).collect::<Vec<_>>())
    })??;
    let items: Vec<(NodeScores, Lattice)> = scores.into_iter().zip(lattices).collect();
    Ok(Forward::new(batch, options, items))
}

/// The options and the input checked: the batch description and the input's elements.
///
/// # Errors
/// As [`forward`].
fn validated<'a, F: Kernels, I: Index>(
    input: &'a LossInput<'_, F, I>,
    options: &Options,
) -> Result<(Batch, &'a [F])> {
    options.validate()?;
    let batch = Batch::new(input, options.blank, input_name(options))?;
    let logits = input
        .logits
        .as_slice()
        .expect("Batch::new checked the layout");
    Ok((batch, logits))
}

impl Forward {
    /// The state of `items`' scores and lattices, with their losses under `options`.
    fn new(batch: Batch, options: &Options, items: Vec<(NodeScores, Lattice)>) -> Forward {
        let losses = items
            .iter()
            .map(|(_, lattice)| match -lattice.log_p {
                loss if loss == f64::INFINITY && options.zero_infinity => 0.0,
                loss => loss,
            })
            .collect();
        Forward {
            batch,
            options: *options,
            items,
            losses,
        }
    }
}

/// Writes d objective / d input into `grad`, given d objective / d loss_b = `item_weights[b]`.
///
/// `input` must be the input `forward` was computed from. Padding and impossible items get 0.
///
/// # Errors
/// [`Error::Shape`] if `grad` or `item_weights` do not match the batch, [`Error::Layout`] if
/// `grad` is not C-contiguous.
pub fn backward<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    forward: &Forward,
    item_weights: &[f64],
    mut grad: ArrayViewMut4<'_, F>,
) -> Result<()> {
    let batch = &forward.batch;
    let options = &forward.options;
    let dims = (
        batch.batch_size,
        batch.max_frames,
        batch.label_positions,
        batch.vocab,
    );
    if input.logits.dim() != dims {
        return Err(Error::Shape(format!(
            "{} has shape {:?} but forward saw {dims:?}",
            input_name(options),
            input.logits.dim()
        )));
    }
    let out = grad_slice(&mut grad, dims)?;
    backward_into(input, forward, item_weights, out, false)
}

/// `grad` as a slice, once checked against the input's shape `dims` and for C order (and
/// advised to take huge pages).
fn grad_slice<'a, F>(
    grad: &'a mut ArrayViewMut4<'_, F>,
    dims: (usize, usize, usize, usize),
) -> Result<&'a mut [F]> {
    if grad.dim() != dims {
        return Err(Error::Shape(format!(
            "grad has shape {:?} but the input has {dims:?}",
            grad.dim()
        )));
    }
    let out = grad
        .as_slice_mut()
        .ok_or_else(|| Error::Layout("grad must be C-contiguous".to_string()))?;
    advise_huge_pages(out);
    Ok(out)
}

/// [`backward`] into the checked gradient `out`, with the softmax terms that
/// [`forward_storing`] stored in it when `stored`.
fn backward_into<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    forward: &Forward,
    item_weights: &[f64],
    out: &mut [F],
    stored: bool,
) -> Result<()> {
    let batch = &forward.batch;
    let options = &forward.options;
    if item_weights.len() != batch.batch_size {
        return Err(Error::Shape(format!(
            "item_weights has {} entries but the batch has B = {} items",
            item_weights.len(),
            batch.batch_size
        )));
    }
    let logits = input
        .logits
        .as_slice()
        .ok_or_else(|| Error::Layout(format!("{} must be C-contiguous", input_name(options))))?;
    let settings = grad_settings(options, out);
    let item_len = batch.item_len();
    let frame_len = batch.label_positions * batch.vocab;
    run_in_pool(options.threads, || {
        let frames_per_run = frames_per_run(batch, rayon::current_num_threads());
        let runs: Vec<(usize, usize, &mut [F])> = out
            .chunks_mut(item_len)
            .enumerate()
            .flat_map(|(b, block)| {
                let frames = frames_per_run[b];
                block
                    .chunks_mut(frames * frame_len)
                    .enumerate()
                    .map(move |(i, run)| (b, i * frames, run))
            })
            .collect();
        runs.into_par_iter().for_each(|(b, first_frame, run)| {
            let (scores, lattice) = forward.item(b);
            let item = ItemState {
                scores,
                lattice,
                weight: item_weights[b],
            };
            let terms = if stored {
                SoftmaxTerms::Stored
            } else {
                SoftmaxTerms::FromLogits(&logits[b * item_len..(b + 1) * item_len])
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

/// Gradients at least this large (in bytes) are written with non-temporal stores: they would not
/// stay in cache anyway, and streaming them saves reading each line before writing it. (Short
/// rows are staged and streamed several at a time, see `cpu::grad`.) Below it,
/// [`loss_and_grad_into`] keeps the softmax terms in the gradient between its passes, which
/// makes it faster than [`forward`] then [`backward`].
pub const STREAM_MIN_BYTES: usize = 64 << 20;

/// Items whose logits block is at most this large (in bytes) are done one at a time by
/// [`loss_and_grad_into`], when the batch has at least two per thread: the front pass, the
/// lattice and the gradient pass of an item one after the other on one thread, so that the
/// softmax terms the front pass stores are read back from L2, not from memory or L3. (S1's
/// items are 0.7 MB; a core's L2 on the benchmark machine is 2 MiB.)
const ITEM_MAJOR_BYTES: usize = 1 << 20;

/// [`loss_and_grad_into`] item by item (see [`ITEM_MAJOR_BYTES`]), the items in parallel, into
/// the checked gradient `out`, with the softmax terms stored in it between the passes.
fn loss_and_grad_by_item<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
    out: &mut [F],
) -> Result<Forward> {
    let (batch, logits) = validated(input, options)?;
    let name = input_name(options);
    let item_len = batch.item_len();
    let weights = options.reduction.item_weights(1.0, batch.batch_size);
    let settings = grad_settings(options, out);
    let item = |b: usize, grad: &mut [F]| -> Result<(NodeScores, Lattice)> {
        let mut scores = NodeScores::new(batch.frames(b), batch.labels(b).len() + 1);
        let block = &logits[b * item_len..(b + 1) * item_len];
        for mut run in scores.frame_runs(b, batch.frames(b)) {
            run.score(block, Some(&mut *grad), &batch, true, name)?;
        }
        let lattice = alpha_beta(&scores);
        let state = ItemState {
            scores: &scores,
            lattice: &lattice,
            weight: weights[b],
        };
        grad_frames(SoftmaxTerms::Stored, grad, 0, &batch, b, state, settings);
        Ok((scores, lattice))
    };
    // Largest items first, each taken by the next free thread: the last ones to finish are the
    // smallest, so the threads end within a small item of each other.
    let mut queue: Vec<(usize, &mut [F])> = out.chunks_mut(item_len).enumerate().collect();
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
    Ok(Forward::new(batch, options, items))
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

/// Losses and gradient of one call.
#[derive(Debug, Clone)]
pub struct LossAndGrad<F> {
    /// Per-item losses (see [`Forward::losses`]).
    pub losses: Vec<f64>,
    /// The reported loss after the reduction (the sum for `Reduction::None`).
    pub loss: f64,
    /// d loss / d input, the input's shape and dtype; 0 in padding.
    pub grad: Array4<F>,
}

/// Forward and backward in one call: the gradient of the reported (reduced) loss.
///
/// # Errors
/// As [`forward`].
pub fn loss_and_grad<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
) -> Result<LossAndGrad<F>> {
    let mut grad = Array4::from_elem(input.logits.dim(), F::zero());
    let forward = loss_and_grad_into(input, options, grad.view_mut())?;
    Ok(LossAndGrad {
        losses: forward.losses.clone(),
        loss: forward.loss(),
        grad,
    })
}

/// [`loss_and_grad`] into a caller's `grad` (the input's shape, C-contiguous; every element is
/// written): the forward state, whose losses are the call's, and the gradient of the reported
/// (reduced) loss in `grad`.
///
/// Where the gradient stays in cache (unstreamed, below 64 MiB) and the input is logits, the
/// front pass stores each row's softmax terms exp(x − shift) in `grad` as it sums them, and the
/// gradient pass turns them into the gradient in place: a store and a load per element instead
/// of a second exp, which is most of the gradient pass's work when the data is in cache.
/// Elsewhere it is [`forward`] then [`backward`].
///
/// # Errors
/// As [`forward`], and [`Error::Shape`] or [`Error::Layout`] for `grad` (checked first); `grad`
/// is unspecified after an error.
pub fn loss_and_grad_into<F: Kernels, I: Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
    mut grad: ArrayViewMut4<'_, F>,
) -> Result<Forward> {
    let out = grad_slice(&mut grad, input.logits.dim())?;
    let stored = options.fused_log_softmax
        && F::STORES_SOFTMAX_TERMS
        && std::mem::size_of_val(out) < STREAM_MIN_BYTES;
    let batch_size = input.logits.dim().0;
    let item_bytes = std::mem::size_of_val(out) / batch_size.max(1);
    let by_item =
        stored && batch_size >= 2 * pool_size(options.threads)? && item_bytes <= ITEM_MAJOR_BYTES;
    if by_item {
        return loss_and_grad_by_item(input, options, out);
    }
    let forward = forward_storing(input, options, stored.then_some(&mut *out))?;
    let weights = options
        .reduction
        .item_weights(1.0, forward.batch.batch_size);
    backward_into(input, &forward, &weights, out, stored)?;
    Ok(forward)
}
