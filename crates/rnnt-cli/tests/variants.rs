//! `rnnt loss --variant`, `rnnt align --variant` and `rnnt check` on the variants' format, end
//! to end.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array1, ArrayD};
use ndarray_npy::NpzReader;

fn rnnt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnnt"))
        .args(args)
        .output()
        .expect("the rnnt binary runs")
}

fn case(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/golden-variants/{name}.npz"))
        .display()
        .to_string()
}

fn scratch(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("rnnt-cli-variants-{}-{name}", std::process::id()))
        .display()
        .to_string()
}

fn read(path: &str, name: &str) -> ArrayD<f64> {
    let mut npz = NpzReader::new(File::open(Path::new(path)).unwrap()).unwrap();
    npz.by_name(name).unwrap()
}

#[test]
fn loss_of_every_variant_matches_its_truth() {
    for (name, variant, grads) in [
        (
            "tdt_sigma_f64",
            "tdt",
            &["grad_token_logits", "grad_duration_logits"][..],
        ),
        ("mb_sigma_f64", "multiblank", &["grad_logits"][..]),
        ("mod_blank_last_f64", "modified", &["grad_logits"][..]),
        ("dp_f64", "regular", &["grad_logits"][..]),
    ] {
        let out = scratch(&format!("{name}.npz"));
        let input = case(name);
        let mut args = vec![
            "loss",
            &input,
            "-o",
            &out,
            "--variant",
            variant,
            "--reduction",
            "sum",
        ];
        let delay;
        if name == "dp_f64" {
            delay = read(&input, "delay_penalty")
                .iter()
                .next()
                .unwrap()
                .to_string();
            args.extend(["--delay-penalty", &delay]);
        }
        let run = rnnt(&args);
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let losses: Array1<f64> = read(&out, "losses").into_dimensionality().unwrap();
        let truth: Array1<f64> = read(&input, "losses").into_dimensionality().unwrap();
        for (a, b) in losses.iter().zip(&truth) {
            assert!((a - b).abs() < 1e-9, "{name}: {a} vs {b}");
        }
        let written = if grads.len() == 2 {
            grads.to_vec()
        } else {
            vec!["grad"]
        };
        for (ours, theirs) in written.iter().zip(grads) {
            let diff = (&read(&out, ours) - &read(&input, theirs))
                .mapv(f64::abs)
                .fold(0.0, |a: f64, &b| a.max(b));
            assert!(diff < 1e-9, "{name} {ours}: {diff}");
        }
        std::fs::remove_file(&out).ok();
    }
}

#[test]
fn align_gives_tdt_durations_and_check_reads_the_variants_format() {
    let json = scratch("tdt.json");
    let run = rnnt(&[
        "align",
        &case("tdt_medium"),
        "--variant",
        "tdt",
        "--json",
        &json,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.contains("emit_durations"));
    std::fs::remove_file(&json).ok();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden-variants");
    let run = rnnt(&["check", &dir.display().to_string()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("0 failed"));
    let run = rnnt(&[
        "loss",
        &case("tdt_sigma_f64"),
        "-o",
        &scratch("x.npz"),
        "--variant",
        "sideways",
    ]);
    assert_eq!(run.status.code(), Some(2));
}
