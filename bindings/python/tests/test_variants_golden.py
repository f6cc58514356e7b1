"""Every golden case of the transducer variants (the shared tests/golden-variants and our own
tests/golden-variants-extra) through every front end: NumPy, the torch functions, the modules,
``torch.compile(fullgraph=True)``, the compat drop-ins (transformers' ``tdt_loss``,
optimized_transducer's ``one_sym_per_frame``) and the alignments, in float32 and float64, logits
and (where the format has their truth) log-probabilities, against the manifest's tolerances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import rnnt
from rnnt.compat import optimized_transducer, transformers
from variant_golden import (
    Array,
    VariantCase,
    assert_grad_close,
    assert_losses_close,
    case_ids,
    load,
)

DTYPES = ["float32", "float64"]
CASES = case_ids()


def _numpy(case: VariantCase, dtype: str, fused: bool) -> tuple[Array, Array, Array | None]:
    head, (targets, logit_lengths, target_lengths) = case.head(dtype, fused), case.indices(dtype)
    common: dict[str, Any] = {
        "blank": case.blank,
        "reduction": "none",
        "fused_log_softmax": fused,
        **case.numpy_options(),
    }
    if case.tdt:
        durations = case.arrays["duration_logits"].astype(dtype)
        return rnnt.tdt_loss_and_grad(
            head, durations, targets, logit_lengths, target_lengths, **common
        )
    if case.variant == "multiblank":
        return (
            *rnnt.multiblank_loss_and_grad(head, targets, logit_lengths, target_lengths, **common),
            None,
        )
    return (*rnnt.loss_and_grad(head, targets, logit_lengths, target_lengths, **common), None)


def _torch_call(
    case: VariantCase, dtype: str, fused: bool, how: str
) -> tuple[Array, Array, Array | None]:
    """The per-item losses and gradients through the torch front end ``how``: "function",
    "module", "compiled" or "compat"."""
    head = torch.from_numpy(case.head(dtype, fused)).requires_grad_(True)
    indices = [torch.from_numpy(a) for a in case.indices(dtype)]
    leaves = [head]
    options = case.numpy_options()
    if case.tdt:
        duration = torch.from_numpy(case.arrays["duration_logits"].astype(dtype))
        leaves.append(duration.requires_grad_(True))

    def call(*tensors: torch.Tensor) -> torch.Tensor:
        if how == "compat":
            if case.tdt:
                return transformers.tdt_loss(
                    *tensors[:2], *indices, case.blank, reduction="none", **options
                )
            # one_sym_per_frame: the "sum" reduction only; per-item losses item by item.
            return torch.stack(
                [
                    optimized_transducer.transducer_loss(
                        tensors[0][b : b + 1],
                        *(t[b : b + 1] for t in indices),
                        case.blank,
                        from_log_softmax=not fused,
                        one_sym_per_frame=True,
                        reduction="sum",
                    )
                    for b in range(tensors[0].shape[0])
                ]
            )
        kw = {"blank": case.blank, "reduction": "none", "fused_log_softmax": fused, **options}
        if case.tdt:
            if how == "module":
                return rnnt.TDTLoss(**kw)(*tensors[:2], *indices)
            return rnnt.tdt_loss(*tensors[:2], *indices, **kw)
        if case.variant == "multiblank":
            if how == "module":
                return rnnt.MultiblankRNNTLoss(**kw)(tensors[0], *indices)
            return rnnt.multiblank_rnnt_loss(tensors[0], *indices, **kw)
        if how == "module":
            return rnnt.RNNTLoss(**kw)(tensors[0], *indices)
        return rnnt.rnnt_loss(tensors[0], *indices, **kw)

    if how == "compiled":
        torch._dynamo.reset()
        call = torch.compile(call, fullgraph=True)
    losses = call(*leaves)
    grads = torch.autograd.grad(losses.sum(), leaves)
    return (
        losses.detach().double().numpy(),
        grads[0].double().numpy(),
        grads[1].double().numpy() if case.tdt else None,
    )


def _check(
    case: VariantCase,
    dtype: str,
    fused: bool,
    result: tuple[Array, Array, Array | None],
    loss_dtype: str | None = None,
) -> None:
    """``loss_dtype``: the loss's dtype where it is not ``dtype`` (transformers' float32)."""
    losses, grad, duration_grad = result
    truth_losses, truth_grad, truth_duration = case.truth(fused)
    tolerance = case.tolerance(dtype)
    assert_losses_close(losses, truth_losses, case.tolerance(loss_dtype or dtype))
    assert_grad_close(grad, truth_grad, tolerance)
    if truth_duration is not None:
        assert_grad_close(duration_grad, truth_duration, tolerance)


#: The cases each front end reaches: optimized_transducer's ``terminal_blank`` lattice only
#: through its compat drop-in, which (with transformers' ``tdt_loss``) is the only compat one.
DIRECT = [c for c in CASES if not load(c).terminal_blank]
COMPAT = [c for c in CASES if load(c).terminal_blank or load(c).tdt]
#: The TDT format has no log-probability truth.
LOG_PROBS = [c for c in DIRECT if not load(c).tdt]


def test_cases_found() -> None:
    assert len([c for c in CASES if c.startswith("shared/")]) >= 40
    assert len([c for c in CASES if c.startswith("extra/")]) >= 40


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case_id", DIRECT)
def test_numpy(case_id: str, dtype: str) -> None:
    case = load(case_id)
    _check(case, dtype, True, _numpy(case, dtype, True))


@pytest.mark.parametrize("case_id", LOG_PROBS)
def test_numpy_log_probs(case_id: str) -> None:
    """``fused_log_softmax=False`` against ``grad_log_probs``."""
    case = load(case_id)
    _check(case, "float64", False, _numpy(case, "float64", False))


@pytest.mark.parametrize("how", ["function", "module"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case_id", DIRECT)
def test_torch(case_id: str, dtype: str, how: str) -> None:
    case = load(case_id)
    _check(case, dtype, True, _torch_call(case, dtype, True, how))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case_id", COMPAT)
def test_compat(case_id: str, dtype: str) -> None:
    """transformers' ``tdt_loss`` (a float32 loss for any input) and optimized_transducer's
    ``one_sym_per_frame``."""
    case = load(case_id)
    loss_dtype = "float32" if case.tdt else dtype
    _check(case, dtype, True, _torch_call(case, dtype, True, "compat"), loss_dtype)


@pytest.mark.parametrize("case_id", DIRECT)
def test_torch_streamed(case_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gradient recomputed in backward from the kept state (no one-shot gradient)."""
    case = load(case_id)
    monkeypatch.setattr(rnnt.torch._rnnt, "STREAM_MIN_BYTES", 0)
    _check(case, "float64", True, _torch_call(case, "float64", True, "function"))


@pytest.mark.parametrize("case_id", CASES)
def test_torch_compile(case_id: str) -> None:
    case = load(case_id)
    how = "compat" if case.terminal_blank else "compiled"
    dtype = case.stored_dtype
    if how == "compat":
        head = torch.from_numpy(case.head(dtype)).requires_grad_(True)
        indices = [torch.from_numpy(a) for a in case.indices(dtype)]
        compiled = torch.compile(optimized_transducer.transducer_loss, fullgraph=True)
        loss = compiled(head, *indices, case.blank, False, True, "sum")
        (grad,) = torch.autograd.grad(loss, head)
        tolerance = case.tolerance(dtype)
        assert_losses_close(
            loss.detach().double().numpy()[None],
            np.asarray([case.arrays["losses"].sum()]),
            tolerance,
        )
        assert_grad_close(grad.double().numpy(), case.arrays["grad_logits"], tolerance)
        return
    _check(case, dtype, True, _torch_call(case, dtype, True, how))


@pytest.mark.parametrize("case_id", DIRECT)
def test_align(case_id: str) -> None:
    """``rnnt.align`` on the case's lattice: ln P = -loss (for a loss without FastEmit's
    unchanged value and with the delay bonus), a best path no better than ln P, and the labels'
    (frame, duration) pairs consistent with the path."""
    case = load(case_id)
    options = {k: v for k, v in case.numpy_options().items() if k != "fastemit_lambda"}
    duration_logits = case.arrays["duration_logits"].astype("float64") if case.tdt else None
    targets, logit_lengths, target_lengths = case.indices("float64")
    alignments = rnnt.align(
        case.head("float64"),
        targets,
        logit_lengths,
        target_lengths,
        blank=case.blank,
        duration_logits=duration_logits,
        **options,
    )
    for b, item in enumerate(alignments):
        truth = case.arrays["losses"][b]
        if np.isinf(truth):
            assert item.log_prob == -np.inf and item.score == -np.inf
            assert item.path.shape == (0, 2) and item.token_durations.shape == (0, 2)
            continue
        assert abs(item.log_prob + truth) <= 1e-9 * (1 + abs(truth))
        assert item.score <= item.log_prob + 1e-12
        assert len(item.emit_frames) == len(item.token_durations) == target_lengths[b]
        assert np.array_equal(item.token_durations[:, 0], item.emit_frames)
        if case.tdt:
            assert set(item.token_durations[:, 1].tolist()) <= set(options["durations"])
            # Labels' and blanks' durations together cover the T_b frames exactly.
            covered = item.token_durations[:, 1].sum() + item.blank_durations[:, 1].sum()
            assert covered == logit_lengths[b]
