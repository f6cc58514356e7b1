//! The loss on a GPU against the golden truth and the CPU backend. Every test prints
//! `skipped: <reason>` and passes where no GPU, driver or NVRTC is present.

mod against_cpu;
#[path = "../../rnnt/tests/common/mod.rs"]
mod common;

use against_cpu::{gaps_to_cpu, random_input, swept_options};
use common::{from_case, golden_dir, max_abs_diff, FromI64, OwnedInput};
use ndarray::{Array1, Array2, Array4};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rnnt::{Error, Options, Reduction};
use rnnt_cases::{read_case, read_manifest, Case, Tolerance};
use rnnt_cuda::{CudaContext, DeviceElement};

/// Device 0 with NVRTC, or `None` after printing why the test is skipped.
fn gpu_or_skip() -> Option<CudaContext> {
    let reason = match CudaContext::new(0) {
        Ok(gpu) => match rnnt_cuda::nvrtc::require_library() {
            Ok(()) => return Some(gpu),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    eprintln!("skipped: {reason}");
    None
}

/// Runs `input` on the GPU; returns the worst loss and gradient gaps to the CPU backend.
fn gpu_vs_cpu<F: DeviceElement>(
    gpu: &CudaContext,
    input: &OwnedInput<F, i32>,
    options: &Options,
) -> (f64, f64) {
    let ours = gpu
        .loss_and_grad(&input.view(), options)
        .unwrap_or_else(|e| panic!("GPU: {e}"));
    gaps_to_cpu(&ours, input, options)
}

fn check_golden<F: DeviceElement, I: FromI64>(
    gpu: &CudaContext,
    (name, case): (&str, &Case),
    scores: Array4<F>,
    (fused, packed): (bool, bool),
    tolerance: Tolerance,
) -> Vec<String> {
    let truth = case.truth.as_ref().expect("golden cases hold their truth");
    let input = from_case::<F, I>(case, scores, packed);
    let options = Options {
        blank: case.blank.expect("golden cases store blank"),
        reduction: Reduction::Sum,
        fused_log_softmax: fused,
        ..Options::default()
    };
    let label = format!(
        "{name} [{} {} {}]",
        if fused { "logits" } else { "log_probs" },
        F::DTYPE,
        if packed { "packed" } else { "padded" }
    );
    let out = match gpu.loss_and_grad(&input.view(), &options) {
        Ok(out) => out,
        Err(e) => return vec![format!("{label}: {e}")],
    };
    let mut failures = Vec::new();
    for (b, (&loss, &want)) in out.losses.iter().zip(&truth.losses).enumerate() {
        if !tolerance.loss_ok(loss, want) {
            failures.push(format!("{label}: losses[{b}] = {loss}, truth {want}"));
        }
    }
    let truth_grad = if fused {
        &truth.grad_logits
    } else {
        &truth.grad_log_probs
    };
    let grad_err = max_abs_diff(&out.grad, truth_grad);
    if grad_err > tolerance.grad_atol {
        failures.push(format!(
            "{label}: grad off by {grad_err:e} > {:e}",
            tolerance.grad_atol
        ));
    }
    for ((b, t, u, _), &g) in out.grad.indexed_iter() {
        let outside = t as i64 >= case.logit_lengths[b] || u as i64 > case.target_lengths[b];
        if outside && g.to_f64() != 0.0 {
            failures.push(format!("{label}: grad[{b}][{t}][{u}] = {g} in padding"));
            break;
        }
    }
    failures
}

#[test]
fn every_golden_case_on_the_gpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let dir = golden_dir();
    let manifest = read_manifest(&dir).expect("tests/golden/manifest.json must exist");
    let mut failures = Vec::new();
    for (name, entry) in &manifest {
        let case = read_case(&dir.join(format!("{name}.npz"))).unwrap();
        let logits = case.logits.as_ref().expect("golden cases hold logits");
        let log_probs = case
            .log_probs
            .as_ref()
            .expect("golden cases hold log_probs");
        let f32_tol = if logits.dtype() == "float32" {
            entry.tolerance
        } else {
            Tolerance::FLOAT32
        };
        for packed in [false, true] {
            let case = (name.as_str(), &case);
            failures.extend(check_golden::<f32, i32>(
                &gpu,
                case,
                logits.to_f32(),
                (true, packed),
                f32_tol,
            ));
            failures.extend(check_golden::<f64, i64>(
                &gpu,
                case,
                logits.to_f64(),
                (true, packed),
                Tolerance::FLOAT64,
            ));
            failures.extend(check_golden::<f64, i32>(
                &gpu,
                case,
                log_probs.to_f64(),
                (false, packed),
                Tolerance::FLOAT64,
            ));
            failures.extend(check_golden::<f32, i64>(
                &gpu,
                case,
                log_probs.to_f32(),
                (false, packed),
                Tolerance::FLOAT32,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn gpu_agrees_with_cpu_on_random_ragged_batches_and_options() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = StdRng::seed_from_u64(7);
    let shapes = [
        (1, 1, 0, 2),
        (3, 7, 4, 5),
        (5, 20, 9, 33),
        (4, 33, 17, 128),
        (2, 64, 40, 1000),
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        let (blank, options) = swept_options(i, shape.3, 0.01);
        let f64_input = random_input(&mut rng, shape, blank, |x| x);
        let (loss_gap, grad_gap) = gpu_vs_cpu(&gpu, &f64_input, &options);
        assert!(
            loss_gap < 1e-9 && grad_gap < 1e-9,
            "f64 {shape:?}: {loss_gap:e} {grad_gap:e}"
        );
        let f32_input = random_input(&mut rng, shape, blank, |x| x as f32);
        let (loss_gap, grad_gap) = gpu_vs_cpu(&gpu, &f32_input, &options);
        assert!(
            loss_gap < 1e-3 && grad_gap < 1e-4,
            "f32 {shape:?}: {loss_gap:e} {grad_gap:e}"
        );
        let bf16_input = random_input(&mut rng, shape, blank, half::bf16::from_f64);
        let (loss_gap, grad_gap) = gpu_vs_cpu(&gpu, &bf16_input, &options);
        assert!(
            loss_gap < 1e-3 && grad_gap < 1e-2,
            "bf16 {shape:?}: {loss_gap:e} {grad_gap:e}"
        );
        let f16_input = random_input(&mut rng, shape, blank, half::f16::from_f64);
        let (loss_gap, grad_gap) = gpu_vs_cpu(&gpu, &f16_input, &options);
        assert!(
            loss_gap < 1e-3 && grad_gap <= 2f64.powi(-9),
            "f16 {shape:?}: {loss_gap:e} {grad_gap:e}"
        );
    }
}

#[test]
fn large_vocabulary_has_no_limit() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = StdRng::seed_from_u64(11);
    let input = random_input(&mut rng, (3, 12, 6, 5000), 4999, |x| x as f32);
    let (loss_gap, grad_gap) = gpu_vs_cpu(&gpu, &input, &Options::default());
    assert!(
        loss_gap < 1e-3 && grad_gap < 1e-5,
        "{loss_gap:e} {grad_gap:e}"
    );
    // A vocabulary that is not a multiple of the vector width takes the unaligned row path.
    let input = random_input(&mut rng, (2, 9, 5, 5003), 0, |x| x as f32);
    let (loss_gap, grad_gap) = gpu_vs_cpu(&gpu, &input, &Options::default());
    assert!(
        loss_gap < 1e-3 && grad_gap < 1e-5,
        "{loss_gap:e} {grad_gap:e}"
    );
}

#[test]
fn impossible_items_and_zero_infinity_match_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    let mut input = random_input(&mut rng, (3, 5, 3, 6), 5, |x| x);
    // Item 1: blank masked everywhere, so no path can end; its loss is +inf.
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
        let ours = gpu.loss_and_grad(&input.view(), &options).unwrap();
        let cpu = rnnt::loss_and_grad(&input.view(), &options).unwrap();
        assert_eq!(
            ours.losses[1],
            if zero_infinity { 0.0 } else { f64::INFINITY }
        );
        assert_eq!(ours.losses[1], cpu.losses[1]);
        assert!(ours
            .grad
            .slice(ndarray::s![1, .., .., ..])
            .iter()
            .all(|&g| g == 0.0));
        assert!(ours.grad.iter().all(|g| g.is_finite()));
    }
}

#[test]
fn non_finite_and_invalid_inputs_give_the_cpu_messages() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = StdRng::seed_from_u64(5);
    let mut input = random_input(&mut rng, (2, 4, 2, 7), 6, |x| x as f32);
    input.logit_lengths[1] = 4;
    input.target_lengths[1] = 2;
    input.logits[[1, 3, 1, 4]] = f32::NAN;
    input.logits[[1, 2, 2, 0]] = f32::INFINITY;
    let options = Options {
        blank: 6,
        ..Options::default()
    };
    let ours = gpu.loss_and_grad(&input.view(), &options).unwrap_err();
    let cpu = rnnt::loss_and_grad(&input.view(), &options).unwrap_err();
    assert_eq!(ours, cpu);
    assert!(matches!(&ours, Error::Value(m) if m.starts_with("logits[1][2][2][0] = inf")));
    input.logits.fill(0.0);
    input.target_lengths[0] = 9;
    let ours = gpu.loss_and_grad(&input.view(), &options).unwrap_err();
    assert_eq!(
        ours,
        rnnt::loss_and_grad(&input.view(), &options).unwrap_err()
    );
}

#[test]
fn device_pointer_api_runs_on_a_caller_stream() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut rng = StdRng::seed_from_u64(9);
    let input = random_input(&mut rng, (4, 30, 10, 64), 63, |x| x as f32);
    let options = Options {
        blank: 63,
        reduction: Reduction::Sum,
        ..Options::default()
    };
    let cpu = rnnt::loss_and_grad(&input.view(), &options).unwrap();
    let stream = gpu.device().new_stream().unwrap();
    let scores = stream.clone_htod(input.logits.as_slice().unwrap()).unwrap();
    let grad = stream.alloc_zeros::<f32>(scores.len()).unwrap();
    let (scores_ptr, _s) = rnnt_cuda::cudarc::driver::DevicePtr::device_ptr(&scores, &stream);
    let (grad_ptr, _g) = rnnt_cuda::cudarc::driver::DevicePtr::device_ptr(&grad, &stream);
    let dims = input.logits.dim();
    // SAFETY: both buffers live on `stream` for the whole test, hold the batch's N floats and do
    // not overlap; the stream outlives the backend.
    let (backend, device_scores, device_grad) = unsafe {
        (
            gpu.backend_on_stream(stream.cu_stream() as u64),
            rnnt_cuda::DeviceScores::<f32>::new(scores_ptr, dims),
            rnnt_cuda::DeviceGrad::<f32>::new(grad_ptr, dims),
        )
    };
    let labels = rnnt::Labels {
        targets: rnnt::Targets::Padded(input.padded.as_ref().unwrap().view()),
        logit_lengths: input.logit_lengths.view(),
        target_lengths: input.target_lengths.view(),
    };
    let forward = rnnt::forward_with(&backend, device_scores, &labels, &options).unwrap();
    let weights = vec![0.5; 4];
    rnnt::backward_with(&backend, device_scores, &forward, &weights, device_grad).unwrap();
    let grad = stream.clone_dtoh(&grad).unwrap();
    for (b, (&ours, &want)) in forward.losses().iter().zip(&cpu.losses).enumerate() {
        assert!(
            (ours - want).abs() < 1e-3,
            "losses[{b}] = {ours}, CPU {want}"
        );
    }
    let worst = grad
        .iter()
        .zip(cpu.grad.iter())
        .map(|(&a, &b)| (f64::from(a) - 0.5 * f64::from(b)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "gradient off by {worst:e}");
    // A backward call with another dtype or shape is refused.
    // SAFETY: the call is refused before any device work.
    let (wrong_scores, wrong_grad) = unsafe {
        (
            rnnt_cuda::DeviceScores::<f64>::new(scores_ptr, dims),
            rnnt_cuda::DeviceGrad::<f64>::new(grad_ptr, dims),
        )
    };
    let wrong = rnnt::backward_with(&backend, wrong_scores, &forward, &weights, wrong_grad);
    assert!(matches!(wrong, Err(Error::DType(_))));
}

#[test]
fn more_than_2_pow_31_elements() {
    let Some(gpu) = gpu_or_skip() else { return };
    // (1, 1000, 430, 5000) zero logits: 2.15e9 elements, 8.6 GB per f32 array.
    let (frames, positions, vocab) = (1000usize, 430usize, 5000usize);
    let n = frames * positions * vocab;
    let (free, _) = gpu.device().mem_get_info().unwrap();
    if free < 2 * n * 4 + (1 << 30) {
        eprintln!("skipped: needs {} GB of free GPU memory", (2 * n * 4) >> 30);
        return;
    }
    let stream = gpu.device().default_stream();
    let scores = stream.alloc_zeros::<f32>(n).unwrap();
    let grad = stream.alloc_zeros::<f32>(n).unwrap();
    let (scores_ptr, _s) = rnnt_cuda::cudarc::driver::DevicePtr::device_ptr(&scores, &stream);
    let (grad_ptr, _g) = rnnt_cuda::cudarc::driver::DevicePtr::device_ptr(&grad, &stream);
    let labels_count = positions - 1;
    let targets = Array2::<i32>::zeros((1, labels_count));
    let (logit_lengths, target_lengths) = (
        Array1::from_elem(1, frames as i32),
        Array1::from_elem(1, labels_count as i32),
    );
    let labels = rnnt::Labels {
        targets: rnnt::Targets::Padded(targets.view()),
        logit_lengths: logit_lengths.view(),
        target_lengths: target_lengths.view(),
    };
    let shape = (1, frames, positions, vocab);
    // SAFETY: both buffers hold N floats on the default stream, do not overlap and live until
    // the end of the test.
    let (device_scores, device_grad) = unsafe {
        (
            rnnt_cuda::DeviceScores::<f32>::new(scores_ptr, shape),
            rnnt_cuda::DeviceGrad::<f32>::new(grad_ptr, shape),
        )
    };
    let backend = gpu.backend();
    let options = Options::default();
    let forward = rnnt::forward_with(&backend, device_scores, &labels, &options).unwrap();
    // Uniform probabilities: P = C(T−1+U, U) · V^−(T+U).
    let (t, u) = ((frames - 1) as f64, labels_count as f64);
    let ln_paths = ln_gamma(t + u + 1.0) - ln_gamma(t + 1.0) - ln_gamma(u + 1.0);
    let want = (t + 1.0 + u) * (vocab as f64).ln() - ln_paths;
    let got = forward.losses()[0];
    assert!(
        (got - want).abs() < 1e-3 * want.abs().max(1.0),
        "loss {got}, want {want}"
    );
    rnnt::backward_with(&backend, device_scores, &forward, &[1.0], device_grad).unwrap();
    // The last row lies past element 2^31: its gradient sums to ~0 like every valid row.
    let last = grad.slice(n - vocab..n);
    let row = stream.clone_dtoh(&last).unwrap();
    let sum: f64 = row.iter().map(|&g| f64::from(g)).sum();
    assert!(sum.abs() < 1e-4, "row sum {sum}");
    assert!(row.iter().any(|&g| g != 0.0));
}

/// ln Γ(x) for x ≥ 1 by Stirling's series (ample for x in the hundreds).
fn ln_gamma(x: f64) -> f64 {
    if x < 10.0 {
        return ln_gamma(x + 1.0) - x.ln();
    }
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x.powi(3))
}

#[test]
fn bench_helpers_measure_bandwidth_and_loss_time() {
    let Some(gpu) = gpu_or_skip() else { return };
    let bandwidth = rnnt_cuda::bench::copy_bandwidth(&gpu, 256 << 20, 3).unwrap();
    assert!(
        bandwidth > 1e10,
        "{bandwidth} B/s is implausibly low for a GPU"
    );
    let case = rnnt_cases::synthetic::batch(
        rnnt_cases::synthetic::Shape {
            batch: 4,
            frames: 50,
            labels: 10,
            vocab: 64,
        },
        0,
    );
    let input = from_case::<f32, i64>(&case, case.logits.as_ref().unwrap().to_f32(), false);
    let options = Options {
        blank: case.blank.unwrap(),
        ..Options::default()
    };
    let times = rnnt_cuda::bench::time_loss_and_grad(&gpu, &input.view(), &options, 3).unwrap();
    assert_eq!(times.len(), 3);
    eprintln!(
        "copy bandwidth {:.0} GB/s; (4, 50, 10, 64) f32 loss+grad best {:.3} ms",
        bandwidth / 1e9,
        times.iter().copied().fold(f64::INFINITY, f64::min) * 1e3
    );
}
