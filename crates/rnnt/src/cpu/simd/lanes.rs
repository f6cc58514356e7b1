//! The vector interface and the kernels written once over it: `exp`, the front pass's row
//! statistics and the gradient pass's row write.
//!
//! Every function here is `#[inline(always)]` so that it is compiled inside the caller's
//! `#[target_feature]` entry point (see `avx2::entry`), where the vector methods inline too.

use crate::cpu::simd::scalar::Real;
use crate::cpu::simd::{prefetch, prefetch_to_l2};

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

/// eˣ per lane, within 2 ulp wherever the result is a normal number; 0 where it would be
/// subnormal or smaller (x below [`Real::EXP_NORMAL_LOW`], −inf included); +inf above the overflow
/// threshold; NaN for NaN.
///
/// Subnormal results are flushed to zero on purpose: producing one costs a microcode assist of
/// ~100 cycles on x86, and a row's −inf (masked) entries or a partial vector's padding lanes would
/// otherwise pay it on every call; no sum or gradient of the loss can see a value below 1e-38.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn exp<V: Lanes>(x: V) -> V {
    // Operand order keeps a NaN x (the second operand wins on x86).
    let clamped = V::splat(V::Scalar::EXP_HIGH).min(x);
    exp_of_non_positive(clamped).zero_where_below(x, V::splat(V::Scalar::EXP_NORMAL_LOW))
}

/// eˣ per lane for x ≤ [`Real::EXP_HIGH`] (−inf and NaN included), with [`exp`]'s accuracy and
/// flush to 0; the gradient pass calls it directly, its arguments x − shift being below 8 (see
/// [`RowStats`]), saving the upper clamp.
///
/// Cody–Waite reduction x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two so that n·ln2_hi is
/// exact; n rounded by adding and subtracting [`Real::ROUNDING_SHIFT`], two operations where a
/// rounding instruction costs three), the polynomial [`Real::EXP_POLY`] in r, and the scaling by
/// 2ⁿ in one rounding.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn exp_of_non_positive<V: Lanes>(x: V) -> V {
    exp_above(x, V::splat(V::Scalar::EXP_NORMAL_LOW))
}

/// eˣ per lane for x ≤ [`Real::EXP_HIGH`], with 0 for x below `floor` (≥
/// [`Real::EXP_NORMAL_LOW`], so every result is 0 or a normal number): [`exp_of_non_positive`]
/// with a higher flush bound, for results that are scaled down afterwards and would otherwise
/// become subnormal there (each subnormal result costs a microcode assist of ~100 cycles).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn exp_above<V: Lanes>(x: V, floor: V) -> V {
    exp_of_clamped(x, floor).zero_where_below(x, floor)
}

/// e^max(x, floor) per lane for x ≤ [`Real::EXP_HIGH`] and `floor` ≥ [`Real::EXP_NORMAL_LOW`]
/// (NaN for NaN): [`exp_above`] without the final flush, for the row sums of the front pass,
/// where a term of e^floor ≈ 1e-38 (f32) in place of a smaller one is far below the sum's
/// rounding (the row maximum contributes 1), and the flush would cost two of the exp's ~17
/// operations.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn exp_of_clamped<V: Lanes>(x: V, floor: V) -> V {
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
    p.ldexp(n)
}

/// How far ahead of the current element the row kernels prefetch into L1, in bytes, so that rows
/// arrive before they are needed even across the 4 KiB page boundaries where the hardware
/// prefetcher stops. With the L2 prefetch further ahead, 1 KiB measured best of 0.5, 1, 2 and
/// 3 KiB on S3 and S6 (the lines come from L2 by then, so less lead is needed).
const PREFETCH_BYTES: usize = 1024;

/// How far ahead the row kernels also prefetch into L2 only, in bytes. The L2 requests leave the
/// L1 fill buffers free for the near prefetches and the loads; with both, a core keeps more
/// lines in flight than either gives (measured on the 2-core benchmark machine: gradient pass
/// 12% and front pass 5% faster on S3; 3 to 6 KiB measured alike, 8 KiB slower).
const L2_PREFETCH_BYTES: usize = 4096;

/// [`PREFETCH_BYTES`] and [`L2_PREFETCH_BYTES`] in elements of `T`.
#[inline(always)]
fn prefetch_distances<T>() -> (usize, usize) {
    let size = std::mem::size_of::<T>();
    (PREFETCH_BYTES / size, L2_PREFETCH_BYTES / size)
}

/// The front pass's statistics of one row: its terms exp(x − shift), summed.
///
/// For a short row (at most two vectors: S1's 29 f32), the shift is the row's anchor, the larger
/// of two of its elements that the caller names ([`ScoreColumns`]: the blank and the next
/// label), wherever Σ exp(x − anchor) is at most [`ANCHORED_SUM_HIGH`]: one
/// pass over the row, with no maximum to find (its horizontal reduction is much of a short row's
/// work). Elsewhere (longer rows, no anchor, another element well above it, masked rows,
/// non-finite values) it is the row's maximum, the classic two passes. Either way the shift's
/// own term is exactly 1, so the sum is at least 1; and where the anchor is the maximum (the
/// blank or the label dominates: the nodes whose scores weigh in the loss), the bits are the
/// maximum's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    /// The anchor or the row's maximum (+inf if any element is +inf; −inf for an empty or all
    /// −inf row).
    pub shift: f64,
    /// Σ exp(x − shift) over the row (terms below the smallest normal number, −inf included,
    /// may count as about that number: far below the sum's rounding, as the shift's term is 1);
    /// 0 when the shift is −inf; NaN exactly when the row holds a NaN or +inf.
    pub sum: f64,
}

impl RowStats {
    /// The statistics of an empty row.
    pub const EMPTY: RowStats = RowStats {
        shift: f64::NEG_INFINITY,
        sum: 0.0,
    };

    /// The statistics shifted by `anchor` with the sum `sum`, if that is at most
    /// [`ANCHORED_SUM_HIGH`] (never for a NaN sum).
    #[inline(always)]
    fn anchored(anchor: f64, sum: f64) -> Option<RowStats> {
        (sum <= ANCHORED_SUM_HIGH).then_some(RowStats { shift: anchor, sum })
    }
}

/// The largest Σ exp(x − anchor) of a row shifted by its anchor, 2¹¹ (the anchor's probability
/// is then at least 2⁻¹¹). Every x − anchor is then below ln 2¹¹ < 8, where its rounding to f32
/// is within 2⁻²² (a relative error of 2.4e-7 in its term): the large terms are about as exact
/// as with the maximum as shift, whose arguments near 0 are exact. (A larger bound would let
/// that rounding grow with the spread: 4e-6 at e^69.)
pub const ANCHORED_SUM_HIGH: f64 = 2048.0;

/// The two columns of each row whose scores the front pass keeps, its blank and its next label,
/// which are also the row's anchor candidates (see [`RowStats`]): row r's anchor is the larger of
/// its elements at `blank` and at `labels[r]` (a NaN loses; `blank`'s alone for rows beyond the
/// labels).
#[derive(Debug, Clone, Copy)]
pub struct ScoreColumns<'a> {
    /// The blank's column, in every row.
    pub blank: usize,
    /// Row r's label column, for the first `labels.len()` rows.
    pub labels: &'a [u32],
}

impl ScoreColumns<'_> {
    /// Row r's scores from its elements `row`: [blank, label] (−inf for a row without label).
    ///
    /// # Panics
    /// If a column is outside `row`.
    #[inline(always)]
    pub fn scores<T: Real>(&self, row: &[T], r: usize) -> [f64; 2] {
        self.scores_of(r, |k| row[k].to_f64())
    }

    /// Row r's scores [blank, label] with `element`(k) its element k as f64 (for element types
    /// without vector kernels).
    #[inline(always)]
    pub fn scores_of(&self, r: usize, element: impl Fn(usize) -> f64) -> [f64; 2] {
        let label = self
            .labels
            .get(r)
            .map_or(f64::NEG_INFINITY, |&y| element(y as usize));
        [element(self.blank), label]
    }

    /// The anchor of a row with the scores `[blank, label]`: `f64::max`, not a comparison and a
    /// branch, since which one wins is as good as random from row to row, and a mispredicted
    /// branch costs as much as the row's exps. (A NaN loses; either value converts back
    /// exactly.)
    #[inline(always)]
    pub fn anchor<T: Real>([blank, label]: [f64; 2]) -> T {
        T::from_f64(blank.max(label))
    }
}

/// Where the front pass's frame kernel ([`frame_scores`]) writes each row's results, one slot
/// per row in each.
#[derive(Debug)]
pub struct FrameScores<'a> {
    /// The row's blank score x[blank].
    pub blank: &'a mut [f64],
    /// The row's label score x[y] (−inf for a row without label).
    pub emit: &'a mut [f64],
    /// [`RowStats::shift`].
    pub shift: &'a mut [f64],
    /// [`RowStats::sum`].
    pub sum: &'a mut [f64],
}

impl FrameScores<'_> {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.shift.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.shift.is_empty()
    }

    /// Writes row r's results; returns whether the row was finite (its sum not NaN).
    #[inline(always)]
    pub(crate) fn set(&mut self, r: usize, [blank, label]: [f64; 2], stats: RowStats) -> bool {
        self.blank[r] = blank;
        self.emit[r] = label;
        self.shift[r] = stats.shift;
        self.sum[r] = stats.sum;
        !stats.sum.is_nan()
    }
}

/// The statistics of `row` (see [`RowStats`]): for a short row with a finite `anchor` (one of its
/// elements), first one pass for the sum shifted by it, and only where that sum is too large
/// (or NaN), the maximum and the sum shifted by it, two more passes over a row the first left in
/// L1; for others, the latter alone. Unless `exps` is null, the terms exp(x − shift) (clamped at
/// the exp's flush bound, not flushed) are also stored there, when the shift is finite (nothing
/// of use is stored otherwise).
///
/// # Safety
/// The CPU must have `V`'s instruction set; `exps` is null or valid for `row.len()` writes.
#[inline(always)]
pub unsafe fn row_stats<V: Lanes>(
    row: &[V::Scalar],
    exps: *mut V::Scalar,
    anchor: Option<V::Scalar>,
) -> RowStats {
    let short = row.len() <= 2 * V::LANES;
    if let Some(anchor) = anchor.filter(|a| short && a.to_f64().is_finite()) {
        let sum = sum_of_exps::<V>(row, anchor, exps);
        if let Some(stats) = RowStats::anchored(anchor.to_f64(), sum) {
            return stats;
        }
    }
    shifted_by_max::<V>(row, exps)
}

/// Maximum and Σ exp(x − max) of `row`: two passes, the second over a row the first left in L1
/// (storing the terms in `exps` like [`row_stats`]).
///
/// # Safety
/// As [`row_stats`].
#[inline(always)]
unsafe fn shifted_by_max<V: Lanes>(row: &[V::Scalar], exps: *mut V::Scalar) -> RowStats {
    let lanes = V::LANES;
    let body = row.len() - row.len() % lanes;
    let ptr = row.as_ptr();
    let mut max_a = V::splat(V::Scalar::NEG_INFINITY);
    let mut max_b = max_a;
    let mut i = 0;
    let (near, _) = prefetch_distances::<V::Scalar>();
    while i + 2 * lanes <= body {
        prefetch(ptr.wrapping_add(i + near));
        prefetch(ptr.wrapping_add(i + lanes + near));
        // SAFETY: i + 2·lanes ≤ body ≤ row.len().
        max_a = V::load(ptr.add(i)).max(max_a);
        max_b = V::load(ptr.add(i + lanes)).max(max_b);
        i += 2 * lanes;
    }
    if i < body {
        // SAFETY: i + lanes = body ≤ row.len().
        max_a = V::load(ptr.add(i)).max(max_a);
    }
    let tail = row.len() - body;
    if tail > 0 {
        // SAFETY: the partial load touches row[body..] only.
        max_b = V::load_partial(ptr.add(body), tail, V::Scalar::NEG_INFINITY).max(max_b);
    }
    let max = max_a.max(max_b).reduce_max().to_f64();
    if max.is_nan() || max == f64::INFINITY {
        return RowStats {
            shift: max,
            sum: f64::NAN,
        };
    }
    if max == f64::NEG_INFINITY {
        let nan = row.iter().any(|x| x.to_f64().is_nan());
        let sum = if nan { f64::NAN } else { 0.0 };
        return RowStats { shift: max, sum };
    }
    // `max` is one of the row's elements, so it converts back exactly.
    let sum = sum_of_exps::<V>(row, V::Scalar::from_f64(max), exps);
    RowStats { shift: max, sum }
}

/// Σ exp(x − shift) over `row` for a finite `shift`, storing the terms (clamped at the exp's
/// flush bound, not flushed) in `exps` unless it is null. Two running sums, the second taking
/// the partial tail vector (whose −inf fill lanes each add e^floor, ≈ 1e-38 in f32, far below
/// the sum's rounding).
///
/// # Safety
/// As [`row_stats`].
#[inline(always)]
unsafe fn sum_of_exps<V: Lanes>(row: &[V::Scalar], shift: V::Scalar, exps: *mut V::Scalar) -> f64 {
    let lanes = V::LANES;
    let body = row.len() - row.len() % lanes;
    let ptr = row.as_ptr();
    let shift = V::splat(shift);
    let mut sum_a = V::splat(V::Scalar::ZERO);
    let mut sum_b = sum_a;
    let mut i = 0;
    let (near, far) = prefetch_distances::<V::Scalar>();
    while i + 2 * lanes <= body {
        prefetch(ptr.wrapping_add(i + near));
        prefetch(ptr.wrapping_add(i + lanes + near));
        prefetch_to_l2(ptr.wrapping_add(i + far));
        prefetch_to_l2(ptr.wrapping_add(i + lanes + far));
        // SAFETY: i + 2·lanes ≤ body ≤ row.len(); `exps` has room for the row.
        let a = row_term(V::load(ptr.add(i)), shift);
        let b = row_term(V::load(ptr.add(i + lanes)), shift);
        if !exps.is_null() {
            a.store(exps.add(i));
            b.store(exps.add(i + lanes));
        }
        sum_a = sum_a.add(a);
        sum_b = sum_b.add(b);
        i += 2 * lanes;
    }
    if i < body {
        // SAFETY: i + lanes = body ≤ row.len().
        let a = row_term(V::load(ptr.add(i)), shift);
        if !exps.is_null() {
            a.store(exps.add(i));
        }
        sum_a = sum_a.add(a);
    }
    let tail = row.len() - body;
    if tail > 0 {
        // SAFETY: the partial load and store touch row[body..] only.
        let x = V::load_partial(ptr.add(body), tail, V::Scalar::NEG_INFINITY);
        let b = row_term(x, shift);
        if !exps.is_null() {
            b.store_partial(exps.add(body), tail);
        }
        sum_b = sum_b.add(b);
    }
    sum_a.add(sum_b).reduce_sum()
}

/// A row's terms exp(x − shift), clamped at the exp's flush bound. The argument is first clamped
/// to [`Real::EXP_HIGH`], so that an element far above an anchor (or +inf) gives an infinite
/// term, and so sum, never the exp's garbage beyond its domain (a cheaper guard than a maximum).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn row_term<V: Lanes>(x: V, shift: V) -> V {
    // Operand order keeps a NaN argument.
    let argument = V::splat(V::Scalar::EXP_HIGH).min(x.sub(shift));
    exp_of_clamped(argument, V::splat(V::Scalar::EXP_NORMAL_LOW))
}

/// The front pass's kernel for one frame: for each of the `out.len()` consecutive rows of `len`
/// elements at the start of `rows`, its [`row_stats`] (short rows anchored as `columns` says) and
/// its two scores, written into `out`; with `exps`, each row's terms are also stored at the
/// row's place there. One call per frame (the dispatch and the call are paid once, not per row,
/// which shows when rows are short), and the row's results go where the front pass keeps them,
/// with no array of per-row statistics between. Returns false if a row holds a NaN or +inf (its
/// sum is NaN).
///
/// The scores of a long row are read after its statistics, from the lines they brought into L1
/// (read first, each would wait for memory); a short row's are its anchor, read first.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `rows.len() ≥ out.len() · len`, and so is
/// `exps.len()` when given; `out`'s slices are equally long. (The columns are checked.)
#[inline(always)]
pub unsafe fn frame_scores<V: Lanes>(
    rows: &[V::Scalar],
    len: usize,
    mut out: FrameScores<'_>,
    exps: Option<&mut [V::Scalar]>,
    columns: ScoreColumns<'_>,
) -> bool {
    let n = out.len();
    debug_assert!(rows.len() >= n * len);
    debug_assert!(exps.as_ref().is_none_or(|e| e.len() >= n * len));
    let exps = exps.map_or(std::ptr::null_mut(), |e| e.as_mut_ptr());
    if V::LANES < len && len < 2 * V::LANES {
        return two_vector_frame_scores::<V>(rows.as_ptr(), len, out, exps, columns);
    }
    let short = len <= 2 * V::LANES;
    let mut finite = true;
    for r in 0..n {
        // SAFETY: the caller passes n rows of `len`.
        let row = rows.get_unchecked(r * len..(r + 1) * len);
        let row_exps = offset_or_null(exps, r * len);
        let (scores, stats) = if short {
            anchored_row_stats::<V>(row, r, row_exps, columns)
        } else {
            let stats = row_stats::<V>(row, row_exps, None);
            (columns.scores(row, r), stats)
        };
        finite &= out.set(r, scores, stats);
    }
    finite
}

/// Row r's scores and its [`row_stats`] anchored on them (a short row's, one at a time).
///
/// # Safety
/// As [`row_stats`].
#[inline(always)]
unsafe fn anchored_row_stats<V: Lanes>(
    row: &[V::Scalar],
    r: usize,
    exps: *mut V::Scalar,
    columns: ScoreColumns<'_>,
) -> ([f64; 2], RowStats) {
    let scores = columns.scores(row, r);
    (
        scores,
        row_stats::<V>(row, exps, Some(ScoreColumns::anchor(scores))),
    )
}

/// `ptr` + `offset`, or null for a null `ptr` (no place to store).
#[inline(always)]
fn offset_or_null<T>(ptr: *mut T, offset: usize) -> *mut T {
    if ptr.is_null() {
        ptr
    } else {
        ptr.wrapping_add(offset)
    }
}

/// [`frame_scores`] of rows of one whole and one partial vector (LANES < `len` < 2·LANES: S1's
/// rows of 29 f32), the same operations in the same order as [`row_stats`] (so the same bits),
/// written out for that shape, [`STATS_ROWS`] rows side by side: a row's work is one chain of
/// dependent steps (its loads, the anchor, the exps, the sum's horizontal reduction), and the
/// independent rows fill each other's waits. Each row's scores (its anchor) are read from its
/// own lines after its vector loads. Rows without a finite anchor, or whose anchored sum is too
/// large, take [`shifted_by_max`].
///
/// # Safety
/// The CPU must have `V`'s instruction set; `rows` points to `out.len()` rows of `len`
/// readable elements, and `exps` is null or valid for as many writes; LANES < `len` < 2·LANES.
#[inline(always)]
unsafe fn two_vector_frame_scores<V: Lanes>(
    rows: *const V::Scalar,
    len: usize,
    mut out: FrameScores<'_>,
    exps: *mut V::Scalar,
    columns: ScoreColumns<'_>,
) -> bool {
    let lanes = V::LANES;
    debug_assert!(lanes < len && len < 2 * lanes);
    let (tail, zero) = (len - lanes, V::splat(V::Scalar::ZERO));
    let n = out.len();
    let mut finite = true;
    let groups = n / STATS_ROWS;
    for g in 0..groups {
        let first = g * STATS_ROWS;
        let group = rows.add(first * len);
        // (Loops over the group, not closures: closures do not get the caller's
        // `#[target_feature]`s.)
        let mut vectors = [(zero, zero); STATS_ROWS];
        for (r, (a, b)) in vectors.iter_mut().enumerate() {
            // SAFETY: the loads touch row r's `len` elements only.
            let row = group.add(r * len);
            *a = V::load(row);
            *b = V::load_partial(row.add(lanes), tail, V::Scalar::NEG_INFINITY);
        }
        // Each anchor splatted where it is read (an array of scalars read back as a vector
        // would wait for the scalar stores: a failed store-to-load forwarding).
        let mut scores = [[0.0; 2]; STATS_ROWS];
        let mut shifts = [V::Scalar::ZERO; STATS_ROWS];
        let mut splats = [zero; STATS_ROWS];
        for (r, ((row_scores, shift), splat)) in scores
            .iter_mut()
            .zip(&mut shifts)
            .zip(&mut splats)
            .enumerate()
        {
            // SAFETY: row r's `len` elements are readable.
            let row = std::slice::from_raw_parts(group.add(r * len), len);
            *row_scores = columns.scores(row, first + r);
            *shift = ScoreColumns::anchor(*row_scores);
            *splat = V::splat(*shift);
        }
        if !shifts.iter().all(|a| a.to_f64().is_finite()) {
            // Some row has no anchor: the group one row at a time.
            for (r, &row_scores) in scores.iter().enumerate() {
                // SAFETY: row r's `len` elements are readable.
                let row = std::slice::from_raw_parts(group.add(r * len), len);
                let row_exps = offset_or_null(exps, (first + r) * len);
                let stats = row_stats::<V>(row, row_exps, Some(shifts[r]));
                finite &= out.set(first + r, row_scores, stats);
            }
            continue;
        }
        let mut sums = [zero; STATS_ROWS];
        for (r, (sum, &(a, b))) in sums.iter_mut().zip(&vectors).enumerate() {
            let (a, b) = (row_term(a, splats[r]), row_term(b, splats[r]));
            if !exps.is_null() {
                // SAFETY: the stores touch row r's `len` elements only.
                let row_exps = exps.add((first + r) * len);
                a.store(row_exps);
                b.store_partial(row_exps.add(lanes), tail);
            }
            // `sum_of_exps` adds each to 0 first: the same bits, the terms being ≥ 0 (or NaN).
            *sum = a.add(b);
        }
        for (r, (&sum, &row_scores)) in sums.iter().zip(&scores).enumerate() {
            let sum = sum.reduce_sum();
            let stats = match RowStats::anchored(shifts[r].to_f64(), sum) {
                Some(stats) => stats,
                None => {
                    // SAFETY: row r's `len` elements are readable.
                    let row = std::slice::from_raw_parts(group.add(r * len), len);
                    shifted_by_max::<V>(row, offset_or_null(exps, (first + r) * len))
                }
            };
            finite &= out.set(first + r, row_scores, stats);
        }
    }
    for r in groups * STATS_ROWS..n {
        // SAFETY: the caller passes n rows of `len`.
        let row = std::slice::from_raw_parts(rows.add(r * len), len);
        let (scores, stats) =
            anchored_row_stats::<V>(row, r, offset_or_null(exps, r * len), columns);
        finite &= out.set(r, scores, stats);
    }
    finite
}

/// Rows [`two_vector_frame_scores`] takes side by side.
const STATS_ROWS: usize = 4;

/// What the gradient pass writes into one row: out[k] = scale · clip(coef · softmax(x)[k] −
/// arc(k)), with softmax(x)[k] = exp(x[k] − shift) · inv_sum, arc(k) the given occupancies at
/// their indices and 0 elsewhere, and clip the clamp to [−clip, clip].
///
/// `shift` is the row's shift and `inv_sum` is 1 / Σ exp(x − shift), both from the front pass
/// ([`RowStats`]): the exponent x − shift is then below 8 and exact where the softmax is large,
/// and no log-sum-exp has to be subtracted in two parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradRow {
    /// The row's shift (finite when `coef` > 0).
    pub shift: f64,
    /// 1 / Σ exp(x − shift) over the row.
    pub inv_sum: f64,
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
    /// A placeholder (no softmax term, no arcs).
    const NONE: GradRow = GradRow {
        shift: 0.0,
        inv_sum: 0.0,
        coef: 0.0,
        scale: 0.0,
        clip: f64::INFINITY,
        arcs: [(usize::MAX, 0.0); 2],
    };

    /// Whether the vector kernel for element type `T` writes only zeros in this row: no softmax
    /// term above its flush bound and no arc above the normal range (on long items, most rows).
    #[inline]
    pub fn writes_only_zeros<T: Real>(&self) -> bool {
        let plan = self.plan::<T>();
        !plan.softmax && plan.arcs.iter().all(|&(_, amount)| amount == 0.0)
    }

    /// The scalar decisions of the vector kernel for element type `T`.
    #[inline(always)]
    fn plan<T: Real>(&self) -> RowPlan {
        let clipped = self.clip < f64::INFINITY;
        let outer = if clipped { 1.0 } else { self.scale };
        let tiny = T::EXP_NORMAL_LOW.to_f64().exp();
        let arc = |(k, occupancy): (usize, f64)| {
            // An arc whose scaled amount is below the normal range would make its lane
            // subnormal (before or after the clip); it is below any gradient anyway.
            let negligible = (occupancy * self.scale).abs() < tiny;
            (k, if negligible { 0.0 } else { occupancy * outer })
        };
        let factor = self.coef * self.inv_sum;
        // The product the exp goes through that is closest to 0: exp · factor before a clip,
        // exp · factor · scale after it.
        let smallest = factor * self.scale.abs().min(1.0);
        let (floor, exp_floor) = flush_bounds::<T>(smallest);
        RowPlan {
            factor: factor * outer,
            floor: floor.min(0.0),
            exp_floor,
            softmax: self.coef > 0.0 && floor <= 0.0,
            arcs: [arc(self.arcs[0]), arc(self.arcs[1])],
        }
    }

    /// The exact (f64) value of element `k` whose input is `x`.
    #[inline]
    pub fn element(&self, k: usize, x: f64) -> f64 {
        let softmax = if self.coef > 0.0 {
            self.coef * (x - self.shift).exp() * self.inv_sum
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

/// The gradient rows of one frame field by field: row u's [`GradRow`] is [`FrameRows::row`]. The
/// in-place kernel of short rows plans its rows from these contiguous fields; from an array of
/// `GradRow`s the same plan gathers each field across rows.
#[derive(Debug, Clone, Copy)]
pub struct FrameRows<'a> {
    /// Each row's shift (see [`GradRow::shift`]).
    pub shift: &'a [f64],
    /// Each row's 1 / Σ exp(x − shift); as long as `shift` (as are the arcs).
    pub inv_sum: &'a [f64],
    /// The occupancy of each row's blank arc.
    pub blank_arcs: &'a [f64],
    /// The occupancy of each row's emission arc, FastEmit's scale included (0 where there is
    /// none).
    pub emit_arcs: &'a [f64],
    /// The blank's column.
    pub blank: usize,
    /// Row u's label column, for the first `labels.len()` rows (the others emit nothing).
    pub labels: &'a [u32],
    /// Whether the rows have a softmax term (logits, not log-probs, as input).
    pub softmax: bool,
    /// The item's upstream gradient.
    pub scale: f64,
    /// The clip bound; +inf for none.
    pub clip: f64,
}

impl FrameRows<'_> {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.shift.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.shift.is_empty()
    }

    /// Row u's parameters: its softmax term's weight is the sum of its arcs.
    ///
    /// # Panics
    /// If u is not a row.
    #[inline(always)]
    pub fn row(&self, u: usize) -> GradRow {
        let label = self.labels.get(u).map_or(NO_LABEL, |&y| y);
        let fields = [
            self.shift[u],
            self.inv_sum[u],
            self.blank_arcs[u],
            self.emit_arcs[u],
        ];
        self.row_of(fields, label)
    }

    /// The parameters of the row with the fields [shift, 1 / Σ, blank arc, emission arc] and
    /// the label column `label` ([`NO_LABEL`] for none).
    #[inline(always)]
    fn row_of(&self, [shift, inv_sum, blank_arc, emit_arc]: [f64; 4], label: u32) -> GradRow {
        let emit = match label {
            NO_LABEL => (usize::MAX, 0.0),
            y => (y as usize, emit_arc),
        };
        GradRow {
            shift,
            inv_sum,
            coef: if self.softmax {
                blank_arc + emit_arc
            } else {
                0.0
            },
            scale: self.scale,
            clip: self.clip,
            arcs: [(self.blank, blank_arc), emit],
        }
    }

    /// The [`RowWrite`]s of rows first.. (as many as `writes` holds, all of them rows), from the
    /// fields' contiguous slices, with no bounds check or branch inside the loop: the compiler
    /// vectorises it.
    #[inline(always)]
    fn plan_writes<T: Real>(&self, first: usize, len: usize, writes: &mut [RowWrite<T>]) {
        let end = first + writes.len();
        let mut labels = [NO_LABEL; PLANNED_ROWS];
        let known = self.labels.len().clamp(first, end);
        labels[..known - first].copy_from_slice(&self.labels[first..known]);
        let fields = self.shift[first..end]
            .iter()
            .zip(&self.inv_sum[first..end])
            .zip(&self.blank_arcs[first..end])
            .zip(&self.emit_arcs[first..end]);
        for ((write, (((&shift, &inv_sum), &blank_arc), &emit_arc)), &label) in
            writes.iter_mut().zip(fields).zip(&labels)
        {
            let params = self.row_of([shift, inv_sum, blank_arc, emit_arc], label);
            *write = RowWrite::new(&params, len);
        }
    }
}

/// The label column of a row without one.
const NO_LABEL: u32 = u32::MAX;

/// Writes the gradient row `out` (see [`GradRow`]) from the input row `row`. With `stream`, the
/// aligned middle of the row is written with [`Lanes::stream`].
///
/// The arcs are subtracted in the vector's precision from the lanes that hold them, so that each
/// element is computed and stored once, whole vectors at a time (partial ones at the ends).
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
    debug_assert!(row.len() <= out.len());
    let source = GradSource::<V>::for_row(params, row.as_ptr());
    write_vectors(out.as_mut_ptr(), row.len(), stream, &source);
}

/// [`grad_row`] of each of the `params.len()` consecutive rows of `len` elements of `input` into
/// the same rows of `out`: short unstreamed rows (≤ 2·LANES) four at a time, side by side (as
/// in [`frame_scores`]; the same bits as one at a time), the others one by one.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `input` and `out` hold `params.len()` rows of `len`.
#[inline(always)]
pub unsafe fn grad_rows<V: Lanes>(
    input: &[V::Scalar],
    out: &mut [V::Scalar],
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    debug_assert!(input.len() >= params.len() * len && out.len() >= params.len() * len);
    grad_rows_from::<V, GradSource<V>>(input.as_ptr(), out.as_mut_ptr(), len, params, stream);
}

/// [`grad_rows`] of a frame's `rows` from the terms exp(x − shift) that [`frame_scores`] stored
/// in `out` itself, in place of the input (unstreamed): where the gradient stays in cache, a
/// store in the front pass is cheaper than a second exp. A row with a softmax term reads its
/// terms before it writes its gradient over them; the flush bound applies to the term, with the
/// same bound ([`RowPlan::exp_floor`]) as on the exp's argument from the input.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out` holds `rows.len()` rows of `len`, with the
/// stored terms in every row with a softmax term.
#[inline(always)]
pub unsafe fn grad_rows_in_place<V: Lanes>(
    out: &mut [V::Scalar],
    len: usize,
    rows: &FrameRows<'_>,
) {
    debug_assert!(out.len() >= rows.len() * len);
    let output = out.as_mut_ptr();
    if V::LANES < len && len <= 2 * V::LANES {
        two_vector_rows_in_place::<V>(output, len, rows);
        return;
    }
    // Other lengths through the general kernel, a chunk of rows' parameters at a time.
    for first in (0..rows.len()).step_by(PLANNED_ROWS) {
        let count = PLANNED_ROWS.min(rows.len() - first);
        let mut params = [GradRow::NONE; PLANNED_ROWS];
        for (u, params) in params[..count].iter_mut().enumerate() {
            *params = rows.row(first + u);
        }
        let at = output.add(first * len);
        grad_rows_from::<V, StoredExpSource<V>>(at, at, len, &params[..count], false);
    }
}

/// [`grad_rows_in_place`] of rows longer than one vector and at most two (S1's rows of 29 f32),
/// [`PLANNED_ROWS`] at a time: first each row's scalar decisions ([`GradRow::plan`]) into a
/// small [`RowWrite`] array, from the rows' contiguous fields (vectorised by the compiler: from
/// an array of `GradRow`s it gathered each field, and the array had to be built first), then the
/// rows' two vectors each, the second ending at the row's end (overlapping the first: the
/// overlap is computed twice, the same way), with the arcs subtracted through lane masks. The
/// same arithmetic in the same order as the general kernel, so the same bits.
///
/// Why not the general kernel (measured on S1's rows, criterion, 150 frames of 41 rows in L2:
/// 58 → 39 µs an item): its second vector is a masked store, and a masked store holds up any
/// later load from its 64 bytes (masked-off lanes included) until it is written to the cache,
/// which in place is the next row's first load; and its arcs are a branch per vector on a lane
/// that varies from row to row. (Subtracting the arcs afterwards from memory instead was slower
/// still: those loads wait for the vector stores.)
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out` holds `rows.len()` rows of `len`, with the
/// stored terms in every row with a softmax term; LANES < `len` ≤ 2·LANES.
#[inline(always)]
unsafe fn two_vector_rows_in_place<V: Lanes>(
    out: *mut V::Scalar,
    len: usize,
    rows: &FrameRows<'_>,
) {
    debug_assert!(V::LANES < len && len <= 2 * V::LANES);
    let second = len - V::LANES;
    let clipped = rows.clip < f64::INFINITY;
    for first in (0..rows.len()).step_by(PLANNED_ROWS) {
        let count = PLANNED_ROWS.min(rows.len() - first);
        let mut writes = [RowWrite::<V::Scalar>::NONE; PLANNED_ROWS];
        let writes = &mut writes[..count];
        rows.plan_writes(first, len, writes);
        let at = out.add(first * len);
        // SAFETY: the chunk's rows lie within the rows the caller passes; `second` + LANES =
        // `len`.
        if clipped {
            write_two_vector_rows::<V, true>(at, len, second, writes);
        } else {
            write_two_vector_rows::<V, false>(at, len, second, writes);
        }
    }
}

/// Rows planned at a time by [`two_vector_rows_in_place`].
const PLANNED_ROWS: usize = 16;

/// One row's write in [`two_vector_rows_in_place`], in the element type: the decisions of
/// [`GradRow::plan`].
#[derive(Clone, Copy)]
struct RowWrite<T> {
    /// The stored terms' factor; 0 for a row without softmax term.
    factor: T,
    /// The flush bound on the stored terms; +inf for a row without softmax term.
    floor: T,
    /// The clip bound and the scale applied after it; +inf and 1 for an unclipped row (whose
    /// scale is in the factor and the arcs).
    clip: T,
    scale: T,
    /// The arcs: a bit at each arc's element (none for an arc outside the row) and the amount.
    arcs: [(u32, T); 2],
}

impl<T: Real> RowWrite<T> {
    /// A placeholder.
    const NONE: RowWrite<T> = RowWrite {
        factor: T::ZERO,
        floor: T::ZERO,
        clip: T::ZERO,
        scale: T::ZERO,
        arcs: [(0, T::ZERO); 2],
    };

    /// The write of the row with `params`, `len` ≤ 32 elements long.
    #[inline(always)]
    fn new(params: &GradRow, len: usize) -> RowWrite<T> {
        let plan = params.plan::<T>();
        let (factor, floor) = if plan.softmax {
            (plan.factor, plan.exp_floor)
        } else {
            (0.0, f64::INFINITY)
        };
        let (clip, scale) = if params.clip < f64::INFINITY {
            (params.clip, params.scale)
        } else {
            (f64::INFINITY, 1.0)
        };
        RowWrite {
            factor: T::from_f64(factor),
            floor: T::from_f64(floor),
            clip: T::from_f64(clip),
            scale: T::from_f64(scale),
            arcs: plan.arcs.map(|(k, amount)| {
                let bit = if k < len { 1 << k } else { 0 };
                (bit, T::from_f64(amount))
            }),
        }
    }
}

/// The rows of [`two_vector_rows_in_place`] from their `writes`: both vectors of a row loaded
/// before either is stored (in place, the second reads terms the first overwrites), the clip
/// only where a row of the chunk has one.
///
/// # Safety
/// As [`two_vector_rows_in_place`], with `second` = `len` − LANES.
#[inline(always)]
unsafe fn write_two_vector_rows<V: Lanes, const CLIPPED: bool>(
    rows: *mut V::Scalar,
    len: usize,
    second: usize,
    writes: &[RowWrite<V::Scalar>],
) {
    for (r, write) in writes.iter().enumerate() {
        let row = rows.add(r * len);
        let (factor, floor) = (V::splat(write.factor), V::splat(write.floor));
        let (head, tail) = (V::load(row), V::load(row.add(second)));
        let mut head = head.zero_where_below(head, floor).mul(factor);
        let mut tail = tail.zero_where_below(tail, floor).mul(factor);
        for &(bit, amount) in &write.arcs {
            head = head.sub_in_lanes(bit, amount);
            tail = tail.sub_in_lanes(bit >> second, amount);
        }
        if CLIPPED {
            let (clip, scale) = (V::splat(write.clip), V::splat(write.scale));
            let minus_clip = V::splat(V::Scalar::ZERO).sub(clip);
            head = minus_clip.max(clip.min(head)).mul(scale);
            tail = minus_clip.max(clip.min(tail)).mul(scale);
        }
        head.store(row);
        tail.store(row.add(second));
    }
}

/// Short rows [`short_grad_rows`] takes together.
const SHORT_ROWS: usize = 4;

/// [`grad_rows`] with the softmax terms from `S` over the rows at `input`: short unstreamed
/// rows four at a time, the others one by one.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `input` and `out` hold `params.len()` rows of `len`
/// (the same rows for an in-place source).
#[inline(always)]
unsafe fn grad_rows_from<V: Lanes, S: SoftmaxSource<V>>(
    input: *const V::Scalar,
    out: *mut V::Scalar,
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    let mut done = 0;
    if !stream && len > 0 && len <= 2 * V::LANES {
        for (g, group) in params.chunks_exact(SHORT_ROWS).enumerate() {
            let first = g * SHORT_ROWS * len;
            // SAFETY: the group's rows lie within the rows the caller passes.
            short_grad_rows::<V, S>(
                input.add(first),
                out.add(first),
                len,
                group.try_into().expect("a whole group"),
            );
        }
        done = params.len() / SHORT_ROWS * SHORT_ROWS;
    }
    for (r, row_params) in params.iter().enumerate().skip(done) {
        // SAFETY: the caller passes params.len() rows of `len`.
        let source = S::for_row(row_params, input.add(r * len));
        write_vectors(out.add(r * len), len, stream, &source);
    }
}

/// [`grad_row`] (unstreamed) of [`SHORT_ROWS`] consecutive rows of `len` ≤ 2·LANES elements, the
/// rows side by side: each row's first vector, then each row's second, then the stores, the same
/// vectors [`write_vectors`] would store.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `input` and `out` point to SHORT_ROWS · `len` valid
/// elements; 0 < `len` ≤ 2·LANES.
#[inline(always)]
unsafe fn short_grad_rows<V: Lanes, S: SoftmaxSource<V>>(
    input: *const V::Scalar,
    out: *mut V::Scalar,
    len: usize,
    params: &[GradRow; SHORT_ROWS],
) {
    let lanes = V::LANES;
    // The first vector is partial when len < LANES; the second (at LANES) is whole, partial or
    // absent. (Loops, not closures: closures do not get the caller's `#[target_feature]`s.)
    let first_len = (len < lanes).then_some(len);
    let second_len = len.saturating_sub(lanes);
    let second_partial = (second_len < lanes).then_some(second_len);
    let zero = V::splat(V::Scalar::ZERO);
    let mut vectors = [(zero, zero); SHORT_ROWS];
    for (r, (first, second)) in vectors.iter_mut().enumerate() {
        let source = S::for_row(&params[r], input.add(r * len));
        *first = source.vector(0, first_len);
        if second_len > 0 {
            *second = source.vector(lanes, second_partial);
        }
    }
    for (r, (first, second)) in vectors.into_iter().enumerate() {
        let row = out.add(r * len);
        // SAFETY: the stores touch row r's `len` elements only.
        match first_len {
            Some(n) => first.store_partial(row, n),
            None => first.store(row),
        }
        match (second_len, second_partial) {
            (0, _) => {}
            (_, Some(n)) => second.store_partial(row.add(lanes), n),
            (_, None) => second.store(row.add(lanes)),
        }
    }
}

/// Copies `src` into `dst` (the same length) with the aligned middle written by
/// [`Lanes::stream`]: how the gradient pass flushes rows it staged in L1, so that the lines
/// shared by two rows are streamed too.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `dst.len() == src.len()`.
#[inline(always)]
pub unsafe fn stream_copy<V: Lanes>(src: &[V::Scalar], dst: &mut [V::Scalar]) {
    debug_assert_eq!(src.len(), dst.len());
    write_vectors::<V>(dst.as_mut_ptr(), dst.len(), true, &CopySource(src.as_ptr()));
}

/// Fills `out` with zeros, the aligned middle written by [`Lanes::stream`] when `stream` is set:
/// the gradient's padding, which reads no input.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn write_zeros<V: Lanes>(out: &mut [V::Scalar], stream: bool) {
    write_vectors::<V>(out.as_mut_ptr(), out.len(), stream, &Zeros);
}

/// Where [`write_vectors`] gets its vectors from. (A trait, not a closure: closures are not
/// compiled with the caller's `#[target_feature]`s, so the vector methods would not inline.)
trait VectorSource<V: Lanes> {
    /// The vector for elements i..i + LANES, or for the `len` < LANES elements i..i + len.
    ///
    /// # Safety
    /// The elements must be valid to read; the CPU must have `V`'s instruction set.
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V;
}

/// Where a gradient row's softmax term comes from: the input row, or the terms the front pass
/// stored.
trait SoftmaxSource<V: Lanes>: VectorSource<V> {
    /// The source of the row with `params` whose input (or stored terms) start at `input`.
    ///
    /// # Safety
    /// The CPU must have `V`'s instruction set.
    unsafe fn for_row(params: &GradRow, input: *const V::Scalar) -> Self;
}

/// A gradient row's values from its input row.
struct GradSource<V: Lanes> {
    kernel: RowKernel<V>,
    input: *const V::Scalar,
}

impl<V: Lanes> SoftmaxSource<V> for GradSource<V> {
    #[inline(always)]
    unsafe fn for_row(params: &GradRow, input: *const V::Scalar) -> Self {
        GradSource {
            kernel: RowKernel::new(params, false),
            input,
        }
    }
}

/// A gradient row's values from the terms exp(x − shift) stored in the output row itself.
struct StoredExpSource<V: Lanes> {
    kernel: RowKernel<V>,
    exps: *const V::Scalar,
}

impl<V: Lanes> SoftmaxSource<V> for StoredExpSource<V> {
    #[inline(always)]
    unsafe fn for_row(params: &GradRow, exps: *const V::Scalar) -> Self {
        StoredExpSource {
            kernel: RowKernel::new(params, true),
            exps,
        }
    }
}

impl<V: Lanes> VectorSource<V> for StoredExpSource<V> {
    #[inline(always)]
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V {
        let zero = V::splat(V::Scalar::ZERO);
        if !self.kernel.softmax {
            return self.kernel.finish(zero, i);
        }
        let e = load_row_vector::<V>(self.exps, i, len);
        // Flushed before the product, which would otherwise be subnormal.
        let kept = e.zero_where_below(e, self.kernel.floor);
        self.kernel.finish(kept.mul(self.kernel.factor), i)
    }
}

impl<V: Lanes> VectorSource<V> for GradSource<V> {
    #[inline(always)]
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V {
        // A row without a softmax term (a node no path of note goes through: on long items, most
        // of the lattice) does not read its input at all.
        if !self.kernel.softmax {
            return self.kernel.finish(V::splat(V::Scalar::ZERO), i);
        }
        let x = load_row_vector::<V>(self.input, i, len);
        self.kernel.finish(
            exp_above(x.sub(self.kernel.shift), self.kernel.floor).mul(self.kernel.factor),
            i,
        )
    }
}

/// The gradient kernels' read of a row: elements i..i + LANES of `row` (prefetching ahead into
/// L1 and L2), or the `len` < LANES elements i..i + len with 0 in the other lanes.
///
/// # Safety
/// The CPU must have `V`'s instruction set; the elements must be valid to read.
#[inline(always)]
unsafe fn load_row_vector<V: Lanes>(row: *const V::Scalar, i: usize, len: Option<usize>) -> V {
    match len {
        Some(len) => V::load_partial(row.add(i), len, V::Scalar::ZERO),
        None => {
            let (near, far) = prefetch_distances::<V::Scalar>();
            prefetch(row.wrapping_add(i + near));
            prefetch_to_l2(row.wrapping_add(i + far));
            V::load(row.add(i))
        }
    }
}

/// The elements of a slice, as they are.
struct CopySource<T>(*const T);

impl<V: Lanes> VectorSource<V> for CopySource<V::Scalar> {
    #[inline(always)]
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V {
        match len {
            Some(len) => V::load_partial(self.0.add(i), len, V::Scalar::ZERO),
            None => V::load(self.0.add(i)),
        }
    }
}

/// Zero vectors.
struct Zeros;

impl<V: Lanes> VectorSource<V> for Zeros {
    #[inline(always)]
    unsafe fn vector(&self, _: usize, _: Option<usize>) -> V {
        V::splat(V::Scalar::ZERO)
    }
}

/// Stores `out` vector by vector from `source`: full vectors, and partial ones at the ends.
/// With `stream`, the vectors
/// of the output's aligned middle go out with [`Lanes::stream`], the partial ones (only where
/// the output is not aligned) with plain masked stores.
///
/// Each vector is read from `source` before it is stored, so a source may read the output
/// itself.
///
/// # Safety
/// The CPU must have `V`'s instruction set, `output` must be valid for `n` writes and `source`
/// readable over that range.
#[inline(always)]
unsafe fn write_vectors<V: Lanes>(
    output: *mut V::Scalar,
    n: usize,
    stream: bool,
    source: &impl VectorSource<V>,
) {
    let lanes = V::LANES;
    let head = if stream {
        let align = lanes * std::mem::size_of::<V::Scalar>();
        let misaligned = output as usize % align;
        (((align - misaligned) % align) / std::mem::size_of::<V::Scalar>()).min(n)
    } else {
        0
    };
    let body_end = head + (n - head) / lanes * lanes;
    if head > 0 {
        // SAFETY: the partial store touches elements 0..head < n only.
        source.vector(0, Some(head)).store_partial(output, head);
    }
    let mut i = head;
    while i < body_end {
        // SAFETY: i + lanes ≤ body_end ≤ n; with `stream`, output + i is aligned.
        let g = source.vector(i, None);
        if stream {
            g.stream(output.add(i));
        } else {
            g.store(output.add(i));
        }
        i += lanes;
    }
    if body_end < n {
        // SAFETY: the partial store touches elements body_end..n only.
        source
            .vector(body_end, Some(n - body_end))
            .store_partial(output.add(body_end), n - body_end);
    }
}

/// How far above the subnormal range (in the exp's argument) the gradient kernel flushes its
/// softmax term to 0, so that rounding of the bound cannot let a subnormal through.
const FLOOR_MARGIN: f64 = 0.5;

/// The flush bounds of the softmax term of a row whose smallest product with the exp is
/// `smallest` (see [`GradRow::plan`]): below `floor` on the exp's argument x − shift, and below
/// `exp_floor` = e^floor on the term itself, the product would be subnormal. From the binary
/// exponent of `smallest` alone (no libm call: the gradient kernel needs one per row), so
/// `floor` is at most ln 2 higher than needed; (+inf, +inf) for 0 and subnormal `smallest`,
/// and `exp_floor` is +inf wherever `floor` > 0.
#[inline(always)]
fn flush_bounds<T: Real>(smallest: f64) -> (f64, f64) {
    let low = T::EXP_NORMAL_LOW.to_f64() + FLOOR_MARGIN;
    let biased = ((smallest.to_bits() >> 52) & 0x7ff) as i32;
    // k: a lower bound on log₂(smallest), not above 0 (a larger product needs no higher bound).
    let k = match biased {
        0 => return (f64::INFINITY, f64::INFINITY),
        0x7ff => 0,
        _ => (biased - 1023).min(0),
    };
    let floor = low - f64::from(k) * std::f64::consts::LN_2;
    if floor > 0.0 {
        return (floor, f64::INFINITY);
    }
    // 2^−k for 0 ≤ −k < 126 (floor ≤ 0 bounds it), built from its exponent bits.
    let power = f64::from_bits(((1023 - k) as u64) << 52);
    (floor, low.exp() * power)
}

/// What the gradient kernel does with one row, decided in f64 for element type `T`.
struct RowPlan {
    /// coef · inv_sum, times the scale when there is no clip.
    factor: f64,
    /// The softmax term's flush bound on the exp's argument (see [`RowKernel::floor`]).
    floor: f64,
    /// The same bound on the term itself, e^floor: where the terms are stored in place.
    exp_floor: f64,
    /// Whether there is a softmax term above the bound.
    softmax: bool,
    /// The arcs' (index, amount to subtract), 0 where negligible.
    arcs: [(usize, f64); 2],
}

/// The constants of one gradient row, splatted once.
///
/// Without a clip bound, the upstream scale is folded into the softmax factor and the arcs, so an
/// element costs one subtraction, one exp and one multiplication.
struct RowKernel<V: Lanes> {
    shift: V,
    /// Where the softmax term is flushed to 0, below which it would be subnormal (scaled or
    /// not): the bound on x − shift, or on the stored term exp(x − shift) in place.
    floor: V,
    /// coef · inv_sum, times the scale when `clip` is None.
    factor: V,
    softmax: bool,
    /// The arcs' (index, amount to subtract), scaled like `factor`.
    arcs: [(usize, V::Scalar); 2],
    /// (−clip, clip, scale) when the clip bound is finite.
    clip: Option<(V, V, V)>,
}

impl<V: Lanes> RowKernel<V> {
    /// Splats `params`, with the flush bound on the stored terms when `in_place`.
    #[inline(always)]
    unsafe fn new(params: &GradRow, in_place: bool) -> Self {
        let plan = params.plan::<V::Scalar>();
        let splat = |value: f64| V::splat(V::Scalar::from_f64(value));
        let arc = |(k, amount): (usize, f64)| (k, V::Scalar::from_f64(amount));
        RowKernel {
            shift: splat(params.shift),
            floor: splat(if in_place { plan.exp_floor } else { plan.floor }),
            factor: splat(plan.factor),
            softmax: plan.softmax,
            arcs: [arc(plan.arcs[0]), arc(plan.arcs[1])],
            clip: (params.clip < f64::INFINITY)
                .then(|| (splat(-params.clip), splat(params.clip), splat(params.scale))),
        }
    }

    /// The gradient of the lanes `first..first + LANES` whose softmax term (times `factor`) is
    /// `d`: the arcs subtracted, then the clip.
    #[inline(always)]
    unsafe fn finish(&self, mut d: V, first: usize) -> V {
        for &(k, amount) in &self.arcs {
            if (first..first + V::LANES).contains(&k) {
                d = d.sub_in_lane(k - first, amount);
            }
        }
        match self.clip {
            Some((minus_clip, clip, scale)) => minus_clip.max(clip.min(d)).mul(scale),
            None => d,
        }
    }
}

/// A function applied lane by lane by [`map_in_place`]. (A trait, not a closure: closures are not
/// compiled with the caller's `#[target_feature]`s.)
pub trait LaneMap {
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
pub unsafe fn map_in_place<V: Lanes, M: LaneMap>(values: &mut [V::Scalar]) {
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
pub struct Exp;

impl LaneMap for Exp {
    const FILL: f64 = 0.0;
    #[inline(always)]
    unsafe fn apply<V: Lanes>(x: V) -> V {
        exp(x)
    }
}

/// values[k] = exp(values[k]).
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub unsafe fn exp_in_place<V: Lanes>(values: &mut [V::Scalar]) {
    map_in_place::<V, Exp>(values)
}
