//! The backward pass of the fused loss: for each tile of nodes, the rows whose gradient is not
//! zero to working precision (the CPU gradient pass's own test) are made again, d loss / d x is
//! formed in them with the gradient pass's row kernel, and d f, d g, d W and d bias are
//! accumulated: d h = d x · W and d W += d xᵀ · h (two GEMMs a tile), d (f + g) = d h ⊙ act'.
//! d W, d bias and d g gather over every tile: the tiles are split into a fixed number of groups,
//! each summed on one thread into its own copies, added up at the end in group order (so the
//! result is the same on every run with the same number of threads).

use ndarray::linalg::general_mat_mul;
use ndarray::{
    s, Array1, Array2, Array3, ArrayView, ArrayViewMut, ArrayViewMut2, Axis, Dimension, Zip,
};
use rayon::prelude::*;

use crate::cpu::simd::{FrameRows, GradRow};
use crate::cpu::threads::run_in_pool;
use crate::element::{Float, Index};
use crate::error::{Error, Result};
use crate::joint::forward::{frames_per_tile, largest_tile, JointForward};
use crate::joint::input::{JointDims, JointFloat, JointInput};
use crate::joint::tile::TileBuffers;

/// d objective / d each input of the joiner, of the inputs' shapes; 0 in padding.
#[derive(Debug, Clone)]
pub struct JointGrads<F> {
    /// (B, T, H).
    pub encoder_out: Array3<F>,
    /// (B, U+1, H).
    pub predictor_out: Array3<F>,
    /// (V, H).
    pub weight: Array2<F>,
    /// (V,), when the joiner has a bias.
    pub bias: Option<Array1<F>>,
}

/// The sums every tile adds to: one group's copies of d g, d W and d bias.
struct Partial<F> {
    predictor_out: Array3<F>,
    weight: Array2<F>,
    bias: Array1<F>,
}

impl<F: JointFloat> Partial<F> {
    fn zeros(dims: &JointDims) -> Partial<F> {
        Partial {
            predictor_out: Array3::zeros((dims.batch_size, dims.positions, dims.hidden)),
            weight: Array2::zeros((dims.vocab, dims.hidden)),
            bias: Array1::zeros(dims.vocab),
        }
    }
}

/// Groups of tiles per thread in the backward pass (each with its own partial sums of d W, d bias
/// and d g): enough for the threads to even out tiles of unequal work.
const GROUPS_PER_THREAD: usize = 4;

/// One thread's scratch: the tile buffers and a frame's arc occupancies and row parameters.
struct Scratch<F> {
    buffers: TileBuffers<F>,
    blank_arcs: Vec<f64>,
    emit_arcs: Vec<f64>,
    nodes: Vec<(usize, usize)>,
    params: Vec<GradRow>,
}

/// d objective / d encoder_out, predictor_out, weight and bias, given d objective / d loss_b =
/// `item_weights[b]`. `input` must be the input `forward` was computed from.
///
/// # Errors
/// [`Error::DType`] if `F` is not the forward call's element type, [`Error::Shape`] if the
/// input's sizes or the number of weights do not match it.
pub fn backward<F: JointFloat, I: Index>(
    input: &JointInput<'_, F, I>,
    forward: &JointForward,
    item_weights: &[f64],
) -> Result<JointGrads<F>> {
    if F::DTYPE != forward.dtype {
        return Err(Error::DType(format!(
            "encoder_out is {} but forward was computed from {}",
            F::DTYPE,
            forward.dtype
        )));
    }
    let dims = input.dims()?;
    if dims != forward.dims {
        return Err(Error::Shape(format!(
            "the input has sizes {dims:?} but forward saw {:?}",
            forward.dims
        )));
    }
    let batch = &forward.batch;
    if item_weights.len() != batch.batch_size {
        return Err(Error::Shape(format!(
            "item_weights has {} entries but the batch has B = {} items",
            item_weights.len(),
            batch.batch_size
        )));
    }
    let mut encoder_out = Array3::<F>::zeros(input.encoder_out.raw_dim());
    let rows = largest_tile(batch);
    let partials = run_in_pool(forward.options.threads, || {
        let mut tiles: Vec<(usize, usize, ArrayViewMut2<'_, F>)> = Vec::new();
        for (b, item) in encoder_out.outer_iter_mut().enumerate() {
            let frames = frames_per_tile(batch.labels(b).len() + 1);
            let (mut rest, _) = item.split_at(Axis(0), batch.frames(b));
            let mut first_frame = 0;
            while rest.nrows() > 0 {
                let len = frames.min(rest.nrows());
                let (tile, tail) = rest.split_at(Axis(0), len);
                tiles.push((b, first_frame, tile));
                first_frame += frames;
                rest = tail;
            }
        }
        let new_scratch = || Scratch {
            buffers: TileBuffers::<F>::new(rows, dims.hidden, dims.vocab, true),
            blank_arcs: Vec::new(),
            emit_arcs: Vec::new(),
            nodes: Vec::with_capacity(rows),
            params: Vec::with_capacity(rows),
        };
        // A fixed split of the tiles into groups, each summed on one thread into its own partial
        // sums, added up in group order: the same numbers on every run with as many threads.
        let groups =
            (GROUPS_PER_THREAD * rayon::current_num_threads()).clamp(1, tiles.len().max(1));
        let per_group = tiles.len().div_ceil(groups).max(1);
        let mut grouped: Vec<Vec<_>> = Vec::with_capacity(groups);
        let mut rest = tiles.into_iter();
        loop {
            let group: Vec<_> = rest.by_ref().take(per_group).collect();
            if group.is_empty() {
                break;
            }
            grouped.push(group);
        }
        grouped
            .into_par_iter()
            .map(|group| {
                let mut scratch = new_scratch();
                let mut partial = None;
                for (b, first_frame, encoder_grad) in group {
                    let tile = Tile {
                        b,
                        first_frame,
                        weight: item_weights[b],
                    };
                    tile.grad(input, forward, &mut scratch, encoder_grad, &mut partial);
                }
                partial
            })
            .collect::<Vec<Option<Partial<F>>>>()
    })?;
    let mut grads = JointGrads {
        encoder_out,
        predictor_out: Array3::zeros(input.predictor_out.raw_dim()),
        weight: Array2::zeros(input.weight.raw_dim()),
        bias: input.bias.map(|bias| Array1::zeros(bias.raw_dim())),
    };
    for partial in partials.into_iter().flatten() {
        add_into(grads.predictor_out.view_mut(), partial.predictor_out.view());
        add_into(grads.weight.view_mut(), partial.weight.view());
        if let Some(bias) = &mut grads.bias {
            add_into(bias.view_mut(), partial.bias.view());
        }
    }
    Ok(grads)
}

/// `sum` += `term`, element by element (equal shapes).
fn add_into<F: JointFloat, D: Dimension>(sum: ArrayViewMut<'_, F, D>, term: ArrayView<'_, F, D>) {
    Zip::from(sum).and(term).for_each(|s, &t| *s = *s + t);
}

/// A tile of the backward pass: frames `first_frame..` of item `b`, whose loss has the upstream
/// gradient `weight`.
struct Tile {
    b: usize,
    first_frame: usize,
    weight: f64,
}

impl Tile {
    /// Adds the tile's share of the gradients: its frames' rows of d encoder_out in
    /// `encoder_grad` (which no other tile writes), the rest in this thread's partial sums.
    fn grad<F: JointFloat, I>(
        &self,
        input: &JointInput<'_, F, I>,
        forward: &JointForward,
        scratch: &mut Scratch<F>,
        mut encoder_grad: ArrayViewMut2<'_, F>,
        partial: &mut Option<Partial<F>>,
    ) {
        self.active_rows(forward, encoder_grad.nrows(), scratch);
        let n = scratch.nodes.len();
        if n == 0 {
            return;
        }
        let v = forward.dims.vocab;
        let Scratch {
            buffers,
            nodes,
            params,
            ..
        } = scratch;
        buffers.make(input, self.b, nodes.iter().copied());
        let logits = buffers.logits.as_slice().expect("contiguous")[..n * v].as_ref();
        let grad_logits = &mut buffers.grad_logits.as_slice_mut().expect("contiguous")[..n * v];
        F::grad_rows(logits, grad_logits, v, params, false);
        let hidden = buffers.hidden.slice(s![..n, ..]);
        let grad_logits = buffers.grad_logits.slice(s![..n, ..]);
        let mut grad_hidden = buffers.grad_hidden.slice_mut(s![..n, ..]);
        general_mat_mul(
            F::one(),
            &grad_logits,
            &input.weight,
            <F as Float>::zero(),
            &mut grad_hidden,
        );
        let activation = input.activation;
        Zip::from(&mut grad_hidden)
            .and(&hidden)
            .for_each(|d, &h| *d = *d * activation.derivative_at_value(h));
        for (&(t, _), d) in nodes.iter().zip(grad_hidden.rows()) {
            add_into(encoder_grad.row_mut(t - self.first_frame), d);
        }
        let partial = partial.get_or_insert_with(|| Partial::zeros(&forward.dims));
        general_mat_mul(
            F::one(),
            &grad_logits.t(),
            &hidden,
            F::one(),
            &mut partial.weight,
        );
        for row in grad_logits.rows() {
            add_into(partial.bias.view_mut(), row);
        }
        let mut predictor = partial.predictor_out.index_axis_mut(Axis(0), self.b);
        for (&(_, u), d) in nodes.iter().zip(grad_hidden.rows()) {
            add_into(predictor.row_mut(u), d);
        }
    }

    /// The tile's nodes whose gradient row is not zero, with their row parameters, into
    /// `scratch.nodes` and `scratch.params`: the arcs of each of its `frames` frames from the
    /// lattice, FastEmit's scale and the item's weight applied.
    fn active_rows<F: JointFloat>(
        &self,
        forward: &JointForward,
        frames: usize,
        scratch: &mut Scratch<F>,
    ) {
        let item = &forward.items[self.b];
        let scores = item.scores();
        let positions = scores.positions;
        let options = &forward.options;
        let emit_scale = 1.0 + options.fastemit_lambda;
        scratch.blank_arcs.resize(positions, 0.0);
        scratch.emit_arcs.resize(positions, 0.0);
        scratch.nodes.clear();
        scratch.params.clear();
        for t in self.first_frame..self.first_frame + frames {
            item.frame_arcs(t, &mut scratch.blank_arcs, &mut scratch.emit_arcs);
            if emit_scale != 1.0 {
                scratch
                    .emit_arcs
                    .iter_mut()
                    .for_each(|arc| *arc *= emit_scale);
            }
            let here = scores.node(t, 0)..scores.node(t, 0) + positions;
            let rows = FrameRows {
                shift: &scores.shift[here.clone()],
                inv_sum: &scores.inv_sum[here],
                blank_arcs: &scratch.blank_arcs,
                emit_arcs: &scratch.emit_arcs,
                blank: forward.batch.blank,
                labels: forward.batch.labels(self.b),
                softmax: true,
                scale: self.weight,
                clip: options.clip_bound().unwrap_or(f64::INFINITY),
            };
            for u in 0..positions {
                let row = rows.row(u);
                if !F::grad_row_is_zero(&row) {
                    scratch.nodes.push((t, u));
                    scratch.params.push(row);
                }
            }
        }
    }
}
