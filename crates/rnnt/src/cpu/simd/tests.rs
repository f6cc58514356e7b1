//! Every instruction set against f64 arithmetic: the exp over its whole range, the row statistics
//! and the gradient row on random and special rows.

use super::scalar::Real;
use super::{exp_with, grad_row_with, ln_with, row_stats_with, GradRow, Isa, SimdFloat};

/// Distance in units of the last place between two finite non-negative floats of one type.
fn ulps<T: Real>(a: T, b: T) -> u64 {
    let bits = |x: T| x.to_f64().to_bits();
    if std::mem::size_of::<T>() == 4 {
        let a = (a.to_f64() as f32).to_bits() as i64;
        let b = (b.to_f64() as f32).to_bits() as i64;
        (a - b).unsigned_abs()
    } else {
        (bits(a) as i64 - bits(b) as i64).unsigned_abs()
    }
}

/// Checks exp over `inputs` on every instruction set: within `max_ulps` of the correctly
/// rounded f64 reference `truth`, exact at the special values.
fn check_exp<T: SimdFloat>(inputs: &[T], truth: impl Fn(T) -> T, max_ulps: u64) {
    for isa in Isa::available() {
        let mut out = vec![T::ZERO; inputs.len()];
        exp_with(isa, inputs, &mut out);
        for (&x, &got) in inputs.iter().zip(&out) {
            let want = truth(x);
            let (xf, gf, wf) = (x.to_f64(), got.to_f64(), want.to_f64());
            if xf.is_nan() {
                assert!(gf.is_nan(), "{isa:?}: exp(NaN) = {gf}");
            } else if xf < T::EXP_NORMAL_LOW.to_f64() {
                assert_eq!(gf, 0.0, "{isa:?}: exp({xf}) flushes to 0");
            } else if wf.is_infinite() || wf == 0.0 {
                assert_eq!(gf, wf, "{isa:?}: exp({xf})");
            } else {
                let error = ulps(got, want);
                assert!(
                    error <= max_ulps,
                    "{isa:?}: exp({xf}) = {gf}, want {wf} ({error} ulp)"
                );
            }
        }
    }
}

/// Special inputs: infinities, NaN, zeros, huge values, both overflow and underflow edges.
fn special<T: SimdFloat>(edges: &[f64]) -> Vec<T> {
    let mut values = vec![
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NAN,
        0.0,
        -0.0,
        1e30,
        -1e30,
        1e-30,
        -1e-30,
    ];
    values.extend_from_slice(edges);
    values.into_iter().map(T::from_f64).collect()
}

#[test]
fn exp_f32_is_within_two_ulp_over_the_whole_range() {
    // Every 127th bit pattern of the negative and positive floats: 34 million inputs covering
    // overflow, every binade, and the flush to 0 of the subnormal results below e^-87.33.
    let mut inputs: Vec<f32> = (0..u32::MAX / 127)
        .map(|i| f32::from_bits(i * 127))
        .filter(|x| x.is_finite())
        .filter(|x| (-110.0..=95.0).contains(x))
        .collect();
    inputs.extend(special::<f32>(&[
        88.72, 88.73, -87.32, -87.33, -87.34, -103.0, -103.97, -103.98, -104.0, -150.0,
    ]));
    check_exp(&inputs, |x| (x as f64).exp() as f32, 2);
}

#[test]
fn exp_f64_is_within_two_ulp_of_libm() {
    let mut inputs: Vec<f64> = (0..2_000_000)
        .map(|i| -760.0 + 1480.0 * (i as f64 / 2_000_000.0) + 1e-7 * (i % 7) as f64)
        .collect();
    inputs.extend((0..100_000).map(|i| -1e-3 + 2e-3 * i as f64 / 100_000.0));
    inputs.extend(special::<f64>(&[
        709.78, 709.79, -708.38, -708.39, -708.40, -744.4, -745.1, -745.2, -746.0, -1200.0,
    ]));
    // libm's own error is below 1 ulp, ours below 1: 2 between them.
    check_exp(&inputs, f64::exp, 2);
}

/// Checks ln over `inputs` on every instruction set: within `max_ulps` of f64 libm's, rounded.
fn check_ln<T: SimdFloat>(inputs: &[T], max_ulps: u64) {
    for isa in Isa::available() {
        let mut out = vec![T::ZERO; inputs.len()];
        ln_with(isa, inputs, &mut out);
        let mut worst = 0;
        for (&x, &got) in inputs.iter().zip(&out) {
            let want = T::from_f64(x.to_f64().ln());
            let error = if got.to_f64() == want.to_f64() {
                0
            } else if (got.to_f64() < 0.0) != (want.to_f64() < 0.0) {
                u64::MAX
            } else {
                ulps(
                    T::from_f64(got.to_f64().abs()),
                    T::from_f64(want.to_f64().abs()),
                )
            };
            worst = worst.max(error);
            assert!(
                error <= max_ulps,
                "{isa:?}: ln({}) = {}, want {} ({error} ulp)",
                x.to_f64(),
                got.to_f64(),
                want.to_f64()
            );
        }
        println!("{isa:?}: ln within {worst} ulp on {} inputs", inputs.len());
    }
}

#[test]
fn ln_f32_is_within_one_ulp_over_the_normal_range() {
    // Every 61st bit pattern of the positive normal floats below 2^126, and every float in
    // [1, 2) and around 1 (where ln is small).
    let mut inputs: Vec<f32> = (0x0080_0000u32..0x7e80_0000)
        .step_by(61)
        .map(f32::from_bits)
        .collect();
    inputs.extend((0x3f00_0000u32..0x4000_0000).map(f32::from_bits));
    check_ln(&inputs, 1);
}

#[test]
fn ln_f64_is_within_one_ulp_of_libm() {
    let mut rng = Rng(11);
    // Log-uniform over the normal range, uniform over [1, 5000] (row sums), and near 1.
    let mut inputs: Vec<f64> = (0..1_000_000)
        .map(|_| (rng.next() * 2040.0 - 1020.0).exp2())
        .collect();
    inputs.extend((0..1_000_000).map(|_| 1.0 + 4999.0 * rng.next()));
    inputs.extend((0..200_000).map(|i| 1.0 + (i as f64 - 100_000.0) * 1e-12));
    inputs.extend([1.0, 2.0, 0.5, std::f64::consts::SQRT_2, std::f64::consts::E]);
    // libm's own error is below 1 ulp: allow 1 between the two.
    check_ln(&inputs, 1);
}

/// A small deterministic generator for row contents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.next().max(1e-300), self.next());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// Rows of every length up to 70 with normal, peaky and −inf-masked values, and special rows.
fn rows<T: SimdFloat>() -> Vec<Vec<T>> {
    let mut rng = Rng(42);
    let mut rows = Vec::new();
    for len in 0..70 {
        for scale in [1.0, 30.0] {
            rows.push(
                (0..len)
                    .map(|_| T::from_f64(scale * rng.normal()))
                    .collect(),
            );
        }
        rows.push(
            (0..len)
                .map(|_| {
                    let x = if rng.next() < 0.3 {
                        f64::NEG_INFINITY
                    } else {
                        1e4 + rng.normal()
                    };
                    T::from_f64(x)
                })
                .collect(),
        );
    }
    for bad in [f64::NAN, f64::INFINITY] {
        for len in [1, 7, 17, 40] {
            for at in [0, len / 2, len - 1] {
                for fill in [0.5, f64::NEG_INFINITY] {
                    let mut row = vec![T::from_f64(fill); len];
                    row[at] = T::from_f64(bad);
                    rows.push(row);
                }
            }
        }
    }
    rows.push(vec![T::from_f64(f64::NEG_INFINITY); 33]);
    rows
}

fn check_row_stats<T: SimdFloat>(tolerance: f64) {
    for row in rows::<T>() {
        let values: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
        let bad = values.iter().any(|x| x.is_nan() || *x == f64::INFINITY);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for isa in Isa::available() {
            let stats = row_stats_with(isa, &row);
            if bad {
                assert!(stats.sum.is_nan(), "{isa:?}: {values:?} gives {stats:?}");
                continue;
            }
            assert_eq!(stats.max, max, "{isa:?}: {values:?}");
            let want: f64 = if max == f64::NEG_INFINITY {
                0.0
            } else {
                values.iter().map(|x| (x - max).exp()).sum()
            };
            assert!(
                (stats.sum - want).abs() <= tolerance * want,
                "{isa:?}: sum {} want {want} for {values:?}",
                stats.sum
            );
        }
    }
}

#[test]
fn row_stats_match_f64_on_every_instruction_set() {
    check_row_stats::<f32>(1e-6);
    check_row_stats::<f64>(1e-14);
}

fn check_grad_row<T: SimdFloat>(tolerance: f64) {
    let mut rng = Rng(7);
    for row in rows::<T>() {
        let values: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if values.iter().any(|x| x.is_nan() || *x == f64::INFINITY) {
            continue;
        }
        let finite = max > f64::NEG_INFINITY;
        let inv_sum = if finite {
            values.iter().map(|x| (x - max).exp()).sum::<f64>().recip()
        } else {
            0.0
        };
        let len = row.len();
        let pick = |rng: &mut Rng| (rng.next() * (len + 2) as f64) as usize;
        for case in 0..6 {
            let params = GradRow {
                shift: if finite { max } else { 0.0 },
                inv_sum,
                coef: if finite && case % 3 != 0 {
                    rng.next() * 1.5
                } else {
                    0.0
                },
                scale: 0.25 + rng.next(),
                clip: if case % 2 == 0 { f64::INFINITY } else { 0.1 },
                arcs: [(pick(&mut rng), rng.next()), (pick(&mut rng), rng.next())],
            };
            if params.arcs[0].0 == params.arcs[1].0 {
                continue;
            }
            let want: Vec<f64> = values
                .iter()
                .enumerate()
                .map(|(k, &x)| params.element(k, x))
                .collect();
            for isa in Isa::available() {
                for stream in [false, true] {
                    for offset in 0..3 {
                        let sentinel = T::from_f64(-7.0);
                        let mut out = vec![sentinel; len + offset + 1];
                        grad_row_with(isa, &row, &mut out[offset..], &params, stream);
                        super::store_fence();
                        for (k, &w) in want.iter().enumerate() {
                            let g = out[offset + k].to_f64();
                            assert!(
                                (g - w).abs() <= tolerance * (1.0 + w.abs()),
                                "{isa:?} stream {stream}: out[{k}] = {g}, want {w} ({params:?})"
                            );
                        }
                        assert_eq!(out[..offset], vec![sentinel; offset][..]);
                        assert_eq!(out[offset + len].to_f64(), -7.0);
                    }
                }
            }
        }
    }
}

#[test]
fn grad_row_matches_f64_on_every_instruction_set() {
    check_grad_row::<f32>(1e-6);
    check_grad_row::<f64>(1e-14);
}
