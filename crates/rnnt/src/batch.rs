//! The input of the loss and its validation: shapes, lengths, padded or packed labels, padded or
//! packed logits.
//!
//! Every check on user input lives here, so that each backend can trust a [`Batch`]: all lengths
//! are in range, every label is a valid non-blank symbol, the logits are C-contiguous and, when
//! packed, hold exactly the rows the lengths describe. Logit *values* are checked while the front
//! pass streams them (one read of the data, not two); the error it reports is built by
//! [`Batch::non_finite_score`] below.
//!
//! **Layout.** Whatever the input's rank, a backend sees the scores as rows of V elements, and the
//! [`Batch`] says where each node's row is: item b's block starts at row
//! [`Batch::item_rows`]`(b).start`, and node (t, u) is [`Batch::row_stride`]`(b)` rows per frame
//! further on, at row start + t·stride + u. Padded (B, T, U+1, V) scores have blocks of T·(U+1)
//! rows at b·T·(U+1) and stride U+1; packed (ΣT_b·(U_b+1), V) scores (optimized_transducer's
//! layout: each item's T_b × (U_b+1) rows, frame-major, concatenated in batch order) have blocks
//! of T_b·(U_b+1) rows at the running sum and stride U_b+1.

use std::fmt;
use std::ops::Range;

use ndarray::{ArrayView, ArrayView1, ArrayView2, ArrayViewMut, Dimension, Ix2, Ix4};

use crate::cpu::backend::{CpuGrad, CpuScores};
use crate::element::{Float, Index};
use crate::error::{Error, Result};

/// The sizes of a batch's scores: padded to a (B, T, U+1, V) box, or packed into
/// (ΣT_b·(U_b+1), V) rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoresShape {
    /// (B, T, U+1, V): item b's node (t, u) at `[b][t][u]`; frames t ≥ T_b and positions
    /// u > U_b are padding, never read (their gradient is 0).
    Padded((usize, usize, usize, usize)),
    /// (ΣT_b·(U_b+1), V): item b's T_b × (U_b+1) rows, frame-major, after those of the items
    /// before it; no padding.
    Packed {
        /// ΣT_b·(U_b+1), the number of rows.
        rows: usize,
        /// V, the vocabulary size including blank.
        vocab: usize,
    },
}

impl From<(usize, usize, usize, usize)> for ScoresShape {
    fn from(dims: (usize, usize, usize, usize)) -> ScoresShape {
        ScoresShape::Padded(dims)
    }
}

impl fmt::Display for ScoresShape {
    /// As a tuple: `(B, T, U+1, V)` or `(rows, V)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScoresShape::Padded(dims) => write!(f, "{dims:?}"),
            ScoresShape::Packed { rows, vocab } => write!(f, "({rows}, {vocab})"),
        }
    }
}

mod sealed {
    /// Seals [`super::ScoresDim`]: only the two layouts the loss knows implement it.
    pub trait Sealed {}
    impl Sealed for ndarray::Ix4 {}
    impl Sealed for ndarray::Ix2 {}
}

/// The rank of a host array of scores, which says its layout: [`Ix4`] for padded
/// (B, T, U+1, V) scores, [`Ix2`] for packed (ΣT_b·(U_b+1), V) ones. Sealed.
pub trait ScoresDim: Dimension + Copy + sealed::Sealed {
    /// The layout and sizes of scores with dimensions `dim`.
    fn scores_shape(dim: &Self) -> ScoresShape;

    /// A view of such scores as the CPU backend takes them.
    fn cpu_scores<F>(scores: ArrayView<'_, F, Self>) -> CpuScores<'_, F>;

    /// A gradient buffer of such scores as the CPU backend takes it.
    fn cpu_grad<F>(grad: ArrayViewMut<'_, F, Self>) -> CpuGrad<'_, F>;
}

impl ScoresDim for Ix4 {
    fn scores_shape(dim: &Ix4) -> ScoresShape {
        ScoresShape::Padded(dim.into_pattern())
    }

    fn cpu_scores<F>(scores: ArrayView<'_, F, Ix4>) -> CpuScores<'_, F> {
        CpuScores::Padded(scores)
    }

    fn cpu_grad<F>(grad: ArrayViewMut<'_, F, Ix4>) -> CpuGrad<'_, F> {
        CpuGrad::Padded(grad)
    }
}

impl ScoresDim for Ix2 {
    fn scores_shape(dim: &Ix2) -> ScoresShape {
        let (rows, vocab) = dim.into_pattern();
        ScoresShape::Packed { rows, vocab }
    }

    fn cpu_scores<F>(scores: ArrayView<'_, F, Ix2>) -> CpuScores<'_, F> {
        CpuScores::Packed(scores)
    }

    fn cpu_grad<F>(grad: ArrayViewMut<'_, F, Ix2>) -> CpuGrad<'_, F> {
        CpuGrad::Packed(grad)
    }
}

/// Labels of a batch, either padded to a rectangle or packed end to end.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a, I> {
    /// (B, U) labels; entries past `target_lengths[b]` are padding and never read.
    Padded(ArrayView2<'a, I>),
    /// (ΣU_b,) labels of every item concatenated in batch order (awni's "flat labels").
    Packed(ArrayView1<'a, I>),
}

/// The arrays of one loss call, borrowed from the caller. `D` is the rank of the logits, which
/// says their layout (see [`ScoresDim`]): padded (B, T, U+1, V) by default, or packed
/// (ΣT_b·(U_b+1), V) with `D = Ix2`.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a, F, I, D: ScoresDim = Ix4> {
    /// The joiner output: logits, or log-probabilities when
    /// [`Options::fused_log_softmax`](crate::Options::fused_log_softmax) is off. C-contiguous;
    /// (B, T, U+1, V) padded, or (ΣT_b·(U_b+1), V) packed.
    pub logits: ArrayView<'a, F, D>,
    /// Labels, padded (B, U) or packed (ΣU_b).
    pub targets: Targets<'a, I>,
    /// (B,) frames per item, T_b with 1 ≤ T_b (≤ T when padded).
    pub logit_lengths: ArrayView1<'a, I>,
    /// (B,) labels per item, U_b with 0 ≤ U_b (≤ U when padded).
    pub target_lengths: ArrayView1<'a, I>,
}

/// The labels and lengths of a loss call: everything but the scores, which may live elsewhere
/// (a GPU's memory, for example).
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a, I> {
    /// Labels, padded (B, U) or packed (ΣU_b).
    pub targets: Targets<'a, I>,
    /// (B,) frames per item, T_b with 1 ≤ T_b ≤ T.
    pub logit_lengths: ArrayView1<'a, I>,
    /// (B,) labels per item, U_b with 0 ≤ U_b ≤ U.
    pub target_lengths: ArrayView1<'a, I>,
}

impl<'a, F, I: Copy, D: ScoresDim> LossInput<'a, F, I, D> {
    /// The input's labels and lengths.
    pub fn labels(&self) -> Labels<'a, I> {
        Labels {
            targets: self.targets,
            logit_lengths: self.logit_lengths,
            target_lengths: self.target_lengths,
        }
    }
}

/// A validated batch description shared by every backend: sizes, per-item lengths and labels,
/// and where each item's rows are in the scores (padded or packed; see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// B, the number of items.
    pub batch_size: usize,
    /// T, the padded number of frames (packed: the largest T_b).
    pub max_frames: usize,
    /// U + 1, the padded number of label positions (packed: the largest U_b + 1).
    pub label_positions: usize,
    /// V, the vocabulary size including blank.
    pub vocab: usize,
    /// The blank id, normalised to 0 ≤ blank < V.
    pub blank: usize,
    frames: Vec<usize>,
    label_offsets: Vec<usize>,
    labels: Vec<u32>,
    packed: bool,
    /// B + 1 entries: item b's rows are `row_offsets[b]..row_offsets[b + 1]`.
    row_offsets: Vec<usize>,
}

/// The layout and sizes of host `scores` (named `name` in messages), once checked to be
/// C-contiguous.
///
/// # Errors
/// [`Error::Layout`] for strided or non-row-major scores.
pub(crate) fn contiguous_shape<F, D: ScoresDim>(
    scores: &ArrayView<'_, F, D>,
    name: &str,
) -> Result<ScoresShape> {
    if !scores.is_standard_layout() {
        return Err(Error::Layout(format!(
            "{name} must be C-contiguous (row-major, no strides); make a contiguous copy"
        )));
    }
    Ok(D::scores_shape(&scores.raw_dim()))
}

impl Batch {
    /// Validates `input` with the given (possibly negative) `blank` and describes it.
    ///
    /// `input_name` is the name of the scores argument in messages (`"logits"` or
    /// `"log_probs"`).
    pub fn new<F: Float, I: Index, D: ScoresDim>(
        input: &LossInput<'_, F, I, D>,
        blank: i64,
        input_name: &str,
    ) -> Result<Batch> {
        Batch::for_shape(
            contiguous_shape(&input.logits, input_name)?,
            &input.targets,
            (input.logit_lengths, input.target_lengths),
            blank,
            input_name,
        )
    }

    /// Validates the labels and lengths of a batch whose scores of shape `shape` (padded
    /// (B, T, U+1, V) — a plain tuple converts — or packed) live elsewhere (on a GPU, for
    /// example), with the given (possibly negative) `blank`.
    ///
    /// The caller vouches that the scores are C-contiguous; everything else is checked as by
    /// [`Batch::new`], which calls this after checking the layout.
    pub fn for_shape<I: Index>(
        shape: impl Into<ScoresShape>,
        targets: &Targets<'_, I>,
        (logit_lengths, target_lengths): (ArrayView1<'_, I>, ArrayView1<'_, I>),
        blank: i64,
        input_name: &str,
    ) -> Result<Batch> {
        let shape = shape.into();
        let (frames, label_counts, vocab, blank) = match shape {
            ScoresShape::Padded((batch_size, max_frames, label_positions, vocab)) => {
                if batch_size == 0 || max_frames == 0 || label_positions == 0 || vocab == 0 {
                    return Err(Error::Shape(format!(
                        "{input_name} has shape ({batch_size}, {max_frames}, {label_positions}, \
                         {vocab}): (B, T, U+1, V) must all be at least 1"
                    )));
                }
                if [max_frames, label_positions, vocab]
                    .iter()
                    .try_fold(batch_size, |count, &dim| count.checked_mul(dim))
                    .is_none()
                {
                    return Err(Error::Shape(format!(
                        "{input_name} has shape ({batch_size}, {max_frames}, {label_positions}, \
                         {vocab}): B·T·(U+1)·V overflows the address space"
                    )));
                }
                let blank = normalise_blank(blank, vocab)?;
                let frames = checked_lengths(
                    logit_lengths,
                    "logit_lengths",
                    batch_size,
                    (1, max_frames),
                    (
                        ": every sequence needs at least one frame",
                        &format!("T = {input_name}.shape[1]"),
                    ),
                )?;
                let label_counts = checked_lengths(
                    target_lengths,
                    "target_lengths",
                    batch_size,
                    (0, label_positions - 1),
                    ("", &format!("U = {input_name}.shape[2] - 1")),
                )?;
                (frames, label_counts, vocab, blank)
            }
            ScoresShape::Packed { rows, vocab } => {
                let batch_size = logit_lengths.len();
                if batch_size == 0 || vocab == 0 {
                    return Err(Error::Shape(format!(
                        "{input_name} has shape ({rows}, {vocab}) and logit_lengths {batch_size} \
                         entries: packed (sum of T_b*(U_b+1), V) scores need V and B at least 1"
                    )));
                }
                let blank = normalise_blank(blank, vocab)?;
                let unbounded = (i64::MAX as usize, "the largest length");
                let frames = checked_lengths(
                    logit_lengths,
                    "logit_lengths",
                    batch_size,
                    (1, unbounded.0),
                    (": every sequence needs at least one frame", unbounded.1),
                )?;
                let label_counts = checked_lengths(
                    target_lengths,
                    "target_lengths",
                    batch_size,
                    (0, unbounded.0),
                    ("", unbounded.1),
                )?;
                let described = frames
                    .iter()
                    .zip(&label_counts)
                    .try_fold(0usize, |sum, (&t, &u)| {
                        t.checked_mul(u + 1).and_then(|rows| sum.checked_add(rows))
                    });
                if described != Some(rows) {
                    let described = described
                        .map_or_else(|| "more than fits in memory".into(), |n| n.to_string());
                    return Err(Error::Shape(format!(
                        "{input_name} is packed with {rows} rows but the lengths describe \
                         sum(logit_lengths[b] * (target_lengths[b] + 1)) = {described}"
                    )));
                }
                (frames, label_counts, vocab, blank)
            }
        };
        let batch_size = frames.len();
        let labels = gather_labels(targets, &label_counts, vocab, blank)?;
        let mut label_offsets = Vec::with_capacity(batch_size + 1);
        let mut offset = 0;
        label_offsets.push(0);
        for &count in &label_counts {
            offset += count;
            label_offsets.push(offset);
        }
        let (packed, max_frames, label_positions) = match shape {
            ScoresShape::Padded((_, max_frames, label_positions, _)) => {
                (false, max_frames, label_positions)
            }
            ScoresShape::Packed { .. } => (
                true,
                frames.iter().copied().max().unwrap_or(1),
                label_counts.iter().copied().max().unwrap_or(0) + 1,
            ),
        };
        let mut row_offsets = Vec::with_capacity(batch_size + 1);
        let mut row = 0;
        row_offsets.push(0);
        for (&t, &u) in frames.iter().zip(&label_counts) {
            row += if packed {
                t * (u + 1)
            } else {
                max_frames * label_positions
            };
            row_offsets.push(row);
        }
        Ok(Batch {
            batch_size,
            max_frames,
            label_positions,
            vocab,
            blank,
            frames,
            label_offsets,
            labels,
            packed,
            row_offsets,
        })
    }

    /// T_b, the number of frames of item `b`.
    pub fn frames(&self, b: usize) -> usize {
        self.frames[b]
    }

    /// y_b[1..=U_b], the labels of item `b` (U_b = its length).
    pub fn labels(&self, b: usize) -> &[u32] {
        &self.labels[self.label_offsets[b]..self.label_offsets[b + 1]]
    }

    /// Whether the scores are packed (ΣT_b·(U_b+1), V) rather than padded (B, T, U+1, V).
    pub fn is_packed(&self) -> bool {
        self.packed
    }

    /// The layout and sizes of the scores this batch describes.
    pub fn shape(&self) -> ScoresShape {
        if self.packed {
            ScoresShape::Packed {
                rows: self.row_offsets[self.batch_size],
                vocab: self.vocab,
            }
        } else {
            ScoresShape::Padded((
                self.batch_size,
                self.max_frames,
                self.label_positions,
                self.vocab,
            ))
        }
    }

    /// The rows (of V elements) of item `b`'s block of the scores: T·(U+1) rows from
    /// b·T·(U+1) when padded, T_b·(U_b+1) rows after those of the items before it when packed.
    /// The blocks are consecutive and cover the scores.
    #[inline]
    pub fn item_rows(&self, b: usize) -> Range<usize> {
        self.row_offsets[b]..self.row_offsets[b + 1]
    }

    /// Rows from one frame of item `b` to its next: U+1 when padded, U_b+1 when packed.
    #[inline]
    pub fn row_stride(&self, b: usize) -> usize {
        if self.packed {
            self.labels(b).len() + 1
        } else {
            self.label_positions
        }
    }

    /// The row of node (t, u) of item `b` in the scores, with t < T_b and u ≤ U_b.
    #[inline]
    pub fn row(&self, b: usize, t: usize, u: usize) -> usize {
        self.row_offsets[b] + t * self.row_stride(b) + u
    }

    /// Total number of elements of the scores: B·T·(U+1)·V padded, ΣT_b·(U_b+1)·V packed.
    pub fn len(&self) -> usize {
        self.row_offsets[self.batch_size] * self.vocab
    }

    /// The error for a NaN or +inf found in the row of node (t, u) of item b: names the first
    /// offending element as the scores are indexed, `name[b][t][u][k]` padded and
    /// `name[row][k]` packed (with the item, frame and position). Every backend reports it.
    pub fn non_finite_score<F: Float>(
        &self,
        row: &[F],
        input_name: &str,
        (b, t, u): (usize, usize, usize),
    ) -> Error {
        if !self.packed {
            return non_finite_logit(row, input_name, (b, t, u));
        }
        let (k, value) = first_non_finite(row);
        Error::Value(format!(
            "{input_name}[{}][{k}] = {value} (item {b}, frame {t}, label position {u}): values \
             within the lengths must be finite or -inf",
            self.row(b, t, u)
        ))
    }

    /// Always false: a validated batch holds at least one element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Normalises `blank` into 0 ≤ blank < V (negative values count from the end).
fn normalise_blank(blank: i64, vocab: usize) -> Result<usize> {
    let v = vocab as i64;
    if blank < -v || blank >= v {
        return Err(Error::Value(format!(
            "blank = {blank} is out of range for V = {vocab} (allowed: -{vocab} <= blank < {vocab})"
        )));
    }
    Ok(if blank < 0 {
        (blank + v) as usize
    } else {
        blank as usize
    })
}

/// Checks a (B,) length array against its shape and the inclusive range `lo..=hi`; `low_hint`
/// is appended to the message for a value below `lo`, `high_name` names the bound `hi`.
fn checked_lengths<I: Index>(
    lengths: ArrayView1<'_, I>,
    name: &str,
    batch_size: usize,
    (lo, hi): (usize, usize),
    (low_hint, high_name): (&str, &str),
) -> Result<Vec<usize>> {
    if lengths.len() != batch_size {
        return Err(Error::Shape(format!(
            "{name} has shape ({},) but the batch has B = {batch_size} items",
            lengths.len()
        )));
    }
    lengths
        .iter()
        .enumerate()
        .map(|(b, &len)| {
            let len = len.to_i64();
            if len < lo as i64 {
                Err(Error::Value(format!(
                    "{name}[{b}] = {len} is below {lo}{low_hint}"
                )))
            } else if len > hi as i64 {
                Err(Error::Value(format!(
                    "{name}[{b}] = {len} exceeds {high_name} = {hi}"
                )))
            } else {
                Ok(len as usize)
            }
        })
        .collect()
}

/// Copies the labels within the lengths into one packed vector, checking each one.
fn gather_labels<I: Index>(
    targets: &Targets<'_, I>,
    label_counts: &[usize],
    vocab: usize,
    blank: usize,
) -> Result<Vec<u32>> {
    let total: usize = label_counts.iter().sum();
    let mut labels = Vec::with_capacity(total);
    match targets {
        Targets::Padded(padded) => {
            let (rows, width) = padded.dim();
            if rows != label_counts.len() {
                return Err(Error::Shape(format!(
                    "targets has shape ({rows}, {width}) but the batch has B = {} items",
                    label_counts.len()
                )));
            }
            for (b, &count) in label_counts.iter().enumerate() {
                if count > width {
                    return Err(Error::Value(format!(
                        "target_lengths[{b}] = {count} exceeds targets.shape[1] = {width}"
                    )));
                }
                for (u, &label) in padded.row(b).iter().take(count).enumerate() {
                    let place = || format!("targets[{b}][{u}]");
                    labels.push(checked_label(label.to_i64(), place, vocab, blank)?);
                }
            }
        }
        Targets::Packed(packed) => {
            if packed.len() != total {
                return Err(Error::Shape(format!(
                    "targets is packed with {} labels but sum(target_lengths) = {total}",
                    packed.len()
                )));
            }
            for (i, &label) in packed.iter().enumerate() {
                let place = || format!("targets[{i}]");
                labels.push(checked_label(label.to_i64(), place, vocab, blank)?);
            }
        }
    }
    Ok(labels)
}

/// Checks one label: 0 ≤ label < V and label ≠ blank. `place` names it in the error (formatted
/// only then: a batch has thousands of labels).
fn checked_label(
    label: i64,
    place: impl FnOnce() -> String,
    vocab: usize,
    blank: usize,
) -> Result<u32> {
    if label < 0 || label >= vocab as i64 {
        return Err(Error::Value(format!(
            "{} = {label} is out of range for V = {vocab}",
            place()
        )));
    }
    if label == blank as i64 {
        return Err(Error::Value(format!(
            "{} = {label} is the blank id: labels within target_lengths must not be blank",
            place()
        )));
    }
    Ok(label as u32)
}

/// The error for a NaN or +inf found in row (b, t, u) of padded input by a front pass: names the
/// first offending element. Public so that every backend reports the same message (see
/// [`Batch::non_finite_score`], which also covers packed input).
pub fn non_finite_logit<F: Float>(
    row: &[F],
    input_name: &str,
    (b, t, u): (usize, usize, usize),
) -> Error {
    let (k, value) = first_non_finite(row);
    Error::Value(format!(
        "{input_name}[{b}][{t}][{u}][{k}] = {value}: values within the lengths must be finite or -inf"
    ))
}

/// The first NaN or +inf of `row`, with its index.
fn first_non_finite<F: Float>(row: &[F]) -> (usize, f64) {
    row.iter()
        .enumerate()
        .find(|(_, x)| {
            let x = x.to_f64();
            x.is_nan() || x == f64::INFINITY
        })
        .map(|(k, x)| (k, x.to_f64()))
        .unwrap_or((0, f64::NAN))
}
