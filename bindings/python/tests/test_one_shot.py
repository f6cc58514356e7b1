"""The torch front end's two ways to a gradient: computed in the forward call for a gradient below
``_rnnt.STREAM_MIN_BYTES`` (the one-shot path), recomputed from the logits in backward above it.
Both give the same gradient for every reduction, upstream gradient and option; a second backward
(``retain_graph``) after the one-shot recomputes it; forward alone computes none."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import rnnt  # noqa: E402
import rnnt.torch  # noqa: E402


def batch(seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 9, 6, 11, generator=generator)
    targets = torch.randint(0, 10, (4, 5), generator=generator, dtype=torch.int32)
    logit_lengths = torch.tensor([9, 7, 1, 4], dtype=torch.int32)
    target_lengths = torch.tensor([5, 2, 0, 4], dtype=torch.int32)
    return logits, targets, logit_lengths, target_lengths


def gradient(
    monkeypatch: pytest.MonkeyPatch, one_shot: bool, upstream: Any, **options: Any
) -> torch.Tensor:
    """d(upstream · loss)/d logits by one path."""
    if not one_shot:
        monkeypatch.setattr(rnnt.torch._rnnt, "STREAM_MIN_BYTES", 0)
    logits, targets, logit_lengths, target_lengths = batch(0)
    leaf = logits.requires_grad_(True)
    loss = rnnt.rnnt_loss(leaf, targets, logit_lengths, target_lengths, blank=10, **options)
    (loss * upstream).sum().backward()
    monkeypatch.undo()
    assert leaf.grad is not None
    return leaf.grad


@pytest.mark.parametrize(
    "options",
    [
        {"reduction": "mean"},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"reduction": "mean", "clamp": 0.01},
        {"reduction": "sum", "fastemit_lambda": 0.5},
        {"reduction": "none", "fused_log_softmax": False},
    ],
)
@pytest.mark.parametrize("upstream", ["one", "scalar", "per item"])
def test_both_paths_give_one_gradient(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], upstream: str
) -> None:
    weights: Any = {
        "one": 1.0,
        "scalar": 2.5,
        "per item": torch.tensor([1.0, -0.5, 3.0, 0.0]),
    }[upstream]
    if upstream == "per item" and options["reduction"] != "none":
        weights = 2.5
    one_shot = gradient(monkeypatch, True, weights, **options)
    recomputed = gradient(monkeypatch, False, weights, **options)
    torch.testing.assert_close(one_shot, recomputed, rtol=1e-6, atol=1e-7)


def test_a_second_backward_recomputes_the_gradient() -> None:
    logits, targets, logit_lengths, target_lengths = batch(1)
    leaf = logits.requires_grad_(True)
    loss = rnnt.rnnt_loss(leaf, targets, logit_lengths, target_lengths, blank=10)
    loss.backward(retain_graph=True)
    assert leaf.grad is not None
    first = leaf.grad.clone()
    loss.backward()
    torch.testing.assert_close(leaf.grad, 2 * first, rtol=1e-6, atol=1e-7)


def test_forward_alone_keeps_no_gradient() -> None:
    """Under no_grad, or for logits that need no gradient, the forward call computes none."""
    logits, targets, logit_lengths, target_lengths = batch(2)
    with torch.no_grad():
        quiet = rnnt.rnnt_loss(logits.requires_grad_(True), targets, logit_lengths, target_lengths)
    plain = rnnt.rnnt_loss(logits.detach(), targets, logit_lengths, target_lengths)
    assert quiet.grad_fn is None and plain.grad_fn is None
    torch.testing.assert_close(quiet, plain)
