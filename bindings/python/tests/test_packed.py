"""Packed logits, (sum of T_b*(U_b+1), V): the same losses and gradients as padded ones through
the NumPy and torch front ends (golden cases included), the check of their number of rows, and
``rnnt.compat.optimized_transducer``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnt
from golden import GoldenCase, assert_grad_close, assert_losses_close, case_names, load


def pack(padded: np.ndarray[Any, Any], logit_lengths: Any, target_lengths: Any) -> Any:
    """Item b's first T_b frames' first U_b+1 positions, frame-major, items in batch order."""
    return np.concatenate(
        [
            padded[b, :t, : u + 1].reshape(-1, padded.shape[-1])
            for b, (t, u) in enumerate(zip(logit_lengths, target_lengths))
        ]
    )


def ragged_batch(seed: int = 0) -> tuple[np.ndarray[Any, Any], ...]:
    """B = 4 of mixed lengths, V = 6, blank = 0; NaN in the padding (never read)."""
    rng = np.random.default_rng(seed)
    logit_lengths = np.array([7, 3, 5, 1], np.int32)
    target_lengths = np.array([2, 4, 0, 1], np.int32)
    logits = rng.standard_normal((4, 7, 5, 6)).astype(np.float32)
    for b, (t, u) in enumerate(zip(logit_lengths, target_lengths)):
        logits[b, t:] = np.nan
        logits[b, :, u + 1 :] = np.nan
    targets = rng.integers(1, 6, (4, 4)).astype(np.int32)
    return logits, targets, logit_lengths, target_lengths


def _golden_inputs(case: GoldenCase, mode: str) -> tuple[np.ndarray[Any, Any], ...]:
    return (
        case.arrays[mode].astype(np.float64),
        case.arrays["targets"].astype(np.int64),
        case.arrays["logit_lengths"].astype(np.int64),
        case.arrays["target_lengths"].astype(np.int64),
    )


@pytest.mark.parametrize("mode", ["logits", "log_probs"])
@pytest.mark.parametrize("name", case_names())
def test_numpy_golden_packed(name: str, mode: str) -> None:
    case = load(name)
    padded, targets, logit_lengths, target_lengths = _golden_inputs(case, mode)
    fused = mode == "logits"
    losses, grad = rnnt.loss_and_grad(
        pack(padded, logit_lengths, target_lengths),
        targets,
        logit_lengths,
        target_lengths,
        blank=case.blank,
        reduction="none",
        fused_log_softmax=fused,
    )
    truth = case.arrays["grad_logits" if fused else "grad_log_probs"]
    tolerance = case.tolerance("float64", fused)
    assert_losses_close(losses, case.arrays["losses"], tolerance)
    assert grad.shape == (int(np.sum(logit_lengths * (target_lengths + 1))), padded.shape[-1])
    assert_grad_close(grad, pack(truth, logit_lengths, target_lengths), tolerance)


@pytest.mark.parametrize("mode", ["logits", "log_probs"])
@pytest.mark.parametrize("name", case_names())
def test_torch_golden_packed(name: str, mode: str) -> None:
    torch = pytest.importorskip("torch")
    case = load(name)
    padded, targets, logit_lengths, target_lengths = _golden_inputs(case, mode)
    fused = mode == "logits"
    packed = torch.from_numpy(pack(padded, logit_lengths, target_lengths)).requires_grad_()
    losses = rnnt.rnnt_loss(
        packed,
        torch.from_numpy(targets),
        torch.from_numpy(logit_lengths),
        torch.from_numpy(target_lengths),
        blank=case.blank,
        reduction="none",
        fused_log_softmax=fused,
    )
    tolerance = case.tolerance("float64", fused)
    assert_losses_close(losses.detach().numpy(), case.arrays["losses"], tolerance)
    # Impossible items (loss +inf) get zero gradient: sum only the finite losses.
    losses[torch.isfinite(losses)].sum().backward()
    assert packed.grad is not None
    truth = case.arrays["grad_logits" if fused else "grad_log_probs"]
    assert_grad_close(packed.grad.numpy(), pack(truth, logit_lengths, target_lengths), tolerance)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_numpy_packed_equals_padded(reduction: str) -> None:
    logits, targets, logit_lengths, target_lengths = ragged_batch()
    padded_loss, padded_grad = rnnt.loss_and_grad(
        logits, targets, logit_lengths, target_lengths, blank=0, reduction=reduction
    )
    packed = pack(logits, logit_lengths, target_lengths)
    assert packed.shape == (21 + 15 + 5 + 2, 6)
    packed_loss, packed_grad = rnnt.loss_and_grad(
        packed, targets, logit_lengths, target_lengths, blank=0, reduction=reduction
    )
    np.testing.assert_array_equal(packed_loss, padded_loss)
    np.testing.assert_array_equal(packed_grad, pack(padded_grad, logit_lengths, target_lengths))


def test_numpy_packed_rows_must_match_the_lengths() -> None:
    logits, targets, logit_lengths, target_lengths = ragged_batch()
    packed = pack(logits, logit_lengths, target_lengths)
    with pytest.raises(ValueError, match=r"logits is packed with 42 rows .* = 43"):
        rnnt.loss_and_grad(packed[:-1], targets, logit_lengths, target_lengths, blank=0)
    with pytest.raises(ValueError, match=r"log_probs has 3 dimensions"):
        rnnt.loss_and_grad(
            packed[None], targets, logit_lengths, target_lengths, fused_log_softmax=False
        )
    packed[30, 2] = np.nan  # item 1 (rows 21..36): frame 1, position 4
    with pytest.raises(ValueError, match=r"logits\[30\]\[2\] = NaN \(item 1, frame 1, label pos"):
        rnnt.loss_and_grad(packed, targets, logit_lengths, target_lengths, blank=0)


@pytest.mark.parametrize("one_shot", [True, False])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_torch_packed_equals_padded(
    reduction: str, one_shot: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Losses and gradients (with an upstream gradient that differs per item for "none"), with
    the gradient computed in forward and, with the bound at 0, in backward."""
    torch = pytest.importorskip("torch")
    from rnnt import torch as front_end

    if not one_shot:
        monkeypatch.setattr(front_end._rnnt, "STREAM_MIN_BYTES", 0)
    logits, targets, logit_lengths, target_lengths = ragged_batch(1)
    lengths = (torch.from_numpy(logit_lengths), torch.from_numpy(target_lengths))
    padded = torch.from_numpy(np.nan_to_num(logits)).requires_grad_()
    packed = torch.from_numpy(pack(logits, logit_lengths, target_lengths)).requires_grad_()
    upstream = torch.tensor([0.5, -2.0, 3.0, 1.0]) if reduction == "none" else torch.tensor(0.25)
    results = []
    for x in (padded, packed):
        loss = rnnt.rnnt_loss(x, torch.from_numpy(targets), *lengths, blank=0, reduction=reduction)
        loss.backward(upstream)
        results.append(loss.detach())
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)
    assert padded.grad is not None and packed.grad is not None
    want = pack(padded.grad.numpy(), logit_lengths, target_lengths)
    np.testing.assert_array_equal(packed.grad.numpy(), want)


def test_optimized_transducer_semantics() -> None:
    torch = pytest.importorskip("torch")
    from rnnt.compat import optimized_transducer

    logits, targets, logit_lengths, target_lengths = ragged_batch(2)
    lengths = (torch.from_numpy(logit_lengths), torch.from_numpy(target_lengths))
    packed = torch.from_numpy(pack(logits, logit_lengths, target_lengths))
    per_item = rnnt.rnnt_loss(
        packed, torch.from_numpy(targets), *lengths, blank=0, reduction="none"
    )
    for from_log_softmax in (False, True):
        x = torch.log_softmax(packed, -1) if from_log_softmax else packed
        x = x.detach().requires_grad_()
        loss = optimized_transducer.transducer_loss(
            x, torch.from_numpy(targets), *lengths, blank=0, from_log_softmax=from_log_softmax
        )
        # "mean": the mean over the batch, a 0-d tensor.
        assert loss.shape == ()
        torch.testing.assert_close(loss, per_item.mean(), rtol=1e-6, atol=1e-6)
        loss.backward()
        assert x.grad is not None
        # The gradient of the mean is that of the sum over B.
        y = x.detach().requires_grad_()
        rnnt.rnnt_loss(
            y,
            torch.from_numpy(targets),
            *lengths,
            blank=0,
            reduction="sum",
            fused_log_softmax=not from_log_softmax,
        ).backward()
        assert y.grad is not None
        torch.testing.assert_close(x.grad, y.grad / 4, rtol=1e-6, atol=1e-7)
        if from_log_softmax:
            # Log-probs are free inputs: minus the arc occupancies, at most two columns a row
            # (blank and the next label).
            grad = x.grad.numpy()
            assert np.all(np.count_nonzero(grad, axis=1) <= 2)
            assert np.all(grad <= 0)
    module = optimized_transducer.TransducerLoss(blank=0, reduction="sum")
    total = module(packed, torch.from_numpy(targets), *lengths, False)
    torch.testing.assert_close(total, per_item.sum(), rtol=1e-6, atol=1e-6)


def test_optimized_transducer_refuses_what_it_cannot_do() -> None:
    torch = pytest.importorskip("torch")
    from rnnt.compat import optimized_transducer

    logits, targets, logit_lengths, target_lengths = ragged_batch(3)
    args = (
        torch.from_numpy(pack(logits, logit_lengths, target_lengths)),
        torch.from_numpy(targets),
        torch.from_numpy(logit_lengths),
        torch.from_numpy(target_lengths),
    )
    with pytest.raises(ValueError, match="reduction"):
        optimized_transducer.transducer_loss(*args, 0, False, reduction="none")
    with pytest.raises(ValueError, match="packed with 42 rows"):
        optimized_transducer.transducer_loss(args[0][1:], *args[1:], 0, False)
