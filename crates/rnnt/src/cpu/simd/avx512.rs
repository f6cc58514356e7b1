//! AVX-512 vectors: 16 f32 or 8 f64 lanes; `scalef` does the 2ⁿ scaling of exp in one rounding.
//! float16 and bfloat16 elements in f32 lanes, with AVX-512BW's masked 16-bit loads and stores
//! for the partial vectors; the `avx512bf16` set (the same vectors, compiled with AVX-512 BF16)
//! rounds bfloat16 with one instruction.

use std::arch::x86_64::*;

use crate::cpu::simd::element::LoadStore;
use crate::cpu::simd::vector::Lanes;

/// 16 f32 lanes. `BF16`: whether bfloat16 elements are rounded by AVX-512 BF16's conversion
/// (the vector of the `avx512bf16` set) rather than by integer operations.
#[derive(Debug, Clone, Copy)]
pub struct F32x16<const BF16: bool = false>(__m512);

/// 8 f64 lanes.
#[derive(Debug, Clone, Copy)]
pub struct F64x8(__m512d);

impl<const BF16: bool> Lanes for F32x16<BF16> {
    type Scalar = f32;
    const LANES: usize = 16;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(x: f32) -> Self {
        Self(_mm512_set1_ps(x))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller passes a pointer valid for 16 elements.
        Self(unsafe { _mm512_loadu_ps(ptr) })
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
        Self(unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask, ptr) })
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
        Self(_mm512_add_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub(self, other: Self) -> Self {
        Self(_mm512_sub_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul(self, other: Self) -> Self {
        Self(_mm512_mul_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn div(self, other: Self) -> Self {
        Self(_mm512_div_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn split_exponent(self) -> (Self, Self) {
        // e = ⌊log₂(x·√2)⌋ by `getexp`; m = x·2⁻ᵉ by `scalef`, exact.
        let scaled = _mm512_mul_ps(self.0, _mm512_set1_ps(std::f32::consts::SQRT_2));
        let e = _mm512_getexp_ps(scaled);
        (
            Self(_mm512_scalef_ps(
                self.0,
                _mm512_sub_ps(_mm512_setzero_ps(), e),
            )),
            Self(e),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        Self(_mm512_fmadd_ps(self.0, a.0, b.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn max(self, other: Self) -> Self {
        Self(_mm512_max_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn min(self, other: Self) -> Self {
        Self(_mm512_min_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn ldexp(self, n: Self) -> Self {
        Self(_mm512_scalef_ps(self.0, n.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn zero_where_below(self, x: Self, bound: Self) -> Self {
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x.0, bound.0);
        Self(_mm512_maskz_mov_ps(keep, self.0))
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_in_lanes(self, lanes: u32, amount: f32) -> Self {
        Self(_mm512_mask_sub_ps(
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

/// Sixteen float16 elements (their bits) widened exactly to f32.
#[inline]
#[target_feature(enable = "avx512f")]
fn widen_f16(bits: __m256i) -> __m512 {
    _mm512_cvtph_ps(bits)
}

/// Sixteen f32 lanes rounded to float16 (nearest even), as bits.
#[inline]
#[target_feature(enable = "avx512f")]
fn narrow_f16(x: __m512) -> __m256i {
    _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
}

/// Sixteen bfloat16 elements (their bits) widened exactly to f32: the bits are f32's high half.
#[inline]
#[target_feature(enable = "avx512f")]
fn widen_bf16(bits: __m256i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(bits)))
}

/// Sixteen f32 lanes rounded to bfloat16 (nearest even; a NaN stays a quiet NaN), as bits: the
/// `half` crate's rounding.
#[inline]
#[target_feature(enable = "avx512f")]
fn narrow_bf16(x: __m512) -> __m256i {
    let bits = _mm512_castps_si512(x);
    let high = _mm512_srli_epi32::<16>(bits);
    let odd = _mm512_and_si512(high, _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, bias));
    let quiet = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet))
}

/// [`LoadStore`] of a half-precision type in the lanes of `$vector` (an [`F32x16`]) through its
/// bit conversions `$widen` and `$narrow`, the stores compiled with `$features`.
macro_rules! half_lanes {
    ($half:ty, $vector:ty, $features:literal, $widen:ident, $narrow:ident $(, $flag:ident)?) => {
        impl$(<const $flag: bool>)? LoadStore<$half> for $vector {
            #[inline]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            unsafe fn load_from(ptr: *const $half) -> Self {
                // SAFETY: the caller passes a pointer valid for 16 elements (32 bytes).
                Self($widen(unsafe { _mm256_loadu_si256(ptr.cast()) }))
            }
            #[inline]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            unsafe fn load_partial_from(ptr: *const $half, n: usize, fill: f32) -> Self {
                let mask = ((1u32 << n) - 1) as u16;
                // SAFETY: masked-off lanes are not read (no fault); the caller passes n valid
                // elements.
                let bits = unsafe { _mm256_maskz_loadu_epi16(mask, ptr.cast()) };
                Self(_mm512_mask_mov_ps(_mm512_set1_ps(fill), mask, $widen(bits)))
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn store_to(self, ptr: *mut $half) {
                // SAFETY: the caller passes a pointer valid for 16 elements (32 bytes).
                unsafe { _mm256_storeu_si256(ptr.cast(), $narrow(self.0)) }
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn store_partial_to(self, ptr: *mut $half, n: usize) {
                let mask = ((1u32 << n) - 1) as u16;
                // SAFETY: masked-off lanes are not written; the caller passes n valid elements.
                unsafe { _mm256_mask_storeu_epi16(ptr.cast(), mask, $narrow(self.0)) }
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn stream_to(self, ptr: *mut $half) {
                // SAFETY: the caller passes a 32-byte aligned pointer valid for 16 elements.
                unsafe { _mm256_stream_si256(ptr.cast(), $narrow(self.0)) }
            }
        }
    };
}

/// Sixteen f32 lanes rounded to bfloat16 by AVX-512 BF16's conversion, as bits: the same bits as
/// [`narrow_bf16`] for every value the gradient pass writes (it rounds to nearest even and keeps a
/// NaN quiet; it flushes subnormal values, which the pass never writes).
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn narrow_bf16_native(x: __m512) -> __m256i {
    // SAFETY: both types are 256 bits of plain data.
    unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x)) }
}

half_lanes!(
    half::f16,
    F32x16<BF16>,
    "avx512f,avx512bw,avx512vl",
    widen_f16,
    narrow_f16,
    BF16
);
half_lanes!(
    half::bf16,
    F32x16,
    "avx512f,avx512bw,avx512vl",
    widen_bf16,
    narrow_bf16
);
half_lanes!(
    half::bf16,
    F32x16<true>,
    "avx512f,avx512bw,avx512vl,avx512bf16",
    widen_bf16,
    narrow_bf16_native
);

entry_points!(entry, "avx512f,avx512bw,avx512vl", Avx512);
entry_points!(
    entry_bf16,
    "avx512f,avx512bw,avx512vl,avx512bf16",
    Avx512Bf16
);
