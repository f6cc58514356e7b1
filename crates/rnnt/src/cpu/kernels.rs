//! Row kernels of the CPU backend: the only code that touches a whole row of V scores.
//!
//! The front pass needs a row's maximum and Σ exp(x − max); the gradient pass writes one row of
//! the gradient (see [`GradRow`]). The default methods are portable f64 scalar code, used by the
//! half-precision types; f32 and f64 override them with the vectorised kernels of
//! [`crate::cpu::simd`], which are tested against these definitions.

use crate::cpu::simd::{self, GradRow, RowStats};
use crate::element::Element;

/// Whole-row operations of the front and gradient passes, per element type.
pub trait Kernels: Element {
    /// The maximum and Σ exp(x − max) of each of the `out.len()` consecutive rows of `len`
    /// elements at the start of `rows` (conventions of [`RowStats`]: the sum is NaN exactly when
    /// the row holds a NaN or +inf).
    fn rows_stats(rows: &[Self], len: usize, out: &mut [RowStats]) {
        for (r, stats) in out.iter_mut().enumerate() {
            *stats = scalar_row_stats(&rows[r * len..(r + 1) * len]);
        }
    }

    /// Writes the gradient rows of the `params.len()` consecutive rows of `len` elements of
    /// `input` into the same rows of `out` (see [`GradRow`]); `stream` allows non-temporal stores,
    /// to be followed by [`simd::store_fence`].
    fn grad_rows(input: &[Self], out: &mut [Self], len: usize, params: &[GradRow], stream: bool) {
        let _ = stream;
        for (r, row_params) in params.iter().enumerate() {
            let rows = r * len..(r + 1) * len;
            for (k, (o, &x)) in out[rows.clone()].iter_mut().zip(&input[rows]).enumerate() {
                *o = Self::from_f64(row_params.element(k, x.to_f64()));
            }
        }
    }

    /// Whether [`Kernels::grad_rows`] writes only zeros in a row of `params` (exactly zero terms
    /// here; the vector kernels also flush terms below the normal range).
    fn grad_row_is_zero(params: &GradRow) -> bool {
        params.coef == 0.0 && params.arcs.iter().all(|&(_, occupancy)| occupancy == 0.0)
    }

    /// Fills `out` with zeros (streaming where the type has vector kernels and `stream` is set;
    /// to be followed by [`simd::store_fence`]).
    fn write_zeros(out: &mut [Self], stream: bool) {
        let _ = stream;
        out.fill(Self::zero());
    }

    /// Copies `src` into `dst` (one length), streaming where the type has vector kernels; to be
    /// followed by [`simd::store_fence`].
    fn stream_copy(src: &[Self], dst: &mut [Self]) {
        dst.copy_from_slice(src);
    }
}

/// The vector kernels of [`crate::cpu::simd`] for a type that has them (f32, f64).
macro_rules! vector_kernels {
    ($float:ty) => {
        impl Kernels for $float {
            #[inline]
            fn rows_stats(rows: &[$float], len: usize, out: &mut [RowStats]) {
                simd::rows_stats(rows, len, out);
            }
            #[inline]
            fn grad_rows(
                input: &[$float],
                out: &mut [$float],
                len: usize,
                params: &[GradRow],
                stream: bool,
            ) {
                simd::grad_rows(input, out, len, params, stream);
            }
            #[inline]
            fn stream_copy(src: &[$float], dst: &mut [$float]) {
                simd::stream_copy(src, dst);
            }
            #[inline]
            fn grad_row_is_zero(params: &GradRow) -> bool {
                params.writes_only_zeros::<$float>()
            }
            #[inline]
            fn write_zeros(out: &mut [$float], stream: bool) {
                simd::write_zeros(out, stream);
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
fn scalar_row_stats<T: Element>(row: &[T]) -> RowStats {
    let mut max = f64::NEG_INFINITY;
    for &x in row {
        let x = x.to_f64();
        if x.is_nan() {
            return RowStats {
                max: f64::NAN,
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
    RowStats { max, sum }
}
