//! `rnnt bench`: times the CPU loss on the DESIGN.md §3 benchmark shapes against the memory floor,
//! the bytes a forward + backward must move (read the input twice, write the gradient once) over
//! a STREAM-triad bandwidth measured in the same run.
//!
//! The triad is measured between each shape's blocks of timed runs ([`TRIAD_SAMPLES`] times a
//! shape), and the best of those is that shape's floor, as its best run is its time: on a machine
//! whose speed varies over seconds (a shared VM), a triad measured at other moments than the
//! shape's runs would move the ratio with the machine's load rather than with the code. After
//! each triad the shape runs once untimed, so that its data is back in the caches the triad
//! swept.
//!
//! With `--packed`, each shape's batch (ragged: its lengths are drawn in [0.8, 1]·max) is also
//! timed with its logits packed, (ΣT_b·(U_b+1), V), and reported beside padded: the packed floor
//! counts the packed bytes, the padded floor the padded ones.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array, ArrayView, ArrayViewMut, Dimension};
use rnnt::internals::{run_in_pool, Isa, Triad};
use rnnt::{Float, Options, Reduction, ScoresDim};
use rnnt_cases::synthetic::{self, Shape, BENCHMARK_SHAPES};
use rnnt_cases::{Case, Scores};

use crate::case_input::loss_input;

/// Arguments of `rnnt bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A shape to time: S1..S6 or B,T,U,V (repeat the option for several; default S1..S6).
    #[arg(long = "shape", value_parser = parse_shape)]
    shapes: Vec<NamedShape>,
    /// CPU threads (0: RNNT_NUM_THREADS, else every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Float type of the logits and gradient.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Timed runs per shape; the best is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Print a JSON list with one object per shape instead of a table.
    #[arg(long)]
    json: bool,
    /// Also time each batch with its logits packed, (ΣT_b·(U_b+1), V) (the lengths are ragged),
    /// and report it beside padded; the packed floor counts the packed bytes.
    #[arg(long)]
    packed: bool,
    /// Time a transducer variant instead (float32, padded): tdt, multiblank, modified,
    /// constrained, or regular with --delay-penalty.
    #[arg(long)]
    variant: Option<String>,
    /// TDT's durations.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    durations: Vec<i64>,
    /// Multi-blank's big blank durations.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    big_blank_durations: Vec<i64>,
    /// k2's delay penalty (regular, modified, constrained).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    delay_penalty: f64,
}

/// The variant flags as a variant bench, `None` without `--variant`.
fn variant_bench(args: &Args) -> anyhow::Result<Option<crate::bench_variant::VariantBench>> {
    let Some(kind) = &args.variant else {
        return Ok(None);
    };
    let (rnnt_type, durations, big) = match kind.as_str() {
        "tdt" => ("regular", Some(&args.durations[..]), None),
        "multiblank" => ("regular", None, Some(&args.big_blank_durations[..])),
        other => (other, None, None),
    };
    let variant =
        rnnt::Variant::from_names(rnnt_type, false, durations, big, (0.0, args.delay_penalty))?;
    Ok(Some(crate::bench_variant::VariantBench {
        duration_columns: durations.map_or(0, <[i64]>::len),
        big_blanks: big.map_or(0, <[i64]>::len),
        variant,
    }))
}

/// The element types `rnnt bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Dtype {
    F32,
    F64,
    F16,
    Bf16,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

/// A shape and the name it was given on the command line.
#[derive(Debug, Clone)]
struct NamedShape {
    name: String,
    shape: Shape,
}

fn parse_shape(text: &str) -> Result<NamedShape, String> {
    if let Some(shape) = Shape::named(text) {
        return Ok(NamedShape {
            name: text.to_uppercase(),
            shape,
        });
    }
    let sizes: Vec<usize> = text
        .split(',')
        .map(|part| part.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--shape {text:?} is neither S1..S6 nor B,T,U,V"))?;
    match sizes[..] {
        [b, t, u, v] if b > 0 && t > 0 && v > 0 => Ok(NamedShape {
            name: format!("{b},{t},{u},{v}"),
            shape: Shape::new(b, t, u, v),
        }),
        _ => Err(format!(
            "--shape {text:?} needs four sizes B,T,U,V with B, T, V at least 1"
        )),
    }
}

/// One shape's measurements.
struct Timing {
    name: String,
    shape: Shape,
    forward_s: f64,
    forward_backward_s: f64,
    /// The best triad bandwidth measured between the shape's runs, bytes per second.
    triad: f64,
    /// The same batch with packed logits, with `--packed`.
    packed: Option<PackedTiming>,
}

/// The measurements of one batch with its logits packed.
struct PackedTiming {
    /// ΣT_b·(U_b+1)·V, the packed logits' elements.
    elements: usize,
    forward_s: f64,
    forward_backward_s: f64,
}

impl Timing {
    /// The floor: the bytes a forward + backward must move over the shape's triad bandwidth.
    fn floor_s(&self, dtype: Dtype) -> f64 {
        floor_s(self.shape.elements(), dtype, self.triad)
    }

    /// The time over the floor.
    fn ratio(&self, dtype: Dtype) -> f64 {
        self.forward_backward_s / self.floor_s(dtype)
    }
}

/// The floor of a forward + backward over `elements` logits: each read twice and its gradient
/// written once, over the `triad` bandwidth (bytes per second).
fn floor_s(elements: usize, dtype: Dtype, triad: f64) -> f64 {
    (3 * dtype.bytes() * elements) as f64 / triad
}

/// Triad measurements per shape, between its blocks of timed runs.
const TRIAD_SAMPLES: usize = 5;

/// Elements of each triad array: 256 MiB of f32, beyond any cache of the machines we target.
const TRIAD_ELEMENTS: usize = 1 << 26;

/// Runs `rnnt bench`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let shapes = if args.shapes.is_empty() {
        BENCHMARK_SHAPES
            .iter()
            .map(|&(name, shape)| NamedShape {
                name: name.to_string(),
                shape,
            })
            .collect()
    } else {
        args.shapes.clone()
    };
    if let Some(bench) = variant_bench(args)? {
        let shapes: Vec<_> = shapes.into_iter().map(|s| (s.name, s.shape)).collect();
        return crate::bench_variant::run(&bench, &shapes, (args.threads, args.repeat));
    }
    let threads = run_in_pool(args.threads, rayon_threads)?;
    let layouts = 1 + usize::from(args.packed);
    let progress = ProgressBar::new((shapes.len() * layouts * (2 * args.repeat + 2) + 1) as u64);
    if args.json {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    progress.set_message("STREAM triad: mapping its arrays");
    let mut triad = Triad::new(args.threads, TRIAD_ELEMENTS)?;
    progress.inc(1);
    let mut timings = Vec::new();
    for NamedShape { name, shape } in shapes {
        progress.set_message(format!("{name}: generating inputs"));
        let case = synthetic::batch(shape, 0);
        let Some(Scores::F32(logits)) = &case.logits else {
            unreachable!("synthetic batches hold float32 logits")
        };
        progress.inc(1);
        progress.set_message(format!("{name}: timing"));
        let runs = (args, &mut triad, &progress);
        let (forward_s, forward_backward_s, mut best_triad) =
            time_as(args.dtype, &case, logits, runs)?;
        let packed = if args.packed {
            progress.set_message(format!("{name}: timing packed logits"));
            let packed = rnnt_cases::pack_scores(
                logits.view(),
                case.logit_lengths.view(),
                case.target_lengths.view(),
            );
            let runs = (args, &mut triad, &progress);
            let (forward_s, forward_backward_s, packed_triad) =
                time_as(args.dtype, &case, &packed, runs)?;
            // Both layouts' floors over the best bandwidth seen during either's runs.
            best_triad = best_triad.max(packed_triad);
            Some(PackedTiming {
                elements: packed.len(),
                forward_s,
                forward_backward_s,
            })
        } else {
            None
        };
        timings.push(Timing {
            name,
            shape,
            forward_s,
            forward_backward_s,
            triad: best_triad,
            packed,
        });
    }
    progress.finish_and_clear();
    if args.json {
        print_json(&timings, args.dtype, threads);
    } else {
        print_table(&timings, args.dtype, threads);
        if args.packed {
            print_packed_table(&timings, args.dtype);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rayon_threads() -> usize {
    rayon::current_num_threads()
}

/// [`time_shape`] on float32 `logits` converted to `dtype`.
fn time_as<D: ScoresDim>(
    dtype: Dtype,
    case: &Case,
    logits: &Array<f32, D>,
    runs: (&Args, &mut Triad, &ProgressBar),
) -> anyhow::Result<(f64, f64, f64)> {
    match dtype {
        Dtype::F32 => time_shape(case, logits, runs),
        Dtype::F64 => time_shape(case, &logits.mapv(f64::from), runs),
        Dtype::F16 => time_shape(case, &logits.mapv(half::f16::from_f32), runs),
        Dtype::Bf16 => time_shape(case, &logits.mapv(half::bf16::from_f32), runs),
    }
}

/// Best forward time, best forward + backward time and best triad bandwidth over the repeats,
/// in up to [`TRIAD_SAMPLES`] blocks, each after a triad measurement and one untimed run (which
/// also maps the gradient's pages the first time).
fn time_shape<F: Float, D: ScoresDim>(
    case: &Case,
    logits: &Array<F, D>,
    (args, triad, progress): (&Args, &mut Triad, &ProgressBar),
) -> anyhow::Result<(f64, f64, f64)> {
    let logits = AlignedBlock::copy_of(logits);
    let input = loss_input(case, logits.view());
    let options = Options {
        blank: case.blank.unwrap_or(-1),
        reduction: Reduction::Mean,
        threads: args.threads,
        ..Options::default()
    };
    let mut grad = AlignedBlock::zeros(logits.dim);
    let forward_backward = |grad: &mut AlignedBlock<F, D>| -> anyhow::Result<f64> {
        let start = Instant::now();
        std::hint::black_box(rnnt::loss_and_grad_into(&input, &options, grad.view_mut())?);
        Ok(start.elapsed().as_secs_f64())
    };
    let repeat = args.repeat.max(1);
    let blocks = TRIAD_SAMPLES.min(repeat);
    let mut best_forward = f64::INFINITY;
    let mut best_both = f64::INFINITY;
    let mut best_triad = 0.0f64;
    for block in 0..blocks {
        best_triad = best_triad.max(triad.bandwidth()?);
        forward_backward(&mut grad)?;
        if block == 0 {
            progress.inc(1);
        }
        for _ in 0..repeat / blocks + usize::from(block < repeat % blocks) {
            let start = Instant::now();
            std::hint::black_box(rnnt::forward(&input, &options)?);
            best_forward = best_forward.min(start.elapsed().as_secs_f64());
            progress.inc(1);
            best_both = best_both.min(forward_backward(&mut grad)?);
            progress.inc(1);
        }
    }
    Ok((best_forward, best_both, best_triad))
}

fn print_table(timings: &[Timing], dtype: Dtype, threads: usize) {
    println!(
        "rnnt bench: {} CPU thread(s), {}, SIMD {}; times are the best run, the triad each \
         shape's best between its runs",
        threads,
        dtype.name(),
        Isa::detected().name()
    );
    println!(
        "{:<16} {:>12} {:>14} {:>8} {:>8} {:>10} {:>7}",
        "shape", "forward ms", "fwd+bwd ms", "GB/s", "triad", "floor ms", "ratio"
    );
    for timing in timings {
        let shape = timing.shape;
        let label = format!(
            "{} ({},{},{},{})",
            timing.name, shape.batch, shape.frames, shape.labels, shape.vocab
        );
        let bytes = (3 * dtype.bytes() * shape.elements()) as f64;
        println!(
            "{:<16} {:>12.2} {:>14.2} {:>8.1} {:>8.1} {:>10.2} {:>6.2}x",
            if label.len() > 16 {
                &timing.name
            } else {
                &label
            },
            timing.forward_s * 1e3,
            timing.forward_backward_s * 1e3,
            bytes / timing.forward_backward_s / 1e9,
            timing.triad / 1e9,
            timing.floor_s(dtype) * 1e3,
            timing.ratio(dtype)
        );
    }
}

/// With `--packed`: each batch's forward + backward with padded and with packed logits, each
/// against the floor of its own bytes.
fn print_packed_table(timings: &[Timing], dtype: Dtype) {
    println!();
    println!(
        "packed (sum T_b*(U_b+1), V) against padded (B, T, U+1, V) logits, forward + backward; \
         each floor counts its own bytes"
    );
    println!(
        "{:<8} {:>8} {:>11} {:>9} {:>7} {:>11} {:>9} {:>7} {:>8}",
        "shape",
        "packed",
        "padded ms",
        "floor ms",
        "ratio",
        "packed ms",
        "floor ms",
        "ratio",
        "speed-up"
    );
    for timing in timings {
        let Some(packed) = &timing.packed else {
            continue;
        };
        let packed_floor = floor_s(packed.elements, dtype, timing.triad);
        println!(
            "{:<8} {:>7.1}% {:>11.2} {:>9.2} {:>6.2}x {:>11.2} {:>9.2} {:>6.2}x {:>7.2}x",
            timing.name,
            100.0 * packed.elements as f64 / timing.shape.elements() as f64,
            timing.forward_backward_s * 1e3,
            timing.floor_s(dtype) * 1e3,
            timing.ratio(dtype),
            packed.forward_backward_s * 1e3,
            packed_floor * 1e3,
            packed.forward_backward_s / packed_floor,
            timing.forward_backward_s / packed.forward_backward_s
        );
    }
}

fn print_json(timings: &[Timing], dtype: Dtype, threads: usize) {
    let list: Vec<serde_json::Value> = timings
        .iter()
        .map(|timing| {
            let shape = timing.shape;
            let mut entry = serde_json::json!({
                "shape": [shape.batch, shape.frames, shape.labels, shape.vocab],
                "dtype": dtype.name(),
                "threads": threads,
                "forward_s": timing.forward_s,
                "forward_backward_s": timing.forward_backward_s,
                "triad_gb_s": timing.triad / 1e9,
                "floor_s": timing.floor_s(dtype),
                "ratio": timing.ratio(dtype),
            });
            if let Some(packed) = &timing.packed {
                let floor = floor_s(packed.elements, dtype, timing.triad);
                entry["packed"] = serde_json::json!({
                    "elements": packed.elements,
                    "padded_elements": shape.elements(),
                    "forward_s": packed.forward_s,
                    "forward_backward_s": packed.forward_backward_s,
                    "floor_s": floor,
                    "ratio": packed.forward_backward_s / floor,
                });
            }
            entry
        })
        .collect();
    println!("{}", serde_json::Value::Array(list));
}

/// A C-contiguous block of logits (padded (B, T, U+1, V) or packed (ΣT_b·(U_b+1), V)) whose
/// first element is 64-byte aligned, as torch's CPU allocator hands out tensors (a plain `Vec` is
/// 16-byte aligned on glibc, so that every row of a V = 128 block would straddle one cache line
/// more than in training).
struct AlignedBlock<F, D> {
    storage: Vec<F>,
    offset: usize,
    dim: D,
}

impl<F: Float, D: Dimension> AlignedBlock<F, D> {
    /// Bytes of alignment.
    const ALIGNMENT: usize = 64;

    /// A zero-filled block.
    fn zeros(dim: D) -> Self {
        let len = dim.size();
        let spare = Self::ALIGNMENT / std::mem::size_of::<F>();
        let storage = vec![F::zero(); len + spare];
        let misaligned = storage.as_ptr() as usize % Self::ALIGNMENT;
        let offset = (Self::ALIGNMENT - misaligned) % Self::ALIGNMENT / std::mem::size_of::<F>();
        AlignedBlock {
            storage,
            offset,
            dim,
        }
    }

    /// An aligned copy of `values`.
    fn copy_of(values: &Array<F, D>) -> Self {
        let mut block = Self::zeros(values.raw_dim());
        block.view_mut().assign(values);
        block
    }

    fn len(&self) -> usize {
        self.dim.size()
    }

    fn view(&self) -> ArrayView<'_, F, D> {
        let values = &self.storage[self.offset..self.offset + self.len()];
        ArrayView::from_shape(self.dim.clone(), values).expect("the block holds its shape")
    }

    fn view_mut(&mut self) -> ArrayViewMut<'_, F, D> {
        let len = self.len();
        let values = &mut self.storage[self.offset..self.offset + len];
        ArrayViewMut::from_shape(self.dim.clone(), values).expect("the block holds its shape")
    }
}
