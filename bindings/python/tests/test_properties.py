"""Property tests (hypothesis): random shapes, dtypes, strides and memory orders, lengths, labels
and options through ``rnnt.loss_and_grad``, ``rnnt.rnnt_loss``, ``rnnt.align`` and the compat
modules. Each call either matches a float64 reference written here in NumPy, or, where the test
broke one argument, raises ValueError / TypeError naming it; never a crash, never NaN for valid
input. The number of examples is bounded so that the file runs in well under a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnt

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    # The same examples on every run, so that CI cannot pass or fail by the draw.
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Base tolerance per dtype (losses relative to 1 + |loss|, gradients absolute).
TOLERANCE = {"float64": 1e-9, "float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}

#: The arguments a case may break, and the error each must raise.
FAULTS = {
    "targets": ValueError,
    "logit_lengths": ValueError,
    "target_lengths": ValueError,
    "blank": ValueError,
    "logits": ValueError,
    "fastemit_lambda": ValueError,
    "clamp": ValueError,
    "reduction": ValueError,
    "logits dtype": TypeError,
    "targets dtype": TypeError,
}


@dataclass(frozen=True)
class Case:
    """One loss call: float64 values (cast to ``dtype`` when called), int64 labels and
    lengths, options, and the argument broken on purpose (None for a valid call)."""

    logits: np.ndarray[Any, Any]
    targets: np.ndarray[Any, Any]
    packed: bool
    logit_lengths: np.ndarray[Any, Any]
    target_lengths: np.ndarray[Any, Any]
    blank: int
    reduction: str
    fused_log_softmax: bool
    clamp: float
    fastemit_lambda: float
    zero_infinity: bool
    dtype: str
    index_dtype: str
    layout: str
    fault: str | None

    def labels(self) -> np.ndarray[Any, Any]:
        """The targets as passed: padded (B, U), or packed end to end."""
        if not self.packed:
            return self.targets
        rows = [row[:n] for row, n in zip(self.targets, self.target_lengths)]
        return np.concatenate(rows) if rows else np.zeros(0, np.int64)

    def options(self) -> dict[str, Any]:
        """The keyword options of ``rnnt.loss_and_grad``."""
        return {
            "blank": self.blank,
            "reduction": self.reduction,
            "fused_log_softmax": self.fused_log_softmax,
            "clamp": self.clamp,
            "fastemit_lambda": self.fastemit_lambda,
            "zero_infinity": self.zero_infinity,
        }


def laid_out(array: np.ndarray[Any, Any], layout: str) -> np.ndarray[Any, Any]:
    """``array`` (same values) in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "strided":
        wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), array.dtype)
        wide[..., ::2] = array
        return wide[..., ::2]
    if layout == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    if layout == "big-endian" and array.dtype.itemsize > 1:
        return array.astype(array.dtype.newbyteorder(">"))
    if layout == "read-only":
        array = array.copy()
        array.flags.writeable = False
    return array


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A small batch, valid or with one argument broken."""
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    v = draw(st.integers(1, 12))
    u = 0 if v == 1 else draw(st.integers(0, 4))
    blank = draw(st.integers(-v, v - 1))
    blank_id = blank % v
    logit_lengths = np.array([draw(st.integers(1, t)) for _ in range(b)], np.int64)
    target_lengths = np.array([draw(st.integers(0, u)) for _ in range(b)], np.int64)
    others = [k for k in range(v) if k != blank_id] or [0]
    targets = np.array(
        [[draw(st.sampled_from(others)) for _ in range(u)] for _ in range(b)], np.int64
    ).reshape(b, u)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 1.0, 5.0, 0.01]))
    logits = rng.standard_normal((b, t, u + 1, v)) * scale
    if draw(st.booleans()):
        logits[rng.random(logits.shape) < 0.2] = -np.inf
    for i in range(b):  # padding holds values that must never be read
        logits[i, logit_lengths[i] :] = np.nan
        logits[i, :, target_lengths[i] + 1 :] = 1e30
    case = Case(
        logits=logits,
        targets=targets,
        packed=draw(st.booleans()),
        logit_lengths=logit_lengths,
        target_lengths=target_lengths,
        blank=blank,
        reduction=draw(st.sampled_from(["none", "sum", "mean"])),
        fused_log_softmax=draw(st.booleans()),
        clamp=draw(st.sampled_from([-1.0, -1.0, 0.0, 0.05, 0.5])),
        fastemit_lambda=draw(st.sampled_from([0.0, 0.0, 0.1, 1.0])),
        zero_infinity=draw(st.booleans()),
        dtype=draw(st.sampled_from(["float32", "float64", "float16"])),
        index_dtype=draw(st.sampled_from(["int32", "int64"])),
        layout=draw(
            st.sampled_from(["c", "c", "fortran", "strided", "reversed", "big-endian", "read-only"])
        ),
        fault=None,
    )
    if draw(st.integers(0, 3)) == 0:
        case = broken(case, draw(st.sampled_from(sorted(FAULTS))), draw(st.integers(0, 2)))
    return case


def broken(case: Case, fault: str, variant: int) -> Case:
    """``case`` with the argument ``fault`` made invalid (``variant`` picks how)."""
    b, t, positions, v = case.logits.shape
    if fault == "targets":
        if positions == 1:  # no label is ever read: break a length instead
            return broken(case, "target_lengths", variant)
        targets, target_lengths = case.targets.copy(), case.target_lengths.copy()
        target_lengths[0] = max(1, target_lengths[0])
        targets[0, 0] = [v, -1, case.blank % v][variant]
        return replace(case, targets=targets, target_lengths=target_lengths, fault=fault)
    if fault == "logit_lengths":
        lengths = [np.array([0] * b), np.array([t + 1] * b), np.ones(b + 1, np.int64)][variant]
        return replace(case, logit_lengths=lengths, fault=fault)
    if fault == "target_lengths":
        lengths = [np.full(b, -1), np.full(b, positions), np.zeros(b + 1, np.int64)][variant]
        return replace(case, target_lengths=lengths, fault=fault)
    if fault == "blank":
        return replace(case, blank=[v, -v - 1, 10**6][variant], fault=fault)
    if fault == "logits":
        logits = case.logits.copy()
        if variant == 2:
            return replace(case, logits=logits[0], fault=fault)
        logits[0, 0, 0, 0] = [np.nan, np.inf][variant]
        return replace(case, logits=logits, fault=fault)
    if fault == "fastemit_lambda":
        return replace(case, fastemit_lambda=[-0.5, np.nan, np.inf][variant], fault=fault)
    if fault == "clamp":
        return replace(case, clamp=np.nan, fault=fault)
    if fault == "reduction":
        return replace(case, reduction=["avg", "", "MEAN"][variant], fault=fault)
    if fault == "logits dtype":
        return replace(case, dtype=["int32", "bool", "complex64"][variant], fault=fault)
    return replace(case, index_dtype=["float32", "uint8", "float64"][variant], fault=fault)


def reference(case: Case, values: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    """Per-item losses and the gradient of the reduced loss in float64, as DESIGN.md states
    them (``values``: the logits as the call saw them, widened)."""
    b, _, _, v = values.shape
    blank = case.blank % v
    grad = np.zeros(values.shape)
    losses = np.zeros(b)
    weight = 1.0 / b if case.reduction == "mean" else 1.0
    with np.errstate(all="ignore"):
        for i in range(b):
            frames, n = int(case.logit_lengths[i]), int(case.target_lengths[i])
            y = case.targets[i, :n]
            x = values[i, :frames, : n + 1]
            lp = x
            if case.fused_log_softmax:
                peak = np.max(x, axis=-1, keepdims=True)
                peak = np.where(np.isfinite(peak), peak, 0.0)
                lse = np.log(np.sum(np.exp(x - peak), axis=-1, keepdims=True)) + peak
                lp = np.where(np.isneginf(lse), -np.inf, x - lse)
            blank_lp = lp[:, :, blank]
            emit_lp = np.full((frames, n + 1), -np.inf)
            for u in range(n):
                emit_lp[:, u] = lp[:, u, y[u]]
            alpha = np.full((frames, n + 1), -np.inf)
            beta = np.full((frames, n + 1), -np.inf)
            for tt in range(frames):
                for u in range(n + 1):
                    if tt == 0 and u == 0:
                        alpha[tt, u] = 0.0
                        continue
                    a = alpha[tt - 1, u] + blank_lp[tt - 1, u] if tt > 0 else -np.inf
                    e = alpha[tt, u - 1] + emit_lp[tt, u - 1] if u > 0 else -np.inf
                    alpha[tt, u] = np.logaddexp(a, e)
            for tt in reversed(range(frames)):
                for u in reversed(range(n + 1)):
                    if tt == frames - 1 and u == n:
                        beta[tt, u] = blank_lp[tt, u]
                        continue
                    a = beta[tt + 1, u] + blank_lp[tt, u] if tt + 1 < frames else -np.inf
                    e = beta[tt, u + 1] + emit_lp[tt, u] if u < n else -np.inf
                    beta[tt, u] = np.logaddexp(a, e)
            log_p = beta[0, 0]
            if log_p == -np.inf:
                losses[i] = 0.0 if case.zero_infinity else np.inf
                continue
            losses[i] = -log_p
            next_beta = np.vstack([beta[1:], np.full((1, n + 1), -np.inf)])
            next_beta[frames - 1, n] = 0.0  # the final blank leaves the lattice
            blank_arc = np.exp(alpha + blank_lp + next_beta - log_p)
            after_emit = np.hstack([beta[:, 1:], np.full((frames, 1), -np.inf)])
            emit_arc = (1.0 + case.fastemit_lambda) * np.exp(alpha + emit_lp + after_emit - log_p)
            d = np.zeros((frames, n + 1, v))
            d[:, :, blank] -= blank_arc
            for u in range(n):
                d[:, u, y[u]] -= emit_arc[:, u]
            if case.fused_log_softmax:
                occupancy = (blank_arc + emit_arc)[:, :, None]
                d = d + np.where(occupancy > 0, occupancy * np.exp(lp), 0.0)
            if case.clamp > 0:
                d = np.clip(d, -case.clamp, case.clamp)
            grad[i, :frames, : n + 1] = weight * d
    return losses, grad


def reduced(case: Case, losses: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The loss ``rnnt.loss_and_grad`` reports."""
    if case.reduction == "none":
        return losses
    return np.asarray(losses.sum() / (len(losses) if case.reduction == "mean" else 1))


def assert_close(
    case: Case, dtype: str, loss: Any, grad: Any, want_loss: Any, want_grad: Any
) -> None:
    """Losses and gradient within the dtype's tolerance, and finite where the truth is."""
    tol = TOLERANCE[dtype]
    loss = np.asarray(loss, np.float64)
    want_loss = np.asarray(want_loss, np.float64)
    assert not np.isnan(loss).any(), f"NaN loss for valid input: {loss}"
    np.testing.assert_allclose(loss, want_loss, rtol=tol, atol=tol)
    grad = np.asarray(grad, np.float64)
    assert np.isfinite(grad).all(), "non-finite gradient for valid input"
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=tol * (1 + case.fastemit_lambda))


def expect_error(case: Case, error: BaseException) -> None:
    """An error is right only for a broken case: of the fault's type, naming the argument."""
    if case.fault is None:
        raise AssertionError(f"valid input raised {error!r}")
    argument = case.fault.split()[0]
    if argument == "logits" and not case.fused_log_softmax:
        argument = "log_probs"  # what messages call the 4-D input in that mode
    assert isinstance(error, FAULTS[case.fault]), f"{case.fault}: {error!r}"
    assert argument in str(error), f"{case.fault}: {error!r} does not name {argument}"


def numpy_arrays(case: Case) -> tuple[np.ndarray[Any, Any], ...]:
    """The four arrays of a NumPy call, in the case's dtypes and layout."""
    logits = laid_out(case.logits.astype(case.dtype), case.layout)
    index = case.index_dtype
    targets = case.labels().astype(index)
    lengths = (case.logit_lengths.astype(index), case.target_lengths.astype(index))
    return (logits, targets, *lengths)


@SETTINGS
@given(cases())
def test_numpy_loss_and_grad(case: Case) -> None:
    arrays = numpy_arrays(case)
    try:
        loss, grad = rnnt.loss_and_grad(*arrays, **case.options())
    except (ValueError, TypeError) as error:
        expect_error(case, error)
        return
    assert case.fault is None, f"{case.fault} was accepted"
    assert grad.dtype == np.dtype(case.dtype) and grad.shape == case.logits.shape
    losses, want_grad = reference(case, arrays[0].astype(np.float64))
    assert_close(case, case.dtype, loss, grad, reduced(case, losses), want_grad)


@SETTINGS
@given(cases(), st.sampled_from(["float32", "float64", "float16", "bfloat16"]))
def test_torch_rnnt_loss(case: Case, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    if case.fault in ("logits dtype", "targets dtype"):
        case = replace(case, fault=None, dtype="float32", index_dtype="int64")
    if case.layout in ("big-endian", "read-only"):
        case = replace(case, layout="c")
    logits, targets, logit_lengths, target_lengths = numpy_arrays(replace(case, dtype="float64"))
    x = torch.from_numpy(np.ascontiguousarray(logits)).to(getattr(torch, dtype))
    if case.layout == "fortran":  # a non-contiguous view: transposed twice
        axes = tuple(reversed(range(x.dim())))  # any rank: a rank fault may be on the logits
        x = x.permute(axes).contiguous().permute(axes)
    x.requires_grad_(True)
    tensors = [torch.from_numpy(a) for a in (targets, logit_lengths, target_lengths)]
    options = case.options()
    try:
        loss = rnnt.rnnt_loss(x, *tensors, **options)
        loss.sum().backward()
    except (ValueError, TypeError) as error:
        expect_error(case, error)
        return
    assert case.fault is None, f"{case.fault} was accepted"
    assert x.grad is not None and loss.dtype == x.dtype
    values = x.detach().double().numpy()
    losses, want_grad = reference(case, values)
    # For "none", .sum().backward() takes the gradient of the sum, which the reference gives.
    got = loss.detach().double().numpy()
    assert_close(case, dtype, got, x.grad.double().numpy(), reduced(case, losses), want_grad)


@SETTINGS
@given(cases())
def test_align(case: Case) -> None:
    arrays = numpy_arrays(case)
    try:
        alignments = rnnt.align(*arrays, blank=case.blank, fused_log_softmax=case.fused_log_softmax)
    except (ValueError, TypeError) as error:
        if case.fault in ("fastemit_lambda", "clamp", "reduction"):  # not align's options
            raise
        expect_error(case, error)
        return
    assert case.fault in (None, "fastemit_lambda", "clamp", "reduction"), case.fault
    plain = replace(case, zero_infinity=False, reduction="none", clamp=-1.0, fastemit_lambda=0.0)
    losses, _ = reference(plain, arrays[0].astype(np.float64))
    # float64 is computed in float64 arithmetic; float32 and the half floats (widened exactly to
    # float32) in float32 arithmetic.
    tol = TOLERANCE["float64" if case.dtype == "float64" else "float32"]
    for i, alignment in enumerate(alignments):
        frames, n = int(case.logit_lengths[i]), int(case.target_lengths[i])
        assert alignment.occupancy.shape == (frames, n + 1)
        np.testing.assert_allclose(alignment.log_prob, -losses[i], rtol=tol, atol=tol)
        if np.isfinite(losses[i]):
            t, u = np.indices(alignment.occupancy.shape)
            diagonals = np.bincount((t + u).ravel(), alignment.occupancy.ravel())
            np.testing.assert_allclose(diagonals, 1.0, atol=1e-6)
            assert alignment.path.shape == (frames + n, 2)
            assert alignment.score <= alignment.log_prob + 1e-6
        else:
            assert alignment.path.shape == (0, 2) and alignment.score == -np.inf


@SETTINGS
@given(cases())
def test_compat_modules(case: Case) -> None:
    torch = pytest.importorskip("torch")
    from rnnt.compat import awni, torchaudio, warprnnt

    if case.fault is not None or case.dtype == "float16":
        return
    logits, targets, logit_lengths, target_lengths = (
        torch.from_numpy(np.ascontiguousarray(a)) for a in numpy_arrays(replace(case, layout="c"))
    )
    x = logits.clone().requires_grad_(True)
    plain = replace(case, reduction="none", zero_infinity=False, clamp=-1.0, fastemit_lambda=0.0)
    losses, _ = reference(plain, case.logits.astype(case.dtype).astype(np.float64))
    finite = np.isfinite(losses).all()
    tol = TOLERANCE[case.dtype]
    # torchaudio's signature, positional.
    arrays = (x, targets, logit_lengths, target_lengths)
    got = torchaudio.rnnt_loss(*arrays, case.blank, -1, "sum", case.fused_log_softmax)
    if finite:
        np.testing.assert_allclose(float(got), losses.sum(), rtol=tol, atol=tol)
    # warp-transducer: logits in, sum / B, shape (1,).
    if case.fused_log_softmax:
        got = warprnnt.rnnt_loss(*arrays, blank=case.blank)
        assert got.shape == (1,)
        if finite:
            np.testing.assert_allclose(float(got[0]), losses.mean(), rtol=tol, atol=tol)
    # awni: log-probs in, packed labels, the batch mean (size_average=True), shape (1,).
    elif case.packed:
        got = awni.TransducerLoss(blank_label=case.blank)(*arrays)
        assert got.shape == (1,)
        if finite:
            np.testing.assert_allclose(float(got[0]), losses.mean(), rtol=tol, atol=tol)
