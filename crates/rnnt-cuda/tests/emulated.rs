//! The kernels' own source, run on the CPU by the emulator in `tests/emulator/` (each CUDA thread
//! an OS thread; see `cuda_shim.h`), against the golden truth and the CPU backend. This checks
//! the kernels' indexing, lengths, masking and arithmetic on machines without a GPU; it cannot
//! check timing, memory coalescing or the real warp scheduler. float16 is not emulated (its
//! conversions are PTX instructions). Needs a C++20 compiler (`c++`, or `CXX`); prints
//! `skipped: <reason>` without one.

mod against_cpu;
#[path = "../../rnnt/tests/common/mod.rs"]
mod common;

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;

use against_cpu::{gaps_to_cpu, random_input, swept_options};
use common::{from_case, golden_dir, max_abs_diff, FromI64, OwnedInput};
use ndarray::Array4;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rnnt::batch::non_finite_logit;
use rnnt::loss::input_name;
use rnnt::{Batch, Error, Index, LossAndGrad, LossInput, Options, Reduction, Result};
use rnnt_cases::{read_case, read_manifest, Tolerance};
use rnnt_cuda::launch::{lattice_launch, row_launch};
use rnnt_cuda::source::program_source;
use rnnt_cuda::DeviceElement;

type FrontFn = unsafe extern "C" fn(
    u32,
    u32,
    *const c_void,
    i64,
    i64,
    i64,
    i64,
    i32,
    i32,
    *const i32,
    *const i32,
    *const i64,
    *const i32,
    *mut f64,
    *mut f64,
    *mut f64,
    *mut u64,
);
type LatticeFn = unsafe extern "C" fn(
    u32,
    u32,
    i64,
    i64,
    *const i32,
    *const i32,
    *const f64,
    *const f64,
    *mut f64,
    *mut f64,
    *mut f64,
    *mut f64,
    *mut f64,
);
type GradFn = unsafe extern "C" fn(
    u32,
    u32,
    *const c_void,
    *mut c_void,
    i64,
    i64,
    i64,
    i64,
    i32,
    i32,
    f64,
    f64,
    *const i32,
    *const i32,
    *const i64,
    *const i32,
    *const f64,
    *const f64,
    *const f64,
    *const f64,
    *const f64,
);

/// Row kernels run with at most this many blocks of [`EMULATED_ROW_THREADS`] (two warps), so that
/// the grid-stride loops and several warps per block are exercised without thousands of threads.
const EMULATED_ROW_BLOCKS: u32 = 2;
/// Threads per block of the emulated row kernels.
const EMULATED_ROW_THREADS: u32 = 64;
/// Golden cases with more (b, t, u) rows than this are left to the GPU tests: every emulated
/// warp shuffle is a barrier between 32 OS threads (`long_sequence` alone would take minutes).
const EMULATED_MAX_ROWS: usize = 5_000;

/// The kernels of one element type, compiled for the host.
struct Emulator {
    front: FrontFn,
    lattice: LatticeFn,
    grad: GradFn,
    _library: libloading::Library,
}

impl Emulator {
    /// Compiles the emulator for `F`, or says why it cannot.
    fn build<F: DeviceElement>() -> std::result::Result<Emulator, String> {
        let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let source = dir.join(format!("rnnt_emulated_{}.cpp", F::DTYPE));
        let library = dir.join(format!("librnnt_emulated_{}.so", F::DTYPE));
        let text = [
            include_str!("emulator/cuda_shim.h").to_string(),
            program_source(F::KERNEL_ELEM),
            include_str!("emulator/launcher.cpp").to_string(),
        ]
        .join("\n");
        std::fs::write(&source, text).map_err(|e| e.to_string())?;
        let output = Command::new(&compiler)
            .args(["-std=c++20", "-O2", "-shared", "-fPIC", "-pthread"])
            .args(["-Wall", "-Werror", "-Wno-unknown-pragmas", "-o"])
            .arg(&library)
            .arg(&source)
            .output()
            .map_err(|e| format!("no C++ compiler `{compiler}`: {e}"))?;
        if !output.status.success() {
            panic!(
                "the kernels do not compile as C++20:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // SAFETY: the library was just built from the files above; its entry points have the
        // signatures declared by the three function types.
        unsafe {
            let lib = libloading::Library::new(&library).map_err(|e| e.to_string())?;
            Ok(Emulator {
                front: *lib.get(b"emu_front\0").map_err(|e| e.to_string())?,
                lattice: *lib.get(b"emu_lattice\0").map_err(|e| e.to_string())?,
                grad: *lib.get(b"emu_grad\0").map_err(|e| e.to_string())?,
                _library: lib,
            })
        }
    }

    /// The emulator, or `None` after printing why the test is skipped.
    fn or_skip<F: DeviceElement>() -> Option<Emulator> {
        match Emulator::build::<F>() {
            Ok(emulator) => Some(emulator),
            Err(reason) => {
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    /// The launch sequence of `passes.rs` (front, lattice, gradient) on host buffers.
    fn loss_and_grad<F: DeviceElement, I: Index>(
        &self,
        input: &LossInput<'_, F, I>,
        options: &Options,
    ) -> Result<LossAndGrad<F>> {
        options.validate()?;
        let batch = Batch::new(input, options.blank, input_name(options))?;
        let scores = input.logits.as_slice().unwrap();
        let (b, t, u1, v) = input.logits.dim();
        let rows = b * t * u1;
        let frames: Vec<i32> = (0..b).map(|i| batch.frames(i) as i32).collect();
        let counts: Vec<i32> = (0..b).map(|i| batch.labels(i).len() as i32).collect();
        let mut offsets = Vec::new();
        let mut labels = vec![];
        for i in 0..b {
            offsets.push(labels.len() as i64);
            labels.extend(batch.labels(i).iter().map(|&y| y as i32));
        }
        labels.push(0);
        let nodes = || vec![0f64; rows];
        let (mut blank_lp, mut emit_lp, mut lse) = (nodes(), nodes(), nodes());
        let mut bad_row = u64::MAX;
        let row_config = row_launch(rows as u64);
        let row_grid = row_config.grid_dim.0.min(EMULATED_ROW_BLOCKS);
        let row_block = EMULATED_ROW_THREADS;
        let (bi, ti, u1i, vi) = (b as i64, t as i64, u1 as i64, v as i64);
        let blank = batch.blank as i32;
        let fused = i32::from(options.fused_log_softmax);
        // SAFETY: every buffer has the size the kernels index (rows nodes, b items, n scores).
        unsafe {
            (self.front)(
                row_grid,
                row_block,
                scores.as_ptr().cast(),
                bi,
                ti,
                u1i,
                vi,
                blank,
                fused,
                frames.as_ptr(),
                counts.as_ptr(),
                offsets.as_ptr(),
                labels.as_ptr(),
                blank_lp.as_mut_ptr(),
                emit_lp.as_mut_ptr(),
                lse.as_mut_ptr(),
                &mut bad_row,
            );
        }
        if bad_row != u64::MAX {
            let row = bad_row as usize;
            let coords = (row / (t * u1), row / u1 % t, row % u1);
            return Err(non_finite_logit(
                &scores[row * v..(row + 1) * v],
                input_name(options),
                coords,
            ));
        }
        let (mut alpha, mut beta, mut blank_arc, mut emit_arc) =
            (nodes(), nodes(), nodes(), nodes());
        let mut log_p = vec![0f64; b];
        let lattice_config = lattice_launch(b, t, u1);
        // SAFETY: as above.
        unsafe {
            (self.lattice)(
                lattice_config.grid_dim.0,
                lattice_config.block_dim.0,
                ti,
                u1i,
                frames.as_ptr(),
                counts.as_ptr(),
                blank_lp.as_ptr(),
                emit_lp.as_ptr(),
                alpha.as_mut_ptr(),
                beta.as_mut_ptr(),
                blank_arc.as_mut_ptr(),
                emit_arc.as_mut_ptr(),
                log_p.as_mut_ptr(),
            );
        }
        let losses: Vec<f64> = log_p
            .iter()
            .map(|&lp| match -lp {
                loss if loss == f64::INFINITY && options.zero_infinity => 0.0,
                loss => loss,
            })
            .collect();
        let weights = options.reduction.item_weights(1.0, b);
        let mut grad = Array4::from_elem((b, t, u1, v), F::from_f64(f64::NAN));
        // SAFETY: as above; `grad` has the scores' size.
        unsafe {
            (self.grad)(
                row_grid,
                row_block,
                scores.as_ptr().cast(),
                grad.as_mut_ptr().cast(),
                bi,
                ti,
                u1i,
                vi,
                blank,
                fused,
                1.0 + options.fastemit_lambda,
                options.clip_bound().unwrap_or(0.0),
                frames.as_ptr(),
                counts.as_ptr(),
                offsets.as_ptr(),
                labels.as_ptr(),
                lse.as_ptr(),
                blank_arc.as_ptr(),
                emit_arc.as_ptr(),
                log_p.as_ptr(),
                weights.as_ptr(),
            );
        }
        Ok(LossAndGrad {
            loss: options.reduction.reduce(&losses),
            losses,
            grad,
        })
    }
}

fn check_golden_cases<F: DeviceElement, I: FromI64>(
    emulator: &Emulator,
    to_scores: impl Fn(&rnnt_cases::Scores) -> Array4<F>,
    tolerance_for: impl Fn(&rnnt_cases::Case, Tolerance, bool) -> Tolerance,
) -> Vec<String> {
    let dir = golden_dir();
    let manifest = read_manifest(&dir).unwrap();
    let mut failures = Vec::new();
    for (name, entry) in &manifest {
        if entry.shape[..3].iter().product::<usize>() > EMULATED_MAX_ROWS {
            eprintln!("{name}: too large for the emulator, left to the GPU tests");
            continue;
        }
        let case = read_case(&dir.join(format!("{name}.npz"))).unwrap();
        let truth = case.truth.as_ref().unwrap();
        for (fused, packed) in [(true, false), (false, true)] {
            let stored = if fused {
                case.logits.as_ref().unwrap()
            } else {
                case.log_probs.as_ref().unwrap()
            };
            let input = from_case::<F, I>(&case, to_scores(stored), packed);
            let options = Options {
                blank: entry.blank,
                reduction: Reduction::Sum,
                fused_log_softmax: fused,
                ..Options::default()
            };
            let tolerance = tolerance_for(&case, entry.tolerance, fused);
            let label = format!("{name} [{} {}]", input_name(&options), F::DTYPE);
            let out = match emulator.loss_and_grad(&input.view(), &options) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{label}: {e}"));
                    continue;
                }
            };
            for (b, (&loss, &want)) in out.losses.iter().zip(&truth.losses).enumerate() {
                if !tolerance.loss_ok(loss, want) {
                    failures.push(format!("{label}: losses[{b}] = {loss}, truth {want}"));
                }
            }
            let want = if fused {
                &truth.grad_logits
            } else {
                &truth.grad_log_probs
            };
            let err = max_abs_diff(&out.grad, want);
            if err.is_nan() || err > tolerance.grad_atol {
                failures.push(format!("{label}: grad off by {err:e}"));
            }
        }
    }
    failures
}

#[test]
fn emulated_kernels_pass_every_golden_case_in_float32_and_float64() {
    let Some(f32_kernels) = Emulator::or_skip::<f32>() else {
        return;
    };
    let Some(f64_kernels) = Emulator::or_skip::<f64>() else {
        return;
    };
    let mut failures = check_golden_cases::<f32, i32>(
        &f32_kernels,
        |s| s.to_f32(),
        |case, stored, fused| {
            let stored_f32 = case.logits.as_ref().unwrap().dtype() == "float32";
            if fused && stored_f32 {
                stored
            } else {
                Tolerance::FLOAT32
            }
        },
    );
    failures.extend(check_golden_cases::<f64, i64>(
        &f64_kernels,
        |s| s.to_f64(),
        |_, _, _| Tolerance::FLOAT64,
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Worst loss and gradient gaps between the emulated kernels and the CPU backend.
fn gaps<F: DeviceElement>(
    emulator: &Emulator,
    input: &OwnedInput<F, i32>,
    options: &Options,
) -> (f64, f64) {
    let ours = emulator.loss_and_grad(&input.view(), options).unwrap();
    gaps_to_cpu(&ours, input, options)
}

#[test]
fn emulated_kernels_match_the_cpu_with_every_option() {
    let Some(f64_kernels) = Emulator::or_skip::<f64>() else {
        return;
    };
    let Some(f32_kernels) = Emulator::or_skip::<f32>() else {
        return;
    };
    let Some(bf16_kernels) = Emulator::or_skip::<half::bf16>() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(7);
    // V = 33 and 1003 leave unaligned rows (scalar path), 128 aligned ones (vector path).
    let shapes = [
        (1, 1, 0, 2),
        (3, 7, 4, 5),
        (5, 9, 6, 33),
        (3, 8, 5, 128),
        (2, 5, 3, 1003),
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        let (blank, options) = swept_options(i, shape.3, 0.3);
        let input = random_input(&mut rng, shape, blank, |x| x);
        let (loss, grad) = gaps(&f64_kernels, &input, &options);
        assert!(
            loss < 1e-10 && grad < 1e-12,
            "f64 {shape:?}: {loss:e} {grad:e}"
        );
        let input = random_input(&mut rng, shape, blank, |x| x as f32);
        let (loss, grad) = gaps(&f32_kernels, &input, &options);
        assert!(
            loss < 1e-4 && grad < 1e-6,
            "f32 {shape:?}: {loss:e} {grad:e}"
        );
        let input = random_input(&mut rng, shape, blank, half::bf16::from_f64);
        let (loss, grad) = gaps(&bf16_kernels, &input, &options);
        // One bfloat16 ulp of the largest gradient entries (≤ 1).
        assert!(
            loss < 1e-4 && grad <= 2f64.powi(-8),
            "bf16 {shape:?}: {loss:e} {grad:e}"
        );
    }
}

#[test]
fn emulated_kernels_handle_impossible_items_and_report_bad_values() {
    let Some(kernels) = Emulator::or_skip::<f64>() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(3);
    let mut input = random_input(&mut rng, (3, 5, 3, 6), 5, |x| x);
    input
        .logits
        .slice_mut(ndarray::s![1, .., .., 5])
        .fill(f64::NEG_INFINITY);
    for zero_infinity in [false, true] {
        let options = Options {
            blank: 5,
            zero_infinity,
            reduction: Reduction::None,
            ..Options::default()
        };
        let ours = kernels.loss_and_grad(&input.view(), &options).unwrap();
        let cpu = rnnt::loss_and_grad(&input.view(), &options).unwrap();
        assert_eq!(
            ours.losses[1],
            if zero_infinity { 0.0 } else { f64::INFINITY }
        );
        assert!(ours
            .grad
            .slice(ndarray::s![1, .., .., ..])
            .iter()
            .all(|&g| g == 0.0));
        assert!(max_abs_diff(&ours.grad, &cpu.grad) < 1e-12);
    }
    // A NaN in padding is ignored; NaN and +inf within the lengths are reported, first one first.
    let mut input = random_input(&mut rng, (2, 4, 2, 7), 6, |x| x);
    input.logit_lengths[1] = 3;
    input.target_lengths[1] = 2;
    input.logits[[1, 3, 0, 0]] = f64::NAN;
    let options = Options {
        blank: 6,
        ..Options::default()
    };
    assert!(kernels.loss_and_grad(&input.view(), &options).is_ok());
    input.logits[[1, 2, 1, 4]] = f64::NAN;
    input.logits[[1, 1, 2, 0]] = f64::INFINITY;
    let ours = kernels.loss_and_grad(&input.view(), &options).unwrap_err();
    assert_eq!(
        ours,
        rnnt::loss_and_grad(&input.view(), &options).unwrap_err()
    );
    assert!(matches!(&ours, Error::Value(m) if m.starts_with("logits[1][1][2][0] = inf")));
}
