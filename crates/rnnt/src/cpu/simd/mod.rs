//! Vectorised kernels of the three passes for f32 and f64, with one safe entry point each (this
//! module's functions) and the instruction set chosen at run time.
//!
//! Layout (memchr / candle style), one job a file:
//! - `vector`: the interfaces every kernel is written over, [`Lanes`] (a vector) and
//!   [`SimdFloat`] (f32 or f64, with its vector on each instruction set);
//! - `math`: exp, ln, log1p and the log-space sum per lane;
//! - `front`: the front pass's row statistics and scores ([`RowStats`], `frame_scores`);
//! - `grad`: the gradient pass's row writes ([`GradRow`], [`grad_rows_in_place`]);
//! - `lattice`: the α/β lattice's kernels, and the bounds that keep its walk over probabilities
//!   exact (`frame_walks`);
//! - `memory`: prefetches and streaming (non-temporal) stores;
//! - `dispatch`: the instruction set ([`Isa`]), detected once, and the macros that compile each
//!   kernel per set and call the set's version;
//! - `scalar`, `avx2`, `avx512`: the vectors. `scalar` is f32 and f64 themselves, one lane (the
//!   portable fallback; the vector sets handle row tails with masked partial loads and stores
//!   instead); `avx2` and `avx512` are x86-64's (other targets, aarch64 included, use the scalar
//!   version for now: a NEON vector is the missing piece there).
//!
//! Every entry point takes the instruction set to run on: production code passes
//! [`Isa::detected`] (a read of a value detected once), the tests each of [`Isa::available`], so
//! that each specialised version is tested against the scalar one. The dispatch is one match per
//! call; the kernels loop over whole rows, frames or slices inside.
//!
//! Why not auto-vectorisation: the exp is the hot loop of both passes, and libm's `exp` is an
//! opaque call per element. Why f32 arithmetic for f32 input: the passes are memory-bound only if
//! the arithmetic keeps up with 16 bytes per cycle per core, which f64 exps on f32 data do not.
//! The accuracy this costs is bounded by the exp's error (a few ulp, tested) and the f32 rounding
//! of `x − shift` (exact near the shift, within 2^−22 up to 8 above it: see [`RowStats`]), below
//! 1e-6 absolute on a gradient element.
//!
//! Why the passes are written for fewer instructions rather than fewer bytes: on the 2-core
//! AVX-512 machine of the benchmarks each pass is bound per core (a second thread halves its
//! time) well below the memory bus, so every instruction per vector shows in the time.

#[macro_use]
mod dispatch;
mod element;
mod front;
mod grad;
mod lattice;
mod math;
mod memory;
mod scalar;
mod vector;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;

pub use dispatch::Isa;
pub use element::{LoadStore, RowElement};
pub use front::{FrameScores, RowStats, ScoreColumns};
pub use grad::{FrameRows, GradRow};
pub(crate) use lattice::{MAX_LOG_PROB, MIN_LOG_PROB};
pub(crate) use memory::prefetch;
pub use memory::store_fence;
pub use vector::{Lanes, SimdFloat};

// The front pass.

/// The statistics of `row` with the instruction set `isa`, a row of at most
/// `ANCHORED_ROW_LEN` (512) elements shifted by `anchor` (one
/// of its elements) where that allows (see [`RowStats`] and `front::row_stats` for the NaN and
/// infinity conventions).
#[inline]
pub fn row_stats<E: RowElement>(isa: Isa, row: &[E], anchor: Option<E::Lane>) -> RowStats {
    dispatch!(isa, rows E, front::row_stats(row, std::ptr::null_mut(), anchor))
}

/// The front pass's kernel for one frame of `out.len()` rows of `len` elements at the start of
/// `rows`, with the instruction set `isa` (see `front::frame_scores`): each row's statistics (a
/// row of at most `ANCHORED_ROW_LEN` elements anchored on its scores where that allows) and its blank and label scores into
/// `out`; with `exps`, each row's terms exp(x − shift) are also stored at the row's place there
/// (for a row with a finite shift; clamped at the exp's flush bound, not flushed). Returns false
/// if a row holds a NaN or +inf.
///
/// # Panics
/// If `rows` (or `exps`) holds fewer than `out.len()` rows, `out`'s slices differ in length, or
/// a column is outside the rows.
#[inline]
pub(crate) fn frame_scores<E: RowElement>(
    isa: Isa,
    rows: &[E],
    len: usize,
    out: FrameScores<'_>,
    exps: Option<&mut [E]>,
    columns: ScoreColumns<'_>,
) -> bool {
    frame_scores_checked(rows, len, &out, exps.as_deref());
    dispatch!(isa, rows E, front::frame_scores(rows, len, out, exps, columns))
}

/// Panics unless `rows` and `exps` (when given) hold `out.len()` rows of `len` and `out`'s
/// slices are equally long.
fn frame_scores_checked<T>(rows: &[T], len: usize, out: &FrameScores<'_>, exps: Option<&[T]>) {
    let n = out.len();
    assert!(
        [out.blank.len(), out.emit.len(), out.sum.len()] == [n; 3],
        "frame_scores: output slices of different lengths"
    );
    assert!(
        rows.len() >= n * len && exps.is_none_or(|e| e.len() >= n * len),
        "frame_scores: {n} rows of {len} in {} elements (exps {:?})",
        rows.len(),
        exps.map(<[T]>::len)
    );
}

/// A frame's node scores from its rows' statistics, in place, with the instruction set `isa`
/// (see `front::normalise_scores`): `blank` and `emit` from the raw scores to log-probabilities,
/// `shift` (the rows' shifts) and `inv_sum` (from Σ exp(x − shift) to its inverse), 0 for masked
/// rows.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub(crate) fn normalise_scores(
    isa: Isa,
    blank: &mut [f64],
    emit: &mut [f64],
    shift: &mut [f64],
    inv_sum: &mut [f64],
) {
    let n = blank.len();
    assert!(
        emit.len() == n && shift.len() == n && inv_sum.len() == n,
        "normalise_scores: slices of different lengths"
    );
    dispatch!(
        isa,
        f64,
        front::normalise_scores(blank, emit, shift, inv_sum)
    )
}

// The gradient pass.

/// Writes one gradient row with the instruction set `isa` (see [`GradRow`]); `stream` uses
/// non-temporal stores where the set has them (call [`store_fence`] afterwards).
///
/// # Panics
/// If `out` is shorter than `row`.
#[inline]
pub fn grad_row<E: RowElement>(isa: Isa, row: &[E], out: &mut [E], params: &GradRow, stream: bool) {
    let params = std::slice::from_ref(params);
    grad_rows(isa, row, out, row.len(), params, stream);
}

/// Writes the gradient rows of `params.len()` consecutive rows of `len` elements with the
/// instruction set `isa` (see `grad::grad_rows`); `stream` as for [`grad_row`].
///
/// # Panics
/// If `input` or `out` holds fewer rows.
#[inline]
pub(crate) fn grad_rows<E: RowElement>(
    isa: Isa,
    input: &[E],
    out: &mut [E],
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    grad_rows_checked(input, out, len, params);
    dispatch!(isa, rows E, grad::grad_rows(input, out, len, params, stream))
}

/// Panics unless `input` and `out` hold `params.len()` rows of `len`.
fn grad_rows_checked<T>(input: &[T], out: &[T], len: usize, params: &[GradRow]) {
    let needed = params.len() * len;
    assert!(
        input.len() >= needed && out.len() >= needed,
        "grad_rows: {} rows of {len} in {} input and {} output elements",
        params.len(),
        input.len(),
        out.len()
    );
}

/// `grad_rows` of a frame's `rows` from the terms exp(x − shift) that `frame_scores` stored in
/// `out`, in place of the input, with the instruction set `isa` (see `grad::grad_rows_in_place`).
///
/// # Panics
/// If `out` holds fewer rows, or a field of `rows` is shorter than its shifts.
#[inline]
pub fn grad_rows_in_place<E: RowElement>(
    isa: Isa,
    out: &mut [E],
    len: usize,
    rows: &FrameRows<'_>,
) {
    frame_rows_checked(out, len, rows);
    dispatch!(isa, rows E, grad::grad_rows_in_place(out, len, rows))
}

/// Panics unless `out` holds `rows.len()` rows of `len` and every field of `rows` has a value
/// per row.
fn frame_rows_checked<T>(out: &[T], len: usize, rows: &FrameRows<'_>) {
    let n = rows.len();
    assert!(
        out.len() >= n * len
            && [
                rows.inv_sum.len(),
                rows.blank_arcs.len(),
                rows.emit_arcs.len()
            ] == [n; 3],
        "grad_rows_in_place: {n} rows of {len} in {} elements, or fields of other lengths",
        out.len()
    );
}

/// Copies `src` into `dst` with non-temporal stores for the aligned middle, with the instruction
/// set `isa` (see `memory::stream_copy`); call [`store_fence`] afterwards.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub(crate) fn stream_copy<E: RowElement>(isa: Isa, src: &[E], dst: &mut [E]) {
    assert_eq!(src.len(), dst.len(), "stream_copy: lengths differ");
    dispatch!(isa, rows E, memory::stream_copy(src, dst))
}

/// Fills `out` with zeros, streaming the aligned middle when `stream` is set, with the
/// instruction set `isa` (see `memory::write_zeros`; call [`store_fence`] afterwards).
#[inline]
pub(crate) fn write_zeros<E: RowElement>(isa: Isa, out: &mut [E], stream: bool) {
    dispatch!(isa, rows E, memory::write_zeros(out, stream))
}

// Elementary functions over slices.

/// values[k] = exp(values[k]) with the instruction set `isa`, within 2 ulp (see `math::exp`).
#[inline]
pub fn exp_in_place<T: SimdFloat>(isa: Isa, values: &mut [T]) {
    dispatch!(isa, T, math::exp_in_place(values))
}

/// values[k] = ln(values[k]) over positive normal values with the instruction set `isa`, within
/// 1 ulp (see `math::ln`; for the tests of the function itself).
#[cfg(test)]
pub(crate) fn ln_in_place<T: SimdFloat>(isa: Isa, values: &mut [T]) {
    dispatch!(isa, T, math::ln_in_place(values))
}

/// values[k] = ln(1 + values[k]) over values in [0, 1] with the instruction set `isa`, within
/// 1 ulp (see `math::log1p_unit`; for the tests of the function itself).
#[cfg(test)]
pub(crate) fn log1p_unit_in_place<T: SimdFloat>(isa: Isa, values: &mut [T]) {
    dispatch!(isa, T, math::log1p_unit_in_place(values))
}

// The lattice.

/// out[i] = ln(e^a[i] + e^b[i]) with the instruction set `isa`: within 2 ulp of
/// max + ln_1p(exp(min − max)) in correctly rounded arithmetic, exact for −inf operands (see
/// `math::log_add_exp` for the infinity and NaN conventions).
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn log_add_exp<T: SimdFloat>(isa: Isa, a: &[T], b: &[T], out: &mut [T]) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "log_add_exp operands of {} and {} elements into {}",
        a.len(),
        b.len(),
        out.len()
    );
    dispatch!(isa, T, lattice::log_add_exp_slices(a, b, out))
}

/// out[i] = e^log_probs[i] with the instruction set `isa` (see `lattice::probabilities`);
/// whether every finite log-probability lies in [low, high].
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub(crate) fn probabilities<T: SimdFloat>(
    isa: Isa,
    log_probs: &[T],
    out: &mut [T],
    [low, high]: [T; 2],
) -> bool {
    assert_eq!(log_probs.len(), out.len(), "probabilities: lengths differ");
    dispatch!(isa, T, lattice::probabilities(log_probs, out, low, high))
}

/// The α and β walks of a small lattice over probabilities, frame-major, with the instruction
/// set `isa` (see `lattice::frame_walks`): false where a frame leaves the bounds that keep f64
/// precision.
///
/// # Panics
/// If `positions` or the frames (`scales`' length) are 0, or a slice does not hold
/// frames · positions elements (each scale, one per frame).
#[inline]
pub(crate) fn frame_walks<T: SimdFloat>(
    isa: Isa,
    [blank, emit]: [&[T]; 2],
    positions: usize,
    [alpha, beta]: [&mut [T]; 2],
    scales: (&mut [i32], &mut [i32]),
) -> bool {
    let n = scales.0.len() * positions;
    assert!(
        positions > 0 && n > 0 && scales.1.len() == scales.0.len(),
        "frame_walks: {} frames of {positions}",
        scales.0.len()
    );
    assert!(
        [blank.len(), emit.len(), alpha.len(), beta.len()] == [n; 4],
        "frame_walks: slices of other than {n} elements"
    );
    dispatch!(
        isa,
        T,
        lattice::frame_walks(blank, emit, positions, alpha, beta, scales)
    )
}

#[cfg(test)]
mod half_tests;
#[cfg(test)]
mod tests;
