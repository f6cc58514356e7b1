"""A child made by ``fork`` after the parent used the loss (DataLoader workers, the default
``multiprocessing`` start method on Linux) computes the loss, and the parent's result: the
native thread pools' threads are not inherited by a child, which used to wait on them forever."""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

import numpy as np
import pytest

import rnnt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")


def batch() -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(3)
    b, t, u, v = 8, 30, 10, 20
    logits = rng.standard_normal((b, t, u + 1, v)).astype(np.float32)
    targets = rng.integers(0, v - 1, (b, u)).astype(np.int32)
    logit_lengths = rng.integers(1, t + 1, b).astype(np.int32)
    target_lengths = rng.integers(0, u + 1, b).astype(np.int32)
    return logits, targets, logit_lengths, target_lengths


def in_child(queue: Any) -> None:
    """Computes the loss of :func:`batch` with and without alignment, and reports it."""
    loss, grad = rnnt.loss_and_grad(*batch(), reduction="none")
    log_probs = [item.log_prob for item in rnnt.align(*batch())]
    queue.put((loss, grad, log_probs))


def test_a_forked_child_computes_the_loss() -> None:
    want_loss, want_grad = rnnt.loss_and_grad(*batch(), reduction="none")
    want_log_probs = [item.log_prob for item in rnnt.align(*batch())]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=in_child, args=(queue,))
    child.start()
    try:
        loss, grad, log_probs = queue.get(timeout=120)
    except Exception:
        child.kill()
        pytest.fail("the forked child did not compute the loss within 120 s")
    child.join(timeout=30)
    assert child.exitcode == 0
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grad, want_grad)
    assert log_probs == want_log_probs
