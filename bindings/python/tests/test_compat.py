"""The compatibility modules keep the original APIs' calling conventions, shapes and reductions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchaudio_functional = pytest.importorskip("torchaudio.functional")

import rnnt  # noqa: E402
from rnnt.compat import awni, warprnnt  # noqa: E402


def batch() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 6, 4, 5, generator=generator)
    targets = torch.randint(1, 5, (3, 3), generator=generator, dtype=torch.int32)
    return (
        logits,
        targets,
        torch.tensor([6, 4, 2], dtype=torch.int32),
        torch.tensor([3, 2, 0], dtype=torch.int32),
    )


def test_warprnnt_reductions_shapes_and_blank_zero() -> None:
    acts, labels, act_lens, label_lens = batch()
    per_item = torchaudio_functional.rnnt_loss(
        acts, labels, act_lens, label_lens, blank=0, reduction="none"
    )
    none = warprnnt.RNNTLoss(reduction="none")(acts, labels, act_lens, label_lens)
    total = warprnnt.RNNTLoss(reduction="sum")(acts, labels, act_lens, label_lens)
    mean = warprnnt.RNNTLoss()(acts, labels, act_lens, label_lens)
    assert none.shape == (3,) and total.shape == (1,) and mean.shape == (1,)
    torch.testing.assert_close(none, per_item, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(total, per_item.sum().reshape(1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(mean, per_item.sum().reshape(1) / 3, rtol=1e-5, atol=1e-4)
    functional = warprnnt.rnnt_loss(acts, labels, act_lens, label_lens)
    assert torch.equal(functional, mean)
    with pytest.raises(ValueError, match="reduction"):
        warprnnt.rnnt_loss(acts, labels, act_lens, label_lens, reduction="batchmean")


def test_warprnnt_gradient_is_torchaudio_gradient_over_batch() -> None:
    acts, labels, act_lens, label_lens = batch()
    x = acts.clone().requires_grad_(True)
    warprnnt.RNNTLoss()(x, labels, act_lens, label_lens).backward()
    y = acts.clone().requires_grad_(True)
    torchaudio_functional.rnnt_loss(y, labels, act_lens, label_lens, blank=0).backward()
    assert x.grad is not None and y.grad is not None
    torch.testing.assert_close(x.grad, y.grad, rtol=0, atol=1e-5)


def test_awni_is_the_log_probs_batch_sum_with_packed_labels() -> None:
    logits, labels, lengths, label_lengths = batch()
    log_probs = torch.log_softmax(logits.double(), dim=-1).requires_grad_(True)
    flat = torch.cat([row[: int(n)] for row, n in zip(labels, label_lengths)])
    loss = awni.TransducerLoss(size_average=False, blank_label=0)(
        log_probs, flat, lengths, label_lengths
    )
    assert loss.shape == (1,) and loss.dtype == torch.float64
    want = rnnt.rnnt_loss(
        log_probs, labels, lengths, label_lengths, 0, reduction="none", fused_log_softmax=False
    )
    torch.testing.assert_close(loss, want.sum().reshape(1))
    (grad,) = torch.autograd.grad(loss.sum(), log_probs)
    # Log-probs are free inputs: the gradient is minus the arc occupancies, so each item's
    # gradient sums to minus its number of arcs on a path (T_b blanks + U_b labels).
    sums = grad.sum(dim=(1, 2, 3))
    torch.testing.assert_close(sums, -(lengths + label_lengths).double())
