"""The differentiable loss of :func:`rnnt.rnnt_loss`, and the same as ``torch.library`` custom ops
so that ``torch.compile`` traces it without a graph break: ``rnnt::loss_forward`` and
``rnnt::loss_backward``, with fake implementations (shapes and dtypes only) and an autograd
formula joining them.

What the loss keeps between forward and backward is no tensor: the O(B*T*U) lattice state of the
native module and, for a gradient below ``_rnnt.STREAM_MIN_BYTES`` (64 MiB) that autograd will ask
for, the gradient itself, computed in the forward call (the one-shot path, see
:mod:`rnnt.torch`). Both sit in a :class:`_Kept` object; backward takes the gradient out (handing
it over without a copy, so that it becomes ``.grad``) or computes it from the state.

A TDT call (``duration_logits`` given) has two differentiable inputs, the token and the duration
logits; the ops then return and take both gradients (``rnnt::loss_backward`` returns a list: the
logits' gradient, and for TDT the duration logits').

Eager mode keeps that object in a plain ``autograd.Function``'s context: the custom ops' Python
dispatch would add about 140 us a call (a tenth of S1's whole step on two cores). Custom ops take
and return tensors, never an alias of an input, and declare what they mutate (nothing here), so
``rnnt::loss_forward`` returns, besides the loss, a *token*: a one-element int64 tensor (holding
0) whose memory belongs to the kept object. The token is saved for backward like any tensor, and
``rnnt::loss_backward`` finds the object by the token's address. The object lives exactly as long
as the token's memory: when autograd drops the graph (after backward, or unused), the state and any
unclaimed gradient go with it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import torch
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.library import custom_op, register_autograd, register_fake

# Documented as torch.utils.dlpack.to_dlpack, but left out of the module's __all__.
from torch.utils.dlpack import to_dlpack  # type: ignore[attr-defined]

from rnnt import _rnnt
from rnnt._gradient_memory import MEMORY

__all__ = ["loss", "loss_backward", "loss_forward"]


class _Kept(bytearray):
    """What forward keeps for backward: the native state and maybe the one-shot gradients (the
    logits', and for TDT the duration logits'). A token is a view of its own 8 bytes (zeros: equal
    tokens for equal calls)."""

    def __init__(self, state: _rnnt.ForwardState, grads: list[torch.Tensor] | None) -> None:
        super().__init__(8)
        self.state = state
        self.grads = grads


#: The kept objects that have a token, by the address of their bytes; an entry goes when its
#: token's memory is freed, before that address can be reused.
_KEPT: weakref.WeakValueDictionary[int, _Kept] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()

#: How many of the op's arguments are options (plain values), after the five arrays.
_OPTION_COUNT = 12


def _token(kept: _Kept) -> torch.Tensor:
    """A (1,) int64 tensor whose memory is ``kept``'s bytes (``torch.from_numpy`` keeps the array,
    and the array its buffer, alive as long as the tensor's storage)."""
    array = np.frombuffer(kept, dtype=np.int64)
    with _LOCK:
        _KEPT[array.ctypes.data] = kept
    return torch.from_numpy(array)


def _kept(token: torch.Tensor) -> _Kept | None:
    """The object whose memory ``token`` is (None for another tensor, e.g. a copy)."""
    with _LOCK:
        return _KEPT.get(token.data_ptr())


def _gradient_like(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``like``'s shape and dtype, in reused memory when it
    is large (see :func:`rnnt.reuse_gradient_memory`)."""
    raw = MEMORY.take(like.numel() * like.element_size())
    if raw is None:
        return torch.empty_like(like, memory_format=torch.contiguous_format)
    return torch.from_numpy(raw).view(like.dtype).view(like.shape)


def _gradients_like(
    logits: torch.Tensor, duration_logits: torch.Tensor | None
) -> list[torch.Tensor]:
    """Uninitialised gradients of the differentiable inputs (see :func:`_gradient_like`)."""
    heads = [logits] if duration_logits is None else [logits, duration_logits]
    return [_gradient_like(head) for head in heads]


def _lent_inputs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
) -> _rnnt.Inputs | _rnnt.TdtInputs:
    """The arrays of a loss call as DLPack capsules, which the native module reads without a
    copy (TDT: five, the duration logits last). ``to_dlpack`` rather than the tensors themselves
    (whose ``__dlpack__`` the module would call): an unversioned capsule (torch marks no tensor
    read-only) for a tenth of the cost (0.2 against 3 us, five times a step), and it takes tensors
    that require grad."""
    arrays = (
        to_dlpack(logits),
        to_dlpack(targets),
        to_dlpack(logit_lengths),
        to_dlpack(target_lengths),
    )
    if duration_logits is None:
        return arrays
    return (*arrays, to_dlpack(duration_logits))


def _split(
    logits: torch.Tensor, duration_logits: torch.Tensor | None, durations: list[int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (token, duration) heads of a call: as given, except for a TDT call on one joint tensor
    (``duration_logits`` None, ``durations`` given: NeMo's joint of V + D columns), whose heads
    are its views ``[..., :V]`` and ``[..., V:]`` (the native module reads them in place). The
    same split serves the gradients, so that both land in one joint-shaped tensor."""
    if duration_logits is not None or not durations:
        return logits, duration_logits
    split = logits.shape[-1] - len(durations)
    return logits[..., :split], logits[..., split:]


def _options(
    tdt: bool,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str,
    terminal_blank: bool,
    delay_penalty: float,
    sigma: float,
    big_blank_durations: list[int],
    durations: list[int],
) -> dict[str, Any]:
    """The native module's keywords (``durations`` only for a TDT call)."""
    return {
        "blank": blank,
        "reduction": reduction,
        "clamp": clamp,
        "fused_log_softmax": fused_log_softmax,
        "fastemit_lambda": fastemit_lambda,
        "zero_infinity": zero_infinity,
        "rnnt_type": rnnt_type,
        "terminal_blank": terminal_blank,
        "delay_penalty": delay_penalty,
        "sigma": sigma,
        "big_blank_durations": big_blank_durations or None,
        "durations": durations if tdt else None,
    }


def _forward(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
    *rest: Any,
) -> tuple[torch.Tensor, _Kept]:
    """The reported loss (a 0-d tensor, or (B,) for ``"none"``) and what backward needs.

    ``rest``: the twelve options (blank, reduction, clamp, fused_log_softmax, fastemit_lambda,
    zero_infinity, rnnt_type, terminal_blank, delay_penalty, sigma, big_blank_durations,
    durations), then ``one_shot`` (compute the gradients now, for an upstream gradient of 1) and
    ``loss_dtype`` (a floating dtype: the dtype of ``logits``, except for the transformers
    drop-ins, whose loss is float32 for any input). The arrays are CPU tensors as
    :mod:`rnnt.torch` makes them (contiguous, or TDT heads in a layout the module reads)."""
    *option_values, one_shot, loss_dtype = rest
    durations = option_values[-1]
    token, duration = _split(logits, duration_logits, durations)
    inputs = _lent_inputs(token, targets, logit_lengths, target_lengths, duration)
    options = _options(duration is not None, *option_values)
    grads = None
    if one_shot:
        grads = _gradients_like(logits, duration_logits)
        grad, duration_grad = _split(grads[0], grads[-1] if len(grads) > 1 else None, durations)
        if duration_grad is not None:
            options["duration_grad"] = to_dlpack(duration_grad)
        state = _rnnt.loss_and_grad_into(inputs, to_dlpack(grad), **options)
    else:
        state = _rnnt.forward(inputs, **options)
    reported = state.losses() if options["reduction"] == "none" else state.loss()
    return torch.tensor(reported, dtype=loss_dtype), _Kept(state, grads)


def _item_scale(
    per_item: torch.Tensor,
    grad: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
) -> torch.Tensor:
    """``per_item`` (B,) shaped to broadcast over ``grad`` item by item: (B, 1, 1, 1) for padded
    logits, one entry per row for packed ones (item b's T_b*(U_b+1) rows)."""
    if grad.dim() != 2:
        return per_item.reshape(-1, *([1] * (grad.dim() - 1)))
    rows = logit_lengths.to(torch.int64) * (target_lengths.to(torch.int64) + 1)
    return per_item.repeat_interleave(rows, output_size=grad.shape[0]).reshape(-1, 1)


def _backward(
    kept: _Kept | None,
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
    grad_loss: torch.Tensor,
    *options: Any,
) -> list[torch.Tensor]:
    """d(grad_loss · loss)/d logits (and, for TDT, d/d duration_logits) for the forward call that
    kept ``kept`` on these arrays and ``options`` (the twelve of :func:`_forward`): its one-shot
    gradients, scaled, the first time they are asked for; else computed from its state (or,
    without ``kept``, from a new forward call)."""
    durations = options[-1]
    token, duration = _split(logits, duration_logits, durations)
    arrays = (token, targets, logit_lengths, target_lengths, duration)
    reduction = options[1]
    upstream: list[float] | float = (
        grad_loss.reshape(-1).tolist() if reduction == "none" else float(grad_loss)
    )
    grads = None if kept is None else kept.grads
    if kept is not None and grads is not None:
        # Handed over (kept, they would be copied into .grad instead of becoming it); a second
        # backward (retain_graph) computes them again below.
        kept.grads = None
        for grad in grads:
            if isinstance(upstream, list):
                if any(weight != 1.0 for weight in upstream):
                    scale = grad_loss.to(grad.dtype).reshape(-1)
                    grad.mul_(_item_scale(scale, grad, logit_lengths, target_lengths))
            elif upstream != 1.0:
                grad.mul_(upstream)
        return grads
    if kept is None:
        native = _options(duration is not None, *options)
        state = _rnnt.forward(_lent_inputs(*arrays), **native)
    else:
        state = kept.state
    weights = upstream if isinstance(upstream, list) else state.item_weights(upstream)
    grads = _gradients_like(logits, duration_logits)
    grad, duration_grad = _split(grads[0], grads[-1] if len(grads) > 1 else None, durations)
    lent = None if duration_grad is None else to_dlpack(duration_grad)
    _rnnt.backward(state, _lent_inputs(*arrays), weights, to_dlpack(grad), lent)
    return grads


def _input_grads(grads: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    """The gradients of the ops' inputs in order: logits, three index arrays, duration logits,
    then none for the options, ``one_shot`` and ``loss_dtype``."""
    duration_grad = grads[1] if len(grads) > 1 else None
    return (grads[0], None, None, None, duration_grad, *([None] * (_OPTION_COUNT + 2)))


class _EagerLoss(torch.autograd.Function):
    """:func:`_forward` and :func:`_backward` joined by a plain autograd function."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> torch.Tensor:
        loss, kept = _forward(*args)
        # Saved so that autograd's version counters refuse inputs modified in place since.
        ctx.save_for_backward(*args[:5])
        ctx.kept = kept  # type: ignore[attr-defined]
        ctx.options = args[5 : 5 + _OPTION_COUNT]  # type: ignore[attr-defined]
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        arrays = ctx.saved_tensors
        return _input_grads(_backward(ctx.kept, *arrays, grad_loss, *ctx.options))


def _loss_forward_op(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str,
    terminal_blank: bool,
    delay_penalty: float,
    sigma: float,
    big_blank_durations: list[int],
    durations: list[int],
    one_shot: bool,
    loss_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    loss, kept = _forward(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        duration_logits,
        blank,
        reduction,
        clamp,
        fused_log_softmax,
        fastemit_lambda,
        zero_infinity,
        rnnt_type,
        terminal_blank,
        delay_penalty,
        sigma,
        big_blank_durations,
        durations,
        one_shot,
        loss_dtype,
    )
    return loss, _token(kept)


def _loss_forward_fake(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str,
    terminal_blank: bool,
    delay_penalty: float,
    sigma: float,
    big_blank_durations: list[int],
    durations: list[int],
    one_shot: bool,
    loss_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    # B from the lengths: packed logits have no batch axis.
    shape = (logit_lengths.shape[0],) if reduction == "none" else ()
    return logits.new_empty(shape, dtype=loss_dtype), logits.new_empty((1,), dtype=torch.int64)


def _loss_backward_op(
    token: torch.Tensor,
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
    grad_loss: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str,
    terminal_blank: bool,
    delay_penalty: float,
    sigma: float,
    big_blank_durations: list[int],
    durations: list[int],
) -> list[torch.Tensor]:
    return _backward(
        _kept(token),
        logits,
        targets,
        logit_lengths,
        target_lengths,
        duration_logits,
        grad_loss,
        blank,
        reduction,
        clamp,
        fused_log_softmax,
        fastemit_lambda,
        zero_infinity,
        rnnt_type,
        terminal_blank,
        delay_penalty,
        sigma,
        big_blank_durations,
        durations,
    )


def _loss_backward_fake(
    token: torch.Tensor,
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    duration_logits: torch.Tensor | None,
    grad_loss: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str,
    terminal_blank: bool,
    delay_penalty: float,
    sigma: float,
    big_blank_durations: list[int],
    durations: list[int],
) -> list[torch.Tensor]:
    heads = [logits] if duration_logits is None else [logits, duration_logits]
    return [torch.empty_like(head, memory_format=torch.contiguous_format) for head in heads]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    """Saves the arrays (autograd's version counters then refuse inputs modified in place since
    forward) and the token; the options are plain values."""
    ctx.save_for_backward(*inputs[:5], output[1])
    ctx.options = inputs[5 : 5 + _OPTION_COUNT]


def _loss_forward_grad(
    ctx: Any, grad_loss: torch.Tensor, grad_token: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    *arrays, token = ctx.saved_tensors
    grads = torch.ops.rnnt.loss_backward(token, *arrays, grad_loss, *ctx.options)
    return _input_grads(grads)


#: ``rnnt::loss_forward(logits, targets, logit_lengths, target_lengths, duration_logits, blank,
#: reduction, clamp, fused_log_softmax, fastemit_lambda, zero_infinity, rnnt_type, terminal_blank,
#: delay_penalty, sigma, big_blank_durations, durations, one_shot, loss_dtype) -> (loss, token)``;
#: ``duration_logits`` None for every loss but TDT.
loss_forward = custom_op("rnnt::loss_forward", _loss_forward_op, mutates_args=())
register_fake("rnnt::loss_forward", _loss_forward_fake)
register_autograd("rnnt::loss_forward", _loss_forward_grad, setup_context=_setup_context)

#: ``rnnt::loss_backward(token, logits, targets, logit_lengths, target_lengths, duration_logits,
#: grad_loss, blank, ..., durations) -> [grad]`` (TDT: ``[grad, duration_grad]``).
loss_backward = custom_op("rnnt::loss_backward", _loss_backward_op, mutates_args=())
register_fake("rnnt::loss_backward", _loss_backward_fake)


def loss(*args: Any) -> torch.Tensor:
    """The differentiable loss of the arguments of ``rnnt::loss_forward`` (see :func:`_forward`):
    through the custom ops while ``torch.compile`` or ``torch.export`` traces, through
    :class:`_EagerLoss` otherwise."""
    if torch.compiler.is_compiling():
        traced: torch.Tensor = torch.ops.rnnt.loss_forward(*args)[0]
        return traced
    eager: torch.Tensor = _EagerLoss.apply(*args)  # type: ignore[no-untyped-call]
    return eager
