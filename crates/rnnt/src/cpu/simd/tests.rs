//! Every instruction set against f64 arithmetic: the exp over its whole range, log1p over [0, 1],
//! the log-space sum on random and special operands, the row statistics and the gradient row on
//! random and special rows.

use super::dispatch::Set;
use super::element::RowElement;
use super::front::{ANCHORED_ROW_LEN, ANCHORED_SUM_HIGH};
use super::{
    exp_in_place, frame_scores, frame_walks, grad_row, grad_rows, grad_rows_in_place, ln_in_place,
    log1p_unit_in_place, log_add_exp, normalise_scores, probabilities, row_stats, FrameRows,
    FrameScores, GradRow, Isa, RowStats, ScoreColumns, SimdFloat,
};

/// Distance in units of the last place between two finite non-negative floats of one type.
fn ulps<T: SimdFloat>(a: T, b: T) -> u64 {
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
        let mut out = inputs.to_vec();
        exp_in_place(isa, &mut out);
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
        let mut out = inputs.to_vec();
        ln_in_place(isa, &mut out);
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
pub(super) struct Rng(pub(super) u64);

impl Rng {
    /// Uniform in [0, 1).
    pub(super) fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal.
    pub(super) fn normal(&mut self) -> f64 {
        let (a, b) = (self.next().max(1e-300), self.next());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// Rows of every length up to 70 and of a few longer ones about [`ANCHORED_ROW_LEN`], with
/// normal, peaky and −inf-masked values, and special rows.
fn rows<T: SimdFloat>() -> Vec<Vec<T>> {
    let mut rng = Rng(42);
    let mut rows = Vec::new();
    for len in (0..70).chain([200, ANCHORED_ROW_LEN, ANCHORED_ROW_LEN + 1]) {
        for scale in [1.0, 30.0] {
            rows.push(
                (0..len)
                    .map(|_| T::from_f64(scale * rng.normal()))
                    .collect(),
            );
        }
        // Rows far from 0: anchored on any element but the largest, the 1e4 rows' spread is
        // out of the anchored sum's bound (2^100 ≈ e^69.3); these are not.
        for offset in [-50.0, 70.0] {
            rows.push(
                (0..len)
                    .map(|_| T::from_f64(offset + rng.normal()))
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

/// The anchors a row is tried with: none, its first element, its largest and its smallest (the
/// last two as ordered by f64, so −inf is smallest; NaN is no anchor).
fn anchors_of<T: SimdFloat>(row: &[T]) -> Vec<Option<T>> {
    let by_value = |pick: fn(f64, f64) -> bool| {
        row.iter()
            .copied()
            .filter(|x| !x.to_f64().is_nan())
            .reduce(|a, b| if pick(b.to_f64(), a.to_f64()) { b } else { a })
    };
    let mut anchors = vec![None, row.first().copied()];
    anchors.push(by_value(|a, b| a > b));
    anchors.push(by_value(|a, b| a < b));
    anchors
}

/// The longest short (anchored) row of `T` on `isa`: 128 bytes, and at least two vectors.
fn short_len<T>(isa: Isa) -> usize {
    let lanes = match isa.set() {
        Set::Scalar => 1,
        #[cfg(target_arch = "x86_64")]
        Set::Avx2 => 32 / std::mem::size_of::<T>(),
        #[cfg(target_arch = "x86_64")]
        Set::Avx512 | Set::Avx512Bf16 => 64 / std::mem::size_of::<T>(),
    };
    (128 / std::mem::size_of::<T>()).max(2 * lanes)
}

/// One row's statistics against f64 arithmetic, with each of [`anchors_of`]: a row of at most
/// [`ANCHORED_ROW_LEN`] elements shifted by the anchor exactly where the anchored sum is small enough (but for rounding), else by the
/// maximum; the sum within `tolerance`.
fn check_row_stats<T: SimdFloat>(tolerance: f64) {
    for row in rows::<T>() {
        let values: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
        let bad = values.iter().any(|x| x.is_nan() || *x == f64::INFINITY);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (anchor, isa) in anchors_of(&row)
            .into_iter()
            .flat_map(|a| Isa::available().into_iter().map(move |isa| (a, isa)))
        {
            let stats = row_stats(isa, &row, anchor);
            let context = format!("{isa:?}, anchor {:?}: {values:?}", anchor.map(T::to_f64));
            if bad {
                assert!(stats.sum.is_nan(), "{context} gives {stats:?}");
                continue;
            }
            let anchorable = row.len() <= ANCHORED_ROW_LEN;
            let anchor = anchor
                .map(T::to_f64)
                .filter(|a| anchorable && a.is_finite());
            let anchored = anchor.map(|a| values.iter().map(|x| (x - a).exp()).sum::<f64>());
            let high = ANCHORED_SUM_HIGH;
            match anchored {
                Some(sum) if sum <= high * (1.0 - tolerance) => {
                    assert_eq!(Some(stats.shift), anchor, "{context}")
                }
                Some(sum) if sum <= high * (1.0 + tolerance) => {
                    assert!(
                        Some(stats.shift) == anchor || stats.shift == max,
                        "{context}"
                    )
                }
                _ => assert_eq!(stats.shift, max, "{context}"),
            }
            let want: f64 = if stats.shift == f64::NEG_INFINITY {
                0.0
            } else {
                values.iter().map(|x| (x - stats.shift).exp()).sum()
            };
            assert!(
                (stats.sum - want).abs() <= tolerance * want,
                "{context}: sum {} want {want}",
                stats.sum
            );
        }
    }
}

/// Anchor columns for `rows` rows of `len` (≥ 1): the blank column moves with the length, and
/// each row's label column is, in turn, that of the row's largest element, its smallest, the
/// blank's own, and another; the last few rows have no label.
fn anchor_columns<T: SimdFloat>(picked: &[&Vec<T>], len: usize) -> (usize, Vec<u32>) {
    let blank = (len * 5 / 7) % len;
    let column_of = |row: &[T], pick: fn(f64, f64) -> bool| {
        (0..len)
            .filter(|&k| !row[k].to_f64().is_nan())
            .reduce(|a, b| {
                if pick(row[b].to_f64(), row[a].to_f64()) {
                    b
                } else {
                    a
                }
            })
            .unwrap_or(0)
    };
    let labels = picked[..picked.len().saturating_sub(3)]
        .iter()
        .enumerate()
        .map(|(r, row)| {
            (match r % 4 {
                0 => column_of(row, |a, b| a > b),
                1 => column_of(row, |a, b| a < b),
                2 => blank,
                _ => (r * 13) % len,
            }) as u32
        })
        .collect();
    (blank, labels)
}

/// [`frame_scores`] of `count` rows of `len` into fresh slices: each row's statistics
/// and scores, and the kernel's answer (no NaN or +inf).
pub(super) fn frame_scores_of<E: RowElement>(
    isa: Isa,
    (rows, len, count): (&[E], usize, usize),
    exps: Option<&mut [E]>,
    columns: ScoreColumns<'_>,
) -> (Vec<RowStats>, Vec<[f64; 2]>, bool) {
    let [mut blank, mut emit, mut shift, mut sum] = [0; 4].map(|_| vec![f64::NAN; count]);
    let out = FrameScores {
        blank: &mut blank,
        emit: &mut emit,
        shift: &mut shift,
        sum: &mut sum,
    };
    let finite = frame_scores(isa, rows, len, out, exps, columns);
    let stats = shift
        .iter()
        .zip(&sum)
        .map(|(&shift, &sum)| RowStats { shift, sum })
        .collect();
    (
        stats,
        blank.into_iter().zip(emit).map(|(b, e)| [b, e]).collect(),
        finite,
    )
}

/// A frame's rows at once (short rows side by side, the rest one by one) give the bits of one row
/// at a time, for every row length up to 70 and a few about `ANCHORED_ROW_LEN`, rows of normal,
/// peaky, −inf-masked and non-finite
/// values mixed, anchored on columns of every kind; each row's scores are its elements at the
/// columns (−inf beyond the labels), and a NaN or +inf row is reported; storing the terms
/// changes no bit, and the stored terms are exp(x − shift) within `tolerance` (e^floor, the exp's
/// clamp, below its flush bound).
fn check_frame_scores<T: SimdFloat>(tolerance: f64) {
    let pool = rows::<T>();
    for len in (1..70).chain([200, ANCHORED_ROW_LEN, ANCHORED_ROW_LEN + 1]) {
        let of_len: Vec<&Vec<T>> = pool.iter().filter(|row| row.len() == len).collect();
        // Rows of every kind at every position of a group, and a partial group at the end.
        let count = 4 * of_len.len() + 3;
        let picked: Vec<&Vec<T>> = (0..count).map(|r| of_len[(r * 7) % of_len.len()]).collect();
        let flat: Vec<T> = picked.iter().flat_map(|row| row.iter().copied()).collect();
        let (blank, labels) = anchor_columns(&picked, len);
        let columns = ScoreColumns {
            blank,
            labels: &labels,
        };
        for isa in Isa::available() {
            let frame = (&flat[..], len, count);
            let (out, scores, finite) = frame_scores_of(isa, frame, None, columns);
            let mut exps = vec![T::from_f64(-1.0); flat.len()];
            let (storing, _, _) = frame_scores_of(isa, frame, Some(&mut exps), columns);
            let short = len <= short_len::<T>(isa);
            // The kernel's rule: after a row longer than short whose anchored sum was too
            // large, the rest of the frame is shifted by the maximum.
            let mut anchoring = len <= ANCHORED_ROW_LEN;
            let low = T::EXP_NORMAL_LOW.to_f64();
            let half_ulp = if std::mem::size_of::<T>() == 4 {
                6e-8
            } else {
                1.2e-16
            };
            let mut any_bad = false;
            for (r, ((stats, row), stored)) in out.iter().zip(&picked).zip(&storing).enumerate() {
                let context = format!("{isa:?}, length {len}, row {r}");
                let label = labels
                    .get(r)
                    .map_or(f64::NEG_INFINITY, |&y| row[y as usize].to_f64());
                let want_scores = [row[blank].to_f64(), label];
                assert_eq!(
                    scores[r].map(f64::to_bits),
                    want_scores.map(f64::to_bits),
                    "{context}: scores"
                );
                let anchor = anchoring.then(|| ScoreColumns::anchor(want_scores));
                let one = row_stats(isa, row, anchor);
                anchoring &= short || one.shift == want_scores[0].max(want_scores[1]);
                any_bad |= one.sum.is_nan();
                assert_eq!(
                    (stats.shift.to_bits(), stats.sum.to_bits()),
                    (one.shift.to_bits(), one.sum.to_bits()),
                    "{context}: {stats:?} against {one:?}"
                );
                assert_eq!(
                    (stored.shift.to_bits(), stored.sum.to_bits()),
                    (one.shift.to_bits(), one.sum.to_bits()),
                    "{context}, storing: {stored:?} against {one:?}"
                );
                if !one.shift.is_finite() || one.sum.is_nan() {
                    // No terms are stored (or, beside a NaN, of use).
                    continue;
                }
                for (k, (&x, &e)) in row.iter().zip(&exps[r * len..(r + 1) * len]).enumerate() {
                    let argument = x.to_f64() - one.shift;
                    let (e, want) = (e.to_f64(), argument.max(low).exp());
                    // x − shift is rounded to T first: half an ulp of the argument.
                    let rounding = argument.abs() * half_ulp;
                    assert!(
                        (e - want).abs() <= (tolerance + rounding) * want,
                        "{context}, element {k}: {e} for exp({argument})"
                    );
                }
            }
            assert_eq!(
                finite, !any_bad,
                "{isa:?}, length {len}: the kernel's answer"
            );
        }
    }
}

#[test]
fn frame_scores_match_row_stats_bit_for_bit() {
    check_frame_scores::<f32>(1e-6);
    check_frame_scores::<f64>(1e-14);
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
                        grad_row(isa, &row, &mut out[offset..], &params, stream);
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

/// Many gradient rows at once (short rows side by side, the rest one by one) write the bits of
/// one row at a time, for every row length up to 70, with and without clip, softmax term and arcs
/// in every lane.
fn check_grad_rows<T: SimdFloat>() {
    let mut rng = Rng(5);
    for len in 1..70 {
        let count = 11;
        let input: Vec<T> = (0..count * len)
            .map(|_| T::from_f64(3.0 * rng.normal()))
            .collect();
        let params: Vec<GradRow> = input
            .chunks(len)
            .enumerate()
            .map(|(r, row)| {
                let max = row
                    .iter()
                    .map(|x| x.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().map(|x| (x.to_f64() - max).exp()).sum();
                let pick = |rng: &mut Rng| (rng.next() * (len + 1) as f64) as usize;
                GradRow {
                    shift: max,
                    inv_sum: sum.recip(),
                    coef: if r % 4 == 3 { 0.0 } else { rng.next() },
                    scale: 0.5 + rng.next(),
                    clip: if r % 3 == 0 { 0.05 } else { f64::INFINITY },
                    arcs: [(pick(&mut rng), rng.next()), (len + r % 2, rng.next())],
                }
            })
            .collect();
        for isa in Isa::available() {
            let mut together = vec![T::from_f64(-7.0); count * len];
            grad_rows(isa, &input, &mut together, len, &params, false);
            for (r, row_params) in params.iter().enumerate() {
                let rows = r * len..(r + 1) * len;
                let mut alone = vec![T::from_f64(-7.0); len];
                grad_row(isa, &input[rows.clone()], &mut alone, row_params, false);
                let bits = |values: &[T]| {
                    values
                        .iter()
                        .map(|x| x.to_f64().to_bits())
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    bits(&together[rows]),
                    bits(&alone),
                    "{isa:?}, length {len}, row {r}"
                );
            }
        }
    }
}

#[test]
fn grad_rows_match_grad_row_bit_for_bit() {
    check_grad_rows::<f32>();
    check_grad_rows::<f64>();
}

/// The gradient from the terms the front pass stored in the output is the gradient from the
/// logits, bit for bit, but for elements at the flush bound (0 on one side, below 1e-30 on the
/// other, as the bound is on the term instead of the exp's argument): every row length up to 70,
/// rows with −inf entries, with and without softmax term, clip and arcs, scaled down so far that
/// flushing matters.
fn check_grad_rows_in_place<T: SimdFloat>() {
    for clip in [0.05, f64::INFINITY] {
        check_grad_rows_in_place_with_clip::<T>(clip);
    }
}

/// [`check_grad_rows_in_place`] with frames clipped at `clip` (so, for +inf, with no clip: the
/// rows then take the unclipped kernel), frames of 37 rows (whole and partial chunks of
/// planned rows) of every length up to 70, at upstream scales that put rows' terms below the
/// flush bound, with and without softmax terms, rows without arcs or with negligible ones.
fn check_grad_rows_in_place_with_clip<T: SimdFloat>(clip: f64) {
    let mut rng = Rng(11);
    for len in 1..70 {
        let count = 37;
        let input: Vec<T> = (0..count * len)
            .map(|i| {
                let masked = i % 17 == 5;
                T::from_f64(if masked {
                    f64::NEG_INFINITY
                } else {
                    30.0 * rng.normal()
                })
            })
            .collect();
        let rows: Vec<Vec<T>> = input.chunks(len).map(<[T]>::to_vec).collect();
        let (blank, labels) = anchor_columns(&rows.iter().collect::<Vec<_>>(), len);
        let arc = |rng: &mut Rng, u: usize| match u % 7 {
            3 => 0.0,
            5 => 1e-40 * rng.next(),
            _ => rng.next(),
        };
        let blank_arcs: Vec<f64> = (0..count).map(|u| arc(&mut rng, u)).collect();
        let emit_arcs: Vec<f64> = (0..count)
            .map(|u| match u % 4 {
                3 => 0.0,
                _ if u >= labels.len() => 0.0,
                _ => arc(&mut rng, u + 1),
            })
            .collect();
        for isa in Isa::available() {
            let mut terms = vec![T::from_f64(-7.0); count * len];
            let columns = ScoreColumns {
                blank,
                labels: &labels,
            };
            let frame = (&input[..], len, count);
            let (stats, _, _) = frame_scores_of(isa, frame, Some(&mut terms), columns);
            let shift: Vec<f64> = stats.iter().map(|s| s.shift).collect();
            let inv_sum: Vec<f64> = stats.iter().map(|s| s.sum.recip()).collect();
            for (scale, softmax) in [(0.7, true), (1e-36, true), (3.0, true), (0.7, false)] {
                let frame = FrameRows {
                    shift: &shift,
                    inv_sum: &inv_sum,
                    blank_arcs: &blank_arcs,
                    emit_arcs: &emit_arcs,
                    blank,
                    labels: &labels,
                    softmax,
                    scale,
                    clip,
                };
                let params: Vec<GradRow> = (0..count).map(|u| frame.row(u)).collect();
                let mut from_logits = vec![T::from_f64(-7.0); count * len];
                grad_rows(isa, &input, &mut from_logits, len, &params, false);
                let mut in_place = terms.clone();
                grad_rows_in_place(isa, &mut in_place, len, &frame);
                for (i, (&a, &b)) in in_place.iter().zip(&from_logits).enumerate() {
                    let (a, b) = (a.to_f64(), b.to_f64());
                    let at_bound = (a == 0.0 || b == 0.0) && a.abs().max(b.abs()) < 1e-30;
                    assert!(
                        a.to_bits() == b.to_bits() || at_bound,
                        "{isa:?}, length {len}, scale {scale}, element {i}: {a} in place, {b} \
                         from the logits"
                    );
                }
            }
        }
    }
}

#[test]
fn grad_rows_in_place_match_grad_rows() {
    check_grad_rows_in_place::<f32>();
    check_grad_rows_in_place::<f64>();
}

/// Rows whose softmax term is scaled far down (tiny occupancy or upstream gradient) are written
/// without subnormal numbers (each would cost a microcode assist): every element is 0 or normal,
/// and still within the tolerance of the f64 definition; a row said to be all zeros
/// ([`GradRow::writes_only_zeros`], which the gradient pass then fills without the kernel) is.
fn check_grad_row_flushes_subnormals<T: SimdFloat>(smallest_normal: f64, tolerance: f64) {
    let mut rng = Rng(11);
    for len in [1, 5, 16, 33, 70] {
        let values: Vec<f64> = (0..len).map(|_| 30.0 * rng.normal()).collect();
        let row: Vec<T> = values.iter().map(|&x| T::from_f64(x)).collect();
        let values: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let inv_sum = values.iter().map(|x| (x - max).exp()).sum::<f64>().recip();
        for coef in [1e-20, 1e-36, 1e-39, 1e-44, 1e-300, 1e-310] {
            for scale in [1e-3, 1.0, 1e3] {
                for clip in [f64::INFINITY, 0.1] {
                    let params = GradRow {
                        shift: max,
                        inv_sum,
                        coef,
                        scale,
                        clip,
                        arcs: [(0, coef * 0.5), (len - 1, coef * 1e-3)],
                    };
                    for isa in Isa::available() {
                        let mut out = vec![T::from_f64(-7.0); len];
                        grad_row(isa, &row, &mut out, &params, false);
                        if params.writes_only_zeros::<T>() {
                            assert!(
                                out.iter().all(|g| g.to_f64() == 0.0),
                                "{isa:?}: a row said to be zeros is {out:?} ({params:?})"
                            );
                        }
                        for (k, g) in out.iter().enumerate() {
                            let g = g.to_f64();
                            let want = params.element(k, values[k]);
                            assert!(
                                g == 0.0 || g.abs() >= smallest_normal,
                                "{isa:?}: out[{k}] = {g:e} is subnormal ({params:?})"
                            );
                            assert!(
                                (g - want).abs() <= tolerance * (1.0 + want.abs()),
                                "{isa:?}: out[{k}] = {g:e}, want {want:e} ({params:?})"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn grad_row_writes_no_subnormal_numbers() {
    check_grad_row_flushes_subnormals::<f32>(f32::MIN_POSITIVE as f64, 1e-6);
    check_grad_row_flushes_subnormals::<f64>(f64::MIN_POSITIVE, 1e-14);
}

/// The distance from 1 to the next float of type `T`.
fn epsilon<T: SimdFloat>() -> f64 {
    if std::mem::size_of::<T>() == 4 {
        f64::from(f32::EPSILON)
    } else {
        f64::EPSILON
    }
}

/// The largest distance in ulp between `got` and `want`, both finite, over pairs.
fn max_ulps<T: SimdFloat>(pairs: impl Iterator<Item = (T, T)>) -> u64 {
    pairs.map(|(got, want)| ulps(got, want)).max().unwrap_or(0)
}

/// Checks log1p on [0, 1] on every instruction set against libm's ln_1p (correctly rounded to
/// `T`), within `max_ulps`, and returns the largest error seen.
fn check_log1p<T: SimdFloat>(inputs: &[T], max_allowed: u64) -> u64 {
    let mut worst = 0;
    for isa in Isa::available() {
        let mut out = inputs.to_vec();
        log1p_unit_in_place(isa, &mut out);
        let pairs = inputs
            .iter()
            .zip(&out)
            .map(|(&z, &got)| (got, T::from_f64(z.to_f64().ln_1p())));
        let error = max_ulps(pairs);
        assert!(error <= max_allowed, "{isa:?}: log1p is {error} ulp off");
        worst = worst.max(error);
        let special = [T::ZERO, T::from_f64(1.0), T::from_f64(f64::NAN)];
        let mut out = special.to_vec();
        log1p_unit_in_place(isa, &mut out);
        assert_eq!(out[0].to_f64(), 0.0, "{isa:?}: log1p(0)");
        assert_eq!(
            out[1],
            T::from_f64(std::f64::consts::LN_2),
            "{isa:?}: log1p(1)"
        );
        assert!(out[2].to_f64().is_nan(), "{isa:?}: log1p(NaN)");
    }
    worst
}

/// Inputs in [0, 1]: a uniform grid, every binade down to the smallest subnormal, and the
/// neighbours of ½ where the reduction switches.
fn unit_inputs<T: SimdFloat>(grid: usize) -> Vec<T> {
    let mut inputs: Vec<T> = (0..=grid)
        .map(|i| T::from_f64(i as f64 / grid as f64))
        .collect();
    let mut rng = Rng(3);
    inputs.extend((0..grid).map(|_| T::from_f64((-1100.0 * rng.next()).exp2())));
    inputs.extend((0..1000).map(|i| T::from_f64(0.5 + (i as f64 - 500.0) * 1e-15)));
    inputs.retain(|z| (0.0..=1.0).contains(&z.to_f64()));
    inputs
}

#[test]
fn log1p_f64_is_within_one_ulp_of_libm_on_the_unit_interval() {
    let worst = check_log1p::<f64>(&unit_inputs(2_000_000), 1);
    eprintln!("log1p f64: max error {worst} ulp");
}

#[test]
fn log1p_f32_is_within_one_ulp_on_the_unit_interval() {
    // The f32s in [0, 1]: one in 29 of the bit patterns, 37 million.
    let mut inputs: Vec<f32> = (0..=1.0f32.to_bits() / 29)
        .map(|i| f32::from_bits(i * 29))
        .collect();
    inputs.push(1.0);
    let worst = check_log1p::<f32>(&inputs, 1);
    eprintln!("log1p f32: max error {worst} ulp");
}

/// The log-space sum in f64 from libm, the scalar convention of `crate::logspace`.
fn log_add_exp_libm(a: f64, b: f64) -> f64 {
    crate::logspace::log_add_exp(a, b)
}

/// Operand pairs: random ones at several spreads, equal ones, huge gaps, and every pairing of the
/// special values.
fn operand_pairs(count: usize) -> Vec<(f64, f64)> {
    let mut rng = Rng(11);
    let mut pairs = Vec::with_capacity(count + 200);
    for i in 0..count {
        let spread = [1.0, 30.0, 1000.0, 1e6][i % 4];
        let a = spread * rng.normal() - 50.0 * rng.next();
        let b = if i % 16 == 0 {
            a
        } else {
            a + spread * rng.normal()
        };
        pairs.push((a, b));
    }
    let special = [
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NAN,
        f64::MIN,
        f64::MAX,
        -1e300,
        -745.5,
        -0.0,
        0.0,
        1e-300,
        3.0,
    ];
    for &a in &special {
        for &b in &special {
            pairs.push((a, b));
        }
    }
    pairs
}

fn check_log_add_exp<T: SimdFloat>(pairs: &[(f64, f64)], max_allowed: u64) -> u64 {
    let a: Vec<T> = pairs.iter().map(|p| T::from_f64(p.0)).collect();
    let b: Vec<T> = pairs.iter().map(|p| T::from_f64(p.1)).collect();
    let mut worst = 0;
    for isa in Isa::available() {
        // Odd lengths and offsets exercise the partial vectors.
        for skip in [0, 3] {
            let (a, b) = (&a[skip..], &b[skip..]);
            let mut out = vec![T::ZERO; a.len()];
            log_add_exp(isa, a, b, &mut out);
            for ((&x, &y), &got) in a.iter().zip(b).zip(&out) {
                let (xf, yf, gf) = (x.to_f64(), y.to_f64(), got.to_f64());
                let want = T::from_f64(log_add_exp_libm(xf, yf));
                let wf = want.to_f64();
                if wf.is_nan() || wf.is_infinite() {
                    assert!(
                        gf.to_bits() == wf.to_bits() || (gf.is_nan() && wf.is_nan()),
                        "{isa:?}: log_add_exp({xf}, {yf}) = {gf}, want {wf}"
                    );
                    continue;
                }
                // Near 0 the result is a difference: measure it against the larger operand.
                let scale = xf.abs().max(yf.abs()).max(wf.abs());
                let error = if wf.abs() >= 0.5 * scale {
                    ulps(got, want)
                } else {
                    ((gf - wf).abs() / (scale * epsilon::<T>())).ceil() as u64
                };
                assert!(
                    error <= max_allowed,
                    "{isa:?}: log_add_exp({xf}, {yf}) = {gf}, want {wf} ({error} ulp)"
                );
                worst = worst.max(error);
            }
        }
    }
    worst
}

#[test]
fn log_add_exp_f64_matches_libm_on_every_instruction_set() {
    let worst = check_log_add_exp::<f64>(&operand_pairs(2_000_000), 2);
    eprintln!("log_add_exp f64: max error {worst} ulp");
}

#[test]
fn log_add_exp_f32_matches_f64_on_every_instruction_set() {
    let worst = check_log_add_exp::<f32>(&operand_pairs(200_000), 2);
    eprintln!("log_add_exp f32: max error {worst} ulp");
}

#[test]
fn log_add_exp_is_exact_at_infinities() {
    let ninf = f64::NEG_INFINITY;
    for isa in Isa::available() {
        let a = [ninf, ninf, 1.5, ninf, f64::INFINITY, 2.0, f64::NAN, 0.0];
        let b = [ninf, 1.5, ninf, -1e308, 7.0, 2.0, ninf, f64::NAN];
        let mut out = [0.0; 8];
        log_add_exp(isa, &a, &b, &mut out);
        assert_eq!(out[..5], [ninf, 1.5, 1.5, -1e308, f64::INFINITY], "{isa:?}");
        assert_eq!(out[5], 2.0 + std::f64::consts::LN_2, "{isa:?}");
        assert!(out[6].is_nan() && out[7].is_nan(), "{isa:?}: {out:?}");
    }
}

/// Normalised scores against the f64 definition, every length up to 40 (whole and partial
/// vectors), masked rows (maximum −inf) and −inf scores among them.
#[test]
fn normalise_scores_match_f64_on_every_instruction_set() {
    let mut rng = Rng(13);
    for n in 0..40 {
        let rows: Vec<(f64, f64, f64, f64)> = (0..n)
            .map(|r| {
                if r % 7 == 3 {
                    (f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0)
                } else {
                    let max = 20.0 * rng.normal();
                    let emit = if r % 5 == 1 {
                        f64::NEG_INFINITY
                    } else {
                        max - rng.next()
                    };
                    (max - 3.0 * rng.next(), emit, max, 1.0 + 30.0 * rng.next())
                }
            })
            .collect();
        for isa in Isa::available() {
            let mut columns: [Vec<f64>; 4] = [
                rows.iter().map(|r| r.0).collect(),
                rows.iter().map(|r| r.1).collect(),
                rows.iter().map(|r| r.2).collect(),
                rows.iter().map(|r| r.3).collect(),
            ];
            let [blank, emit, shift, inv_sum] = &mut columns;
            normalise_scores(isa, blank, emit, shift, inv_sum);
            for (r, &(x_blank, x_emit, max, sum)) in rows.iter().enumerate() {
                let masked = max == f64::NEG_INFINITY;
                let lse = if masked { 0.0 } else { max + sum.ln() };
                let want = [
                    x_blank - lse,
                    x_emit - lse,
                    if masked { 0.0 } else { max },
                    if masked { 0.0 } else { sum.recip() },
                ];
                for (column, want) in columns.iter().zip(want) {
                    let got = column[r];
                    assert!(
                        got == want || (got - want).abs() <= 1e-15 * want.abs().max(1.0),
                        "{isa:?}, {n} rows, row {r}: {got} against {want}"
                    );
                }
            }
        }
    }
}

/// The probability-space lattice's walks on every instruction set against plain arithmetic, at
/// every number of label positions up to 40 (one chain or several vectors a frame): against the
/// recursions in f64 over the unscaled values, with masked (0) probabilities among them, every
/// frame's largest at least 1; and the bounds (a value too small beside its frame's largest, a
/// frame grown too large) refused.
#[test]
fn frame_walks_match_plain_arithmetic() {
    let mut rng = Rng(17);
    for positions in 1..40 {
        let frames = 1 + (positions * 7) % 23;
        let n = frames * positions;
        let probability = |rng: &mut Rng, i: usize| {
            if i % 11 == 3 {
                0.0
            } else {
                0.02 + 0.9 * rng.next()
            }
        };
        let blank: Vec<f64> = (0..n).map(|i| probability(&mut rng, i)).collect();
        let emit: Vec<f64> = (0..n)
            .map(|i| match i % positions {
                u if u + 1 == positions => 0.0,
                _ => probability(&mut rng, i + 1),
            })
            .collect();
        // The recursions, unscaled (the values stay well inside f64 here).
        let (mut alpha, mut beta) = (vec![0.0; n], vec![0.0; n]);
        for t in 0..frames {
            for u in 0..positions {
                let at = t * positions + u;
                alpha[at] = if t == 0 && u == 0 { 1.0 } else { 0.0 };
                if t > 0 {
                    alpha[at] += alpha[at - positions] * blank[at - positions];
                }
                if u > 0 {
                    alpha[at] += alpha[at - 1] * emit[at - 1];
                }
            }
        }
        for t in (0..frames).rev() {
            for u in (0..positions).rev() {
                let at = t * positions + u;
                beta[at] = if t + 1 == frames && u + 1 == positions {
                    blank[at]
                } else {
                    0.0
                };
                if t + 1 < frames {
                    beta[at] += beta[at + positions] * blank[at];
                }
                if u + 1 < positions {
                    beta[at] += beta[at + 1] * emit[at];
                }
            }
        }
        for isa in Isa::available() {
            let (mut a, mut b) = (vec![-1.0; n], vec![-1.0; n]);
            let (mut sa, mut sb) = (vec![0; frames], vec![0; frames]);
            let walked = frame_walks(
                isa,
                [&blank, &emit],
                positions,
                [&mut a, &mut b],
                (&mut sa, &mut sb),
            );
            assert!(walked, "{isa:?}, {frames} × {positions}");
            for (name, got, scales, want) in [("α", &a, &sa, &alpha), ("β", &b, &sb, &beta)] {
                for t in 0..frames {
                    let frame = &got[t * positions..(t + 1) * positions];
                    let peak = frame.iter().copied().fold(0.0, f64::max);
                    assert!(peak == 0.0 || peak >= 1.0, "{isa:?}: {name} peak {peak}");
                    for (u, &value) in frame.iter().enumerate() {
                        let value = value * 2f64.powi(scales[t]);
                        let want = want[t * positions + u];
                        assert!(
                            (value - want).abs() <= 1e-13 * want,
                            "{isa:?}, {frames} × {positions}: {name}({t},{u}) = {value}, want {want}"
                        );
                    }
                }
            }
            // Out of bounds: the first emission 2^−830 of α(0,0) (below 2^−700 of its frame's
            // largest), and emissions of 4 along a frame of 32 or more (2^62 and more).
            let mut tiny_emit = emit.clone();
            tiny_emit[0] = 1e-250;
            let huge_emit: Vec<f64> = (0..n)
                .map(|i| {
                    if i % positions + 1 == positions {
                        0.0
                    } else {
                        4.0
                    }
                })
                .collect();
            for (case, emit) in [(positions > 1, &tiny_emit), (positions >= 32, &huge_emit)] {
                if !case {
                    continue;
                }
                let walked = frame_walks(
                    isa,
                    [&blank, emit],
                    positions,
                    [&mut a, &mut b],
                    (&mut sa, &mut sb),
                );
                assert!(!walked, "{isa:?}, {frames} × {positions}: out of bounds");
            }
        }
    }
}

/// The node probabilities on every instruction set: e^x within the exp's bound (0 for −inf), and
/// the bounds check: a finite value below the low bound or any value above the high bound is
/// found, at every position of every length up to 20, −inf never.
#[test]
fn probabilities_match_exp_and_check_their_bounds() {
    let mut rng = Rng(23);
    for n in 0..20 {
        let log_probs: Vec<f64> = (0..n)
            .map(|i| {
                if i % 4 == 1 {
                    f64::NEG_INFINITY
                } else {
                    -50.0 * rng.next()
                }
            })
            .collect();
        for isa in Isa::available() {
            let mut out = vec![-1.0; n];
            let within = probabilities(isa, &log_probs, &mut out, [-60.0, 0.0]);
            assert!(within, "{isa:?}, {n} values");
            for (&x, &p) in log_probs.iter().zip(&out) {
                assert!(
                    (p - x.exp()).abs() <= 4e-16 * x.exp(),
                    "{isa:?}: e^{x} = {p}"
                );
            }
            for at in 0..n {
                for (bad, bounds) in [(-61.0, [-60.0, 0.0]), (0.5, [-60.0, 0.0])] {
                    let mut outside = log_probs.clone();
                    outside[at] = bad;
                    let within = probabilities(isa, &outside, &mut out, bounds);
                    assert!(!within, "{isa:?}, {n} values: {bad} at {at}");
                }
            }
        }
    }
}
