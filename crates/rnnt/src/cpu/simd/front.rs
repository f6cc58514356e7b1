//! The front pass's row kernels: a row's shift and Σ exp(x − shift) ([`RowStats`],
//! [`row_stats`]), a frame's rows at a time with the scores the pass keeps ([`frame_scores`]), and
//! the frame's scores turned into log-probabilities ([`normalise_scores`]).

use crate::cpu::simd::element::{LoadStore, RowElement};
use crate::cpu::simd::math::{exp_of_bounded, ln};
use crate::cpu::simd::memory::{prefetch, prefetch_distances, prefetch_to_l2};
use crate::cpu::simd::vector::{load_upto, store_upto, Lanes, SimdFloat};

/// The front pass's statistics of one row: its terms exp(x − shift), summed.
///
/// For a row of at most `ANCHORED_ROW_LEN` (512) elements, the shift is the row's anchor, the
/// larger of two of its elements that the caller names ([`ScoreColumns`]: the blank and the next
/// label), wherever Σ exp(x − anchor) is at most `ANCHORED_SUM_HIGH` (2¹¹): one pass over the
/// row, with no maximum to find (its horizontal reduction is much of a short row's work, and its
/// pass a tenth of a longer one's). Elsewhere (longer rows, no anchor, another element well above
/// it, masked rows, non-finite values) it is the row's maximum, the classic two passes. Either way the shift's
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
pub(crate) const ANCHORED_SUM_HIGH: f64 = 2048.0;

/// Elements of the longest row shifted by its anchor where that allows (see [`RowStats`]). Its
/// anchored sum is about V·E[e^(x − anchor)]: for the benchmark's N(0, 1) logits about 0.9·V, far
/// below the bound at V = 512, often above it at V = 1024 (where the anchored pass would be
/// wasted on a fifth of the rows).
pub(crate) const ANCHORED_ROW_LEN: usize = 512;

/// Bytes of the longest short row (taken side by side, see `short_frame_scores`): two AVX-512
/// vectors, and on narrower vectors as many bytes (four AVX2 vectors), so that S1's rows of 29
/// f32 are short on every instruction set.
const SHORT_ROW_BYTES: usize = 128;

/// The elements of the longest short row of `V`'s scalars: [`SHORT_ROW_BYTES`], and at least
/// two vectors.
#[inline(always)]
pub(crate) fn short_row_len<V: Lanes>() -> usize {
    (SHORT_ROW_BYTES / std::mem::size_of::<V::Scalar>()).max(2 * V::LANES)
}

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
    pub fn scores<E: RowElement>(&self, row: &[E], r: usize) -> [f64; 2] {
        self.scores_of(r, |k| row[k].widen())
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
    pub fn anchor<T: SimdFloat>([blank, label]: [f64; 2]) -> T {
        T::from_f64(blank.max(label))
    }
}

/// Where the front pass's frame kernel (`frame_scores`) writes each row's results, one slot
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

/// The front pass's kernel for one frame: for each of the `out.len()` consecutive rows of `len`
/// elements at the start of `rows`, its [`row_stats`] (rows of at most [`ANCHORED_ROW_LEN`]
/// anchored as `columns` says, but for the rest of a frame after a row longer than short whose
/// anchored sum was too large) and
/// its two scores, written into `out`; with `exps`, each row's terms are also stored at the
/// row's place there. One call per frame (the dispatch and the call are paid once, not per row,
/// which shows when rows are short), and the row's results go where the front pass keeps them,
/// with no array of per-row statistics between. Returns false if a row holds a NaN or +inf (its
/// sum is NaN).
///
/// The scores of a row shifted by its maximum are read after its statistics, from the lines they
/// brought into L1 (read first, each would wait for memory); an anchored row's are its anchor,
/// read first.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `rows.len() ≥ out.len() · len`, and so is
/// `exps.len()` when given; `out`'s slices are equally long. (The columns are checked.)
#[inline(always)]
pub(super) unsafe fn frame_scores<V: LoadStore<E>, E: RowElement>(
    rows: &[E],
    len: usize,
    mut out: FrameScores<'_>,
    exps: Option<&mut [E]>,
    columns: ScoreColumns<'_>,
) -> bool {
    let n = out.len();
    debug_assert!(rows.len() >= n * len);
    debug_assert!(exps.as_ref().is_none_or(|e| e.len() >= n * len));
    let exps = exps.map_or(std::ptr::null_mut(), |e| e.as_mut_ptr());
    let short = len <= short_row_len::<V>();
    if short && V::LANES < len && !len.is_multiple_of(V::LANES) {
        let rows = rows.as_ptr();
        match len.div_ceil(V::LANES) {
            2 => return short_frame_scores::<V, E, 2>(rows, len, out, exps, columns),
            3 => return short_frame_scores::<V, E, 3>(rows, len, out, exps, columns),
            4 => return short_frame_scores::<V, E, 4>(rows, len, out, exps, columns),
            _ => {}
        }
    }
    let mut finite = true;
    // After a longer row whose anchored sum was too large (its anchored pass wasted), the rest of
    // the frame is shifted by the maximum: rows of one frame are alike.
    let mut anchoring = len <= ANCHORED_ROW_LEN;
    for r in 0..n {
        // SAFETY: the caller passes n rows of `len`.
        let row = rows.get_unchecked(r * len..(r + 1) * len);
        let row_exps = offset_or_null(exps, r * len);
        let (scores, stats) = if anchoring {
            let (scores, stats) = anchored_row_stats::<V, E>(row, r, row_exps, columns);
            anchoring = short || stats.shift == scores[0].max(scores[1]);
            (scores, stats)
        } else {
            let stats = row_stats::<V, E>(row, row_exps, None);
            (columns.scores(row, r), stats)
        };
        finite &= out.set(r, scores, stats);
    }
    finite
}

/// Row r's scores and its [`row_stats`] anchored on them (one row at a time).
///
/// # Safety
/// As [`row_stats`].
#[inline(always)]
unsafe fn anchored_row_stats<V: LoadStore<E>, E: RowElement>(
    row: &[E],
    r: usize,
    exps: *mut E,
    columns: ScoreColumns<'_>,
) -> ([f64; 2], RowStats) {
    let scores = columns.scores(row, r);
    (
        scores,
        row_stats::<V, E>(row, exps, Some(ScoreColumns::anchor(scores))),
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

/// [`frame_scores`] of rows of `N` vectors, the last one partial (LANES < `len` < N·LANES, `N`
/// ≤ 4: S1's rows of 29 f32 are two AVX-512 vectors, four AVX2 ones), the same operations in the
/// same order as [`row_stats`] (so the same bits), written out for that shape, [`STATS_ROWS`]
/// rows side by side: a row's work is one chain of dependent steps (its loads, the anchor, the
/// exps, the sum's horizontal reduction), and the independent rows fill each other's waits. Each
/// row's scores (its anchor) are read from its own lines after its vector loads. Rows without a
/// finite anchor, or whose anchored sum is too large, take [`shifted_by_max`].
///
/// # Safety
/// The CPU must have `V`'s instruction set; `rows` points to `out.len()` rows of `len`
/// readable elements, and `exps` is null or valid for as many writes; (N − 1)·LANES < `len` <
/// N·LANES.
#[inline(always)]
unsafe fn short_frame_scores<V: LoadStore<E>, E: RowElement, const N: usize>(
    rows: *const E,
    len: usize,
    mut out: FrameScores<'_>,
    exps: *mut E,
    columns: ScoreColumns<'_>,
) -> bool {
    let lanes = V::LANES;
    debug_assert!((N - 1) * lanes < len && len < N * lanes);
    let (last, zero) = ((N - 1) * lanes, V::splat(V::Scalar::ZERO));
    let tail = len - last;
    let n = out.len();
    let mut finite = true;
    let groups = n / STATS_ROWS;
    for g in 0..groups {
        let first = g * STATS_ROWS;
        let group = rows.add(first * len);
        // (Loops over the group, not closures: closures do not get the caller's
        // `#[target_feature]`s.)
        let mut vectors = [[zero; N]; STATS_ROWS];
        for (r, row_vectors) in vectors.iter_mut().enumerate() {
            // SAFETY: the loads touch row r's `len` elements only.
            let row = group.add(r * len);
            for (k, vector) in row_vectors[..N - 1].iter_mut().enumerate() {
                *vector = V::load_from(row.add(k * lanes));
            }
            row_vectors[N - 1] = V::load_partial_from(row.add(last), tail, V::Scalar::NEG_INFINITY);
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
                let stats = row_stats::<V, E>(row, row_exps, Some(shifts[r]));
                finite &= out.set(first + r, row_scores, stats);
            }
            continue;
        }
        let mut sums = [zero; STATS_ROWS];
        for (r, (sum, row_vectors)) in sums.iter_mut().zip(&vectors).enumerate() {
            let mut terms = [zero; N];
            for (term, &x) in terms.iter_mut().zip(row_vectors) {
                *term = row_term(x, splats[r]);
            }
            if !exps.is_null() {
                // SAFETY: the stores touch row r's `len` elements only.
                let row_exps = exps.add((first + r) * len);
                for (k, term) in terms[..N - 1].iter().enumerate() {
                    term.store_to(row_exps.add(k * lanes));
                }
                terms[N - 1].store_partial_to(row_exps.add(last), tail);
            }
            // `sum_of_exps`'s two running sums, each started by adding to 0 (the same bits, the
            // terms being ≥ 0 or NaN): whole vectors alternate between them, the partial one
            // goes to the second.
            let (mut sum_a, mut sum_b) = (terms[0], terms[1]);
            for (k, &term) in terms.iter().enumerate().skip(2) {
                if k % 2 == 0 && k < N - 1 {
                    sum_a = sum_a.add(term);
                } else {
                    sum_b = sum_b.add(term);
                }
            }
            *sum = sum_a.add(sum_b);
        }
        for (r, (&sum, &row_scores)) in sums.iter().zip(&scores).enumerate() {
            let sum = sum.reduce_sum();
            let stats = match RowStats::anchored(shifts[r].to_f64(), sum) {
                Some(stats) => stats,
                None => {
                    // SAFETY: row r's `len` elements are readable.
                    let row = std::slice::from_raw_parts(group.add(r * len), len);
                    shifted_by_max::<V, E>(row, offset_or_null(exps, (first + r) * len))
                }
            };
            finite &= out.set(first + r, row_scores, stats);
        }
    }
    for r in groups * STATS_ROWS..n {
        // SAFETY: the caller passes n rows of `len`.
        let row = std::slice::from_raw_parts(rows.add(r * len), len);
        let (scores, stats) =
            anchored_row_stats::<V, E>(row, r, offset_or_null(exps, r * len), columns);
        finite &= out.set(r, scores, stats);
    }
    finite
}

/// Rows [`short_frame_scores`] takes side by side.
const STATS_ROWS: usize = 4;

/// The statistics of `row` (see [`RowStats`]): for a row of at most [`ANCHORED_ROW_LEN`] elements
/// with a finite `anchor` (one of its elements), first one pass for the sum shifted by it, and only where that sum is too large
/// (or NaN), the maximum and the sum shifted by it, two more passes over a row the first left in
/// L1; for others, the latter alone. Unless `exps` is null, the terms exp(x − shift) (clamped at
/// the exp's flush bound, not flushed) are also stored there: zeros for a masked row (all −inf).
///
/// # Safety
/// The CPU must have `V`'s instruction set; `exps` is null or valid for `row.len()` writes.
#[inline(always)]
pub(super) unsafe fn row_stats<V: LoadStore<E>, E: RowElement>(
    row: &[E],
    exps: *mut E,
    anchor: Option<V::Scalar>,
) -> RowStats {
    let anchored = row.len() <= ANCHORED_ROW_LEN;
    if let Some(anchor) = anchor.filter(|a| anchored && a.to_f64().is_finite()) {
        let sum = sum_of_exps::<V, E>(row, anchor, exps);
        if let Some(stats) = RowStats::anchored(anchor.to_f64(), sum) {
            return stats;
        }
    }
    shifted_by_max::<V, E>(row, exps)
}

/// Maximum and Σ exp(x − max) of `row`: two passes, the second over a row the first left in L1
/// (storing the terms in `exps` like [`row_stats`]).
///
/// # Safety
/// As [`row_stats`].
#[inline(always)]
unsafe fn shifted_by_max<V: LoadStore<E>, E: RowElement>(row: &[E], exps: *mut E) -> RowStats {
    let lanes = V::LANES;
    let body = row.len() - row.len() % lanes;
    let ptr = row.as_ptr();
    let mut max_a = V::splat(V::Scalar::NEG_INFINITY);
    let mut max_b = max_a;
    let mut i = 0;
    let (near, _) = prefetch_distances::<E>();
    while i + 2 * lanes <= body {
        prefetch(ptr.wrapping_add(i + near));
        prefetch(ptr.wrapping_add(i + lanes + near));
        // SAFETY: i + 2·lanes ≤ body ≤ row.len().
        max_a = V::load_from(ptr.add(i)).max(max_a);
        max_b = V::load_from(ptr.add(i + lanes)).max(max_b);
        i += 2 * lanes;
    }
    if i < body {
        // SAFETY: i + lanes = body ≤ row.len().
        max_a = V::load_from(ptr.add(i)).max(max_a);
    }
    let tail = row.len() - body;
    if tail > 0 {
        // SAFETY: the partial load touches row[body..] only.
        max_b = V::load_partial_from(ptr.add(body), tail, V::Scalar::NEG_INFINITY).max(max_b);
    }
    let max = max_a.max(max_b).reduce_max().to_f64();
    if max.is_nan() || max == f64::INFINITY {
        return RowStats {
            shift: max,
            sum: f64::NAN,
        };
    }
    if max == f64::NEG_INFINITY {
        let nan = row.iter().any(|x| x.widen().is_nan());
        let sum = if nan { f64::NAN } else { 0.0 };
        if !exps.is_null() {
            // A masked row's terms are all 0. Stored all the same: the in-place gradient pass
            // reads them, and read whatever the buffer held before (a NaN there made a NaN
            // gradient; found by fuzzing).
            // SAFETY: the caller passes `exps` valid for `row.len()` writes; 0 bits are +0.0.
            unsafe { std::ptr::write_bytes(exps, 0, row.len()) };
        }
        return RowStats { shift: max, sum };
    }
    // `max` is one of the row's elements, so it converts back exactly.
    let sum = sum_of_exps::<V, E>(row, V::Scalar::from_f64(max), exps);
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
unsafe fn sum_of_exps<V: LoadStore<E>, E: RowElement>(
    row: &[E],
    shift: V::Scalar,
    exps: *mut E,
) -> f64 {
    let lanes = V::LANES;
    let body = row.len() - row.len() % lanes;
    let ptr = row.as_ptr();
    let shift = V::splat(shift);
    let mut sum_a = V::splat(V::Scalar::ZERO);
    let mut sum_b = sum_a;
    let mut i = 0;
    let (near, far) = prefetch_distances::<E>();
    while i + 2 * lanes <= body {
        prefetch(ptr.wrapping_add(i + near));
        prefetch(ptr.wrapping_add(i + lanes + near));
        prefetch_to_l2(ptr.wrapping_add(i + far));
        prefetch_to_l2(ptr.wrapping_add(i + lanes + far));
        // SAFETY: i + 2·lanes ≤ body ≤ row.len(); `exps` has room for the row.
        let a = row_term(V::load_from(ptr.add(i)), shift);
        let b = row_term(V::load_from(ptr.add(i + lanes)), shift);
        if !exps.is_null() {
            a.store_to(exps.add(i));
            b.store_to(exps.add(i + lanes));
        }
        sum_a = sum_a.add(a);
        sum_b = sum_b.add(b);
        i += 2 * lanes;
    }
    if i < body {
        // SAFETY: i + lanes = body ≤ row.len().
        let a = row_term(V::load_from(ptr.add(i)), shift);
        if !exps.is_null() {
            a.store_to(exps.add(i));
        }
        sum_a = sum_a.add(a);
    }
    let tail = row.len() - body;
    if tail > 0 {
        // SAFETY: the partial load and store touch row[body..] only.
        let x = V::load_partial_from(ptr.add(body), tail, V::Scalar::NEG_INFINITY);
        let b = row_term(x, shift);
        if !exps.is_null() {
            b.store_partial_to(exps.add(body), tail);
        }
        sum_b = sum_b.add(b);
    }
    sum_a.add(sum_b).reduce_sum()
}

/// A row's terms exp(x − shift), clamped at the exp's flush bound. The argument is first clamped
/// to [`SimdFloat::EXP_FINITE_HIGH`], so that an element far above an anchor (or +inf) gives a
/// term of e^88 (f32), far above the anchored sum's bound, never the exp's garbage beyond its
/// domain (a cheaper guard than a maximum); NaN stays NaN.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn row_term<V: Lanes>(x: V, shift: V) -> V {
    // Operand order keeps a NaN argument.
    let argument = V::splat(V::Scalar::EXP_FINITE_HIGH).min(x.sub(shift));
    exp_of_bounded(argument, V::splat(V::Scalar::EXP_NORMAL_LOW))
}

/// A frame's node scores from its rows' statistics, in place. On entry `blank` and `emit` hold
/// each row's raw scores x[blank] and x[y] (−inf where there is no label), `shift` the row's
/// shift (its anchor or its maximum, see [`RowStats`]) and `inv_sum`
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
pub(super) unsafe fn normalise_scores<V: Lanes>(
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
