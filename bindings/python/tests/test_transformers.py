"""``rnnt.compat.transformers.rnnt_loss`` against ``transformers.loss.loss_rnnt.rnnt_loss`` (which
calls torchaudio) on random ragged batches, for NeMo's five reductions: losses and gradients."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchaudio")
hf = pytest.importorskip(
    "transformers.loss.loss_rnnt", reason="transformers is not installed: pip install transformers"
)

from rnnt.compat.transformers import rnnt_loss  # noqa: E402

REDUCTIONS = ("mean_volume", "mean_batch", "mean", "sum", "none")


def batch(seed: int, blank: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Logits (5, 12, 5, 9), padded int64 targets (no label is ``blank``, which torchaudio does
    not check) and int64 lengths; every item has a label ("mean" divides by U_b)."""
    generator = torch.Generator().manual_seed(seed)
    items, frames, labels, symbols = 5, 12, 4, 9
    logits = torch.randn(items, frames, labels + 1, symbols, generator=generator).to(dtype)
    targets = torch.randint(0, symbols - 1, (items, labels), generator=generator)
    targets += (targets >= blank % symbols).long()
    logit_lengths = torch.randint(6, frames + 1, (items,), generator=generator)
    target_lengths = torch.randint(1, labels + 1, (items,), generator=generator)
    logit_lengths[0], target_lengths[0] = frames, labels
    return logits, targets, logit_lengths, target_lengths


def loss_and_grad(function: Any, logits: torch.Tensor, *rest: Any, **options: Any) -> Any:
    leaf = logits.clone().requires_grad_(True)
    loss = function(leaf, *rest, **options)
    weights = torch.linspace(0.5, 2.0, loss.numel()).reshape(loss.shape)
    (loss * weights).sum().backward()
    return loss.detach(), leaf.grad


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_transformers(reduction: str, seed: int) -> None:
    blank = 8 if seed == 0 else 0
    logits, *rest = batch(seed, blank)
    ours = loss_and_grad(rnnt_loss, logits, *rest, blank, reduction=reduction)
    theirs = loss_and_grad(hf.rnnt_loss, logits, *rest, blank, reduction=reduction)
    assert ours[0].shape == theirs[0].shape and ours[0].dtype == theirs[0].dtype == torch.float32
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-4, atol=1e-5)


def test_default_reduction_is_mean_volume_and_bfloat16_gives_float32() -> None:
    logits, *rest = batch(2, -1, torch.bfloat16)
    ours = rnnt_loss(logits, *rest, blank_token_id=-1)
    theirs = hf.rnnt_loss(logits, *rest, blank_token_id=-1)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_unknown_reduction_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="reduction = 'batchmean'"):
        rnnt_loss(*batch(3, 0), 0, reduction="batchmean")
