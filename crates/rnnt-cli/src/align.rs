//! `rnnt align IN.npz`: the best path of each item, its emission frames and the occupancy
//! heatmap.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rnnt::Alignment;
use serde_json::{json, Value};

use crate::case_input::{fast_align, CaseArgs};
use crate::picture;

/// Arguments of `rnnt align`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArgs,
    /// Only this item (0 ≤ I < B) [default: every item; the picture shows item 0].
    #[arg(long, value_name = "I")]
    item: Option<usize>,
    /// Write the JSON list of alignments here: one object per item (or only the chosen one) with
    /// `path` ([t, u] nodes), `score` (ln probability of the best path, null if none) and
    /// `emit_frames`.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the occupancy heatmap (log scale) with the best path as a PNG: 48 px per frame and
    /// per label position, the plot clamped to 360–1200 × 240–800 px, plus 240 × 110 px of axes
    /// and colour bar.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
}

/// Runs `rnnt align`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (case, mode, options) = args.case.read()?;
    let alignments = fast_align(&case, mode.scores(&case)?, &options)?;
    let chosen: Vec<usize> = match args.item {
        Some(item) if item >= alignments.len() => bail!(
            "--item = {item} is out of range for a batch of B = {} items",
            alignments.len()
        ),
        Some(item) => vec![item],
        None => (0..alignments.len()).collect(),
    };
    for &b in &chosen {
        print_table(b, &alignments[b]);
    }
    if let Some(path) = &args.json {
        let list: Vec<Value> = chosen.iter().map(|&b| to_json(b, &alignments[b])).collect();
        let text = serde_json::to_string_pretty(&list)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("alignments -> {}", path.display());
    }
    if let Some(path) = &args.png {
        let b = chosen[0];
        let alignment = &alignments[b];
        let title = match &alignment.best_path {
            Some(best) => format!(
                "item {b}: ln P = {:.4}, best path ln p = {:.4}",
                alignment.log_p, best.score
            ),
            None => format!("item {b}: impossible (P = 0), no path"),
        };
        let (width, height) = picture::draw(path, alignment, &title)?;
        println!(
            "occupancy of item {b} ({width}x{height} px) -> {}",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per label: its id, the best path's emission frame, the posterior mean and spread.
fn print_table(b: usize, alignment: &Alignment) {
    let labels = &alignment.labels;
    let (frames, _) = alignment.occupancy.dim();
    let Some(path) = &alignment.best_path else {
        println!(
            "item {b}: T = {frames}, U = {}: impossible (P = 0), no path",
            labels.len()
        );
        return;
    };
    println!(
        "item {b}: T = {frames}, U = {}, ln P = {:.6}, best path ln p = {:.6} ({:.2}% of P)",
        labels.len(),
        alignment.log_p,
        path.score,
        100.0 * (path.score - alignment.log_p).exp()
    );
    println!("  label     id  frame   mean    std   (frames from 0)");
    let spreads = alignment.emit_frame_spreads();
    for (j, ((id, frame), spread)) in labels
        .iter()
        .zip(&path.emit_frames)
        .zip(&spreads)
        .enumerate()
    {
        println!(
            "  {:>5}  {id:>5}  {frame:>5}  {:>5.2}  {:>5.2}",
            j + 1,
            spread.mean,
            spread.std_dev
        );
    }
    println!("  final blank at frame {}", frames - 1);
}

/// The JSON object of one item.
fn to_json(b: usize, alignment: &Alignment) -> Value {
    let finite = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
    let (path, score, emit_frames) = match &alignment.best_path {
        Some(best) => (
            best.nodes.iter().map(|&(t, u)| json!([t, u])).collect(),
            finite(best.score),
            best.emit_frames.clone(),
        ),
        None => (Vec::new(), Value::Null, Vec::new()),
    };
    let spreads = alignment.emit_frame_spreads();
    json!({
        "item": b,
        "frames": alignment.occupancy.dim().0,
        "labels": alignment.labels,
        "path": path,
        "score": score,
        "log_prob": finite(alignment.log_p),
        "emit_frames": emit_frames,
        "emit_frame_mean": spreads.iter().map(|s| finite(s.mean)).collect::<Vec<_>>(),
        "emit_frame_std": spreads.iter().map(|s| finite(s.std_dev)).collect::<Vec<_>>(),
    })
}
