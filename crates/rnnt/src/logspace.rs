//! Log-space arithmetic shared by every implementation.

/// ln(eᵃ + eᵇ), exact for −inf operands (never NaN from −inf + −inf).
#[inline]
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::log_add_exp;

    #[test]
    fn handles_infinities_and_ordering() {
        let ninf = f64::NEG_INFINITY;
        assert_eq!(log_add_exp(ninf, ninf), ninf);
        assert_eq!(log_add_exp(ninf, 1.5), 1.5);
        assert_eq!(log_add_exp(1.5, ninf), 1.5);
        assert!((log_add_exp(0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(log_add_exp(-3.0, 2.0), log_add_exp(2.0, -3.0));
    }
}
