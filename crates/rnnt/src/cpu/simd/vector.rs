//! The two interfaces every kernel is written over: [`Lanes`], a vector of floats and the
//! operations the kernels need, and [`SimdFloat`], a float type (f32 or f64) with the constants
//! of its elementary functions; and the loads and stores of up to one vector that end the
//! kernels' loops over short slices.
//!
//! A kernel is generic over `V: Lanes` and instantiated per (instruction set, float type) through
//! the vectors each [`RowElement`] names (see `entry_points!` in `dispatch`). The implementations are in
//! `scalar` (one lane: f32 and f64 themselves), `avx2` and `avx512`; no kernel names them.

use crate::cpu::simd::element::RowElement;

/// A vector of `LANES` floats and the operations the kernels need.
///
/// # Safety
/// Implementations may use instructions the CPU lacks: every method is `unsafe` and may only be
/// called on a CPU that has the instruction set (the dispatcher holds an `Isa` for it). Pointer
/// arguments follow `ptr::read_unaligned` / `ptr::write_unaligned` rules for `LANES` elements.
/// (This section is the `# Safety` of every method.)
#[allow(clippy::missing_safety_doc)]
pub trait Lanes: Copy {
    /// The element type.
    type Scalar: SimdFloat;
    /// Elements per vector.
    const LANES: usize;
    /// Every lane `x`.
    unsafe fn splat(x: Self::Scalar) -> Self;
    /// Loads `LANES` elements from `ptr` (any alignment).
    unsafe fn load(ptr: *const Self::Scalar) -> Self;
    /// Stores `LANES` elements at `ptr` (any alignment).
    unsafe fn store(self, ptr: *mut Self::Scalar);
    /// Loads the first `n` < `LANES` elements from `ptr` (only those are touched); the other
    /// lanes hold `fill`.
    unsafe fn load_partial(ptr: *const Self::Scalar, n: usize, fill: Self::Scalar) -> Self;
    /// Stores the first `n` < `LANES` lanes at `ptr` (only those elements are touched).
    unsafe fn store_partial(self, ptr: *mut Self::Scalar, n: usize);
    /// Stores `LANES` elements at `ptr`, aligned to the vector's size, bypassing the caches where
    /// the set allows (a plain store elsewhere).
    unsafe fn stream(self, ptr: *mut Self::Scalar);
    /// self + other.
    unsafe fn add(self, other: Self) -> Self;
    /// self − other.
    unsafe fn sub(self, other: Self) -> Self;
    /// self × other.
    unsafe fn mul(self, other: Self) -> Self;
    /// self ÷ other.
    unsafe fn div(self, other: Self) -> Self;
    /// Splits a positive normal `self` into (m, e) with self = m · 2ᵉ, m in [√½, √2] and e an
    /// integer (as a float).
    unsafe fn split_exponent(self) -> (Self, Self);
    /// self × a + b, rounded once.
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    /// if self > other { self } else { other } per lane (x86 `max` semantics: a NaN in either
    /// gives `other`, or NaN on sets that propagate it).
    unsafe fn max(self, other: Self) -> Self;
    /// if self < other { self } else { other } per lane (same NaN rule as [`Lanes::max`]).
    unsafe fn min(self, other: Self) -> Self;
    /// self × 2ⁿ for integral `n` in [−(2·emax+60), 2·emax], rounded once (subnormal results
    /// included); NaN stays NaN.
    unsafe fn ldexp(self, n: Self) -> Self;
    /// self × 2ⁿ for self in [√½, √2] (or NaN) and integral `n` for which the result is a normal
    /// number or beyond the largest finite one (then +inf): the last step of the exp
    /// (`math::exp_of_clamped`), exact like [`Lanes::ldexp`]; NaN stays NaN. [`Lanes::ldexp`]
    /// unless the set has a cheaper way.
    #[inline(always)]
    unsafe fn ldexp_normal(self, n: Self) -> Self {
        self.ldexp(n)
    }
    /// [`Lanes::ldexp_normal`] where the result is known to be a normal number (self in [√½, √2]
    /// and n ≤ emax − 1, as [`SimdFloat::EXP_FINITE_HIGH`] bounds it; or self and n NaN, which
    /// stays NaN): what a set without a scaling instruction saves is the care for overflow.
    #[inline(always)]
    unsafe fn ldexp_in_range(self, n: Self) -> Self {
        self.ldexp_normal(n)
    }
    /// Lanes where `x` < `bound` become 0, the others keep `self` (a NaN `x` keeps `self`).
    unsafe fn zero_where_below(self, x: Self, bound: Self) -> Self;
    /// `self` with `amount` subtracted from each lane j whose bit j of `lanes` is set (bits from
    /// `LANES` up are ignored), without a branch: the lane of an arc varies from row to row.
    unsafe fn sub_in_lanes(self, lanes: u32, amount: Self::Scalar) -> Self;
    /// `self` with `amount` subtracted from lane `lane` < `LANES` (the other lanes unchanged).
    #[inline(always)]
    unsafe fn sub_in_lane(self, lane: usize, amount: Self::Scalar) -> Self {
        self.sub_in_lanes(1 << lane, amount)
    }
    /// The largest lane (a NaN lane may or may not win).
    unsafe fn reduce_max(self) -> Self::Scalar;
    /// The sum of the lanes, in f64.
    unsafe fn reduce_sum(self) -> f64;
}

/// A float type with vectorised kernels, f32 or f64: the constants of its elementary functions
/// (see module `math`); its vector on each instruction set is its [`RowElement`]'s, so that each
/// kernel is written once, over [`Lanes`], and instantiated per (set, type). The type itself is the one-lane
/// vector (module `scalar`), the portable kernels and the tails of rows.
pub trait SimdFloat: Lanes<Scalar = Self> + RowElement<Lane = Self> + PartialOrd {
    /// 0.
    const ZERO: Self;
    /// −∞.
    const NEG_INFINITY: Self;
    /// The smallest input whose exp is a normal number: below it, exp gives 0.
    const EXP_NORMAL_LOW: Self;
    /// Inputs above this have an exp that overflows to +inf (they are clamped to it).
    const EXP_HIGH: Self;
    /// The largest input whose exp the front and gradient passes take: e^x·√2 is still finite,
    /// so the scaling by 2ⁿ cannot overflow ([`Lanes::ldexp_in_range`]). A row's terms exp(x −
    /// shift) are clamped to it: an element this far above its row's anchor makes the anchored
    /// sum too large anyway.
    const EXP_FINITE_HIGH: Self;
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
    /// within a fraction of an ulp (a Chebyshev fit, see `math::EXP_POLY_F32`).
    const EXP_POLY: &'static [Self];
    /// The most negative finite value.
    const LOWEST: Self;
    /// Coefficients 2/(2k+1), k = 1..=degree, of log((1+f)/(1−f))/s − 2 = Σ 2/(2k+1)·s²ᵏ with
    /// s = f/(2+f): enough for |s| ≤ 1/5 to a tenth of an ulp (see `math::log1p_unit`).
    const ATANH_TAYLOR: &'static [Self];
    /// Widens exactly.
    fn to_f64(self) -> f64;
    /// Narrows, rounding to nearest.
    fn from_f64(value: f64) -> Self;
}

/// Elements i..i + len (len ≤ LANES) of `p`, 0 in the lanes past them.
///
/// # Safety
/// The CPU must have `V`'s instruction set; the elements must be valid to read.
#[inline(always)]
pub(super) unsafe fn load_upto<V: Lanes>(p: *const V::Scalar, i: usize, len: usize) -> V {
    if len == V::LANES {
        V::load(p.add(i))
    } else {
        V::load_partial(p.add(i), len, V::Scalar::ZERO)
    }
}

/// Stores the first `len` ≤ LANES lanes of `value` to elements i..i + len of `p`.
///
/// # Safety
/// The CPU must have `V`'s instruction set; the elements must be valid to write.
#[inline(always)]
pub(super) unsafe fn store_upto<V: Lanes>(value: V, p: *mut V::Scalar, i: usize, len: usize) {
    if len == V::LANES {
        value.store(p.add(i))
    } else {
        value.store_partial(p.add(i), len)
    }
}
