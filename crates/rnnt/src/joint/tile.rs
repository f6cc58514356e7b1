//! A tile: the hidden activations h = act(f[t] + g[u]) and the logits x = h · Wᵀ + bias of a run
//! of lattice nodes of one item, made in a per-thread buffer with one GEMM and reused for the
//! next tile.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Zip};

use crate::element::Float;
use crate::joint::input::{JointFloat, JointInput};

/// The lattice rows a tile covers as it builds them in a [`TileBuffers`]: nodes (t, u) of one
/// item, at most [`TILE_ROWS`] (a whole number of frames, or one frame when its U_b + 1 rows are
/// more).
pub const TILE_ROWS: usize = 256;

/// One thread's buffers for a tile of at most `rows` rows: h (rows, H) and x (rows, V), and for
/// the backward pass d x (rows, V) and d h (rows, H).
#[derive(Debug)]
pub struct TileBuffers<F> {
    /// h = act(f[t] + g[u]), one row per node.
    pub hidden: Array2<F>,
    /// x = h · Wᵀ + bias, one row per node.
    pub logits: Array2<F>,
    /// d loss / d x (backward only; empty in the forward pass).
    pub grad_logits: Array2<F>,
    /// d loss / d h, then d loss / d (f[t] + g[u]) (backward only).
    pub grad_hidden: Array2<F>,
}

impl<F: JointFloat> TileBuffers<F> {
    /// Buffers for tiles of up to `rows` rows of `hidden` and `vocab` columns; `backward` adds
    /// the gradient buffers.
    pub fn new(rows: usize, hidden: usize, vocab: usize, backward: bool) -> TileBuffers<F> {
        let grad_rows = if backward { rows } else { 0 };
        TileBuffers {
            hidden: Array2::zeros((rows, hidden)),
            logits: Array2::zeros((rows, vocab)),
            grad_logits: Array2::zeros((grad_rows, vocab)),
            grad_hidden: Array2::zeros((grad_rows, hidden)),
        }
    }

    /// Makes the rows of `nodes` (frame t, position u of item `b`) in the first `nodes.len()`
    /// rows of [`TileBuffers::hidden`] and [`TileBuffers::logits`] (whose rows are contiguous).
    ///
    /// # Panics
    /// If there are more nodes than the buffers' rows.
    pub fn make<I>(
        &mut self,
        input: &JointInput<'_, F, I>,
        b: usize,
        nodes: impl ExactSizeIterator<Item = (usize, usize)>,
    ) {
        let n = nodes.len();
        let mut hidden = self.hidden.slice_mut(s![..n, ..]);
        let encoder = input.encoder_out.index_axis(ndarray::Axis(0), b);
        let predictor = input.predictor_out.index_axis(ndarray::Axis(0), b);
        let activation = input.activation;
        for ((t, u), mut row) in nodes.zip(hidden.rows_mut()) {
            Zip::from(&mut row)
                .and(encoder.row(t))
                .and(predictor.row(u))
                .for_each(|h, &f, &g| {
                    *h = activation.apply(f + g);
                });
        }
        let mut logits = self.logits.slice_mut(s![..n, ..]);
        match &input.bias {
            Some(bias) => logits
                .rows_mut()
                .into_iter()
                .for_each(|mut row| row.assign(bias)),
            None => logits.fill(<F as Float>::zero()),
        }
        general_mat_mul(F::one(), &hidden, &input.weight.t(), F::one(), &mut logits);
    }
}
