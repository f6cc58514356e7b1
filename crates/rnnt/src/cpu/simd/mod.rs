//! Vectorised kernels: the row statistics of the front pass, the row write of the gradient pass and
//! the log-space sum of the α/β lattice, for f32 and f64, with one safe entry point each and the
//! instruction set chosen at run time.
//!
//! Layout (memchr / candle style): [`lanes`] defines the small vector interface ([`Lanes`]) and the
//! kernels written once over it, including the vectorised `exp`; [`logs`] adds `ln`, `log1p` and
//! `log_add_exp` over the same interface; [`scalar`] implements the
//! interface one element at a time (the portable fallback; vector sets handle row tails with
//! masked partial loads and stores instead);
//! [`avx2`] and [`avx512`] implement it on x86-64 (other targets, aarch64 included, use the
//! scalar version for now: a NEON vector is the missing piece there). The instruction set is
//! detected once ([`Isa::detected`]) and every call dispatches on it; each specialised version is
//! tested against the scalar one.
//!
//! Why not auto-vectorisation: the exp is the hot loop of both passes, and libm's `exp` is an
//! opaque call per element. Why f32 arithmetic for f32 input: the passes are memory-bound only if
//! the arithmetic keeps up with 16 bytes per cycle per core, which f64 exps on f32 data do not.
//! The accuracy this costs is bounded by the exp's error (a few ulp, tested) and the f32 rounding
//! of `x − shift` (exact near the shift, within 2^−22 up to 8 above it: see [`RowStats`]), below
//! 1e-6 absolute on a gradient element.
//!
//! Why the passes are written for fewer instructions rather than fewer bytes: on the 2-core
//! AVX-512 machine of the benchmarks each pass is bound per core (one thread to two halves its
//! time) well below the bus (a prefetched read loop reaches 33 GB/s on two cores, the front
//! pass 20), so every instruction per vector shows in the time.

pub mod lanes;
pub mod logs;
pub mod scalar;

/// Defines a vector set's `pub mod entry`: every kernel of [`lanes`] and [`logs`] that the
/// dispatcher calls, compiled with the target features `$features` on the set's vector
/// `T::$vector`, so that the vector methods inline into it.
#[cfg(target_arch = "x86_64")]
macro_rules! entry_points {
    ($features:literal, $vector:ident) => {
        /// The kernels compiled for this instruction set (see `entry_points!` in `simd`).
        pub mod entry {
            use crate::cpu::simd::lanes::{self, FrameRows, FrameScores, GradRow, RowStats, ScoreColumns};
            use crate::cpu::simd::logs;
            use crate::cpu::simd::SimdFloat;

            entry_points!(@kernel $features, $vector,
                lanes::row_stats(row: &[T], exps: *mut T, anchor: Option<T>) -> RowStats);
            entry_points!(@kernel $features, $vector, lanes::frame_scores(
                rows: &[T], len: usize, out: FrameScores<'_>, exps: Option<&mut [T]>,
                columns: ScoreColumns<'_>) -> bool);
            entry_points!(@kernel $features, $vector, lanes::grad_rows(
                input: &[T], out: &mut [T], len: usize, params: &[GradRow], stream: bool));
            entry_points!(@kernel $features, $vector,
                lanes::grad_rows_in_place(out: &mut [T], len: usize, rows: &FrameRows<'_>));
            entry_points!(@kernel $features, $vector, lanes::exp_in_place(values: &mut [T]));
            entry_points!(@kernel $features, $vector, logs::ln_in_place(values: &mut [T]));
            entry_points!(@kernel $features, $vector, logs::normalise_scores(
                blank: &mut [T], emit: &mut [T], shift: &mut [T], inv_sum: &mut [T]));
            entry_points!(@kernel $features, $vector,
                lanes::stream_copy(src: &[T], dst: &mut [T]));
            entry_points!(@kernel $features, $vector,
                lanes::write_zeros(out: &mut [T], stream: bool));
            entry_points!(@kernel $features, $vector,
                logs::log_add_exp_slices(a: &[T], b: &[T], out: &mut [T]));
            entry_points!(@kernel $features, $vector,
                logs::log1p_unit_in_place(values: &mut [T]));
            entry_points!(@kernel $features, $vector, logs::probabilities(
                log_probs: &[T], out: &mut [T], low: T, high: T) -> bool);
            entry_points!(@kernel $features, $vector, logs::frame_walks(
                blank: &[T], emit: &[T], positions: usize, alpha: &mut [T], beta: &mut [T],
                scales: (&mut [i32], &mut [i32])) -> bool);
        }
    };
    (@kernel $features:literal, $vector:ident,
        $module:ident::$kernel:ident($($arg:ident: $type:ty),* $(,)?) $(-> $ret:ty)?) => {
        #[doc = concat!("[`", stringify!($module), "::", stringify!($kernel), "`] compiled for `",
            $features, "`.")]
        ///
        /// # Safety
        /// The CPU must have these features, and the arguments must meet the kernel's own
        /// conditions (its `# Safety`).
        #[target_feature(enable = $features)]
        pub unsafe fn $kernel<T: SimdFloat>($($arg: $type),*) $(-> $ret)? {
            // SAFETY: the caller checked the CPU and the kernel's conditions; this function
            // enables the features.
            unsafe { $module::$kernel::<T::$vector>($($arg),*) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;

use std::sync::OnceLock;

pub use lanes::{
    FrameRows, FrameScores, GradRow, Lanes, RowStats, ScoreColumns, ANCHORED_SUM_HIGH,
};

/// The instruction sets the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// One element at a time, any target.
    Scalar,
    /// x86-64 with AVX2 and FMA: 8 f32 / 4 f64 lanes.
    Avx2,
    /// x86-64 with AVX-512F: 16 f32 / 8 f64 lanes.
    Avx512,
}

impl Isa {
    /// The best instruction set of this CPU, detected once. `RNNT_SIMD=scalar|avx2|avx512`
    /// lowers it (for comparisons); a set the CPU lacks is ignored.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let available = Isa::available();
            let wanted = std::env::var("RNNT_SIMD").ok().and_then(|name| {
                available
                    .iter()
                    .copied()
                    .find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
            });
            wanted.unwrap_or(*available.last().expect("scalar is always available"))
        })
    }

    /// Every instruction set this CPU can run, worst first (scalar is always there).
    pub fn available() -> Vec<Isa> {
        let mut sets = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                sets.push(Isa::Avx2);
                if is_x86_feature_detected!("avx512f") {
                    sets.push(Isa::Avx512);
                }
            }
        }
        sets
    }

    /// The name used by `RNNT_SIMD` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// A float type with vectorised kernels: f32 or f64. Maps the type to its vector per instruction
/// set, so that each kernel is written once and instantiated per (set, type).
pub trait SimdFloat: scalar::Real {
    /// Its AVX2 vector.
    #[cfg(target_arch = "x86_64")]
    type Avx2: Lanes<Scalar = Self>;
    /// Its AVX-512 vector.
    #[cfg(target_arch = "x86_64")]
    type Avx512: Lanes<Scalar = Self>;
}

impl SimdFloat for f32 {
    #[cfg(target_arch = "x86_64")]
    type Avx2 = avx2::F32x8;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = avx512::F32x16;
}

impl SimdFloat for f64 {
    #[cfg(target_arch = "x86_64")]
    type Avx2 = avx2::F64x4;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = avx512::F64x8;
}

/// Calls `$module::$kernel::<V>($args)` with V the vector of `$isa` for float type `$float`
/// (`$module` is `lanes` when left out; the vector sets' `entry` modules hold every kernel).
macro_rules! dispatch {
    ($isa:expr, $float:ty, $kernel:ident($($arg:expr),*)) => {
        dispatch!($isa, $float, lanes::$kernel($($arg),*))
    };
    ($isa:expr, $float:ty, $module:ident::$kernel:ident($($arg:expr),*)) => {
        match $isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::available` lists AVX-512 only when the CPU has AVX-512F.
            Isa::Avx512 => unsafe { avx512::entry::$kernel::<$float>($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::available` lists AVX2 only when the CPU has AVX2 and FMA.
            Isa::Avx2 => unsafe { avx2::entry::$kernel::<$float>($($arg),*) },
            // SAFETY: the scalar vector uses no special instructions.
            _ => unsafe { $module::$kernel::<$float>($($arg),*) },
        }
    };
}

/// The statistics of a row with the instruction set `isa`, a short row shifted by `anchor` (one
/// of its elements) where that allows (see [`RowStats`] and [`lanes::row_stats`] for the NaN
/// and infinity conventions).
///
/// # Panics
/// If `isa` is not in [`Isa::available`].
pub fn row_stats_with<T: SimdFloat>(isa: Isa, row: &[T], anchor: Option<T>) -> RowStats {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    dispatch!(isa, T, row_stats(row, std::ptr::null_mut(), anchor))
}

/// [`frame_scores`] with the instruction set `isa` (for tests).
///
/// # Panics
/// If `isa` is not in [`Isa::available`], `rows` (or `exps`) holds fewer than `out.len()` rows,
/// `out`'s slices differ in length, or a column is outside the rows.
pub fn frame_scores_with<T: SimdFloat>(
    isa: Isa,
    rows: &[T],
    len: usize,
    out: FrameScores<'_>,
    exps: Option<&mut [T]>,
    columns: ScoreColumns<'_>,
) -> bool {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    frame_scores_checked(rows, len, &out, exps.as_deref());
    dispatch!(isa, T, frame_scores(rows, len, out, exps, columns))
}

/// [`row_stats_with`] on the detected instruction set.
#[inline]
pub fn row_stats<T: SimdFloat>(row: &[T], anchor: Option<T>) -> RowStats {
    dispatch!(
        Isa::detected(),
        T,
        row_stats(row, std::ptr::null_mut(), anchor)
    )
}

/// The front pass's kernel for one frame of `out.len()` rows of `len` elements at the start of
/// `rows` (see [`lanes::frame_scores`]): each row's statistics (a short row anchored on its
/// scores where that allows) and its blank and label scores into `out`; with `exps`, each row's
/// terms exp(x − shift) are also stored at the row's place there (for a row with a finite
/// shift; clamped at the exp's flush bound, not flushed). Returns false if a row holds a NaN or
/// +inf.
///
/// # Panics
/// If `rows` (or `exps`) holds fewer than `out.len()` rows, `out`'s slices differ in length, or
/// a column is outside the rows.
#[inline]
pub fn frame_scores<T: SimdFloat>(
    rows: &[T],
    len: usize,
    out: FrameScores<'_>,
    exps: Option<&mut [T]>,
    columns: ScoreColumns<'_>,
) -> bool {
    frame_scores_checked(rows, len, &out, exps.as_deref());
    dispatch!(
        Isa::detected(),
        T,
        frame_scores(rows, len, out, exps, columns)
    )
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

/// Writes one gradient row with the instruction set `isa` (see [`lanes::grad_row`]);
/// `stream` uses non-temporal stores where the set has them (call [`store_fence`] afterwards).
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or `out` is shorter than `row`.
pub fn grad_row_with<T: SimdFloat>(
    isa: Isa,
    row: &[T],
    out: &mut [T],
    params: &GradRow,
    stream: bool,
) {
    grad_rows_with(
        isa,
        row,
        out,
        row.len(),
        std::slice::from_ref(params),
        stream,
    );
}

/// [`grad_row_with`] on the detected instruction set.
#[inline]
pub fn grad_row<T: SimdFloat>(row: &[T], out: &mut [T], params: &GradRow, stream: bool) {
    grad_rows(row, out, row.len(), std::slice::from_ref(params), stream);
}

/// Writes the gradient rows of `params.len()` consecutive rows of `len` elements with the
/// instruction set `isa` (see [`lanes::grad_rows`]).
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or `input` or `out` holds fewer rows.
pub fn grad_rows_with<T: SimdFloat>(
    isa: Isa,
    input: &[T],
    out: &mut [T],
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    grad_rows_checked(input, out, len, params);
    dispatch!(isa, T, grad_rows(input, out, len, params, stream))
}

/// [`grad_rows_with`] on the detected instruction set.
#[inline]
pub fn grad_rows<T: SimdFloat>(
    input: &[T],
    out: &mut [T],
    len: usize,
    params: &[GradRow],
    stream: bool,
) {
    grad_rows_checked(input, out, len, params);
    dispatch!(
        Isa::detected(),
        T,
        grad_rows(input, out, len, params, stream)
    )
}

/// [`grad_rows`] of a frame's `rows` from the terms exp(x − shift) that [`frame_scores`] stored in
/// `out`, in place of the input, with the instruction set `isa` (see
/// [`lanes::grad_rows_in_place`]).
///
/// # Panics
/// If `isa` is not in [`Isa::available`], `out` holds fewer rows, or a field of `rows` is
/// shorter than its shifts.
pub fn grad_rows_in_place_with<T: SimdFloat>(
    isa: Isa,
    out: &mut [T],
    len: usize,
    rows: &FrameRows<'_>,
) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    frame_rows_checked(out, len, rows);
    dispatch!(isa, T, grad_rows_in_place(out, len, rows))
}

/// [`grad_rows_in_place_with`] on the detected instruction set.
#[inline]
pub fn grad_rows_in_place<T: SimdFloat>(out: &mut [T], len: usize, rows: &FrameRows<'_>) {
    frame_rows_checked(out, len, rows);
    dispatch!(Isa::detected(), T, grad_rows_in_place(out, len, rows))
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

/// Copies `src` into `dst` with non-temporal stores for the aligned middle (see
/// [`lanes::stream_copy`]); call [`store_fence`] afterwards.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn stream_copy<T: SimdFloat>(src: &[T], dst: &mut [T]) {
    assert_eq!(src.len(), dst.len(), "stream_copy: lengths differ");
    dispatch!(Isa::detected(), T, stream_copy(src, dst))
}

/// Fills `out` with zeros, streaming the aligned middle when `stream` is set (see
/// [`lanes::write_zeros`]; call [`store_fence`] afterwards).
#[inline]
pub fn write_zeros<T: SimdFloat>(out: &mut [T], stream: bool) {
    dispatch!(Isa::detected(), T, write_zeros(out, stream))
}

/// exp over a slice with the instruction set `isa` (for tests and benchmarks of the exp itself).
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or the slices differ in length.
pub fn exp_with<T: SimdFloat>(isa: Isa, x: &[T], out: &mut [T]) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    out.copy_from_slice(x);
    dispatch!(isa, T, exp_in_place(out))
}

/// values[k] = exp(values[k]) on the detected instruction set, within 2 ulp.
#[inline]
pub fn exp_in_place<T: SimdFloat>(values: &mut [T]) {
    dispatch!(Isa::detected(), T, exp_in_place(values))
}

/// ln over a slice of positive normal values with the instruction set `isa` (for tests).
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or the slices differ in length.
pub fn ln_with<T: SimdFloat>(isa: Isa, x: &[T], out: &mut [T]) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    out.copy_from_slice(x);
    dispatch!(isa, T, logs::ln_in_place(out))
}

/// A frame's node scores from its rows' statistics, in place (see [`logs::normalise_scores`]):
/// `blank` and `emit` from the raw scores to log-probabilities, `shift` (the rows' shifts) and
/// `inv_sum` (from Σ exp(x − shift) to its inverse), 0 for masked rows.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn normalise_scores(
    blank: &mut [f64],
    emit: &mut [f64],
    shift: &mut [f64],
    inv_sum: &mut [f64],
) {
    normalise_scores_with(Isa::detected(), blank, emit, shift, inv_sum);
}

/// [`normalise_scores`] with the instruction set `isa`.
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or the slices differ in length.
pub fn normalise_scores_with(
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
        logs::normalise_scores(blank, emit, shift, inv_sum)
    )
}

/// out[i] = ln(e^a[i] + e^b[i]) with the instruction set `isa` (see [`logs::log_add_exp`] for the
/// infinity and NaN conventions).
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or the slices differ in length.
pub fn log_add_exp_with<T: SimdFloat>(isa: Isa, a: &[T], b: &[T], out: &mut [T]) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    log_add_exp_checked(a, b, out);
    dispatch!(isa, T, logs::log_add_exp_slices(a, b, out))
}

/// [`log_add_exp_with`] on the detected instruction set: within 2 ulp of
/// max + ln_1p(exp(min − max)) in correctly rounded arithmetic, exact for −inf operands.
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn log_add_exp<T: SimdFloat>(a: &[T], b: &[T], out: &mut [T]) {
    log_add_exp_checked(a, b, out);
    dispatch!(Isa::detected(), T, logs::log_add_exp_slices(a, b, out))
}

/// out[i] = e^log_probs[i] on the detected instruction set (see [`logs::probabilities`]);
/// whether every finite log-probability lies in [low, high].
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn probabilities<T: SimdFloat>(log_probs: &[T], out: &mut [T], [low, high]: [T; 2]) -> bool {
    probabilities_with(Isa::detected(), log_probs, out, [low, high])
}

/// [`probabilities`] with the instruction set `isa`.
///
/// # Panics
/// As [`probabilities`], and if `isa` is not in [`Isa::available`].
#[inline]
pub fn probabilities_with<T: SimdFloat>(
    isa: Isa,
    log_probs: &[T],
    out: &mut [T],
    [low, high]: [T; 2],
) -> bool {
    if isa != Isa::detected() {
        assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    }
    assert_eq!(log_probs.len(), out.len(), "probabilities: lengths differ");
    dispatch!(isa, T, logs::probabilities(log_probs, out, low, high))
}

/// The α and β walks of a small lattice over probabilities, frame-major, on the detected
/// instruction set (see [`logs::frame_walks`]): false where a frame leaves the bounds that keep
/// f64 precision.
///
/// # Panics
/// If `positions` or the frames (`scales`' length) are 0, or a slice does not hold
/// frames · positions elements (each scale, one per frame).
#[inline]
pub fn frame_walks<T: SimdFloat>(
    [blank, emit]: [&[T]; 2],
    positions: usize,
    [alpha, beta]: [&mut [T]; 2],
    scales: (&mut [i32], &mut [i32]),
) -> bool {
    frame_walks_with(
        Isa::detected(),
        [blank, emit],
        positions,
        [alpha, beta],
        scales,
    )
}

/// [`frame_walks`] with the instruction set `isa`.
///
/// # Panics
/// As [`frame_walks`], and if `isa` is not in [`Isa::available`] (checked only here: the
/// detected set needs no check).
#[inline]
pub fn frame_walks_with<T: SimdFloat>(
    isa: Isa,
    [blank, emit]: [&[T]; 2],
    positions: usize,
    [alpha, beta]: [&mut [T]; 2],
    scales: (&mut [i32], &mut [i32]),
) -> bool {
    if isa != Isa::detected() {
        assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    }
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
        logs::frame_walks(blank, emit, positions, alpha, beta, scales)
    )
}

/// Panics unless the operands and the output of a log_add_exp have one length.
fn log_add_exp_checked<T>(a: &[T], b: &[T], out: &[T]) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "log_add_exp operands of {} and {} elements into {}",
        a.len(),
        b.len(),
        out.len()
    );
}

/// ln(1 + z) over a slice of z in [0, 1] with the instruction set `isa` (for tests and benchmarks
/// of [`logs::log1p_unit`] itself).
///
/// # Panics
/// If `isa` is not in [`Isa::available`] or the slices differ in length.
pub fn log1p_unit_with<T: SimdFloat>(isa: Isa, z: &[T], out: &mut [T]) {
    assert!(Isa::available().contains(&isa), "{isa:?} is not available");
    out.copy_from_slice(z);
    dispatch!(isa, T, logs::log1p_unit_in_place(out))
}

/// Hints that the cache line holding `*ptr` will be read soon (a no-op off x86-64). `ptr` may
/// point anywhere, in bounds or not: nothing is dereferenced and a prefetch never faults.
#[inline(always)]
pub fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    prefetch_with_hint::<{ std::arch::x86_64::_MM_HINT_T0 }, T>(ptr);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Hints that the cache line holding `*ptr` will be read, but not so soon that it should take
/// an L1 line yet: it is brought into L2 (a no-op off x86-64). Like [`prefetch`], nothing is
/// dereferenced and any `ptr` is allowed.
#[inline(always)]
pub fn prefetch_to_l2<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    prefetch_with_hint::<{ std::arch::x86_64::_MM_HINT_T2 }, T>(ptr);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// `_mm_prefetch` with the locality hint `HINT`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_with_hint<const HINT: i32, T>(ptr: *const T) {
    // SAFETY: SSE is part of the x86-64 baseline, and a prefetch reads nothing and never faults.
    unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(ptr.cast::<i8>()) };
}

/// Orders this thread's non-temporal stores before whatever it does next (a no-op where
/// [`grad_row`] never streams). Call it once after a run of streamed rows.
#[inline]
pub fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests;
