"""Every function and method of the native module ``rnnt._rnnt``, called with forged and wrong-typed
arguments, raises TypeError or ValueError and never crashes the interpreter.

The calls run in subprocesses (this file run as a script, one process per native function), so a
crash shows as a dead process instead of killing pytest. Each case prints a line before and after
its call: a case that started and never finished is the one that crashed, and the remaining cases
run in a fresh process.

Forgeries: integers as addresses, the descriptor tuples of earlier versions, wrong tuples, None,
plain objects, strings, lists, objects whose ``__dlpack__`` raises, returns a non-capsule or a
capsule of another kind, capsules already consumed, arrays of the wrong dtype, rank, layout
(strided, Fortran order, negative strides) or alignment, torch tensors that require grad or live on
the meta device, read-only or overlapping gradient buffers, and DLPack capsules built by hand with
ctypes whose description is inconsistent (another device, another major version, a null shape, a
negative extent, a null or misaligned data pointer, an offset past the address space, a size past
``isize``, vector lanes).
"""

from __future__ import annotations

import ctypes
import datetime
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import pytest

#: Native functions and classes, each exercised by one subprocess.
TARGETS = (
    "forward",
    "loss_and_grad_into",
    "backward",
    "align",
    "ForwardState",
    "ItemAlignment",
    "joint_loss",
)

#: Outcomes: the call raised one of these (as it must), or the case tolerates a result too.
ACCEPTED = ("TypeError", "ValueError")

OPTIONS: dict[str, Any] = {
    "blank": 4,
    "reduction": "sum",
    "fused_log_softmax": True,
    "clamp": -1.0,
    "fastemit_lambda": 0.0,
    "zero_infinity": False,
}


def good_arrays() -> list[np.ndarray[Any, Any]]:
    """A valid batch: (2, 4, 3, 5) float32 logits, int32 targets and lengths."""
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal((2, 4, 3, 5)).astype(np.float32),
        np.array([[1, 2], [3, 0]], dtype=np.int32),
        np.array([4, 3], dtype=np.int32),
        np.array([2, 1], dtype=np.int32),
    ]


# DLPack's structs, to forge capsules by hand.
class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version", DLPackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


#: Everything a forged capsule points to, kept alive for the whole process (no deleters).
_KEPT: list[Any] = []


def forged_capsule(
    like: np.ndarray[Any, Any],
    *,
    versioned: bool = True,
    major: int = 1,
    flags: int = 0,
    device: int = 1,
    ndim: int | None = None,
    shape: list[int] | None = None,
    null_shape: bool = False,
    strides: list[int] | None = None,
    data: int | None = None,
    byte_offset: int = 0,
    dtype: tuple[int, int, int] = (2, 32, 1),
) -> object:
    """A capsule describing ``like``'s memory (float32 by default), with one field changed."""
    shape = list(like.shape) if shape is None else shape
    shape_array = (ctypes.c_int64 * max(len(shape), 1))(*shape)
    strides_array = None if strides is None else (ctypes.c_int64 * len(strides))(*strides)
    tensor = DLTensor(
        data=like.ctypes.data if data is None else data,
        device=DLDevice(device, 0),
        ndim=len(shape) if ndim is None else ndim,
        dtype=DLDataType(*dtype),
        shape=None if null_shape else ctypes.cast(shape_array, ctypes.POINTER(ctypes.c_int64)),
        strides=None
        if strides_array is None
        else ctypes.cast(strides_array, ctypes.POINTER(ctypes.c_int64)),
        byte_offset=byte_offset,
    )
    managed: ctypes.Structure
    if versioned:
        managed = DLManagedTensorVersioned(
            version=DLPackVersion(major, 0), flags=flags, dl_tensor=tensor
        )
        name = b"dltensor_versioned"
    else:
        managed = DLManagedTensor(dl_tensor=tensor)
        name = b"dltensor"
    _KEPT.extend([like, shape_array, strides_array, managed, name])
    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule: object = new(ctypes.addressof(managed), name, None)
    return capsule


class Lends:
    """An object whose ``__dlpack__`` does what ``behaviour`` does."""

    def __init__(self, behaviour: Callable[..., Any]) -> None:
        self.behaviour = behaviour

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.behaviour(*args, **kwargs)


def raising(error: type[BaseException]) -> Callable[..., Any]:
    def behaviour(*args: Any, **kwargs: Any) -> Any:
        raise error("no")

    return behaviour


class NotCallableDLPack:
    __dlpack__ = 5


def used_capsule(array: np.ndarray[Any, Any]) -> object:
    """A DLPack capsule of ``array`` that a consumer has already taken (renamed used)."""
    torch = pytest.importorskip("torch")
    capsule = array.__dlpack__()
    torch.from_dlpack(capsule)
    return capsule


def bad_objects(like: np.ndarray[Any, Any]) -> Iterator[tuple[str, Any]]:
    """Values that are no array at all, or lend no memory through DLPack, in place of ``like``."""
    address = like.ctypes.data
    dtype = like.dtype.name
    yield "int 8", 8
    yield "int address", address
    yield "negative int", -1
    yield "descriptor tuple", (address, like.shape, dtype, True)
    yield "descriptor of address 8", (8, (1, 2, 2, 2), "float32", True)
    yield "empty tuple", ()
    yield "short tuple", (address, like.shape)
    yield "None", None
    yield "object", object()
    yield "str", "x"
    yield "bytes", b"\0" * 64
    yield "list", like.tolist()
    yield "float", 1.5
    yield "dict", {"data": address}
    yield "memoryview", memoryview(like.tobytes())
    yield "__dlpack__ raises RuntimeError", Lends(raising(RuntimeError))
    yield "__dlpack__ raises BufferError", Lends(raising(BufferError))
    yield "__dlpack__ raises TypeError", Lends(raising(TypeError))
    yield "__dlpack__ raises AttributeError", Lends(raising(AttributeError))
    yield "__dlpack__ returns int", Lends(lambda *a, **k: address)
    yield "__dlpack__ returns None", Lends(lambda *a, **k: None)
    yield "__dlpack__ returns tuple", Lends(lambda *a, **k: (address, like.shape, dtype, True))
    yield "__dlpack__ returns the array", Lends(lambda *a, **k: like)
    yield "__dlpack__ returns datetime capsule", Lends(lambda *a, **k: datetime.datetime_CAPI)
    yield "__dlpack__ not callable", NotCallableDLPack()
    yield "datetime capsule", datetime.datetime_CAPI
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    yield "used dltensor capsule", used_capsule(like.copy())
    used = used_capsule(like.copy())
    yield "__dlpack__ returns used capsule", Lends(lambda *a, **k: used)


def bad_layouts(like: np.ndarray[Any, Any]) -> Iterator[tuple[str, Any]]:
    """Real arrays of ``like``'s values in a dtype, rank, layout or place the module refuses."""
    wide = np.repeat(like, 2, axis=-1)
    yield "strided", wide[..., ::2]
    yield "negative strides", like[::-1]
    if like.ndim > 1:
        yield "Fortran order", np.asfortranarray(like)
    yield "broadcast (stride 0)", np.broadcast_to(like[:1], like.shape)
    yield "one more axis", like[None]
    if like.ndim != 2:  # (B, U) targets without an axis are valid packed targets
        yield "one axis fewer", like[0]
    yield "0-d", like.reshape(-1)[0:1].reshape(())
    yield "complex64", like.astype(np.complex64)
    yield "bool", like.astype(bool)
    yield "uint8", like.astype(np.uint8)
    yield "int16", like.astype(np.int16)
    yield "object dtype", like.astype(object)
    yield "str dtype", like.astype(str)
    raw = np.zeros(like.nbytes + like.itemsize, np.uint8)
    start = -raw.ctypes.data % like.itemsize + 1
    yield "misaligned", raw[start : start + like.nbytes].view(like.dtype).reshape(like.shape)
    try:
        import torch
    except ImportError:
        return
    tensor = torch.from_numpy(like.copy())
    if tensor.is_floating_point():
        yield "tensor requiring grad", tensor.clone().requires_grad_(True)
    yield "meta tensor", tensor.to("meta")
    yield "strided tensor", torch.from_numpy(wide.copy())[..., ::2]
    yield "conjugated complex tensor", tensor.to(torch.complex64).conj()


def forged_capsules(like: np.ndarray[Any, Any]) -> Iterator[tuple[str, Any]]:
    """Capsules built by hand over ``like``'s memory whose description fails a check."""
    code_bits = {"float32": (2, 32, 1), "int32": (0, 32, 1)}[like.dtype.name]
    size = like.itemsize
    base = {"dtype": code_bits}
    yield "capsule on CUDA", forged_capsule(like, device=2, **base)
    yield "capsule on device 99", forged_capsule(like, device=99, **base)
    yield "unversioned capsule on CUDA", forged_capsule(like, versioned=False, device=2, **base)
    yield "capsule of major version 2", forged_capsule(like, major=2, **base)
    yield "capsule of ndim -1", forged_capsule(like, ndim=-1, **base)
    yield "capsule of ndim 1000", forged_capsule(like, ndim=1000, **base)
    yield "capsule without shape", forged_capsule(like, null_shape=True, **base)
    yield "capsule of negative extent", forged_capsule(like, shape=[-1, *like.shape[1:]], **base)
    yield (
        "capsule of huge shape",
        forged_capsule(like, shape=[2**62, 2**62, *like.shape[2:]], **base),
    )
    yield "capsule of null data", forged_capsule(like, data=0, **base)
    yield "capsule of misaligned data", forged_capsule(like, data=like.ctypes.data + 1, **base)
    yield "capsule of odd offset", forged_capsule(like, byte_offset=1, **base)
    yield "capsule of offset past memory", forged_capsule(like, byte_offset=2**64 - 1, **base)
    gappy = [2 * s // size for s in like.strides]
    yield "capsule with gaps", forged_capsule(like, strides=gappy, **base)
    reverse = [-s // size for s in like.strides]
    yield "capsule of negative strides", forged_capsule(like, strides=reverse, **base)
    yield "capsule of 4 lanes", forged_capsule(like, dtype=(code_bits[0], 32, 4))
    yield "capsule of type code 99", forged_capsule(like, dtype=(99, 32, 1))
    yield "capsule of 0-bit type", forged_capsule(like, dtype=(code_bits[0], 0, 1))


def array_cases(like: np.ndarray[Any, Any]) -> Iterator[tuple[str, Any]]:
    """Every bad value of one array argument."""
    yield from bad_objects(like)
    yield from bad_layouts(like)
    yield from forged_capsules(like)


ARRAY_NAMES = ("logits", "targets", "logit_lengths", "target_lengths")


def input_cases() -> Iterator[tuple[str, Any]]:
    """Bad ``inputs`` tuples: the tuple itself wrong, or one of its four arrays."""
    arrays = good_arrays()
    yield "inputs None", None
    yield "inputs list", list(arrays)
    yield "inputs of 3", tuple(arrays[:3])
    yield "inputs of 5", (*arrays, arrays[0])
    yield "inputs str", "abcd"
    for i, name in enumerate(ARRAY_NAMES):
        for label, bad in array_cases(arrays[i]):
            yield f"{name}: {label}", (*arrays[:i], bad, *arrays[i + 1 :])


def grad_cases() -> Iterator[tuple[str, Any, tuple[Any, ...]]]:
    """Bad gradient buffers, each with the inputs it goes with."""
    arrays = good_arrays()
    logits = arrays[0]
    for label, bad in array_cases(np.empty_like(logits)):
        yield f"grad: {label}", bad, tuple(arrays)
    read_only = np.empty_like(logits)
    read_only.flags.writeable = False
    yield "grad: read-only", read_only, tuple(arrays)
    yield "grad: read-only capsule", forged_capsule(np.empty_like(logits), flags=1), tuple(arrays)
    yield "grad: the logits", logits, tuple(arrays)
    yield "grad: the targets", arrays[1], tuple(arrays)
    yield "grad: wrong shape", np.empty((2, 4, 3, 6), np.float32), tuple(arrays)
    yield "grad: float64 for float32 logits", np.empty(logits.shape), tuple(arrays)
    shared = np.zeros(logits.size + logits.size // 2, np.float32)
    first = shared[: logits.size].reshape(logits.shape)
    first[...] = logits
    second = shared[logits.size // 2 :].reshape(logits.shape)
    yield "grad: overlapping the logits' tail", second, (first, *arrays[1:])
    yield "grad: a capsule also passed as logits", *same_capsule_twice(logits, arrays)
    targets_bytes = arrays[1].view(np.uint8)
    yield (
        "grad: overlapping the targets",
        np.frombuffer(targets_bytes, np.float32),
        tuple(arrays),
    )


def same_capsule_twice(
    logits: np.ndarray[Any, Any], arrays: list[np.ndarray[Any, Any]]
) -> tuple[Any, tuple[Any, ...]]:
    """An object that hands out one capsule of ``logits`` every time, as logits and as grad."""
    capsule = logits.copy().__dlpack__(max_version=(1, 0))
    lends = Lends(lambda *a, **k: capsule)
    return lends, (lends, *arrays[1:])


def option_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """Wrong-typed keyword options."""
    for name, bad in [
        ("blank", "4"),
        ("blank", None),
        ("blank", 2**70),
        ("blank", 4.0),
        ("reduction", None),
        ("reduction", 1),
        ("reduction", "avg"),
        ("fused_log_softmax", "yes"),
        ("fused_log_softmax", None),
        ("clamp", "x"),
        ("clamp", None),
        ("clamp", float("nan")),
        ("fastemit_lambda", "x"),
        ("fastemit_lambda", -1.0),
        ("zero_infinity", "no"),
    ]:
        yield f"option {name}={bad!r}", {**OPTIONS, name: bad}
    yield "option missing", {k: v for k, v in OPTIONS.items() if k != "blank"}
    yield "option unknown", {**OPTIONS, "threads": 2}


JOINT_NAMES = (
    "encoder_out",
    "predictor_out",
    "weight",
    "bias",
    "targets",
    "logit_lengths",
    "target_lengths",
)

JOINT_OPTIONS: dict[str, Any] = {
    "activation": "tanh",
    "blank": 4,
    "reduction": "sum",
    "clamp": -1.0,
    "fastemit_lambda": 0.0,
    "zero_infinity": False,
    "item_weights": None,
}


def good_joint_arrays() -> list[np.ndarray[Any, Any]]:
    """A valid fused call: H = 6, the batch of ``good_arrays`` (B = 2, T = 4, U = 2, V = 5)."""
    rng = np.random.default_rng(1)
    _, targets, logit_lengths, target_lengths = good_arrays()
    return [
        rng.standard_normal((2, 4, 6)).astype(np.float32),
        rng.standard_normal((2, 3, 6)).astype(np.float32),
        rng.standard_normal((5, 6)).astype(np.float32),
        rng.standard_normal(5).astype(np.float32),
        targets,
        logit_lengths,
        target_lengths,
    ]


def joint_cases() -> Iterator[tuple[str, tuple[Any, ...], tuple[Any, ...] | None, dict[str, Any]]]:
    """Forged ``joint_loss`` calls: (label, arrays, grads, options)."""
    arrays = good_joint_arrays()
    grads = [np.empty_like(a) for a in arrays[:4]]
    for i, name in enumerate(JOINT_NAMES):
        for label, bad in array_cases(arrays[i]):
            if name == "bias" and bad is None:
                continue  # no bias: a valid call
            yield f"{name}: {label}", (*arrays[:i], bad, *arrays[i + 1 :]), None, JOINT_OPTIONS
    for i, name in enumerate(JOINT_NAMES[:4]):
        for label, bad in array_cases(grads[i]):
            forged = (*grads[:i], bad, *grads[i + 1 :])
            yield f"grad_{name}: {label}", tuple(arrays), forged, JOINT_OPTIONS
        yield (
            f"grad_{name}: the input",
            tuple(arrays),
            (*grads[:i], arrays[i], *grads[i + 1 :]),
            JOINT_OPTIONS,
        )
    yield "arrays of 6", tuple(arrays[:6]), None, JOINT_OPTIONS
    yield "grads of 3", tuple(arrays), tuple(grads[:3]), JOINT_OPTIONS
    for name, bad in [
        ("activation", "gelu"),
        ("activation", None),
        ("blank", 5),
        ("blank", "4"),
        ("reduction", "avg"),
        ("clamp", float("nan")),
        ("fastemit_lambda", -1.0),
        ("item_weights", [1.0]),
        ("item_weights", "ab"),
    ]:
        yield f"option {name}={bad!r}", tuple(arrays), tuple(grads), {**JOINT_OPTIONS, name: bad}


Case = tuple[str, Callable[[], Any]]


def cases(target: str) -> list[Case]:
    """The forged calls of one native function or class."""
    from rnnt import _rnnt

    arrays = tuple(good_arrays())
    state = _rnnt.forward(arrays, **OPTIONS)
    out: list[Case] = []

    def add(label: str, call: Callable[[], Any]) -> None:
        out.append((label, call))

    def with_inputs(run: Callable[[Any], Any]) -> None:
        for label, inputs in input_cases():
            add(label, lambda inputs=inputs: run(inputs))

    if target == "forward":
        with_inputs(lambda inputs: _rnnt.forward(inputs, **OPTIONS))
        for label, options in option_cases():
            add(label, lambda options=options: _rnnt.forward(arrays, **options))
        add("positional options", lambda: _rnnt.forward(arrays, 4, "sum"))
    elif target == "loss_and_grad_into":

        def into(inputs: Any, grad: Any, options: dict[str, Any] = OPTIONS) -> Any:
            return _rnnt.loss_and_grad_into(inputs, grad, **options)

        with_inputs(lambda inputs: into(inputs, np.empty_like(arrays[0])))
        for label, grad, inputs in grad_cases():
            add(label, lambda grad=grad, inputs=inputs: into(inputs, grad))
        for label, options in option_cases():
            add(label, lambda options=options: into(arrays, np.empty_like(arrays[0]), options))
    elif target == "backward":
        weights = [1.0, 1.0]
        with_inputs(lambda inputs: _rnnt.backward(state, inputs, weights, np.empty_like(arrays[0])))
        for label, grad, inputs in grad_cases():
            add(
                label, lambda grad=grad, inputs=inputs: _rnnt.backward(state, inputs, weights, grad)
            )
        grad = np.empty_like(arrays[0])
        for label, bad_state in [
            ("state None", None),
            ("state object", object()),
            ("state int", id(state)),
            ("state an ItemAlignment", _rnnt.align(arrays, blank=4, fused_log_softmax=True)[0]),
        ]:
            add(label, lambda s=bad_state: _rnnt.backward(s, arrays, weights, grad))
        other = good_arrays()
        other[0] = np.zeros((2, 5, 3, 5), np.float32)
        other[2] = np.array([5, 3], np.int32)
        add(
            "state of another shape",
            lambda: _rnnt.backward(state, tuple(other), weights, np.empty_like(other[0])),
        )
        for label, bad_weights in [
            ("weights None", None),
            ("weights str", "ab"),
            ("weights of None", [None, None]),
            ("weights too few", [1.0]),
            ("weights too many", [1.0] * 1000),
            ("weights array of the wrong length", np.ones(3)),
            ("weights int", 2),
        ]:
            add(label, lambda w=bad_weights: _rnnt.backward(state, arrays, w, grad))
        add("too few arguments", lambda: _rnnt.backward(state, arrays, weights))
    elif target == "align":
        with_inputs(lambda inputs: _rnnt.align(inputs, blank=4, fused_log_softmax=True))
        for label, options in option_cases():
            kept = {k: v for k, v in options.items() if k in ("blank", "fused_log_softmax")}
            if kept != {"blank": 4, "fused_log_softmax": True}:
                add(label, lambda kept=kept: _rnnt.align(arrays, **kept))
        add("align with loss options", lambda: _rnnt.align(arrays, **OPTIONS))
    elif target == "ForwardState":
        cls = _rnnt.ForwardState
        add("construct", lambda: cls())
        add("construct with arrays", lambda: cls(arrays))
        for method in ("losses", "loss"):
            add(f"{method} with an argument", lambda m=method: getattr(state, m)(1))
            add(f"unbound {method} on None", lambda m=method: getattr(cls, m)(None))
            add(f"unbound {method} on an int", lambda m=method: getattr(cls, m)(id(state)))
        for label, upstream in [
            ("str", "1"),
            ("None", None),
            ("list", [1.0]),
            ("array", arrays[0]),
        ]:
            add(f"item_weights({label})", lambda u=upstream: state.item_weights(u))
        add("item_weights()", lambda: state.item_weights())
        add("unbound item_weights on None", lambda: cls.item_weights(None, 1.0))
    elif target == "ItemAlignment":
        cls = _rnnt.ItemAlignment
        item = _rnnt.align(arrays, blank=4, fused_log_softmax=True)[0]
        add("construct", lambda: cls())
        for method in (
            "labels",
            "frames",
            "path",
            "score",
            "emit_frames",
            "log_prob",
            "occupancy",
            "emit_posterior",
            "emit_frame_spreads",
        ):
            add(f"{method} with an argument", lambda m=method: getattr(item, m)(0))
            add(f"unbound {method} on None", lambda m=method: getattr(cls, m)(None))
            add(f"unbound {method} on a ForwardState", lambda m=method: getattr(cls, m)(state))
    elif target == "joint_loss":
        for label, joint_arrays, grads, options in joint_cases():
            add(
                label,
                lambda a=joint_arrays, g=grads, o=options: _rnnt.joint_loss(a, g, **o),
            )
    else:
        raise ValueError(target)
    return out


def run_cases(target: str, first: int) -> None:
    """Runs the cases of ``target`` from index ``first`` on, one line before and after each."""
    for index, (label, call) in enumerate(cases(target)):
        if index < first:
            continue
        print(f"start\t{index}\t{label}", flush=True)
        try:
            result = call()
        except Exception as error:
            outcome = type(error).__name__
            message = str(error).replace("\n", " ")[:200]
        else:
            outcome, message = "returned", repr(result)[:200]
        print(f"done\t{index}\t{label}\t{outcome}\t{message}", flush=True)


class UnversionedProducer:
    """An array whose ``__dlpack__`` predates ``max_version`` (NumPy < 2.1, torch < 2.4)."""

    def __init__(self, array: np.ndarray[Any, Any]) -> None:
        self.array = array

    def __dlpack__(self, *, stream: Any = None) -> Any:
        return self.array.__dlpack__()


def test_unversioned_producers_and_capsules_are_read_as_the_arrays() -> None:
    from rnnt import _rnnt

    arrays = good_arrays()
    want = _rnnt.forward(tuple(arrays), **OPTIONS).losses()
    for lend in (
        UnversionedProducer,
        lambda a: a.__dlpack__(),
        lambda a: a.__dlpack__(max_version=(1, 0)),
    ):
        lent = tuple(lend(a) for a in arrays)
        assert _rnnt.forward(lent, **OPTIONS).losses() == want
    torch = pytest.importorskip("torch")
    tensors = tuple(torch.from_numpy(a) for a in arrays)
    assert _rnnt.forward(tensors, **OPTIONS).losses() == want
    bf16 = torch.from_numpy(arrays[0]).to(torch.bfloat16)
    want_bf16 = _rnnt.forward((bf16.float().numpy(), *arrays[1:]), **OPTIONS).losses()
    assert _rnnt.forward((bf16, *tensors[1:]), **OPTIONS).losses() == pytest.approx(want_bf16)


def test_each_array_is_released_exactly_once() -> None:
    """The module holds each array through its capsule during the call and lets go of it after,
    whether the call succeeds or fails past the import."""
    from rnnt import _rnnt

    arrays = good_arrays()
    grad = np.empty_like(arrays[0])
    wrong_dtype = arrays[0].astype(np.float64)
    before = [sys.getrefcount(a) for a in (*arrays, grad, wrong_dtype)]
    for _ in range(100):
        _rnnt.loss_and_grad_into(tuple(arrays), grad, **OPTIONS)
        with pytest.raises(TypeError):
            _rnnt.loss_and_grad_into(tuple(arrays), wrong_dtype, **OPTIONS)
        with pytest.raises(ValueError):
            _rnnt.loss_and_grad_into(tuple(arrays), arrays[0], **OPTIONS)
    after = [sys.getrefcount(a) for a in (*arrays, grad, wrong_dtype)]
    assert after == before


def native_callables() -> set[str]:
    """The public functions and classes of the native module."""
    from rnnt import _rnnt

    return {
        name for name in dir(_rnnt) if not name.startswith("_") and callable(getattr(_rnnt, name))
    }


def test_every_native_callable_has_forged_cases() -> None:
    assert native_callables() <= set(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
def test_forged_arguments_raise_and_never_crash(target: str) -> None:
    results: dict[int, tuple[str, str, str]] = {}
    crashes: list[str] = []
    first = 0
    while True:
        process = subprocess.run(
            [sys.executable, __file__, target, str(first)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        started: tuple[int, str] | None = None
        for line in process.stdout.splitlines():
            fields = line.split("\t")
            if fields[0] == "start":
                started = (int(fields[1]), fields[2])
            elif fields[0] == "done":
                results[int(fields[1])] = (fields[2], fields[3], fields[4])
                started = None
        if process.returncode == 0:
            break
        assert started is not None, (
            f"{target}: the process failed outside a case:\n{process.stderr}"
        )
        index, label = started
        crashes.append(f"{label!r} (exit status {process.returncode}): {process.stderr[-500:]}")
        first = index + 1
    assert not crashes, f"{target}: calls that crashed the interpreter: {crashes}"
    assert results, f"{target}: no case ran"
    wrong = [
        f"{label!r}: {outcome} {message}"
        for label, outcome, message in results.values()
        if outcome not in ACCEPTED
    ]
    assert not wrong, f"{target}: calls that did not raise TypeError or ValueError: {wrong}"


if __name__ == "__main__":
    run_cases(sys.argv[1], int(sys.argv[2]))
