"""Soak and concurrency: many calls in a loop with the process's memory bounded and every result
the same; eight threads at once on different shapes (large gradients through the reused memory
of ``rnnt._gradient_memory`` among them) with the results of serial calls; and gradients kept
alive (in a list, through a view, in an optimizer's state) never overwritten by later calls.

CI runs the short soak (``RNNT_SOAK_CALLS``, default 300); ``scripts/soak.py`` runs 10,000 calls
and prints the figures that ``docs/robustness.md`` reports.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import rnnt
from rnnt._gradient_memory import MIN_BYTES

torch = pytest.importorskip("torch")

#: (B, T, U+1, V) of the soak: float32 logits whose 38 MB gradient goes through reused memory.
SOAK_SHAPE = (4, 150, 31, 512)
#: Calls of the CI soak.
SOAK_CALLS = int(os.environ.get("RNNT_SOAK_CALLS", "300"))
#: How much the resident memory may grow after the warm-up calls.
RSS_GROWTH_LIMIT = 32 << 20
#: Calls before the resident memory is taken as the baseline (buffers, pools and caches filled).
WARM_UP_CALLS = 20

#: Shapes of the eight threads: small ones, and ones whose gradient is reused memory.
THREAD_SHAPES = [
    (2, 20, 6, 30),
    (3, 9, 4, 17),
    (2, 64, 33, 1024),
    (1, 50, 21, 64),
    (2, 64, 33, 1040),
    (4, 12, 8, 100),
    (2, 66, 33, 1024),
    (1, 3, 1, 2),
]
assert sum(np.prod(s) * 4 >= MIN_BYTES for s in THREAD_SHAPES) == 3


def batch(shape: tuple[int, int, int, int], seed: int) -> tuple[np.ndarray[Any, Any], ...]:
    """A ragged float32 batch of ``shape`` (blank = V - 1, the default)."""
    rng = np.random.default_rng(seed)
    b, t, positions, v = shape
    logits = rng.standard_normal(shape).astype(np.float32)
    targets = rng.integers(0, v - 1, (b, positions - 1)).astype(np.int32)
    logit_lengths = rng.integers(max(1, t // 2), t + 1, b).astype(np.int32)
    target_lengths = rng.integers(0, positions, b).astype(np.int32)
    return logits, targets, logit_lengths, target_lengths


def rss_bytes() -> int:
    """The process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def numpy_call(arrays: tuple[np.ndarray[Any, Any], ...]) -> tuple[Any, Any]:
    """Loss and gradient by the NumPy front end."""
    return rnnt.loss_and_grad(*arrays, reduction="sum")


def torch_call(arrays: tuple[np.ndarray[Any, Any], ...]) -> tuple[Any, Any]:
    """Loss and ``.grad`` by the torch front end (forward and backward)."""
    logits, *rest = (torch.from_numpy(a) for a in arrays)
    x = logits.clone().requires_grad_(True)
    loss = rnnt.rnnt_loss(x, *rest, reduction="sum")
    loss.backward()
    return loss.detach().numpy(), x.grad.numpy()


def soak(calls: int, report: Callable[[str], None] | None = None) -> dict[str, float]:
    """``calls`` calls on ``SOAK_SHAPE``, alternating the NumPy and torch front ends; every
    result must equal the first of its front end. Returns the figures: calls, seconds, resident
    memory after the warm-up, at the end and at its largest, in bytes."""
    arrays = batch(SOAK_SHAPE, 0)
    first = [numpy_call(arrays), torch_call(arrays)]
    first = [(np.array(loss), grad.copy()) for loss, grad in first]
    start = time.perf_counter()
    baseline = largest = 0
    for call in range(calls):
        front_end = call % 2
        loss, grad = (numpy_call, torch_call)[front_end](arrays)
        if call % 50 == 0 or call == calls - 1:
            want_loss, want_grad = first[front_end]
            assert np.array_equal(loss, want_loss) and np.array_equal(grad, want_grad), call
        del loss, grad
        if call + 1 == WARM_UP_CALLS:
            baseline = largest = rss_bytes()
        elif call >= WARM_UP_CALLS and call % 10 == 0:
            largest = max(largest, rss_bytes())
            if report is not None and call % 1000 == 0:
                report(f"call {call}: RSS {rss_bytes() / 2**20:.1f} MiB")
    end = rss_bytes()
    return {
        "calls": calls,
        "seconds": time.perf_counter() - start,
        "rss_after_warm_up": baseline,
        "rss_end": end,
        "rss_largest": max(largest, end),
    }


def test_soak_keeps_memory_bounded_and_results_equal() -> None:
    figures = soak(max(SOAK_CALLS, 2 * WARM_UP_CALLS))
    growth = figures["rss_largest"] - figures["rss_after_warm_up"]
    assert growth <= RSS_GROWTH_LIMIT, figures


def test_eight_threads_on_different_shapes_match_serial_calls() -> None:
    batches = [batch(shape, seed) for seed, shape in enumerate(THREAD_SHAPES)]
    calls = [numpy_call if i % 2 == 0 else torch_call for i in range(len(batches))]
    serial = [calls[i](batches[i]) for i in range(len(batches))]
    serial = [(np.array(loss), grad.copy()) for loss, grad in serial]
    results: list[list[tuple[Any, Any]]] = [[] for _ in batches]
    errors: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def worker(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):  # every result kept: later calls must not write into it
                results[i].append(calls[i](batches[i]))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for i, kept in enumerate(results):
        for loss, grad in kept:
            np.testing.assert_array_equal(loss, serial[i][0])
            np.testing.assert_array_equal(grad, serial[i][1])


def test_gradients_kept_in_a_list_or_a_view_are_never_overwritten() -> None:
    shape = THREAD_SHAPES[2]
    want = [numpy_call(batch(shape, seed))[1].copy() for seed in range(4)]
    kept = [numpy_call(batch(shape, seed))[1] for seed in range(4)]
    corner = numpy_call(batch(shape, 0))[1][0, :3]  # a view; its base is dropped
    for seed in range(4, 8):
        numpy_call(batch(shape, seed))
        torch_call(batch(shape, seed))
    for seed, grad in enumerate(kept):
        np.testing.assert_array_equal(grad, want[seed])
    np.testing.assert_array_equal(corner, want[0][0, :3])


def test_a_gradient_in_an_optimizer_state_is_never_overwritten() -> None:
    shape = THREAD_SHAPES[2]
    logits, *rest = (torch.from_numpy(a) for a in batch(shape, 0))
    weights = torch.nn.Parameter(logits.clone())
    optimizer = torch.optim.SGD([weights], lr=0.1, momentum=0.9)
    rnnt.rnnt_loss(weights, *rest, reduction="sum").backward()
    assert weights.grad is not None
    first = weights.grad.clone()
    kept = weights.grad  # held by the caller, as some optimizers hold the last gradient
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    momentum = optimizer.state[weights]["momentum_buffer"]
    for seed in range(1, 4):
        other, *other_rest = (torch.from_numpy(a) for a in batch(shape, seed))
        x = other.clone().requires_grad_(True)
        rnnt.rnnt_loss(x, *other_rest, reduction="sum").backward()
    assert torch.equal(kept, first)
    assert torch.equal(momentum, first)
