"""The variants' front ends beyond the golden cases: NeMo's joint tensor read in place, autograd's
gradcheck in float64, half dtypes, the custom ops under opcheck, reductions, agreement with
transformers' ``tdt_loss`` where its gradients are finite, and bad input naming the argument."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import rnnt
from rnnt.compat import transformers as compat_transformers
from variant_reference import Variant, batch

DURATIONS = [0, 1, 2, 3, 4]


def _batch(
    seed: int, b: int = 3, t: int = 7, u: int = 3, v: int = 6, d: int = 5, big: int = 0
) -> tuple[torch.Tensor, ...]:
    """A (B, T, U+1, V+D) joint, padded targets avoiding blank (V-1) and ``big`` ids below it,
    ragged lengths (item 0 full)."""
    g = torch.Generator().manual_seed(seed)
    joint = torch.randn(b, t, u + 1, v + d, generator=g, dtype=torch.float64)
    targets = torch.randint(0, v - 1 - big, (b, u), generator=g, dtype=torch.int32)
    logit_lengths = torch.tensor([t] + [max(1, t - 2 * i) for i in range(1, b)], dtype=torch.int32)
    target_lengths = torch.tensor([u] + [max(0, u - i) for i in range(1, b)], dtype=torch.int32)
    return joint, targets, logit_lengths, target_lengths


def test_tdt_reads_views_of_one_joint_without_copying(monkeypatch: pytest.MonkeyPatch) -> None:
    """NeMo's joint (B, T, U+1, V+D) split into ``joint[..., :V]`` and ``joint[..., V:]``: both
    heads go to the native module as they are (their data pointers are the joint's), and the
    result equals that of contiguous copies."""
    joint, targets, logit_lengths, target_lengths = _batch(0)
    joint.requires_grad_(True)
    token, duration = joint[..., :6], joint[..., 6:]
    lent: list[int] = []
    to_dlpack = rnnt._torch_ops.to_dlpack

    def recorded(tensor: torch.Tensor) -> Any:
        lent.append(tensor.data_ptr())
        return to_dlpack(tensor)

    monkeypatch.setattr(rnnt._torch_ops, "to_dlpack", recorded)
    loss = rnnt.tdt_loss(
        token, duration, targets, logit_lengths, target_lengths, blank=5, durations=DURATIONS
    )
    assert joint.data_ptr() in lent
    assert joint.data_ptr() + 6 * joint.element_size() in lent
    (grad,) = torch.autograd.grad(loss, joint)
    monkeypatch.undo()
    copies = [token.detach().clone().requires_grad_(True), duration.detach().clone()]
    copies[1].requires_grad_(True)
    want = rnnt.tdt_loss(
        *copies, targets, logit_lengths, target_lengths, blank=5, durations=DURATIONS
    )
    want_grads = torch.autograd.grad(want, copies)
    assert torch.equal(loss.detach(), want.detach())
    assert torch.equal(grad, torch.cat(want_grads, dim=-1))


def test_numpy_tdt_reads_a_view_of_one_joint() -> None:
    joint, targets, logit_lengths, target_lengths = (a.numpy() for a in _batch(1))
    args = (targets, logit_lengths, target_lengths)
    got = rnnt.tdt_loss_and_grad(
        joint[..., :6], joint[..., 6:], *args, blank=5, durations=DURATIONS, reduction="none"
    )
    want = rnnt.tdt_loss_and_grad(
        np.ascontiguousarray(joint[..., :6]),
        np.ascontiguousarray(joint[..., 6:]),
        *args,
        blank=5,
        durations=DURATIONS,
        reduction="none",
    )
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


VARIANT_CALLS = {
    "tdt": lambda x, dur, *a: rnnt.tdt_loss(
        x, dur, *a, blank=5, durations=[0, 1, 2], sigma=0.05, reduction="sum"
    ),
    "tdt without 0": lambda x, dur, *a: rnnt.tdt_loss(
        x, dur, *a, blank=5, durations=[1, 2, 3], reduction="mean"
    ),
    "multiblank": lambda x, dur, *a: rnnt.multiblank_rnnt_loss(
        x, *a, blank=5, big_blank_durations=[2, 3], sigma=0.1
    ),
    "modified": lambda x, dur, *a: rnnt.rnnt_loss(x, *a, blank=5, rnnt_type="modified"),
    "constrained": lambda x, dur, *a: rnnt.rnnt_loss(x, *a, blank=5, rnnt_type="constrained"),
    "delay": lambda x, dur, *a: rnnt.rnnt_loss(x, *a, blank=5, delay_penalty=0.2),
    "modified delay": lambda x, dur, *a: rnnt.rnnt_loss(
        x, *a, blank=5, rnnt_type="modified", delay_penalty=0.1, reduction="none"
    ),
}


@pytest.mark.parametrize("name", list(VARIANT_CALLS))
def test_gradcheck(name: str) -> None:
    """torch.autograd.gradcheck in float64 (both TDT heads)."""
    joint, targets, logit_lengths, target_lengths = _batch(2, b=2, t=5, u=2, big=2)
    x = joint[..., :6].contiguous().requires_grad_(True)
    dur = joint[..., 6:9].contiguous().requires_grad_(True)
    call = VARIANT_CALLS[name]
    if name.startswith("tdt"):
        assert torch.autograd.gradcheck(
            lambda a, b: call(a, b, targets, logit_lengths, target_lengths), (x, dur)
        )
    else:
        assert torch.autograd.gradcheck(
            lambda a: call(a, None, targets, logit_lengths, target_lengths), (x,)
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(VARIANT_CALLS))
def test_half_dtypes(name: str, dtype: torch.dtype) -> None:
    """Half inputs are read as the numbers they hold: the loss and gradients equal those of
    the same numbers in float64, to the half's rounding of the results."""
    joint, targets, logit_lengths, target_lengths = _batch(3, big=2)
    joint = joint.to(dtype)
    heads = [joint[..., :6].contiguous(), joint[..., 6:9].contiguous()]
    results = []
    for cast in (dtype, torch.float64):
        leaves = [h.to(cast).requires_grad_(True) for h in heads]
        loss = VARIANT_CALLS[name](*leaves, targets, logit_lengths, target_lengths)
        wanted = leaves if name.startswith("tdt") else leaves[:1]
        grads = torch.autograd.grad(loss.sum(), wanted)
        assert loss.dtype == cast and all(g.dtype == cast for g in grads)
        results.append([loss.double(), *(g.double() for g in grads)])
    tolerance = 2e-3 if dtype == torch.float16 else 1.6e-2
    for half, full in zip(*results):
        assert torch.allclose(half, full, rtol=tolerance, atol=tolerance)


def test_tdt_opcheck() -> None:
    """torch.library.opcheck of both custom ops with a duration head."""
    joint, targets, logit_lengths, target_lengths = _batch(4)
    token = joint[..., :6].contiguous().requires_grad_(True)
    duration = joint[..., 6:].contiguous().requires_grad_(True)
    for reduction in ("mean", "none"):
        for one_shot in (True, False):
            arrays = (token, targets, logit_lengths, target_lengths, duration)
            options = (
                5,
                reduction,
                -1.0,
                True,
                0.0,
                False,
                "regular",
                False,
                0.0,
                0.1,
                [],
                DURATIONS,
            )
            forward = (*arrays, *options, one_shot, torch.float64)
            torch.library.opcheck(torch.ops.rnnt.loss_forward.default, forward)
            _, token_kept = torch.ops.rnnt.loss_forward(*forward)
            upstream = (
                torch.rand(3, dtype=torch.float64) if reduction == "none" else torch.tensor(2.0)
            )
            detached = (token.detach(), *arrays[1:4], duration.detach())
            torch.library.opcheck(
                torch.ops.rnnt.loss_backward.default,
                (token_kept, *detached, upstream, *options),
            )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_tdt_reductions_and_weights(reduction: str) -> None:
    """``reduction`` as in rnnt_loss, and an upstream gradient per item for "none"."""
    joint, targets, logit_lengths, target_lengths = _batch(5)
    token = joint[..., :6].contiguous().requires_grad_(True)
    duration = joint[..., 6:].contiguous().requires_grad_(True)
    args = (targets, logit_lengths, target_lengths)
    loss = rnnt.tdt_loss(token, duration, *args, blank=5, durations=DURATIONS, reduction=reduction)
    losses, grad, duration_grad = batch(
        token.detach().numpy(),
        *(a.numpy() for a in args),
        5,
        Variant(durations=tuple(DURATIONS)),
        duration.detach().numpy(),
    )
    weights = np.full(3, 1 / 3 if reduction == "mean" else 1.0)
    if reduction == "none":
        weights = np.array([0.5, -2.0, 3.0])
        assert np.allclose(loss.detach().numpy(), losses, rtol=1e-12)
        upstream = torch.from_numpy(weights)
    else:
        assert abs(float(loss.detach()) - float((weights * losses).sum())) < 1e-9
        upstream = torch.tensor(1.0, dtype=torch.float64)
    got = torch.autograd.grad(loss, (token, duration), upstream)
    scale = weights.reshape(-1, 1, 1, 1)
    assert np.allclose(got[0].numpy(), scale * grad, atol=1e-12)
    assert np.allclose(got[1].numpy(), scale * duration_grad, atol=1e-12)  # type: ignore[operator]


def _transformers_tdt_loss() -> Any:
    module = pytest.importorskip("transformers.loss.loss_tdt")
    return module.tdt_loss


@pytest.mark.parametrize("reduction", ["mean_volume", "mean_batch", "mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_transformers_tdt_loss(seed: int, reduction: str) -> None:
    """transformers' own tdt_loss (its float32 PyTorch recursion, the CPU fallback), on full-length
    items where its autograd gradients are finite: the same loss and gradients for both heads."""
    theirs = _transformers_tdt_loss()
    g = torch.Generator().manual_seed(seed)
    b, t, u, v = 3, 9, 4, 7
    token = torch.randn(b, t, u + 1, v, generator=g)
    duration = torch.randn(b, t, u + 1, 5, generator=g)
    targets = torch.randint(1, v, (b, u), generator=g, dtype=torch.int32)
    logit_lengths = torch.full((b,), t, dtype=torch.int32)
    target_lengths = torch.full((b,), u, dtype=torch.int32)
    args = (targets, logit_lengths, target_lengths, 0, DURATIONS, 0.05, reduction)
    results = []
    for fn in (theirs, compat_transformers.tdt_loss):
        leaves = [token.clone().requires_grad_(True), duration.clone().requires_grad_(True)]
        loss = fn(*leaves, *args)
        grads = torch.autograd.grad(loss.sum(), leaves)
        results.append((loss.detach(), *grads))
    assert all(torch.isfinite(x).all() for x in results[0])
    assert results[1][0].dtype == torch.float32
    for want, got in zip(*results):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_finite_gradients_where_transformers_gives_nan() -> None:
    """Ragged lengths and durations without 0 leave lattice nodes no path reaches: transformers'
    autograd gradient is NaN there; ours is finite, exact and 0 in padding."""
    theirs = _transformers_tdt_loss()
    joint, targets, logit_lengths, target_lengths = _batch(6, d=3)
    token = joint[..., :6].float().contiguous()
    duration = joint[..., 6:].float().contiguous()
    args = (targets, logit_lengths, target_lengths, 5, [1, 2, 4], 0.0, "sum")
    leaves = [token.clone().requires_grad_(True), duration.clone().requires_grad_(True)]
    their_grads = torch.autograd.grad(theirs(*leaves, *args), leaves)
    assert any(torch.isnan(g).any() for g in their_grads)
    leaves = [token.clone().requires_grad_(True), duration.clone().requires_grad_(True)]
    loss = compat_transformers.tdt_loss(*leaves, *args)
    grads = torch.autograd.grad(loss, leaves)
    _, want, want_duration = batch(
        token.numpy(),
        *(a.numpy() for a in args[:3]),
        5,
        Variant(durations=(1, 2, 4)),
        duration.numpy(),
    )
    assert np.abs(grads[0].numpy() - want).max() < 1e-5
    assert np.abs(grads[1].numpy() - want_duration).max() < 1e-5  # type: ignore[operator]


def _tdt(**changes: Any) -> Any:
    joint, targets, logit_lengths, target_lengths = _batch(7)
    kw: dict[str, Any] = {
        "token_logits": joint[..., :6],
        "duration_logits": joint[..., 6:],
        "targets": targets,
        "logit_lengths": logit_lengths,
        "target_lengths": target_lengths,
        "blank": 5,
        "durations": DURATIONS,
    }
    kw.update(changes)
    return rnnt.tdt_loss(**kw)


def _mb(labels: int | None = None, **changes: Any) -> Any:
    """A multi-blank call (blank 5, big blanks [2, 4]) with ``changes``; ``labels``: every label
    that id."""
    joint, targets, logit_lengths, target_lengths = _batch(8, big=2)
    if labels is not None:
        targets = torch.full_like(targets, labels)
    kw: dict[str, Any] = {"blank": 5, "big_blank_durations": [2, 4]}
    kw.update(changes)
    return rnnt.multiblank_rnnt_loss(joint[..., :6], targets, logit_lengths, target_lengths, **kw)


def _rnnt(**changes: Any) -> Any:
    joint, targets, logit_lengths, target_lengths = _batch(9)
    kw: dict[str, Any] = {"blank": 5}
    kw.update(changes)
    return rnnt.rnnt_loss(joint[..., :6], targets, logit_lengths, target_lengths, **kw)


def _short_modified() -> Any:
    joint, targets, _, target_lengths = _batch(10, t=4, u=3)
    return rnnt.rnnt_loss(
        joint[..., :6],
        targets,
        torch.tensor([2, 3, 4]),
        target_lengths,
        blank=5,
        rnnt_type="modified",
    )


BAD_INPUTS = {
    "durations not ascending": (lambda: _tdt(durations=[0, 2, 1, 3, 4]), ValueError, "durations"),
    "durations repeated": (lambda: _tdt(durations=[0, 1, 1, 2, 3]), ValueError, "durations"),
    "durations negative": (lambda: _tdt(durations=[-1, 0, 1, 2, 3]), ValueError, "durations"),
    "durations empty": (lambda: _tdt(durations=[]), ValueError, "durations"),
    "durations not integers": (lambda: _tdt(durations=[0.5, 1]), TypeError, "durations"),
    "duration head of the wrong size": (
        lambda: _tdt(durations=[0, 1, 2]),
        ValueError,
        "duration",
    ),
    "big blank id below 0": (
        lambda: _mb(labels=5, blank=1, big_blank_durations=[2, 3, 4]),
        ValueError,
        "big_blank",
    ),
    "big blank id a label": (lambda: _mb(big_blank_durations=[2, 3, 4, 5]), ValueError, "big"),
    "big blank duration 1": (lambda: _mb(big_blank_durations=[1]), ValueError, "big_blank"),
    "modified with T < U": (_short_modified, ValueError, "logit_lengths"),
    "bad rnnt_type": (lambda: _rnnt(rnnt_type="k2"), ValueError, "rnnt_type"),
    "NaN delay_penalty": (lambda: _rnnt(delay_penalty=float("nan")), ValueError, "delay_penalty"),
    "NaN sigma": (lambda: _mb(sigma=float("nan")), ValueError, "sigma"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_names_the_argument(name: str) -> None:
    call, error, argument = BAD_INPUTS[name]
    with pytest.raises(error, match=argument):
        call()


def test_numpy_bad_durations_name_the_argument() -> None:
    joint, targets, logit_lengths, target_lengths = (a.numpy() for a in _batch(11))
    with pytest.raises(ValueError, match="durations"):
        rnnt.tdt_loss_and_grad(
            joint[..., :6],
            joint[..., 6:],
            targets,
            logit_lengths,
            target_lengths,
            blank=5,
            durations=[0, 2, 1, 3, 4],
        )
    with pytest.raises(ValueError, match="rnnt_type"):
        rnnt.loss_and_grad(
            joint[..., :6], targets, logit_lengths, target_lengths, rnnt_type="other"
        )


@pytest.mark.parametrize("from_log_softmax", [False, True])
def test_optimized_transducer_one_sym_per_frame_packed(from_log_softmax: bool) -> None:
    """optimized_transducer's own layout, packed logits, with ``one_sym_per_frame=True``: the
    modified lattice ending with a blank (golden README section c), "mean" over the batch."""
    from rnnt.compat import optimized_transducer

    joint, targets, _, target_lengths = _batch(12, t=6, u=3)
    logit_lengths = torch.tensor([6, 5, 3], dtype=torch.int32)
    logits = joint[..., :6]
    if from_log_softmax:
        logits = logits.log_softmax(-1)
    rows = [
        logits[b, :t, : u + 1].reshape(-1, 6)
        for b, (t, u) in enumerate(zip(logit_lengths.tolist(), target_lengths.tolist()))
    ]
    packed = torch.cat(rows).requires_grad_(True)
    loss = optimized_transducer.transducer_loss(
        packed, targets, logit_lengths, target_lengths, 5, from_log_softmax, True
    )
    (grad,) = torch.autograd.grad(loss, packed)
    losses, padded_grad, _ = batch(
        logits.detach().numpy(),
        targets.numpy(),
        logit_lengths.numpy(),
        target_lengths.numpy(),
        5,
        Variant("modified", terminal_blank=True),
        fused=not from_log_softmax,
    )
    assert abs(float(loss.detach()) - losses.mean()) < 1e-10
    want = np.concatenate(
        [
            padded_grad[b, :t, : u + 1].reshape(-1, 6)
            for b, (t, u) in enumerate(zip(logit_lengths.tolist(), target_lengths.tolist()))
        ]
    )
    assert np.abs(grad.numpy() - want / 3).max() < 1e-12


def test_tdt_packed_views_match_padded() -> None:
    """Packed heads (sum of T_b*(U_b+1) rows) as views of one packed joint: the padded result,
    rows for rows."""
    joint, targets, logit_lengths, target_lengths = _batch(13)
    items = list(zip(logit_lengths.tolist(), target_lengths.tolist()))
    packed = torch.cat([joint[b, :t, : u + 1].reshape(-1, 11) for b, (t, u) in enumerate(items)])
    packed.requires_grad_(True)
    options: dict[str, Any] = {"blank": 5, "durations": DURATIONS, "reduction": "none"}
    lengths = (logit_lengths, target_lengths)
    loss = rnnt.tdt_loss(packed[:, :6], packed[:, 6:], targets, *lengths, **options)
    (grad,) = torch.autograd.grad(loss.sum(), packed)
    padded = joint.clone().requires_grad_(True)
    want = rnnt.tdt_loss(padded[..., :6], padded[..., 6:], targets, *lengths, **options)
    (want_grad,) = torch.autograd.grad(want.sum(), padded)
    assert torch.allclose(loss, want, rtol=1e-12)
    rows = torch.cat([want_grad[b, :t, : u + 1].reshape(-1, 11) for b, (t, u) in enumerate(items)])
    assert torch.allclose(grad, rows, atol=1e-12)
