//! The vector interface and the kernels written once over it: `exp`, the front pass's row
//! statistics and the gradient pass's row write.
//!
//! Every function here is `#[inline(always)]` so that it is compiled inside the caller's
//! `#[target_feature]` entry point (see `avx2::entry`), where the vector methods inline too.

use crate::cpu::simd::scalar::Real;

/// A vector of `LANES` floats and the operations the kernels need.
///
/// # Safety
/// Implementations may use instructions the CPU lacks: every method is `unsafe` and may only be
/// called on a CPU that has the instruction set (the dispatcher checks it). Pointer arguments
/// follow `ptr::read_unaligned` / `ptr::write_unaligned` rules for `LANES` elements. (This
/// section is the `# Safety` of every method.)
#[allow(clippy::missing_safety_doc)]
pub trait Lanes: Copy {
    /// The element type.
    type Scalar: Real;
    /// Elements per vector.
    const LANES: usize;
    /// Every lane `x`.
    unsafe fn splat(x: Self::Scalar) -> Self;
    /// Loads `LANES` elements from `ptr` (any alignment).
    unsafe fn load(ptr: *const Self::Scalar) -> Self;
    /// Stores `LANES` elements at `ptr` (any alignment).
    unsafe fn store(self, ptr: *mut Self::Scalar);
    /// Stores `LANES` elements at `ptr`, aligned to the vector's size, bypassing the caches where
    /// the set allows (a plain store elsewhere).
    unsafe fn stream(self, ptr: *mut Self::Scalar);
    /// self + other.
    unsafe fn add(self, other: Self) -> Self;
    /// self − other.
    unsafe fn sub(self, other: Self) -> Self;
    /// self × other.
    unsafe fn mul(self, other: Self) -> Self;
    /// self × a + b, rounded once.
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    /// if self > other { self } else { other } per lane (x86 `max` semantics: a NaN in either
    /// gives `other`, or NaN on sets that propagate it).
    unsafe fn max(self, other: Self) -> Self;
    /// if self < other { self } else { other } per lane (same NaN rule as [`Lanes::max`]).
    unsafe fn min(self, other: Self) -> Self;
    /// Rounds to the nearest integer (ties to even).
    unsafe fn round(self) -> Self;
    /// self × 2ⁿ for integral `n` in [−(2·emax+60), 2·emax], rounded once (subnormal results
    /// included); NaN stays NaN.
    unsafe fn ldexp(self, n: Self) -> Self;
    /// The largest lane (a NaN lane may or may not win).
    unsafe fn reduce_max(self) -> Self::Scalar;
    /// The sum of the lanes, in f64.
    unsafe fn reduce_sum(self) -> f64;
}

/// eˣ per lane, within a few ulp over the whole range: 0 below the smallest subnormal result
/// (−inf included), +inf above the overflow threshold, NaN for NaN.
///
/// Cody–Waite reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two so that n·ln2_hi is
/// exact), a Taylor polynomial in r of the type's degree, and the scaling by 2ⁿ in one rounding.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn exp<V: Lanes>(x: V) -> V {
    let lo = V::splat(V::Scalar::EXP_LOW);
    let hi = V::splat(V::Scalar::EXP_HIGH);
    // Operand order keeps a NaN x (the second operand wins on x86).
    let x = hi.min(lo.max(x));
    let n = x.mul(V::splat(V::Scalar::LOG2E)).round();
    let r = n.mul_add(V::splat(V::Scalar::MINUS_LN2_HI), x);
    let r = n.mul_add(V::splat(V::Scalar::MINUS_LN2_LO), r);
    let coefficients = V::Scalar::EXP_TAYLOR;
    let mut p = V::splat(coefficients[coefficients.len() - 1]);
    for &c in coefficients[..coefficients.len() - 1].iter().rev() {
        p = p.mul_add(r, V::splat(c));
    }
    p.ldexp(n)
}

/// The front pass's statistics of one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    /// The row's maximum (+inf if any element is +inf; −inf for an empty or all −inf row).
    pub max: f64,
    /// Σ exp(x − max) over the row; 0 when max is −inf; NaN exactly when the row holds a NaN or
    /// +inf.
    pub sum: f64,
}

/// Maximum and Σ exp(x − max) of `row`: two passes, the second over a row the first left in L1.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn row_stats<V: Lanes>(row: &[V::Scalar]) -> RowStats {
    let lanes = V::LANES;
    let body = row.len() - row.len() % lanes;
    let ptr = row.as_ptr();
    let mut max_a = V::splat(V::Scalar::NEG_INFINITY);
    let mut max_b = max_a;
    let mut i = 0;
    while i + 2 * lanes <= body {
        // SAFETY: i + 2·lanes ≤ body ≤ row.len().
        max_a = V::load(ptr.add(i)).max(max_a);
        max_b = V::load(ptr.add(i + lanes)).max(max_b);
        i += 2 * lanes;
    }
    if i < body {
        // SAFETY: i + lanes = body ≤ row.len().
        max_a = V::load(ptr.add(i)).max(max_a);
    }
    let mut max = max_a.max(max_b).reduce_max().to_f64();
    for &x in &row[body..] {
        let x = x.to_f64();
        if x > max || x.is_nan() {
            max = x;
        }
    }
    if max.is_nan() || max == f64::INFINITY {
        return RowStats { max, sum: f64::NAN };
    }
    if max == f64::NEG_INFINITY {
        let nan = row.iter().any(|x| x.to_f64().is_nan());
        let sum = if nan { f64::NAN } else { 0.0 };
        return RowStats { max, sum };
    }
    // `max` is one of the row's elements, so it converts back exactly.
    let shift = V::Scalar::from_f64(max);
    let shift_v = V::splat(shift);
    let mut sum_a = V::splat(V::Scalar::ZERO);
    let mut sum_b = sum_a;
    let mut i = 0;
    while i + 2 * lanes <= body {
        // SAFETY: as in the first pass.
        sum_a = sum_a.add(exp(V::load(ptr.add(i)).sub(shift_v)));
        sum_b = sum_b.add(exp(V::load(ptr.add(i + lanes)).sub(shift_v)));
        i += 2 * lanes;
    }
    if i < body {
        // SAFETY: as in the first pass.
        sum_a = sum_a.add(exp(V::load(ptr.add(i)).sub(shift_v)));
    }
    let mut sum = sum_a.add(sum_b).reduce_sum();
    for &x in &row[body..] {
        sum += exp(x.sub(shift)).to_f64();
    }
    RowStats { max, sum }
}

/// What the gradient pass writes into one row: out[k] = scale · clip(coef · exp(x[k] − lse) −
/// arc(k)), with arc(k) the given occupancies at their indices and 0 elsewhere, and clip the
/// clamp to [−clip, clip].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradRow {
    /// The row's log-sum-exp (finite when `coef` > 0).
    pub lse: f64,
    /// The node's total (scaled) occupancy; 0 skips the softmax term.
    pub coef: f64,
    /// The item's upstream gradient.
    pub scale: f64,
    /// The clip bound; +inf for none.
    pub clip: f64,
    /// (index, occupancy) of the arcs leaving the node; an index ≥ the row length is no arc.
    pub arcs: [(usize, f64); 2],
}

impl GradRow {
    /// A row of zeros (no softmax term, no arcs).
    pub const ZERO: GradRow = GradRow {
        lse: 0.0,
        coef: 0.0,
        scale: 0.0,
        clip: f64::INFINITY,
        arcs: [(usize::MAX, 0.0); 2],
    };

    /// The exact (f64) value of element `k` whose input is `x`.
    #[inline]
    pub fn element(&self, k: usize, x: f64) -> f64 {
        let softmax = if self.coef > 0.0 {
            self.coef * (x - self.lse).exp()
        } else {
            0.0
        };
        let arc: f64 = self
            .arcs
            .iter()
            .filter(|(index, _)| *index == k)
            .map(|(_, occupancy)| occupancy)
            .sum();
        self.scale * (softmax - arc).clamp(-self.clip, self.clip)
    }
}

/// Writes the gradient row `out` (see [`GradRow`]) from the input row `row`. With `stream`, the
/// aligned middle of the row is written with [`Lanes::stream`].
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out.len() ≥ row.len()`.
#[inline(always)]
pub unsafe fn grad_row<V: Lanes>(
    row: &[V::Scalar],
    out: &mut [V::Scalar],
    params: &GradRow,
    stream: bool,
) {
    let n = row.len();
    let head = if stream {
        let align = V::LANES * std::mem::size_of::<V::Scalar>();
        let misaligned = out.as_ptr() as usize % align;
        (((align - misaligned) % align) / std::mem::size_of::<V::Scalar>()).min(n)
    } else {
        0
    };
    let body_end = head + (n - head) / V::LANES * V::LANES;
    grad_span::<V::Scalar>(row, out, 0, head, params, false);
    grad_span::<V>(row, out, head, body_end, params, stream);
    grad_span::<V::Scalar>(row, out, body_end, n, params, false);
}

/// [`grad_row`] over `start..end`, a whole number of vectors.
#[inline(always)]
unsafe fn grad_span<V: Lanes>(
    row: &[V::Scalar],
    out: &mut [V::Scalar],
    start: usize,
    end: usize,
    params: &GradRow,
    stream: bool,
) {
    const MAX_LANES: usize = 16;
    debug_assert!(V::LANES <= MAX_LANES && end <= row.len() && row.len() <= out.len());
    let lse_hi = V::Scalar::from_f64(params.lse);
    let lse_lo = V::splat(V::Scalar::from_f64(params.lse - lse_hi.to_f64()));
    let lse_hi = V::splat(lse_hi);
    let coef = V::splat(V::Scalar::from_f64(params.coef));
    let scale = V::splat(V::Scalar::from_f64(params.scale));
    let clip = V::splat(V::Scalar::from_f64(params.clip));
    let softmax = params.coef > 0.0;
    let (input, output) = (row.as_ptr(), out.as_mut_ptr());
    let mut i = start;
    while i < end {
        let mut g = if softmax {
            // SAFETY: i + LANES ≤ end ≤ row.len().
            let x = V::load(input.add(i));
            clip.min(exp(x.sub(lse_hi).sub(lse_lo)).mul(coef))
                .mul(scale)
        } else {
            V::splat(V::Scalar::ZERO)
        };
        if params
            .arcs
            .iter()
            .any(|&(k, _)| (i..i + V::LANES).contains(&k))
        {
            let mut lanes = [V::Scalar::ZERO; MAX_LANES];
            g.store(lanes.as_mut_ptr());
            for (k, lane) in (i..i + V::LANES).zip(&mut lanes) {
                if params.arcs.iter().any(|&(arc, _)| arc == k) {
                    *lane = V::Scalar::from_f64(params.element(k, row[k].to_f64()));
                }
            }
            g = V::load(lanes.as_ptr());
        }
        // SAFETY: i + LANES ≤ end ≤ out.len(); when streaming, `grad_row` aligned `i`.
        if stream {
            g.stream(output.add(i));
        } else {
            g.store(output.add(i));
        }
        i += V::LANES;
    }
}

/// out[k] = exp(x[k]).
///
/// # Safety
/// The CPU must have `V`'s instruction set; the slices have equal lengths.
#[inline(always)]
pub unsafe fn exp_slice<V: Lanes>(x: &[V::Scalar], out: &mut [V::Scalar]) {
    let body = x.len() - x.len() % V::LANES;
    let mut i = 0;
    while i < body {
        // SAFETY: i + LANES ≤ body ≤ both lengths.
        exp(V::load(x.as_ptr().add(i))).store(out.as_mut_ptr().add(i));
        i += V::LANES;
    }
    for k in body..x.len() {
        out[k] = exp(x[k]);
    }
}
