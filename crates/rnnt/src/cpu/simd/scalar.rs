//! f32 and f64 themselves: their [`SimdFloat`] constants and vectors, and the portable one-lane
//! "vector" ([`Lanes`] with one lane), so that the kernels run on any target and handle the tails
//! of rows on every instruction set with the same arithmetic.

use crate::cpu::simd::math::{ATANH_COEFFICIENTS, ATANH_TAYLOR_F32, EXP_POLY_F32, EXP_POLY_F64};
use crate::cpu::simd::vector::{Lanes, SimdFloat};

impl SimdFloat for f32 {
    const ZERO: f32 = 0.0;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    // e^−87.33 ≈ 1.1769e-38 > 2^−126; e^89 > f32::MAX.
    const EXP_NORMAL_LOW: f32 = -87.33;
    const EXP_HIGH: f32 = 89.0;
    // 88/ln 2 < 127: p·2ⁿ < √2·2¹²⁷ < f32::MAX.
    const EXP_FINITE_HIGH: f32 = 88.0;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MINUS_LN2_HI: f32 = f32::from_bits(0xbf31_8000); // −0.693359375
    const MINUS_LN2_LO: f32 = 2.121_944_4e-4;
    const ROUNDING_SHIFT: f32 = 12_582_912.0;
    const EXP_POLY: &'static [f32] = &EXP_POLY_F32;
    const LOWEST: f32 = f32::MIN;
    const ATANH_TAYLOR: &'static [f32] = &ATANH_TAYLOR_F32;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> f32 {
        value as f32
    }
}

impl SimdFloat for f64 {
    const ZERO: f64 = 0.0;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    // e^−708.39 ≈ 2.2266e-308 > 2^−1022; e^710 > f64::MAX.
    const EXP_NORMAL_LOW: f64 = -708.39;
    const EXP_HIGH: f64 = 710.0;
    // 709/ln 2 < 1023: p·2ⁿ < √2·2¹⁰²³ < f64::MAX.
    const EXP_FINITE_HIGH: f64 = 709.0;
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const MINUS_LN2_HI: f64 = -6.931_471_803_691_238e-1;
    const MINUS_LN2_LO: f64 = -1.908_214_929_270_587_7e-10;
    const ROUNDING_SHIFT: f64 = 6_755_399_441_055_744.0;
    const EXP_POLY: &'static [f64] = &EXP_POLY_F64;
    const LOWEST: f64 = f64::MIN;
    // Degree 11 in s²: the truncation error (1/5)²⁴/25 is below 0.1 ulp.
    const ATANH_TAYLOR: &'static [f64] = &ATANH_COEFFICIENTS;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> f64 {
        value
    }
}

/// Implements the one-lane [`Lanes`] for a float type; `$bits` is its unsigned bits type,
/// `$mantissa` its stored significand bits and `$bias` its exponent bias.
macro_rules! scalar_lanes {
    ($float:ty, $bits:ty, $mantissa:expr, $bias:expr) => {
        impl Lanes for $float {
            type Scalar = $float;
            const LANES: usize = 1;
            #[inline(always)]
            unsafe fn splat(x: $float) -> $float {
                x
            }
            #[inline(always)]
            unsafe fn load(ptr: *const $float) -> $float {
                // SAFETY: the caller passes a pointer valid for one element.
                unsafe { ptr.read_unaligned() }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut $float) {
                // SAFETY: the caller passes a pointer valid for one element.
                unsafe { ptr.write_unaligned(self) }
            }
            #[inline(always)]
            unsafe fn load_partial(ptr: *const $float, n: usize, fill: $float) -> $float {
                // SAFETY: n < 1 lane: nothing is read.
                let _ = (ptr, n);
                fill
            }
            #[inline(always)]
            unsafe fn store_partial(self, ptr: *mut $float, n: usize) {
                // n < 1 lane: nothing is written.
                let _ = (ptr, n);
            }
            #[inline(always)]
            unsafe fn stream(self, ptr: *mut $float) {
                // SAFETY: as `store`.
                unsafe { ptr.write_unaligned(self) }
            }
            #[inline(always)]
            unsafe fn add(self, other: $float) -> $float {
                self + other
            }
            #[inline(always)]
            unsafe fn sub(self, other: $float) -> $float {
                self - other
            }
            #[inline(always)]
            unsafe fn mul(self, other: $float) -> $float {
                self * other
            }
            #[inline(always)]
            unsafe fn div(self, other: $float) -> $float {
                self / other
            }
            #[inline(always)]
            unsafe fn split_exponent(self) -> ($float, $float) {
                // e = ⌊log₂(x·√2)⌋ from the exponent field; 2⁻ᵉ built in the exponent field.
                let scaled = self * std::f64::consts::SQRT_2 as $float;
                let e = (scaled.to_bits() >> $mantissa) as i64 - $bias;
                let power = <$float>::from_bits((($bias - e) as $bits) << $mantissa);
                (self * power, e as $float)
            }
            #[inline(always)]
            unsafe fn mul_add(self, a: $float, b: $float) -> $float {
                <$float>::mul_add(self, a, b)
            }
            #[inline(always)]
            unsafe fn max(self, other: $float) -> $float {
                if self > other {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            unsafe fn min(self, other: $float) -> $float {
                if self < other {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            unsafe fn ldexp(self, n: $float) -> $float {
                // Two factors 2^(n/2) keep each one normal down to subnormal results.
                let n = n as i32;
                let half = n >> 1;
                let power = |k: i32| <$float>::from_bits(((k + $bias) as $bits) << $mantissa);
                self * power(half) * power(n - half)
            }
            #[inline(always)]
            unsafe fn zero_where_below(self, x: $float, bound: $float) -> $float {
                if x < bound {
                    0.0
                } else {
                    self
                }
            }
            #[inline(always)]
            unsafe fn sub_in_lanes(self, lanes: u32, amount: $float) -> $float {
                if lanes & 1 == 1 {
                    self - amount
                } else {
                    self
                }
            }
            #[inline(always)]
            unsafe fn reduce_max(self) -> $float {
                self
            }
            #[inline(always)]
            unsafe fn reduce_sum(self) -> f64 {
                self.to_f64()
            }
        }
    };
}

scalar_lanes!(f32, u32, 23, 127);
scalar_lanes!(f64, u64, 52, 1023);
