//! The element types the row kernels read and write, and how a vector loads and stores them:
//! f32 and f64 as they are, and the half-precision types (float16, bfloat16) widened exactly to
//! f32 lanes on the way in and rounded to nearest on the way out, so that a half-precision pass
//! moves half the bytes of an f32 one with the f32 arithmetic.
//!
//! The row kernels (`front`, `grad`, `memory`) are written over a vector `V` and an element type
//! `E` with `V: LoadStore<E>`; each [`RowElement`] names its vector on every instruction set.

#[cfg(target_arch = "x86_64")]
use crate::cpu::simd::avx2::{F32x8, F64x4};
#[cfg(target_arch = "x86_64")]
use crate::cpu::simd::avx512::{F32x16, F64x8};
use crate::cpu::simd::vector::{Lanes, SimdFloat};

/// A vector's loads and stores of `LANES` elements of type `E`: its own scalars as they are,
/// or half-precision elements converted (exactly when widening, to nearest when narrowing).
///
/// # Safety
/// As [`Lanes`]: every method may only be called on a CPU that has the vector's instruction set,
/// and pointers follow `ptr::read_unaligned` / `ptr::write_unaligned` rules for the elements
/// touched. (This section is the `# Safety` of every method.)
#[allow(clippy::missing_safety_doc)]
pub trait LoadStore<E>: Lanes {
    /// Loads `LANES` elements from `ptr` (any alignment).
    unsafe fn load_from(ptr: *const E) -> Self;
    /// Loads the first `n` < `LANES` elements from `ptr` (only those are touched); the other
    /// lanes hold `fill`.
    unsafe fn load_partial_from(ptr: *const E, n: usize, fill: Self::Scalar) -> Self;
    /// Stores `LANES` elements at `ptr` (any alignment).
    unsafe fn store_to(self, ptr: *mut E);
    /// Stores the first `n` < `LANES` lanes at `ptr` (only those elements are touched).
    unsafe fn store_partial_to(self, ptr: *mut E, n: usize);
    /// Stores `LANES` elements at `ptr`, aligned to `LANES` elements of `E`, bypassing the caches
    /// where the set allows (a plain store elsewhere).
    unsafe fn stream_to(self, ptr: *mut E);
}

/// An element type of the row kernels: f32, f64, `half::f16` or `half::bf16`, with the float
/// type its arithmetic runs in ([`RowElement::Lane`]: f32 for the half types) and its vector
/// on each instruction set.
pub trait RowElement: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The arithmetic's type, which is also the one-lane vector of the portable kernels.
    type Lane: SimdFloat + LoadStore<Self>;
    /// Its AVX2 vector.
    #[cfg(target_arch = "x86_64")]
    type Avx2: Lanes<Scalar = Self::Lane> + LoadStore<Self>;
    /// Its AVX-512 vector.
    #[cfg(target_arch = "x86_64")]
    type Avx512: Lanes<Scalar = Self::Lane> + LoadStore<Self>;
    /// Its vector on AVX-512 with BF16.
    #[cfg(target_arch = "x86_64")]
    type Avx512Bf16: Lanes<Scalar = Self::Lane> + LoadStore<Self>;
    /// Widens to f64 exactly.
    fn widen(self) -> f64;
}

/// Implements [`RowElement`] for `$element`, computed in `$lane`, with its vectors on AVX2,
/// AVX-512 and AVX-512 with BF16.
macro_rules! row_element {
    ($element:ty, $lane:ty, $avx2:ty, $avx512:ty, $avx512_bf16:ty) => {
        impl RowElement for $element {
            type Lane = $lane;
            #[cfg(target_arch = "x86_64")]
            type Avx2 = $avx2;
            #[cfg(target_arch = "x86_64")]
            type Avx512 = $avx512;
            #[cfg(target_arch = "x86_64")]
            type Avx512Bf16 = $avx512_bf16;
            #[inline(always)]
            fn widen(self) -> f64 {
                f64::from(self)
            }
        }
    };
}

row_element!(f32, f32, F32x8, F32x16, F32x16);
row_element!(f64, f64, F64x4, F64x8, F64x8);
row_element!(half::f16, f32, F32x8, F32x16, F32x16);
row_element!(half::bf16, f32, F32x8, F32x16, F32x16<true>);

/// The one-lane f32 "vector"'s [`LoadStore`] of a half-precision type, one element at a time
/// (the `half` crate's conversions, round to nearest even: the bits the vector sets' conversions
/// give).
macro_rules! scalar_half_lanes {
    ($half:ty) => {
        impl LoadStore<$half> for f32 {
            #[inline(always)]
            unsafe fn load_from(ptr: *const $half) -> f32 {
                // SAFETY: the caller passes a pointer valid for one element.
                unsafe { ptr.read_unaligned() }.to_f32()
            }
            #[inline(always)]
            unsafe fn load_partial_from(_: *const $half, _: usize, fill: f32) -> f32 {
                // n < 1 lane: nothing is read.
                fill
            }
            #[inline(always)]
            unsafe fn store_to(self, ptr: *mut $half) {
                // SAFETY: the caller passes a pointer valid for one element.
                unsafe { ptr.write_unaligned(<$half>::from_f32(self)) }
            }
            #[inline(always)]
            unsafe fn store_partial_to(self, _: *mut $half, _: usize) {
                // n < 1 lane: nothing is written.
            }
            #[inline(always)]
            unsafe fn stream_to(self, ptr: *mut $half) {
                // SAFETY: as `store_to`.
                unsafe { self.store_to(ptr) }
            }
        }
    };
}

scalar_half_lanes!(half::f16);
scalar_half_lanes!(half::bf16);

/// [`LoadStore`] of a vector's own scalars: [`Lanes`]' loads and stores.
macro_rules! own_elements {
    ($($vector:ty),*) => {$(
        impl LoadStore<<$vector as Lanes>::Scalar> for $vector {
            #[inline(always)]
            unsafe fn load_from(ptr: *const <$vector as Lanes>::Scalar) -> Self {
                // SAFETY: the caller's conditions are `load`'s.
                unsafe { <$vector>::load(ptr) }
            }
            #[inline(always)]
            unsafe fn load_partial_from(
                ptr: *const <$vector as Lanes>::Scalar,
                n: usize,
                fill: <$vector as Lanes>::Scalar,
            ) -> Self {
                // SAFETY: the caller's conditions are `load_partial`'s.
                unsafe { <$vector>::load_partial(ptr, n, fill) }
            }
            #[inline(always)]
            unsafe fn store_to(self, ptr: *mut <$vector as Lanes>::Scalar) {
                // SAFETY: the caller's conditions are `store`'s.
                unsafe { self.store(ptr) }
            }
            #[inline(always)]
            unsafe fn store_partial_to(self, ptr: *mut <$vector as Lanes>::Scalar, n: usize) {
                // SAFETY: the caller's conditions are `store_partial`'s.
                unsafe { self.store_partial(ptr, n) }
            }
            #[inline(always)]
            unsafe fn stream_to(self, ptr: *mut <$vector as Lanes>::Scalar) {
                // SAFETY: the caller's conditions are `stream`'s.
                unsafe { self.stream(ptr) }
            }
        }
    )*};
}

own_elements!(f32, f64);
#[cfg(target_arch = "x86_64")]
own_elements!(F32x8, F64x4, F32x16, F32x16<true>, F64x8);
