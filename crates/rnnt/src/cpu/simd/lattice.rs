//! The α/β lattice's kernels: the log-space sum of a walk's steps ([`log_add_exp_slices`]) and,
//! for small lattices, the walk over probabilities (module `cpu::lattice::scaled`): the node
//! probabilities ([`probabilities`]) and the α and β walks frame by frame ([`frame_walks`]).
//!
//! # Exactness of the walk over probabilities
//!
//! The walk rescales the blank arcs into each frame by an exact power of two so that the largest
//! lies in [1, 2) before the frame's chain, the exponents kept apart. It keeps f64 precision
//! within two bounds, both checked here, on the way: every finite log-probability lies in
//! [[`MIN_LOG_PROB`], [`MAX_LOG_PROB`]] ([`probabilities`]), and every frame's nonzero values lie
//! within [`MIN_RELATIVE`] (2^−700) of its largest, which is at most [`MAX_FRAME_PEAK`] (2^60)
//! ([`frame_walks`]). Then every product of the walk is 0 or a normal number: a frame's largest
//! is at least 1 (its largest blank arc, rescaled, is), so its nonzero values are at least
//! 2^−700, and times a probability (at least e^−200 ≈ 2^−288.5) at least 2^−989; a blank arc into
//! the next frame is such a product, and at least 2^−989.5 of the largest of them, so it stays
//! normal through the rescaling too. So a value is 0 exactly when no path reaches the node, and
//! every value carries f64 precision. (Each product is checked after the fact: one that would have
//! underflowed had an operand that fails the check.) Where a check fails, the caller walks the
//! lattice in log space instead.

use crate::cpu::simd::math::{exp, log_add_exp};
use crate::cpu::simd::vector::{load_upto, store_upto, Lanes, SimdFloat};

/// The lowest finite log-probability walked in probability space (e^−200 ≈ 2^−288.5).
pub(crate) const MIN_LOG_PROB: f64 = -200.0;

/// The highest log-probability walked in probability space, 2^−10: log-probabilities given as
/// input need not be ≤ 0, but along a frame of P positions the values may grow by e^(P·this),
/// at most e^16 for the lattices small enough to be walked this way (`lattice::scaled::fits`).
pub(crate) const MAX_LOG_PROB: f64 = 1.0 / 1024.0;

/// out[i] = ln(e^a[i] + e^b[i]) ([`log_add_exp`] per element).
///
/// # Safety
/// The CPU must have `V`'s instruction set; `a`, `b` and `out` have one length.
#[inline(always)]
pub(super) unsafe fn log_add_exp_slices<V: Lanes>(
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

/// out[i] = e^log_probs[i] ([`exp`]: 0 for −inf); returns whether every finite log-probability
/// lies in [low, high] (for a walk over probabilities, [[`MIN_LOG_PROB`], [`MAX_LOG_PROB`]]: see
/// the module's exactness argument), checked on the way.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out` is as long as `log_probs`.
#[inline(always)]
pub(super) unsafe fn probabilities<V: Lanes>(
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
/// [`MAX_FRAME_PEAK`] (the frame bounds of the module's exactness argument).
///
/// # Safety
/// The CPU must have `V`'s instruction set; `blank`, `emit`, `alpha` and `beta` hold
/// `alpha_scale.len() · positions` elements; `beta_scale` is as long as `alpha_scale`.
#[inline(always)]
pub(super) unsafe fn frame_walks<V: Lanes>(
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
        // (The scalars' own `Lanes` arithmetic: `V::Scalar` is any `SimdFloat`; each multiply-add is
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
const MAX_FRAME_PEAK: f64 = f64::from_bits((1023 + 60) << 52);

/// The smallest nonzero value of a frame walked by [`frame_walks`], relative to its largest:
/// 2^−700.
const MIN_RELATIVE: f64 = f64::from_bits((1023 - 700) << 52);

/// The largest and the smallest nonzero of a frame's values, tracked along its chain (two
/// scalar operations a value, beside the chain).
struct Extremes<T> {
    largest: T,
    smallest: T,
}

impl<T: SimdFloat> Extremes<T> {
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
fn binary_exponent<T: SimdFloat>(x: T) -> i32 {
    let x = x.to_f64();
    if x == 0.0 {
        return 0;
    }
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// 2^k for |k| < 1000, exactly.
#[inline(always)]
fn power_of_two<T: SimdFloat>(k: i32) -> T {
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
