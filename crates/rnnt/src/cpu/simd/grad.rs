//! The gradient pass's row kernels: each row's gradient ([`GradRow`]) from the input row and the
//! front pass's statistics ([`grad_rows`]), or from the softmax terms the front pass stored in the
//! output, in place ([`FrameRows`], [`grad_rows_in_place`]).

use crate::cpu::simd::element::{LoadStore, RowElement};
use crate::cpu::simd::front::short_row_len;
use crate::cpu::simd::math::exp_above;
use crate::cpu::simd::memory::{
    prefetch, prefetch_distances, prefetch_to_l2, write_vectors, VectorSource,
};
use crate::cpu::simd::vector::{Lanes, SimdFloat};

/// What the gradient pass writes into one row: out[k] = scale · clip(coef · softmax(x)[k] −
/// arc(k)), with softmax(x)[k] = exp(x[k] − shift) · inv_sum, arc(k) the given occupancies at
/// their indices and 0 elsewhere, and clip the clamp to [−clip, clip].
///
/// `shift` is the row's shift and `inv_sum` is 1 / Σ exp(x − shift), both from the front pass
/// ([`RowStats`](super::RowStats)): the exponent x − shift is then below 8 and exact where the softmax is large,
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
    pub fn writes_only_zeros<T: SimdFloat>(&self) -> bool {
        let plan = self.plan::<T>();
        !plan.softmax && plan.arcs.iter().all(|&(_, amount)| amount == 0.0)
    }

    /// The scalar decisions of the vector kernel for element type `T`.
    #[inline(always)]
    fn plan<T: SimdFloat>(&self) -> RowPlan {
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
fn flush_bounds<T: SimdFloat>(smallest: f64) -> (f64, f64) {
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
    fn plan_writes<T: SimdFloat>(&self, first: usize, len: usize, writes: &mut [RowWrite<T>]) {
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

/// Writes the gradient rows (see [`GradRow`]) of the `params.len()` consecutive rows of `len`
/// elements of `input` into the same rows of `out`: short unstreamed rows (≤ 2·LANES) four at a
/// time, side by side (as in [`frame_scores`](super::front::frame_scores); the same bits as one at
/// a time), the others one by one. With `stream`, the aligned middle of each row is written with
/// [`Lanes::stream`].
///
/// The arcs are subtracted in the vector's precision from the lanes that hold them, so that each
/// element is computed and stored once, whole vectors at a time (partial ones at the ends).
///
/// # Safety
/// The CPU must have `V`'s instruction set; `input` and `out` hold `params.len()` rows of `len`.
#[inline(always)]
pub(super) unsafe fn grad_rows<V: LoadStore<E>, E: RowElement>(
    input: &[E],
    out: &mut [E],
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    debug_assert!(input.len() >= params.len() * len && out.len() >= params.len() * len);
    grad_rows_from::<V, E, GradSource<V, E>>(input.as_ptr(), out.as_mut_ptr(), len, params, stream);
}

/// [`grad_rows`] of a frame's `rows` from the terms exp(x − shift) that
/// [`frame_scores`](super::front::frame_scores) stored
/// in `out` itself, in place of the input (unstreamed): where the gradient stays in cache, a
/// store in the front pass is cheaper than a second exp. A row with a softmax term reads its
/// terms before it writes its gradient over them; the flush bound applies to the term, with the
/// same bound ([`RowPlan::exp_floor`]) as on the exp's argument from the input.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out` holds `rows.len()` rows of `len`, with the
/// stored terms in every row with a softmax term.
#[inline(always)]
pub(super) unsafe fn grad_rows_in_place<V: LoadStore<E>, E: RowElement>(
    out: &mut [E],
    len: usize,
    rows: &FrameRows<'_>,
) {
    debug_assert!(out.len() >= rows.len() * len);
    let output = out.as_mut_ptr();
    if V::LANES < len && len <= short_row_len::<V>() {
        match len.div_ceil(V::LANES) {
            2 => return short_rows_in_place::<V, E, 2>(output, len, rows),
            3 => return short_rows_in_place::<V, E, 3>(output, len, rows),
            4 => return short_rows_in_place::<V, E, 4>(output, len, rows),
            _ => {}
        }
    }
    // Other lengths through the general kernel, a chunk of rows' parameters at a time.
    for first in (0..rows.len()).step_by(PLANNED_ROWS) {
        let count = PLANNED_ROWS.min(rows.len() - first);
        let mut params = [GradRow::NONE; PLANNED_ROWS];
        for (u, params) in params[..count].iter_mut().enumerate() {
            *params = rows.row(first + u);
        }
        let at = output.add(first * len);
        grad_rows_from::<V, E, StoredExpSource<V, E>>(at, at, len, &params[..count], false);
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
unsafe fn grad_rows_from<V: LoadStore<E>, E: RowElement, S: SoftmaxSource<V, E>>(
    input: *const E,
    out: *mut E,
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    let mut done = 0;
    if !stream && len > 0 && len <= 2 * V::LANES {
        for (g, group) in params.chunks_exact(SHORT_ROWS).enumerate() {
            let first = g * SHORT_ROWS * len;
            // SAFETY: the group's rows lie within the rows the caller passes.
            short_grad_rows::<V, E, S>(
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

/// [`grad_rows`] (unstreamed) of [`SHORT_ROWS`] consecutive rows of `len` ≤ 2·LANES elements, the
/// rows side by side: each row's first vector, then each row's second, then the stores, the same
/// vectors [`write_vectors`] would store.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `input` and `out` point to SHORT_ROWS · `len` valid
/// elements; 0 < `len` ≤ 2·LANES.
#[inline(always)]
unsafe fn short_grad_rows<V: LoadStore<E>, E: RowElement, S: SoftmaxSource<V, E>>(
    input: *const E,
    out: *mut E,
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
            Some(n) => first.store_partial_to(row, n),
            None => first.store_to(row),
        }
        match (second_len, second_partial) {
            (0, _) => {}
            (_, Some(n)) => second.store_partial_to(row.add(lanes), n),
            (_, None) => second.store_to(row.add(lanes)),
        }
    }
}

/// [`grad_rows_in_place`] of short rows of `N` vectors (LANES < `len` ≤ N·LANES, at most
/// [`short_row_len`]: S1's rows of 29 f32 are two AVX-512 vectors, four AVX2 ones),
/// [`PLANNED_ROWS`] at a time: first each row's scalar decisions ([`GradRow::plan`]) into a
/// small [`RowWrite`] array, from the rows' contiguous fields (which the compiler vectorises: from
/// an array of `GradRow`s it would gather each field, and the array would be built first), then the
/// rows' `N` vectors each, the last ending at the row's end (overlapping the one before: the
/// overlap is computed twice, the same way), with the arcs subtracted through lane masks. The
/// same arithmetic in the same order as the general kernel, so the same bits.
///
/// Why not the general kernel: its last vector is a masked store, and a masked store holds up any
/// later load from its 64 bytes (masked-off lanes included) until it is written to the cache,
/// which in place is the next row's first load; and its arcs are a branch per vector on a lane
/// that varies from row to row. (Subtracting the arcs afterwards from memory instead is slower
/// still: those loads wait for the vector stores.)
///
/// # Safety
/// The CPU must have `V`'s instruction set; `out` holds `rows.len()` rows of `len`, with the
/// stored terms in every row with a softmax term; (N − 1)·LANES < `len` ≤ N·LANES, `len` ≤ 32.
#[inline(always)]
unsafe fn short_rows_in_place<V: LoadStore<E>, E: RowElement, const N: usize>(
    out: *mut E,
    len: usize,
    rows: &FrameRows<'_>,
) {
    debug_assert!((N - 1) * V::LANES < len && len <= N * V::LANES && len <= 32);
    // Each vector's first element: whole vectors from the row's start, the last one ending at
    // its end.
    let offsets: [usize; N] = std::array::from_fn(|j| {
        if j + 1 < N {
            j * V::LANES
        } else {
            len - V::LANES
        }
    });
    let clipped = rows.clip < f64::INFINITY;
    for first in (0..rows.len()).step_by(PLANNED_ROWS) {
        let count = PLANNED_ROWS.min(rows.len() - first);
        let mut writes = [RowWrite::<V::Scalar>::NONE; PLANNED_ROWS];
        let writes = &mut writes[..count];
        rows.plan_writes(first, len, writes);
        let at = out.add(first * len);
        // SAFETY: the chunk's rows lie within the rows the caller passes; every offset + LANES
        // is at most `len`.
        if clipped {
            write_short_rows::<V, E, N, true>(at, len, &offsets, writes);
        } else {
            write_short_rows::<V, E, N, false>(at, len, &offsets, writes);
        }
    }
}

/// Rows planned at a time by [`short_rows_in_place`].
const PLANNED_ROWS: usize = 16;

/// One row's write in [`short_rows_in_place`], in the element type: the decisions of
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

impl<T: SimdFloat> RowWrite<T> {
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

/// The rows of [`short_rows_in_place`] from their `writes`: all vectors of a row loaded before
/// any is stored (in place, the last reads terms the one before overwrites), the clip only where
/// a row of the chunk has one.
///
/// # Safety
/// As [`short_rows_in_place`], with `offsets` its vectors' first elements.
#[inline(always)]
unsafe fn write_short_rows<V: LoadStore<E>, E: RowElement, const N: usize, const CLIPPED: bool>(
    rows: *mut E,
    len: usize,
    offsets: &[usize; N],
    writes: &[RowWrite<V::Scalar>],
) {
    for (r, write) in writes.iter().enumerate() {
        let row = rows.add(r * len);
        let (factor, floor) = (V::splat(write.factor), V::splat(write.floor));
        let mut vectors = [V::splat(V::Scalar::ZERO); N];
        for (vector, &offset) in vectors.iter_mut().zip(offsets) {
            *vector = V::load_from(row.add(offset));
        }
        for (vector, &offset) in vectors.iter_mut().zip(offsets) {
            let mut d = vector.zero_where_below(*vector, floor).mul(factor);
            for &(bit, amount) in &write.arcs {
                d = d.sub_in_lanes(bit >> offset, amount);
            }
            if CLIPPED {
                let (clip, scale) = (V::splat(write.clip), V::splat(write.scale));
                let minus_clip = V::splat(V::Scalar::ZERO).sub(clip);
                d = minus_clip.max(clip.min(d)).mul(scale);
            }
            *vector = d;
        }
        for (vector, &offset) in vectors.iter().zip(offsets) {
            vector.store_to(row.add(offset));
        }
    }
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

/// Where a gradient row's softmax term comes from: the input row, or the terms the front pass
/// stored.
trait SoftmaxSource<V: LoadStore<E>, E>: VectorSource<V> {
    /// The source of the row with `params` whose input (or stored terms) start at `input`.
    ///
    /// # Safety
    /// The CPU must have `V`'s instruction set.
    unsafe fn for_row(params: &GradRow, input: *const E) -> Self;
}

/// A gradient row's values from its input row.
struct GradSource<V: Lanes, E> {
    kernel: RowKernel<V>,
    input: *const E,
}

impl<V: LoadStore<E>, E: RowElement> SoftmaxSource<V, E> for GradSource<V, E> {
    #[inline(always)]
    unsafe fn for_row(params: &GradRow, input: *const E) -> Self {
        GradSource {
            kernel: RowKernel::new(params, false),
            input,
        }
    }
}

impl<V: LoadStore<E>, E: RowElement> VectorSource<V> for GradSource<V, E> {
    #[inline(always)]
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V {
        // A row without a softmax term (a node no path of note goes through: on long items, most
        // of the lattice) does not read its input at all.
        if !self.kernel.softmax {
            return self.kernel.finish(V::splat(V::Scalar::ZERO), i);
        }
        let x = load_row_vector::<V, E>(self.input, i, len);
        self.kernel.finish(
            exp_above(x.sub(self.kernel.shift), self.kernel.floor).mul(self.kernel.factor),
            i,
        )
    }
}

/// A gradient row's values from the terms exp(x − shift) stored in the output row itself.
struct StoredExpSource<V: Lanes, E> {
    kernel: RowKernel<V>,
    exps: *const E,
}

impl<V: LoadStore<E>, E: RowElement> SoftmaxSource<V, E> for StoredExpSource<V, E> {
    #[inline(always)]
    unsafe fn for_row(params: &GradRow, exps: *const E) -> Self {
        StoredExpSource {
            kernel: RowKernel::new(params, true),
            exps,
        }
    }
}

impl<V: LoadStore<E>, E: RowElement> VectorSource<V> for StoredExpSource<V, E> {
    #[inline(always)]
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V {
        let zero = V::splat(V::Scalar::ZERO);
        if !self.kernel.softmax {
            return self.kernel.finish(zero, i);
        }
        let e = load_row_vector::<V, E>(self.exps, i, len);
        // Flushed before the product, which would otherwise be subnormal.
        let kept = e.zero_where_below(e, self.kernel.floor);
        self.kernel.finish(kept.mul(self.kernel.factor), i)
    }
}

/// The gradient kernels' read of a row: elements i..i + LANES of `row` (prefetching ahead into
/// L1 and L2), or the `len` < LANES elements i..i + len with 0 in the other lanes.
///
/// # Safety
/// The CPU must have `V`'s instruction set; the elements must be valid to read.
#[inline(always)]
unsafe fn load_row_vector<V: LoadStore<E>, E: RowElement>(
    row: *const E,
    i: usize,
    len: Option<usize>,
) -> V {
    match len {
        Some(len) => V::load_partial_from(row.add(i), len, V::Scalar::ZERO),
        None => {
            let (near, far) = prefetch_distances::<E>();
            prefetch(row.wrapping_add(i + near));
            prefetch_to_l2(row.wrapping_add(i + far));
            V::load_from(row.add(i))
        }
    }
}
