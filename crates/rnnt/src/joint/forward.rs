//! The forward pass of the fused loss: tile by tile, each node's row statistics (blank and label
//! log-probabilities, the row's shift and 1 / Σ exp(x − shift)), the tile dropped; then α/β per
//! item.

use ndarray::{ArrayView, Dimension};
use rayon::prelude::*;

use crate::batch::Batch;
use crate::cpu::front::NodeScores;
use crate::cpu::simd::{self, FrameScores, Isa, ScoreColumns};
use crate::cpu::threads::run_in_pool;
use crate::element::Float;
use crate::error::{Error, Result};
use crate::joint::input::{JointDims, JointFloat, JointInput};
use crate::joint::lattice::ItemLattice;
use crate::joint::tile::{TileBuffers, TILE_ROWS};
use crate::options::Options;

/// The result of a fused forward call: per-item losses and the O(B·T·U) state the backward
/// call needs (per node four f64 and α/β), never a tile of logits.
#[derive(Debug)]
pub struct JointForward {
    pub(crate) batch: Batch,
    pub(crate) dims: JointDims,
    pub(crate) options: Options,
    pub(crate) dtype: &'static str,
    pub(crate) items: Vec<ItemLattice>,
    losses: Vec<f64>,
}

impl JointForward {
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
}

/// The frames of a tile of an item with `positions` = U_b + 1 rows a frame: as many as fit in
/// [`TILE_ROWS`] rows, at least one.
pub fn frames_per_tile(positions: usize) -> usize {
    (TILE_ROWS / positions.max(1)).max(1)
}

/// The rows of the largest tile of `batch`.
pub fn largest_tile(batch: &Batch) -> usize {
    (0..batch.batch_size)
        .map(|b| {
            let positions = batch.labels(b).len() + 1;
            frames_per_tile(positions).min(batch.frames(b)) * positions
        })
        .max()
        .unwrap_or(0)
}

/// Validates `input`, makes every node's logits a tile at a time and keeps their row statistics,
/// and runs α/β per item: the per-item losses and the state for
/// [`backward`](crate::joint::backward).
///
/// # Errors
/// [`Error::Shape`] or [`Error::Value`] naming the argument and value at fault: shapes that do
/// not agree, lengths out of range, labels outside the vocabulary, a NaN or ±inf in an input
/// within the lengths, logits that overflow to +inf.
pub fn forward<F: JointFloat, I: crate::Index>(
    input: &JointInput<'_, F, I>,
    options: &Options,
) -> Result<JointForward> {
    let (dims, batch) = input.batch(options)?;
    check_finite(input, &batch)?;
    let mut scores: Vec<NodeScores> = (0..batch.batch_size)
        .map(|b| NodeScores::new(batch.frames(b), batch.labels(b).len() + 1))
        .collect();
    let rows = largest_tile(&batch);
    let items = run_in_pool(options.threads, || {
        let mut tiles: Vec<TileScores<'_>> = scores
            .iter_mut()
            .enumerate()
            .flat_map(|(b, item)| TileScores::split(b, item))
            .collect();
        tiles
            .par_iter_mut()
            .map_init(
                || TileBuffers::<F>::new(rows, dims.hidden, dims.vocab, false),
                |buffers, tile| tile.score(input, &batch, buffers),
            )
            .collect::<Result<()>>()?;
        drop(tiles);
        Ok::<Vec<ItemLattice>, Error>(scores.into_par_iter().map(ItemLattice::new).collect())
    })??;
    let losses = items
        .iter()
        .map(|item: &ItemLattice| match -item.log_p() {
            loss if loss == f64::INFINITY && options.zero_infinity => 0.0,
            loss => loss,
        })
        .collect();
    Ok(JointForward {
        batch,
        dims,
        options: *options,
        dtype: F::DTYPE,
        items,
        losses,
    })
}

/// A tile of one item's node scores: frames `first_frame..` of item `b`, all of their positions.
struct TileScores<'a> {
    b: usize,
    first_frame: usize,
    positions: usize,
    blank: &'a mut [f64],
    emit: &'a mut [f64],
    shift: &'a mut [f64],
    inv_sum: &'a mut [f64],
}

impl<'a> TileScores<'a> {
    /// Item `b`'s scores split into tiles of [`frames_per_tile`] frames, in frame order.
    fn split(b: usize, scores: &'a mut NodeScores) -> Vec<TileScores<'a>> {
        let positions = scores.positions;
        let frames = frames_per_tile(positions);
        let chunk = frames * positions;
        scores
            .blank
            .chunks_mut(chunk)
            .zip(scores.emit.chunks_mut(chunk))
            .zip(scores.shift.chunks_mut(chunk))
            .zip(scores.inv_sum.chunks_mut(chunk))
            .enumerate()
            .map(|(i, (((blank, emit), shift), inv_sum))| TileScores {
                b,
                first_frame: i * frames,
                positions,
                blank,
                emit,
                shift,
                inv_sum,
            })
            .collect()
    }

    /// Makes the tile's logits in `buffers` and writes each node's scores, frame by frame, with
    /// the CPU front pass's row kernel.
    fn score<F: JointFloat, I>(
        &mut self,
        input: &JointInput<'_, F, I>,
        batch: &Batch,
        buffers: &mut TileBuffers<F>,
    ) -> Result<()> {
        let (b, positions) = (self.b, self.positions);
        let frames = self.blank.len() / positions;
        let first = self.first_frame;
        let nodes = (first..first + frames).flat_map(|t| (0..positions).map(move |u| (t, u)));
        let nodes: Vec<(usize, usize)> = nodes.collect();
        let v = batch.vocab;
        buffers.make(input, b, nodes.iter().copied());
        let logits = &buffers
            .logits
            .as_slice()
            .expect("a new array is contiguous")[..nodes.len() * v];
        let columns = ScoreColumns {
            blank: batch.blank,
            labels: batch.labels(b),
        };
        let frame_nodes = self
            .blank
            .chunks_mut(positions)
            .zip(self.emit.chunks_mut(positions))
            .zip(self.shift.chunks_mut(positions))
            .zip(self.inv_sum.chunks_mut(positions));
        for (i, (((blank, emit), shift), inv_sum)) in frame_nodes.enumerate() {
            let rows = &logits[i * positions * v..(i + 1) * positions * v];
            let out = FrameScores {
                blank: &mut *blank,
                emit: &mut *emit,
                shift: &mut *shift,
                sum: &mut *inv_sum,
            };
            if !F::frame_scores(rows, v, out, None, columns) {
                let u = inv_sum.iter().position(|sum| sum.is_nan()).unwrap_or(0);
                return Err(Error::Value(format!(
                    "the joiner's logits at item {b}, frame {}, label position {u} are not \
                     finite: W · act(encoder_out[{b}][{}] + predictor_out[{b}][{u}]) + bias \
                     overflows",
                    first + i,
                    first + i
                )));
            }
            simd::normalise_scores(Isa::detected(), blank, emit, shift, inv_sum);
        }
        Ok(())
    }
}

/// Rejects a NaN or ±inf in the inputs within the lengths (encoder_out's first T_b frames and
/// predictor_out's first U_b + 1 positions of item b; all of weight and bias), naming the first.
fn check_finite<F: Float, I>(input: &JointInput<'_, F, I>, batch: &Batch) -> Result<()> {
    for b in 0..batch.batch_size {
        let frames = input
            .encoder_out
            .slice(ndarray::s![b, ..batch.frames(b), ..]);
        first_non_finite(frames, &format!("encoder_out[{b}]"))?;
        let positions = batch.labels(b).len() + 1;
        let predictor = input.predictor_out.slice(ndarray::s![b, ..positions, ..]);
        first_non_finite(predictor, &format!("predictor_out[{b}]"))?;
    }
    first_non_finite(input.weight, "weight")?;
    if let Some(bias) = input.bias {
        first_non_finite(bias, "bias")?;
    }
    Ok(())
}

/// An error naming `name` and the index of the first element of `values` that is NaN or ±inf.
fn first_non_finite<F: Float, D: Dimension>(values: ArrayView<'_, F, D>, name: &str) -> Result<()> {
    let Some((flat, value)) = values
        .iter()
        .enumerate()
        .find(|(_, value)| !value.to_f64().is_finite())
    else {
        return Ok(());
    };
    // The flat position in logical (row-major) order, as one index per axis.
    let mut rest = flat;
    let mut index = Vec::with_capacity(values.ndim());
    for &len in values.shape().iter().rev() {
        index.push(rest % len);
        rest /= len;
    }
    let index: String = index.iter().rev().map(|i| format!("[{i}]")).collect();
    Err(Error::Value(format!(
        "{name}{index} = {value}: the joiner's inputs and parameters must be finite"
    )))
}
