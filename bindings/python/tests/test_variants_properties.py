"""Property tests (hypothesis, derandomized) of the variants' front ends against the float64
reference of variant_reference.py: random variants, options, shapes, ragged lengths, blank ids,
dtypes and packed targets through the NumPy and torch front ends; the loss and every gradient must
match, impossible items must give +inf and a zero gradient, never NaN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnt
from variant_reference import Variant, batch

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Tolerance per dtype (losses relative to 1 + |loss|, gradients absolute).
TOLERANCE = {"float64": 1e-9, "float32": 2e-5}


@dataclass(frozen=True)
class Case:
    kind: str
    variant: Variant
    logits: np.ndarray[Any, Any]
    duration_logits: np.ndarray[Any, Any] | None
    targets: np.ndarray[Any, Any]
    logit_lengths: np.ndarray[Any, Any]
    target_lengths: np.ndarray[Any, Any]
    blank: int
    dtype: str
    packed_targets: bool

    def kwargs(self) -> dict[str, Any]:
        v = self.variant
        kw: dict[str, Any] = {"blank": self.blank, "reduction": "none"}
        if v.fastemit_lambda:
            kw["fastemit_lambda"] = v.fastemit_lambda
        if self.kind == "tdt":
            return {**kw, "durations": list(v.durations or ()), "sigma": v.sigma}
        if self.kind == "multiblank":
            return {**kw, "big_blank_durations": list(v.big_blank_durations), "sigma": v.sigma}
        return {**kw, "rnnt_type": v.rnnt_type, "delay_penalty": v.delay_penalty}


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["tdt", "multiblank", "regular", "modified", "constrained"]))
    b = draw(st.integers(1, 3))
    t_max = draw(st.integers(1, 8))
    u_max = draw(st.integers(0, 4))
    big = draw(st.lists(st.integers(2, 5), max_size=3, unique=True)) if kind == "multiblank" else []
    v_size = draw(st.integers(2 + len(big), 7))
    blank = draw(st.integers(len(big), v_size - 1))
    labels = [k for k in range(v_size) if k != blank and not blank - len(big) <= k < blank]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logit_lengths = rng.integers(1, t_max + 1, size=b)
    logit_lengths[0] = t_max
    target_lengths = rng.integers(0, u_max + 1, size=b)
    if kind in ("modified", "constrained"):
        target_lengths = np.minimum(target_lengths, logit_lengths)
    durations = None
    if kind == "tdt":
        durations = tuple(sorted(draw(st.sets(st.integers(0, 5), min_size=1, max_size=4))))
        if durations == (0,):
            durations = (0, 1)
    sigma = draw(st.sampled_from([0.0, 0.0, 0.1])) if kind in ("tdt", "multiblank") else 0.0
    one_lattice = kind in ("regular", "modified", "constrained")
    delay = draw(st.sampled_from([0.0, 0.0, 0.25])) if one_lattice else 0.0
    fastemit = draw(st.sampled_from([0.0, 0.0, 0.5]))
    variant = Variant(
        rnnt_type=kind if kind in ("modified", "constrained") else "regular",
        delay_penalty=delay,
        sigma=sigma,
        big_blank_durations=tuple(big),
        durations=durations,
        fastemit_lambda=fastemit,
    )
    shape = (b, t_max, u_max + 1)
    dtype = draw(st.sampled_from(["float32", "float64"]))
    logits = (rng.standard_normal((*shape, v_size)) * 2).astype(dtype)
    duration_logits = None
    if durations is not None:
        duration_logits = rng.standard_normal((*shape, len(durations))).astype(dtype)
    return Case(
        kind=kind,
        variant=variant,
        logits=logits,
        duration_logits=duration_logits,
        targets=rng.choice(labels, size=(b, u_max)).astype(np.int64).reshape(b, u_max),
        logit_lengths=logit_lengths.astype(np.int64),
        target_lengths=target_lengths.astype(np.int64),
        blank=blank,
        dtype=dtype,
        packed_targets=draw(st.booleans()),
    )


def _reference(case: Case) -> tuple[Any, ...]:
    return batch(
        case.logits,
        case.targets,
        case.logit_lengths,
        case.target_lengths,
        case.blank,
        case.variant,
        case.duration_logits,
    )


def _targets(case: Case) -> np.ndarray[Any, Any]:
    if not case.packed_targets:
        return case.targets
    return np.concatenate([row[:n] for row, n in zip(case.targets, case.target_lengths)])


def _check(case: Case, got: tuple[Any, ...]) -> None:
    tol = TOLERANCE[case.dtype]
    want = _reference(case)
    losses = np.asarray(got[0], dtype=np.float64)
    assert not np.isnan(losses).any()
    assert np.array_equal(np.isinf(losses), np.isinf(want[0]))
    finite = np.isfinite(want[0])
    error = np.abs(losses[finite] - want[0][finite])
    assert np.all(error <= tol * (1 + np.abs(want[0][finite])))
    for g, w in zip(got[1:], want[1:]):
        if w is not None:
            assert np.abs(np.asarray(g, dtype=np.float64) - w).max() <= tol


@SETTINGS
@given(cases())
def test_numpy_matches_the_reference(case: Case) -> None:
    args = (_targets(case), case.logit_lengths, case.target_lengths)
    if case.kind == "tdt":
        got = rnnt.tdt_loss_and_grad(case.logits, case.duration_logits, *args, **case.kwargs())
    elif case.kind == "multiblank":
        got = rnnt.multiblank_loss_and_grad(case.logits, *args, **case.kwargs())
    else:
        got = rnnt.loss_and_grad(case.logits, *args, **case.kwargs())
    _check(case, got)


@SETTINGS
@given(cases())
def test_torch_matches_the_reference(case: Case) -> None:
    leaves = [torch.from_numpy(case.logits).requires_grad_(True)]
    if case.duration_logits is not None:
        leaves.append(torch.from_numpy(case.duration_logits).requires_grad_(True))
    args = [torch.from_numpy(a) for a in (_targets(case), case.logit_lengths, case.target_lengths)]
    if case.kind == "tdt":
        losses = rnnt.tdt_loss(*leaves, *args, **case.kwargs())
    elif case.kind == "multiblank":
        losses = rnnt.multiblank_rnnt_loss(leaves[0], *args, **case.kwargs())
    else:
        losses = rnnt.rnnt_loss(leaves[0], *args, **case.kwargs())
    # Σ over the finite items (an impossible item's gradient is 0 either way).
    grads = torch.autograd.grad(losses.nan_to_num(posinf=0.0).sum(), leaves)
    _check(case, (losses.detach().numpy(), *(g.numpy() for g in grads)))
