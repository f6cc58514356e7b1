//! The variants' fast paths against their reference, the reference against brute-force path
//! enumeration and finite differences, strided heads against contiguous ones, every dtype, and
//! one test per kind of bad input.

use half::{bf16, f16};
use ndarray::{s, Array1, Array2, Array4, Axis};
use proptest::prelude::*;
use rnnt::variant::{self, Topology, Variant, VariantGrad, VariantInput};
use rnnt::{Error, Float, Options, Reduction, Targets};

/// A random batch: token and duration logits, labels, lengths.
#[derive(Debug, Clone)]
struct Batch {
    tokens: Array4<f64>,
    durations: Array4<f64>,
    targets: Array2<i64>,
    frames: Array1<i64>,
    lengths: Array1<i64>,
    blank: i64,
}

/// A tiny deterministic generator (xorshift), so that cases do not depend on a crate's stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn normal(&mut self) -> f64 {
        // Irwin–Hall: close enough to normal for test logits.
        (0..12)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 6.0
    }
}

/// A batch of B items of at most T frames and U labels over V symbols; `min_frames` per label
/// (1 for one symbol per frame) keeps items possible where the topology needs it.
fn batch(
    seed: u64,
    (b, t, u, v): (usize, usize, usize, usize),
    d: usize,
    blank: usize,
    min_frames: usize,
) -> Batch {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let tokens = Array4::from_shape_fn((b, t, u + 1, v), |_| 2.0 * rng.normal());
    let durations = Array4::from_shape_fn((b, t, u + 1, d), |_| rng.normal());
    let mut frames = Array1::zeros(b);
    let mut lengths = Array1::zeros(b);
    // Labels avoid the blank and the symbols just below it (where big blanks sit).
    let reserved = blank.saturating_sub(3)..=blank;
    let labels: Vec<i64> = (0..v)
        .filter(|k| !reserved.contains(k))
        .map(|k| k as i64)
        .collect();
    let targets = Array2::from_shape_fn((b, u.max(1)), |_| labels[rng.below(labels.len())]);
    for i in 0..b {
        lengths[i] = if i == 0 { u } else { rng.below(u + 1) } as i64;
        let least = (lengths[i] as usize * min_frames).max(1);
        frames[i] = if i == 0 {
            t
        } else {
            least + rng.below(t + 1 - least.min(t))
        }
        .min(t)
        .max(least) as i64;
    }
    Batch {
        tokens,
        durations,
        targets,
        frames,
        lengths,
        blank: blank as i64,
    }
}

fn input<'a, F: Float>(
    batch: &'a Batch,
    tokens: &'a Array4<F>,
    durations: Option<&'a Array4<F>>,
) -> VariantInput<'a, F, i64> {
    VariantInput {
        logits: tokens.view(),
        duration_logits: durations.map(|d| d.view()),
        targets: Targets::Padded(batch.targets.view()),
        logit_lengths: batch.frames.view(),
        target_lengths: batch.lengths.view(),
    }
}

fn options(batch: &Batch) -> Options {
    Options {
        blank: batch.blank,
        reduction: Reduction::Sum,
        ..Options::default()
    }
}

fn variants() -> Vec<Variant> {
    let v = |topology, sigma, delay_penalty| Variant {
        topology,
        sigma,
        delay_penalty,
    };
    vec![
        v(
            Topology::Tdt {
                durations: vec![0, 1, 2, 3, 4],
            },
            0.0,
            0.0,
        ),
        v(
            Topology::Tdt {
                durations: vec![1, 2, 4],
            },
            0.05,
            0.0,
        ),
        v(
            Topology::Tdt {
                durations: vec![0, 2],
            },
            0.0,
            0.0,
        ),
        v(
            Topology::MultiBlank {
                big_blank_durations: vec![2, 4, 8],
            },
            0.0,
            0.0,
        ),
        v(
            Topology::MultiBlank {
                big_blank_durations: vec![3],
            },
            0.1,
            0.0,
        ),
        v(
            Topology::Modified {
                terminal_blank: false,
            },
            0.0,
            0.0,
        ),
        v(
            Topology::Modified {
                terminal_blank: true,
            },
            0.0,
            0.3,
        ),
        v(
            Topology::Modified {
                terminal_blank: false,
            },
            0.0,
            0.5,
        ),
        v(Topology::Constrained, 0.0, 0.0),
        v(Topology::Regular, 0.0, 0.4),
        v(Topology::Regular, 0.2, 0.0),
    ]
}

/// The columns of the duration head, and the frames each label needs at least.
fn heads_of(variant: &Variant) -> (usize, usize) {
    match &variant.topology {
        Topology::Tdt { durations } => (durations.len(), 0),
        Topology::Modified { .. } | Topology::Constrained => (1, 1),
        _ => (1, 0),
    }
}

/// Lengthens items where optimized_transducer's terminal blank needs T_b ≥ U_b + 1.
fn fit(mut batch: Batch, variant: &Variant) -> Batch {
    if matches!(
        variant.topology,
        Topology::Modified {
            terminal_blank: true
        }
    ) {
        for i in 0..batch.frames.len() {
            batch.frames[i] = batch.frames[i].max(batch.lengths[i] + 1);
        }
    }
    batch
}

fn tdt(variant: &Variant) -> bool {
    matches!(variant.topology, Topology::Tdt { .. })
}

/// log_softmax of a row.
fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    row.iter().map(|x| x - lse).collect()
}

/// −ln Σ over every path, enumerated as sequences of emissions (README of the golden variants:
/// a path is a sequence of (symbol, frames) whose labels come in order), independently of the
/// crate's arcs.
fn brute_force(batch: &Batch, b: usize, variant: &Variant) -> f64 {
    let (t_len, labels) = (batch.frames[b] as usize, batch.lengths[b] as usize);
    let y: Vec<usize> = (0..labels)
        .map(|j| batch.targets[[b, j]] as usize)
        .collect();
    let blank = batch.blank as usize;
    let lp = |t: usize, u: usize| log_softmax(&batch.tokens.slice(s![b, t, u, ..]).to_vec());
    let ld = |t: usize, u: usize| log_softmax(&batch.durations.slice(s![b, t, u, ..]).to_vec());
    let (sigma, delta) = (variant.sigma, variant.delay_penalty);
    let bonus = |t: usize| delta * ((t_len as f64 - 1.0) / 2.0 - t as f64);
    let mut total = f64::NEG_INFINITY;
    let mut add = |w: f64| total = rnnt::logspace::log_add_exp(total, w);
    // Depth-first over (t, u, weight so far).
    let mut stack = vec![(0usize, 0usize, 0.0f64)];
    while let Some((t, u, w)) = stack.pop() {
        match &variant.topology {
            Topology::Regular | Topology::MultiBlank { .. } => {
                let big: Vec<usize> = match &variant.topology {
                    Topology::MultiBlank {
                        big_blank_durations,
                    } => big_blank_durations.clone(),
                    _ => vec![],
                };
                let l = lp(t, u);
                let mut blanks = vec![(blank, 1)];
                blanks.extend(big.iter().enumerate().map(|(i, &d)| (blank - 1 - i, d)));
                for (k, d) in blanks {
                    let w2 = w + l[k] - sigma;
                    if t + d == t_len && u == labels {
                        add(w2);
                    } else if t + d < t_len {
                        stack.push((t + d, u, w2));
                    }
                }
                if u < labels {
                    stack.push((t, u + 1, w + l[y[u]] - sigma + bonus(t)));
                }
            }
            Topology::Tdt { durations } => {
                let (l, d) = (lp(t, u), ld(t, u));
                for (i, &dur) in durations.iter().enumerate() {
                    if dur > 0 {
                        let w2 = w + l[blank] - sigma + d[i];
                        if t + dur == t_len && u == labels {
                            add(w2);
                        } else if t + dur < t_len {
                            stack.push((t + dur, u, w2));
                        }
                    }
                    if u < labels && t + dur < t_len {
                        stack.push((t + dur, u + 1, w + l[y[u]] - sigma + d[i]));
                    }
                }
            }
            Topology::Modified { terminal_blank } => {
                let end = if *terminal_blank { t_len - 1 } else { t_len };
                if t == end {
                    if u == labels {
                        add(if *terminal_blank {
                            w + lp(t, u)[blank] - sigma
                        } else {
                            w
                        });
                    }
                    continue;
                }
                let l = lp(t, u);
                stack.push((t + 1, u, w + l[blank] - sigma));
                if u < labels {
                    stack.push((t + 1, u + 1, w + l[y[u]] - sigma + bonus(t)));
                }
            }
            Topology::Constrained => {
                if t == t_len {
                    if u == labels {
                        add(w);
                    }
                    continue;
                }
                let l = lp(t, u);
                stack.push((t + 1, u, w + l[blank] - sigma));
                if u < labels {
                    let next = lp(t, u + 1)[blank];
                    stack.push((t + 1, u + 1, w + l[y[u]] + next - sigma + bonus(t)));
                }
            }
        }
    }
    -total
}

#[test]
fn reference_matches_brute_force() {
    for (seed, variant) in variants().iter().enumerate() {
        let (d, per_label) = heads_of(variant);
        let blank = 4 + (seed % 2);
        let batch = fit(
            batch(seed as u64 + 1, (3, 5, 3, 6), d, blank, per_label),
            variant,
        );
        let tokens = batch.tokens.clone();
        let durations = tdt(variant).then(|| batch.durations.clone());
        let out = variant::reference::loss_and_grad(
            &input(&batch, &tokens, durations.as_ref()),
            &options(&batch),
            variant,
        )
        .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
        for b in 0..3 {
            let want = brute_force(&batch, b, variant);
            let got = out.losses[b];
            assert!(
                got == want || (got - want).abs() < 1e-10 * want.abs().max(1.0),
                "{variant:?} item {b}: {got} vs brute force {want}"
            );
        }
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let h = 1e-6;
    for (seed, variant) in variants().iter().enumerate() {
        let (d, per_label) = heads_of(variant);
        let batch = fit(
            batch(seed as u64 + 50, (2, 4, 2, 5), d, 4, per_label),
            variant,
        );
        let durations = tdt(variant).then(|| batch.durations.clone());
        let loss_of = |tokens: &Array4<f64>, durations: Option<&Array4<f64>>| {
            variant::reference::loss_and_grad(
                &input(&batch, tokens, durations),
                &options(&batch),
                variant,
            )
            .unwrap()
        };
        let base = loss_of(&batch.tokens, durations.as_ref());
        if !base.loss.is_finite() {
            continue;
        }
        for (idx, &g) in base.grad.indexed_iter().step_by(7) {
            let (mut plus, mut minus) = (batch.tokens.clone(), batch.tokens.clone());
            plus[idx] += h;
            minus[idx] -= h;
            let fd = (loss_of(&plus, durations.as_ref()).loss
                - loss_of(&minus, durations.as_ref()).loss)
                / (2.0 * h);
            assert!(
                (fd - g).abs() < 1e-6,
                "{variant:?} token {idx:?}: {g} vs {fd}"
            );
        }
        if let (Some(dur), Some(grad)) = (&durations, &base.duration_grad) {
            for (idx, &g) in grad.indexed_iter().step_by(3) {
                let (mut plus, mut minus) = (dur.clone(), dur.clone());
                plus[idx] += h;
                minus[idx] -= h;
                let fd = (loss_of(&batch.tokens, Some(&plus)).loss
                    - loss_of(&batch.tokens, Some(&minus)).loss)
                    / (2.0 * h);
                assert!(
                    (fd - g).abs() < 1e-6,
                    "{variant:?} duration {idx:?}: {g} vs {fd}"
                );
            }
        }
    }
}

/// The fast paths in dtype `F` against the reference on the same (rounded) values.
fn fast_matches_reference<F: Float>(batch: &Batch, variant: &Variant, options: &Options, tol: f64) {
    let tokens = batch.tokens.mapv(F::from_f64);
    let durations = tdt(variant).then(|| batch.durations.mapv(F::from_f64));
    let reference = {
        let (t, d) = (
            tokens.mapv(F::to_f64),
            durations.as_ref().map(|d| d.mapv(F::to_f64)),
        );
        variant::reference::loss_and_grad(&input(batch, &t, d.as_ref()), options, variant).unwrap()
    };
    let fast = variant::loss_and_grad(&input(batch, &tokens, durations.as_ref()), options, variant)
        .unwrap();
    for (b, (&got, &want)) in fast.losses.iter().zip(&reference.losses).enumerate() {
        assert!(
            got == want || (got - want).abs() <= tol * (1.0 + want.abs()),
            "{variant:?} {} losses[{b}] {got} vs {want}",
            F::DTYPE
        );
    }
    let close = |ours: &Array4<F>, theirs: &Array4<f64>, what: &str| {
        for ((idx, &a), &w) in ours.indexed_iter().zip(theirs) {
            let a = a.to_f64();
            assert!(
                !a.is_nan() && (a - w).abs() <= tol * (1.0 + w.abs()),
                "{variant:?} {} {what}{:?}: {a} vs {w}",
                F::DTYPE,
                idx
            );
            let (b, t, u, _) = idx;
            if t as i64 >= batch.frames[b] || u as i64 > batch.lengths[b] {
                assert_eq!(a, 0.0, "{what} padding");
            }
        }
    };
    close(&fast.grad, &reference.grad, "grad");
    if let (Some(d), Some(r)) = (&fast.duration_grad, &reference.duration_grad) {
        close(d, r, "duration_grad");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fast_paths_match_reference(
        seed in 0u64..1_000_000,
        which in 0usize..11,
        (b, t, u, v) in (1usize..4, 1usize..9, 0usize..5, 6usize..20),
        blank_at in 0usize..3,
        clamp in prop_oneof![Just(-1.0), Just(0.05)],
        lambda in prop_oneof![Just(0.0), Just(0.3)],
        fused in any::<bool>(),
    ) {
        let variant = &variants()[which];
        let (d, per_label) = heads_of(variant);
        let big = match &variant.topology { Topology::MultiBlank { big_blank_durations } => big_blank_durations.len(), _ => 0 };
        let blank = match blank_at { 0 => big, 1 => (v - 1 + big) / 2, _ => v - 1 }.max(big);
        let t = t.max(u * per_label + usize::from(matches!(variant.topology, Topology::Modified { terminal_blank: true })));
        let mut batch = batch(seed, (b, t, u, v), d, blank, per_label);
        if matches!(variant.topology, Topology::Modified { terminal_blank: true }) {
            for i in 0..b { batch.frames[i] = batch.frames[i].max(batch.lengths[i] + 1); }
        }
        if !fused {
            for mut row in batch.tokens.lanes_mut(Axis(3)) { let l = log_softmax(&row.to_vec()); row.assign(&Array1::from(l)); }
            for mut row in batch.durations.lanes_mut(Axis(3)) { let l = log_softmax(&row.to_vec()); row.assign(&Array1::from(l)); }
        }
        // Padding holds values that must not be read.
        for i in 0..b {
            batch.tokens.slice_mut(s![i, batch.frames[i] as usize.., .., ..]).fill(f64::NAN);
            batch.tokens.slice_mut(s![i, .., batch.lengths[i] as usize + 1.., ..]).fill(1e30);
        }
        let options = Options { clamp, fastemit_lambda: lambda, fused_log_softmax: fused, ..options(&batch) };
        fast_matches_reference::<f64>(&batch, variant, &options, 1e-9);
        fast_matches_reference::<f32>(&batch, variant, &options, 2e-4);
        fast_matches_reference::<f16>(&batch, variant, &options, 2e-3);
        fast_matches_reference::<bf16>(&batch, variant, &options, 2e-2);
    }
}

#[test]
fn masked_symbols_and_huge_logits_give_finite_gradients() {
    for (seed, variant) in variants().iter().enumerate() {
        let (d, per_label) = heads_of(variant);
        let mut batch = fit(
            batch(seed as u64 + 7, (2, 6, 3, 9), d, 8, per_label),
            variant,
        );
        batch
            .tokens
            .slice_mut(s![.., .., .., 0])
            .fill(f64::NEG_INFINITY);
        batch.tokens.slice_mut(s![0, 1, .., 1]).fill(1e4);
        fast_matches_reference::<f64>(&batch, variant, &options(&batch), 1e-9);
    }
}

#[test]
fn impossible_items_get_infinite_loss_and_zero_gradient() {
    // Durations [0, 2]: no path lands on an odd T.
    let variant = Variant {
        topology: Topology::Tdt {
            durations: vec![0, 2],
        },
        ..Variant::default()
    };
    let mut batch = batch(3, (2, 5, 2, 6), 2, 5, 0);
    batch.frames[1] = 3;
    let durations = batch.durations.clone();
    let out = variant::loss_and_grad(
        &input(&batch, &batch.tokens, Some(&durations)),
        &options(&batch),
        &variant,
    )
    .unwrap();
    assert_eq!(out.losses[1], f64::INFINITY);
    assert!(out.grad.index_axis(Axis(0), 1).iter().all(|&g| g == 0.0));
    assert!(out
        .duration_grad
        .unwrap()
        .index_axis(Axis(0), 1)
        .iter()
        .all(|&g| g == 0.0));
    let zeroed = Options {
        zero_infinity: true,
        ..options(&batch)
    };
    let out = variant::loss_and_grad(
        &input(&batch, &batch.tokens, Some(&durations)),
        &zeroed,
        &variant,
    )
    .unwrap();
    assert_eq!(out.losses[1], 0.0);
}

#[test]
fn strided_heads_of_one_joint_tensor_match_contiguous_ones() {
    let variant = &variants()[0];
    let batch = batch(11, (3, 7, 4, 10), 5, 9, 0);
    let joint = ndarray::concatenate(Axis(3), &[batch.tokens.view(), batch.durations.view()])
        .unwrap()
        .as_standard_layout()
        .to_owned();
    let mut grad_joint = Array4::from_elem(joint.dim(), f64::NAN);
    let strided = VariantInput {
        logits: joint.slice(s![.., .., .., ..10]),
        duration_logits: Some(joint.slice(s![.., .., .., 10..])),
        targets: Targets::Padded(batch.targets.view()),
        logit_lengths: batch.frames.view(),
        target_lengths: batch.lengths.view(),
    };
    let (token_grad, duration_grad) = grad_joint.view_mut().split_at(Axis(3), 10);
    let forward = variant::loss_and_grad_into(
        &strided,
        &options(&batch),
        variant,
        VariantGrad {
            logits: token_grad,
            duration_logits: Some(duration_grad),
        },
    )
    .unwrap();
    let plain = variant::loss_and_grad(
        &input(&batch, &batch.tokens, Some(&batch.durations)),
        &options(&batch),
        variant,
    )
    .unwrap();
    assert_eq!(forward.losses(), &plain.losses[..]);
    assert_eq!(grad_joint.slice(s![.., .., .., ..10]), plain.grad);
    assert_eq!(
        grad_joint.slice(s![.., .., .., 10..]),
        plain.duration_grad.unwrap()
    );
}

#[test]
fn alignments_give_each_tokens_frame_and_duration() {
    let variant = &variants()[0];
    let batch = batch(5, (2, 8, 3, 7), 5, 6, 0);
    let alignments = variant::align(
        &input(&batch, &batch.tokens, Some(&batch.durations)),
        &options(&batch),
        variant,
    )
    .unwrap();
    let losses = variant::loss_and_grad(
        &input(&batch, &batch.tokens, Some(&batch.durations)),
        &options(&batch),
        variant,
    )
    .unwrap()
    .losses;
    for (b, a) in alignments.iter().enumerate() {
        assert!((a.log_p + losses[b]).abs() < 1e-9);
        let path = a.best_path.as_ref().unwrap();
        assert!(path.score <= a.log_p + 1e-12);
        // The durations add up to T (the path lands exactly on it).
        assert_eq!(
            path.durations.iter().sum::<usize>(),
            batch.frames[b] as usize
        );
        assert_eq!(
            path.arcs
                .iter()
                .filter(|&&k| k == rnnt::ArcKind::Emit)
                .count(),
            batch.lengths[b] as usize
        );
        // Each label's emission posterior sums to 1.
        for row in a.emit_posterior.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-9);
        }
    }
}

fn error_of(variant: Variant, edit: impl FnOnce(&mut Batch, &mut Options)) -> String {
    let (d, per_label) = heads_of(&variant);
    let mut batch = batch(1, (2, 4, 3, 8), d, 7, per_label);
    let mut options = options(&batch);
    edit(&mut batch, &mut options);
    let durations = tdt(&variant).then(|| batch.durations.clone());
    match variant::forward(
        &input(&batch, &batch.tokens, durations.as_ref()),
        &options,
        &variant,
    ) {
        Err(Error::Value(m) | Error::Shape(m) | Error::Layout(m)) => m,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn bad_input_is_a_clear_error_naming_the_argument() {
    let tdt_with = |durations: Vec<usize>| Variant {
        topology: Topology::Tdt { durations },
        ..Variant::default()
    };
    assert!(error_of(tdt_with(vec![0, 2, 1]), |_, _| {})
        .contains("durations = [0, 2, 1] is not ascending"));
    assert!(error_of(tdt_with(vec![0, 1, 1]), |_, _| {}).contains("repeated"));
    assert!(error_of(tdt_with(vec![]), |_, _| {}).contains("durations = []"));
    assert!(error_of(tdt_with(vec![0]), |_, _| {}).contains("no duration > 0"));
    assert!(
        Variant::from_names("regular", false, Some(&[0, -1]), None, (0.0, 0.0))
            .unwrap_err()
            .to_string()
            .contains("durations[1] = -1")
    );
    let mb = |big: Vec<usize>| Variant {
        topology: Topology::MultiBlank {
            big_blank_durations: big,
        },
        ..Variant::default()
    };
    assert!(error_of(mb(vec![1]), |_, _| {}).contains("big_blank_durations[0] = 1"));
    assert!(error_of(mb(vec![2]), |b, _| b.targets[[0, 0]] = 6)
        .contains("targets[0][0] = 6 is big blank 0"));
    assert!(error_of(mb(vec![2, 3]), |b, o| {
        o.blank = 1;
        b.targets.fill(3);
    })
    .contains("< 0"));
    let modified = Variant {
        topology: Topology::Modified {
            terminal_blank: false,
        },
        ..Variant::default()
    };
    assert!(error_of(modified.clone(), |b, _| {
        b.frames[0] = 2;
        b.lengths[0] = 3;
    })
    .contains("logit_lengths[0] = 2 is below U_b"));
    assert!(error_of(
        Variant {
            sigma: f64::NAN,
            ..Variant::default()
        },
        |_, _| {}
    )
    .contains("sigma = NaN"));
    assert!(error_of(
        Variant {
            delay_penalty: f64::INFINITY,
            ..modified
        },
        |_, _| {}
    )
    .contains("delay_penalty = inf"));
    assert!(error_of(
        Variant {
            delay_penalty: 0.1,
            ..tdt_with(vec![0, 1])
        },
        |_, _| {}
    )
    .contains("delay_penalty = 0.1"));
    // A duration head of the wrong size.
    let batch = batch(1, (2, 4, 3, 8), 3, 7, 0);
    let v = tdt_with(vec![0, 1]);
    let e = variant::forward(
        &input(&batch, &batch.tokens, Some(&batch.durations)),
        &options(&batch),
        &v,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("duration_logits has shape (2, 4, 4, 3)"),
        "{e}"
    );
    let e =
        variant::forward(&input(&batch, &batch.tokens, None), &options(&batch), &v).unwrap_err();
    assert!(e.to_string().contains("needs duration_logits"), "{e}");
    assert!(
        Variant::from_names("sideways", false, None, None, (0.0, 0.0))
            .unwrap_err()
            .to_string()
            .contains("rnnt_type = \"sideways\"")
    );
    assert!(Variant::from_names("regular", true, None, None, (0.0, 0.0))
        .unwrap_err()
        .to_string()
        .contains("terminal_blank"));
}
