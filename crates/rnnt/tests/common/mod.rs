//! Helpers shared by the integration tests: owned inputs, the golden cases, brute force.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::path::PathBuf;

use ndarray::{Array1, Array2, Array4, ArrayD, ArrayView, Ix4};
use rnnt::{Float, Index, LossInput, ScoresDim, Targets};
use rnnt_cases::{Case, Labels};

/// Owned arrays of one loss call.
#[derive(Debug, Clone)]
pub struct OwnedInput<F, I> {
    pub logits: Array4<F>,
    pub padded: Option<Array2<I>>,
    pub packed: Option<Array1<I>>,
    pub logit_lengths: Array1<I>,
    pub target_lengths: Array1<I>,
}

impl<F: Float, I: Index> OwnedInput<F, I> {
    /// Borrows the arrays as a loss input (padded targets when present, else packed).
    pub fn view(&self) -> LossInput<'_, F, I> {
        self.view_with(self.logits.view())
    }

    /// Borrows the arrays as a loss input whose logits are `logits` (the packed logits of
    /// [`OwnedInput::packed_logits`], say).
    pub fn view_with<'a, D: ScoresDim>(
        &'a self,
        logits: ArrayView<'a, F, D>,
    ) -> LossInput<'a, F, I, D> {
        let targets = match (&self.padded, &self.packed) {
            (Some(padded), _) => Targets::Padded(padded.view()),
            (None, Some(packed)) => Targets::Packed(packed.view()),
            (None, None) => panic!("an input needs targets"),
        };
        LossInput {
            logits,
            targets,
            logit_lengths: self.logit_lengths.view(),
            target_lengths: self.target_lengths.view(),
        }
    }
}

impl<F: Float, I: Index> OwnedInput<F, I> {
    /// The logits packed into (ΣT_b·(U_b+1), V) rows (the padding dropped).
    pub fn packed_logits(&self) -> Array2<F> {
        let (frames, labels) = self.lengths();
        rnnt_cases::pack_scores(self.logits.view(), frames.view(), labels.view())
    }

    /// A gradient of the input's logits, padded or packed (`grad`'s rank says), as padded
    /// (B, T, U+1, V) scores with `fill` in the padding.
    pub fn padded<A: Clone>(&self, grad: ArrayD<A>, fill: A) -> Array4<A> {
        if grad.ndim() == 4 {
            return grad.into_dimensionality::<Ix4>().unwrap();
        }
        let packed = grad.into_dimensionality::<ndarray::Ix2>().unwrap();
        let (frames, labels) = self.lengths();
        rnnt_cases::unpack_scores(
            packed.view(),
            self.logits.dim(),
            frames.view(),
            labels.view(),
            fill,
        )
    }

    /// The lengths as i64.
    fn lengths(&self) -> (Array1<i64>, Array1<i64>) {
        (
            self.logit_lengths.mapv(|x| x.to_i64()),
            self.target_lengths.mapv(|x| x.to_i64()),
        )
    }
}

/// Converts integer arrays between index types.
pub trait FromI64: Index {
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

/// The labels of every item packed end to end.
pub fn pack(padded: &Array2<i64>, target_lengths: &Array1<i64>) -> Array1<i64> {
    padded
        .outer_iter()
        .zip(target_lengths)
        .flat_map(|(row, &len)| row.iter().take(len as usize).copied().collect::<Vec<_>>())
        .collect()
}

/// Builds an owned input from a golden case's integer arrays and the given scores.
pub fn from_case<F: Float, I: FromI64>(
    case: &Case,
    logits: Array4<F>,
    packed: bool,
) -> OwnedInput<F, I> {
    let conv = |a: &Array1<i64>| a.mapv(I::from_i64);
    let padded = match &case.targets {
        Labels::Padded(p) => p.clone(),
        Labels::Packed(_) => panic!("golden cases store padded targets"),
    };
    OwnedInput {
        logits,
        packed: packed.then(|| pack(&padded, &case.target_lengths).mapv(I::from_i64)),
        padded: (!packed).then(|| padded.mapv(I::from_i64)),
        logit_lengths: conv(&case.logit_lengths),
        target_lengths: conv(&case.target_lengths),
    }
}

/// The first gradient element in `case`'s padding (beyond an item's lengths) that is not exactly
/// zero, as "grad[b][t][u] = g", if any.
pub fn nonzero_padding<F: Float>(case: &Case, grad: &Array4<F>) -> Option<String> {
    grad.indexed_iter().find_map(|((b, t, u, _), &g)| {
        let outside = t as i64 >= case.logit_lengths[b] || u as i64 > case.target_lengths[b];
        (outside && g.to_f64() != 0.0).then(|| format!("grad[{b}][{t}][{u}] = {g}"))
    })
}

/// `tests/golden` at the repository root.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

/// Largest |a − b| over two arrays of the same shape (equal infinities count as 0; a NaN on
/// either side counts as +inf, so that it fails any tolerance).
pub fn max_abs_diff<F: Float>(ours: &Array4<F>, truth: &Array4<f64>) -> f64 {
    assert_eq!(ours.shape(), truth.shape());
    ours.iter()
        .zip(truth)
        .map(|(&a, &b)| {
            let a = a.to_f64();
            if a == b {
                0.0
            } else if a.is_nan() || b.is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0, f64::max)
}

/// One complete path of a lattice: the nodes (t, u) it visits and its log-probability, final
/// blank included (summed from the start, in path order).
#[derive(Debug, Clone)]
pub struct EnumeratedPath {
    pub nodes: Vec<(usize, usize)>,
    pub score: f64,
}

/// Every path of a tiny lattice, from f64 log-probs lp[t][u][k].
pub fn all_paths(
    lp: &dyn Fn(usize, usize, usize) -> f64,
    frames: usize,
    labels: &[usize],
    blank: usize,
) -> Vec<EnumeratedPath> {
    fn walk(
        lp: &dyn Fn(usize, usize, usize) -> f64,
        (frames, labels, blank): (usize, &[usize], usize),
        nodes: &mut Vec<(usize, usize)>,
        acc: f64,
        paths: &mut Vec<EnumeratedPath>,
    ) {
        let (t, u) = *nodes.last().expect("a path starts at (0, 0)");
        if t == frames - 1 && u == labels.len() {
            paths.push(EnumeratedPath {
                nodes: nodes.clone(),
                score: acc + lp(t, u, blank),
            });
            return;
        }
        let mut step = |next: (usize, usize), arc: f64, paths: &mut Vec<EnumeratedPath>| {
            nodes.push(next);
            walk(lp, (frames, labels, blank), nodes, acc + arc, paths);
            nodes.pop();
        };
        if t + 1 < frames {
            step((t + 1, u), lp(t, u, blank), paths);
        }
        if u < labels.len() {
            step((t, u + 1), lp(t, u, labels[u]), paths);
        }
    }
    let mut paths = Vec::new();
    walk(
        lp,
        (frames, labels, blank),
        &mut vec![(0, 0)],
        0.0,
        &mut paths,
    );
    paths
}

/// −log P by enumerating every path of a tiny lattice, from f64 log-probs lp[t][u][k].
pub fn brute_force_loss(
    lp: &dyn Fn(usize, usize, usize) -> f64,
    frames: usize,
    labels: &[usize],
    blank: usize,
) -> f64 {
    let path_scores: Vec<f64> = all_paths(lp, frames, labels, blank)
        .into_iter()
        .map(|path| path.score)
        .collect();
    let max = path_scores
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::INFINITY;
    }
    -(max
        + path_scores
            .iter()
            .map(|s| (s - max).exp())
            .sum::<f64>()
            .ln())
}
