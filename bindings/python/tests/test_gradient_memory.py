"""Reuse of large gradients' memory by the front ends: a gradient's memory is reused only once
nothing refers to it (not as ``.grad``, not through a view, not as a returned NumPy array), and the
values written are those of a fresh allocation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

import rnnt  # noqa: E402
from rnnt._gradient_memory import MIN_BYTES  # noqa: E402

# (B, T, U+1, V) float32 logits just above the size from which gradients are reused.
SHAPE = (2, 64, 33, 1024)
assert SHAPE[0] * SHAPE[1] * SHAPE[2] * SHAPE[3] * 4 >= MIN_BYTES


@pytest.fixture(autouse=True)
def reuse_enabled() -> Iterator[None]:
    """Every test starts with reuse on and no kept buffer, and leaves it on."""
    rnnt.reuse_gradient_memory(False)
    rnnt.reuse_gradient_memory(True)
    yield
    rnnt.reuse_gradient_memory(True)


def inputs(seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(SHAPE, generator=generator).requires_grad_(True)
    targets = torch.randint(0, SHAPE[3] - 1, (SHAPE[0], SHAPE[2] - 1), generator=generator)
    logit_lengths = torch.tensor([SHAPE[1], SHAPE[1] - 5])
    target_lengths = torch.tensor([SHAPE[2] - 1, SHAPE[2] - 4])
    return logits, targets.int(), logit_lengths.int(), target_lengths.int()


def gradient(seed: int) -> torch.Tensor:
    """d mean loss / d logits of batch `seed`, as autograd leaves it in ``.grad``."""
    logits, *rest = inputs(seed)
    rnnt.rnnt_loss(logits, *rest).backward()
    assert logits.grad is not None
    return logits.grad


def fresh_gradient(seed: int) -> torch.Tensor:
    """The same gradient written into a fresh tensor."""
    rnnt.reuse_gradient_memory(False)
    try:
        return gradient(seed).clone()
    finally:
        rnnt.reuse_gradient_memory(True)


def test_memory_of_a_dropped_gradient_is_reused_with_the_same_values() -> None:
    want = [fresh_gradient(seed) for seed in range(2)]
    first = gradient(0)
    address = first.data_ptr()
    assert torch.equal(first, want[0])
    del first
    second = gradient(1)
    assert second.data_ptr() == address
    assert torch.equal(second, want[1])


def test_a_gradient_still_held_is_not_overwritten() -> None:
    held = gradient(0)
    want = held.clone()
    other = gradient(1)
    assert other.data_ptr() != held.data_ptr()
    assert torch.equal(held, want)


def test_a_view_keeps_the_memory_from_reuse() -> None:
    first = gradient(0)
    view = first[1, 3:9]
    want = view.clone()
    address = first.data_ptr()
    del first
    second = gradient(1)
    assert second.data_ptr() != address
    assert torch.equal(view, want)


def test_small_gradients_and_disabled_reuse_take_fresh_tensors() -> None:
    logits = torch.randn(2, 5, 4, 6, requires_grad=True)
    targets = torch.randint(0, 5, (2, 3), dtype=torch.int32)
    lengths = (torch.tensor([5, 4], dtype=torch.int32), torch.tensor([3, 2], dtype=torch.int32))
    rnnt.rnnt_loss(logits, targets, *lengths).backward()
    assert logits.grad is not None and logits.grad.is_contiguous()
    want = fresh_gradient(2)
    rnnt.reuse_gradient_memory(False)
    assert torch.equal(gradient(2), want)


def test_numpy_gradients_reuse_memory_only_once_dropped() -> None:
    logits, *rest = (t.detach().numpy() for t in inputs(0))
    rnnt.reuse_gradient_memory(False)
    _, want = rnnt.loss_and_grad(logits, *rest)
    rnnt.reuse_gradient_memory(True)
    _, first = rnnt.loss_and_grad(logits, *rest)
    address = first.ctypes.data
    assert address % 64 == 0
    assert (first == want).all()
    _, held = rnnt.loss_and_grad(logits, *rest)
    assert held.ctypes.data != address
    del first
    _, again = rnnt.loss_and_grad(logits, *rest)
    assert again.ctypes.data == address
    assert (again == want).all() and (held == want).all()
