"""The package imports and the NumPy front end works without torch (run in a subprocess where
``import torch`` fails)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from golden import GOLDEN_DIR


def run_python(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_rnnt_does_not_import_torch() -> None:
    run_python(
        """
        import sys
        import rnnt
        assert "torch" not in sys.modules, "import rnnt imported torch"
        """
    )


def test_numpy_front_end_with_torch_blocked() -> None:
    run_python(
        f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        import rnnt

        with np.load({str(GOLDEN_DIR / "seed_random_batch.npz")!r}) as case:
            loss, grad = rnnt.loss_and_grad(
                case["logits"], case["targets"], case["logit_lengths"], case["target_lengths"],
                blank=int(case["blank"]), reduction="sum",
            )
            assert abs(float(loss) - case["losses"].sum()) < 1e-4, (loss, case["losses"])
            assert np.abs(grad - case["grad_logits"]).max() < 1e-4
        try:
            rnnt.rnnt_loss
        except ImportError:
            pass
        else:
            raise AssertionError("rnnt.rnnt_loss should need torch")
        """
    )
