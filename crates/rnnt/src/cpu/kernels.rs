//! Row kernels of the CPU backend: the only code that touches a whole row of V scores.
//!
//! The front pass needs a row's maximum and Σ exp(x − shift); the gradient pass writes
//! scale · clip(coef · exp(x − lse)) over a row. These default methods are the portable scalar
//! versions; an element type may override them with vectorised code, which is then tested against
//! these definitions.

use crate::element::Element;

/// Whole-row operations of the front and gradient passes, per element type.
pub trait Kernels: Element {
    /// max over `row`, NaN if any element is NaN (so a bad value cannot hide behind the max).
    fn row_max(row: &[Self]) -> f64 {
        row.iter().fold(f64::NEG_INFINITY, |acc, &x| {
            let x = x.to_f64();
            if x.is_nan() || acc.is_nan() {
                f64::NAN
            } else {
                acc.max(x)
            }
        })
    }

    /// Σ_k exp(row[k] − shift), for a finite `shift` ≥ every element.
    fn sum_exp(row: &[Self], shift: f64) -> f64 {
        row.iter().map(|&x| (x.to_f64() - shift).exp()).sum()
    }

    /// out[k] = scale · clip(coef · exp(row[k] − lse)), with clip the identity when `clip` is None.
    /// Callers pass coef > 0 and a finite `lse` (a node with occupancy has a finite row).
    fn scaled_softmax(
        row: &[Self],
        lse: f64,
        coef: f64,
        scale: f64,
        clip: Option<f64>,
        out: &mut [Self],
    ) {
        for (o, &x) in out.iter_mut().zip(row) {
            let mut d = coef * (x.to_f64() - lse).exp();
            if let Some(bound) = clip {
                d = d.min(bound);
            }
            *o = Self::from_f64(scale * d);
        }
    }
}

impl Kernels for f32 {}
impl Kernels for f64 {}
impl Kernels for half::f16 {}
impl Kernels for half::bf16 {}
