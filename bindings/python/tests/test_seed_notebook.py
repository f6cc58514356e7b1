"""The seed notebook's findings, reproduced through the compatibility APIs.

The notebook compared awni's ``TransducerLoss`` (log-probs, packed labels, batch mean of shape
(1,)) with ``warprnnt_pytorch.RNNTLoss`` (logits, batch sum / B of shape (1,)) and worked two
examples by hand:

1. near one-hot probabilities (the right symbol 1 - 2ε, the others ε) with ε = 1e-5 give a loss
   of about 1e-4, growing monotonically with ε;
2. T = 2, V = 2, one label, every probability ½: two paths of probability 1/8 each, loss ln 4;
3. a random batch B=2, T=4, U=2, V=6, blank=5, frame lengths [4, 2], labels [[0, 1], [1, 0]]: awni
   and warp give the same value with their defaults (both printed ``tensor([7.0178])``; the
   notebook drew its logits unseeded, so the golden case keeps the layout with logits of its own);
4. warp gives the same loss for logits and for log-probs. The reason is that log_softmax is
   idempotent (log_softmax(log_softmax(x)) = log_softmax(x)), not a heuristic on the sign of the
   input: any per-row shift of the logits gives the same loss too.

The exact inputs are the golden cases ``seed_worked_example_{1,2}`` and ``seed_random_batch``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from golden import load  # noqa: E402
from rnnt.compat.awni import TransducerLoss  # noqa: E402
from rnnt.compat.warprnnt import RNNTLoss  # noqa: E402


def packed(labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """awni's flat labels: each item's labels within its length, concatenated."""
    return torch.cat([row[: int(n)] for row, n in zip(labels, lengths)])


def tensors(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    case = load(name)
    arrays = case.arrays
    return (
        torch.from_numpy(arrays["logits"]),
        torch.from_numpy(arrays["targets"]),
        torch.from_numpy(arrays["logit_lengths"]),
        torch.from_numpy(arrays["target_lengths"]),
        case.blank,
    )


def worked_example_1(epsilon: float) -> tuple[torch.Tensor, ...]:
    """Example 1's lattice with the right symbol at 1 - 2ε and the two others at ε (V = 3)."""
    logits, targets, logit_lengths, target_lengths, _ = tensors("seed_worked_example_1")
    right = logits.argmax(dim=-1, keepdim=True)
    probs = torch.full(logits.shape, epsilon, dtype=torch.float64)
    probs.scatter_(-1, right, 1 - 2 * epsilon)
    return probs.log(), targets, logit_lengths, target_lengths


def both_losses(
    log_probs: torch.Tensor,
    labels: torch.Tensor,
    lengths: torch.Tensor,
    label_lengths: torch.Tensor,
    blank: int,
) -> tuple[float, float]:
    awni = TransducerLoss(size_average=False, blank_label=blank)(
        log_probs, packed(labels, label_lengths), lengths, label_lengths
    )
    warp = RNNTLoss(blank=blank, reduction="sum")(log_probs, labels, lengths, label_lengths)
    assert awni.shape == (1,) and warp.shape == (1,)
    return float(awni), float(warp)


def test_worked_example_1_epsilon_1e5_gives_about_1e4() -> None:
    golden = load("seed_worked_example_1")
    log_probs, *rest = worked_example_1(1e-5)
    np.testing.assert_allclose(log_probs.numpy(), golden.arrays["log_probs"], rtol=1e-6)
    awni, warp = both_losses(log_probs, *rest, golden.blank)
    assert awni == pytest.approx(warp, rel=1e-9)
    assert awni == pytest.approx(golden.arrays["losses"][0], rel=1e-6)
    assert 5e-5 < awni < 2e-4  # "≈ 1e-4": nine near-certain steps of probability 1 - 2ε


def test_worked_example_1_loss_grows_monotonically_with_epsilon() -> None:
    blank = load("seed_worked_example_1").blank
    epsilons = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2]
    losses = []
    for epsilon in epsilons:
        awni, warp = both_losses(*worked_example_1(epsilon), blank)
        assert awni == pytest.approx(warp, rel=1e-9)
        losses.append(awni)
    assert all(a < b for a, b in zip(losses, losses[1:])), losses
    assert losses[0] < 1e-6


def test_worked_example_2_is_ln_4() -> None:
    logits, targets, logit_lengths, target_lengths, blank = tensors("seed_worked_example_2")
    assert logits.shape == (1, 2, 2, 2) and int(target_lengths[0]) == 1
    log_probs = torch.log_softmax(logits, dim=-1)
    torch.testing.assert_close(log_probs, torch.full_like(log_probs, math.log(0.5)))
    awni, warp = both_losses(log_probs, targets, logit_lengths, target_lengths, blank)
    warp_logits = float(
        RNNTLoss(blank=blank, reduction="sum")(logits, targets, logit_lengths, target_lengths)
    )
    for value in (awni, warp, warp_logits):
        assert value == pytest.approx(math.log(4), rel=1e-6)


def test_random_batch_awni_equals_warp_with_their_defaults() -> None:
    """awni's default (size_average=True, blank_label=None = V-1) and warp's reduction="mean"
    print the same tensor of shape (1,), the batch mean, as in the notebook; gradients agree."""
    logits, targets, logit_lengths, target_lengths, blank = tensors("seed_random_batch")
    assert logits.shape == (2, 4, 3, 6) and blank == 5
    assert logit_lengths.tolist() == [4, 2] and targets.tolist() == [[0, 1], [1, 0]]
    x_awni = logits.clone().requires_grad_(True)
    x_warp = logits.clone().requires_grad_(True)
    awni = TransducerLoss()(
        torch.log_softmax(x_awni, dim=-1),
        packed(targets, target_lengths),
        logit_lengths,
        target_lengths,
    )
    warp = RNNTLoss(blank=blank, reduction="mean")(x_warp, targets, logit_lengths, target_lengths)
    assert awni.shape == (1,) and warp.shape == (1,)
    torch.testing.assert_close(awni, warp, rtol=1e-6, atol=1e-6)
    assert float(awni.detach()) == pytest.approx(
        load("seed_random_batch").arrays["losses"].mean(), rel=1e-6
    )
    awni.backward()
    warp.backward()
    assert x_awni.grad is not None and x_warp.grad is not None
    torch.testing.assert_close(x_awni.grad, x_warp.grad, rtol=0, atol=1e-6)
    golden_grad = torch.from_numpy(load("seed_random_batch").arrays["grad_logits"]) / 2
    torch.testing.assert_close(x_awni.grad.double(), golden_grad, rtol=0, atol=1e-5)


def test_warp_same_loss_for_logits_and_log_probs_as_log_softmax_is_idempotent() -> None:
    logits, targets, logit_lengths, target_lengths, blank = tensors("seed_random_batch")
    logits = logits.double()
    log_probs = torch.log_softmax(logits, dim=-1)
    torch.testing.assert_close(torch.log_softmax(log_probs, dim=-1), log_probs)
    warp = RNNTLoss(blank=blank, reduction="none")
    from_logits = warp(logits, targets, logit_lengths, target_lengths)
    from_log_probs = warp(log_probs, targets, logit_lengths, target_lengths)
    torch.testing.assert_close(from_logits, from_log_probs, rtol=1e-12, atol=1e-12)
    # Not a sign heuristic: log-probs are all negative, but so is any shifted input, and a
    # positive shift is equally harmless: only the per-row normalisation matters.
    for shift in (-50.0, 50.0):
        shifted = warp(logits + shift, targets, logit_lengths, target_lengths)
        torch.testing.assert_close(shifted, from_logits, rtol=1e-12, atol=1e-12)
