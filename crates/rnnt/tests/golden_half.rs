//! Every golden case with half-precision input (float16, bfloat16), logits and log-probs, padded
//! and packed logits, through the fast paths (one-shot on the default threads and on one thread,
//! forward then backward), against the float64 reference on the same rounded input.
//!
//! The truth is the reference's, not the manifest's: rounding the case's logits to half precision
//! changes the loss by far more than the golden tolerances. The losses must meet the case's own
//! tolerance (the passes widen half elements exactly and run the f32 arithmetic); the gradient is
//! rounded to the half type on the way out, so each element may also be off by that rounding,
//! 2⁻¹¹ (float16) or 2⁻⁸ (bfloat16) of its size, on top of the case's `grad_atol`.

mod common;

use common::{from_case, golden_dir, nonzero_padding, OwnedInput};
use ndarray::{Array, Array4};
use rnnt::{Float, LossInput, Options, Reduction, ScoresDim};
use rnnt_cases::{read_case, read_manifest, Case, Tolerance};

/// A half-precision type: its unit roundoff, and rounding from f64 (through f32, exact for the
/// golden cases' f32 values).
trait Half: Float {
    /// 2^−(significand bits): the largest relative error of rounding to nearest.
    const ROUNDOFF: f64;
}

impl Half for half::f16 {
    const ROUNDOFF: f64 = 1.0 / 2048.0;
}

impl Half for half::bf16 {
    const ROUNDOFF: f64 = 1.0 / 256.0;
}

/// The losses and padded gradients of the three fast paths on `view`.
fn fast_paths<H: Half, D: ScoresDim>(
    input: &OwnedInput<H, i64>,
    view: &LossInput<'_, H, i64, D>,
    options: &Options,
) -> Vec<(&'static str, Vec<f64>, Array4<H>)> {
    let one_shot = rnnt::loss_and_grad(view, options).unwrap();
    let one_thread = Options {
        threads: 1,
        ..*options
    };
    let by_item = rnnt::loss_and_grad(view, &one_thread).unwrap();
    let forward = rnnt::forward(view, options).unwrap();
    let weights = options
        .reduction
        .item_weights(1.0, forward.batch().batch_size);
    let mut two_pass = Array::from_elem(view.logits.raw_dim(), H::from_f64(f64::NAN));
    rnnt::backward(view, &forward, &weights, two_pass.view_mut()).unwrap();
    let padded = |grad: Array<H, D>| input.padded(grad.into_dyn(), H::zero());
    vec![
        ("one-shot", one_shot.losses, padded(one_shot.grad)),
        ("one thread", by_item.losses, padded(by_item.grad)),
        (
            "forward + backward",
            forward.losses().to_vec(),
            padded(two_pass),
        ),
    ]
}

/// The failures of one case in one half type, one input mode and one logits layout.
fn check<H: Half>(
    name: &str,
    case: &Case,
    scores: Array4<H>,
    (fused, packed_logits): (bool, bool),
    tolerance: Tolerance,
) -> Vec<String> {
    let input = from_case::<H, i64>(case, scores, false);
    let options = Options {
        blank: case.blank.expect("golden cases store blank"),
        reduction: Reduction::Sum,
        fused_log_softmax: fused,
        ..Options::default()
    };
    let label = format!(
        "{name} [{} {}, {} logits]",
        H::DTYPE,
        if fused { "logits" } else { "log_probs" },
        if packed_logits { "packed" } else { "padded" }
    );
    let reference = rnnt::reference::loss_and_grad(&input.view(), &options).unwrap();
    let packed = input.packed_logits();
    let fast = if packed_logits {
        fast_paths(&input, &input.view_with(packed.view()), &options)
    } else {
        fast_paths(&input, &input.view(), &options)
    };
    let mut failures = Vec::new();
    for (path, losses, grad) in fast {
        for (b, (&loss, &want)) in losses.iter().zip(&reference.losses).enumerate() {
            if !tolerance.loss_ok(loss, want) {
                failures.push(format!(
                    "{label} {path}: losses[{b}] = {loss}, reference {want}"
                ));
            }
        }
        for (index, (&g, &want)) in grad.iter().zip(&reference.grad).enumerate() {
            let allowed = tolerance.grad_atol + H::ROUNDOFF * want.abs();
            let g = g.to_f64();
            let within = (g - want).abs() <= allowed; // false for a NaN
            if !within {
                failures.push(format!(
                    "{label} {path}: grad element {index} = {g}, reference {want}"
                ));
                break;
            }
        }
        if let Some(element) = nonzero_padding(case, &grad) {
            failures.push(format!("{label} {path}: {element} in padding"));
        }
    }
    failures
}

/// The failures of every mode and layout of one case in the half type `H`.
fn check_case<H: Half>(name: &str, case: &Case, tolerance: Tolerance) -> Vec<String> {
    let round = |scores: Array4<f64>| scores.mapv(H::from_f64);
    let logits = case
        .logits
        .as_ref()
        .expect("golden cases hold logits")
        .to_f64();
    let log_probs = case
        .log_probs
        .as_ref()
        .expect("golden cases hold log_probs")
        .to_f64();
    let mut failures = Vec::new();
    for packed_logits in [false, true] {
        for (fused, scores) in [(true, &logits), (false, &log_probs)] {
            let scores = round(scores.clone());
            failures.extend(check(name, case, scores, (fused, packed_logits), tolerance));
        }
    }
    failures
}

#[test]
fn every_golden_case_in_half_precision() {
    let dir = golden_dir();
    let manifest = read_manifest(&dir).expect("tests/golden/manifest.json must exist");
    let mut failures = Vec::new();
    for (name, entry) in &manifest {
        let case = read_case(&dir.join(format!("{name}.npz"))).unwrap();
        // A float64 case's tolerance is float64's; its half rounding runs the f32 arithmetic.
        let tolerance = if entry.tolerance.grad_atol < Tolerance::FLOAT32.grad_atol {
            Tolerance::FLOAT32
        } else {
            entry.tolerance
        };
        failures.extend(check_case::<half::f16>(name, &case, tolerance));
        failures.extend(check_case::<half::bf16>(name, &case, tolerance));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
