//! The portable one-lane "vector": f32 and f64 themselves implement [`Lanes`], so the kernels run
//! on any target and handle the tails of rows on every instruction set with the same arithmetic.

use crate::cpu::simd::lanes::Lanes;

/// A float type of the kernels, with the constants of its exp.
pub trait Real:
    Lanes<Scalar = Self> + Copy + PartialOrd + std::fmt::Debug + Send + Sync + 'static
{
    /// 0.
    const ZERO: Self;
    /// −∞.
    const NEG_INFINITY: Self;
    /// The smallest input whose exp is a normal number: below it, exp gives 0.
    const EXP_NORMAL_LOW: Self;
    /// Inputs above this have an exp that overflows to +inf (they are clamped to it).
    const EXP_HIGH: Self;
    /// log₂ e.
    const LOG2E: Self;
    /// 1.5 · 2^(significand bits): adding it to a float of magnitude below 2^(bits−1) rounds that
    /// float to the nearest integer (ties to even), which subtracting it again recovers exactly.
    const ROUNDING_SHIFT: Self;
    /// −ln 2, high part (few significant bits, so that n·ln2_hi is exact).
    const MINUS_LN2_HI: Self;
    /// −ln 2, low part: −(ln 2 − ln2_hi).
    const MINUS_LN2_LO: Self;
    /// Coefficients c₀, c₁, … of the polynomial Σ cₖ rᵏ that approximates eʳ on |r| ≤ ln2/2
    /// within a fraction of an ulp (a Chebyshev fit, see [`EXP_POLY_F32`]).
    const EXP_POLY: &'static [Self];
    /// The most negative finite value.
    const LOWEST: Self;
    /// Coefficients 2/(2k+1), k = 1..=degree, of log((1+f)/(1−f))/s − 2 = Σ 2/(2k+1)·s²ᵏ with
    /// s = f/(2+f): enough for |s| ≤ 1/5 to a tenth of an ulp (see `logs::log1p_unit`).
    const ATANH_TAYLOR: &'static [Self];
    /// Widens exactly.
    fn to_f64(self) -> f64;
    /// Narrows, rounding to nearest.
    fn from_f64(value: f64) -> Self;
}

/// eʳ ≈ Σ cₖ rᵏ on |r| ≤ ln2/2, degree 6: the Chebyshev fit of that degree (mpmath `chebyfit`
/// at 40 digits), rounded to f32. Its own error is 2·10⁻⁹ relative, 0.02 ulp; the exp's error
/// (tested: ≤ 2 ulp) is the rounding of its arithmetic. Taylor would need degree 7.
pub const EXP_POLY_F32: [f32; 7] = [
    1.0,
    1.0,
    0.5,
    0.166_664_15,
    0.041_666_35,
    0.008_375_126,
    0.001_394_110_8,
];

/// The same fit of degree 11 rounded to f64: error 3·10⁻¹⁸ relative, 0.02 ulp (Taylor would
/// need degree 13).
pub const EXP_POLY_F64: [f64; 12] = [
    1.0,
    1.0,
    0.500_000_000_000_001_9,
    0.166_666_666_666_666_8,
    0.041_666_666_666_488_1,
    0.008_333_333_333_319_601,
    0.001_388_888_895_231_477_5,
    0.000_198_412_698_900_471_13,
    2.480_148_548_232_849_4e-5,
    2.755_724_091_857_897e-6,
    2.763_263_963_904_103e-7,
    2.511_003_760_596_377_7e-8,
];

/// 2/(2k+1) for k = 1..=11.
const ATANH_COEFFICIENTS: [f64; 11] = {
    let mut out = [0.0; 11];
    let mut k = 0;
    while k < 11 {
        out[k] = 2.0 / (2 * k + 3) as f64;
        k += 1;
    }
    out
};

/// The first 4 of [`ATANH_COEFFICIENTS`] in f32: the truncation error (1/5)¹⁰/11 is 0.1 ulp.
const ATANH_TAYLOR_F32: [f32; 4] = {
    let mut out = [0.0; 4];
    let mut k = 0;
    while k < 4 {
        out[k] = ATANH_COEFFICIENTS[k] as f32;
        k += 1;
    }
    out
};

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    // e^−87.33 ≈ 1.1769e-38 > 2^−126; e^89 > f32::MAX.
    const EXP_NORMAL_LOW: f32 = -87.33;
    const EXP_HIGH: f32 = 89.0;
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

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    // e^−708.39 ≈ 2.2266e-308 > 2^−1022; e^710 > f64::MAX.
    const EXP_NORMAL_LOW: f64 = -708.39;
    const EXP_HIGH: f64 = 710.0;
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
