//! Elementary functions per lane, over [`Lanes`]: exp and its variants with cheaper clamps (the
//! hot loop of the front and gradient passes), ln of positive normal numbers (the front pass's row
//! sums), log1p on [0, 1] and the log-space sum ln(eᵃ + eᵇ) (the log-space lattice's step), with
//! the polynomial coefficients they evaluate; and [`map_in_place`], one of them over a slice. Both
//! logarithms reduce their argument to k·ln 2 + ln(1 + f) with small f and share
//! [`ln_of_reduced`].
//!
//! Every function is `#[inline(always)]` so that it is compiled inside the caller's
//! `#[target_feature]` entry point (see `entry_points!` in `dispatch`), where the vector methods
//! inline too. The other kernel files rely on the same rule.

use crate::cpu::simd::vector::{Lanes, SimdFloat};

/// eʳ ≈ Σ cₖ rᵏ on |r| ≤ ln2/2, degree 6: the Chebyshev fit of that degree (mpmath `chebyfit`
/// at 40 digits), rounded to f32. Its own error is 2·10⁻⁹ relative, 0.02 ulp; the exp's error
/// (tested: ≤ 2 ulp) is the rounding of its arithmetic. Taylor would need degree 7.
pub(super) const EXP_POLY_F32: [f32; 7] = [
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
pub(super) const EXP_POLY_F64: [f64; 12] = [
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
pub(super) const ATANH_COEFFICIENTS: [f64; 11] = {
    let mut out = [0.0; 11];
    let mut k = 0;
    while k < 11 {
        out[k] = 2.0 / (2 * k + 3) as f64;
        k += 1;
    }
    out
};

/// The first 4 of [`ATANH_COEFFICIENTS`] in f32: the truncation error (1/5)¹⁰/11 is 0.1 ulp.
pub(super) const ATANH_TAYLOR_F32: [f32; 4] = {
    let mut out = [0.0; 4];
    let mut k = 0;
    while k < 4 {
        out[k] = ATANH_COEFFICIENTS[k] as f32;
        k += 1;
    }
    out
};

/// eˣ per lane, within 2 ulp wherever the result is a normal number; 0 where it would be
/// subnormal or smaller (x below [`SimdFloat::EXP_NORMAL_LOW`], −inf included); +inf above the overflow
/// threshold; NaN for NaN.
///
/// Subnormal results are flushed to zero on purpose: producing one costs a microcode assist of
/// ~100 cycles on x86, and a row's −inf (masked) entries or a partial vector's padding lanes would
/// otherwise pay it on every call; no sum or gradient of the loss can see a value below 1e-38.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn exp<V: Lanes>(x: V) -> V {
    // Operand order keeps a NaN x (the second operand wins on x86).
    let clamped = V::splat(V::Scalar::EXP_HIGH).min(x);
    let low = V::splat(V::Scalar::EXP_NORMAL_LOW);
    exp_of_clamped(clamped, low).zero_where_below(x, low)
}

/// eˣ per lane for x ≤ 0 (−inf and NaN included), with [`exp`]'s accuracy and flush to 0, saving
/// its upper clamp and its care for results beyond the largest float.
///
/// Cody–Waite reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two so that n·ln2_hi is
/// exact; n rounded by adding and subtracting [`SimdFloat::ROUNDING_SHIFT`], two operations where a
/// rounding instruction costs three), the polynomial [`SimdFloat::EXP_POLY`] in r, and the scaling by
/// 2ⁿ in one rounding.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn exp_of_non_positive<V: Lanes>(x: V) -> V {
    exp_above(x, V::splat(V::Scalar::EXP_NORMAL_LOW))
}

/// eˣ per lane for x ≤ [`SimdFloat::EXP_FINITE_HIGH`], with 0 for x below `floor` (≥
/// [`SimdFloat::EXP_NORMAL_LOW`], so every result is 0 or a normal number): [`exp_of_non_positive`]
/// with a higher flush bound, for results that are scaled down afterwards and would otherwise
/// become subnormal there (each subnormal result costs a microcode assist of ~100 cycles). The
/// gradient pass calls it, its arguments x − shift being below 8 (see
/// [`RowStats`](super::RowStats)).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn exp_above<V: Lanes>(x: V, floor: V) -> V {
    exp_of_bounded(x, floor).zero_where_below(x, floor)
}

/// e^max(x, floor) per lane for x ≤ [`SimdFloat::EXP_HIGH`] and `floor` ≥
/// [`SimdFloat::EXP_NORMAL_LOW`] (NaN for NaN; +inf where it overflows): [`exp`]'s arithmetic.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn exp_of_clamped<V: Lanes>(x: V, floor: V) -> V {
    let (p, n) = exp_parts(x, floor);
    p.ldexp_normal(n)
}

/// e^max(x, floor) per lane for x ≤ [`SimdFloat::EXP_FINITE_HIGH`] and `floor` ≥
/// [`SimdFloat::EXP_NORMAL_LOW`] (NaN for NaN): [`exp_above`] without the final flush, for the
/// row sums of the front pass, where a term of e^floor ≈ 1e-38 (f32) in place of a smaller one is
/// far below the sum's rounding (the row maximum contributes 1), and the flush would cost two of
/// the exp's ~17 operations. Its results are normal numbers, which lets the scaling by 2ⁿ skip the
/// care for overflow ([`Lanes::ldexp_in_range`]).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn exp_of_bounded<V: Lanes>(x: V, floor: V) -> V {
    let (p, n) = exp_parts(x, floor);
    p.ldexp_in_range(n)
}

/// (p, n) with e^max(x, floor) = p·2ⁿ, p within [√½, √2] (NaN for NaN x, n NaN too) and n integral
/// (as a float), for x ≤ [`SimdFloat::EXP_HIGH`] and `floor` ≥ [`SimdFloat::EXP_NORMAL_LOW`].
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn exp_parts<V: Lanes>(x: V, floor: V) -> (V, V) {
    // Operand order keeps a NaN x. Clamping to the normal range keeps every intermediate normal.
    let clamped = floor.max(x);
    let shift = V::splat(V::Scalar::ROUNDING_SHIFT);
    let n = clamped
        .mul_add(V::splat(V::Scalar::LOG2E), shift)
        .sub(shift);
    let r = n.mul_add(V::splat(V::Scalar::MINUS_LN2_HI), clamped);
    let r = n.mul_add(V::splat(V::Scalar::MINUS_LN2_LO), r);
    let coefficients = V::Scalar::EXP_POLY;
    let mut p = V::splat(coefficients[coefficients.len() - 1]);
    for &c in coefficients[..coefficients.len() - 1].iter().rev() {
        p = p.mul_add(r, V::splat(c));
    }
    (p, n)
}

/// k·ln 2 + ln(1 + f) per lane, for integral k and f in [1/√2 − 1, ½] (so |s| ≤ ⅕ below),
/// within 1 ulp.
///
/// ln(1 + f) = 2·atanh(s) with s = f/(2 + f), written as f − (f²/2 − s·(f²/2 + R)) with
/// R = Σ 2/(2k+1)·s²ᵏ ([`SimdFloat::ATANH_TAYLOR`]), so that the large term f is exact and the
/// rounding errors fall on terms a tenth its size; k·ln 2 is added in two parts.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn ln_of_reduced<V: Lanes>(f: V, k: V) -> V {
    let two = V::splat(V::Scalar::from_f64(2.0));
    let half = V::splat(V::Scalar::from_f64(0.5));
    let zero = V::splat(V::Scalar::ZERO);
    let ln2_hi = zero.sub(V::splat(V::Scalar::MINUS_LN2_HI));
    let ln2_lo = zero.sub(V::splat(V::Scalar::MINUS_LN2_LO));
    let s = f.div(f.add(two));
    let w = s.mul(s);
    let coefficients = V::Scalar::ATANH_TAYLOR;
    let mut p = V::splat(coefficients[coefficients.len() - 1]);
    for &c in coefficients[..coefficients.len() - 1].iter().rev() {
        p = p.mul_add(w, V::splat(c));
    }
    let r = p.mul(w);
    let half_square = f.mul(f).mul(half);
    let small = k.mul_add(ln2_lo, s.mul(half_square.add(r)));
    k.mul_add(ln2_hi, f.sub(half_square.sub(small)))
}

/// ln x per lane for positive normal x within 2^±(emax − 1), within 1 ulp: x = m·2ᵉ with m in
/// [√½, √2] ([`Lanes::split_exponent`]), then [`ln_of_reduced`] with f = m − 1 (exact).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn ln<V: Lanes>(x: V) -> V {
    let (m, e) = x.split_exponent();
    ln_of_reduced(m.sub(V::splat(V::Scalar::from_f64(1.0))), e)
}

/// ln(1 + z) per lane for z in [0, 1], within 1 ulp (tested against libm); 0 for 0, NaN for NaN.
///
/// The reduction needs no table and no correction term: with k = round(z) (0 below ½, 1 above),
/// 1 + z = 2ᵏ·(1 + f) where f = (z − k)·(1 − k/2) is exact (Sterbenz for z − 1 when z > ½) and
/// lies in [−¼, ½]; then [`ln_of_reduced`].
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn log1p_unit<V: Lanes>(z: V) -> V {
    let one = V::splat(V::Scalar::from_f64(1.0));
    let minus_half = V::splat(V::Scalar::from_f64(-0.5));
    let shift = V::splat(V::Scalar::ROUNDING_SHIFT);
    let k = z.add(shift).sub(shift);
    let f = z.sub(k).mul(k.mul_add(minus_half, one));
    ln_of_reduced(f, k)
}

/// ln(eᵃ + eᵇ) per lane as max + ln(1 + e^(min − max)): exact for −inf operands (−inf for two,
/// never NaN), NaN when either operand is NaN or both are +inf; within 2 ulp of the same formula
/// in correctly rounded arithmetic where the result is not near 0.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn log_add_exp<V: Lanes>(a: V, b: V) -> V {
    // A NaN `a` ends up in `lo` and a NaN `b` in `hi` (on x86 the second operand wins), so either
    // reaches the result. Measuring the gap from a finite `hi` makes it −inf, not NaN, when both
    // operands are −inf: e^gap is then 0 and the result `hi` itself.
    let hi = a.max(b);
    let lo = b.min(a);
    let gap = lo.sub(hi.max(V::splat(V::Scalar::LOWEST)));
    // The gap is ≤ 0 (or NaN): the exp needs no upper clamp.
    hi.add(log1p_unit(exp_of_non_positive(gap)))
}

/// A function applied lane by lane by [`map_in_place`]. (A trait, not a closure: closures are not
/// compiled with the caller's `#[target_feature]`s.)
pub(super) trait LaneMap {
    /// What the unused lanes of a partial vector hold (inside the function's domain).
    const FILL: f64;
    /// The function.
    ///
    /// # Safety
    /// The CPU must have `V`'s instruction set.
    unsafe fn apply<V: Lanes>(x: V) -> V;
}

/// values[k] = M(values[k]), whole vectors then one partial vector.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn map_in_place<V: Lanes, M: LaneMap>(values: &mut [V::Scalar]) {
    let n = values.len();
    let body = n - n % V::LANES;
    let ptr = values.as_mut_ptr();
    let mut i = 0;
    while i < body {
        // SAFETY: i + LANES ≤ body ≤ n.
        M::apply(V::load(ptr.add(i))).store(ptr.add(i));
        i += V::LANES;
    }
    if body < n {
        let fill = V::Scalar::from_f64(M::FILL);
        // SAFETY: the partial load and store touch elements body..n only.
        M::apply(V::load_partial(ptr.add(body), n - body, fill))
            .store_partial(ptr.add(body), n - body);
    }
}

/// [`exp`] as a [`LaneMap`].
struct Exp;

impl LaneMap for Exp {
    const FILL: f64 = 0.0;
    #[inline(always)]
    unsafe fn apply<V: Lanes>(x: V) -> V {
        exp(x)
    }
}

/// [`ln`] as a [`LaneMap`] (for positive normal values).
struct Ln;

impl LaneMap for Ln {
    const FILL: f64 = 1.0;
    #[inline(always)]
    unsafe fn apply<V: Lanes>(x: V) -> V {
        ln(x)
    }
}

/// [`log1p_unit`] as a [`LaneMap`] (for values in [0, 1]).
struct Log1pUnit;

impl LaneMap for Log1pUnit {
    const FILL: f64 = 0.0;
    #[inline(always)]
    unsafe fn apply<V: Lanes>(x: V) -> V {
        log1p_unit(x)
    }
}

/// values[k] = exp(values[k]).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn exp_in_place<V: Lanes>(values: &mut [V::Scalar]) {
    map_in_place::<V, Exp>(values)
}

/// values[i] = ln(values[i]) ([`ln`] per element, so for positive normal values).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn ln_in_place<V: Lanes>(values: &mut [V::Scalar]) {
    map_in_place::<V, Ln>(values)
}

/// values[i] = ln(1 + values[i]) ([`log1p_unit`] per element, so for values in [0, 1]).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn log1p_unit_in_place<V: Lanes>(values: &mut [V::Scalar]) {
    map_in_place::<V, Log1pUnit>(values)
}
