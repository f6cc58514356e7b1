//! Row kernels of the CPU backend: the only code that touches a whole row of V scores.
//!
//! The front pass needs a row's shift and Σ exp(x − shift); the gradient pass writes one row of
//! the gradient (see [`GradRow`]). Every element type calls the vectorised kernels of
//! [`crate::cpu::simd`]: f32 and f64 in their own lanes, the half-precision types widened to f32
//! lanes as they are loaded and rounded back to nearest as they are stored.

use crate::cpu::simd::{self, FrameRows, FrameScores, GradRow, Isa, RowElement, ScoreColumns};

/// Whole-row operations of the front and gradient passes, per element type: the sealing
/// supertrait of [`Float`](crate::element::Float).
pub trait Kernels: Sized {
    /// The front pass's kernel for one frame: for each of the `out.len()` consecutive rows of
    /// `len` elements at the start of `rows`, its shift and Σ exp(x − shift) (conventions of
    /// [`RowStats`](simd::RowStats): the shift of a row of at most 512 elements is its anchor, from
    /// its `columns`' scores, where that allows, else the row's maximum; the sum is NaN exactly when the row
    /// holds a NaN or +inf) and its blank and label scores, into `out`. With `exps`, the terms exp(x − shift) of
    /// each row with a finite shift are also stored at the row's place there, for
    /// [`Kernels::grad_rows_in_place`] (only for types with [`Kernels::STORES_SOFTMAX_TERMS`]).
    /// Returns false if a row holds a NaN or +inf.
    fn frame_scores(
        rows: &[Self],
        len: usize,
        out: FrameScores<'_>,
        exps: Option<&mut [Self]>,
        columns: ScoreColumns<'_>,
    ) -> bool;

    /// Writes the gradient rows of the `params.len()` consecutive rows of `len` elements of
    /// `input` into the same rows of `out` (see [`GradRow`]); `stream` allows non-temporal stores,
    /// to be followed by [`simd::store_fence`].
    fn grad_rows(input: &[Self], out: &mut [Self], len: usize, params: &[GradRow], stream: bool);

    /// Whether the gradient can be computed from softmax terms stored in the output by the front
    /// pass ([`Kernels::frame_scores`] with `exps`, then [`Kernels::grad_rows_in_place`]): only
    /// where the type holds a term as precisely as the pass computes it (f32 and f64, not the
    /// half-precision types).
    const STORES_SOFTMAX_TERMS: bool;

    /// [`Kernels::grad_rows`] with the softmax terms exp(x − shift) that
    /// [`Kernels::frame_scores`] stored in `out`, in place of the input (unstreamed). Only called
    /// where [`Kernels::STORES_SOFTMAX_TERMS`] holds.
    fn grad_rows_in_place(out: &mut [Self], len: usize, rows: &FrameRows<'_>);

    /// Whether [`Kernels::grad_rows`] writes only zeros in a row of `params` (exactly zero terms
    /// here; the vector kernels also flush terms below the normal range).
    fn grad_row_is_zero(params: &GradRow) -> bool;

    /// Fills `out` with zeros (streaming the aligned middle when `stream` is set; to be followed
    /// by [`simd::store_fence`]).
    fn write_zeros(out: &mut [Self], stream: bool);

    /// Copies `src` into `dst` (one length), streaming the aligned middle; to be followed by
    /// [`simd::store_fence`].
    fn stream_copy(src: &[Self], dst: &mut [Self]);
}

/// The vector kernels of [`crate::cpu::simd`] for an element type; `$stores`: whether it stores
/// softmax terms ([`Kernels::STORES_SOFTMAX_TERMS`]: f32 and f64, not the half-precision types,
/// whose elements would round the terms).
macro_rules! vector_kernels {
    ($float:ty, $stores:literal) => {
        impl Kernels for $float {
            const STORES_SOFTMAX_TERMS: bool = $stores;
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
                params.writes_only_zeros::<<$float as RowElement>::Lane>()
            }
            #[inline]
            fn write_zeros(out: &mut [$float], stream: bool) {
                simd::write_zeros(Isa::detected(), out, stream);
            }
        }
    };
}

vector_kernels!(f32, true);
vector_kernels!(f64, true);
vector_kernels!(half::f16, false);
vector_kernels!(half::bf16, false);
