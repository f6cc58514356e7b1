"""8 Python threads calling the loss at once (the GIL is released during compute) get exactly
the results of serial calls."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
import pytest

import rnnt

THREADS = 8


def batch(seed: int) -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(seed)
    b, t, u, v = 4, 60, 12, 40
    logits = rng.standard_normal((b, t, u + 1, v)).astype(np.float32)
    targets = rng.integers(0, v - 1, (b, u)).astype(np.int32)
    logit_lengths = rng.integers(t // 2, t + 1, b).astype(np.int32)
    target_lengths = rng.integers(0, u + 1, b).astype(np.int32)
    return logits, targets, logit_lengths, target_lengths


def run_concurrently(work: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * THREADS
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                results[i] = work(i)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_numpy_threads_match_serial() -> None:
    batches = [batch(i) for i in range(THREADS)]

    def work(i: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return rnnt.loss_and_grad(*batches[i], reduction="none")

    serial = [work(i) for i in range(THREADS)]
    for (loss, grad), (want_loss, want_grad) in zip(run_concurrently(work), serial):
        np.testing.assert_array_equal(loss, want_loss)
        np.testing.assert_array_equal(grad, want_grad)


def test_torch_threads_match_serial() -> None:
    torch = pytest.importorskip("torch")
    batches = [[torch.from_numpy(a) for a in batch(i)] for i in range(THREADS)]

    def work(i: int) -> tuple[Any, Any]:
        logits, *rest = batches[i]
        x = logits.clone().requires_grad_(True)
        loss = rnnt.rnnt_loss(x, *rest, reduction="sum")
        loss.backward()
        return loss.detach(), x.grad

    serial = [work(i) for i in range(THREADS)]
    for (loss, grad), (want_loss, want_grad) in zip(run_concurrently(work), serial):
        assert torch.equal(loss, want_loss)
        assert torch.equal(grad, want_grad)


def test_the_gil_is_released_during_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ticking Python thread keeps running while another thread is inside a long loss call."""
    monkeypatch.setenv("RNNT_NUM_THREADS", "1")  # leave a core to the ticker
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 300, 60, 256))  # float64: 150 MB, a few tenths of a second
    rest = (np.zeros((4, 59), np.int32), np.full(4, 300, np.int32), np.full(4, 59, np.int32))
    ticks: list[float] = []
    done = threading.Event()

    def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    started = time.perf_counter()
    rnnt.loss_and_grad(logits, *rest)
    finished = time.perf_counter()
    done.set()
    thread.join()
    during = [t for t in ticks if started <= t <= finished]
    gaps = np.diff([started, *during, finished])
    assert finished - started > 0.1, "the call is too short to tell"
    assert gaps.max() < (finished - started) / 2, (gaps.max(), finished - started)
