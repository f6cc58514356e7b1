//! AVX-512F vectors: 16 f32 or 8 f64 lanes; `scalef` does the 2ⁿ scaling of exp in one rounding.

use std::arch::x86_64::*;

use crate::cpu::simd::vector::Lanes;

/// 16 f32 lanes.
#[derive(Debug, Clone, Copy)]
pub struct F32x16(__m512);

/// 8 f64 lanes.
#[derive(Debug, Clone, Copy)]
pub struct F64x8(__m512d);

impl Lanes for F32x16 {
    type Scalar = f32;
    const LANES: usize = 16;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(x: f32) -> Self {
        F32x16(_mm512_set1_ps(x))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller passes a pointer valid for 16 elements.
        F32x16(unsafe { _mm512_loadu_ps(ptr) })
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller passes a pointer valid for 16 elements.
        unsafe { _mm512_storeu_ps(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_partial(ptr: *const f32, n: usize, fill: f32) -> Self {
        let mask = ((1u32 << n) - 1) as u16;
        // SAFETY: masked-off lanes are not read (no fault); the caller passes n valid elements.
        F32x16(unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask, ptr) })
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        let mask = ((1u32 << n) - 1) as u16;
        // SAFETY: masked-off lanes are not written; the caller passes n valid elements.
        unsafe { _mm512_mask_storeu_ps(ptr, mask, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn stream(self, ptr: *mut f32) {
        // SAFETY: the caller passes a 64-byte aligned pointer valid for 16 elements.
        unsafe { _mm512_stream_ps(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn add(self, other: Self) -> Self {
        F32x16(_mm512_add_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub(self, other: Self) -> Self {
        F32x16(_mm512_sub_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul(self, other: Self) -> Self {
        F32x16(_mm512_mul_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn div(self, other: Self) -> Self {
        F32x16(_mm512_div_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split_exponent(self) -> (Self, Self) {
        // e = ⌊log₂(x·√2)⌋ by `getexp`; m = x·2⁻ᵉ by `scalef`, exact.
        let scaled = _mm512_mul_ps(self.0, _mm512_set1_ps(std::f32::consts::SQRT_2));
        let e = _mm512_getexp_ps(scaled);
        (
            F32x16(_mm512_scalef_ps(
                self.0,
                _mm512_sub_ps(_mm512_setzero_ps(), e),
            )),
            F32x16(e),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        F32x16(_mm512_fmadd_ps(self.0, a.0, b.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn max(self, other: Self) -> Self {
        F32x16(_mm512_max_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn min(self, other: Self) -> Self {
        F32x16(_mm512_min_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn ldexp(self, n: Self) -> Self {
        F32x16(_mm512_scalef_ps(self.0, n.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn zero_where_below(self, x: Self, bound: Self) -> Self {
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x.0, bound.0);
        F32x16(_mm512_maskz_mov_ps(keep, self.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_in_lanes(self, lanes: u32, amount: f32) -> Self {
        F32x16(_mm512_mask_sub_ps(
            self.0,
            lanes as __mmask16,
            self.0,
            _mm512_set1_ps(amount),
        ))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce_max(self) -> f32 {
        _mm512_reduce_max_ps(self.0)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce_sum(self) -> f64 {
        let low = _mm512_cvtps_pd(_mm512_castps512_ps256(self.0));
        let high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(self.0),
        )));
        _mm512_reduce_add_pd(_mm512_add_pd(low, high))
    }
}

impl Lanes for F64x8 {
    type Scalar = f64;
    const LANES: usize = 8;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(x: f64) -> Self {
        F64x8(_mm512_set1_pd(x))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(ptr: *const f64) -> Self {
        // SAFETY: the caller passes a pointer valid for 8 elements.
        F64x8(unsafe { _mm512_loadu_pd(ptr) })
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(self, ptr: *mut f64) {
        // SAFETY: the caller passes a pointer valid for 8 elements.
        unsafe { _mm512_storeu_pd(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_partial(ptr: *const f64, n: usize, fill: f64) -> Self {
        let mask = ((1u32 << n) - 1) as u8;
        // SAFETY: masked-off lanes are not read (no fault); the caller passes n valid elements.
        F64x8(unsafe { _mm512_mask_loadu_pd(_mm512_set1_pd(fill), mask, ptr) })
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_partial(self, ptr: *mut f64, n: usize) {
        let mask = ((1u32 << n) - 1) as u8;
        // SAFETY: masked-off lanes are not written; the caller passes n valid elements.
        unsafe { _mm512_mask_storeu_pd(ptr, mask, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn stream(self, ptr: *mut f64) {
        // SAFETY: the caller passes a 64-byte aligned pointer valid for 8 elements.
        unsafe { _mm512_stream_pd(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn add(self, other: Self) -> Self {
        F64x8(_mm512_add_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub(self, other: Self) -> Self {
        F64x8(_mm512_sub_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul(self, other: Self) -> Self {
        F64x8(_mm512_mul_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn div(self, other: Self) -> Self {
        F64x8(_mm512_div_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split_exponent(self) -> (Self, Self) {
        // e = ⌊log₂(x·√2)⌋ by `getexp`; m = x·2⁻ᵉ by `scalef`, exact.
        let scaled = _mm512_mul_pd(self.0, _mm512_set1_pd(std::f64::consts::SQRT_2));
        let e = _mm512_getexp_pd(scaled);
        (
            F64x8(_mm512_scalef_pd(
                self.0,
                _mm512_sub_pd(_mm512_setzero_pd(), e),
            )),
            F64x8(e),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        F64x8(_mm512_fmadd_pd(self.0, a.0, b.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn max(self, other: Self) -> Self {
        F64x8(_mm512_max_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn min(self, other: Self) -> Self {
        F64x8(_mm512_min_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn ldexp(self, n: Self) -> Self {
        F64x8(_mm512_scalef_pd(self.0, n.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn zero_where_below(self, x: Self, bound: Self) -> Self {
        let keep = _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(x.0, bound.0);
        F64x8(_mm512_maskz_mov_pd(keep, self.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_in_lanes(self, lanes: u32, amount: f64) -> Self {
        F64x8(_mm512_mask_sub_pd(
            self.0,
            lanes as __mmask8,
            self.0,
            _mm512_set1_pd(amount),
        ))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce_max(self) -> f64 {
        _mm512_reduce_max_pd(self.0)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce_sum(self) -> f64 {
        _mm512_reduce_add_pd(self.0)
    }
}

entry_points!("avx512f", Avx512);
