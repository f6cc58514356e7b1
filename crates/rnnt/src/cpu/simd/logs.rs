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
/// β(t,·)·2^−beta_scale[t], each frame's largest value in [1, 2) (or all 0).
///
/// Frame by frame, α and β in lock-step (α forwards, β backwards, two independent chains that
/// overlap): first the blank arcs from the frame before (after), a vector product, then the
/// emission arcs along the frame, a chain of dependent multiply-adds, α(t,u) = α(t,u−1)·
/// P(y | t,u−1) + α(t−1,u)·P(blank | t−1,u), with each frame's largest value tracked on the way;
/// then each frame is brought to [1, 2) by a power of two, its exponent kept. The chains are
/// the walk's cost (4 cycles a node for both walks), but they need no gathers, and the nodes
/// stay in the layout of the scores and the gradient.
///
/// Returns false, leaving the outputs unspecified, where a frame would not keep f64 precision:
/// its largest value below [`MIN_FRAME_PEAK`] or above 1/[`MIN_FRAME_PEAK`], or a nonzero value
/// below [`MIN_RELATIVE`] of it. (With probabilities at least 2^−145 or 0, every product of the
/// walk is then 0 or a normal number: see `lattice::scaled`.)
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
    // α's first frame and β's last: emission arcs only, from α(0,0) = 1 and
    // β(T−1,U) = P(blank | T−1,U).
    let (first, end) = (0..p, (frames - 1) * p..frames * p);
    let (a, b) = (&mut alpha[first.clone()], &mut beta[end.clone()]);
    let (emit_first, emit_end) = (&emit[first], &emit[end.clone()]);
    a[0] = V::Scalar::from_f64(1.0);
    b[last] = blank[end.start + last];
    let (mut peak_a, mut peak_b) = (a[0], b[last]);
    for i in 1..p {
        // (The scalars' own `Lanes` arithmetic: `V::Scalar` is any `Real`.)
        a[i] = Lanes::mul(a[i - 1], emit_first[i - 1]);
        b[last - i] = Lanes::mul(b[last - i + 1], emit_end[last - i]);
        peak_a = Lanes::max(a[i], peak_a);
        peak_b = Lanes::max(b[last - i], peak_b);
    }
    let (Some(ka), Some(kb)) = (
        normalise_frame::<V>(a, peak_a),
        normalise_frame::<V>(b, peak_b),
    ) else {
        return false;
    };
    alpha_scale[0] = ka;
    beta_scale[frames - 1] = kb;
    for step in 1..frames {
        // α frame t from frame t − 1; β frame τ from frame τ + 1.
        let (t, tau) = (step, frames - 1 - step);
        let (done, rest) = alpha.split_at_mut(t * p);
        let (a, a_before) = (&mut rest[..p], &done[(t - 1) * p..]);
        let (rest, done) = beta.split_at_mut((tau + 1) * p);
        let (b, b_after) = (&mut rest[tau * p..], &done[..p]);
        products::<V>(a_before, &blank[(t - 1) * p..t * p], a);
        products::<V>(b_after, &blank[tau * p..(tau + 1) * p], b);
        let (emit_a, emit_b) = (&emit[t * p..(t + 1) * p], &emit[tau * p..(tau + 1) * p]);
        let (mut x, mut y) = (a[0], b[last]);
        let (mut peak_a, mut peak_b) = (x, y);
        for i in 1..p {
            // One instruction each where the set has FMA (both vector sets do).
            x = Lanes::mul_add(x, emit_a[i - 1], a[i]);
            a[i] = x;
            y = Lanes::mul_add(y, emit_b[last - i], b[last - i]);
            b[last - i] = y;
            peak_a = Lanes::max(x, peak_a);
            peak_b = Lanes::max(y, peak_b);
        }
        let (Some(ka), Some(kb)) = (
            normalise_frame::<V>(a, peak_a),
            normalise_frame::<V>(b, peak_b),
        ) else {
            return false;
        };
        alpha_scale[t] = alpha_scale[t - 1] + ka;
        beta_scale[tau] = beta_scale[tau + 1] + kb;
    }
    true
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

/// The smallest largest value of a frame walked by [`frame_walks`] (unless all are 0), 2^−300,
/// and the inverse, the largest.
pub const MIN_FRAME_PEAK: f64 = f64::from_bits((1023 - 300) << 52);

/// The smallest nonzero value of a frame walked by [`frame_walks`], relative to its largest:
/// 2^−400.
pub const MIN_RELATIVE: f64 = f64::from_bits((1023 - 400) << 52);

/// Brings `frame` (≥ 0, the largest `peak`) to [1, 2) by the power of two 2^−k, returning k (0 for
/// all zeros); None where the frame is out of [`frame_walks`]'s bounds.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn normalise_frame<V: Lanes>(frame: &mut [V::Scalar], peak: V::Scalar) -> Option<i32> {
    let peak = peak.to_f64();
    if peak == 0.0 {
        return Some(0);
    }
    if !(MIN_FRAME_PEAK..=1.0 / MIN_FRAME_PEAK).contains(&peak) {
        return None;
    }
    let k = ((peak.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let factor = V::Scalar::from_f64(f64::from_bits(((1023 - k) as u64) << 52));
    let bound = V::Scalar::from_f64(peak * MIN_RELATIVE);
    (!scale_checked::<V>(frame, factor, bound)).then_some(k)
}

/// out[i] = a[i]·b[i] over `out` (a and b at least as long), the last vector a whole one ending
/// at the end where there is one (see [`scale_checked`]).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn products<V: Lanes>(a: &[V::Scalar], b: &[V::Scalar], out: &mut [V::Scalar]) {
    let n = out.len();
    debug_assert!(a.len() >= n && b.len() >= n);
    let (a, b, out) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i < n {
        // SAFETY: elements at..at + len lie within the n of every slice (the output overlaps
        // neither operand).
        let (at, len) = vector_at::<V>(i, n);
        let value = load_upto::<V>(a, at, len).mul(load_upto(b, at, len));
        store_upto(value, out, at, len);
        i += V::LANES;
    }
}

/// values[i] ×= factor; returns whether a nonzero value (≥ 0) was below `bound` before.
///
/// With at least a vector of elements the last vector is a whole one ending at the end, read
/// before the vector it overlaps is written (so that no element is scaled twice), rather than a
/// masked store: a masked store holds up any load from its 64 bytes until it reaches the cache.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn scale_checked<V: Lanes>(
    values: &mut [V::Scalar],
    factor: V::Scalar,
    bound: V::Scalar,
) -> bool {
    let (factor, bound) = (V::splat(factor), V::splat(bound));
    let n = values.len();
    let p = values.as_mut_ptr();
    let mut below = V::splat(V::Scalar::ZERO);
    // SAFETY (all loads and stores): within the n elements.
    let (last, last_len) = vector_at::<V>(n.saturating_sub(1), n);
    let tail = load_upto::<V>(p, last, last_len);
    let mut i = 0;
    while i < n {
        let (at, len) = vector_at::<V>(i, n);
        let value = if at == last {
            tail
        } else {
            load_upto(p, at, len)
        };
        // The nonzero values below the bound, the others 0.
        below = value.sub(value.zero_where_below(value, bound)).max(below);
        store_upto(value.mul(factor), p, at, len);
        i += V::LANES;
    }
    below.reduce_max() > V::Scalar::ZERO
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
