"""A short run of examples/train_joint_transducer.py: the fused loss trains the tiny transducer
along the same loss curve as its joiner's output layer followed by ``rnnt.rnnt_loss``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_fused_and_unfused_loss_curves_agree() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import train_joint_transducer as example
    finally:
        sys.path.remove(str(EXAMPLES))
    unfused = example.train(25, fused=False)
    fused = example.train(25, fused=True)
    assert unfused[-1] < unfused[0]
    for a, b in zip(fused, unfused):
        assert abs(a - b) <= 1e-5 * abs(b)
