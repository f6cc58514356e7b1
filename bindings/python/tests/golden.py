"""Reading the golden cases (format: tests/golden/README.md) and comparing against them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "tests" / "golden"

FLOAT64_TOLERANCE = {"loss_rtol": 1e-9, "loss_atol": 1e-9, "grad_atol": 1e-9}
FLOAT32_TOLERANCE = {"loss_rtol": 1e-5, "loss_atol": 1e-4, "grad_atol": 1e-4}


@dataclass(frozen=True)
class GoldenCase:
    """One golden batch with its float64 truth and manifest entry."""

    name: str
    arrays: dict[str, np.ndarray[Any, Any]]
    manifest: dict[str, Any]

    @property
    def blank(self) -> int:
        return int(self.arrays["blank"])

    def tolerance(self, dtype: str, fused: bool) -> dict[str, float]:
        """The manifest's tolerance for stored float32 logits, else the README's by dtype."""
        if dtype == "float64":
            return FLOAT64_TOLERANCE
        if fused and self.arrays["logits"].dtype == np.float32:
            return dict(self.manifest["tolerance"])
        return FLOAT32_TOLERANCE


def manifest() -> dict[str, Any]:
    with open(GOLDEN_DIR / "manifest.json") as f:
        result: dict[str, Any] = json.load(f)
    return result


def case_names() -> list[str]:
    return sorted(manifest())


def load(name: str) -> GoldenCase:
    with np.load(GOLDEN_DIR / f"{name}.npz") as data:
        arrays = {key: data[key] for key in data.files}
    return GoldenCase(name, arrays, manifest()[name])


def assert_losses_close(
    actual: np.ndarray[Any, Any], truth: np.ndarray[Any, Any], tolerance: dict[str, float]
) -> None:
    """|loss - truth| <= atol + rtol * |truth| per item; +inf must match +inf."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == truth.shape
    assert np.array_equal(np.isinf(actual), np.isinf(truth)), (actual, truth)
    finite = np.isfinite(truth)
    error = np.abs(actual[finite] - truth[finite])
    bound = tolerance["loss_atol"] + tolerance["loss_rtol"] * np.abs(truth[finite])
    assert np.all(error <= bound), f"loss error {error.max()} above {bound.min()}"


def assert_grad_close(
    actual: np.ndarray[Any, Any], truth: np.ndarray[Any, Any], tolerance: dict[str, float]
) -> None:
    """Elementwise |grad - truth| <= grad_atol."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == truth.shape
    error = float(np.abs(actual - truth).max())
    assert error <= tolerance["grad_atol"], f"grad error {error} above {tolerance['grad_atol']}"
