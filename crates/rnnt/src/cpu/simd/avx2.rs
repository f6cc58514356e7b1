//! AVX2 + FMA vectors: 8 f32 or 4 f64 lanes; float16 and bfloat16 elements in f32 lanes (F16C
//! converts float16, shifts widen bfloat16).

use std::arch::x86_64::*;

use crate::cpu::simd::element::LoadStore;
use crate::cpu::simd::vector::Lanes;

/// 8 f32 lanes.
#[derive(Debug, Clone, Copy)]
pub struct F32x8(__m256);

/// 4 f64 lanes.
#[derive(Debug, Clone, Copy)]
pub struct F64x4(__m256d);

impl Lanes for F32x8 {
    type Scalar = f32;
    const LANES: usize = 8;
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn splat(x: f32) -> Self {
        F32x8(_mm256_set1_ps(x))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller passes a pointer valid for 8 elements.
        F32x8(unsafe { _mm256_loadu_ps(ptr) })
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller passes a pointer valid for 8 elements.
        unsafe { _mm256_storeu_ps(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_partial(ptr: *const f32, n: usize, fill: f32) -> Self {
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // SAFETY: masked-off lanes are not read (no fault); the caller passes n valid elements.
        let loaded = unsafe { _mm256_maskload_ps(ptr, mask) };
        F32x8(_mm256_blendv_ps(
            _mm256_set1_ps(fill),
            loaded,
            _mm256_castsi256_ps(mask),
        ))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // SAFETY: masked-off lanes are not written; the caller passes n valid elements.
        unsafe { _mm256_maskstore_ps(ptr, mask, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn stream(self, ptr: *mut f32) {
        // SAFETY: the caller passes a 32-byte aligned pointer valid for 8 elements.
        unsafe { _mm256_stream_ps(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add(self, other: Self) -> Self {
        F32x8(_mm256_add_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sub(self, other: Self) -> Self {
        F32x8(_mm256_sub_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mul(self, other: Self) -> Self {
        F32x8(_mm256_mul_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn div(self, other: Self) -> Self {
        F32x8(_mm256_div_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn split_exponent(self) -> (Self, Self) {
        // e = ⌊log₂(x·√2)⌋ from the exponent field; 2⁻ᵉ built in the exponent field.
        let scaled = _mm256_mul_ps(self.0, _mm256_set1_ps(std::f32::consts::SQRT_2));
        let biased = _mm256_srli_epi32::<23>(_mm256_castps_si256(scaled));
        let e = _mm256_sub_epi32(biased, _mm256_set1_epi32(127));
        let power = _mm256_slli_epi32::<23>(_mm256_sub_epi32(_mm256_set1_epi32(254), biased));
        (
            F32x8(_mm256_mul_ps(self.0, _mm256_castsi256_ps(power))),
            F32x8(_mm256_cvtepi32_ps(e)),
        )
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        F32x8(_mm256_fmadd_ps(self.0, a.0, b.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn max(self, other: Self) -> Self {
        F32x8(_mm256_max_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn min(self, other: Self) -> Self {
        F32x8(_mm256_min_ps(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ldexp(self, n: Self) -> Self {
        // Two factors 2^(n/2), each built in the exponent field, keep subnormal results exact.
        let n = _mm256_cvtps_epi32(n.0);
        let half = _mm256_srai_epi32::<1>(n);
        let power = |k: __m256i| {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                k,
                _mm256_set1_epi32(127),
            )))
        };
        let scaled = _mm256_mul_ps(self.0, power(half));
        F32x8(_mm256_mul_ps(scaled, power(_mm256_sub_epi32(n, half))))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ldexp_normal(self, n: Self) -> Self {
        // n added to self's exponent field: exact where the result is normal (three operations
        // where `ldexp`'s two factors take nine). A result beyond the range gets the exponent
        // field of inf or NaN, which `min` with +inf makes +inf (x86 `min` returns its second
        // operand for a NaN); adding self − self (0, or NaN for a NaN self) keeps NaN NaN.
        let exponent = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n.0));
        let bits = _mm256_add_epi32(_mm256_castps_si256(self.0), exponent);
        let scaled = _mm256_min_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(f32::INFINITY));
        F32x8(_mm256_add_ps(scaled, _mm256_sub_ps(self.0, self.0)))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ldexp_in_range(self, n: Self) -> Self {
        // n added to self's exponent field (three operations where `ldexp_normal` takes six):
        // the result is normal. A NaN n converts to 0x8000_0000, whose field bits shift out, so
        // a NaN self stays as it is.
        let exponent = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n.0));
        F32x8(_mm256_castsi256_ps(_mm256_add_epi32(
            _mm256_castps_si256(self.0),
            exponent,
        )))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn zero_where_below(self, x: Self, bound: Self) -> Self {
        let below = _mm256_cmp_ps::<_CMP_LT_OQ>(x.0, bound.0);
        F32x8(_mm256_andnot_ps(below, self.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sub_in_lanes(self, lanes: u32, amount: f32) -> Self {
        let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let set = _mm256_and_si256(_mm256_set1_epi32(lanes as i32), bits);
        let mask = _mm256_cmpeq_epi32(set, bits);
        let amounts = _mm256_and_ps(_mm256_castsi256_ps(mask), _mm256_set1_ps(amount));
        F32x8(_mm256_sub_ps(self.0, amounts))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn reduce_max(self) -> f32 {
        let halves = _mm_max_ps(
            _mm256_castps256_ps128(self.0),
            _mm256_extractf128_ps::<1>(self.0),
        );
        let pairs = _mm_max_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_max_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn reduce_sum(self) -> f64 {
        let low = _mm256_cvtps_pd(_mm256_castps256_ps128(self.0));
        let high = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self.0));
        F64x4(_mm256_add_pd(low, high)).reduce_sum()
    }
}

impl Lanes for F64x4 {
    type Scalar = f64;
    const LANES: usize = 4;
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn splat(x: f64) -> Self {
        F64x4(_mm256_set1_pd(x))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(ptr: *const f64) -> Self {
        // SAFETY: the caller passes a pointer valid for 4 elements.
        F64x4(unsafe { _mm256_loadu_pd(ptr) })
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(self, ptr: *mut f64) {
        // SAFETY: the caller passes a pointer valid for 4 elements.
        unsafe { _mm256_storeu_pd(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_partial(ptr: *const f64, n: usize, fill: f64) -> Self {
        let mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3));
        // SAFETY: masked-off lanes are not read (no fault); the caller passes n valid elements.
        let loaded = unsafe { _mm256_maskload_pd(ptr, mask) };
        F64x4(_mm256_blendv_pd(
            _mm256_set1_pd(fill),
            loaded,
            _mm256_castsi256_pd(mask),
        ))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_partial(self, ptr: *mut f64, n: usize) {
        let mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3));
        // SAFETY: masked-off lanes are not written; the caller passes n valid elements.
        unsafe { _mm256_maskstore_pd(ptr, mask, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn stream(self, ptr: *mut f64) {
        // SAFETY: the caller passes a 32-byte aligned pointer valid for 4 elements.
        unsafe { _mm256_stream_pd(ptr, self.0) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add(self, other: Self) -> Self {
        F64x4(_mm256_add_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sub(self, other: Self) -> Self {
        F64x4(_mm256_sub_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mul(self, other: Self) -> Self {
        F64x4(_mm256_mul_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn div(self, other: Self) -> Self {
        F64x4(_mm256_div_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn split_exponent(self) -> (Self, Self) {
        // e = ⌊log₂(x·√2)⌋ from the exponent field; 2⁻ᵉ built in the exponent field. The biased
        // exponent (< 2¹¹) becomes a double by or-ing it into the significand of 2⁵².
        let scaled = _mm256_mul_pd(self.0, _mm256_set1_pd(std::f64::consts::SQRT_2));
        let biased = _mm256_srli_epi64::<52>(_mm256_castpd_si256(scaled));
        let power = _mm256_slli_epi64::<52>(_mm256_sub_epi64(_mm256_set1_epi64x(2046), biased));
        let two_52 = _mm256_set1_pd(4_503_599_627_370_496.0);
        let biased_f = _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_or_si256(biased, _mm256_castpd_si256(two_52))),
            two_52,
        );
        (
            F64x4(_mm256_mul_pd(self.0, _mm256_castsi256_pd(power))),
            F64x4(_mm256_sub_pd(biased_f, _mm256_set1_pd(1023.0))),
        )
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        F64x4(_mm256_fmadd_pd(self.0, a.0, b.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn max(self, other: Self) -> Self {
        F64x4(_mm256_max_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn min(self, other: Self) -> Self {
        F64x4(_mm256_min_pd(self.0, other.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ldexp(self, n: Self) -> Self {
        // AVX2 has no f64 → i64 conversion: adding 1.5·2⁵² puts the integer n in the low
        // significand bits, where adding the bias and shifting builds 2ⁿ's exponent field.
        let half = _mm256_floor_pd(_mm256_mul_pd(n.0, _mm256_set1_pd(0.5)));
        let power = |k: __m256d| {
            let bits =
                _mm256_castpd_si256(_mm256_add_pd(k, _mm256_set1_pd(6_755_399_441_055_744.0)));
            _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(
                bits,
                _mm256_set1_epi64x(1023),
            )))
        };
        let scaled = _mm256_mul_pd(self.0, power(half));
        F64x4(_mm256_mul_pd(scaled, power(_mm256_sub_pd(n.0, half))))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ldexp_normal(self, n: Self) -> Self {
        // As for f32 (six operations where `ldexp` takes eleven): adding 1.5·2⁵² puts the
        // integer n in the low significand bits, and shifting them up by 52 leaves n·2⁵² (the
        // constant's own bits shift out).
        let rounded = _mm256_add_pd(n.0, _mm256_set1_pd(6_755_399_441_055_744.0));
        let exponent = _mm256_slli_epi64::<52>(_mm256_castpd_si256(rounded));
        let bits = _mm256_add_epi64(_mm256_castpd_si256(self.0), exponent);
        let scaled = _mm256_min_pd(_mm256_castsi256_pd(bits), _mm256_set1_pd(f64::INFINITY));
        F64x4(_mm256_add_pd(scaled, _mm256_sub_pd(self.0, self.0)))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ldexp_in_range(self, n: Self) -> Self {
        // `ldexp_normal` without the clamp to +inf (five operations): the result is normal. A
        // NaN n's payload bits may shift into the exponent field, so self − self (NaN for a NaN
        // self) is still added.
        let rounded = _mm256_add_pd(n.0, _mm256_set1_pd(6_755_399_441_055_744.0));
        let exponent = _mm256_slli_epi64::<52>(_mm256_castpd_si256(rounded));
        let bits = _mm256_add_epi64(_mm256_castpd_si256(self.0), exponent);
        F64x4(_mm256_add_pd(
            _mm256_castsi256_pd(bits),
            _mm256_sub_pd(self.0, self.0),
        ))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn zero_where_below(self, x: Self, bound: Self) -> Self {
        let below = _mm256_cmp_pd::<_CMP_LT_OQ>(x.0, bound.0);
        F64x4(_mm256_andnot_pd(below, self.0))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sub_in_lanes(self, lanes: u32, amount: f64) -> Self {
        let bits = _mm256_setr_epi64x(1, 2, 4, 8);
        let set = _mm256_and_si256(_mm256_set1_epi64x(i64::from(lanes)), bits);
        let mask = _mm256_cmpeq_epi64(set, bits);
        let amounts = _mm256_and_pd(_mm256_castsi256_pd(mask), _mm256_set1_pd(amount));
        F64x4(_mm256_sub_pd(self.0, amounts))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn reduce_max(self) -> f64 {
        let halves = _mm_max_pd(
            _mm256_castpd256_pd128(self.0),
            _mm256_extractf128_pd::<1>(self.0),
        );
        _mm_cvtsd_f64(_mm_max_sd(halves, _mm_unpackhi_pd(halves, halves)))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn reduce_sum(self) -> f64 {
        let halves = _mm_add_pd(
            _mm256_castpd256_pd128(self.0),
            _mm256_extractf128_pd::<1>(self.0),
        );
        _mm_cvtsd_f64(_mm_add_sd(halves, _mm_unpackhi_pd(halves, halves)))
    }
}

/// Eight float16 elements (their bits) widened exactly to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen_f16(bits: __m128i) -> __m256 {
    _mm256_cvtph_ps(bits)
}

/// Eight f32 lanes rounded to float16 (nearest even), as bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn narrow_f16(x: __m256) -> __m128i {
    _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x)
}

/// Eight bfloat16 elements (their bits) widened exactly to f32: the bits are f32's high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen_bf16(bits: __m128i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(bits)))
}

/// Eight f32 lanes rounded to bfloat16 (nearest even; a NaN stays a quiet NaN), as bits: the
/// `half` crate's rounding.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn narrow_bf16(x: __m256) -> __m128i {
    let bits = _mm256_castps_si256(x);
    let high = _mm256_srli_epi32::<16>(bits);
    let odd = _mm256_and_si256(high, _mm256_set1_epi32(1));
    let bias = _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff));
    let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(bits, bias));
    let quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
    let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
    let lanes = _mm256_blendv_epi8(rounded, quiet, nan);
    // Every lane fits in 16 bits: pack them (per 128-bit half), then gather the two halves.
    let packed = _mm256_packus_epi32(lanes, lanes);
    _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b00_00_10_00>(packed))
}

/// [`LoadStore`] of a half-precision type in [`F32x8`] lanes through its bit conversions
/// `$widen` and `$narrow`. Partial vectors go through an 8-element buffer (AVX2 has no masked
/// 16-bit loads or stores).
macro_rules! half_lanes {
    ($half:ty, $widen:ident, $narrow:ident) => {
        impl LoadStore<$half> for F32x8 {
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn load_from(ptr: *const $half) -> Self {
                // SAFETY: the caller passes a pointer valid for 8 elements (16 bytes).
                F32x8($widen(unsafe { _mm_loadu_si128(ptr.cast()) }))
            }
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn load_partial_from(ptr: *const $half, n: usize, fill: f32) -> Self {
                let mut buffer = [0u16; 8];
                // SAFETY: the caller passes n < 8 valid elements; the buffer holds 8.
                unsafe { std::ptr::copy_nonoverlapping(ptr.cast(), buffer.as_mut_ptr(), n) };
                // SAFETY: the buffer holds 16 bytes.
                let wide = $widen(unsafe { _mm_loadu_si128(buffer.as_ptr().cast()) });
                let keep = _mm256_cmpgt_epi32(
                    _mm256_set1_epi32(n as i32),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                F32x8(_mm256_blendv_ps(
                    _mm256_set1_ps(fill),
                    wide,
                    _mm256_castsi256_ps(keep),
                ))
            }
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn store_to(self, ptr: *mut $half) {
                // SAFETY: the caller passes a pointer valid for 8 elements (16 bytes).
                unsafe { _mm_storeu_si128(ptr.cast(), $narrow(self.0)) }
            }
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn store_partial_to(self, ptr: *mut $half, n: usize) {
                let mut buffer = [0u16; 8];
                // SAFETY: the buffer holds 16 bytes.
                unsafe { _mm_storeu_si128(buffer.as_mut_ptr().cast(), $narrow(self.0)) };
                // SAFETY: the caller passes n < 8 valid elements.
                unsafe { std::ptr::copy_nonoverlapping(buffer.as_ptr(), ptr.cast(), n) };
            }
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn stream_to(self, ptr: *mut $half) {
                // SAFETY: the caller passes a 16-byte aligned pointer valid for 8 elements.
                unsafe { _mm_stream_si128(ptr.cast(), $narrow(self.0)) }
            }
        }
    };
}

half_lanes!(half::f16, widen_f16, narrow_f16);
half_lanes!(half::bf16, widen_bf16, narrow_bf16);

entry_points!(entry, "avx2,fma,f16c", Avx2);
