"""The float64 reference of the variants (variant_reference.py) checked on its own: against the
enumeration of every path on random tiny items, its gradients against central finite
differences, the identities that tie the variants together, and every shared golden case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from variant_golden import assert_grad_close, assert_losses_close, case_ids, load
from variant_reference import Variant, batch, brute_force_loss, item_loss_and_grads, log_softmax

#: One variant of each kind (and of each option) that the tiny random items go through.
VARIANTS = {
    "regular": Variant(),
    "tdt": Variant(durations=(0, 1, 2, 3)),
    "tdt without 0, sigma": Variant(durations=(1, 2, 4), sigma=0.2),
    "multiblank": Variant(big_blank_durations=(2, 3)),
    "multiblank sigma": Variant(big_blank_durations=(2,), sigma=0.1),
    "modified": Variant(rnnt_type="modified"),
    "modified, terminal blank": Variant(rnnt_type="modified", terminal_blank=True),
    "constrained": Variant(rnnt_type="constrained"),
    "delay penalty": Variant(delay_penalty=0.3),
    "modified, delay penalty": Variant(rnnt_type="modified", delay_penalty=0.4),
    "fastemit": Variant(fastemit_lambda=0.5),
}


def _item(
    rng: np.random.Generator, v: Variant, frames: int, labels: int, vocab: int = 6
) -> tuple[Any, ...]:
    blank = vocab - 1
    big = len(v.big_blank_durations)
    logits = rng.standard_normal((frames, labels + 1, vocab))
    durations = None if v.durations is None else rng.standard_normal((frames, labels + 1, 4))
    if durations is not None:
        durations = durations[..., : len(v.durations)]
    y = rng.integers(0, vocab - 1 - big, size=labels)
    return logits, durations, y, blank


@pytest.mark.parametrize("name", list(VARIANTS))
def test_alpha_beta_is_the_sum_over_every_path(name: str) -> None:
    v = VARIANTS[name]
    rng = np.random.default_rng(17)
    for frames in range(1, 6):
        for labels in range(4):
            if v.rnnt_type != "regular" and frames < labels + v.terminal_blank:
                continue
            logits, durations, y, blank = _item(rng, v, frames, labels)
            loss, _, _ = item_loss_and_grads(logits, durations, y, blank, v)
            brute = brute_force_loss(logits, y, blank, v, durations)
            if np.isinf(brute):
                assert np.isinf(loss)
            else:
                assert abs(loss - brute) < 1e-10 * (1 + abs(brute)), (frames, labels)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_gradients_are_finite_differences(name: str) -> None:
    """FastEmit's gradient is not the loss's by design: its blank-arc part is, checked with
    the label scale 1."""
    v = VARIANTS[name]
    rng = np.random.default_rng(3)
    logits, durations, y, blank = _item(rng, v, 4, 2)
    plain = Variant(**{**v.__dict__, "fastemit_lambda": 0.0})
    loss, grad, duration_grad = item_loss_and_grads(logits, durations, y, blank, plain)
    assert np.isfinite(loss)
    step = 1e-6
    heads = [(logits, grad)] + ([] if durations is None else [(durations, duration_grad)])
    for head, analytic in heads:
        numeric = np.zeros_like(head)
        for index in np.ndindex(head.shape):
            saved = head[index]
            head[index] = saved + step
            up = item_loss_and_grads(logits, durations, y, blank, plain)[0]
            head[index] = saved - step
            down = item_loss_and_grads(logits, durations, y, blank, plain)[0]
            head[index] = saved
            numeric[index] = (up - down) / (2 * step)
        assert np.abs(numeric - analytic).max() < 1e-7


def test_fastemit_scales_the_label_arcs_only() -> None:
    """FastEmit's gradient = plain gradient + λ · (label-arc part), the loss unchanged."""
    rng = np.random.default_rng(5)
    logits, _, y, blank = _item(rng, Variant(), 5, 3)
    plain = item_loss_and_grads(logits, None, y, blank, Variant())
    fast = item_loss_and_grads(logits, None, y, blank, Variant(fastemit_lambda=1.0))
    double = item_loss_and_grads(logits, None, y, blank, Variant(fastemit_lambda=2.0))
    assert plain[0] == fast[0] == double[0]
    assert np.allclose(double[1] - fast[1], fast[1] - plain[1], atol=1e-12)


def test_terminal_blank_is_modified_on_one_frame_less() -> None:
    """optimized_transducer's one_sym_per_frame:
    OT(x) = k2_modified(x[:T-1]) - lp[T-1, U, blank]."""
    rng = np.random.default_rng(9)
    logits, _, y, blank = _item(rng, Variant(), 6, 3)
    ot = item_loss_and_grads(logits, None, y, blank, Variant("modified", terminal_blank=True))[0]
    k2 = item_loss_and_grads(logits[:-1], None, y, blank, Variant("modified"))[0]
    assert abs(ot - (k2 - log_softmax(logits)[-1, -1, blank])) < 1e-12


def test_tdt_with_duration_1_only_is_one_symbol_per_frame() -> None:
    """TDT with durations [1] (every arc one frame, the duration certain) is the modified lattice
    ending with a blank: optimized_transducer's one_sym_per_frame."""
    rng = np.random.default_rng(11)
    logits, _, y, blank = _item(rng, Variant(), 6, 3)
    one_sym = item_loss_and_grads(logits, None, y, blank, Variant("modified", terminal_blank=True))
    tdt = item_loss_and_grads(
        logits, rng.standard_normal((6, 4, 1)), y, blank, Variant(durations=(1,))
    )
    assert abs(tdt[0] - one_sym[0]) < 1e-12
    assert np.abs(tdt[1] - one_sym[1]).max() < 1e-12
    assert np.abs(tdt[2]).max() < 1e-12  # type: ignore[arg-type]


@pytest.mark.parametrize("case_id", [c for c in case_ids() if c.startswith("shared/")])
def test_shared_golden_cases(case_id: str) -> None:
    case = load(case_id)
    dur = case.arrays.get("duration_logits")
    targets, logit_lengths, target_lengths = case.indices("float64")
    for fused in (True, False) if not case.tdt else (True,):
        losses, grad, duration_grad = batch(
            case.head("float64", fused),
            targets,
            logit_lengths,
            target_lengths,
            case.blank,
            case.reference_variant(),
            dur,
            fused,
        )
        truth_losses, truth_grad, truth_duration = case.truth(fused)
        tolerance = {"loss_rtol": 1e-12, "loss_atol": 1e-11, "grad_atol": 1e-11}
        assert_losses_close(losses, truth_losses, tolerance)
        assert_grad_close(grad, truth_grad, tolerance)
        if truth_duration is not None:
            assert_grad_close(duration_grad, truth_duration, tolerance)


def test_extra_cases_are_what_the_generator_makes() -> None:
    """tests/golden-variants-extra holds exactly what scripts/make_variant_cases.py writes (its
    truth from this reference, its brute-force checks passed)."""
    path = Path(__file__).resolve().parents[3] / "scripts" / "make_variant_cases.py"
    spec = importlib.util.spec_from_file_location("make_variant_cases", path)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_variant_cases", generator)  # its dataclasses look it up
    spec.loader.exec_module(generator)
    extra = [c for c in case_ids() if c.startswith("extra/")]
    assert sorted(c.split("/")[1] for c in extra) == sorted(s.name for s in generator.SPECS)
    for case_spec in generator.SPECS:
        arrays, entry = generator._make(case_spec)
        case = load(f"extra/{case_spec.name}")
        assert entry == case.manifest
        assert sorted(arrays) == sorted(case.arrays)
        for key, value in arrays.items():
            assert np.array_equal(value, case.arrays[key]), (case_spec.name, key)
