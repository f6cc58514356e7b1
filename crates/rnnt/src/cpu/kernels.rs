//! Row kernels of the CPU backend: the only code that touches a whole row of V scores.
//!
//! The front pass needs a row's shift and Σ exp(x − shift); the gradient pass writes one row of
//! the gradient (see [`GradRow`]). The default methods are portable f64 scalar code, used by the
//! half-precision types; f32 and f64 override them with the vectorised kernels of
//! [`crate::cpu::simd`], which are tested against these definitions.

use crate::cpu::simd::{self, FrameRows, FrameScores, GradRow, Isa, RowStats, ScoreColumns};
use crate::element::Float;

/// Whole-row operations of the front and gradient passes, per element type: the sealing
/// supertrait of [`Float`] (each method holds only for a [`Float`]).
pub trait Kernels: Sized {
    /// The front pass's kernel for one frame: for each of the `out.len()` consecutive rows of
    /// `len` elements at the start of `rows`, its shift and Σ exp(x − shift) (conventions of
    /// [`RowStats`]: the shift of a short row is its anchor, from its `columns`' scores, where
    /// that allows, else the row's maximum; the sum is NaN exactly when the row holds a NaN or
    /// +inf) and its blank and label scores, into `out`. With `exps`, the terms exp(x − shift) of
    /// each row with a finite shift are also stored at the row's place there, for
    /// [`Kernels::grad_rows_in_place`]. Returns false if a row holds a NaN or +inf. (This
    /// default, the half-precision types' kernel, shifts by the maximum.)
    fn frame_scores(
        rows: &[Self],
        len: usize,
        mut out: FrameScores<'_>,
        mut exps: Option<&mut [Self]>,
        columns: ScoreColumns<'_>,
    ) -> bool
    where
        Self: Float,
    {
        let mut finite = true;
        for r in 0..out.len() {
            let row = &rows[r * len..(r + 1) * len];
            let stats = scalar_row_stats(row);
            if let (Some(exps), true) = (exps.as_deref_mut(), stats.shift.is_finite()) {
                for (e, &x) in exps[r * len..(r + 1) * len].iter_mut().zip(row) {
                    *e = Self::from_f64((x.to_f64() - stats.shift).exp());
                }
            }
            let scores = columns.scores_of(r, |k| row[k].to_f64());
            finite &= out.set(r, scores, stats);
        }
        finite
    }

    /// Writes the gradient rows of the `params.len()` consecutive rows of `len` elements of
    /// `input` into the same rows of `out` (see [`GradRow`]); `stream` allows non-temporal stores,
    /// to be followed by [`simd::store_fence`].
    fn grad_rows(input: &[Self], out: &mut [Self], len: usize, params: &[GradRow], stream: bool)
    where
        Self: Float,
    {
        let _ = stream;
        for (r, row_params) in params.iter().enumerate() {
            let rows = r * len..(r + 1) * len;
            for (k, (o, &x)) in out[rows.clone()].iter_mut().zip(&input[rows]).enumerate() {
                *o = Self::from_f64(row_params.element(k, x.to_f64()));
            }
        }
    }

    /// Whether the gradient can be computed from softmax terms stored in the output by the front
    /// pass ([`Kernels::frame_scores`] with `exps`, then [`Kernels::grad_rows_in_place`]): only
    /// where the type holds a term as precisely as the pass computes it (f32 and f64, not the
    /// half-precision types).
    const STORES_SOFTMAX_TERMS: bool = false;

    /// [`Kernels::grad_rows`] with the softmax terms exp(x − shift) that
    /// [`Kernels::frame_scores`] stored in `out`, in place of the input (unstreamed). Only called
    /// where [`Kernels::STORES_SOFTMAX_TERMS`] holds.
    fn grad_rows_in_place(out: &mut [Self], len: usize, rows: &FrameRows<'_>) {
        let _ = (out, len, rows);
        unreachable!("grad_rows_in_place needs STORES_SOFTMAX_TERMS");
    }

    /// Whether [`Kernels::grad_rows`] writes only zeros in a row of `params` (exactly zero terms
    /// here; the vector kernels also flush terms below the normal range).
    fn grad_row_is_zero(params: &GradRow) -> bool {
        params.coef == 0.0 && params.arcs.iter().all(|&(_, occupancy)| occupancy == 0.0)
    }

    /// Fills `out` with zeros (streaming where the type has vector kernels and `stream` is set;
    /// to be followed by [`simd::store_fence`]).
    fn write_zeros(out: &mut [Self], stream: bool)
    where
        Self: Float,
    {
        let _ = stream;
        out.fill(Self::zero());
    }

    /// Copies `src` into `dst` (one length), streaming where the type has vector kernels; to be
    /// followed by [`simd::store_fence`].
    fn stream_copy(src: &[Self], dst: &mut [Self])
    where
        Self: Float,
    {
        dst.copy_from_slice(src);
    }
}

/// The vector kernels of [`crate::cpu::simd`] for a type that has them (f32, f64).
macro_rules! vector_kernels {
    ($float:ty) => {
        impl Kernels for $float {
            const STORES_SOFTMAX_TERMS: bool = true;
            #[inline]
            fn frame_scores(
                rows: &[$float],
                len: usize,
                out: FrameScores<'_>,
                exps: Option<&mut [$float]>,
                columns: ScoreColumns<'_>,
            ) -> bool {
                simd::frame_scores(Isa::detected(), rows, len, out, exps, columns)
            }
            #[inline]
            fn grad_rows_in_place(out: &mut [$float], len: usize, rows: &FrameRows<'_>) {
                simd::grad_rows_in_place(Isa::detected(), out, len, rows);
            }
            #[inline]
            fn grad_rows(
                input: &[$float],
                out: &mut [$float],
                len: usize,
                params: &[GradRow],
                stream: bool,
            ) {
                simd::grad_rows(Isa::detected(), input, out, len, params, stream);
            }
            #[inline]
            fn stream_copy(src: &[$float], dst: &mut [$float]) {
                simd::stream_copy(Isa::detected(), src, dst);
            }
            #[inline]
            fn grad_row_is_zero(params: &GradRow) -> bool {
                params.writes_only_zeros::<$float>()
            }
            #[inline]
            fn write_zeros(out: &mut [$float], stream: bool) {
                simd::write_zeros(Isa::detected(), out, stream);
            }
        }
    };
}

vector_kernels!(f32);
vector_kernels!(f64);

impl Kernels for half::f16 {}
impl Kernels for half::bf16 {}

/// The row statistics in f64 arithmetic, element by element (the definition the vector kernels
/// are tested against, and the kernel of the half-precision types).
fn scalar_row_stats<T: Float>(row: &[T]) -> RowStats {
    let mut max = f64::NEG_INFINITY;
    for &x in row {
        let x = x.to_f64();
        if x.is_nan() {
            return RowStats {
                shift: f64::NAN,
                sum: f64::NAN,
            };
        }
        max = max.max(x);
    }
    let sum = match max {
        f64::INFINITY => f64::NAN,
        f64::NEG_INFINITY => 0.0,
        _ => row.iter().map(|&x| (x.to_f64() - max).exp()).sum(),
    };
    RowStats { shift: max, sum }
}
