"""Every golden case through the NumPy and torch front ends, in both input modes (logits and
log-probs), float32 and float64, against the manifest's tolerances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnt
from golden import GOLDEN_DIR, GoldenCase, assert_grad_close, assert_losses_close, case_names, load

MODES = ["logits", "log_probs"]
DTYPES = ["float32", "float64"]


def _inputs(case: GoldenCase, mode: str, dtype: str) -> tuple[np.ndarray[Any, Any], ...]:
    # float64 runs use int64 indices, float32 runs the stored int32: both index types are covered.
    index = np.int64 if dtype == "float64" else np.int32
    return (
        case.arrays[mode].astype(dtype),
        case.arrays["targets"].astype(index),
        case.arrays["logit_lengths"].astype(index),
        case.arrays["target_lengths"].astype(index),
    )


def _truth(case: GoldenCase, mode: str) -> np.ndarray[Any, Any]:
    return case.arrays["grad_logits" if mode == "logits" else "grad_log_probs"]


def test_every_case_is_in_the_manifest() -> None:
    stored = sorted(path.stem for path in GOLDEN_DIR.glob("*.npz"))
    assert stored == case_names()
    assert len(stored) >= 18


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", case_names())
def test_numpy(name: str, mode: str, dtype: str) -> None:
    case = load(name)
    fused = mode == "logits"
    losses, grad = rnnt.loss_and_grad(
        *_inputs(case, mode, dtype), blank=case.blank, reduction="none", fused_log_softmax=fused
    )
    assert losses.dtype == grad.dtype == np.dtype(dtype)
    tolerance = case.tolerance(dtype, fused)
    assert_losses_close(losses, case.arrays["losses"], tolerance)
    assert_grad_close(grad, _truth(case, mode), tolerance)


@pytest.mark.parametrize("name", case_names())
def test_numpy_packed_targets(name: str) -> None:
    case = load(name)
    logits, targets, logit_lengths, target_lengths = _inputs(case, "logits", "float64")
    packed = np.concatenate([row[:n] for row, n in zip(targets, target_lengths)])
    losses, grad = rnnt.loss_and_grad(
        logits, packed, logit_lengths, target_lengths, blank=case.blank, reduction="none"
    )
    assert_losses_close(losses, case.arrays["losses"], case.tolerance("float64", True))
    assert_grad_close(grad, case.arrays["grad_logits"], case.tolerance("float64", True))


@pytest.mark.parametrize("one_shot", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", case_names())
def test_torch(
    name: str, mode: str, dtype: str, one_shot: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both of the torch front end's ways to a gradient: computed in forward (every golden case
    is below ``_rnnt.STREAM_MIN_BYTES``) and, with that bound at 0, recomputed in backward."""
    torch = pytest.importorskip("torch")
    if not one_shot:
        from rnnt import torch as front_end

        monkeypatch.setattr(front_end._rnnt, "STREAM_MIN_BYTES", 0)
    case = load(name)
    fused = mode == "logits"
    logits, targets, logit_lengths, target_lengths = (
        torch.from_numpy(a) for a in _inputs(case, mode, dtype)
    )
    logits.requires_grad_(True)
    losses = rnnt.rnnt_loss(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        case.blank,
        reduction="none",
        fused_log_softmax=fused,
    )
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    assert losses.dtype == grad.dtype == getattr(torch, dtype)
    tolerance = case.tolerance(dtype, fused)
    assert_losses_close(losses.detach().numpy(), case.arrays["losses"], tolerance)
    assert_grad_close(grad.numpy(), _truth(case, mode), tolerance)
