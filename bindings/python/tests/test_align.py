"""rnnt.align: best paths and occupancies against brute-force enumeration of every path, the seed's
worked example, every golden case, torch tensors, errors, and the matplotlib picture."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnt
from golden import case_names, load

MEDIUM_BATCH_ITEM_0_EMIT_FRAMES = [1, 1, 6, 8, 8, 17, 17, 19, 21, 23, 24, 25, 32, 36, 39]
"""What `rnnt align tests/golden/medium_batch.npz` reports for item 0 (pinned in its CLI test)."""


def _log_softmax(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    shifted = x - x.max(axis=-1, keepdims=True)
    result: np.ndarray[Any, Any] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def _all_paths(
    lp: np.ndarray[Any, Any], labels: list[int], blank: int
) -> list[tuple[list[tuple[int, int]], float]]:
    """Every path of one item's (T, U+1, V) log-probs: its nodes and its log-probability."""
    frames, count = lp.shape[0], len(labels)
    paths: list[tuple[list[tuple[int, int]], float]] = []

    def walk(nodes: list[tuple[int, int]], score: float) -> None:
        t, u = nodes[-1]
        if (t, u) == (frames - 1, count):
            paths.append((nodes, score + lp[t, u, blank]))
            return
        if t + 1 < frames:
            walk([*nodes, (t + 1, u)], score + lp[t, u, blank])
        if u < count:
            walk([*nodes, (t, u + 1)], score + lp[t, u, labels[u]])

    walk([(0, 0)], 0.0)
    return paths


def _emit_frames(nodes: list[tuple[int, int]]) -> list[int]:
    return [a[0] for a, b in zip(nodes, nodes[1:]) if b[1] == a[1] + 1]


def _assert_sums_are_one(alignment: rnnt.Alignment) -> None:
    frames, positions = alignment.occupancy.shape
    flipped = np.fliplr(alignment.occupancy)
    diagonals = [np.trace(flipped, offset=positions - 1 - d) for d in range(frames + positions - 1)]
    np.testing.assert_allclose(diagonals, 1.0, atol=1e-9)
    np.testing.assert_allclose(alignment.emit_posterior.sum(axis=1), 1.0, atol=1e-9)


def test_seed_worked_example_1_emits_a_then_b_then_blank() -> None:
    # The notebook's 1-based "a at frame 1, b at frame 2, blank at frame 3" is 0-based 0, 1, 2.
    case = load("seed_worked_example_1")
    a = case.arrays
    (alignment,) = rnnt.align(
        a["logits"], a["targets"], a["logit_lengths"], a["target_lengths"], blank=case.blank
    )
    assert alignment.path.tolist() == [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2]]
    assert alignment.emit_frames.tolist() == [0, 1]
    assert alignment.labels.tolist() == [0, 1]
    loss = a["losses"][0]
    assert -loss - 1e-3 < alignment.score <= -loss
    np.testing.assert_allclose(alignment.emit_frame_mean, [0.0, 1.0], atol=1e-3)


@pytest.mark.parametrize("seed", range(40))
def test_best_path_and_occupancy_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames, count, vocab = int(rng.integers(1, 6)), int(rng.integers(0, 5)), int(rng.integers(2, 5))
    blank = int(rng.integers(0, vocab))
    labels = [int(k) + (k >= blank) for k in rng.integers(0, vocab - 1, count)]
    logits = rng.normal(size=(1, frames, count + 1, vocab)) * 2
    targets = np.array(labels, dtype=np.int64).reshape(1, count)
    (alignment,) = rnnt.align(logits, targets, [frames], [count], blank=blank)

    paths = _all_paths(_log_softmax(logits[0]), labels, blank)
    scores = np.array([score for _, score in paths])
    best = scores.max()
    assert alignment.score == pytest.approx(best, rel=1e-12, abs=1e-12)
    nodes = [tuple(node) for node in alignment.path.tolist()]
    (own,) = [score for path, score in paths if path == nodes]
    assert own == pytest.approx(best, rel=1e-12, abs=1e-12)
    assert alignment.emit_frames.tolist() == _emit_frames(nodes)

    log_p = np.logaddexp.reduce(scores)
    assert alignment.log_prob == pytest.approx(log_p, rel=1e-12)
    occupancy = np.zeros((frames, count + 1))
    emission = np.zeros((count, frames))
    for path, score in paths:
        weight = np.exp(score - log_p)
        for node in path:
            occupancy[node] += weight
        for j, t in enumerate(_emit_frames(path)):
            emission[j, t] += weight
    np.testing.assert_allclose(alignment.occupancy, occupancy, atol=1e-9)
    np.testing.assert_allclose(alignment.emit_posterior, emission, atol=1e-9)
    _assert_sums_are_one(alignment)


def test_ties_go_to_the_earliest_emissions() -> None:
    # Every path equally likely: every label is emitted at frame 0.
    logits = np.zeros((1, 4, 4, 3))
    (alignment,) = rnnt.align(logits, [[0, 1, 0]], [4], [3], blank=2)
    assert alignment.emit_frames.tolist() == [0, 0, 0]
    assert alignment.score == pytest.approx(7 * np.log(1 / 3))


@pytest.mark.parametrize("name", case_names())
def test_every_golden_case_agrees_with_its_loss(name: str) -> None:
    case = load(name)
    a = case.arrays
    alignments = rnnt.align(
        a["log_probs"],
        a["targets"],
        a["logit_lengths"],
        a["target_lengths"],
        blank=case.blank,
        fused_log_softmax=False,
    )
    assert len(alignments) == len(a["losses"])
    for b, (alignment, loss) in enumerate(zip(alignments, a["losses"])):
        frames, count = int(a["logit_lengths"][b]), int(a["target_lengths"][b])
        assert alignment.occupancy.shape == (frames, count + 1)
        assert alignment.emit_posterior.shape == (count, frames)
        assert alignment.path.shape == (frames + count, 2)
        assert alignment.labels.tolist() == a["targets"][b, :count].tolist()
        assert alignment.log_prob == pytest.approx(-loss, rel=1e-9, abs=1e-9)
        assert alignment.score <= alignment.log_prob + 1e-12
        _assert_sums_are_one(alignment)


def test_impossible_item_has_no_path() -> None:
    log_probs = np.full((2, 3, 2, 3), np.log(1 / 3))
    log_probs[0, 2, 1, 0] = -np.inf  # item 0's final blank
    impossible, ordinary = rnnt.align(
        log_probs, [[1], [1]], [3, 3], [1, 1], blank=0, fused_log_softmax=False
    )
    assert impossible.score == -np.inf and impossible.log_prob == -np.inf
    assert impossible.path.shape == (0, 2) and impossible.emit_frames.shape == (0,)
    assert not impossible.occupancy.any() and not impossible.emit_posterior.any()
    assert np.isnan(impossible.emit_frame_mean).all()
    assert ordinary.path.shape == (4, 2)


def test_torch_tensors_align_like_numpy() -> None:
    torch = pytest.importorskip("torch")
    case = load("medium_batch")
    a = case.arrays
    lengths = (a["targets"], a["logit_lengths"], a["target_lengths"])
    expected = rnnt.align(a["logits"], *lengths, blank=case.blank)
    tensors = [torch.from_numpy(x) for x in (a["logits"], *lengths)]
    assert expected[0].emit_frames.tolist() == MEDIUM_BATCH_ITEM_0_EMIT_FRAMES
    for ours, theirs in zip(rnnt.align(*tensors, blank=case.blank), expected):
        np.testing.assert_array_equal(ours.path, theirs.path)
        assert ours.score == theirs.score
    # bfloat16 tensors are widened exactly to float32.
    bf16 = tensors[0].to(torch.bfloat16)
    widened = bf16.float().numpy()
    for ours, theirs in zip(
        rnnt.align(bf16, *tensors[1:], blank=case.blank),
        rnnt.align(widened, *lengths, blank=case.blank),
    ):
        np.testing.assert_array_equal(ours.path, theirs.path)


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"logit_lengths\[0\] = 3"):
        rnnt.align(np.zeros((1, 2, 2, 3)), [[0]], [3], [1], blank=2)


def test_plot_alignment_draws_heatmap_and_path(tmp_path: Any) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = load("medium_batch")
    a = case.arrays
    alignment = rnnt.align(
        a["logits"], a["targets"], a["logit_lengths"], a["target_lengths"], blank=case.blank
    )[0]
    ax = rnnt.plot_alignment(alignment)
    frames, positions = alignment.occupancy.shape
    (image,) = ax.get_images()
    assert image.get_array().shape == (positions, frames)
    assert len(ax.get_lines()) == 2  # the path, over a white outline
    path = tmp_path / "alignment.png"
    ax.figure.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(ax.figure)


def test_plot_alignment_without_matplotlib_says_so(monkeypatch: Any) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    (alignment,) = rnnt.align(np.zeros((1, 2, 2, 3)), [[0]], [2], [1], blank=2)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        rnnt.plot_alignment(alignment)
