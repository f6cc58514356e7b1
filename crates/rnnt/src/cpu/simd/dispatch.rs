//! Which instruction set runs the kernels: [`Isa`], detected once (and lowered by `RNNT_SIMD`);
//! `entry_points!`, which compiles every kernel for a vector set with its target features; and
//! `dispatch!`, which calls a kernel's version for an [`Isa`], once per call of a safe entry
//! point (the kernels loop over whole rows and frames inside).

use std::sync::OnceLock;

/// An instruction set that the kernels are written for and that this CPU has. [`Isa::detected`]
/// and [`Isa::available`] are the only ways to get one, so a value is the proof that its kernels
/// may run: a safe entry point takes one and dispatches on it with no check of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(Set);

/// The instruction sets of this target that the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Set {
    /// One element at a time, any target.
    Scalar,
    /// x86-64 with AVX2 and FMA: 8 f32 / 4 f64 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F: 16 f32 / 8 f64 lanes.
    #[cfg(target_arch = "x86_64")]
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
        let mut sets = vec![Isa(Set::Scalar)];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                sets.push(Isa(Set::Avx2));
                if is_x86_feature_detected!("avx512f") {
                    sets.push(Isa(Set::Avx512));
                }
            }
        }
        sets
    }

    /// The name used by `RNNT_SIMD` and in reports.
    pub fn name(self) -> &'static str {
        match self.0 {
            Set::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Set::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Set::Avx512 => "avx512",
        }
    }

    /// The set, which this CPU has.
    #[inline(always)]
    pub(super) fn set(self) -> Set {
        self.0
    }
}

/// Defines a vector set's `pub mod entry`: every kernel that the dispatcher calls, compiled with
/// the target features `$features` on the set's vector `T::$vector`, so that the vector methods
/// inline into it.
#[cfg(target_arch = "x86_64")]
macro_rules! entry_points {
    ($features:literal, $vector:ident) => {
        /// The kernels compiled for this instruction set (see `entry_points!` in `dispatch`).
        pub mod entry {
            use crate::cpu::simd::front::{self, FrameScores, RowStats, ScoreColumns};
            use crate::cpu::simd::grad::{self, FrameRows, GradRow};
            use crate::cpu::simd::vector::SimdFloat;
            use crate::cpu::simd::{lattice, math, memory};

            entry_points!(@kernel $features, $vector,
                front::row_stats(row: &[T], exps: *mut T, anchor: Option<T>) -> RowStats);
            entry_points!(@kernel $features, $vector, front::frame_scores(
                rows: &[T], len: usize, out: FrameScores<'_>, exps: Option<&mut [T]>,
                columns: ScoreColumns<'_>) -> bool);
            entry_points!(@kernel $features, $vector, front::normalise_scores(
                blank: &mut [T], emit: &mut [T], shift: &mut [T], inv_sum: &mut [T]));
            entry_points!(@kernel $features, $vector, grad::grad_rows(
                input: &[T], out: &mut [T], len: usize, params: &[GradRow], stream: bool));
            entry_points!(@kernel $features, $vector,
                grad::grad_rows_in_place(out: &mut [T], len: usize, rows: &FrameRows<'_>));
            entry_points!(@kernel $features, $vector,
                memory::stream_copy(src: &[T], dst: &mut [T]));
            entry_points!(@kernel $features, $vector,
                memory::write_zeros(out: &mut [T], stream: bool));
            entry_points!(@kernel $features, $vector, math::exp_in_place(values: &mut [T]));
            entry_points!(@kernel $features, $vector, math::ln_in_place(values: &mut [T]));
            entry_points!(@kernel $features, $vector,
                math::log1p_unit_in_place(values: &mut [T]));
            entry_points!(@kernel $features, $vector,
                lattice::log_add_exp_slices(a: &[T], b: &[T], out: &mut [T]));
            entry_points!(@kernel $features, $vector, lattice::probabilities(
                log_probs: &[T], out: &mut [T], low: T, high: T) -> bool);
            entry_points!(@kernel $features, $vector, lattice::frame_walks(
                blank: &[T], emit: &[T], positions: usize, alpha: &mut [T], beta: &mut [T],
                scales: (&mut [i32], &mut [i32])) -> bool);
        }
    };
    (@kernel $features:literal, $vector:ident,
        $module:ident::$kernel:ident($($arg:ident: $type:ty),* $(,)?) $(-> $ret:ty)?) => {
        #[doc = concat!("`", stringify!($module), "::", stringify!($kernel), "` compiled for `",
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

/// Calls `$module::$kernel::<V>($args)` with V the vector of the instruction set `$isa` (an
/// [`Isa`]) for float type `$float` (the vector sets' `entry` modules hold every kernel).
macro_rules! dispatch {
    ($isa:expr, $float:ty, $module:ident::$kernel:ident($($arg:expr),*)) => {
        match $crate::cpu::simd::dispatch::Isa::set($isa) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of AVX-512 exists only where the CPU has AVX-512F.
            $crate::cpu::simd::dispatch::Set::Avx512 => unsafe {
                $crate::cpu::simd::avx512::entry::$kernel::<$float>($($arg),*)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of AVX2 exists only where the CPU has AVX2 and FMA.
            $crate::cpu::simd::dispatch::Set::Avx2 => unsafe {
                $crate::cpu::simd::avx2::entry::$kernel::<$float>($($arg),*)
            },
            // SAFETY: the scalar vector uses no special instructions.
            $crate::cpu::simd::dispatch::Set::Scalar => unsafe {
                $crate::cpu::simd::$module::$kernel::<$float>($($arg),*)
            },
        }
    };
}
