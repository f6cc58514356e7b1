"""The golden cases of the transducer variants (format: tests/golden-variants/README.md): the
shared ones (tests/golden-variants, else ../shared/golden-variants) and our own
(tests/golden-variants-extra), and one way to call each through every front end."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from variant_reference import Variant, log_softmax

ROOT = Path(__file__).resolve().parents[3]
SHARED_DIRS = [ROOT / "tests" / "golden-variants", ROOT.parent / "shared" / "golden-variants"]
EXTRA_DIR = ROOT / "tests" / "golden-variants-extra"

FLOAT64_TOLERANCE = {"loss_rtol": 1e-9, "loss_atol": 1e-9, "grad_atol": 1e-9}
FLOAT32_TOLERANCE = {"loss_rtol": 1e-5, "loss_atol": 1e-4, "grad_atol": 1e-4}

Array = np.ndarray[Any, Any]


def shared_dir() -> Path:
    """The shared cases' folder: the project's copy, else the shared one."""
    for folder in SHARED_DIRS:
        if (folder / "manifest.json").exists():
            return folder
    raise FileNotFoundError(f"no golden-variants in {SHARED_DIRS}")


@cache
def _manifest(folder: Path) -> dict[str, Any]:
    with open(folder / "manifest.json") as f:
        result: dict[str, Any] = json.load(f)
    return result


def case_ids() -> list[str]:
    """Every case as "shared/NAME" or "extra/NAME"."""
    return [f"shared/{n}" for n in sorted(_manifest(shared_dir()))] + [
        f"extra/{n}" for n in sorted(_manifest(EXTRA_DIR))
    ]


@dataclass(frozen=True)
class VariantCase:
    """One case: its arrays (inputs and float64 truth) and manifest entry."""

    name: str
    arrays: dict[str, Array]
    manifest: dict[str, Any]

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])

    @property
    def blank(self) -> int:
        return int(self.arrays["blank"])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.manifest.get("options", {}))

    @property
    def tdt(self) -> bool:
        return self.variant == "tdt"

    @property
    def terminal_blank(self) -> bool:
        return bool(self.options.get("terminal_blank", False))

    @property
    def stored_dtype(self) -> str:
        return str(self.manifest["dtype"])

    def tolerance(self, dtype: str) -> dict[str, float]:
        """The manifest's tolerance in the stored dtype; float64 (exact values of a float32
        case) 1e-9; float32 of a float64 case: the float32 tolerance."""
        if dtype == self.stored_dtype:
            return dict(self.manifest["tolerance"])
        return FLOAT64_TOLERANCE if dtype == "float64" else FLOAT32_TOLERANCE

    def reference_variant(self) -> Variant:
        o = self.options
        return Variant(
            rnnt_type=str(o.get("rnnt_type", "regular")),
            terminal_blank=self.terminal_blank,
            delay_penalty=float(o.get("delay_penalty", 0.0)),
            sigma=float(o.get("sigma", 0.0)),
            big_blank_durations=tuple(o.get("big_blank_durations", ())),
            durations=tuple(o["durations"]) if self.tdt else None,
            fastemit_lambda=float(o.get("fastemit_lambda", 0.0)),
        )

    def head(self, dtype: str, fused: bool = True) -> Array:
        """The (token) logits in ``dtype``, or for ``fused=False`` the log-probabilities of the
        stored values (float64) cast to ``dtype``."""
        values = self.arrays["token_logits" if self.tdt else "logits"]
        return (values if fused else log_softmax(values)).astype(dtype)

    def indices(self, dtype: str) -> tuple[Array, Array, Array]:
        # float64 runs use int64 indices, float32 runs the stored int32.
        index = np.int64 if dtype == "float64" else np.int32
        return tuple(  # type: ignore[return-value]
            self.arrays[k].astype(index) for k in ("targets", "logit_lengths", "target_lengths")
        )

    def truth(self, fused: bool = True) -> tuple[Array, Array, Array | None]:
        """(losses, grad of the (token) head, grad of the duration head or None)."""
        if self.tdt:
            return (
                self.arrays["losses"],
                self.arrays["grad_token_logits"],
                self.arrays["grad_duration_logits"],
            )
        grad = self.arrays["grad_logits" if fused else "grad_log_probs"]
        return self.arrays["losses"], grad, None

    def numpy_options(self) -> dict[str, Any]:
        """Keywords of the NumPy / torch functional front end of this variant (beside blank
        and reduction)."""
        o = self.options
        if self.tdt:
            return {"durations": list(o["durations"]), "sigma": float(o.get("sigma", 0.0))}
        if self.variant == "multiblank":
            return {
                "big_blank_durations": list(o["big_blank_durations"]),
                "sigma": float(o.get("sigma", 0.0)),
            }
        options: dict[str, Any] = {}
        if self.variant in ("modified", "constrained"):
            options["rnnt_type"] = self.variant
        if "delay_penalty" in o:
            options["delay_penalty"] = float(o["delay_penalty"])
        if "fastemit_lambda" in o:
            options["fastemit_lambda"] = float(o["fastemit_lambda"])
        return options


@cache
def load(case_id: str) -> VariantCase:
    group, name = case_id.split("/")
    folder = shared_dir() if group == "shared" else EXTRA_DIR
    with np.load(folder / f"{name}.npz") as data:
        arrays = {key: data[key] for key in data.files}
    return VariantCase(name, arrays, _manifest(folder)[name])


def assert_losses_close(actual: Any, truth: Array, tolerance: dict[str, float]) -> None:
    """|loss - truth| <= atol + rtol * |truth| per item; +inf must match +inf, never NaN."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == truth.shape
    assert not np.isnan(actual).any(), actual
    assert np.array_equal(np.isinf(actual), np.isinf(truth)), (actual, truth)
    finite = np.isfinite(truth)
    error = np.abs(actual[finite] - truth[finite])
    bound = tolerance["loss_atol"] + tolerance["loss_rtol"] * np.abs(truth[finite])
    assert np.all(error <= bound), f"loss error {error.max()} above {bound.min()}"


def assert_grad_close(actual: Any, truth: Array, tolerance: dict[str, float]) -> None:
    """Elementwise |grad - truth| <= grad_atol; no NaN."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == truth.shape
    assert not np.isnan(actual).any()
    error = float(np.abs(actual - truth).max()) if actual.size else 0.0
    assert error <= tolerance["grad_atol"], f"grad error {error} above {tolerance['grad_atol']}"


#: A front end as the tests call it: (case, dtype, fused) -> (per-item losses, d Σ loss / d head,
#: d Σ loss / d duration head or None), all NumPy.
FrontEnd = Callable[[VariantCase, str, bool], tuple[Array, Array, Array | None]]
