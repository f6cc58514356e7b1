//! The `rnnt` binary end to end: `loss` against golden truth and on bad input, `check` on the
//! golden folder, `demo`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array0, Array1, Array2, Array4};
use ndarray_npy::{NpzReader, NpzWriter};

fn rnnt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnnt"))
        .args(args)
        .output()
        .expect("the rnnt binary runs")
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/golden/{name}.npz"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnnt-cli-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn read_f64<D: ndarray::Dimension>(path: &Path, name: &str) -> ndarray::Array<f64, D> {
    NpzReader::new(File::open(path).unwrap())
        .unwrap()
        .by_name(name)
        .unwrap()
}

/// A small valid input: B=2, T=3, U=2, V=4, blank=0, with optional changes.
struct Input {
    logits: Array4<f32>,
    targets: Array2<i32>,
    logit_lengths: Array1<i32>,
    target_lengths: Array1<i32>,
}

impl Input {
    fn valid() -> Input {
        Input {
            logits: Array4::from_shape_fn((2, 3, 3, 4), |(b, t, u, k)| {
                ((b + 2 * t + 3 * u + 5 * k) % 7) as f32 * 0.3
            }),
            targets: ndarray::array![[1, 2], [3, 1]],
            logit_lengths: ndarray::array![3, 2],
            target_lengths: ndarray::array![2, 1],
        }
    }

    fn write(&self, path: &Path) {
        let mut npz = NpzWriter::new(File::create(path).unwrap());
        npz.add_array("logits", &self.logits).unwrap();
        npz.add_array("targets", &self.targets).unwrap();
        npz.add_array("logit_lengths", &self.logit_lengths).unwrap();
        npz.add_array("target_lengths", &self.target_lengths)
            .unwrap();
        npz.add_array("blank", &Array0::from_elem((), 0i64))
            .unwrap();
        npz.finish().unwrap();
    }
}

#[test]
fn loss_reproduces_golden_truth_in_both_modes() {
    let case = golden("ragged_batch_padding_ignored");
    let losses: Array1<f64> = read_f64(&case, "losses");
    let batch = losses.len() as f64;
    for (flag, grad_name) in [
        (None, "grad_logits"),
        (Some("--log-probs"), "grad_log_probs"),
    ] {
        let out = scratch(&format!("golden-{grad_name}.npz"));
        let mut args = vec!["loss", case.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend(flag);
        let run = rnnt(&args);
        assert!(run.status.success(), "{run:?}");
        let got: Array1<f64> = read_f64(&out, "losses");
        for (a, b) in got.iter().zip(&losses) {
            assert!((a - b).abs() <= 1e-4 + 1e-5 * b.abs(), "{a} vs {b}");
        }
        let loss: Array0<f64> = read_f64(&out, "loss");
        assert!((loss.into_scalar() - losses.sum() / batch).abs() < 1e-3);
        // The default reduction is the mean: the gradient is the truth (of the sum) over B.
        let grad: Array4<f64> = read_f64(&out, "grad");
        let truth: Array4<f64> = read_f64(&case, grad_name);
        let error = (&grad - &(truth / batch))
            .mapv(f64::abs)
            .fold(0.0, |m: f64, &x| m.max(x));
        assert!(error < 1e-4, "{grad_name}: off by {error}");
    }
}

#[test]
fn loss_accepts_packed_targets_and_options() {
    let input = Input::valid();
    let padded = scratch("padded.npz");
    input.write(&padded);
    let packed = scratch("packed.npz");
    let mut npz = NpzWriter::new(File::create(&packed).unwrap());
    npz.add_array("logits", &input.logits).unwrap();
    npz.add_array("targets", &ndarray::array![1i64, 2, 3])
        .unwrap();
    npz.add_array("logit_lengths", &input.logit_lengths)
        .unwrap();
    npz.add_array("target_lengths", &input.target_lengths)
        .unwrap();
    npz.finish().unwrap();
    let mut results = Vec::new();
    for file in [&padded, &packed] {
        let out = scratch(&format!("{}.out.npz", results.len()));
        let run = rnnt(&[
            "loss",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--blank",
            "0",
            "--reduction",
            "sum",
            "--fastemit-lambda",
            "0.1",
            "--clamp",
            "0.5",
        ]);
        assert!(run.status.success(), "{run:?}");
        results.push((
            read_f64::<ndarray::Ix1>(&out, "losses"),
            read_f64::<ndarray::Ix4>(&out, "grad"),
        ));
    }
    assert_eq!(results[0], results[1]);
    assert!(results[0].1.iter().all(|g| g.abs() <= 0.5));
}

#[test]
fn loss_takes_packed_logits() {
    let input = Input::valid();
    let padded = scratch("padded-logits.npz");
    input.write(&padded);
    let lengths = |a: &Array1<i32>| a.mapv(i64::from);
    let rows = rnnt_cases::pack_scores(
        input.logits.view(),
        lengths(&input.logit_lengths).view(),
        lengths(&input.target_lengths).view(),
    );
    let write_packed = |path: &Path, rows: &Array2<f32>| {
        let mut npz = NpzWriter::new(File::create(path).unwrap());
        npz.add_array("logits", rows).unwrap();
        npz.add_array("targets", &input.targets).unwrap();
        npz.add_array("logit_lengths", &input.logit_lengths)
            .unwrap();
        npz.add_array("target_lengths", &input.target_lengths)
            .unwrap();
        npz.finish().unwrap();
    };
    let packed = scratch("packed-logits.npz");
    write_packed(&packed, &rows);
    let run_on = |file: &Path, out: &Path| {
        rnnt(&[
            "loss",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--blank",
            "0",
            "--reduction",
            "none",
        ])
    };
    let (padded_out, packed_out) = (scratch("padded-logits.out.npz"), scratch("packed.out.npz"));
    assert!(run_on(&padded, &padded_out).status.success());
    let run = run_on(&packed, &packed_out);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        read_f64::<ndarray::Ix1>(&packed_out, "losses"),
        read_f64::<ndarray::Ix1>(&padded_out, "losses")
    );
    // The gradient has the packed shape: the padded gradient's rows within the lengths.
    let padded_grad = read_f64::<ndarray::Ix4>(&padded_out, "grad");
    let want = rnnt_cases::pack_scores(
        padded_grad.view(),
        lengths(&input.logit_lengths).view(),
        lengths(&input.target_lengths).view(),
    );
    assert_eq!(read_f64::<ndarray::Ix2>(&packed_out, "grad"), want);
    // A wrong number of rows: exit 2 naming both counts.
    let short = scratch("packed-short.npz");
    write_packed(&short, &rows.slice(ndarray::s![..12, ..]).to_owned());
    let run = run_on(&short, &scratch("never.npz"));
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("logits is packed with 12 rows") && stderr.contains("= 13"),
        "{stderr}"
    );
}

/// Runs `rnnt loss` on a bad input: exit 2, one `error:` line naming `needle`, no output file.
fn assert_rejected(input: &Input, extra: &[&str], needle: &str) {
    let file = scratch(&format!("bad-{}.npz", needle.replace(['[', ']', ' '], "_")));
    input.write(&file);
    let out = file.with_extension("out.npz");
    let mut args = vec!["loss", file.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = rnnt(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{needle}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    assert!(!out.exists(), "no output may be written on error");
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let mut input = Input::valid();
    input.targets[[1, 0]] = 4;
    assert_rejected(&input, &[], "targets[1][0] = 4 is out of range for V = 4");

    let mut input = Input::valid();
    input.targets[[0, 1]] = 0;
    assert_rejected(&input, &[], "targets[0][1] = 0 is the blank id");

    let mut input = Input::valid();
    input.logit_lengths[1] = 0;
    assert_rejected(&input, &[], "logit_lengths[1] = 0");

    let mut input = Input::valid();
    input.logit_lengths[0] = 4;
    assert_rejected(&input, &[], "logit_lengths[0] = 4 exceeds T");

    let mut input = Input::valid();
    input.target_lengths[0] = -1;
    assert_rejected(&input, &[], "target_lengths[0] = -1");

    let mut input = Input::valid();
    input.logits[[0, 1, 2, 3]] = f32::NAN;
    assert_rejected(&input, &[], "logits[0][1][2][3] = NaN");

    assert_rejected(
        &Input::valid(),
        &["--blank", "7"],
        "blank = 7 is out of range",
    );
    assert_rejected(&Input::valid(), &["--log-probs"], "no `log_probs`");
    assert_rejected(
        &Input::valid(),
        &["--fastemit-lambda", "-1"],
        "fastemit_lambda",
    );
}

#[test]
fn a_header_declaring_terabytes_exits_2() {
    // `logits.npy` declares (10⁹, 10⁹, 1, 1) float32 over 64 bytes of data: reading it used to
    // allocate 4·10¹⁸ bytes and abort.
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000, 1, 1), }"
            .to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut logits = b"\x93NUMPY\x01\x00".to_vec();
    logits.extend(u16::try_from(header.len()).unwrap().to_le_bytes());
    logits.extend(header.as_bytes());
    logits.extend([0; 64]);
    let file = scratch("terabytes.npz");
    let mut zip = zip::ZipWriter::new(File::create(&file).unwrap());
    zip.start_file("logits.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, &logits).unwrap();
    zip.finish().unwrap();
    let run = rnnt(&["loss", file.to_str().unwrap(), "-o", "/tmp/never.npz"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("but holds 64 bytes of data"), "{stderr}");
}

#[test]
fn missing_file_exits_2() {
    let run = rnnt(&["loss", "/nonexistent/in.npz", "-o", "/tmp/never.npz"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent/in.npz"));
}

#[test]
fn check_passes_every_golden_case() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden");
    let run = rnnt(&["check", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("36 of 36 checks passed"), "{stdout}");
}

#[test]
fn check_fails_on_a_wrong_truth() {
    let dir = scratch("wrong-truth");
    std::fs::create_dir_all(&dir).unwrap();
    let input = Input::valid();
    let file = dir.join("case.npz");
    input.write(&file);
    // The same input with a wrong truth: zero losses and gradients.
    let mut npz = NpzWriter::new(File::create(dir.join("wrong.npz")).unwrap());
    npz.add_array("logits", &input.logits).unwrap();
    npz.add_array("targets", &input.targets).unwrap();
    npz.add_array("logit_lengths", &input.logit_lengths)
        .unwrap();
    npz.add_array("target_lengths", &input.target_lengths)
        .unwrap();
    npz.add_array("blank", &Array0::from_elem((), 0i64))
        .unwrap();
    npz.add_array("losses", &Array1::<f64>::zeros(2)).unwrap();
    for name in ["grad_logits", "grad_log_probs"] {
        npz.add_array(name, &Array4::<f64>::zeros(input.logits.dim()))
            .unwrap();
    }
    npz.finish().unwrap();
    let run = rnnt(&["check", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL: losses[0]"), "{stdout}");
    assert!(stdout.contains("1 of 2 checks passed"), "{stdout}");
}

#[test]
fn demo_runs() {
    let run = rnnt(&["demo", "--threads", "2"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(stdout.contains("ln 4 = 1.3863"), "{stdout}");
    assert!(stdout.contains("(ok)"), "{stdout}");
}
