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
    /// `emit_frames`, `emit_durations` (the frames each label's arc advances).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the occupancy heatmap (log scale) with the best path as a PNG: 48 px per frame and
    /// per label position, the plot clamped to 360–1200 × 240–800 px, plus 240 × 110 px of axes
    /// and colour bar.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// The lattice: regular, tdt, multiblank, modified or constrained (the variants' .npz
    /// format, docs/variants-format.md); the table then gives each label's arc
    /// duration (TDT: the token's duration) and the picture the path's jumps.
    #[arg(long, default_value = "regular")]
    variant: String,
    /// k2's delay penalty (overrides the .npz's `delay_penalty`).
    #[arg(long, allow_negative_numbers = true)]
    delay_penalty: Option<f64>,
    /// Undernormalisation σ (overrides the .npz's `sigma`).
    #[arg(long, allow_negative_numbers = true)]
    sigma: Option<f64>,
}

/// The alignments of a variant's case.
fn variant_alignments(args: &Args) -> anyhow::Result<Vec<Alignment>> {
    let (arrays, variant, options) = crate::variant_case::read_case(
        &args.case,
        &args.variant,
        (args.sigma, args.delay_penalty),
    )?;
    crate::variant_case::align(&arrays, &variant, &options)
}

/// Runs `rnnt align`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let alignments =
        if args.variant != "regular" || args.sigma.is_some() || args.delay_penalty.is_some() {
            variant_alignments(args)?
        } else {
            let (case, mode, options) = args.case.read()?;
            fast_align(&case, mode.scores(&case)?, &options)?
        };
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
    let frames = alignment.emit_posterior.ncols();
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
    println!("  label     id  frame  dur   mean    std   (frames from 0)");
    let spreads = alignment.emit_frame_spreads();
    let durations = label_durations(path);
    for (j, (((id, frame), spread), duration)) in labels
        .iter()
        .zip(&path.emit_frames)
        .zip(&spreads)
        .zip(&durations)
        .enumerate()
    {
        println!(
            "  {:>5}  {id:>5}  {frame:>5}  {duration:>3}  {:>5.2}  {:>5.2}",
            j + 1,
            spread.mean,
            spread.std_dev
        );
    }
    match (path.nodes.last(), path.arcs.len() == path.nodes.len()) {
        (Some(&(t, _)), true) => match path.durations.last() {
            Some(&d) if d != 1 => println!("  final blank at frame {t} (duration {d})"),
            _ => println!("  final blank at frame {t}"),
        },
        _ => println!("  ends at frame {frames} after its last symbol (one symbol per frame)"),
    }
}

/// The frames each label's arc advances on the best path (TDT: the token's duration).
fn label_durations(path: &rnnt::BestPath) -> Vec<usize> {
    path.arcs
        .iter()
        .zip(&path.durations)
        .filter(|(&arc, _)| arc == rnnt::ArcKind::Emit)
        .map(|(_, &d)| d)
        .collect()
}

/// The JSON object of one item.
fn to_json(b: usize, alignment: &Alignment) -> Value {
    let finite = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
    let (path, score, emit_frames, durations) = match &alignment.best_path {
        Some(best) => (
            best.nodes.iter().map(|&(t, u)| json!([t, u])).collect(),
            finite(best.score),
            best.emit_frames.clone(),
            label_durations(best),
        ),
        None => (Vec::new(), Value::Null, Vec::new(), Vec::new()),
    };
    let spreads = alignment.emit_frame_spreads();
    json!({
        "item": b,
        "frames": alignment.emit_posterior.ncols(),
        "labels": alignment.labels,
        "path": path,
        "score": score,
        "log_prob": finite(alignment.log_p),
        "emit_frames": emit_frames,
        "emit_durations": durations,
        "emit_frame_mean": spreads.iter().map(|s| finite(s.mean)).collect::<Vec<_>>(),
        "emit_frame_std": spreads.iter().map(|s| finite(s.std_dev)).collect::<Vec<_>>(),
    })
}
