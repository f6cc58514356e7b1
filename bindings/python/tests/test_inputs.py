"""What the front ends accept: half-precision logits, int32 / int64 / mixed indices, strided,
Fortran-order and byte-swapped arrays (copied only then), packed targets; zero_infinity and
FastEmit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import rnnt


def batch(seed: int = 0) -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((3, 7, 5, 9))
    targets = rng.integers(0, 8, (3, 4)).astype(np.int32)
    return logits, targets, np.array([7, 5, 2], np.int32), np.array([4, 0, 3], np.int32)


def reference(logits: np.ndarray[Any, Any], *rest: Any, **options: Any) -> tuple[Any, Any]:
    """The float64 result on the same values."""
    return rnnt.loss_and_grad(logits.astype(np.float64), *rest, **options)


@pytest.mark.parametrize(("dtype", "grad_atol"), [("float16", 2e-3)])
def test_numpy_half(dtype: str, grad_atol: float) -> None:
    logits, *rest = batch()
    half = logits.astype(dtype)
    loss, grad = rnnt.loss_and_grad(half, *rest, reduction="none")
    want_loss, want_grad = reference(half, *rest, reduction="none")
    assert loss.dtype == grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(loss.astype(np.float64), want_loss, rtol=2e-3)
    np.testing.assert_allclose(grad.astype(np.float64), want_grad, rtol=0, atol=grad_atol)


@pytest.mark.parametrize(("dtype", "grad_atol"), [("float16", 2e-3), ("bfloat16", 8e-3)])
def test_torch_half(dtype: str, grad_atol: float) -> None:
    torch = pytest.importorskip("torch")
    logits, *rest = batch()
    half = torch.from_numpy(logits).to(getattr(torch, dtype)).requires_grad_(True)
    loss = rnnt.rnnt_loss(half, *map(torch.from_numpy, rest), reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), half)
    assert loss.dtype == grad.dtype == half.dtype
    want_loss, want_grad = reference(half.detach().double().numpy(), *rest, reduction="none")
    np.testing.assert_allclose(loss.detach().double().numpy(), want_loss, rtol=1e-2)
    np.testing.assert_allclose(grad.double().numpy(), want_grad, rtol=0, atol=grad_atol)


def test_numpy_ml_dtypes_bfloat16() -> None:
    """NumPy cannot lend extension dtypes through DLPack: bfloat16 arrays are widened (exactly)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    logits, *rest = batch()
    half = logits.astype(ml_dtypes.bfloat16)
    loss, grad = rnnt.loss_and_grad(half, *rest, reduction="none")
    want_loss, want_grad = reference(half.astype(np.float32), *rest, reduction="none")
    assert loss.dtype == grad.dtype == half.dtype
    np.testing.assert_allclose(loss.astype(np.float64), want_loss, rtol=1e-2)
    np.testing.assert_allclose(grad.astype(np.float64), want_grad, rtol=0, atol=8e-3)


@pytest.mark.parametrize(
    "index_dtypes",
    [("int64", "int64", "int64"), ("int64", "int32", "int32"), ("int32", "int64", "int32")],
)
def test_int64_and_mixed_indices(index_dtypes: tuple[str, str, str]) -> None:
    logits, *rest = batch()
    want = rnnt.loss_and_grad(logits, *rest)
    mixed = [a.astype(d) for a, d in zip(rest, index_dtypes)]
    got = rnnt.loss_and_grad(logits, *mixed)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    torch = pytest.importorskip("torch")
    loss = rnnt.rnnt_loss(torch.from_numpy(logits), *map(torch.from_numpy, mixed))
    assert float(loss) == pytest.approx(float(want[0]), rel=1e-12)


def test_numpy_layouts_are_copied_only_when_needed() -> None:
    logits, *rest = batch()
    want = rnnt.loss_and_grad(logits, *rest)
    wide = np.zeros((*logits.shape[:3], 2 * logits.shape[3]))
    wide[..., ::2] = logits
    for variant in (
        wide[..., ::2],  # strided
        np.asfortranarray(logits),  # column-major
        logits.astype(">f8"),  # big-endian
    ):
        assert not (variant.flags.c_contiguous and variant.dtype.isnative)
        got = rnnt.loss_and_grad(variant, *rest)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    got = rnnt.loss_and_grad(logits.tolist(), *(a.tolist() for a in rest))
    np.testing.assert_allclose(got[1], want[1])


def test_torch_non_contiguous_logits_get_their_gradient() -> None:
    torch = pytest.importorskip("torch")
    logits, *rest = batch()
    indices = list(map(torch.from_numpy, rest))
    base = torch.from_numpy(logits).transpose(1, 2).contiguous().requires_grad_(True)
    view = base.transpose(1, 2)  # (B, T, U+1, V) but not contiguous
    assert not view.is_contiguous()
    loss = rnnt.rnnt_loss(view, *indices)
    loss.backward()
    want_loss, want_grad = rnnt.loss_and_grad(logits, *rest)
    assert float(loss.detach()) == pytest.approx(float(want_loss), rel=1e-12)
    assert base.grad is not None
    np.testing.assert_allclose(base.grad.transpose(1, 2).numpy(), want_grad, rtol=0, atol=1e-12)


def test_torch_packed_targets() -> None:
    torch = pytest.importorskip("torch")
    logits, targets, logit_lengths, target_lengths = batch()
    packed = np.concatenate([row[:n] for row, n in zip(targets, target_lengths)])
    want = rnnt.rnnt_loss(*map(torch.from_numpy, (logits, targets, logit_lengths, target_lengths)))
    got = rnnt.rnnt_loss(*map(torch.from_numpy, (logits, packed, logit_lengths, target_lengths)))
    assert torch.equal(got, want)


def test_zero_infinity_for_an_impossible_item() -> None:
    logits, *rest = batch()
    logits[1, :, :, -1] = -np.inf  # no blank anywhere in item 1: no path ends
    losses, grad = rnnt.loss_and_grad(logits, *rest, reduction="none")
    assert np.isinf(losses[1]) and np.isfinite(losses[[0, 2]]).all()
    assert not np.isnan(grad).any() and (grad[1] == 0).all()
    zeroed, zeroed_grad = rnnt.loss_and_grad(logits, *rest, reduction="none", zero_infinity=True)
    assert zeroed[1] == 0 and (zeroed[[0, 2]] == losses[[0, 2]]).all()
    np.testing.assert_array_equal(zeroed_grad, grad)


def test_fastemit_keeps_the_loss_and_changes_the_gradient() -> None:
    logits, *rest = batch()
    loss, grad = rnnt.loss_and_grad(logits, *rest)
    fast_loss, fast_grad = rnnt.loss_and_grad(logits, *rest, fastemit_lambda=0.01)
    assert fast_loss == loss
    assert np.abs(fast_grad - grad).max() > 1e-6
    np.testing.assert_allclose(fast_grad.sum(axis=-1), 0, atol=1e-12)  # rows of a softmax gradient


def test_reductions() -> None:
    logits, *rest = batch()
    losses, grad_sum = rnnt.loss_and_grad(logits, *rest, reduction="none")
    total, grad_total = rnnt.loss_and_grad(logits, *rest, reduction="sum")
    mean, grad_mean = rnnt.loss_and_grad(logits, *rest, reduction="mean")
    assert losses.shape == (3,) and total.shape == () and mean.shape == ()
    assert total == pytest.approx(losses.sum()) and mean == pytest.approx(losses.mean())
    np.testing.assert_array_equal(grad_sum, grad_total)
    # The kernel folds the 1/B weight into its per-row factor: equal up to a few roundings.
    np.testing.assert_allclose(grad_mean, grad_total / 3, rtol=1e-13)
