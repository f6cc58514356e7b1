//! Synthetic batches built by the benchmark rule of DESIGN.md §3, so that every benchmark and demo
//! measures the same inputs: lengths uniform in [0.8, 1]·max with item 0 at the maximum, random
//! non-blank labels, N(0, 1) logits, all from one seed.

use ndarray::{Array1, Array2, Array4};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::{Case, Labels, Scores};

/// The size of a synthetic batch: maxima B, T, U and the vocabulary V (blank is V − 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// B, items in the batch.
    pub batch: usize,
    /// T, the most frames of any item.
    pub frames: usize,
    /// U, the most labels of any item.
    pub labels: usize,
    /// V, symbols including blank.
    pub vocab: usize,
}

impl Shape {
    /// N = B·T·(U+1)·V, the number of logits.
    pub fn elements(&self) -> usize {
        self.batch * self.frames * (self.labels + 1) * self.vocab
    }
}

/// A batch of `shape` drawn from `seed`: float32 logits, padded labels, blank = V − 1.
///
/// Item 0 has T frames and U labels; every other item has T_b ∈ [0.8·T, T] and U_b ∈ [0.8·U, U]
/// (rounded up, at least 1 frame). With V = 1 there is no non-blank symbol, so every U_b is 0.
pub fn batch(shape: Shape, seed: u64) -> Case {
    let Shape {
        batch,
        frames,
        labels,
        vocab,
    } = shape;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut length = |max: usize, item: usize| -> i64 {
        if item == 0 {
            max as i64
        } else {
            let low = ((0.8 * max as f64).ceil() as usize).min(max);
            rng.random_range(low..=max) as i64
        }
    };
    let logit_lengths: Array1<i64> = (0..batch).map(|b| length(frames, b).max(1)).collect();
    let max_labels = if vocab > 1 { labels } else { 0 };
    let target_lengths: Array1<i64> = (0..batch).map(|b| length(max_labels, b)).collect();
    let blank = vocab as i64 - 1;
    let targets = Array2::from_shape_fn((batch, labels), |_| {
        if blank > 0 {
            rng.random_range(0..blank)
        } else {
            0
        }
    });
    let logits = Array4::from_shape_simple_fn((batch, frames, labels + 1, vocab), || {
        rng.sample::<f32, _>(StandardNormal)
    });
    Case {
        logits: Some(Scores::F32(logits)),
        log_probs: None,
        targets: Labels::Padded(targets),
        logit_lengths,
        target_lengths,
        blank: Some(blank),
        truth: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_length_rule_and_is_reproducible() {
        let shape = Shape {
            batch: 8,
            frames: 50,
            labels: 10,
            vocab: 7,
        };
        let case = batch(shape, 0);
        assert_eq!(case.logit_lengths[0], 50);
        assert_eq!(case.target_lengths[0], 10);
        assert!(case.logit_lengths.iter().all(|&t| (40..=50).contains(&t)));
        assert!(case.target_lengths.iter().all(|&u| (8..=10).contains(&u)));
        let Labels::Padded(targets) = &case.targets else {
            panic!("synthetic batches are padded")
        };
        assert!(targets.iter().all(|&y| (0..6).contains(&y)));
        assert_eq!(case, batch(shape, 0));
        assert_ne!(case, batch(shape, 1));
    }

    #[test]
    fn blank_only_vocabulary_has_no_labels() {
        let case = batch(
            Shape {
                batch: 3,
                frames: 2,
                labels: 4,
                vocab: 1,
            },
            5,
        );
        assert!(case.target_lengths.iter().all(|&u| u == 0));
    }
}
