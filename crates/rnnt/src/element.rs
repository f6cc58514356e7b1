//! The element types the loss reads and writes.
//!
//! Logits may be float32, float64, float16 or bfloat16 (the half types widen exactly to f32 and
//! are rounded to nearest on the way back). Targets and lengths may be int32 or int64 ([`Index`]).
//! Whatever the input type, α and β are accumulated in f64.

use std::fmt::{Debug, Display};

use crate::cpu::kernels::Kernels;

/// A floating-point type the loss accepts for logits / log-probs and writes for the gradient:
/// `f32`, `f64`, `half::f16` or `half::bf16`.
///
/// Sealed: its supertrait holds the CPU backend's row kernels for the type, which this crate
/// alone implements.
pub trait Float: Kernels + Copy + Send + Sync + Debug + Display + PartialOrd + 'static {
    /// The dtype's name as users know it (`"float32"`).
    const DTYPE: &'static str;
    /// Widens to f64 exactly (or as exactly as the type allows).
    fn to_f64(self) -> f64;
    /// Narrows from f64, rounding to nearest.
    fn from_f64(value: f64) -> Self;
    /// The additive identity, written into padding.
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
}

impl Float for f32 {
    const DTYPE: &'static str = "float32";
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Float for f64 {
    const DTYPE: &'static str = "float64";
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        value
    }
}

impl Float for half::f16 {
    const DTYPE: &'static str = "float16";
    #[inline]
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        half::f16::from_f64(value)
    }
}

impl Float for half::bf16 {
    const DTYPE: &'static str = "bfloat16";
    #[inline]
    fn to_f64(self) -> f64 {
        half::bf16::to_f64(self)
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        half::bf16::from_f64(value)
    }
}

/// An integer type accepted for targets and lengths: `i32` or `i64`. Sealed.
pub trait Index: sealed::Sealed + Copy + Send + Sync + Debug + Display + 'static {
    /// The dtype's name as users know it (`"int32"`).
    const DTYPE: &'static str;
    /// Widens to i64 exactly.
    fn to_i64(self) -> i64;
}

impl Index for i32 {
    const DTYPE: &'static str = "int32";
    #[inline]
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

impl Index for i64 {
    const DTYPE: &'static str = "int64";
    #[inline]
    fn to_i64(self) -> i64 {
        self
    }
}

/// Keeps [`Index`] implemented by this crate's types only.
mod sealed {
    /// The sealing supertrait of [`Index`](super::Index).
    pub trait Sealed {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}
