"""Bad inputs raise ValueError / TypeError whose message names the argument, never crash."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import rnnt


def good_inputs() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "logits": rng.standard_normal((2, 4, 3, 5)).astype(np.float32),
        "targets": np.array([[1, 2], [3, 0]], dtype=np.int32),
        "logit_lengths": np.array([4, 3], dtype=np.int32),
        "target_lengths": np.array([2, 1], dtype=np.int32),
    }


def with_changes(**changes: Any) -> dict[str, Any]:
    inputs = good_inputs()
    for name, change in changes.items():
        inputs[name] = change(inputs[name]) if callable(change) else change
    return inputs


def nan_at_start(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    x = x.copy()
    x[0, 0, 0, 1] = np.nan
    return x


BAD_ARRAYS: list[tuple[dict[str, Any], type[Exception], str]] = [
    (with_changes(logits=lambda x: x[0]), ValueError, "logits"),
    (with_changes(logits=lambda x: x.astype(np.int32)), TypeError, "logits"),
    (with_changes(logits=nan_at_start), ValueError, "logits[0][0][0][1] = NaN"),
    (with_changes(logits=lambda x: x[:, :, :, :0]), ValueError, "logits"),
    (with_changes(targets=lambda t: t.astype(np.float32)), TypeError, "targets"),
    (with_changes(targets=lambda t: t.astype(np.int16)), TypeError, "targets"),
    (with_changes(targets=np.array([[1, 9], [3, 0]], np.int32)), ValueError, "targets[0][1] = 9"),
    (with_changes(targets=np.array([[1, 4], [3, 0]], np.int32)), ValueError, "blank"),
    (with_changes(targets=np.array([[1, -1], [3, 0]], np.int32)), ValueError, "targets[0][1]"),
    (with_changes(targets=lambda t: t[:1]), ValueError, "targets"),
    (with_changes(targets=np.zeros((2, 2, 1), np.int32)), ValueError, "targets"),
    (with_changes(logit_lengths=np.array([5, 3], np.int32)), ValueError, "logit_lengths[0] = 5"),
    (with_changes(logit_lengths=np.array([4, 0], np.int32)), ValueError, "logit_lengths[1] = 0"),
    (with_changes(logit_lengths=np.array([4, 3, 2], np.int32)), ValueError, "logit_lengths"),
    (with_changes(logit_lengths=np.array([4.0, 3.0])), TypeError, "logit_lengths"),
    (with_changes(target_lengths=np.array([3, 1], np.int32)), ValueError, "target_lengths[0] = 3"),
    (with_changes(target_lengths=np.array([2, -1], np.int32)), ValueError, "target_lengths[1]"),
]

BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"blank": 5}, ValueError, "blank = 5"),
    ({"blank": -6}, ValueError, "blank = -6"),
    ({"blank": 1.5}, TypeError, "blank"),
    ({"reduction": "avg"}, ValueError, "reduction"),
    ({"clamp": float("nan")}, ValueError, "clamp"),
    ({"fastemit_lambda": -0.5}, ValueError, "fastemit_lambda"),
]


@pytest.mark.parametrize(("inputs", "error", "needle"), BAD_ARRAYS)
def test_numpy_bad_arrays(inputs: dict[str, Any], error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=None) as info:
        rnnt.loss_and_grad(**inputs, blank=4)
    assert needle in str(info.value)


@pytest.mark.parametrize(("options", "error", "needle"), BAD_OPTIONS)
def test_numpy_bad_options(options: dict[str, Any], error: type[Exception], needle: str) -> None:
    options = {"blank": 4, **options}
    with pytest.raises(error) as info:
        rnnt.loss_and_grad(**good_inputs(), **options)
    assert needle in str(info.value)


def test_log_probs_mode_names_log_probs() -> None:
    inputs = with_changes(logits=nan_at_start)
    with pytest.raises(ValueError, match=r"log_probs\[0\]\[0\]\[0\]\[1\] = NaN"):
        rnnt.loss_and_grad(**inputs, blank=4, fused_log_softmax=False)


torch_cases = pytest.mark.parametrize(
    ("inputs", "error", "needle"),
    [*BAD_ARRAYS, (with_changes(logits=[[[[0.0]]]]), TypeError, "logits")],
)


@torch_cases
def test_torch_bad_arrays(inputs: dict[str, Any], error: type[Exception], needle: str) -> None:
    torch = pytest.importorskip("torch")
    tensors = {
        name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        for name, value in inputs.items()
    }
    with pytest.raises(error) as info:
        rnnt.rnnt_loss(**tensors, blank=4)
    assert needle in str(info.value)


@pytest.mark.parametrize(("options", "error", "needle"), BAD_OPTIONS)
def test_torch_bad_options(options: dict[str, Any], error: type[Exception], needle: str) -> None:
    torch = pytest.importorskip("torch")
    tensors = {name: torch.from_numpy(value) for name, value in good_inputs().items()}
    options = {"blank": 4, **options}
    with pytest.raises(error) as info:
        rnnt.rnnt_loss(**tensors, **options)
    assert needle in str(info.value)


def test_torch_tensor_off_the_cpu_is_a_value_error() -> None:
    torch = pytest.importorskip("torch")
    tensors = {name: torch.from_numpy(value) for name, value in good_inputs().items()}
    tensors["logits"] = tensors["logits"].to("meta")
    with pytest.raises(ValueError, match="logits is on meta"):
        rnnt.rnnt_loss(**tensors, blank=4)


def test_torch_logits_changed_in_place_before_backward_is_refused() -> None:
    """Backward rereads the logits: autograd's version counter refuses a modified tensor."""
    torch = pytest.importorskip("torch")
    tensors = {name: torch.from_numpy(value) for name, value in good_inputs().items()}
    logits = tensors.pop("logits").requires_grad_(True)
    x = logits * 1.0
    loss = rnnt.rnnt_loss(x, **tensors, blank=4)
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def misaligned(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A copy of ``x`` whose first element sits one byte past an aligned address."""
    raw = np.zeros(x.nbytes + x.itemsize, np.uint8)
    start = -raw.ctypes.data % x.itemsize + 1
    out = raw[start : start + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


def test_native_module_rejects_bad_arrays() -> None:
    """The private module checks what DLPack tells it about an array before reading memory."""
    from rnnt import _rnnt

    inputs = list(good_inputs().values())
    options: dict[str, Any] = {
        "blank": 4,
        "reduction": "mean",
        "fused_log_softmax": True,
        "clamp": -1.0,
        "fastemit_lambda": 0.0,
        "zero_infinity": False,
    }
    call: Callable[..., Any] = _rnnt.forward
    logits = inputs[0]
    for bad, needle in [
        (np.asfortranarray(logits), "C-contiguous"),
        (misaligned(logits), "address"),
        (logits.astype(np.complex64), "dtype complex64"),
        ("x", ""),
    ]:
        with pytest.raises((ValueError, TypeError)) as info:
            call((bad, *inputs[1:]), **options)
        assert needle in str(info.value)


def test_native_backward_refuses_a_gradient_buffer_that_overlaps_an_input() -> None:
    from rnnt import _rnnt

    inputs = good_inputs()
    described = (
        inputs["logits"],
        inputs["targets"],
        inputs["logit_lengths"],
        inputs["target_lengths"],
    )
    state = _rnnt.forward(
        described,
        blank=4,
        reduction="sum",
        fused_log_softmax=True,
        clamp=-1.0,
        fastemit_lambda=0.0,
        zero_infinity=False,
    )
    with pytest.raises(ValueError, match="grad overlaps logits"):
        _rnnt.backward(state, described, [1.0, 1.0], inputs["logits"])
    with pytest.raises(TypeError, match="grad has dtype int32"):
        _rnnt.backward(state, described, [1.0, 1.0], inputs["targets"])
    with pytest.raises(ValueError, match="item_weights has 1 entries"):
        grad = np.empty_like(inputs["logits"])
        _rnnt.backward(state, described, [1.0], grad)
