//! Row kernels of the CPU backend: the only code that touches a whole row of V scores.
//!
//! The front pass needs a row's shift and Σ exp(x − shift); the gradient pass writes one row of
//! the gradient (see [`GradRow`]). f32 and f64 call the vectorised kernels of
//! [`crate::cpu::simd`]; the half-precision types widen a frame's rows to f32 (exactly), run the
//! f32 kernels on them in a per-thread buffer, and round the gradient back: reading a half
//! element costs a conversion, not a scalar f64 exp.

use std::cell::RefCell;

use half::slice::HalfFloatSliceExt;

use crate::cpu::simd::{self, FrameRows, FrameScores, GradRow, Isa, ScoreColumns};
use crate::element::Float;

/// Whole-row operations of the front and gradient passes, per element type: the sealing
/// supertrait of [`Float`].
pub trait Kernels: Sized {
    /// The front pass's kernel for one frame: for each of the `out.len()` consecutive rows of
    /// `len` elements at the start of `rows`, its shift and Σ exp(x − shift) (conventions of
    /// [`RowStats`](simd::RowStats): the shift of a short row is its anchor, from its `columns`'
    /// scores, where that allows, else the row's maximum; the sum is NaN exactly when the row
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

thread_local! {
    /// Per-thread f32 buffers for the half-precision kernels: a frame's rows widened, and its
    /// gradient rows before they are rounded back.
    static WIDENED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Elements widened at a time by the half-precision gradient kernel (two f32 buffers of 32 KiB).
const WIDENED_CHUNK: usize = 8 << 10;

/// `buffer` holding exactly `len` elements (its old contents are overwritten by the caller).
fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}

/// The f32 kernels for a half-precision type, over its rows widened to f32: the widening is
/// exact, the kernels' f32 arithmetic is finer than the type, and the gradient is rounded to
/// nearest on the way back. No softmax terms are stored (a half element would round them).
macro_rules! widened_kernels {
    ($half:ty) => {
        impl Kernels for $half {
            fn frame_scores(
                rows: &[$half],
                len: usize,
                out: FrameScores<'_>,
                exps: Option<&mut [$half]>,
                columns: ScoreColumns<'_>,
            ) -> bool {
                assert!(exps.is_none(), "{} stores no softmax terms", <$half>::DTYPE);
                WIDENED.with_borrow_mut(|(wide, _)| {
                    let wide = sized(wide, out.len() * len);
                    rows[..wide.len()].convert_to_f32_slice(wide);
                    simd::frame_scores(Isa::detected(), wide, len, out, None, columns)
                })
            }

            fn grad_rows(
                input: &[$half],
                out: &mut [$half],
                len: usize,
                params: &[GradRow],
                _stream: bool,
            ) {
                // A few rows at a time, so that both buffers stay in L1/L2 however long the frame.
                let rows = (WIDENED_CHUNK / len.max(1)).max(1);
                WIDENED.with_borrow_mut(|(wide, grad)| {
                    for (chunk, params) in params.chunks(rows).enumerate() {
                        let n = params.len() * len;
                        let at = chunk * rows * len;
                        let (wide, grad) = (sized(wide, n), sized(grad, n));
                        input[at..at + n].convert_to_f32_slice(wide);
                        simd::grad_rows(Isa::detected(), wide, grad, len, params, false);
                        out[at..at + n].convert_from_f32_slice(grad);
                    }
                })
            }

            fn grad_row_is_zero(params: &GradRow) -> bool {
                params.writes_only_zeros::<f32>()
            }
        }
    };
}

widened_kernels!(half::f16);
widened_kernels!(half::bf16);
