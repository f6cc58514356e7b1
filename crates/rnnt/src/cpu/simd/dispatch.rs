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
    /// x86-64 with AVX2, FMA and F16C: 8 f32 / 4 f64 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F, BW and VL: 16 f32 / 8 f64 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX-512 with BF16 too: the same vectors, bfloat16 rounded by one instruction.
    #[cfg(target_arch = "x86_64")]
    Avx512Bf16,
}

impl Isa {
    /// The best instruction set of this CPU, detected once. `RNNT_SIMD=scalar|avx2|avx512|avx512bf16`
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
            // F16C (float16 conversions) came with the first AVX CPUs, and AVX-512BW/VL
            // (masked 16-bit loads) with every AVX-512 CPU but the Xeon Phi.
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                sets.push(Isa(Set::Avx2));
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                {
                    sets.push(Isa(Set::Avx512));
                    if is_x86_feature_detected!("avx512bf16") {
                        sets.push(Isa(Set::Avx512Bf16));
                    }
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
            #[cfg(target_arch = "x86_64")]
            Set::Avx512Bf16 => "avx512bf16",
        }
    }

    /// The set, which this CPU has.
    #[inline(always)]
    pub(super) fn set(self) -> Set {
        self.0
    }
}

/// Defines a vector set's `pub mod $module_name`: every kernel that the dispatcher calls, compiled
/// with the target features `$features` on the set's vector `T::$vector`, so that the vector
/// methods inline into it.
#[cfg(target_arch = "x86_64")]
macro_rules! entry_points {
    ($module_name:ident, $features:literal, $vector:ident) => {
        /// The kernels compiled for an instruction set (see `entry_points!` in `dispatch`).
        pub mod $module_name {
            use crate::cpu::simd::front::{self, FrameScores, RowStats, ScoreColumns};
            use crate::cpu::simd::grad::{self, FrameRows, GradRow};
            use crate::cpu::simd::element::RowElement;
            use crate::cpu::simd::vector::SimdFloat;
            use crate::cpu::simd::{lattice, math, memory};

            entry_points!(@rows $features, $vector,
                front::row_stats(row: &[E], exps: *mut E, anchor: Option<E::Lane>) -> RowStats);
            entry_points!(@rows $features, $vector, front::frame_scores(
                rows: &[E], len: usize, out: FrameScores<'_>, exps: Option<&mut [E]>,
                columns: ScoreColumns<'_>) -> bool);
            entry_points!(@kernel $features, $vector, front::normalise_scores(
                blank: &mut [T], emit: &mut [T], shift: &mut [T], inv_sum: &mut [T]));
            entry_points!(@rows $features, $vector, grad::grad_rows(
                input: &[E], out: &mut [E], len: usize, params: &[GradRow], stream: bool));
            entry_points!(@rows $features, $vector,
                grad::grad_rows_in_place(out: &mut [E], len: usize, rows: &FrameRows<'_>));
            entry_points!(@rows $features, $vector,
                memory::stream_copy(src: &[E], dst: &mut [E]));
            entry_points!(@rows $features, $vector,
                memory::write_zeros(out: &mut [E], stream: bool));
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
    (@rows $features:literal, $vector:ident,
        $module:ident::$kernel:ident($($arg:ident: $type:ty),* $(,)?) $(-> $ret:ty)?) => {
        #[doc = concat!("`", stringify!($module), "::", stringify!($kernel), "` compiled for `",
            $features, "`, for the element type `E`.")]
        ///
        /// # Safety
        /// The CPU must have these features, and the arguments must meet the kernel's own
        /// conditions (its `# Safety`).
        #[target_feature(enable = $features)]
        pub unsafe fn $kernel<E: RowElement>($($arg: $type),*) $(-> $ret)? {
            // SAFETY: the caller checked the CPU and the kernel's conditions; this function
            // enables the features.
            unsafe { $module::$kernel::<E::$vector, E>($($arg),*) }
        }
    };
}

/// Calls `$module::$kernel::<V>($args)` with V the vector of the instruction set `$isa` (an
/// [`Isa`]) for float type `$float` (the vector sets' `entry` modules hold every kernel); with
/// `rows E`, a row kernel's `$module::$kernel::<V, E>($args)` with V the vector of element type
/// `E` ([`RowElement`](super::element::RowElement)).
macro_rules! dispatch {
    (@sets $isa:expr, $float:ty, [$($scalar:ty),+],
        $module:ident::$kernel:ident($($arg:expr),*)) => {
        match $crate::cpu::simd::dispatch::Isa::set($isa) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of AVX-512 exists only where the CPU has AVX-512F, BW and VL.
            $crate::cpu::simd::dispatch::Set::Avx512 => unsafe {
                $crate::cpu::simd::avx512::entry::$kernel::<$float>($($arg),*)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of AVX-512 BF16 exists only where the CPU has AVX-512F, BW, VL
            // and BF16.
            $crate::cpu::simd::dispatch::Set::Avx512Bf16 => unsafe {
                $crate::cpu::simd::avx512::entry_bf16::$kernel::<$float>($($arg),*)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of AVX2 exists only where the CPU has AVX2, FMA and F16C.
            $crate::cpu::simd::dispatch::Set::Avx2 => unsafe {
                $crate::cpu::simd::avx2::entry::$kernel::<$float>($($arg),*)
            },
            // SAFETY: the scalar vector uses no special instructions.
            $crate::cpu::simd::dispatch::Set::Scalar => unsafe {
                $crate::cpu::simd::$module::$kernel::<$($scalar),+>($($arg),*)
            },
        }
    };
    ($isa:expr, rows $element:ty, $module:ident::$kernel:ident($($arg:expr),*)) => {
        dispatch!(@sets $isa, $element,
            [<$element as $crate::cpu::simd::element::RowElement>::Lane, $element],
            $module::$kernel($($arg),*))
    };
    ($isa:expr, $float:ty, $module:ident::$kernel:ident($($arg:expr),*)) => {
        dispatch!(@sets $isa, $float, [$float], $module::$kernel($($arg),*))
    };
}
