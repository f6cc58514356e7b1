//! Logarithms over the vector interface: `ln` of positive normal numbers (the front pass's row
//! sums, with which [`normalise_scores`] turns a frame's scores into log-probabilities), `log1p`
//! on [0, 1] and the log-space sum ln(eᵃ + eᵇ) that the α/β recursions apply to every node. Both logarithms reduce their argument to k·ln 2 + ln(1 + f) with small f and
//! share [`ln_of_reduced`].
//!
//! Like [`lanes`](super::lanes), every function is `#[inline(always)]` so that it compiles inside
//! the caller's `#[target_feature]` entry point.

use crate::cpu::simd::lanes::{exp, exp_of_non_positive, map_in_place, LaneMap, Lanes};
use crate::cpu::simd::scalar::Real;

/// k·ln 2 + ln(1 + f) per lane, for integral k and f in [1/√2 − 1, ½] (so |s| ≤ ⅕ below),
/// within 1 ulp.
///
/// ln(1 + f) = 2·atanh(s) with s = f/(2 + f), written as f − (f²/2 − s·(f²/2 + R)) with
/// R = Σ 2/(2k+1)·s²ᵏ ([`Real::ATANH_TAYLOR`]), so that the large term f is exact and the
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
pub unsafe fn ln<V: Lanes>(x: V) -> V {
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
pub unsafe fn log1p_unit<V: Lanes>(z: V) -> V {
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
pub unsafe fn log_add_exp<V: Lanes>(a: V, b: V) -> V {
    // A NaN `a` ends up in `lo` and a NaN `b` in `hi` (on x86 the second operand wins), so either
    // reaches the result. Measuring the gap from a finite `hi` makes it −inf, not NaN, when both
    // operands are −inf: e^gap is then 0 and the result `hi` itself.
    let hi = a.max(b);
    let lo = b.min(a);
    let gap = lo.sub(hi.max(V::splat(V::Scalar::LOWEST)));
    // The gap is ≤ 0 (or NaN): the exp needs no upper clamp.
    hi.add(log1p_unit(exp_of_non_positive(gap)))
}

/// out[i] = ln(e^a[i] + e^b[i]) ([`log_add_exp`] per element).
///
/// # Safety
/// The CPU must have `V`'s instruction set; `a`, `b` and `out` have one length.
#[inline(always)]
pub unsafe fn log_add_exp_slices<V: Lanes>(
    a: &[V::Scalar],
    b: &[V::Scalar],
    out: &mut [V::Scalar],
) {
    debug_assert!(a.len() == out.len() && b.len() == out.len());
    let n = out.len();
    let body = n - n % V::LANES;
    let (a, b, out) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + LANES ≤ body ≤ n, the length of all three slices.
        log_add_exp(V::load(a.add(i)), V::load(b.add(i))).store(out.add(i));
        i += V::LANES;
    }
    if body < n {
        let tail = n - body;
        let ninf = V::Scalar::NEG_INFINITY;
        // SAFETY: the partial loads and store touch elements body..n only.
        let sum = log_add_exp(
            V::load_partial(a.add(body), tail, ninf),
            V::load_partial(b.add(body), tail, ninf),
        );
        sum.store_partial(out.add(body), tail);
    }
}

/// [`log1p_unit`] as a [`LaneMap`] (for values in [0, 1]).
pub struct Log1pUnit;

impl LaneMap for Log1pUnit {
    const FILL: f64 = 0.0;
    #[inline(always)]
    unsafe fn apply<V: Lanes>(x: V) -> V {
        log1p_unit(x)
    }
}

/// [`ln`] as a [`LaneMap`] (for positive normal values).
pub struct Ln;

impl LaneMap for Ln {
    const FILL: f64 = 1.0;
    #[inline(always)]
    unsafe fn apply<V: Lanes>(x: V) -> V {
        ln(x)
    }
}

/// values[i] = ln(1 + values[i]) ([`log1p_unit`] per element, so for values in [0, 1]).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn log1p_unit_in_place<V: Lanes>(values: &mut [V::Scalar]) {
    map_in_place::<V, Log1pUnit>(values)
}

/// values[i] = ln(values[i]) ([`ln`] per element, so for positive normal values).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn ln_in_place<V: Lanes>(values: &mut [V::Scalar]) {
    map_in_place::<V, Ln>(values)
}

/// A frame's node scores from its rows' statistics, in place. On entry `blank` and `emit` hold
/// each row's raw scores x[blank] and x[y] (−inf where there is no label), `shift` the row's
/// shift (its anchor or its maximum, see [`RowStats`](crate::cpu::simd::RowStats)) and `inv_sum`
/// its Σ exp(x − shift), at least 1; on return they hold the log-probabilities x − shift − ln Σ,
/// the shift and 1 / Σ. A masked row (shift −inf, all −inf) gets shift and 1 / Σ of 0, and its
/// scores stay −inf.
///
/// Vectorised, not left to the compiler: the crate's baseline target has no wide vectors, and a
/// logarithm and a division per row, done one row at a time, cost about as much as the row's
/// statistics on short rows.
///
/// # Safety
/// The CPU must have `V`'s instruction set; the four slices have one length and hold no NaN.
#[inline(always)]
pub unsafe fn normalise_scores<V: Lanes>(
    blank: &mut [V::Scalar],
    emit: &mut [V::Scalar],
    shift: &mut [V::Scalar],
    inv_sum: &mut [V::Scalar],
) {
    let n = blank.len();
    debug_assert!(emit.len() == n && shift.len() == n && inv_sum.len() == n);
    let pointers = [
        blank.as_mut_ptr(),
        emit.as_mut_ptr(),
        shift.as_mut_ptr(),
        inv_sum.as_mut_ptr(),
    ];
    let mut i = 0;
    while i < n {
        let len = (n - i).min(V::LANES);
        // SAFETY: the loads and stores touch elements i..i + len of each slice.
        let [blank, emit, max, sum] = pointers.map(|p| load_upto::<V>(p, i, len));
        let one = V::splat(V::Scalar::from_f64(1.0));
        let lowest = V::splat(V::Scalar::LOWEST);
        // A live row's sum is at least 1 (its shift's term); a masked row's 0 becomes 1.
        let sum = sum.max(one);
        let live_max = max.zero_where_below(max, lowest);
        let lse = live_max.add(ln(sum));
        let values = [
            blank.sub(lse),
            emit.sub(lse),
            live_max,
            one.div(sum).zero_where_below(max, lowest),
        ];
        for (value, p) in values.into_iter().zip(pointers) {
            store_upto(value, p, i, len);
        }
        i += len;
    }
}

/// The α and β walks over probabilities of a lattice of `positions` ≥ 1 label positions and
/// `alpha_scale.len()` ≥ 1 frames, in frame-major node layout (node (t,u) at t·positions + u):
/// `blank` and `emit` hold P(blank | t,u) and P(y[u+1] | t,u) (0 at u = U), all in [0, 1 + ε];
/// on return frame t of `alpha` holds α(t,·)·2^−alpha_scale[t] and frame t of `beta` holds
/// β(t,·)·2^−beta_scale[t], each frame's largest value at least 1 (or all 0).
///
/// Frame by frame, α and β in lock-step (α forwards, β backwards, two independent chains that
/// overlap): first the blank arcs into the frame from the frame before (after), a vector product
/// that also finds their largest, which a power of two then brings to [1, 2) (its exponent
/// kept); then the emission arcs along the frame, a chain of dependent multiply-adds,
/// α(t,u) = α(t,u−1)·P(y | t,u−1) + α(t−1,u)·P(blank | t−1,u), the blank arcs rescaled on the
/// way in, and the frame's largest and smallest nonzero values tracked. The chains are the
/// walk's cost (4 cycles a node for both walks), but they need no gathers, and the nodes stay in
/// the layout of the scores and the gradient.
///
/// Returns false, leaving the outputs unspecified, where a frame would not keep f64 precision:
/// a nonzero value below [`MIN_RELATIVE`] of its frame's largest, or a largest above
/// [`MAX_FRAME_PEAK`]. (With probabilities at least e^−200 or 0, every product of the walk is
/// then 0 or a normal number: see `lattice::scaled`.)
///
/// # Safety
/// The CPU must have `V`'s instruction set; `blank`, `emit`, `alpha` and `beta` hold
/// `alpha_scale.len() · positions` elements; `beta_scale` is as long as `alpha_scale`.
#[inline(always)]
pub unsafe fn frame_walks<V: Lanes>(
    blank: &[V::Scalar],
    emit: &[V::Scalar],
    positions: usize,
    alpha: &mut [V::Scalar],
    beta: &mut [V::Scalar],
    scales: (&mut [i32], &mut [i32]),
) -> bool {
    let (alpha_scale, beta_scale) = scales;
    let (frames, p) = (alpha_scale.len(), positions);
    let last = p - 1;
    debug_assert!(p >= 1 && frames >= 1 && beta_scale.len() == frames);
    debug_assert!([blank.len(), emit.len(), alpha.len(), beta.len()] == [frames * p; 4]);
    let zero = V::Scalar::ZERO;
    for step in 0..frames {
        // α frame t from frame t − 1 (from α(0,0) = 1 for the first); β frame τ from frame
        // τ + 1 (from β(T−1,U) = P(blank | T−1,U) for the last).
        let (t, tau) = (step, frames - 1 - step);
        let (done, rest) = alpha.split_at_mut(t * p);
        let a = &mut rest[..p];
        let (rest, done_b) = beta.split_at_mut((tau + 1) * p);
        let b = &mut rest[tau * p..];
        let (arcs_a, arcs_b) = if step == 0 {
            a.fill(zero);
            a[0] = V::Scalar::from_f64(1.0);
            b.fill(zero);
            b[last] = blank[tau * p + last];
            (a[0], b[last])
        } else {
            let into_a = products::<V>(&done[(t - 1) * p..], &blank[(t - 1) * p..t * p], a);
            let into_b = products::<V>(&done_b[..p], &blank[tau * p..(tau + 1) * p], b);
            (into_a, into_b)
        };
        let (ka, kb) = (binary_exponent(arcs_a), binary_exponent(arcs_b));
        let (scale_a, scale_b) = (
            power_of_two::<V::Scalar>(-ka),
            power_of_two::<V::Scalar>(-kb),
        );
        let (emit_a, emit_b) = (&emit[t * p..(t + 1) * p], &emit[tau * p..(tau + 1) * p]);
        // (The scalars' own `Lanes` arithmetic: `V::Scalar` is any `Real`; each multiply-add is
        // one instruction where the set has FMA, as both vector sets do.)
        let (mut x, mut y) = (Lanes::mul(a[0], scale_a), Lanes::mul(b[last], scale_b));
        (a[0], b[last]) = (x, y);
        let (mut extremes_a, mut extremes_b) = (Extremes::of(x), Extremes::of(y));
        for i in 1..p {
            x = Lanes::mul_add(x, emit_a[i - 1], Lanes::mul(a[i], scale_a));
            a[i] = x;
            y = Lanes::mul_add(y, emit_b[last - i], Lanes::mul(b[last - i], scale_b));
            b[last - i] = y;
            extremes_a.add(x);
            extremes_b.add(y);
        }
        if !(extremes_a.within_bounds() && extremes_b.within_bounds()) {
            return false;
        }
        alpha_scale[t] = ka + if step == 0 { 0 } else { alpha_scale[t - 1] };
        beta_scale[tau] = kb + if step == 0 { 0 } else { beta_scale[tau + 1] };
    }
    true
}

/// The largest nonzero value of a frame walked by [`frame_walks`], 2^60 (its blank arcs in
/// [1, 2), each value at most a frame's length of them, grown by e^(2^−10) a step).
pub const MAX_FRAME_PEAK: f64 = f64::from_bits((1023 + 60) << 52);

/// The smallest nonzero value of a frame walked by [`frame_walks`], relative to its largest:
/// 2^−700.
pub const MIN_RELATIVE: f64 = f64::from_bits((1023 - 700) << 52);

/// The largest and the smallest nonzero of a frame's values, tracked along its chain (two
/// scalar operations a value, beside the chain).
struct Extremes<T> {
    largest: T,
    smallest: T,
}

impl<T: Real> Extremes<T> {
    /// The extremes of one value.
    #[inline(always)]
    fn of(x: T) -> Self {
        let mut extremes = Extremes {
            largest: T::ZERO,
            smallest: T::from_f64(f64::INFINITY),
        };
        extremes.add(x);
        extremes
    }

    /// Takes in a value ≥ 0.
    #[inline(always)]
    fn add(&mut self, x: T) {
        // SAFETY: scalar arithmetic.
        unsafe {
            self.largest = Lanes::max(x, self.largest);
            let nonzero = if x > T::ZERO {
                x
            } else {
                T::from_f64(f64::INFINITY)
            };
            self.smallest = Lanes::min(nonzero, self.smallest);
        }
    }

    /// Whether the frame keeps f64 precision (see [`frame_walks`]); a frame of zeros does.
    #[inline(always)]
    fn within_bounds(&self) -> bool {
        let (largest, smallest) = (self.largest.to_f64(), self.smallest.to_f64());
        largest == 0.0 || (largest <= MAX_FRAME_PEAK && smallest >= largest * MIN_RELATIVE)
    }
}

/// The binary exponent k of a positive normal `x` (x in [2^k, 2^(k+1))), 0 for 0.
#[inline(always)]
fn binary_exponent<T: Real>(x: T) -> i32 {
    let x = x.to_f64();
    if x == 0.0 {
        return 0;
    }
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// 2^k for |k| < 1000, exactly.
#[inline(always)]
fn power_of_two<T: Real>(k: i32) -> T {
    T::from_f64(f64::from_bits(((1023 + k) as u64) << 52))
}

/// out[i] = a[i]·b[i] over `out` (a and b at least as long); returns the largest out[i] (0 for
/// none), for operands ≥ 0. With at least a vector of elements the last vector is a whole one
/// ending at the end (the output overlaps no operand), rather than a masked store: the frame's
/// chain reads this output next, and a masked store holds up any load from its 64 bytes until
/// it reaches the cache.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn products<V: Lanes>(a: &[V::Scalar], b: &[V::Scalar], out: &mut [V::Scalar]) -> V::Scalar {
    let n = out.len();
    debug_assert!(a.len() >= n && b.len() >= n);
    let (a, b, out) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    let mut largest = V::splat(V::Scalar::ZERO);
    let mut i = 0;
    while i < n {
        // SAFETY: elements at..at + len lie within the n of every slice (the output overlaps
        // neither operand).
        let (at, len) = vector_at::<V>(i, n);
        let value = load_upto::<V>(a, at, len).mul(load_upto(b, at, len));
        largest = value.max(largest);
        store_upto(value, out, at, len);
        i += V::LANES;
    }
    largest.reduce_max()
}

/// out[i] = e^log_probs[i] ([`exp`]: 0 for −inf); returns whether every finite log-probability
/// lies in [low, high] (the bounds of a walk over probabilities), checked on the way.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out` is as long as `log_probs`.
#[inline(always)]
pub unsafe fn probabilities<V: Lanes>(
    log_probs: &[V::Scalar],
    out: &mut [V::Scalar],
    low: V::Scalar,
    high: V::Scalar,
) -> bool {
    let n = log_probs.len();
    debug_assert!(out.len() == n);
    let (x, out) = (log_probs.as_ptr(), out.as_mut_ptr());
    let one = V::splat(V::Scalar::from_f64(1.0));
    let (lowest, low, high) = (V::splat(V::Scalar::LOWEST), V::splat(low), V::splat(high));
    let mut outside = V::splat(V::Scalar::ZERO);
    let mut i = 0;
    while i < n {
        // SAFETY: elements at..at + len lie within both slices (the output overlaps no input).
        let (at, len) = vector_at::<V>(i, n);
        let value = load_upto::<V>(x, at, len);
        store_upto(exp(value), out, at, len);
        // 1 in the lanes of a finite value below `low` or of any value above `high`.
        let finite = one.zero_where_below(value, lowest);
        let too_low = finite.sub(finite.zero_where_below(value, low));
        let too_high = one.sub(one.zero_where_below(high, value));
        outside = outside.max(too_low).max(too_high);
        i += V::LANES;
    }
    outside.reduce_max() == V::Scalar::ZERO
}

/// The vector of a loop over n elements in steps of LANES that starts at element i < n: (start,
/// length). With n ≥ LANES every vector is whole, the last one ending at n; below, one partial
/// vector.
#[inline(always)]
fn vector_at<V: Lanes>(i: usize, n: usize) -> (usize, usize) {
    if n >= V::LANES {
        (i.min(n - V::LANES), V::LANES)
    } else {
        (0, n)
    }
}

/// Elements i..i + len (len ≤ LANES) of `p`, 0 in the lanes past them.
///
/// # Safety
/// The CPU must have `V`'s instruction set; the elements must be valid to read.
#[inline(always)]
unsafe fn load_upto<V: Lanes>(p: *const V::Scalar, i: usize, len: usize) -> V {
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
unsafe fn store_upto<V: Lanes>(value: V, p: *mut V::Scalar, i: usize, len: usize) {
    if len == V::LANES {
        value.store(p.add(i))
    } else {
        value.store_partial(p.add(i), len)
    }
}
