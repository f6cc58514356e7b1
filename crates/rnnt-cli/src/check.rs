//! `rnnt check DIR`: every golden-format .npz in a folder through the fast path, in both input
//! modes, against the stored float64 truth (or, for a file without truth, the scalar reference),
//! with the tolerances of the folder's `manifest.json` when it has one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ndarray::Array4;
use rnnt::{Options, Reduction};
use rnnt_cases::{read_case, read_manifest, Case, ManifestEntry, Scores, Tolerance};

use crate::case_input::{fast_loss, reference_loss, Mode};

/// Arguments of `rnnt check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of golden-format .npz files (the project's copies are tests/golden and, in the
    /// variants' format, tests/golden-variants).
    dir: PathBuf,
    /// CPU threads (0: RNNT_NUM_THREADS, else every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// One case in one mode, compared with its truth.
struct Row {
    case: String,
    mode: Mode,
    dtype: &'static str,
    shape: String,
    /// Largest |loss − truth| over the batch (0 where both are the same infinity).
    loss_error: f64,
    /// Largest |grad − truth| over every element.
    grad_error: f64,
    /// Elements of the padding whose gradient is not exactly 0.
    padding_nonzero: usize,
    against: &'static str,
    failure: Option<String>,
}

/// Runs `rnnt check`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(code) = crate::variant_case::check_dir(&args.dir, args.threads)? {
        return Ok(code);
    }
    let manifest = if args.dir.join("manifest.json").exists() {
        read_manifest(&args.dir)?
    } else {
        BTreeMap::new()
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("cannot read the folder {}", args.dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "npz"))
        .collect();
    paths.sort();
    anyhow::ensure!(
        !paths.is_empty(),
        "{} holds no .npz file",
        args.dir.display()
    );
    let mut rows = Vec::new();
    for path in &paths {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let case = read_case(path)?;
        for mode in [Mode::Logits, Mode::LogProbs] {
            if let Ok(scores) = mode.scores(&case) {
                rows.push(check_mode(
                    &name,
                    &case,
                    mode,
                    scores,
                    manifest.get(name.as_ref()),
                    args.threads,
                ));
            }
        }
    }
    print_table(&rows);
    let failed = rows.iter().filter(|row| row.failure.is_some()).count();
    println!(
        "\n{} of {} checks passed ({} files in {})",
        rows.len() - failed,
        rows.len(),
        paths.len(),
        args.dir.display()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The tolerance for scores of `dtype`: the manifest's where it was stated for that dtype.
fn tolerance(dtype: &str, entry: Option<&ManifestEntry>) -> Tolerance {
    match entry {
        Some(entry) if entry.dtype == dtype => entry.tolerance,
        _ if dtype == "float64" => Tolerance::FLOAT64,
        _ => Tolerance::FLOAT32,
    }
}

fn check_mode(
    name: &str,
    case: &Case,
    mode: Mode,
    scores: &Scores,
    entry: Option<&ManifestEntry>,
    threads: usize,
) -> Row {
    let options = Options {
        blank: case.blank.unwrap_or(-1),
        reduction: Reduction::Sum,
        fused_log_softmax: mode == Mode::Logits,
        threads,
        ..Options::default()
    };
    let dims = match scores {
        Scores::F32(a) => a.dim(),
        Scores::F64(a) => a.dim(),
    };
    let mut row = Row {
        case: name.to_string(),
        mode,
        dtype: scores.dtype(),
        shape: format!("{dims:?}"),
        loss_error: f64::NAN,
        grad_error: f64::NAN,
        padding_nonzero: 0,
        against: "truth",
        failure: None,
    };
    let fast = match fast_loss(case, scores, &options) {
        Ok(fast) => fast,
        Err(error) => {
            row.failure = Some(format!("loss failed: {error}"));
            return row;
        }
    };
    let (truth_losses, truth_grad) = match (&case.truth, mode.truth_grad(case)) {
        (Some(truth), Some(grad)) => (truth.losses.clone(), grad.clone()),
        _ => match reference_loss(case, scores, &options) {
            Ok(reference) => {
                row.against = "reference";
                (reference.losses, reference.grad)
            }
            Err(error) => {
                row.failure = Some(format!("reference failed: {error}"));
                return row;
            }
        },
    };
    let tol = tolerance(scores.dtype(), entry);
    row.loss_error = fast
        .losses
        .iter()
        .zip(&truth_losses)
        .map(|(&a, &b)| if a == b { 0.0 } else { (a - b).abs() })
        .fold(0.0, f64::max);
    row.grad_error = max_abs_diff(&fast.grad, &truth_grad);
    row.padding_nonzero = padding_nonzero(case, &fast.grad);
    let bad_loss = fast
        .losses
        .iter()
        .zip(&truth_losses)
        .position(|(&a, &b)| !tol.loss_ok(a, b));
    row.failure = if let Some(b) = bad_loss {
        Some(format!(
            "losses[{b}] = {} but truth is {}",
            fast.losses[b], truth_losses[b]
        ))
    } else if row.grad_error.is_nan() || row.grad_error > tol.grad_atol {
        Some(format!(
            "grad off by {:.1e} > {:.0e}",
            row.grad_error, tol.grad_atol
        ))
    } else if row.padding_nonzero > 0 {
        Some(format!(
            "{} padding elements have a non-zero gradient",
            row.padding_nonzero
        ))
    } else {
        None
    };
    row
}

fn max_abs_diff(a: &Array4<f64>, b: &Array4<f64>) -> f64 {
    if a.dim() != b.dim() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, |acc, d| if d.is_nan() { f64::NAN } else { acc.max(d) })
}

fn padding_nonzero(case: &Case, grad: &Array4<f64>) -> usize {
    grad.indexed_iter()
        .filter(|&((b, t, u, _), &g)| {
            let outside = t as i64 >= case.logit_lengths[b] || u as i64 > case.target_lengths[b];
            outside && g != 0.0
        })
        .count()
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<9}  {:<7}  {:<18}  {:>9}  {:>9}  {:<9}  result",
        "case", "mode", "dtype", "shape (B,T,U+1,V)", "loss err", "grad err", "against"
    );
    for row in rows {
        println!(
            "{:<width$}  {:<9}  {:<7}  {:<18}  {:>9.1e}  {:>9.1e}  {:<9}  {}",
            row.case,
            row.mode.name(),
            row.dtype,
            row.shape,
            row.loss_error,
            row.grad_error,
            row.against,
            row.failure
                .as_deref()
                .map_or("pass".to_string(), |why| format!("FAIL: {why}"))
        );
    }
}
