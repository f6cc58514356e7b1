//! The input of the loss and its validation: shapes, lengths, padded or packed labels.
//!
//! Every check on user input lives here, so that each backend can trust a [`Batch`]: all lengths
//! are in range, every label is a valid non-blank symbol, and the logits are C-contiguous. Logit
//! *values* are checked while the front pass streams them (one read of the data, not two); the error
//! it reports is built by [`non_finite_logit`] below.

use ndarray::{ArrayView1, ArrayView2, ArrayView4};

use crate::element::{Float, Index};
use crate::error::{Error, Result};

/// Labels of a batch, either padded to a rectangle or packed end to end.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a, I> {
    /// (B, U) labels; entries past `target_lengths[b]` are padding and never read.
    Padded(ArrayView2<'a, I>),
    /// (ΣU_b,) labels of every item concatenated in batch order (awni's "flat labels").
    Packed(ArrayView1<'a, I>),
}

/// The arrays of one loss call, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a, F, I> {
    /// (B, T, U+1, V) joiner output: logits, or log-probabilities when
    /// [`Options::fused_log_softmax`](crate::Options::fused_log_softmax) is off. C-contiguous.
    pub logits: ArrayView4<'a, F>,
    /// Labels, padded (B, U) or packed (ΣU_b).
    pub targets: Targets<'a, I>,
    /// (B,) frames per item, T_b with 1 ≤ T_b ≤ T.
    pub logit_lengths: ArrayView1<'a, I>,
    /// (B,) labels per item, U_b with 0 ≤ U_b ≤ U.
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

impl<'a, F, I: Copy> LossInput<'a, F, I> {
    /// The input's labels and lengths.
    pub fn labels(&self) -> Labels<'a, I> {
        Labels {
            targets: self.targets,
            logit_lengths: self.logit_lengths,
            target_lengths: self.target_lengths,
        }
    }
}

/// A validated batch description shared by every backend: sizes, per-item lengths and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// B, the number of items.
    pub batch_size: usize,
    /// T, the padded number of frames.
    pub max_frames: usize,
    /// U + 1, the padded number of label positions.
    pub label_positions: usize,
    /// V, the vocabulary size including blank.
    pub vocab: usize,
    /// The blank id, normalised to 0 ≤ blank < V.
    pub blank: usize,
    frames: Vec<usize>,
    label_offsets: Vec<usize>,
    labels: Vec<u32>,
}

/// The sizes of host `scores` (named `name` in messages), once checked to be C-contiguous.
///
/// # Errors
/// [`Error::Layout`] for strided or non-row-major scores.
pub(crate) fn contiguous_dims<F>(
    scores: &ArrayView4<'_, F>,
    name: &str,
) -> Result<(usize, usize, usize, usize)> {
    if !scores.is_standard_layout() {
        return Err(Error::Layout(format!(
            "{name} must be C-contiguous (row-major, no strides); make a contiguous copy"
        )));
    }
    Ok(scores.dim())
}

impl Batch {
    /// Validates `input` with the given (possibly negative) `blank` and describes it.
    ///
    /// `input_name` is the name of the 4-D argument in messages (`"logits"` or `"log_probs"`).
    pub fn new<F: Float, I: Index>(
        input: &LossInput<'_, F, I>,
        blank: i64,
        input_name: &str,
    ) -> Result<Batch> {
        Batch::for_shape(
            contiguous_dims(&input.logits, input_name)?,
            &input.targets,
            (input.logit_lengths, input.target_lengths),
            blank,
            input_name,
        )
    }

    /// Validates the labels and lengths of a batch whose (B, T, U+1, V) scores of shape `shape`
    /// live elsewhere (on a GPU, for example), with the given (possibly negative) `blank`.
    ///
    /// The caller vouches that the scores are C-contiguous; everything else is checked as by
    /// [`Batch::new`], which calls this after checking the layout.
    pub fn for_shape<I: Index>(
        shape: (usize, usize, usize, usize),
        targets: &Targets<'_, I>,
        (logit_lengths, target_lengths): (ArrayView1<'_, I>, ArrayView1<'_, I>),
        blank: i64,
        input_name: &str,
    ) -> Result<Batch> {
        let (batch_size, max_frames, label_positions, vocab) = shape;
        if batch_size == 0 || max_frames == 0 || label_positions == 0 || vocab == 0 {
            return Err(Error::Shape(format!(
                "{input_name} has shape ({batch_size}, {max_frames}, {label_positions}, {vocab}): \
                 (B, T, U+1, V) must all be at least 1"
            )));
        }
        if [max_frames, label_positions, vocab]
            .iter()
            .try_fold(batch_size, |count, &dim| count.checked_mul(dim))
            .is_none()
        {
            return Err(Error::Shape(format!(
                "{input_name} has shape ({batch_size}, {max_frames}, {label_positions}, {vocab}): \
                 B·T·(U+1)·V overflows the address space"
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
        let labels = gather_labels(targets, &label_counts, vocab, blank)?;
        let mut label_offsets = Vec::with_capacity(batch_size + 1);
        let mut offset = 0;
        label_offsets.push(0);
        for &count in &label_counts {
            offset += count;
            label_offsets.push(offset);
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

    /// Number of elements of one item's (T, U+1, V) block of logits.
    pub fn item_len(&self) -> usize {
        self.max_frames * self.label_positions * self.vocab
    }

    /// Total number of elements N = B·T·(U+1)·V.
    pub fn len(&self) -> usize {
        self.batch_size * self.item_len()
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

/// The error for a NaN or +inf found in row (b, t, u) of the input by a front pass: names the
/// first offending element. Public so that every backend reports the same message.
pub fn non_finite_logit<F: Float>(
    row: &[F],
    input_name: &str,
    (b, t, u): (usize, usize, usize),
) -> Error {
    let (k, value) = row
        .iter()
        .enumerate()
        .find(|(_, x)| {
            let x = x.to_f64();
            x.is_nan() || x == f64::INFINITY
        })
        .map(|(k, x)| (k, x.to_f64()))
        .unwrap_or((0, f64::NAN));
    Error::Value(format!(
        "{input_name}[{b}][{t}][{u}][{k}] = {value}: values within the lengths must be finite or -inf"
    ))
}
