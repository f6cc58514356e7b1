//! Every case of `tests/golden-variants` through the variants' fast paths (the one-shot call on
//! the default threads, forward then backward on one thread) and their reference, float32 and
//! float64, padded and packed logits, logits and log-probs input, against the manifest's
//! tolerances; padding and impossible items must get exact zeros.

use std::path::PathBuf;

use ndarray::{Array1, Array2, ArrayD, Axis, Ix2, Ix4};
use rnnt::variant::{self, Topology, Variant, VariantGrad, VariantInput};
use rnnt::{Float, Options, Reduction, ScoresDim, Targets};
use rnnt_cases::variants::{read_arrays, read_variant_manifest, NamedArray, VariantEntry};
use rnnt_cases::{pack_scores, unpack_scores, Tolerance};

fn variants_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden-variants")
}

/// A manifest entry's variant and options (`fastemit_lambda` into `Options`).
fn variant_of(entry: &VariantEntry) -> (Variant, f64) {
    let number = |key: &str| {
        entry
            .options
            .get(key)
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let list = |key: &str| -> Vec<usize> {
        entry.options[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect()
    };
    let topology = match entry.variant.as_deref().unwrap() {
        "tdt" => Topology::Tdt {
            durations: list("durations"),
        },
        "multiblank" => Topology::MultiBlank {
            big_blank_durations: list("big_blank_durations"),
        },
        "modified" => Topology::Modified {
            terminal_blank: entry
                .options
                .get("terminal_blank")
                .and_then(|v| v.as_bool())
                == Some(true),
        },
        "constrained" => Topology::Constrained,
        "delay_penalty" | "fastemit" => Topology::Regular,
        other => panic!("unknown variant {other}"),
    };
    (
        Variant {
            topology,
            sigma: number("sigma"),
            delay_penalty: number("delay_penalty"),
        },
        number("fastemit_lambda"),
    )
}

fn floats(
    arrays: &std::collections::BTreeMap<String, NamedArray>,
    name: &str,
) -> Option<ArrayD<f64>> {
    arrays.get(name).map(NamedArray::to_f64)
}

fn ints<const N: usize>(
    arrays: &std::collections::BTreeMap<String, NamedArray>,
    name: &str,
) -> ArrayD<i64> {
    arrays[name].to_i64().unwrap()
}

fn log_softmax(x: &ArrayD<f64>) -> ArrayD<f64> {
    let mut out = x.clone();
    for mut row in out.lanes_mut(Axis(x.ndim() - 1)) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        row.mapv_inplace(|v| v - lse);
    }
    out
}

/// The truth and inputs of one case in one mode.
struct Mode<'a> {
    label: String,
    tokens: &'a ArrayD<f64>,
    durations: Option<&'a ArrayD<f64>>,
    fused: bool,
    packed: bool,
    tolerance: Tolerance,
    truth_tokens: &'a ArrayD<f64>,
    truth_durations: Option<&'a ArrayD<f64>>,
}

struct Labels {
    targets: Array2<i64>,
    frames: Array1<i64>,
    lengths: Array1<i64>,
    blank: i64,
    losses: Vec<f64>,
}

fn max_diff(ours: &ArrayD<f64>, truth: &ArrayD<f64>) -> f64 {
    assert_eq!(ours.shape(), truth.shape());
    ours.iter()
        .zip(truth)
        .map(|(&a, &b)| {
            if a == b {
                0.0
            } else if a.is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0, f64::max)
}

fn run_mode<F: Float>(labels: &Labels, variant: &Variant, lambda: f64, mode: &Mode) -> Vec<String> {
    let to = |a: &ArrayD<f64>| a.mapv(F::from_f64).into_dimensionality::<Ix4>().unwrap();
    let tokens = to(mode.tokens);
    let durations = mode.durations.map(to);
    let options = Options {
        blank: labels.blank,
        reduction: Reduction::Sum,
        fused_log_softmax: mode.fused,
        fastemit_lambda: lambda,
        ..Options::default()
    };
    if mode.packed {
        let pack = |a: &ndarray::Array4<F>| {
            pack_scores(a.view(), labels.frames.view(), labels.lengths.view())
        };
        let (tokens, durations) = (pack(&tokens), durations.as_ref().map(pack));
        run_paths::<F, Ix2>(
            labels,
            variant,
            &options,
            mode,
            tokens.view(),
            durations.as_ref().map(|d| d.view()),
        )
    } else {
        run_paths::<F, Ix4>(
            labels,
            variant,
            &options,
            mode,
            tokens.view(),
            durations.as_ref().map(|d| d.view()),
        )
    }
}

fn run_paths<F: Float, D: ScoresDim>(
    labels: &Labels,
    variant: &Variant,
    options: &Options,
    mode: &Mode,
    tokens: ndarray::ArrayView<'_, F, D>,
    durations: Option<ndarray::ArrayView<'_, F, D>>,
) -> Vec<String> {
    let input = VariantInput {
        logits: tokens,
        duration_logits: durations,
        targets: Targets::Padded(labels.targets.view()),
        logit_lengths: labels.frames.view(),
        target_lengths: labels.lengths.view(),
    };
    let label = &mode.label;
    let padded = |grad: ArrayD<f64>, like: &ArrayD<f64>| -> ArrayD<f64> {
        if grad.ndim() == 4 {
            return grad;
        }
        let dims = like.shape();
        unpack_scores(
            grad.into_dimensionality::<Ix2>().unwrap().view(),
            (dims[0], dims[1], dims[2], dims[3]),
            labels.frames.view(),
            labels.lengths.view(),
            0.0,
        )
        .into_dyn()
    };
    let mut outcomes = Vec::new();
    let one_shot =
        variant::loss_and_grad(&input, options, variant).unwrap_or_else(|e| panic!("{label}: {e}"));
    outcomes.push((
        "one-shot",
        one_shot.losses,
        one_shot.grad.mapv(F::to_f64).into_dyn(),
        one_shot.duration_grad.map(|d| d.mapv(F::to_f64).into_dyn()),
    ));
    let serial = Options {
        threads: 1,
        ..*options
    };
    let forward = variant::forward(&input, &serial, variant).unwrap();
    let mut grad = ndarray::Array::from_elem(tokens.raw_dim(), F::from_f64(f64::NAN));
    let mut dgrad =
        durations.map(|d| ndarray::Array::from_elem(d.raw_dim(), F::from_f64(f64::NAN)));
    let weights = vec![1.0; labels.frames.len()];
    variant::backward(
        &input,
        &forward,
        &weights,
        VariantGrad {
            logits: grad.view_mut(),
            duration_logits: dgrad.as_mut().map(|d| d.view_mut()),
        },
    )
    .unwrap();
    outcomes.push((
        "forward + backward",
        forward.losses().to_vec(),
        grad.mapv(F::to_f64).into_dyn(),
        dgrad.map(|d| d.mapv(F::to_f64).into_dyn()),
    ));
    let reference = variant::reference::loss_and_grad(&input, options, variant).unwrap();
    outcomes.push((
        "reference",
        reference.losses,
        reference.grad.into_dyn(),
        reference.duration_grad.map(|d| d.into_dyn()),
    ));
    let mut failures = Vec::new();
    for (path, losses, grad, dgrad) in outcomes {
        for (b, (&loss, &want)) in losses.iter().zip(&labels.losses).enumerate() {
            if !mode.tolerance.loss_ok(loss, want) {
                failures.push(format!(
                    "{label} {path}: losses[{b}] = {loss}, truth {want}"
                ));
            }
        }
        let grad = padded(grad, mode.truth_tokens);
        let err = max_diff(&grad, mode.truth_tokens);
        if err > mode.tolerance.grad_atol {
            failures.push(format!("{label} {path}: grad off by {err:e}"));
        }
        if let (Some(d), Some(truth)) = (dgrad, mode.truth_durations) {
            let err = max_diff(&padded(d, truth), truth);
            if err > mode.tolerance.grad_atol {
                failures.push(format!("{label} {path}: duration grad off by {err:e}"));
            }
        }
        // Exact zeros in the padding.
        for ((b, t, u, _), &g) in grad.into_dimensionality::<Ix4>().unwrap().indexed_iter() {
            if (t as i64 >= labels.frames[b] || u as i64 > labels.lengths[b]) && g != 0.0 {
                failures.push(format!(
                    "{label} {path}: grad[{b}][{t}][{u}] = {g} in padding"
                ));
                break;
            }
        }
    }
    failures
}

#[test]
fn every_golden_variant_case_in_every_mode() {
    let dir = variants_dir();
    let manifest = read_variant_manifest(&dir).expect("tests/golden-variants/manifest.json");
    assert!(
        manifest.len() >= 43,
        "expected the full set, found {}",
        manifest.len()
    );
    let mut failures = Vec::new();
    for (name, entry) in &manifest {
        let arrays = read_arrays(&dir.join(format!("{name}.npz"))).unwrap();
        let (variant, lambda) = variant_of(entry);
        let tdt = matches!(variant.topology, Topology::Tdt { .. });
        let stored_f32 = matches!(
            arrays.get(if tdt { "token_logits" } else { "logits" }),
            Some(NamedArray::F32(_))
        );
        let tokens = floats(&arrays, if tdt { "token_logits" } else { "logits" }).unwrap();
        let durations = floats(&arrays, "duration_logits");
        let labels = Labels {
            targets: ints::<2>(&arrays, "targets").into_dimensionality().unwrap(),
            frames: ints::<1>(&arrays, "logit_lengths")
                .into_dimensionality()
                .unwrap(),
            lengths: ints::<1>(&arrays, "target_lengths")
                .into_dimensionality()
                .unwrap(),
            blank: entry.entry.blank,
            losses: floats(&arrays, "losses").unwrap().iter().copied().collect(),
        };
        let truth_tokens = floats(
            &arrays,
            if tdt {
                "grad_token_logits"
            } else {
                "grad_logits"
            },
        )
        .unwrap();
        let truth_durations = floats(&arrays, "grad_duration_logits");
        let truth_lp = floats(&arrays, "grad_log_probs");
        let log_probs = log_softmax(&tokens);
        let f32_tol = if stored_f32 {
            entry.entry.tolerance
        } else {
            Tolerance::FLOAT32
        };
        for packed in [false, true] {
            let layout = if packed { "packed" } else { "padded" };
            let mode = |fused: bool, tolerance, what: &str| Mode {
                label: format!("{name} [{what} {layout}]"),
                tokens: if fused { &tokens } else { &log_probs },
                durations: durations.as_ref(),
                fused,
                packed,
                tolerance,
                truth_tokens: if fused {
                    &truth_tokens
                } else {
                    truth_lp.as_ref().unwrap()
                },
                truth_durations: truth_durations.as_ref(),
            };
            failures.extend(run_mode::<f64>(
                &labels,
                &variant,
                lambda,
                &mode(true, Tolerance::FLOAT64, "f64 logits"),
            ));
            failures.extend(run_mode::<f32>(
                &labels,
                &variant,
                lambda,
                &mode(true, f32_tol, "f32 logits"),
            ));
            if truth_lp.is_some() {
                failures.extend(run_mode::<f64>(
                    &labels,
                    &variant,
                    lambda,
                    &mode(false, Tolerance::FLOAT64, "f64 log_probs"),
                ));
                failures.extend(run_mode::<f32>(
                    &labels,
                    &variant,
                    lambda,
                    &mode(false, Tolerance::FLOAT32, "f32 log_probs"),
                ));
            }
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "npz") {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                manifest.contains_key(&stem),
                "{stem}.npz is not in manifest.json"
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
