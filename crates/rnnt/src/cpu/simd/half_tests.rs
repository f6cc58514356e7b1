//! The half-precision row kernels against the f32 ones: on every instruction set, a kernel over
//! float16 or bfloat16 elements gives the bits of the f32 kernel over the same elements widened,
//! with the gradient rounded to nearest (the `half` crate's rounding), at every row length up to
//! 70 and at every alignment of a streamed output.

use half::{bf16, f16};

use super::element::RowElement;
use super::tests::{frame_scores_of, Rng};
use super::{grad_rows, stream_copy, write_zeros, GradRow, Isa, ScoreColumns};

/// A half-precision type as the tests need it.
trait Half: RowElement + PartialEq {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    fn bits(self) -> u16;
}

macro_rules! half_type {
    ($half:ty) => {
        impl Half for $half {
            fn from_f32(x: f32) -> Self {
                <$half>::from_f32(x)
            }
            fn to_f32(self) -> f32 {
                <$half>::to_f32(self)
            }
            fn bits(self) -> u16 {
                self.to_bits()
            }
        }
    };
}

half_type!(f16);
half_type!(bf16);

/// `count` rows of `len` half elements: normal, peaky, offset and −inf-masked rows in turn.
fn half_rows<H: Half>(rng: &mut Rng, count: usize, len: usize) -> Vec<H> {
    (0..count * len)
        .map(|i| {
            let x = match (i / len) % 4 {
                0 => rng.normal(),
                1 => 8.0 * rng.normal(),
                2 => 30.0 + rng.normal(),
                _ if rng.next() < 0.3 => f64::NEG_INFINITY,
                _ => rng.normal(),
            };
            H::from_f32(x as f32)
        })
        .collect()
}

fn widened<H: Half>(values: &[H]) -> Vec<f32> {
    values.iter().map(|x| x.to_f32()).collect()
}

/// `frame_scores` of `count` rows of `len`: the bits of every row's statistics and scores, and
/// the kernel's answer.
fn scores_bits<E: RowElement>(
    isa: Isa,
    rows: &[E],
    (len, count): (usize, usize),
    columns: ScoreColumns<'_>,
) -> (Vec<[u64; 4]>, bool) {
    let (stats, scores, finite) = frame_scores_of(isa, (rows, len, count), None, columns);
    let bits = stats
        .iter()
        .zip(&scores)
        .map(|(stats, &[blank, emit])| [blank, emit, stats.shift, stats.sum].map(f64::to_bits))
        .collect();
    (bits, finite)
}

fn check_frame_scores<H: Half>() {
    let mut rng = Rng(7);
    for len in 1..70 {
        let count = 13;
        let rows = half_rows::<H>(&mut rng, count, len);
        let wide = widened(&rows);
        let labels: Vec<u32> = (0..count - 2).map(|r| ((r * 5) % len) as u32).collect();
        let columns = ScoreColumns {
            blank: len / 2,
            labels: &labels,
        };
        for isa in Isa::available() {
            assert_eq!(
                scores_bits(isa, &rows, (len, count), columns),
                scores_bits(isa, &wide, (len, count), columns),
                "{isa:?}, {}, length {len}",
                std::any::type_name::<H>()
            );
        }
    }
}

#[test]
fn half_frame_scores_are_the_f32_kernels_on_widened_rows() {
    check_frame_scores::<f16>();
    check_frame_scores::<bf16>();
}

/// Gradient rows with and without softmax term, clip and arcs (the arcs' amounts large enough
/// to show in half precision).
fn grad_params(rng: &mut Rng, wide: &[f32], len: usize) -> Vec<GradRow> {
    wide.chunks(len)
        .enumerate()
        .map(|(r, row)| {
            let max = row
                .iter()
                .map(|&x| f64::from(x))
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
            let pick = |rng: &mut Rng| (rng.next() * (len + 1) as f64) as usize;
            GradRow {
                shift: max,
                inv_sum: sum.recip(),
                coef: if r % 4 == 3 || max == f64::NEG_INFINITY {
                    0.0
                } else {
                    rng.next()
                },
                scale: 0.5 + rng.next(),
                clip: if r % 3 == 0 { 0.05 } else { f64::INFINITY },
                arcs: [(pick(rng), rng.next()), (len + r % 2, rng.next())],
            }
        })
        .collect()
}

fn check_grad_rows<H: Half>() {
    let mut rng = Rng(11);
    for len in 1..70 {
        let count = 11;
        let rows = half_rows::<H>(&mut rng, count, len);
        let wide = widened(&rows);
        let params = grad_params(&mut rng, &wide, len);
        for isa in Isa::available() {
            let mut wide_out = vec![0.0f32; count * len];
            grad_rows(isa, &wide, &mut wide_out, len, &params, false);
            let want: Vec<u16> = wide_out.iter().map(|&g| H::from_f32(g).bits()).collect();
            // Streamed at every alignment of the output (the first `skip` elements left alone).
            for (stream, skip) in [(false, 0), (true, 0), (true, 1), (true, 5), (true, 13)] {
                let mut out = vec![H::from_f32(-7.0); count * len + skip];
                grad_rows(isa, &rows, &mut out[skip..], len, &params, stream);
                let got: Vec<u16> = out[skip..].iter().map(|x| x.bits()).collect();
                assert_eq!(
                    got,
                    want,
                    "{isa:?}, {}, length {len}, stream {stream}, offset {skip}",
                    std::any::type_name::<H>()
                );
                let untouched = H::from_f32(-7.0).bits();
                assert!(out[..skip].iter().all(|x| x.bits() == untouched));
            }
        }
    }
}

#[test]
fn half_grad_rows_are_the_f32_kernels_rounded() {
    check_grad_rows::<f16>();
    check_grad_rows::<bf16>();
}

fn check_copies<H: Half>() {
    let mut rng = Rng(3);
    for len in [1, 15, 16, 17, 100, 1000] {
        let source = half_rows::<H>(&mut rng, 1, len);
        for isa in Isa::available() {
            for skip in [0, 1, 7] {
                let mut copy = vec![H::from_f32(5.0); len + skip];
                stream_copy(isa, &source, &mut copy[skip..]);
                let bits = |values: &[H]| values.iter().map(|x| x.bits()).collect::<Vec<_>>();
                assert_eq!(bits(&copy[skip..]), bits(&source), "{isa:?}, length {len}");
                for stream in [false, true] {
                    write_zeros(isa, &mut copy[skip..], stream);
                    assert!(copy[skip..].iter().all(|x| x.bits() == 0));
                    assert!(copy[..skip].iter().all(|x| x.to_f32() == 5.0));
                }
            }
        }
    }
}

#[test]
fn half_copies_and_zeros_keep_every_bit() {
    check_copies::<f16>();
    check_copies::<bf16>();
}
