//! Every golden case of the fused joiner (tests/golden-joint) through `rnnt::joint` and its f64
//! oracle: in the stored dtype against the manifest's tolerances, and in float64 (the stored
//! values widened exactly) to 1e-9; padded and packed targets; one thread and the default pool.

use std::fs::File;
use std::path::PathBuf;

use ndarray::{Array, Array1, Array2, Array3, ArrayD, Dimension};
use ndarray_npy::NpzReader;
use rnnt::joint::{self, reference, Activation, JointFloat, JointInput};
use rnnt::{Options, Reduction, Targets};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden-joint")
}

/// One case's arrays, floats widened to f64, and its manifest entry.
struct Case {
    name: String,
    encoder_out: Array3<f64>,
    predictor_out: Array3<f64>,
    weight: Array2<f64>,
    bias: Option<Array1<f64>>,
    targets: Array2<i32>,
    logit_lengths: Array1<i32>,
    target_lengths: Array1<i32>,
    blank: i64,
    activation: Activation,
    losses: Array1<f64>,
    grads: [ArrayD<f64>; 4],
    float32: bool,
    tolerance: (f64, f64, f64),
}

/// A float array of any stored float dtype, widened to f64, as `D`.
fn read_float<D: Dimension>(npz: &mut NpzReader<File>, name: &str) -> Option<Array<f64, D>> {
    let names = npz.names().unwrap();
    names.iter().find(|n| n.trim_end_matches(".npy") == name)?;
    let array: ArrayD<f64> = match npz.by_name::<ndarray::OwnedRepr<f64>, _>(name) {
        Ok(array) => array,
        Err(_) => npz
            .by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(name)
            .unwrap()
            .mapv(f64::from),
    };
    Some(array.into_dimensionality().unwrap())
}

fn read_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(golden_dir().join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = manifest.as_object().unwrap();
    entries
        .iter()
        .map(|(name, entry)| {
            let path = golden_dir().join(format!("{name}.npz"));
            let mut npz = NpzReader::new(File::open(path).unwrap()).unwrap();
            let tolerance = &entry["tolerance"];
            let number = |key: &str| tolerance[key].as_f64().unwrap();
            let blank: ndarray::Array0<i64> = npz.by_name("blank").unwrap();
            Case {
                name: name.clone(),
                encoder_out: read_float(&mut npz, "encoder_out").unwrap(),
                predictor_out: read_float(&mut npz, "predictor_out").unwrap(),
                weight: read_float(&mut npz, "weight").unwrap(),
                bias: read_float(&mut npz, "bias"),
                targets: npz.by_name("targets").unwrap(),
                logit_lengths: npz.by_name("logit_lengths").unwrap(),
                target_lengths: npz.by_name("target_lengths").unwrap(),
                blank: blank.into_scalar(),
                activation: entry["activation"].as_str().unwrap().parse().unwrap(),
                losses: read_float(&mut npz, "losses").unwrap(),
                grads: ["encoder_out", "predictor_out", "weight", "bias"].map(|key| {
                    read_float(&mut npz, &format!("grad_{key}"))
                        .unwrap_or_else(|| ArrayD::zeros(ndarray::IxDyn(&[0])))
                }),
                float32: entry["dtype"] == "float32",
                tolerance: (
                    number("loss_rtol"),
                    number("loss_atol"),
                    number("grad_atol"),
                ),
            }
        })
        .collect()
}

/// The packed targets of `case`: each item's first U_b labels.
fn packed_targets(case: &Case) -> Array1<i32> {
    let labels: Vec<i32> = case
        .targets
        .outer_iter()
        .zip(&case.target_lengths)
        .flat_map(|(row, &len)| row.iter().take(len as usize).copied().collect::<Vec<_>>())
        .collect();
    Array1::from(labels)
}

/// `case` in `F` through the fast path (on `threads`) and the oracle, against the truth.
fn check<F: JointFloat>(case: &Case, (loss_rtol, loss_atol, grad_atol): (f64, f64, f64)) {
    let encoder_out = case.encoder_out.mapv(F::from_f64);
    let predictor_out = case.predictor_out.mapv(F::from_f64);
    let weight = case.weight.mapv(F::from_f64);
    let bias = case.bias.as_ref().map(|b| b.mapv(F::from_f64));
    let packed = packed_targets(case);
    for (packed_targets, threads) in [(false, 0), (true, 1)] {
        let input = JointInput {
            encoder_out: encoder_out.view(),
            predictor_out: predictor_out.view(),
            weight: weight.view(),
            bias: bias.as_ref().map(|b| b.view()),
            targets: if packed_targets {
                Targets::Packed(packed.view())
            } else {
                Targets::Padded(case.targets.view())
            },
            logit_lengths: case.logit_lengths.view(),
            target_lengths: case.target_lengths.view(),
            activation: case.activation,
        };
        let options = Options {
            blank: case.blank,
            reduction: Reduction::None,
            threads,
            ..Options::default()
        };
        let label = format!("{} as {} (packed {packed_targets})", case.name, F::DTYPE);
        let fast = joint::loss_and_grad(&input, &options).unwrap();
        let exact = reference::loss_and_grad(&input, &options).unwrap();
        let fast_grads = [
            fast.grads.encoder_out.mapv(|x| x.to_f64()).into_dyn(),
            fast.grads.predictor_out.mapv(|x| x.to_f64()).into_dyn(),
            fast.grads.weight.mapv(|x| x.to_f64()).into_dyn(),
            fast.grads.bias.map_or_else(
                || ArrayD::zeros(ndarray::IxDyn(&[0])),
                |b| b.mapv(|x| x.to_f64()).into_dyn(),
            ),
        ];
        let exact_grads = [
            exact.grads.encoder_out.into_dyn(),
            exact.grads.predictor_out.into_dyn(),
            exact.grads.weight.into_dyn(),
            exact
                .grads
                .bias
                .map_or_else(|| ArrayD::zeros(ndarray::IxDyn(&[0])), |b| b.into_dyn()),
        ];
        for (losses, path) in [(&fast.losses, "fast"), (&exact.losses, "reference")] {
            for (ours, truth) in losses.iter().zip(&case.losses) {
                let bound = loss_atol + loss_rtol * truth.abs();
                assert!(
                    (ours - truth).abs() <= bound,
                    "{label} {path}: loss {ours} vs {truth}"
                );
            }
        }
        for grads in [&fast_grads, &exact_grads] {
            for (ours, truth) in grads.iter().zip(&case.grads) {
                assert_eq!(ours.shape(), truth.shape(), "{label}");
                let error = ours
                    .iter()
                    .zip(truth)
                    .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(error <= grad_atol, "{label}: gradient off by {error:e}");
            }
        }
    }
}

#[test]
fn golden_joint_cases_match_in_their_dtype_and_in_float64() {
    let cases = read_cases();
    assert!(cases.len() >= 7, "{} cases", cases.len());
    for case in &cases {
        if case.float32 {
            check::<f32>(case, case.tolerance);
        }
        check::<f64>(case, (1e-9, 1e-9, 1e-9));
    }
}
