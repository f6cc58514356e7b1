//! Alignments: the best path and its score against brute-force enumeration of every path, the tie
//! rule (earliest emissions), occupancies against enumeration and their anti-diagonal sums, the
//! seed's worked example, impossible items, and every golden case.

mod common;

use common::{all_paths, golden_dir, EnumeratedPath, OwnedInput};
use ndarray::{Array1, Array2, Array4};
use proptest::prelude::*;
use rnnt::{align, Alignment, ArcKind, Options};
use rnnt_cases::{read_case, Labels, Scores};

/// One item's lattice: (T, U+1, V) values, used as logits (`fused`) or as log-probs.
#[derive(Debug, Clone)]
struct TinyCase {
    frames: usize,
    labels: Vec<usize>,
    vocab: usize,
    blank: usize,
    values: Vec<f64>,
    fused: bool,
}

impl TinyCase {
    fn positions(&self) -> usize {
        self.labels.len() + 1
    }

    fn input(&self) -> OwnedInput<f64, i64> {
        let shape = (1, self.frames, self.positions(), self.vocab);
        let labels: Vec<i64> = self.labels.iter().map(|&k| k as i64).collect();
        OwnedInput {
            logits: Array4::from_shape_vec(shape, self.values.clone()).unwrap(),
            padded: Some(Array2::from_shape_vec((1, labels.len()), labels).unwrap()),
            packed: None,
            logit_lengths: Array1::from_elem(1, self.frames as i64),
            target_lengths: Array1::from_elem(1, self.labels.len() as i64),
        }
    }

    /// The log-probability of symbol k at node (t, u), computed here independently of the crate.
    fn log_prob(&self, t: usize, u: usize, k: usize) -> f64 {
        let start = (t * self.positions() + u) * self.vocab;
        let row = &self.values[start..start + self.vocab];
        if !self.fused {
            return row[k];
        }
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return f64::NEG_INFINITY;
        }
        row[k] - (max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln())
    }

    fn paths(&self) -> Vec<EnumeratedPath> {
        all_paths(
            &|t, u, k| self.log_prob(t, u, k),
            self.frames,
            &self.labels,
            self.blank,
        )
    }

    fn align(&self) -> Alignment {
        let owned = self.input();
        let options = Options {
            blank: self.blank as i64,
            fused_log_softmax: self.fused,
            ..Options::default()
        };
        let mut items = align(&owned.view(), &options).unwrap();
        assert_eq!(items.len(), 1);
        items.pop().unwrap()
    }
}

/// Tiny lattices (at most C(11, 5) = 462 paths). `quantised` draws values from a handful of
/// dyadic numbers and −inf, used as log-probs, so that many paths tie exactly.
fn tiny_cases(quantised: bool) -> impl Strategy<Value = TinyCase> {
    (1usize..7, 0usize..6, 2usize..5, any::<bool>())
        .prop_flat_map(move |(frames, count, vocab, fused)| {
            let len = frames * (count + 1) * vocab;
            let values = if quantised {
                let levels = prop_oneof![
                    Just(0.0),
                    Just(-0.5),
                    Just(-1.0),
                    Just(-2.0),
                    Just(f64::NEG_INFINITY)
                ];
                prop::collection::vec(levels, len).boxed()
            } else {
                prop::collection::vec(-4.0f64..4.0, len).boxed()
            };
            (
                Just(frames),
                prop::collection::vec(0..vocab - 1, count),
                Just(vocab),
                0..vocab,
                values,
                Just(fused && !quantised),
            )
        })
        .prop_map(|(frames, labels, vocab, blank, values, fused)| TinyCase {
            frames,
            // Labels are drawn from the V − 1 non-blank symbols.
            labels: labels
                .into_iter()
                .map(|k| if k >= blank { k + 1 } else { k })
                .collect(),
            vocab,
            blank,
            values,
            fused,
        })
}

/// The frame of each label's emission along a path given by its nodes.
fn emit_frames(nodes: &[(usize, usize)]) -> Vec<usize> {
    nodes
        .windows(2)
        .filter(|step| step[1].1 == step[0].1 + 1)
        .map(|step| step[0].0)
        .collect()
}

/// Checks that the reported path is a well-formed path of `case`'s lattice.
fn assert_well_formed(case: &TinyCase, alignment: &Alignment) {
    let path = alignment
        .best_path
        .as_ref()
        .expect("a possible item has a path");
    let (last_t, last_u) = (case.frames - 1, case.labels.len());
    assert_eq!(path.nodes.first(), Some(&(0, 0)));
    assert_eq!(path.nodes.last(), Some(&(last_t, last_u)));
    assert_eq!(path.nodes.len(), case.frames + case.labels.len());
    assert_eq!(path.arcs.len(), path.nodes.len());
    assert_eq!(path.arcs.last(), Some(&ArcKind::Blank));
    for (step, arc) in path.nodes.windows(2).zip(&path.arcs) {
        let ((t, u), next) = (step[0], step[1]);
        let expected = match arc {
            ArcKind::Blank => (t + 1, u),
            ArcKind::Emit => (t, u + 1),
        };
        assert_eq!(next, expected, "arc {arc:?} from ({t}, {u})");
    }
    assert_eq!(path.emit_frames, emit_frames(&path.nodes));
}

/// Checks the occupancies against enumeration, and the sums every path makes equal to 1.
fn assert_occupancies(case: &TinyCase, alignment: &Alignment, paths: &[EnumeratedPath]) {
    let positions = case.positions();
    let log_p = paths
        .iter()
        .map(|p| p.score)
        .fold(f64::NEG_INFINITY, rnnt::logspace::log_add_exp);
    assert!((alignment.log_p - log_p).abs() <= 1e-9 * (1.0 + log_p.abs()));
    let mut occupancy = Array2::<f64>::zeros((case.frames, positions));
    let mut emission = Array2::<f64>::zeros((case.labels.len(), case.frames));
    for path in paths {
        let weight = (path.score - log_p).exp();
        for &node in &path.nodes {
            occupancy[node] += weight;
        }
        for (j, t) in emit_frames(&path.nodes).into_iter().enumerate() {
            emission[(j, t)] += weight;
        }
    }
    for (ours, truth) in alignment.occupancy.iter().zip(&occupancy) {
        assert!((ours - truth).abs() < 1e-9, "occupancy {ours} vs {truth}");
    }
    for (ours, truth) in alignment.emit_posterior.iter().zip(&emission) {
        assert!((ours - truth).abs() < 1e-9, "emission {ours} vs {truth}");
    }
    assert_sums_are_one(alignment);
}

/// Every path crosses each anti-diagonal t + u = d once and emits each label once.
fn assert_sums_are_one(alignment: &Alignment) {
    let (frames, positions) = alignment.occupancy.dim();
    for d in 0..frames + positions - 1 {
        let sum: f64 = (0..positions)
            .filter(|&u| u <= d && d - u < frames)
            .map(|u| alignment.occupancy[(d - u, u)])
            .sum();
        assert!((sum - 1.0).abs() < 1e-9, "anti-diagonal {d} sums to {sum}");
    }
    for (j, row) in alignment.emit_posterior.rows().into_iter().enumerate() {
        let sum = row.sum();
        assert!(
            (sum - 1.0).abs() < 1e-9,
            "label {j}'s posterior sums to {sum}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn best_path_and_occupancy_match_brute_force(case in tiny_cases(false)) {
        let alignment = case.align();
        let paths = case.paths();
        let best = paths.iter().map(|p| p.score).fold(f64::NEG_INFINITY, f64::max);
        assert_well_formed(&case, &alignment);
        let path = alignment.best_path.as_ref().unwrap();
        let own_score = paths
            .iter()
            .find(|p| p.nodes == path.nodes)
            .expect("the best path is a path")
            .score;
        prop_assert!((path.score - best).abs() <= 1e-12 * (1.0 + best.abs()));
        prop_assert!((own_score - best).abs() <= 1e-12 * (1.0 + best.abs()));
        prop_assert!(path.score <= alignment.log_p + 1e-12);
        assert_occupancies(&case, &alignment, &paths);
    }

    #[test]
    fn ties_go_to_the_earliest_emissions(case in tiny_cases(true)) {
        let alignment = case.align();
        let paths = case.paths();
        let best = paths.iter().map(|p| p.score).fold(f64::NEG_INFINITY, f64::max);
        if best == f64::NEG_INFINITY {
            prop_assert!(alignment.best_path.is_none());
            prop_assert_eq!(alignment.score(), f64::NEG_INFINITY);
            prop_assert!(alignment.occupancy.iter().all(|&g| g == 0.0));
            prop_assert!(alignment.emit_posterior.iter().all(|&g| g == 0.0));
            return Ok(());
        }
        assert_well_formed(&case, &alignment);
        let path = alignment.best_path.as_ref().unwrap();
        prop_assert_eq!(path.score, best);
        let optimal: Vec<_> = paths.iter().filter(|p| p.score == best).collect();
        prop_assert!(optimal.iter().any(|p| p.nodes == path.nodes));
        for other in optimal {
            let frames = emit_frames(&other.nodes);
            prop_assert!(
                path.emit_frames.iter().zip(&frames).all(|(ours, theirs)| ours <= theirs),
                "{:?} is not earlier than the tied {:?}", path.emit_frames, frames
            );
        }
        assert_occupancies(&case, &alignment, &paths);
    }
}

#[test]
fn uniform_lattice_emits_everything_at_frame_zero() {
    // Every path has the same probability: the tie rule emits each label as early as it can.
    let case = TinyCase {
        frames: 4,
        labels: vec![0, 1, 0],
        vocab: 3,
        blank: 2,
        values: vec![0.0; 4 * 4 * 3],
        fused: true,
    };
    let alignment = case.align();
    let path = alignment.best_path.as_ref().unwrap();
    assert_eq!(path.emit_frames, vec![0, 0, 0]);
    assert_eq!(
        path.nodes,
        vec![(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (2, 3), (3, 3)]
    );
    assert!((path.score - 7.0 * (1f64 / 3.0).ln()).abs() < 1e-12);
}

#[test]
fn seed_worked_example_1_emits_a_then_b_then_blank() {
    // The seed notebook (1-based frames): a at frame 1, b at frame 2, the final blank at frame 3.
    // 0-based: a (id 0) at t = 0, b (id 1) at t = 1, final blank at t = 2 = T − 1.
    let case = read_case(&golden_dir().join("seed_worked_example_1.npz")).unwrap();
    let Some(Scores::F32(logits)) = case.logits else {
        panic!("worked example 1 stores float32 logits")
    };
    let Labels::Padded(targets) = case.targets else {
        panic!("golden cases store padded targets")
    };
    assert_eq!(targets.row(0).to_vec(), vec![0, 1]);
    let input = rnnt::LossInput {
        logits: logits.view(),
        targets: rnnt::Targets::Padded(targets.view()),
        logit_lengths: case.logit_lengths.view(),
        target_lengths: case.target_lengths.view(),
    };
    let options = Options {
        blank: case.blank.unwrap(),
        ..Options::default()
    };
    let alignment = &align(&input, &options).unwrap()[0];
    let path = alignment.best_path.as_ref().unwrap();
    assert_eq!(path.emit_frames, vec![0, 1]);
    assert_eq!(path.nodes, vec![(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]);
    use ArcKind::{Blank, Emit};
    assert_eq!(path.arcs, vec![Emit, Blank, Emit, Blank, Blank]);
    // Nearly one-hot probabilities: the best path carries almost all the mass.
    let loss = case.truth.unwrap().losses[0];
    assert!(path.score <= -loss && path.score > -loss - 1e-3);
    let spreads = alignment.emit_frame_spreads();
    assert!((spreads[0].mean - 0.0).abs() < 1e-3 && (spreads[1].mean - 1.0).abs() < 1e-3);
}

#[test]
fn impossible_item_has_no_path_and_zero_occupancy() {
    // B = 2: item 0 cannot end (its final blank is masked), item 1 is ordinary.
    let (frames, positions, vocab) = (3, 2, 3);
    let mut logits = Array4::<f64>::zeros((2, frames, positions, vocab));
    logits[(0, frames - 1, positions - 1, 0)] = f64::NEG_INFINITY;
    let targets = Array2::from_elem((2, 1), 1i64);
    let lengths = (
        Array1::from_elem(2, frames as i64),
        Array1::from_elem(2, 1i64),
    );
    let input = rnnt::LossInput {
        logits: logits.view(),
        targets: rnnt::Targets::Padded(targets.view()),
        logit_lengths: lengths.0.view(),
        target_lengths: lengths.1.view(),
    };
    let options = Options {
        blank: 0,
        ..Options::default()
    };
    let items = align(&input, &options).unwrap();
    assert!(items[0].best_path.is_none());
    assert_eq!(items[0].score(), f64::NEG_INFINITY);
    assert_eq!(items[0].log_p, f64::NEG_INFINITY);
    assert!(items[0].occupancy.iter().all(|&g| g == 0.0));
    assert!(items[0].emit_posterior.iter().all(|&g| g == 0.0));
    assert!(items[0].emit_frame_spreads()[0].mean.is_nan());
    assert!(items[1].best_path.is_some());
    assert_sums_are_one(&items[1]);
}

#[test]
fn bad_input_is_rejected_like_the_loss() {
    let logits = Array4::<f64>::zeros((1, 2, 2, 3));
    let targets = Array2::from_elem((1, 1), 0i64);
    let (logit_lengths, target_lengths) = (Array1::from_elem(1, 3i64), Array1::from_elem(1, 1i64));
    let input = rnnt::LossInput {
        logits: logits.view(),
        targets: rnnt::Targets::Padded(targets.view()),
        logit_lengths: logit_lengths.view(),
        target_lengths: target_lengths.view(),
    };
    let message = align(&input, &Options::default()).unwrap_err().to_string();
    assert!(message.contains("logit_lengths[0] = 3"), "{message}");
}

#[test]
fn every_golden_case_aligns_consistently_with_its_loss() {
    let mut count = 0;
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("npz") {
            continue;
        }
        let case = read_case(&path).unwrap();
        let log_probs = case.log_probs.as_ref().unwrap().to_f64();
        let Labels::Padded(targets) = &case.targets else {
            panic!("golden cases store padded targets")
        };
        let input = rnnt::LossInput {
            logits: log_probs.view(),
            targets: rnnt::Targets::Padded(targets.view()),
            logit_lengths: case.logit_lengths.view(),
            target_lengths: case.target_lengths.view(),
        };
        let options = Options {
            blank: case.blank.unwrap_or(-1),
            fused_log_softmax: false,
            ..Options::default()
        };
        let truth = case.truth.as_ref().unwrap();
        let alignments = align(&input, &options).unwrap();
        // The same alignments from the logits packed (ΣT_b·(U_b+1), V).
        let packed = rnnt_cases::pack_scores(
            log_probs.view(),
            case.logit_lengths.view(),
            case.target_lengths.view(),
        );
        let packed_input = rnnt::LossInput {
            logits: packed.view(),
            targets: input.targets,
            logit_lengths: input.logit_lengths,
            target_lengths: input.target_lengths,
        };
        assert_eq!(align(&packed_input, &options).unwrap(), alignments);
        for (b, alignment) in alignments.iter().enumerate() {
            let loss = truth.losses[b];
            let name = path.display();
            if loss == f64::INFINITY {
                assert!(alignment.best_path.is_none(), "{name}[{b}]");
                continue;
            }
            assert!(
                (alignment.log_p + loss).abs() <= 1e-9 * (1.0 + loss.abs()),
                "{name}[{b}]"
            );
            assert!(alignment.score() <= alignment.log_p + 1e-12, "{name}[{b}]");
            assert_sums_are_one(alignment);
        }
        count += 1;
    }
    assert!(count >= 18, "found only {count} golden cases");
}
