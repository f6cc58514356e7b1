//! Every golden case through the fast paths and the reference, in both input modes, float32 and
//! float64, padded and packed targets, padded and packed logits, int32 and int64 indices, against
//! manifest tolerances. The fast paths: the one-shot call on the default threads and on one
//! thread (item by item when the case has two items or more), and forward then backward.

mod common;

use common::{from_case, golden_dir, max_abs_diff, nonzero_padding, FromI64, OwnedInput};
use ndarray::{Array, Array4};
use rnnt::{Float, LossInput, Options, Reduction, ScoresDim};
use rnnt_cases::{read_case, read_manifest, Case, Tolerance};

struct Variant {
    fused: bool,
    packed: bool,
    /// Logits packed (ΣT_b·(U_b+1), V) rather than padded.
    packed_logits: bool,
    tolerance: Tolerance,
}

/// Losses and the gradient (as padded (B, T, U+1, V) scores, zeros in the padding) of one path.
type Outcome<F> = (&'static str, Vec<f64>, Array4<F>);

/// The three fast paths and the reference on `view` (padded or packed logits), their gradients
/// laid out as padded scores.
fn run_every_path<F: Float, I: FromI64, D: ScoresDim>(
    input: &OwnedInput<F, I>,
    view: &LossInput<'_, F, I, D>,
    options: &Options,
    label: &str,
) -> (Vec<Outcome<F>>, Outcome<f64>) {
    let fail = |e: rnnt::Error| -> ! { panic!("{label}: {e}") };
    let one_shot = rnnt::loss_and_grad(view, options).unwrap_or_else(|e| fail(e));
    let one_thread = Options {
        threads: 1,
        ..*options
    };
    let by_item = rnnt::loss_and_grad(view, &one_thread).unwrap_or_else(|e| fail(e));
    let forward = rnnt::forward(view, options).unwrap_or_else(|e| fail(e));
    let weights = options
        .reduction
        .item_weights(1.0, forward.batch().batch_size);
    let mut two_pass = Array::from_elem(view.logits.raw_dim(), F::from_f64(f64::NAN));
    rnnt::backward(view, &forward, &weights, two_pass.view_mut()).unwrap_or_else(|e| fail(e));
    let reference = rnnt::reference::loss_and_grad(view, options).unwrap_or_else(|e| fail(e));
    let padded = |grad: Array<F, D>| input.padded(grad.into_dyn(), F::zero());
    let fast = vec![
        ("one-shot", one_shot.losses, padded(one_shot.grad)),
        ("one thread", by_item.losses, padded(by_item.grad)),
        (
            "forward + backward",
            forward.losses().to_vec(),
            padded(two_pass),
        ),
    ];
    let reference_grad = input.padded(reference.grad.into_dyn(), 0.0);
    (fast, ("reference", reference.losses, reference_grad))
}

fn check_variant<F: Float, I: FromI64>(
    name: &str,
    case: &Case,
    scores: Array4<F>,
    v: &Variant,
) -> Vec<String> {
    let truth = case.truth.as_ref().expect("golden cases hold their truth");
    let input = from_case::<F, I>(case, scores, v.packed);
    let options = Options {
        blank: case.blank.expect("golden cases store blank"),
        reduction: Reduction::Sum,
        fused_log_softmax: v.fused,
        ..Options::default()
    };
    let label = format!(
        "{name} [{} {} {} {} targets, {} logits]",
        if v.fused { "logits" } else { "log_probs" },
        F::DTYPE,
        I::DTYPE,
        if v.packed { "packed" } else { "padded" },
        if v.packed_logits { "packed" } else { "padded" }
    );
    let truth_grad = if v.fused {
        &truth.grad_logits
    } else {
        &truth.grad_log_probs
    };
    let mut failures = Vec::new();
    let packed_logits = input.packed_logits();
    let (fast, reference) = if v.packed_logits {
        run_every_path(
            &input,
            &input.view_with(packed_logits.view()),
            &options,
            &label,
        )
    } else {
        run_every_path(&input, &input.view(), &options, &label)
    };
    let checked = fast
        .iter()
        .map(|(name, losses, grad)| (*name, &losses[..], max_abs_diff(grad, truth_grad)))
        .chain([(
            reference.0,
            &reference.1[..],
            max_abs_diff(&reference.2, truth_grad),
        )]);
    for (impl_name, losses, grad_err) in checked {
        for (b, (&loss, &want)) in losses.iter().zip(&truth.losses).enumerate() {
            if !v.tolerance.loss_ok(loss, want) {
                failures.push(format!(
                    "{label} {impl_name}: losses[{b}] = {loss}, truth {want}"
                ));
            }
        }
        if grad_err > v.tolerance.grad_atol {
            failures.push(format!(
                "{label} {impl_name}: grad off by {grad_err:e} > {:e}",
                v.tolerance.grad_atol
            ));
        }
    }
    // Padding gets exactly zero gradient.
    for (impl_name, _, grad) in &fast {
        if let Some(element) = nonzero_padding(case, grad) {
            failures.push(format!("{label} {impl_name}: {element} in padding"));
        }
    }
    failures
}

#[test]
fn every_golden_case_in_every_mode() {
    let dir = golden_dir();
    let manifest = read_manifest(&dir).expect("tests/golden/manifest.json must exist");
    assert!(
        manifest.len() >= 18,
        "expected the full golden set, found {} cases",
        manifest.len()
    );
    let mut failures = Vec::new();
    for (name, entry) in &manifest {
        let path = dir.join(format!("{name}.npz"));
        let case =
            read_case(&path).unwrap_or_else(|e| panic!("golden case missing or unreadable: {e}"));
        assert_eq!(
            case.blank,
            Some(entry.blank),
            "{name}: blank disagrees with the manifest"
        );
        let logits = case.logits.as_ref().expect("golden cases hold logits");
        let log_probs = case
            .log_probs
            .as_ref()
            .expect("golden cases hold log_probs");
        let exact = Tolerance::FLOAT64;
        for (packed, packed_logits) in [(false, false), (true, false), (false, true)] {
            // Stored float32 logits use the case's tolerance; float64 narrowed to float32 the
            // manifest's float32 one.
            let f32_tol = if logits.dtype() == "float32" {
                entry.tolerance
            } else {
                Tolerance::FLOAT32
            };
            let fused = |tolerance| Variant {
                fused: true,
                packed,
                packed_logits,
                tolerance,
            };
            let unfused = |tolerance| Variant {
                fused: false,
                packed,
                packed_logits,
                tolerance,
            };
            failures.extend(check_variant::<f32, i32>(
                name,
                &case,
                logits.to_f32(),
                &fused(f32_tol),
            ));
            failures.extend(check_variant::<f64, i64>(
                name,
                &case,
                logits.to_f64(),
                &fused(exact),
            ));
            failures.extend(check_variant::<f64, i32>(
                name,
                &case,
                log_probs.to_f64(),
                &unfused(exact),
            ));
            failures.extend(check_variant::<f32, i64>(
                name,
                &case,
                log_probs.to_f32(),
                &unfused(Tolerance::FLOAT32),
            ));
        }
    }
    // Every .npz in the folder is in the manifest, so a new case cannot be silently skipped.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "npz") {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                manifest.contains_key(&stem),
                "{stem}.npz is not listed in manifest.json"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
