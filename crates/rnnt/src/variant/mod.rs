//! Transducer variants: TDT, multi-blank, k2's one-symbol-per-frame lattices, the delay penalty
//! and σ, as other lattice topologies behind the same three passes.
//!
//! A [`Variant`] (a [`Topology`] and its arc constants) sits beside [`Options`]; TDT's second
//! head is [`VariantInput::duration_logits`]. The passes read the topology as data
//! (`arcs`): the front pass gathers, per node, the log-probability of every column its arcs read
//! (the token head's rows through the SIMD row kernel, the duration head's rows), the lattice
//! walks the arcs in f64 log space, and the gradient pass writes each head's rows as
//! w·clip(c(n)·softmax − Σ occupancy of the arcs reading each column). [`reference`] is the plain
//! f64 oracle of the same definitions; [`align`] the best path.
//!
//! Heads are read and written in place with a row pitch (the last axis contiguous): NeMo's joint
//! gives both TDT heads as views of one (B, T, U+1, V+D) tensor.

mod align;
mod arcs;
mod front;
mod grad;
mod lattice;
pub mod reference;
mod rows;
mod template;
mod topology;

use ndarray::{Array, ArrayView, ArrayView1, ArrayViewMut, Ix4};
use rayon::prelude::*;

use crate::batch::{Batch, ScoresDim, ScoresShape, Targets};
use crate::cpu::backend::STREAM_MIN_BYTES;
use crate::cpu::threads::run_in_pool;
use crate::element::{Float, Index};
use crate::error::{Error, Result};
use crate::loss::input_name;
use crate::options::Options;

pub use align::align;
pub use topology::{Topology, Variant};

use front::{Heads, ItemScores};
use grad::{write_frames, GradHeads, GradSettings, ItemGrad};
use rows::{Rows, RowsMut};

/// The arrays of a variant's loss call: [`LossInput`](crate::LossInput) with TDT's duration
/// head. Heads may be strided views (last axis contiguous, rows of one pitch).
#[derive(Debug, Clone, Copy)]
pub struct VariantInput<'a, F, I, D: ScoresDim = Ix4> {
    /// The token head: logits (or log-probs when `fused_log_softmax` is off), (B, T, U+1, V)
    /// padded or (ΣT_b·(U_b+1), V) packed.
    pub logits: ArrayView<'a, F, D>,
    /// TDT's duration head, (B, T, U+1, D) or (ΣT_b·(U_b+1), D); `None` for other variants.
    pub duration_logits: Option<ArrayView<'a, F, D>>,
    /// Labels, padded (B, U) or packed (ΣU_b).
    pub targets: Targets<'a, I>,
    /// (B,) frames per item.
    pub logit_lengths: ArrayView1<'a, I>,
    /// (B,) labels per item.
    pub target_lengths: ArrayView1<'a, I>,
}

/// The gradient buffers of a variant's call, of the heads' shapes (strided like them allowed).
#[derive(Debug)]
pub struct VariantGrad<'a, F, D: ScoresDim = Ix4> {
    /// d objective / d token head.
    pub logits: ArrayViewMut<'a, F, D>,
    /// d objective / d duration head (TDT).
    pub duration_logits: Option<ArrayViewMut<'a, F, D>>,
}

/// A variant's forward result: per-item losses and the O(B·T·U) state its backward needs.
#[derive(Debug, Clone)]
pub struct VariantForward {
    batch: Batch,
    options: Options,
    variant: Variant,
    dtype: &'static str,
    items: Vec<ItemGrad>,
    losses: Vec<f64>,
}

impl VariantForward {
    /// Per-item losses −ln P (the arcs' constants included): +inf for an impossible item (0 with
    /// `zero_infinity`).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// The reported loss after the reduction (the sum for `Reduction::None`).
    pub fn loss(&self) -> f64 {
        self.options.reduction.reduce(&self.losses)
    }

    /// The validated batch.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// The options of the call.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The variant of the call.
    pub fn variant(&self) -> &Variant {
        &self.variant
    }
}

/// Losses and gradients of one variant call.
#[derive(Debug, Clone)]
pub struct VariantLossAndGrad<F, D: ScoresDim = Ix4> {
    /// Per-item losses.
    pub losses: Vec<f64>,
    /// The reported loss.
    pub loss: f64,
    /// d loss / d token head, its shape (C-contiguous).
    pub grad: Array<F, D>,
    /// d loss / d duration head (TDT).
    pub duration_grad: Option<Array<F, D>>,
}

/// The token head's name: `token_logits` for TDT, else as the standard loss names it.
fn token_name(options: &Options, variant: &Variant) -> &'static str {
    match (&variant.topology, options.fused_log_softmax) {
        (Topology::Tdt { .. }, true) => "token_logits",
        (Topology::Tdt { .. }, false) => "token_log_probs",
        _ => input_name(options),
    }
}

/// Everything checked: the batch and the heads' rows.
fn validated<'a, F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'a, F, I, D>,
    options: &Options,
    variant: &Variant,
) -> Result<(Batch, Heads<'a, F>)> {
    options.validate()?;
    variant.validate()?;
    let name = token_name(options, variant);
    let tokens = Rows::new(&input.logits, name)?;
    let durations = input
        .duration_logits
        .as_ref()
        .map(|d| Rows::new(d, "duration_logits"))
        .transpose()?;
    let batch = Batch::for_shape(
        tokens.shape(),
        &input.targets,
        (input.logit_lengths, input.target_lengths),
        options.blank,
        name,
    )?;
    variant.check_batch(&batch, durations.map(|d| d.shape()), name)?;
    let heads = Heads {
        tokens,
        durations,
        token_name: name,
        fused: options.fused_log_softmax,
    };
    Ok((batch, heads))
}

/// Validates the input and runs the front pass and the lattice of every item: the losses and
/// the state for [`backward`].
///
/// # Errors
/// [`Error::Shape`], [`Error::Value`] or [`Error::Layout`] naming the argument and value at
/// fault, including a NaN or +inf score within the lengths and every check of
/// [`Variant::validate`] and [`Variant::check_batch`].
pub fn forward<F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'_, F, I, D>,
    options: &Options,
    variant: &Variant,
) -> Result<VariantForward> {
    let (batch, heads) = validated(input, options, variant)?;
    let items = items_through(&batch, (&heads, options, variant), None)?;
    Ok(VariantForward::of(batch, options, variant, F::DTYPE, items))
}

impl VariantForward {
    /// The forward result of `items`, the states of `batch`'s items.
    fn of(
        batch: Batch,
        options: &Options,
        variant: &Variant,
        dtype: &'static str,
        items: Vec<ItemGrad>,
    ) -> VariantForward {
        let losses = items
            .iter()
            .map(|item| match -item.log_p {
                loss if loss == f64::INFINITY && options.zero_infinity => 0.0,
                loss => loss,
            })
            .collect();
        VariantForward {
            batch,
            options: *options,
            variant: variant.clone(),
            dtype,
            items,
            losses,
        }
    }
}

/// A gradient pass to run as each item's state is ready: the buffers, the items' weights and
/// the settings.
type GradPass<'g, 'a, F> = (&'g GradHeads<'a, F>, &'g [f64], GradSettings);

/// Each item's front pass (its runs of frames in parallel), lattice and, with `grad`, gradient
/// pass (its runs in parallel), the items in parallel: as the work is stolen, one item's
/// lattice (compute) runs beside another's front or gradient pass (memory).
///
/// # Errors
/// The first bad element in batch order (items after it may have been written).
fn items_through<F: Float>(
    batch: &Batch,
    (heads, options, variant): (&Heads<'_, F>, &Options, &Variant),
    grad: Option<GradPass<'_, '_, F>>,
) -> Result<Vec<ItemGrad>> {
    let outcomes = run_in_pool(options.threads, || {
        let frames_per_run = frames_per_run(batch, variant, rayon::current_num_threads());
        (0..batch.batch_size)
            .into_par_iter()
            .map(|b| {
                let mut scores = ItemScores::new(variant, batch, b);
                let mut runs = scores.frame_runs(b, frames_per_run[b]);
                let outcomes: Vec<Result<()>> = runs
                    .par_iter_mut()
                    .map(|run| run.score(batch, heads))
                    .collect();
                drop(runs);
                outcomes.into_iter().collect::<Result<()>>()?;
                let item = ItemGrad::new(variant, options, scores);
                if let Some((grads, weights, settings)) = grad {
                    let state = (&item, weights[b]);
                    item_grad_runs(batch, b, frames_per_run[b]).for_each(|frames| {
                        // SAFETY: one task per run of frames of item b, whose rows only this
                        // item's runs write (`Batch::item_rows`).
                        unsafe { write_frames((batch, b, frames), heads, state, settings, grads) }
                    });
                }
                Ok(item)
            })
            .collect::<Vec<Result<ItemGrad>>>()
    })?;
    // The first bad element in batch order, whichever thread saw it first.
    outcomes.into_iter().collect()
}

/// Item `b`'s block of frames (T padded, T_b packed) in runs of `per_run`, in parallel.
fn item_grad_runs(
    batch: &Batch,
    b: usize,
    per_run: usize,
) -> impl ParallelIterator<Item = std::ops::Range<usize>> {
    let frames = batch.item_rows(b).len() / batch.row_stride(b);
    let per_run = per_run.max(1);
    (0..frames.div_ceil(per_run))
        .into_par_iter()
        .map(move |i| i * per_run..((i + 1) * per_run).min(frames))
}

/// The gradient buffers checked against the batch: shapes, the duration head's presence.
fn grad_heads<'a, F, D: ScoresDim>(
    grad: VariantGrad<'a, F, D>,
    batch: &Batch,
    variant: &Variant,
) -> Result<GradHeads<'a, F>> {
    let tokens = RowsMut::new(grad.logits, "grad")?;
    if tokens.shape() != batch.shape() {
        return Err(Error::Shape(format!(
            "grad has shape {} but the input has {}",
            tokens.shape(),
            batch.shape()
        )));
    }
    let durations = grad
        .duration_logits
        .map(|d| RowsMut::new(d, "duration_grad"))
        .transpose()?;
    let columns = variant.topology.duration_columns();
    match (&durations, columns) {
        (None, 0) => {}
        (Some(d), columns) if columns > 0 => {
            let expected = match batch.shape() {
                ScoresShape::Padded((b, t, u, _)) => ScoresShape::Padded((b, t, u, columns)),
                ScoresShape::Packed { rows, .. } => ScoresShape::Packed {
                    rows,
                    vocab: columns,
                },
            };
            if d.shape() != expected {
                return Err(Error::Shape(format!(
                    "duration_grad has shape {} but duration_logits has {expected}",
                    d.shape()
                )));
            }
        }
        (None, _) => {
            return Err(Error::Value(
                "TDT needs duration_grad for the duration head's gradient".into(),
            ))
        }
        (Some(_), _) => {
            return Err(Error::Value(format!(
                "duration_grad is given but the lattice is {}, which has no duration head",
                variant.topology.name()
            )))
        }
    }
    Ok(GradHeads { tokens, durations })
}

/// Frames per unit of work of the front and gradient passes for each item, so that the whole
/// batch splits into about eight runs per thread of similar size (one long item keeps every
/// thread busy), none smaller than about 64 Ki elements (as the standard backend splits it).
fn frames_per_run(batch: &Batch, variant: &Variant, threads: usize) -> Vec<usize> {
    let row = batch.vocab + variant.topology.duration_columns();
    let frame_elements = |b: usize| batch.row_stride(b) * row;
    let total: usize = (0..batch.batch_size)
        .map(|b| batch.item_rows(b).len() * row)
        .sum();
    let per_run = (total / (8 * threads.max(1))).max(1 << 16);
    (0..batch.batch_size)
        .map(|b| per_run.div_ceil(frame_elements(b)).max(1))
        .collect()
}

/// The gradient pass's settings for `options` and a batch of `F`: streamed stores where the
/// token head's gradient would not stay in cache (as the standard backend decides).
fn grad_settings<F>(options: &Options, batch: &Batch) -> GradSettings {
    GradSettings {
        fused: options.fused_log_softmax,
        clip: options.clip_bound().unwrap_or(f64::INFINITY),
        stream: batch.len() * std::mem::size_of::<F>() >= STREAM_MIN_BYTES,
    }
}

/// The gradient pass over every item's block, in runs of frames, in parallel, on
/// `options.threads` threads.
fn write_grads<F: Float>(
    (batch, variant): (&Batch, &Variant),
    heads: &Heads<'_, F>,
    items: &[ItemGrad],
    (options, weights): (&Options, &[f64]),
    (grads, settings): (&GradHeads<'_, F>, GradSettings),
) -> Result<()> {
    run_in_pool(options.threads, || {
        let frames_per_run = frames_per_run(batch, variant, rayon::current_num_threads());
        (0..batch.batch_size)
            .into_par_iter()
            .flat_map(|b| item_grad_runs(batch, b, frames_per_run[b]).map(move |run| (b, run)))
            .for_each(|(b, frames)| {
                // SAFETY: one task per run of frames, and the runs of the items' blocks are
                // disjoint (`Batch::item_rows`).
                unsafe {
                    write_frames(
                        (batch, b, frames),
                        heads,
                        (&items[b], weights[b]),
                        settings,
                        grads,
                    )
                }
            });
    })
}

/// Writes d objective / d heads into `grad`, given d objective / d loss_b = `item_weights[b]`;
/// `input` must hold the arrays `forward` read.
///
/// # Errors
/// [`Error::DType`] for another element type than forward's, [`Error::Shape`] for arrays that
/// do not match the batch, [`Error::Layout`] for a buffer whose rows are not of one pitch.
pub fn backward<F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'_, F, I, D>,
    forward: &VariantForward,
    item_weights: &[f64],
    grad: VariantGrad<'_, F, D>,
) -> Result<()> {
    let name = token_name(&forward.options, &forward.variant);
    if F::DTYPE != forward.dtype {
        return Err(Error::DType(format!(
            "{name} is {} but forward was computed from {}",
            F::DTYPE,
            forward.dtype
        )));
    }
    let tokens = Rows::new(&input.logits, name)?;
    if tokens.shape() != forward.batch.shape() {
        return Err(Error::Shape(format!(
            "{name} has shape {} but forward saw {}",
            tokens.shape(),
            forward.batch.shape()
        )));
    }
    let durations = input
        .duration_logits
        .as_ref()
        .map(|d| Rows::new(d, "duration_logits"))
        .transpose()?;
    forward
        .variant
        .check_batch(&forward.batch, durations.map(|d| d.shape()), name)?;
    if item_weights.len() != forward.batch.batch_size {
        return Err(Error::Shape(format!(
            "item_weights has {} entries but the batch has B = {} items",
            item_weights.len(),
            forward.batch.batch_size
        )));
    }
    let heads = Heads {
        tokens,
        durations,
        token_name: name,
        fused: forward.options.fused_log_softmax,
    };
    let grads = grad_heads(grad, &forward.batch, &forward.variant)?;
    write_grads(
        (&forward.batch, &forward.variant),
        &heads,
        &forward.items,
        (&forward.options, item_weights),
        (&grads, grad_settings::<F>(&forward.options, &forward.batch)),
    )
}

/// Forward and backward in one call: the forward result and the gradient of the reported loss
/// in `grad`.
///
/// # Errors
/// As [`forward`] and [`backward`].
pub fn loss_and_grad_into<F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'_, F, I, D>,
    options: &Options,
    variant: &Variant,
    grad: VariantGrad<'_, F, D>,
) -> Result<VariantForward> {
    let (batch, heads) = validated(input, options, variant)?;
    let grads = grad_heads(grad, &batch, variant)?;
    let weights = options.reduction.item_weights(1.0, batch.batch_size);
    let pass = (&grads, &weights[..], grad_settings::<F>(options, &batch));
    let items = items_through(&batch, (&heads, options, variant), Some(pass))?;
    Ok(VariantForward::of(batch, options, variant, F::DTYPE, items))
}

/// [`loss_and_grad_into`] into fresh C-contiguous gradients of the heads' shapes.
///
/// # Errors
/// As [`forward`].
pub fn loss_and_grad<F: Float, I: Index, D: ScoresDim>(
    input: &VariantInput<'_, F, I, D>,
    options: &Options,
    variant: &Variant,
) -> Result<VariantLossAndGrad<F, D>> {
    let mut grad = Array::from_elem(input.logits.raw_dim(), F::zero());
    let mut duration_grad = input
        .duration_logits
        .map(|d| Array::from_elem(d.raw_dim(), F::zero()));
    let forward = loss_and_grad_into(
        input,
        options,
        variant,
        VariantGrad {
            logits: grad.view_mut(),
            duration_logits: duration_grad.as_mut().map(|d| d.view_mut()),
        },
    )?;
    Ok(VariantLossAndGrad {
        losses: forward.losses.clone(),
        loss: forward.loss(),
        grad,
        duration_grad,
    })
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array1, Array2, Array4};

    use super::{forward, grad_heads, validated, write_grads, GradSettings, VariantGrad};
    use super::{Topology, Variant, VariantInput};
    use crate::{Options, Targets};

    /// Streamed (staged for short rows and rows with big blanks, direct for long ones) and plain
    /// stores write the same bits, padding (a frame and a label position beyond the lengths)
    /// and strided heads included.
    #[test]
    fn streaming_writes_what_plain_stores_write() {
        let tdt = Topology::Tdt {
            durations: vec![0, 1, 2],
        };
        let multiblank = Topology::MultiBlank {
            big_blank_durations: vec![2, 3],
        };
        let (frames, positions) = (4, 3);
        for (topology, vocab) in [(tdt.clone(), 9), (tdt, 4099), (multiblank.clone(), 9)]
            .into_iter()
            .chain([(multiblank, 4099)])
        {
            let variant = Variant {
                topology,
                ..Variant::default()
            };
            let columns = variant.topology.duration_columns();
            let mut seed = vocab as u64;
            let mut next = || {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 40) as f32 / (1u64 << 22) as f32 - 2.0
            };
            // Token and duration heads as strided views of one joint tensor, and contiguous.
            let joint = Array4::from_shape_fn((2, frames, positions, vocab + columns), |_| next());
            let tokens = joint.slice(s![.., .., .., ..vocab]).to_owned();
            let targets = Array2::from_shape_fn((2, positions - 1), |(b, u)| (1 + b + u) as i32);
            let logit_lengths = Array1::from_vec(vec![frames as i32, frames as i32 - 1]);
            let target_lengths = Array1::from_vec(vec![positions as i32 - 1, 1]);
            let strided = (columns > 0).then(|| joint.slice(s![.., .., .., vocab..]));
            for logits in [joint.slice(s![.., .., .., ..vocab]), tokens.view()] {
                let input = VariantInput {
                    logits,
                    duration_logits: strided,
                    targets: Targets::Padded(targets.view()),
                    logit_lengths: logit_lengths.view(),
                    target_lengths: target_lengths.view(),
                };
                let options = Options::default();
                let state = forward(&input, &options, &variant).unwrap();
                let (batch, heads) = validated(&input, &options, &variant).unwrap();
                let write = |stream: bool| {
                    let mut grad = Array4::from_elem(tokens.dim(), f32::NAN);
                    let mut duration_grad = strided.map(|d| Array4::from_elem(d.dim(), f32::NAN));
                    let grads = VariantGrad {
                        logits: grad.view_mut(),
                        duration_logits: duration_grad.as_mut().map(|d| d.view_mut()),
                    };
                    let grads = grad_heads(grads, &batch, &variant).unwrap();
                    let settings = GradSettings {
                        fused: true,
                        clip: f64::INFINITY,
                        stream,
                    };
                    let weights = [0.5, 2.0];
                    let items = (&batch, &variant);
                    let call = (&options, &weights[..]);
                    write_grads(items, &heads, &state.items, call, (&grads, settings)).unwrap();
                    let bits = |a: &Array4<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    (bits(&grad), duration_grad.as_ref().map(bits))
                };
                let plain = write(false);
                assert!(plain.0.iter().all(|&x| !f32::from_bits(x).is_nan()));
                assert_eq!(write(true), plain, "{:?}, V = {vocab}", variant.topology);
            }
        }
    }
}
