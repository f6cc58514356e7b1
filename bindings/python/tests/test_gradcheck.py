"""``torch.autograd.gradcheck`` in float64: the backward is the derivative of the forward, for
logits and log-probs input, every reduction, ragged batches and packed targets."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import rnnt  # noqa: E402


def small_batch(seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 4, 6, generator=generator, dtype=torch.float64)
    targets = torch.randint(1, 6, (3, 3), generator=generator, dtype=torch.int32)
    logit_lengths = torch.tensor([5, 3, 1], dtype=torch.int32)
    target_lengths = torch.tensor([3, 1, 2], dtype=torch.int32)
    return logits.requires_grad_(True), targets, logit_lengths, target_lengths


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(reduction: str, fused: bool) -> None:
    logits, targets, logit_lengths, target_lengths = small_batch(0)
    if not fused:
        logits = torch.log_softmax(logits.detach(), dim=-1).requires_grad_(True)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return rnnt.rnnt_loss(x, targets, logit_lengths, target_lengths, 0, -1, reduction, fused)

    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-7)


def test_gradcheck_packed_targets_and_int64() -> None:
    logits, targets, logit_lengths, target_lengths = small_batch(1)
    packed = torch.cat([row[:n] for row, n in zip(targets, target_lengths)]).long()

    def loss(x: torch.Tensor) -> torch.Tensor:
        return rnnt.rnnt_loss(x, packed, logit_lengths.long(), target_lengths.long(), blank=0)

    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-7)


def test_gradcheck_through_log_softmax_in_log_probs_mode() -> None:
    """awni-style use: log_softmax in torch, then the log-probs loss; the chain rule composes."""
    logits, targets, logit_lengths, target_lengths = small_batch(2)

    def loss(x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(x, dim=-1)
        return rnnt.rnnt_loss(
            log_probs, targets, logit_lengths, target_lengths, 0, fused_log_softmax=False
        )

    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-7)
