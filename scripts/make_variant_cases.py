"""Generates the project's own golden cases of the transducer variants into
tests/golden-variants-extra/ (manifest.json, one NAME.npz per case, README.md), in exactly the
format of tests/golden-variants (see its README).

The truth is the float64 reference of bindings/python/tests/variant_reference.py (an explicit arc
list per item, α/β over it), computed from the exact values stored (float32 cases: from the float32
numbers); every item of a case marked ``brute`` is also checked against the enumeration of all its
paths. Deterministic: the same files on every run.

    python scripts/make_variant_cases.py
"""

from __future__ import annotations

import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bindings" / "python" / "tests"))

from variant_reference import Variant, batch, brute_force_loss, log_softmax  # noqa: E402

OUT = ROOT / "tests" / "golden-variants-extra"

FLOAT64_TOLERANCE = {"loss_rtol": 1e-9, "loss_atol": 1e-9, "grad_atol": 1e-9}
FLOAT32_TOLERANCE = {"loss_rtol": 1e-5, "loss_atol": 1e-4, "grad_atol": 1e-4}
D5 = [0, 1, 2, 3, 4]


@dataclass(frozen=True)
class Spec:
    """One case: its variant (manifest name), input shape (B, T, U+1, V), blank, lengths and
    options as the manifest lists them."""

    name: str
    variant: str
    description: str
    dtype: str
    shape: tuple[int, int, int, int]
    blank: int
    logit_lengths: list[int]
    target_lengths: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    brute: bool = False
    fill: float | None = None


def _variant(spec: Spec) -> Variant:
    o = spec.options
    return Variant(
        rnnt_type=str(o.get("rnnt_type", "regular")),
        terminal_blank=bool(o.get("terminal_blank", False)),
        delay_penalty=float(o.get("delay_penalty", 0.0)),
        sigma=float(o.get("sigma", 0.0)),
        big_blank_durations=tuple(o.get("big_blank_durations", ())),
        durations=tuple(o["durations"]) if spec.variant == "tdt" else None,
        fastemit_lambda=float(o.get("fastemit_lambda", 0.0)),
    )


def _tdt(durations: list[int], sigma: float = 0.0) -> dict[str, Any]:
    return {"durations": durations, "sigma": sigma}


def _mb(blank: int, durations: list[int], sigma: float = 0.0) -> dict[str, Any]:
    ids = [blank - 1 - i for i in range(len(durations))]
    return {"sigma": sigma, "big_blank_durations": durations, "big_blank_ids": ids}


def _one_sym(kind: str, terminal_blank: bool = False, delay: float = 0.0) -> dict[str, Any]:
    options: dict[str, Any] = {"rnnt_type": kind, "terminal_blank": terminal_blank}
    if delay:
        options["delay_penalty"] = delay
    return options


MOD = _one_sym("modified")
CON = _one_sym("constrained")

SPECS = [
    # TDT
    Spec(
        "tdt_x_tiny_brute_blank_mid",
        "tdt",
        "tiny, blank in the middle, every path enumerated",
        "float64",
        (2, 3, 3, 4),
        1,
        [3, 2],
        [2, 1],
        _tdt(D5),
        brute=True,
    ),
    Spec(
        "tdt_x_ragged_f32",
        "tdt",
        "ragged lengths, blank = V-1, padding 1e4",
        "float32",
        (3, 10, 5, 7),
        6,
        [10, 7, 4],
        [4, 2, 3],
        _tdt(D5),
        fill=1e4,
    ),
    Spec(
        "tdt_x_ragged_f64_blank0",
        "tdt",
        "ragged lengths, blank = 0, padding -3e3",
        "float64",
        (3, 9, 4, 6),
        0,
        [9, 5, 8],
        [1, 3, 0],
        _tdt([0, 1, 2]),
        fill=-3e3,
    ),
    Spec(
        "tdt_x_empty_targets",
        "tdt",
        "U = 0 for every item, durations [1, 2, 4]",
        "float64",
        (2, 6, 1, 5),
        2,
        [6, 3],
        [0, 0],
        _tdt([1, 2, 4]),
        brute=True,
    ),
    Spec(
        "tdt_x_one_frame",
        "tdt",
        "T = 1: labels of duration 0 then one blank",
        "float32",
        (3, 1, 3, 5),
        4,
        [1, 1, 1],
        [2, 0, 1],
        _tdt(D5),
        brute=True,
    ),
    Spec(
        "tdt_x_impossible_no_zero",
        "tdt",
        "durations [1, 2, 4]: item 1 has T < U+1 (P = 0), item 2 possible",
        "float64",
        (3, 5, 4, 5),
        0,
        [2, 5, 3],
        [3, 3, 2],
        _tdt([1, 2, 4]),
        brute=True,
    ),
    Spec(
        "tdt_x_impossible_even",
        "tdt",
        "durations [0, 2]: odd T is impossible",
        "float32",
        (3, 6, 3, 4),
        3,
        [5, 6, 3],
        [2, 2, 1],
        _tdt([0, 2]),
        brute=True,
    ),
    Spec(
        "tdt_x_sigma_no_zero",
        "tdt",
        "sigma 0.05 with durations [1, 2, 3]",
        "float32",
        (2, 12, 5, 9),
        8,
        [12, 10],
        [4, 3],
        _tdt([1, 2, 3], 0.05),
    ),
    Spec(
        "tdt_x_sigma_f64",
        "tdt",
        "sigma 0.1, blank in the middle",
        "float64",
        (2, 8, 4, 6),
        2,
        [8, 6],
        [3, 2],
        _tdt(D5, 0.1),
    ),
    Spec(
        "tdt_x_medium_f32",
        "tdt",
        "medium, D = 5",
        "float32",
        (2, 40, 11, 24),
        23,
        [40, 33],
        [10, 7],
        _tdt(D5),
    ),
    Spec(
        "tdt_x_medium_f64",
        "tdt",
        "medium, D = 5, blank = 0",
        "float64",
        (2, 30, 9, 16),
        0,
        [30, 27],
        [8, 5],
        _tdt(D5),
    ),
    Spec(
        "tdt_x_long_f32",
        "tdt",
        "T = 800, D = 5",
        "float32",
        (1, 800, 5, 5),
        4,
        [800],
        [4],
        _tdt(D5),
    ),
    Spec(
        "tdt_x_long_f64",
        "tdt",
        "T = 800, durations [0, 1, 2, 4, 8]",
        "float64",
        (1, 800, 4, 4),
        0,
        [800],
        [3],
        _tdt([0, 1, 2, 4, 8]),
    ),
    # multi-blank
    Spec(
        "mb_x_tiny_brute_mid",
        "multiblank",
        "tiny, blank 3 of 5, big blanks [2] at id 2",
        "float64",
        (2, 5, 3, 5),
        3,
        [5, 3],
        [2, 1],
        _mb(3, [2]),
        brute=True,
    ),
    Spec(
        "mb_x_ragged_f32",
        "multiblank",
        "ragged, [2, 4, 8], blank = V-1, padding 1e4",
        "float32",
        (3, 18, 6, 10),
        9,
        [18, 11, 6],
        [5, 3, 4],
        _mb(9, [2, 4, 8]),
        fill=1e4,
    ),
    Spec(
        "mb_x_empty_targets",
        "multiblank",
        "U = 0, [2, 3]",
        "float64",
        (2, 7, 1, 5),
        4,
        [7, 4],
        [0, 0],
        _mb(4, [2, 3]),
        brute=True,
    ),
    Spec(
        "mb_x_one_frame",
        "multiblank",
        "T = 1: big blanks cannot fit",
        "float32",
        (2, 1, 3, 6),
        5,
        [1, 1],
        [2, 1],
        _mb(5, [2, 4]),
        brute=True,
    ),
    Spec(
        "mb_x_sigma_f64",
        "multiblank",
        "sigma 0.08, [2, 4]",
        "float64",
        (2, 10, 4, 7),
        6,
        [10, 8],
        [3, 3],
        _mb(6, [2, 4], 0.08),
    ),
    Spec(
        "mb_x_medium_f32",
        "multiblank",
        "medium, [2, 4, 8]",
        "float32",
        (2, 40, 11, 24),
        23,
        [40, 31],
        [10, 8],
        _mb(23, [2, 4, 8]),
    ),
    Spec(
        "mb_x_medium_f64",
        "multiblank",
        "medium, [2, 4, 8], blank in the middle",
        "float64",
        (2, 30, 9, 16),
        8,
        [30, 24],
        [8, 6],
        _mb(8, [2, 4, 8]),
    ),
    Spec(
        "mb_x_long_f32",
        "multiblank",
        "T = 800, [2, 4, 8]",
        "float32",
        (1, 800, 5, 6),
        5,
        [800],
        [4],
        _mb(5, [2, 4, 8]),
    ),
    # one symbol per frame
    Spec(
        "mod_x_tiny_brute_mid",
        "modified",
        "tiny, blank in the middle",
        "float64",
        (2, 4, 3, 5),
        2,
        [4, 3],
        [2, 2],
        MOD,
        brute=True,
    ),
    Spec(
        "mod_x_ragged_f32",
        "modified",
        "ragged, blank = V-1, padding -3e3",
        "float32",
        (3, 12, 6, 8),
        7,
        [12, 6, 9],
        [5, 5, 2],
        MOD,
        fill=-3e3,
    ),
    Spec(
        "mod_x_empty_targets",
        "modified",
        "U = 0",
        "float64",
        (2, 5, 1, 4),
        0,
        [5, 2],
        [0, 0],
        MOD,
        brute=True,
    ),
    Spec(
        "mod_x_one_frame",
        "modified",
        "T = 1 (U <= 1)",
        "float32",
        (2, 1, 2, 5),
        0,
        [1, 1],
        [1, 0],
        MOD,
        brute=True,
    ),
    Spec(
        "mod_x_terminal_blank",
        "modified",
        "optimized_transducer one_sym_per_frame: terminal_blank, T >= U+1",
        "float64",
        (2, 5, 3, 6),
        0,
        [5, 3],
        [2, 2],
        _one_sym("modified", True),
        brute=True,
    ),
    Spec(
        "mod_x_terminal_blank_f32",
        "modified",
        "terminal_blank, ragged, blank = V-1",
        "float32",
        (3, 14, 6, 9),
        8,
        [14, 8, 6],
        [5, 4, 5],
        _one_sym("modified", True),
    ),
    Spec(
        "mod_x_medium_f64",
        "modified",
        "medium",
        "float64",
        (2, 30, 9, 16),
        15,
        [30, 22],
        [8, 8],
        MOD,
    ),
    Spec("mod_x_long_f32", "modified", "T = 800", "float32", (1, 800, 5, 5), 0, [800], [4], MOD),
    Spec(
        "con_x_tiny_brute_mid",
        "constrained",
        "tiny, blank in the middle",
        "float64",
        (2, 4, 3, 5),
        2,
        [4, 3],
        [2, 2],
        CON,
        brute=True,
    ),
    Spec(
        "con_x_ragged_f32",
        "constrained",
        "ragged, blank = 0, padding 1e4",
        "float32",
        (3, 12, 6, 8),
        0,
        [12, 6, 9],
        [5, 5, 2],
        CON,
        fill=1e4,
    ),
    Spec(
        "con_x_empty_targets",
        "constrained",
        "U = 0",
        "float64",
        (2, 5, 1, 4),
        3,
        [5, 2],
        [0, 0],
        CON,
        brute=True,
    ),
    Spec(
        "con_x_one_frame",
        "constrained",
        "T = 1",
        "float32",
        (2, 1, 2, 5),
        4,
        [1, 1],
        [1, 0],
        CON,
        brute=True,
    ),
    Spec(
        "con_x_medium_f64",
        "constrained",
        "medium",
        "float64",
        (2, 30, 9, 16),
        15,
        [30, 22],
        [8, 8],
        CON,
    ),
    Spec("con_x_long_f32", "constrained", "T = 800", "float32", (1, 800, 5, 5), 4, [800], [4], CON),
    # delay penalty
    Spec(
        "dp_x_tiny_brute_mid",
        "delay_penalty",
        "tiny, delta 0.3, blank in the middle",
        "float64",
        (2, 4, 3, 5),
        2,
        [4, 3],
        [2, 1],
        {"delay_penalty": 0.3},
        brute=True,
    ),
    Spec(
        "dp_x_ragged_f32",
        "delay_penalty",
        "ragged, delta 0.1, own T_b per item",
        "float32",
        (3, 16, 6, 8),
        7,
        [16, 9, 5],
        [5, 3, 4],
        {"delay_penalty": 0.1},
        fill=1e4,
    ),
    Spec(
        "dp_x_empty_targets",
        "delay_penalty",
        "U = 0: the plain loss",
        "float64",
        (2, 5, 1, 4),
        0,
        [5, 3],
        [0, 0],
        {"delay_penalty": 0.5},
        brute=True,
    ),
    Spec(
        "dp_x_one_frame",
        "delay_penalty",
        "T = 1: bonus 0",
        "float32",
        (2, 1, 3, 5),
        4,
        [1, 1],
        [2, 1],
        {"delay_penalty": 0.5},
        brute=True,
    ),
    Spec(
        "dp_x_medium_f64",
        "delay_penalty",
        "medium, delta 0.05",
        "float64",
        (2, 30, 9, 16),
        0,
        [30, 25],
        [8, 6],
        {"delay_penalty": 0.05},
    ),
    Spec(
        "dp_x_long_f32",
        "delay_penalty",
        "T = 800, delta 0.002",
        "float32",
        (1, 800, 5, 5),
        4,
        [800],
        [4],
        {"delay_penalty": 0.002},
    ),
    Spec(
        "dp_x_modified_f64",
        "modified",
        "modified lattice with delta 0.2, blank 0",
        "float64",
        (2, 9, 5, 6),
        0,
        [9, 6],
        [4, 4],
        _one_sym("modified", delay=0.2),
        brute=True,
    ),
    # FastEmit
    Spec(
        "fe_x_tiny_blank0",
        "fastemit",
        "tiny, lambda 0.25, blank 0",
        "float64",
        (2, 4, 3, 5),
        0,
        [4, 3],
        [2, 1],
        {"fastemit_lambda": 0.25},
        brute=True,
    ),
    Spec(
        "fe_x_ragged_f32",
        "fastemit",
        "ragged, lambda 0.01, blank = V-1",
        "float32",
        (3, 14, 6, 9),
        8,
        [14, 9, 5],
        [5, 2, 4],
        {"fastemit_lambda": 0.01},
        fill=-3e3,
    ),
]


def _labels(rng: np.random.Generator, spec: Spec, big_ids: list[int]) -> np.ndarray[Any, Any]:
    """(B, U) labels avoiding the blank and the big blank ids."""
    vocab = spec.shape[3]
    allowed = [k for k in range(vocab) if k != spec.blank and k not in big_ids]
    u_max = spec.shape[2] - 1
    return rng.choice(allowed, size=(spec.shape[0], u_max)).astype(np.int32)


def _make(spec: Spec) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    b, t, u1, _ = spec.shape
    assert len(spec.logit_lengths) == len(spec.target_lengths) == b, spec.name
    assert all(1 <= n <= t for n in spec.logit_lengths), spec.name
    assert all(0 <= n < u1 for n in spec.target_lengths), spec.name
    dtype = np.dtype(spec.dtype)
    logits = (rng.standard_normal(spec.shape) * 1.5).astype(dtype)
    targets = _labels(rng, spec, list(spec.options.get("big_blank_ids", [])))
    lengths = np.asarray(spec.logit_lengths, dtype=np.int32)
    target_lengths = np.asarray(spec.target_lengths, dtype=np.int32)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    duration_logits = None
    if spec.variant == "tdt":
        arrays["token_logits"] = logits
        duration_logits = rng.standard_normal((b, t, u1, len(spec.options["durations"])))
        duration_logits = duration_logits.astype(dtype)
        arrays["duration_logits"] = duration_logits
    else:
        arrays["logits"] = logits
    if spec.fill is not None:
        for item in range(b):
            for head in (logits, duration_logits):
                if head is not None:
                    head[item, lengths[item] :] = spec.fill
                    head[item, :, target_lengths[item] + 1 :] = spec.fill
    arrays.update(
        targets=targets,
        logit_lengths=lengths,
        target_lengths=target_lengths,
        blank=np.asarray(spec.blank, dtype=np.int64),
    )
    for key, value in spec.options.items():
        if key in ("durations", "big_blank_durations", "big_blank_ids"):
            arrays[key] = np.asarray(value, dtype=np.int64)
        elif key in ("sigma", "delay_penalty", "fastemit_lambda"):
            arrays[key] = np.asarray(value, dtype=np.float64)
    variant = _variant(spec)
    losses, grad, dgrad = batch(
        logits, targets, lengths, target_lengths, spec.blank, variant, duration_logits
    )
    if spec.brute:
        for item in range(b):
            tb, ub = lengths[item], target_lengths[item]
            dur = None if duration_logits is None else duration_logits[item, :tb, : ub + 1]
            brute = brute_force_loss(
                logits[item, :tb, : ub + 1], targets[item, :ub], spec.blank, variant, dur
            )
            assert brute == losses[item] or abs(brute - losses[item]) < 1e-10, (spec.name, item)
    if spec.variant == "tdt":
        arrays["grad_token_logits"] = grad
        arrays["grad_duration_logits"] = dgrad  # type: ignore[assignment]
    else:
        arrays["grad_logits"] = grad
        # The gradient with respect to log_softmax(logits) taken as free inputs.
        log_probs = log_softmax(logits)
        _, free, _ = batch(
            log_probs, targets, lengths, target_lengths, spec.blank, variant, fused=False
        )
        arrays["grad_log_probs"] = free
    arrays["losses"] = losses
    if spec.variant == "fastemit":
        arrays["losses_nemo"] = (1 + spec.options["fastemit_lambda"]) * losses
    entry: dict[str, Any] = {
        "variant": spec.variant,
        "description": spec.description + (", every path enumerated" if spec.brute else ""),
        "dtype": spec.dtype,
        "shape": list(spec.shape),
        "blank": spec.blank,
        "options": spec.options,
        "logit_lengths": spec.logit_lengths,
        "target_lengths": spec.target_lengths,
        "losses": [float(x) if np.isfinite(x) else "inf" for x in losses],  # as the shared
        "impossible_items": [i for i in range(b) if np.isinf(losses[i])],
        "tolerance": FLOAT64_TOLERANCE if spec.dtype == "float64" else FLOAT32_TOLERANCE,
    }
    if duration_logits is not None:
        entry["duration_shape"] = list(duration_logits.shape)
    return arrays, entry


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for spec in SPECS:
        arrays, entry = _make(spec)
        np.savez_compressed(OUT / f"{spec.name}.npz", **arrays)
        manifest[spec.name] = entry
        print(spec.name, entry["losses"])
    with open(OUT / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
