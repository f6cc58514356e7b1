//! The fused loss against its float64 oracle on random batches, and against finite differences.

use ndarray::{Array1, Array2, Array3};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use crate::batch::Targets;
use crate::joint::{self, reference, Activation, JointFloat, JointInput};
use crate::options::{Options, Reduction};

/// A random fused problem in f64, to be cast to the type under test.
#[derive(Debug, Clone)]
struct Problem {
    encoder_out: Array3<f64>,
    predictor_out: Array3<f64>,
    weight: Array2<f64>,
    bias: Option<Array1<f64>>,
    targets: Array2<i32>,
    logit_lengths: Array1<i32>,
    target_lengths: Array1<i32>,
    activation: Activation,
    options: Options,
    packed: bool,
}

impl Problem {
    /// The packed targets: each item's first U_b labels, concatenated.
    fn packed_targets(&self) -> Array1<i32> {
        let labels: Vec<i32> = self
            .targets
            .outer_iter()
            .zip(&self.target_lengths)
            .flat_map(|(row, &len)| row.iter().take(len as usize).copied().collect::<Vec<_>>())
            .collect();
        Array1::from(labels)
    }
}

/// The problem's arrays cast to `F`.
struct Cast<F> {
    encoder_out: Array3<F>,
    predictor_out: Array3<F>,
    weight: Array2<F>,
    bias: Option<Array1<F>>,
    packed_targets: Array1<i32>,
}

impl<F: JointFloat> Cast<F> {
    fn new(problem: &Problem) -> Cast<F> {
        Cast {
            encoder_out: problem.encoder_out.mapv(F::from_f64),
            predictor_out: problem.predictor_out.mapv(F::from_f64),
            weight: problem.weight.mapv(F::from_f64),
            bias: problem.bias.as_ref().map(|bias| bias.mapv(F::from_f64)),
            packed_targets: problem.packed_targets(),
        }
    }

    fn input<'a>(&'a self, problem: &'a Problem) -> JointInput<'a, F, i32> {
        JointInput {
            encoder_out: self.encoder_out.view(),
            predictor_out: self.predictor_out.view(),
            weight: self.weight.view(),
            bias: self.bias.as_ref().map(|bias| bias.view()),
            targets: if problem.packed {
                Targets::Packed(self.packed_targets.view())
            } else {
                Targets::Padded(problem.targets.view())
            },
            logit_lengths: problem.logit_lengths.view(),
            target_lengths: problem.target_lengths.view(),
            activation: problem.activation,
        }
    }
}

prop_compose! {
    /// Small ragged batches (U_b = 0 and T_b = 1 included), every activation, with and without
    /// bias, clamp and FastEmit, each reduction, padded and packed targets.
    fn problems()(
        (batch_size, frames, positions, hidden, vocab) in (1usize..4, 1usize..6, 1usize..5, 1usize..7, 2usize..7),
        seed in any::<u64>(),
        activation in prop_oneof![Just(Activation::Tanh), Just(Activation::Relu), Just(Activation::Identity)],
        with_bias in any::<bool>(),
        clamp in prop_oneof![Just(-1.0), 0.01f64..0.5],
        fastemit_lambda in prop_oneof![Just(0.0), 0.0f64..1.0],
        reduction in prop_oneof![Just(Reduction::Mean), Just(Reduction::Sum), Just(Reduction::None)],
        blank in prop_oneof![Just(-1i64), Just(0)],
        packed in any::<bool>(),
        scale in 0.1f64..3.0,
    ) -> Problem {
        let mut state = seed | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut normal = |s: f64| (uniform() * 2.0 - 1.0) * s;
        let encoder_out = Array3::from_shape_simple_fn((batch_size, frames, hidden), || normal(scale));
        let predictor_out = Array3::from_shape_simple_fn((batch_size, positions, hidden), || normal(scale));
        let weight = Array2::from_shape_simple_fn((vocab, hidden), || normal(scale));
        let bias = with_bias.then(|| Array1::from_shape_simple_fn(vocab, || normal(1.0)));
        let blank_id = if blank < 0 { vocab - 1 } else { 0 };
        let targets = Array2::from_shape_simple_fn((batch_size, positions - 1), || {
            let k = (uniform() * (vocab - 1) as f64) as usize;
            (if k >= blank_id { k + 1 } else { k }) as i32
        });
        let logit_lengths = Array1::from_shape_simple_fn(batch_size, || 1 + (uniform() * frames as f64) as i32 % frames as i32);
        let target_lengths = Array1::from_shape_simple_fn(batch_size, || (uniform() * positions as f64) as i32 % positions as i32);
        Problem {
            encoder_out, predictor_out, weight, bias, targets, logit_lengths, target_lengths,
            activation,
            options: Options { blank, reduction, clamp, fastemit_lambda, ..Options::default() },
            packed,
        }
    }
}

/// max |a − b| ≤ tol · max(max |b|, floor): relative to the largest element, and for float32
/// (`floor` 1e-2; float64 1e-4) at least to the size of the terms a small gradient cancels down
/// from.
fn close(
    name: &str,
    a: impl Iterator<Item = f64>,
    b: impl Iterator<Item = f64> + Clone,
    (tol, floor): (f64, f64),
) {
    let scale = b.clone().fold(floor, |m, v| m.max(v.abs()));
    let error = a.zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        error <= tol * scale + 1e-300,
        "{name}: error {error:e} for scale {scale:e}"
    );
}

/// The fast path in `F` against the f64 oracle on `problem`, to relative `tol`.
fn check<F: JointFloat>(problem: &Problem, tol: f64) {
    let floor = if F::DTYPE == "float32" { 1e-2 } else { 1e-4 };
    let cast = Cast::<F>::new(problem);
    let input = cast.input(problem);
    let fast = joint::loss_and_grad(&input, &problem.options).unwrap();
    let exact = reference::loss_and_grad(&input, &problem.options).unwrap();
    for (a, b) in fast.losses.iter().zip(&exact.losses) {
        assert!(
            a == b || (a - b).abs() <= tol * b.abs().max(1.0),
            "loss {a} vs {b}"
        );
    }
    let as_f64 = |x: &F| x.to_f64();
    let pairs = [
        (
            "encoder_out",
            fast.grads
                .encoder_out
                .iter()
                .map(as_f64)
                .collect::<Vec<_>>(),
            exact.grads.encoder_out.iter().copied().collect::<Vec<_>>(),
        ),
        (
            "predictor_out",
            fast.grads.predictor_out.iter().map(as_f64).collect(),
            exact.grads.predictor_out.iter().copied().collect(),
        ),
        (
            "weight",
            fast.grads.weight.iter().map(as_f64).collect(),
            exact.grads.weight.iter().copied().collect(),
        ),
    ];
    for (name, a, b) in pairs {
        close(name, a.into_iter(), b.into_iter(), (tol, floor));
    }
    match (&fast.grads.bias, &exact.grads.bias) {
        (Some(a), Some(b)) => close(
            "bias",
            a.iter().map(as_f64),
            b.iter().copied(),
            (tol, floor),
        ),
        (None, None) => {}
        _ => panic!("bias gradient present in one result only"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn float64_matches_the_oracle(problem in problems()) {
        check::<f64>(&problem, 1e-9);
    }

    #[test]
    fn float32_matches_the_oracle(problem in problems()) {
        check::<f32>(&problem, 1e-4);
    }
}

/// The f64 gradients against central differences of the loss, every element of every input.
#[test]
fn gradients_match_finite_differences() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..20 {
        let mut problem = problems().new_tree(&mut runner).unwrap().current();
        problem.options.clamp = -1.0; // a clipped gradient is not the loss's derivative
        let cast = Cast::<f64>::new(&problem);
        let grads = joint::loss_and_grad(&cast.input(&problem), &problem.options)
            .unwrap()
            .grads;
        if !grads.encoder_out.iter().all(|g| g.is_finite()) {
            continue;
        }
        let loss_at = |edit: &dyn Fn(&mut Problem)| {
            let mut moved = problem.clone();
            edit(&mut moved);
            let moved_cast = Cast::<f64>::new(&moved);
            joint::forward(&moved_cast.input(&moved), &moved.options)
                .unwrap()
                .loss()
        };
        let step = 1e-6;
        let derivative = |edit: &dyn Fn(&mut Problem, f64)| {
            (loss_at(&|p| edit(p, step)) - loss_at(&|p| edit(p, -step))) / (2.0 * step)
        };
        let tolerance = |fd: f64| 1e-5 * (1.0 + fd.abs());
        if problem.options.fastemit_lambda != 0.0 || problem.activation == Activation::Relu {
            // FastEmit's gradient is not the loss's derivative; relu's kink breaks differences.
            continue;
        }
        for ((b, t, j), &g) in grads.encoder_out.indexed_iter() {
            let fd = derivative(&|p, d| p.encoder_out[[b, t, j]] += d);
            assert!(
                (fd - g).abs() <= tolerance(fd),
                "encoder_out[{b}][{t}][{j}]: {g} vs {fd}"
            );
        }
        for ((b, u, j), &g) in grads.predictor_out.indexed_iter() {
            let fd = derivative(&|p, d| p.predictor_out[[b, u, j]] += d);
            assert!(
                (fd - g).abs() <= tolerance(fd),
                "predictor_out[{b}][{u}][{j}]: {g} vs {fd}"
            );
        }
        for ((k, j), &g) in grads.weight.indexed_iter() {
            let fd = derivative(&|p, d| p.weight[[k, j]] += d);
            assert!(
                (fd - g).abs() <= tolerance(fd),
                "weight[{k}][{j}]: {g} vs {fd}"
            );
        }
        if let Some(bias) = &grads.bias {
            for (k, &g) in bias.indexed_iter() {
                let fd = derivative(&|p, d| p.bias.as_mut().unwrap()[k] += d);
                assert!((fd - g).abs() <= tolerance(fd), "bias[{k}]: {g} vs {fd}");
            }
        }
    }
}
