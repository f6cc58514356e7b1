//! The loss and alignment checks: every fast path against the float64 reference.
//!
//! **Tolerances.** Each element type has a base tolerance (that of the property tests:
//! 1e-9 for f64, 2e-5 for f32, 1e-3 for f16, 8e-3 for bf16), relative to 1 + |loss| for losses,
//! and for gradients to 1 + the largest of the row's |gradient| and 2·w_b·(1 + λ), the size of
//! the terms an element is the difference of (FastEmit's λ scales them). To it is added what the
//! input's own conditioning allows: a log-probability computed from values of magnitude M
//! carries an error of about M·ε (ε that of the arithmetic: f32 for f32 input, f64 otherwise),
//! and a path sums T_b + U_b of them. Where M·ε is large (logits of 1e30 in f32) the comparison
//! only asks for finite results. Where a path's sum can overflow f64 (values near f64::MAX), ln P
//! is undefined in f64 and the item is not compared; nor is anything where the reference is not
//! finite. The fast paths must return without a panic all the same.

use ndarray::ArrayView4;
use rnnt::reference::ReferenceOutput;
use rnnt::{Error, Float, LossInput, Options};

use crate::bytes::Bytes;
use crate::input::{Call, Fault, FromI64, GradBuffer};

/// Decodes a loss call from `data` and checks every CPU entry point on it against
/// [`rnnt::reference::loss_and_grad`]: the same error where the reference fails, the same
/// losses and gradient (within tolerance) where it succeeds. Panics on a mismatch.
pub fn check_loss(data: &[u8]) {
    with_types(data, Check::Loss);
}

/// Decodes a call as [`check_loss`] does and checks [`rnnt::align`] on it: the error of
/// [`rnnt::forward`] where that fails; otherwise, per item, ln P as the reference's, node
/// occupancies that sum to 1 on every anti-diagonal, emission posteriors that sum to 1 per label,
/// and a best path that is a path of the lattice, whose score is its log-probability and is the
/// best. Panics on a mismatch.
pub fn check_align(data: &[u8]) {
    with_types(data, Check::Align);
}

/// Which check to run on a decoded call.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// [`check_loss`].
    Loss,
    /// [`check_align`].
    Align,
}

/// Decodes the element type, the index type and a call from `data`, and runs `check` on it.
fn with_types(data: &[u8], check: Check) {
    let mut bytes = Bytes::new(data);
    let (dtype, wide_index) = (bytes.below(4), bytes.flag());
    let call = Call::decode(&mut bytes);
    fn run<F: Float, I: FromI64>(call: &Call, check: Check) {
        let arrays = call.arrays::<F, I>();
        match check {
            Check::Loss => loss_against_reference(&arrays.input(), &call.options, call.fault),
            Check::Align => align_against_reference(&arrays.input(), &call.options),
        }
    }
    match (dtype, wide_index) {
        (0, false) => run::<f32, i32>(&call, check),
        (0, true) => run::<f32, i64>(&call, check),
        (1, false) => run::<f64, i32>(&call, check),
        (1, true) => run::<f64, i64>(&call, check),
        (2, false) => run::<half::f16, i32>(&call, check),
        (2, true) => run::<half::f16, i64>(&call, check),
        (_, false) => run::<half::bf16, i32>(&call, check),
        (_, true) => run::<half::bf16, i64>(&call, check),
    }
}

/// The base tolerance of an element type (see the module documentation).
fn base_tolerance<F: Float>() -> f64 {
    match F::DTYPE {
        "float64" => 1e-9,
        "float32" => 2e-5,
        "float16" => 1e-3,
        _ => 8e-3,
    }
}

/// The relative error of the arithmetic the row kernels do for `F`.
fn arithmetic_epsilon<F: Float>() -> f64 {
    if F::DTYPE == "float32" {
        f64::from(f32::EPSILON)
    } else {
        f64::EPSILON
    }
}

/// The absolute error the input's conditioning allows on ln P of item `b`:
/// 4·(T_b + U_b + 1)·M·ε with M the largest finite |value| inside the item's lengths; and
/// whether a path's sum of such values can overflow f64 (M near f64::MAX), which leaves ln P,
/// occupancies and gradient undefined.
fn conditioning<F: Float>(
    logits: &ArrayView4<'_, F>,
    b: usize,
    frames: usize,
    labels: usize,
) -> (f64, bool) {
    let largest = logits
        .slice(ndarray::s![b, ..frames, ..=labels, ..])
        .iter()
        .map(|x| x.to_f64().abs())
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    let terms = (frames + labels + 1) as f64;
    (
        4.0 * terms * largest * arithmetic_epsilon::<F>(),
        terms * largest >= f64::MAX / 4.0,
    )
}

/// Per item, the loss tolerance: base·(1 + |reference|) + the conditioning term.
struct Tolerances {
    /// Absolute tolerance of each item's loss.
    losses: Vec<f64>,
    /// The base tolerance, before conditioning.
    base: f64,
    /// The conditioning term of each item.
    conditioning: Vec<f64>,
    /// Per item, whether its sums can overflow f64: nothing is compared then.
    overflows: Vec<bool>,
    /// Per item, the largest term a gradient element is a difference of, w_b·(1 + λ), doubled.
    terms: Vec<f64>,
}

impl Tolerances {
    fn new<F: Float, I: rnnt::Index>(
        input: &LossInput<'_, F, I>,
        options: &Options,
        reference: &ReferenceOutput,
        batch: &rnnt::Batch,
    ) -> Self {
        let base = base_tolerance::<F>();
        let (conditioning, overflows): (Vec<f64>, Vec<bool>) = (0..batch.batch_size)
            .map(|b| conditioning(&input.logits, b, batch.frames(b), batch.labels(b).len()))
            .unzip();
        let losses = reference
            .losses
            .iter()
            .zip(&conditioning)
            .map(|(r, c)| base * (1.0 + r.abs()) + c)
            .collect();
        let terms = options
            .reduction
            .item_weights(1.0, batch.batch_size)
            .iter()
            .map(|w| 2.0 * (1.0 + options.fastemit_lambda) * w.abs())
            .collect();
        Tolerances {
            losses,
            base,
            conditioning,
            overflows,
            terms,
        }
    }
}

/// The validated batch of `input` (the reference succeeded, so it validates).
fn batch_of<F: Float, I: rnnt::Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
) -> rnnt::Batch {
    rnnt::Batch::new(input, options.blank, rnnt::loss::input_name(options))
        .expect("the reference validated it")
}

/// The checks of [`check_loss`] on a typed input, with `fault` in the caller's gradient buffers.
pub(crate) fn loss_against_reference<F: Float, I: rnnt::Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
    fault: Fault,
) {
    let dims = input.logits.dim();
    let reference = rnnt::reference::loss_and_grad(input, options);
    let one_shot = rnnt::loss_and_grad(input, options);
    let forward = rnnt::forward(input, options);
    let mut into_grad = GradBuffer::<F>::new(dims, fault);
    let into = rnnt::loss_and_grad_into(input, options, into_grad.view_mut());
    let reference = match reference {
        Err(error) => {
            // The fast paths check the layout before the options, the reference after them; a
            // faulty gradient buffer is reported first. Otherwise the same error.
            let strided = !input.logits.is_standard_layout();
            let same_error = |path: &str, fast: Option<Error>, buffer_fault: bool| match fast {
                Some(Error::Layout(_)) if strided => {}
                Some(Error::Shape(_) | Error::Layout(_)) if buffer_fault => {}
                fast => assert_eq!(fast, Some(error.clone()), "{path}"),
            };
            same_error("loss_and_grad", one_shot.err(), false);
            same_error("forward", forward.err(), false);
            same_error("loss_and_grad_into", into.err(), !into_grad.accepted(dims));
            return;
        }
        Ok(reference) => reference,
    };
    let one_shot = one_shot.expect("loss_and_grad fails where the reference succeeds");
    let forward = forward.expect("forward fails where the reference succeeds");
    let batch = batch_of(input, options);
    let tolerances = Tolerances::new(input, options, &reference, &batch);
    assert_close(
        "loss_and_grad",
        &one_shot.losses,
        one_shot.loss,
        &one_shot.grad.view(),
        &reference,
        &tolerances,
    );
    assert_losses(
        "forward",
        forward.losses(),
        forward.loss(),
        &reference,
        &tolerances,
    );
    let weights = options.reduction.item_weights(1.0, batch.batch_size);
    let mut backward_grad = GradBuffer::<F>::new(dims, fault);
    let backward = rnnt::backward(input, &forward, &weights, backward_grad.view_mut());
    if !into_grad.accepted(dims) {
        assert!(
            matches!(into, Err(Error::Shape(_) | Error::Layout(_))),
            "loss_and_grad_into into a faulty buffer: {into:?}"
        );
        assert!(
            matches!(backward, Err(Error::Shape(_) | Error::Layout(_))),
            "backward into a faulty buffer: {backward:?}"
        );
        return;
    }
    let into = into.expect("loss_and_grad_into fails where the reference succeeds");
    backward.expect("backward fails where the reference succeeds");
    assert_close(
        "loss_and_grad_into",
        into.losses(),
        into.loss(),
        &into_grad.view_mut().view(),
        &reference,
        &tolerances,
    );
    assert_close(
        "forward + backward",
        forward.losses(),
        forward.loss(),
        &backward_grad.view_mut().view(),
        &reference,
        &tolerances,
    );
}

/// Checks one path's losses, reduced loss and gradient against the reference.
fn assert_close<F: Float>(
    path: &str,
    losses: &[f64],
    loss: f64,
    grad: &ArrayView4<'_, F>,
    reference: &ReferenceOutput,
    tolerances: &Tolerances,
) {
    assert_losses(path, losses, loss, reference, tolerances);
    assert_grad(path, grad, reference, tolerances);
}

/// Whether a reference loss can be compared: finite, or +inf (an impossible item).
fn comparable(loss: f64) -> bool {
    loss.is_finite() || loss == f64::INFINITY
}

/// Checks one path's losses and reduced loss against the reference.
fn assert_losses(
    path: &str,
    losses: &[f64],
    loss: f64,
    reference: &ReferenceOutput,
    tolerances: &Tolerances,
) {
    assert_eq!(
        losses.len(),
        reference.losses.len(),
        "{path}: number of losses"
    );
    for (b, (&got, &want)) in losses.iter().zip(&reference.losses).enumerate() {
        if !comparable(want) || tolerances.overflows[b] {
            continue;
        }
        assert!(
            got == want || (want.is_finite() && (got - want).abs() <= tolerances.losses[b]),
            "{path}: losses[{b}] = {got}, reference {want} (tolerance {})",
            tolerances.losses[b]
        );
    }
    if reference.losses.iter().all(|&r| comparable(r)) && !tolerances.overflows.contains(&true) {
        let want = reference.loss;
        let tolerance: f64 = tolerances.losses.iter().sum();
        assert!(
            loss == want || (want.is_finite() && (loss - want).abs() <= tolerance),
            "{path}: loss = {loss}, reference {want} (tolerance {tolerance})"
        );
    }
}

/// Checks one path's gradient against the reference, row by row.
fn assert_grad<F: Float>(
    path: &str,
    grad: &ArrayView4<'_, F>,
    reference: &ReferenceOutput,
    tolerances: &Tolerances,
) {
    assert_eq!(grad.dim(), reference.grad.dim(), "{path}: gradient shape");
    let (batch, frames, positions, _) = grad.dim();
    for b in 0..batch {
        if !comparable(reference.losses[b]) || tolerances.overflows[b] {
            continue;
        }
        for t in 0..frames {
            for u in 0..positions {
                let want = reference.grad.slice(ndarray::s![b, t, u, ..]);
                let got = grad.slice(ndarray::s![b, t, u, ..]);
                // A gradient element is a difference of terms up to w_b·(1 + λ) (softmax times
                // the node's scaled occupancy, minus an arc's), whatever the result's size.
                let terms = tolerances.terms[b];
                let scale = want
                    .iter()
                    .map(|r| r.abs())
                    .filter(|r| r.is_finite())
                    .fold(terms, f64::max);
                let tolerance = (tolerances.base + tolerances.conditioning[b]) * (1.0 + scale);
                for (k, (&g, &r)) in got.iter().zip(&want).enumerate() {
                    // Nothing to compare where the reference overflowed or F cannot hold it.
                    if !F::from_f64(r).to_f64().is_finite() {
                        continue;
                    }
                    let g = g.to_f64();
                    assert!(
                        g.is_finite() && (g - r).abs() <= tolerance,
                        "{path}: grad[{b}][{t}][{u}][{k}] = {g}, reference {r} (tolerance {tolerance})"
                    );
                }
            }
        }
    }
}

/// The checks of [`check_align`] on a typed input.
fn align_against_reference<F: Float, I: rnnt::Index>(
    input: &LossInput<'_, F, I>,
    options: &Options,
) {
    let aligned = rnnt::align(input, options);
    let forward = rnnt::forward(input, options);
    let alignments = match forward {
        Err(error) => {
            assert_eq!(aligned.err(), Some(error), "align");
            return;
        }
        Ok(_) => aligned.expect("align fails where forward succeeds"),
    };
    // ln P of every item, impossible ones included, from the reference.
    let plain = Options {
        reduction: rnnt::Reduction::None,
        zero_infinity: false,
        clamp: -1.0,
        fastemit_lambda: 0.0,
        ..*options
    };
    let reference = rnnt::reference::loss_and_grad(input, &plain)
        .expect("the reference fails where forward succeeds");
    let batch = batch_of(input, options);
    let tolerances = Tolerances::new(input, options, &reference, &batch);
    assert_eq!(alignments.len(), batch.batch_size, "one alignment per item");
    for (b, alignment) in alignments.iter().enumerate() {
        let want = -reference.losses[b];
        if want.is_nan() || want == f64::INFINITY || tolerances.overflows[b] {
            continue;
        }
        let (frames, labels) = (batch.frames(b), batch.labels(b));
        // A best path scores at most ln(number of paths) below ln P: a few units here.
        let tolerance = tolerances.losses[b] + tolerances.base * (frames + labels.len()) as f64;
        assert_eq!(alignment.labels, labels, "item {b}: labels");
        let log_p = alignment.log_p;
        assert!(
            log_p == want || (want.is_finite() && (log_p - want).abs() <= tolerance),
            "item {b}: ln P = {log_p}, reference {want}"
        );
        let possible = want > f64::NEG_INFINITY;
        let occupancy = &alignment.occupancy;
        assert_eq!(
            occupancy.dim(),
            (frames, labels.len() + 1),
            "item {b}: occupancy shape"
        );
        assert_eq!(
            alignment.emit_posterior.dim(),
            (labels.len(), frames),
            "item {b}: posterior shape"
        );
        let unit = tolerances.base + tolerances.conditioning[b];
        for diagonal in 0..frames + labels.len() {
            let sum: f64 = occupancy
                .indexed_iter()
                .filter(|((t, u), _)| t + u == diagonal)
                .map(|(_, p)| *p)
                .sum();
            let want = if possible { 1.0 } else { 0.0 };
            assert!(
                (sum - want).abs() <= unit * (frames + labels.len()) as f64,
                "item {b}: occupancy of anti-diagonal {diagonal} sums to {sum}"
            );
        }
        for (j, row) in alignment.emit_posterior.rows().into_iter().enumerate() {
            let sum = row.sum();
            let want = if possible { 1.0 } else { 0.0 };
            assert!(
                (sum - want).abs() <= unit * frames as f64,
                "item {b}: posterior of label {j} sums to {sum}"
            );
        }
        let log_probs = |t: usize, u: usize| log_probs_f64(input, options, (b, t, u));
        match &alignment.best_path {
            None => assert!(!possible, "item {b}: no best path, but ln P = {want}"),
            Some(_) if !possible => panic!("item {b}: a best path, but ln P = {want}"),
            Some(path) => {
                let score = path_score(path, &log_probs, labels, batch.blank, frames, b);
                let best = viterbi(&log_probs, frames, labels, batch.blank);
                assert!(
                    path.score == score || (path.score - score).abs() <= tolerance,
                    "item {b}: the best path scores {} but its arcs sum to {score}",
                    path.score
                );
                assert!(
                    path.score == best || (path.score - best).abs() <= tolerance,
                    "item {b}: the best path scores {} but the best is {best}",
                    path.score
                );
            }
        }
    }
}

/// The log-probabilities of row (b, t, u) in f64, as the reference computes them.
fn log_probs_f64<F: Float, I>(
    input: &LossInput<'_, F, I>,
    options: &Options,
    (b, t, u): (usize, usize, usize),
) -> Vec<f64> {
    let row: Vec<f64> = input
        .logits
        .slice(ndarray::s![b, t, u, ..])
        .iter()
        .map(|x| x.to_f64())
        .collect();
    if !options.fused_log_softmax {
        return row;
    }
    let lse = row.iter().fold(f64::NEG_INFINITY, |acc, &x| {
        rnnt::logspace::log_add_exp(acc, x)
    });
    row.iter()
        .map(|&x| {
            if lse == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                x - lse
            }
        })
        .collect()
}

/// The best path's log-probability by the max-plus recursion, final blank included.
fn viterbi(
    log_probs: &dyn Fn(usize, usize) -> Vec<f64>,
    frames: usize,
    labels: &[u32],
    blank: usize,
) -> f64 {
    let positions = labels.len() + 1;
    let mut best = vec![vec![f64::NEG_INFINITY; positions]; frames];
    for t in 0..frames {
        for u in 0..positions {
            best[t][u] = if (t, u) == (0, 0) {
                0.0
            } else {
                let from_blank = if t > 0 {
                    best[t - 1][u] + log_probs(t - 1, u)[blank]
                } else {
                    f64::NEG_INFINITY
                };
                let from_emit = if u > 0 {
                    best[t][u - 1] + log_probs(t, u - 1)[labels[u - 1] as usize]
                } else {
                    f64::NEG_INFINITY
                };
                from_blank.max(from_emit)
            };
        }
    }
    best[frames - 1][positions - 1] + log_probs(frames - 1, positions - 1)[blank]
}

/// Checks that `path` is a path of the lattice (from (0, 0) to (T_b−1, U_b) by unit steps, each
/// arc the step it takes, the emission frames those of its emission arcs) and returns the sum of
/// its arcs' log-probabilities.
fn path_score(
    path: &rnnt::BestPath,
    log_probs: &dyn Fn(usize, usize) -> Vec<f64>,
    labels: &[u32],
    blank: usize,
    frames: usize,
    b: usize,
) -> f64 {
    let positions = labels.len() + 1;
    assert_eq!(
        path.nodes.len(),
        frames + positions - 1,
        "item {b}: path length"
    );
    assert_eq!(
        path.arcs.len(),
        path.nodes.len(),
        "item {b}: one arc per node"
    );
    assert_eq!(
        path.nodes.first(),
        Some(&(0, 0)),
        "item {b}: the path starts at (0, 0)"
    );
    assert_eq!(
        path.nodes.last(),
        Some(&(frames - 1, positions - 1)),
        "item {b}: the path ends at (T-1, U)"
    );
    assert_eq!(
        path.arcs.last(),
        Some(&rnnt::ArcKind::Blank),
        "item {b}: the path ends with a blank"
    );
    assert_eq!(
        path.emit_frames.len(),
        labels.len(),
        "item {b}: one emission frame per label"
    );
    let mut score = 0.0;
    for (i, (&(t, u), &arc)) in path.nodes.iter().zip(&path.arcs).enumerate() {
        let row = log_probs(t, u);
        score += match arc {
            rnnt::ArcKind::Blank => row[blank],
            rnnt::ArcKind::Emit => {
                assert_eq!(
                    path.emit_frames[u], t,
                    "item {b}: emission frame of label {u}"
                );
                row[labels[u] as usize]
            }
        };
        if let Some(&next) = path.nodes.get(i + 1) {
            let step = match arc {
                rnnt::ArcKind::Blank => (t + 1, u),
                rnnt::ArcKind::Emit => (t, u + 1),
            };
            assert_eq!(next, step, "item {b}: arc {i} of the path");
        }
    }
    score
}
