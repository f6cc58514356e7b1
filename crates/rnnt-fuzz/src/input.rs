//! A loss input decoded from fuzz bytes: shapes, lengths, labels, values and options, most of
//! them valid and some not, and the arrays of any element and index type built from it.

use ndarray::{s, Array1, Array2, Array4, ArrayView4, ArrayViewMut4};
use rnnt::{Float, LossInput, Options, Reduction, Targets};

use crate::bytes::Bytes;

/// Values a logit takes besides the small ones: NaN, infinities, signed zeros, subnormals of
/// f64 and f32, huge values of f16, f32 and f64, and the edges of exp's range.
const SPECIAL_VALUES: [f64; 26] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    5e-324,
    -1e-310,
    1.4e-45,
    -1e-40,
    1e-8,
    1e30,
    -1e30,
    3e38,
    -3e38,
    1e300,
    -1e300,
    f64::MAX,
    f64::MIN,
    700.0,
    -700.0,
    745.0,
    65504.0,
    -65504.0,
    100.0,
    -100.0,
];

/// What goes wrong with the arrays of a call, besides their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Nothing: every array is laid out as the loss requires.
    None,
    /// The logits are a strided view (every other element of a wider array).
    StridedLogits,
    /// The caller's gradient has one frame too many.
    GradShape,
    /// The caller's gradient is a strided view.
    StridedGrad,
}

/// A loss call decoded from fuzz bytes, independent of the element and index types.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// (B, T, U+1, V).
    pub dims: (usize, usize, usize, usize),
    /// T_b per item, possibly out of range or of the wrong count.
    pub logit_lengths: Vec<i64>,
    /// U_b per item, possibly out of range or of the wrong count.
    pub target_lengths: Vec<i64>,
    /// Padded (rows of labels) or packed (`None`: see `packed`).
    pub padded: Option<Vec<Vec<i64>>>,
    /// Every item's labels end to end, when packed.
    pub packed: Vec<i64>,
    /// Every logit, padding included, in C order.
    pub values: Vec<f64>,
    /// The options, `blank` included.
    pub options: Options,
    /// What is wrong with the arrays' layout, if anything.
    pub fault: Fault,
}

impl Call {
    /// Decodes a call; the shapes are small (B ≤ 3, T ≤ 5, U ≤ 4, V ≤ 40) so the reference
    /// stays fast.
    pub(crate) fn decode(bytes: &mut Bytes<'_>) -> Call {
        let batch = bytes.size(3);
        let frames = bytes.size(5);
        let positions = bytes.size(5);
        let vocab = match bytes.byte() {
            255 => 0,
            byte if byte < 192 => 1 + usize::from(byte) % 8,
            byte => 1 + usize::from(byte) % 40,
        };
        let blank = decode_blank(bytes, vocab);
        let blank_id = usize::try_from(blank.rem_euclid(vocab.max(1) as i64)).unwrap_or(0);
        let labels = positions.saturating_sub(1);
        let logit_lengths = decode_lengths(bytes, batch, (1, frames as i64));
        let target_lengths = decode_lengths(bytes, batch, (0, labels as i64));
        let label = |bytes: &mut Bytes<'_>| match bytes.byte() {
            253 => -1,
            254 => vocab as i64,
            255 => blank_id as i64,
            _ if vocab <= 1 => 0,
            byte => {
                let k = usize::from(byte) % (vocab - 1);
                (if k >= blank_id { k + 1 } else { k }) as i64
            }
        };
        let (padded, packed) = if bytes.flag() {
            let rows = nudged(bytes, batch);
            let width = nudged(bytes, labels);
            let padded: Vec<Vec<i64>> = (0..rows)
                .map(|_| (0..width).map(|_| label(bytes)).collect())
                .collect();
            (Some(padded), Vec::new())
        } else {
            let total = target_lengths
                .iter()
                .fold(0i64, |sum, &u| sum.saturating_add(u.max(0)));
            let count = nudged(bytes, usize::try_from(total.min(64)).unwrap_or(0));
            (None, (0..count).map(|_| label(bytes)).collect())
        };
        let offset = bytes.pick(&[0.0, 0.0, 0.0, 0.0, 40.0, 1e4, -1e6, 1e30]);
        let count = batch * frames * positions * vocab;
        let values = (0..count)
            .map(|_| match bytes.byte() {
                byte @ 0..=199 => (f64::from(byte) - 100.0) / 8.0 + offset,
                byte => SPECIAL_VALUES[usize::from(byte - 200) % SPECIAL_VALUES.len()],
            })
            .collect();
        let options = Options {
            blank,
            reduction: bytes.pick(&[Reduction::None, Reduction::Sum, Reduction::Mean]),
            fused_log_softmax: bytes.flag(),
            clamp: bytes.pick(&[
                -1.0,
                -1.0,
                -1.0,
                0.0,
                1e-3,
                0.3,
                2.0,
                1e30,
                1e-300,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ]),
            fastemit_lambda: bytes.pick(&[
                0.0,
                0.0,
                0.0,
                0.25,
                1.0,
                100.0,
                1e30,
                5e-324,
                -0.5,
                f64::NAN,
                f64::INFINITY,
            ]),
            zero_infinity: bytes.flag(),
            threads: bytes.pick(&[0, 0, 1, 2, 3]),
        };
        let fault = match bytes.byte() {
            252 => Fault::StridedLogits,
            253 => Fault::GradShape,
            254 | 255 => Fault::StridedGrad,
            _ => Fault::None,
        };
        Call {
            dims: (batch, frames, positions, vocab),
            logit_lengths,
            target_lengths,
            padded,
            packed,
            values,
            options,
            fault,
        }
    }

    /// The arrays of this call as elements `F` and indices `I`.
    pub(crate) fn arrays<F: Float, I: FromI64>(&self) -> Arrays<F, I> {
        let (b, t, p, v) = self.dims;
        let values: Vec<F> = self.values.iter().map(|&x| F::from_f64(x)).collect();
        let logits = Array4::from_shape_vec((b, t, p, v), values).expect("one value per element");
        let logits = if self.fault == Fault::StridedLogits {
            // Every other element of a (B, T, U+1, 2V) array.
            let mut wide = Array4::from_elem((b, t, p, 2 * v), F::from_f64(f64::NAN));
            wide.slice_mut(s![.., .., .., ..;2]).assign(&logits);
            wide
        } else {
            logits
        };
        let index = |values: &[i64]| {
            values
                .iter()
                .map(|&x| I::from_i64(x))
                .collect::<Array1<I>>()
        };
        let padded = self.padded.as_ref().map(|rows| {
            let width = rows.first().map_or(0, Vec::len);
            Array2::from_shape_fn((rows.len(), width), |(r, c)| I::from_i64(rows[r][c]))
        });
        Arrays {
            logits,
            strided: self.fault == Fault::StridedLogits,
            padded,
            packed: index(&self.packed),
            logit_lengths: index(&self.logit_lengths),
            target_lengths: index(&self.target_lengths),
        }
    }
}

/// The arrays of a [`Call`] in element type `F` and index type `I`, owned.
pub(crate) struct Arrays<F, I> {
    logits: Array4<F>,
    strided: bool,
    padded: Option<Array2<I>>,
    packed: Array1<I>,
    logit_lengths: Array1<I>,
    target_lengths: Array1<I>,
}

impl<F: Float, I: Copy> Arrays<F, I> {
    /// The loss input borrowing these arrays.
    pub(crate) fn input(&self) -> LossInput<'_, F, I> {
        let logits: ArrayView4<'_, F> = if self.strided {
            self.logits.slice(s![.., .., .., ..;2])
        } else {
            self.logits.view()
        };
        LossInput {
            logits,
            targets: match &self.padded {
                Some(padded) => Targets::Padded(padded.view()),
                None => Targets::Packed(self.packed.view()),
            },
            logit_lengths: self.logit_lengths.view(),
            target_lengths: self.target_lengths.view(),
        }
    }
}

/// A gradient buffer for a call with `fault`, every element NaN so that an element left
/// unwritten shows; `view` gives the view the loss writes.
pub(crate) struct GradBuffer<F> {
    array: Array4<F>,
    fault: Fault,
}

impl<F: Float> GradBuffer<F> {
    /// A buffer for (B, T, U+1, V) logits, misshapen or strided as `fault` says.
    pub(crate) fn new(dims: (usize, usize, usize, usize), fault: Fault) -> Self {
        let (b, t, p, v) = dims;
        let shape = match fault {
            Fault::GradShape => (b, t + 1, p, v),
            Fault::StridedGrad => (b, t, p, 2 * v),
            Fault::None | Fault::StridedLogits => dims,
        };
        GradBuffer {
            array: Array4::from_elem(shape, F::from_f64(f64::NAN)),
            fault,
        }
    }

    /// Whether the loss takes this buffer for (B, T, U+1, V) = `dims`: that shape, C-contiguous
    /// (a strided view of single elements can be).
    pub(crate) fn accepted(&self, dims: (usize, usize, usize, usize)) -> bool {
        let view = if self.fault == Fault::StridedGrad {
            self.array.slice(s![.., .., .., ..;2])
        } else {
            self.array.view()
        };
        view.dim() == dims && view.is_standard_layout()
    }

    /// The view the loss writes into.
    pub(crate) fn view_mut(&mut self) -> ArrayViewMut4<'_, F> {
        if self.fault == Fault::StridedGrad {
            self.array.slice_mut(s![.., .., .., ..;2])
        } else {
            self.array.view_mut()
        }
    }
}

/// An index type built from i64 (wrapping, for i32: out-of-range values stay out of range of
/// something).
pub(crate) trait FromI64: rnnt::Index {
    /// `value` as this type.
    fn from_i64(value: i64) -> Self;
}

impl FromI64 for i32 {
    fn from_i64(value: i64) -> Self {
        value as i32
    }
}

impl FromI64 for i64 {
    fn from_i64(value: i64) -> Self {
        value
    }
}

/// `blank`: mostly in −V ≤ blank < V, sometimes just outside or at the ends of i64.
fn decode_blank(bytes: &mut Bytes<'_>, vocab: usize) -> i64 {
    let v = vocab as i64;
    match bytes.byte() {
        252 => v,
        253 => -v - 1,
        254 => i64::MIN,
        255 => i64::MAX,
        byte => i64::from(byte) % (2 * v).max(1) - v,
    }
}

/// `count` lengths (now and then one more or one fewer), mostly in `lo..=hi`, sometimes just
/// outside or at the ends of i64.
fn decode_lengths(bytes: &mut Bytes<'_>, count: usize, (lo, hi): (i64, i64)) -> Vec<i64> {
    let count = nudged(bytes, count);
    (0..count)
        .map(|_| match bytes.byte() {
            251 => lo - 1,
            252 => hi + 1,
            253 => i64::MIN,
            254 => i64::MAX,
            255 => i64::from(i32::MAX) + 1,
            byte => lo + i64::from(byte) % (hi - lo + 1).max(1),
        })
        .collect()
}

/// `n`, now and then one more or one fewer.
fn nudged(bytes: &mut Bytes<'_>, n: usize) -> usize {
    match bytes.byte() {
        254 => n + 1,
        255 => n.saturating_sub(1),
        _ => n,
    }
}
