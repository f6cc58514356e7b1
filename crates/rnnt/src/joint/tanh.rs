//! tanh in float32 without a library call, so that a loop over a row of hidden units compiles to
//! vector instructions (the platform's `tanhf` is a scalar call per element, as costly as the
//! GEMM on this joiner's shapes). Accurate to a few units in the last place of f32.
//!
//! For |z| < 0.3 the odd Taylor series to z¹¹ (the first term left out is below 2⁻³⁰ relative);
//! above, 1 − 2 / (e^{2|z|} + 1) with e^y = 2^k · e^r, k = round(y / ln 2), r = y − k ln 2 in two
//! parts (|r| ≤ ln 2 / 2) and e^r to its r⁷ term (relative error below 3·10⁻⁸); |z| is capped at
//! 10, where tanh is 1 in f32. Both branches are computed and one is selected, without a jump.

/// Where the series gives way to the exponential form.
const SERIES_BELOW: f32 = 0.3;

/// Above this |z|, tanh(z) rounds to ±1 in f32.
const SATURATES_AT: f32 = 10.0;

/// tanh(z) in f32 (see the module documentation).
#[inline(always)]
pub fn tanh_f32(z: f32) -> f32 {
    let a = z.abs().min(SATURATES_AT);
    let s = a * a;
    // tanh a = a (1 − a²/3 + 2a⁴/15 − 17a⁶/315 + 62a⁸/2835 − 1382a¹⁰/155925 + …).
    let series = a
        * (1.0
            + s * (-1.0 / 3.0
                + s * (2.0 / 15.0
                    + s * (-17.0 / 315.0 + s * (62.0 / 2835.0 + s * (-1382.0 / 155_925.0))))));
    let exponential = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    let magnitude = if a < SERIES_BELOW {
        series
    } else {
        exponential
    };
    magnitude.copysign(z)
}

/// e^y for 0 ≤ y ≤ 20, without a library call.
#[inline(always)]
fn exp_f32(y: f32) -> f32 {
    /// 1.5 · 2²³: adding and subtracting it rounds an f32 below 2²² to an integer.
    const ROUND: f32 = 12_582_912.0;
    /// ln 2 in two parts: the high one has few significant bits, so k · LN2_HIGH is exact.
    const LN2_HIGH: f32 = 0.693_145_75;
    const LN2_LOW: f32 = 1.428_606_8e-6;
    let k = (y * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (y - k * LN2_HIGH) - k * LN2_LOW;
    // e^r by its Taylor series to r⁷, in Horner form.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let two_to_k = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * two_to_k
}

#[cfg(test)]
mod tests {
    use super::tanh_f32;

    /// Against f64's tanh over [−12, 12] in fine steps, both branches and the switch included.
    #[test]
    fn within_a_few_ulps_of_tanh() {
        let mut worst = 0.0f64;
        for i in -120_000..=120_000 {
            let z = i as f32 * 1e-4;
            let exact = f64::from(z).tanh();
            let error = (f64::from(tanh_f32(z)) - exact).abs();
            let ulp = f64::from(f32::EPSILON) * exact.abs().max(f64::from(f32::MIN_POSITIVE));
            worst = worst.max(error / ulp);
        }
        assert!(worst <= 4.0, "{worst} ulps");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-f32::INFINITY), -1.0);
    }
}
