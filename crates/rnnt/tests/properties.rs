//! Property tests: the fast CPU path against the float64 reference on random ragged batches
//! (U_b = 0, T_b = 1, V = 1, blank first / middle / last / negative, huge and −inf logits, every
//! option), the reference against brute-force path enumeration, and finite-difference gradients.

mod common;

use common::{brute_force_loss, OwnedInput};
use ndarray::{Array, Array1, Array2, Array4};
use proptest::prelude::*;
use rnnt::{Float, LossInput, Options, Reduction, ScoresDim};

/// A small deterministic generator (splitmix64) for array contents.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// How logit values are drawn.
#[derive(Debug, Clone, Copy)]
enum Values {
    Normal,
    /// Peaky: N(0, 1) × 30.
    Peaky,
    /// Every row shifted by a huge constant (log_softmax must be shift-invariant).
    Shifted,
    /// Some entries −inf (masked).
    Masked,
}

#[derive(Debug, Clone)]
struct Shape {
    batch: usize,
    frames: usize,
    labels: usize,
    vocab: usize,
    blank: i64,
    values: Values,
    seed: u64,
}

fn shapes() -> impl Strategy<Value = Shape> {
    (
        1usize..4,
        1usize..7,
        0usize..5,
        // Mostly tiny vocabularies; some of one to two vectors a row (the in-place gradient
        // kernel of such rows: 9–16 elements on 8 lanes, 17–32 on 16).
        prop_oneof![3 => 1usize..8, 1 => 9usize..33],
        0u8..4,
        0u8..4,
        any::<u64>(),
    )
        .prop_map(|(batch, frames, labels, vocab, blank_kind, values, seed)| {
            let blank = match blank_kind {
                0 => 0,
                1 => vocab as i64 / 2,
                2 => vocab as i64 - 1,
                _ => -1,
            };
            let values = [
                Values::Normal,
                Values::Peaky,
                Values::Shifted,
                Values::Masked,
            ][values as usize];
            // With V = 1 the only symbol is blank: no labels are possible.
            let labels = if vocab == 1 { 0 } else { labels };
            Shape {
                batch,
                frames,
                labels,
                vocab,
                blank,
                values,
                seed,
            }
        })
}

/// A random ragged batch of the given shape: lengths below the maxima, garbage in the padding.
fn random_input<F: Float>(shape: &Shape) -> OwnedInput<F, i64> {
    let mut rng = Rng(shape.seed);
    let blank = shape.blank.rem_euclid(shape.vocab as i64) as usize;
    let (b, t, u, v) = (shape.batch, shape.frames, shape.labels, shape.vocab);
    let logit_lengths: Array1<i64> = (0..b).map(|_| 1 + rng.below(t) as i64).collect();
    let target_lengths: Array1<i64> = (0..b).map(|_| rng.below(u + 1) as i64).collect();
    let padded = Array2::from_shape_fn((b, u), |_| {
        let label = rng.below(v - 1);
        (if label >= blank { label + 1 } else { label }) as i64
    });
    let logits = Array4::from_shape_fn((b, t, u + 1, v), |(bi, ti, ui, _)| {
        let inside = (ti as i64) < logit_lengths[bi] && (ui as i64) <= target_lengths[bi];
        let x = match shape.values {
            Values::Normal => rng.normal(),
            Values::Peaky => 30.0 * rng.normal(),
            Values::Shifted => 1e4 + rng.normal(),
            Values::Masked if rng.uniform() < 0.3 => f64::NEG_INFINITY,
            Values::Masked => rng.normal(),
        };
        // Padding holds values that must never be read: huge, or NaN.
        if inside {
            F::from_f64(x)
        } else if rng.uniform() < 0.5 {
            F::from_f64(f64::NAN)
        } else {
            F::from_f64(1e30)
        }
    });
    OwnedInput {
        logits,
        padded: Some(padded),
        packed: None,
        logit_lengths,
        target_lengths,
    }
}

/// Random options: mode, reduction, clamp, FastEmit, zero_infinity.
fn options(blank: i64) -> impl Strategy<Value = Options> {
    (
        any::<bool>(),
        0u8..3,
        prop_oneof![Just(-1.0), 0.01f64..0.5],
        prop_oneof![Just(0.0), 0.0f64..0.5],
        any::<bool>(),
    )
        .prop_map(
            move |(fused, reduction, clamp, fastemit_lambda, zero_infinity)| Options {
                blank,
                reduction: [Reduction::None, Reduction::Sum, Reduction::Mean][reduction as usize],
                fused_log_softmax: fused,
                clamp,
                fastemit_lambda,
                zero_infinity,
                threads: 0,
            },
        )
}

fn case_and_options() -> impl Strategy<Value = (Shape, Options)> {
    shapes().prop_flat_map(|shape| {
        let blank = shape.blank;
        (Just(shape), options(blank))
    })
}

/// Both fast paths agree with the reference within `tol` (relative + absolute on the losses,
/// absolute on the gradient): the one-shot call (for these cache-sized shapes, with the softmax
/// terms kept in the gradient between the passes) and forward then backward (the terms computed
/// again from the logits).
fn assert_fast_matches_reference<F: Float, D: ScoresDim>(
    input: &LossInput<'_, F, i64, D>,
    options: &Options,
    tol: f64,
) {
    let one_shot = rnnt::loss_and_grad(input, options).unwrap();
    let forward = rnnt::forward(input, options).unwrap();
    let weights = options
        .reduction
        .item_weights(1.0, forward.batch().batch_size);
    let mut grad = Array::from_elem(input.logits.raw_dim(), F::from_f64(f64::NAN));
    rnnt::backward(input, &forward, &weights, grad.view_mut()).unwrap();
    let two_pass = rnnt::LossAndGrad {
        losses: forward.losses().to_vec(),
        loss: forward.loss(),
        grad,
    };
    assert_matches_reference(&one_shot, input, options, tol);
    assert_matches_reference(&two_pass, input, options, tol);
}

/// `fast` agrees with the reference within `tol`.
fn assert_matches_reference<F: Float, D: ScoresDim>(
    fast: &rnnt::LossAndGrad<F, D>,
    input: &LossInput<'_, F, i64, D>,
    options: &Options,
    tol: f64,
) {
    let reference = rnnt::reference::loss_and_grad(input, options).unwrap();
    for (b, (&a, &r)) in fast.losses.iter().zip(&reference.losses).enumerate() {
        assert!(
            a == r || (a - r).abs() <= tol * (1.0 + r.abs()),
            "losses[{b}]: fast {a}, reference {r}"
        );
    }
    assert!(
        fast.loss == reference.loss
            || (fast.loss - reference.loss).abs() <= tol * (1.0 + reference.loss.abs())
    );
    for (index, (&g, &r)) in fast.grad.iter().zip(&reference.grad).enumerate() {
        let g = g.to_f64();
        assert!(g.is_finite(), "grad element {index} is {g}");
        assert!(
            (g - r).abs() <= tol,
            "grad element {index}: fast {g}, reference {r}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fast_f64_matches_reference((shape, options) in case_and_options()) {
        let input = random_input::<f64>(&shape);
        assert_fast_matches_reference(&input.view(), &options, 1e-9);
    }

    #[test]
    fn fast_f32_matches_reference((shape, options) in case_and_options()) {
        let input = random_input::<f32>(&shape);
        assert_fast_matches_reference(&input.view(), &options, 2e-5);
    }

    #[test]
    fn fast_f16_matches_reference((shape, options) in case_and_options()) {
        // The gradient is rounded to float16 (11-bit significand) on the way out.
        let input = random_input::<half::f16>(&shape);
        assert_fast_matches_reference(&input.view(), &options, 1e-3);
    }

    #[test]
    fn fast_bf16_matches_reference((shape, options) in case_and_options()) {
        // The gradient is rounded to bfloat16 (8-bit significand) on the way out.
        let input = random_input::<half::bf16>(&shape);
        assert_fast_matches_reference(&input.view(), &options, 8e-3);
    }

    #[test]
    fn one_shot_paths_match_forward_then_backward((shape, options) in case_and_options()) {
        // One thread: item by item when B ≥ 2; B threads: the passes over the whole batch.
        let input = random_input::<f32>(&shape);
        let input = input.view();
        let forward = rnnt::forward(&input, &options).unwrap();
        let weights = options
            .reduction
            .item_weights(1.0, forward.batch().batch_size);
        let mut two_pass = Array4::from_elem(input.logits.dim(), f32::NAN);
        rnnt::backward(&input, &forward, &weights, two_pass.view_mut()).unwrap();
        for threads in [1, shape.batch] {
            let options = Options { threads, ..options };
            let mut grad = Array4::from_elem(input.logits.dim(), f32::NAN);
            let one_shot = rnnt::loss_and_grad_into(&input, &options, grad.view_mut()).unwrap();
            prop_assert_eq!(one_shot.losses(), forward.losses());
            for (index, (&g, &want)) in grad.iter().zip(&two_pass).enumerate() {
                // The terms' flush bound is on the stored term, not the exp's argument.
                let at_bound = (g == 0.0 || want == 0.0) && g.abs().max(want.abs()) < 1e-30;
                prop_assert!(
                    g.to_bits() == want.to_bits() || at_bound,
                    "{} threads, grad element {}: {} against {}", threads, index, g, want
                );
            }
        }
    }

    #[test]
    fn fast_f64_on_packed_logits_matches_reference((shape, options) in case_and_options()) {
        let input = random_input::<f64>(&shape);
        let packed = input.packed_logits();
        assert_fast_matches_reference(&input.view_with(packed.view()), &options, 1e-9);
    }

    #[test]
    fn fast_f32_on_packed_logits_matches_reference((shape, options) in case_and_options()) {
        let input = random_input::<f32>(&shape);
        let packed = input.packed_logits();
        assert_fast_matches_reference(&input.view_with(packed.view()), &options, 2e-5);
    }

    #[test]
    fn packed_logits_match_padded_bit_for_bit((shape, options) in case_and_options()) {
        // Forward then backward on both layouts: the same rows through the same kernels.
        let input = random_input::<f32>(&shape);
        let packed_logits = input.packed_logits();
        let packed_view = input.view_with(packed_logits.view());
        let padded = rnnt::forward(&input.view(), &options).unwrap();
        let packed = rnnt::forward(&packed_view, &options).unwrap();
        prop_assert_eq!(padded.losses(), packed.losses());
        prop_assert!(packed.batch().is_packed() && !padded.batch().is_packed());
        let weights = options.reduction.item_weights(0.75, shape.batch);
        let mut padded_grad = Array4::from_elem(input.logits.dim(), f32::NAN);
        rnnt::backward(&input.view(), &padded, &weights, padded_grad.view_mut()).unwrap();
        let mut packed_grad = Array2::from_elem(packed_logits.dim(), f32::NAN);
        rnnt::backward(&packed_view, &packed, &weights, packed_grad.view_mut()).unwrap();
        let want = input.padded(packed_grad.into_dyn(), 0.0);
        for (index, (&g, &w)) in padded_grad.iter().zip(&want).enumerate() {
            prop_assert!(g.to_bits() == w.to_bits(), "grad element {}: padded {} packed {}", index, g, w);
        }
    }

    #[test]
    fn packed_targets_match_padded((shape, options) in case_and_options()) {
        let mut input = random_input::<f64>(&shape);
        let padded = rnnt::loss_and_grad(&input.view(), &options).unwrap();
        input.packed = Some(common::pack(input.padded.as_ref().unwrap(), &input.target_lengths));
        input.padded = None;
        let packed = rnnt::loss_and_grad(&input.view(), &options).unwrap();
        prop_assert_eq!(padded.losses, packed.losses);
        prop_assert_eq!(padded.grad, packed.grad);
    }

    #[test]
    fn reference_matches_brute_force(shape in shapes(), fused in any::<bool>()) {
        let input = random_input::<f64>(&shape);
        let options = Options { blank: shape.blank, reduction: Reduction::None, fused_log_softmax: fused, ..Options::default() };
        let reference = rnnt::reference::loss_and_grad(&input.view(), &options).unwrap();
        let blank = shape.blank.rem_euclid(shape.vocab as i64) as usize;
        for b in 0..shape.batch {
            let row_lse = |t: usize, u: usize| {
                let row = input.logits.slice(ndarray::s![b, t, u, ..]);
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if !fused { 0.0 } else if max == f64::NEG_INFINITY { f64::NEG_INFINITY } else {
                    max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
                }
            };
            let lp = |t: usize, u: usize, k: usize| {
                let lse = row_lse(t, u);
                if lse == f64::NEG_INFINITY { f64::NEG_INFINITY } else { input.logits[[b, t, u, k]] - lse }
            };
            let labels: Vec<usize> = input.padded.as_ref().unwrap().row(b).iter()
                .take(input.target_lengths[b] as usize).map(|&y| y as usize).collect();
            let want = brute_force_loss(&lp, input.logit_lengths[b] as usize, &labels, blank);
            let got = reference.losses[b];
            prop_assert!(got == want || (got - want).abs() <= 1e-10 * (1.0 + want.abs()), "item {}: {} vs brute force {}", b, got, want);
        }
    }
}

/// Central finite differences of the reduced loss w.r.t. every valid input element.
fn finite_difference_check(fused: bool, reduction: Reduction, seed: u64) {
    let shape = Shape {
        batch: 2,
        frames: 4,
        labels: 3,
        vocab: 5,
        blank: 2,
        values: Values::Normal,
        seed,
    };
    let input = random_input::<f64>(&shape);
    let options = Options {
        blank: 2,
        reduction,
        fused_log_softmax: fused,
        ..Options::default()
    };
    let analytic = rnnt::loss_and_grad(&input.view(), &options).unwrap();
    let h = 1e-6;
    for (index, &g) in analytic.grad.indexed_iter() {
        let (b, t, u, _) = index;
        if t as i64 >= input.logit_lengths[b] || u as i64 > input.target_lengths[b] {
            assert_eq!(g, 0.0, "padding {index:?}");
            continue;
        }
        let loss_at = |delta: f64| {
            let mut moved = input.clone();
            moved.logits[index] += delta;
            rnnt::loss_and_grad(&moved.view(), &options).unwrap().loss
        };
        let numeric = (loss_at(h) - loss_at(-h)) / (2.0 * h);
        assert!(
            (numeric - g).abs() < 1e-6,
            "{index:?}: analytic {g}, numeric {numeric} (fused {fused})"
        );
    }
}

#[test]
fn gradient_matches_finite_differences_for_logits() {
    for (seed, reduction) in [
        (1, Reduction::Sum),
        (2, Reduction::Mean),
        (3, Reduction::None),
    ] {
        finite_difference_check(true, reduction, seed);
    }
}

#[test]
fn gradient_matches_finite_differences_for_log_probs() {
    finite_difference_check(false, Reduction::Sum, 4);
}

#[test]
fn impossible_item_has_infinite_loss_and_zero_gradient() {
    // Item 0 can never emit its label (every label score is −inf); item 1 is ordinary.
    let shape = Shape {
        batch: 2,
        frames: 3,
        labels: 2,
        vocab: 4,
        blank: 0,
        values: Values::Normal,
        seed: 7,
    };
    let mut input = random_input::<f64>(&shape);
    input.logit_lengths = Array1::from(vec![3, 3]);
    input.target_lengths = Array1::from(vec![2, 2]);
    input
        .logits
        .mapv_inplace(|x| if x.is_finite() { x } else { 0.5 });
    input
        .logits
        .slice_mut(ndarray::s![0, .., .., 1..])
        .fill(f64::NEG_INFINITY);
    for zero_infinity in [false, true] {
        let options = Options {
            blank: 0,
            reduction: Reduction::Sum,
            zero_infinity,
            ..Options::default()
        };
        let out = rnnt::loss_and_grad(&input.view(), &options).unwrap();
        assert_eq!(
            out.losses[0],
            if zero_infinity { 0.0 } else { f64::INFINITY }
        );
        assert!(out.losses[1].is_finite());
        assert!(out
            .grad
            .slice(ndarray::s![0, .., .., ..])
            .iter()
            .all(|&g| g == 0.0));
        assert!(out.grad.iter().all(|g| g.is_finite()));
    }
}

#[test]
fn blank_only_vocabulary_and_single_frame() {
    // V = 1, U = 0, T = 1: one path, one blank of probability 1: loss 0.
    let input = OwnedInput::<f32, i32> {
        logits: Array4::from_elem((1, 1, 1, 1), 3.5),
        padded: Some(Array2::zeros((1, 0))),
        packed: None,
        logit_lengths: Array1::from(vec![1]),
        target_lengths: Array1::from(vec![0]),
    };
    let out = rnnt::loss_and_grad(&input.view(), &Options::default()).unwrap();
    assert_eq!(out.losses, vec![0.0]);
    assert_eq!(out.grad[[0, 0, 0, 0]], 0.0);
}
