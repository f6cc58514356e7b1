"""The differentiable loss of :func:`rnnt.rnnt_loss`, and the same as ``torch.library`` custom ops
so that ``torch.compile`` traces it without a graph break: ``rnnt::loss_forward`` and
``rnnt::loss_backward``, with fake implementations (shapes and dtypes only) and an autograd
formula joining them.

What the loss keeps between forward and backward is no tensor: the O(B*T*U) lattice state of the
native module and, for a gradient below ``_rnnt.STREAM_MIN_BYTES`` (64 MiB) that autograd will ask
for, the gradient itself, computed in the forward call (the one-shot path, see
:mod:`rnnt.torch`). Both sit in a :class:`_Kept` object; backward takes the gradient out (handing
it over without a copy, so that it becomes ``.grad``) or computes it from the state.

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
    """What forward keeps for backward: the native state and maybe the one-shot gradient. A token
    is a view of its own 8 bytes (zeros: equal tokens for equal calls)."""

    def __init__(self, state: _rnnt.ForwardState, grad: torch.Tensor | None) -> None:
        super().__init__(8)
        self.state = state
        self.grad = grad


#: The kept objects that have a token, by the address of their bytes; an entry goes when its
#: token's memory is freed, before that address can be reused.
_KEPT: weakref.WeakValueDictionary[int, _Kept] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


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


def _lent_inputs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
) -> _rnnt.Inputs:
    """The four arrays of a loss call as DLPack capsules, which the native module reads without a
    copy. ``to_dlpack`` rather than the tensors themselves (whose ``__dlpack__`` the module would
    call): an unversioned capsule (torch marks no tensor read-only) for a tenth of the cost (0.2
    against 3 us, five times a step), and it takes tensors that require grad."""
    return (
        to_dlpack(logits),
        to_dlpack(targets),
        to_dlpack(logit_lengths),
        to_dlpack(target_lengths),
    )


def _options(
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> dict[str, Any]:
    """The native module's keywords."""
    return {
        "blank": blank,
        "reduction": reduction,
        "clamp": clamp,
        "fused_log_softmax": fused_log_softmax,
        "fastemit_lambda": fastemit_lambda,
        "zero_infinity": zero_infinity,
    }


def _forward(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    one_shot: bool,
    loss_dtype: torch.dtype,
) -> tuple[torch.Tensor, _Kept]:
    """The reported loss (a 0-d tensor, or (B,) for ``"none"``) and
    what backward needs; ``one_shot``: compute the gradient now (for an upstream gradient of 1).
    The arrays are contiguous CPU tensors, as :func:`rnnt.rnnt_loss` makes them; the loss has
    ``loss_dtype`` (a floating dtype: the dtype of ``logits``, except for the transformers drop-in,
    whose loss is float32 for any input)."""
    inputs = _lent_inputs(logits, targets, logit_lengths, target_lengths)
    options = _options(blank, reduction, clamp, fused_log_softmax, fastemit_lambda, zero_infinity)
    grad = None
    if one_shot:
        grad = _gradient_like(logits)
        state = _rnnt.loss_and_grad_into(inputs, to_dlpack(grad), **options)
    else:
        state = _rnnt.forward(inputs, **options)
    reported = state.losses() if reduction == "none" else state.loss()
    return torch.tensor(reported, dtype=loss_dtype), _Kept(state, grad)


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
    grad_loss: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> torch.Tensor:
    """d(grad_loss · loss)/d logits for the forward call that kept ``kept`` on these arrays and
    options: its one-shot gradient, scaled, the first time it is asked for; else computed from its
    state (or, without ``kept``, from a new forward call)."""
    arrays = (logits, targets, logit_lengths, target_lengths)
    upstream: list[float] | float = (
        grad_loss.reshape(-1).tolist() if reduction == "none" else float(grad_loss)
    )
    grad = None if kept is None else kept.grad
    if kept is not None and grad is not None:
        # Handed over (kept, it would be copied into .grad instead of becoming it); a second
        # backward (retain_graph) computes it again below.
        kept.grad = None
        if isinstance(upstream, list):
            if any(weight != 1.0 for weight in upstream):
                scale = grad_loss.to(grad.dtype).reshape(-1)
                grad.mul_(_item_scale(scale, grad, logit_lengths, target_lengths))
        elif upstream != 1.0:
            grad.mul_(upstream)
        return grad
    if kept is None:
        options = _options(
            blank, reduction, clamp, fused_log_softmax, fastemit_lambda, zero_infinity
        )
        state = _rnnt.forward(_lent_inputs(*arrays), **options)
    else:
        state = kept.state
    weights = upstream if isinstance(upstream, list) else state.item_weights(upstream)
    grad = _gradient_like(logits)
    _rnnt.backward(state, _lent_inputs(*arrays), weights, to_dlpack(grad))
    return grad


class _EagerLoss(torch.autograd.Function):
    """:func:`_forward` and :func:`_backward` joined by a plain autograd function."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> torch.Tensor:
        loss, kept = _forward(*args)
        # Saved so that autograd's version counters refuse logits modified in place since.
        ctx.save_for_backward(*args[:4])
        ctx.kept = kept  # type: ignore[attr-defined]
        ctx.options = args[4:10]  # type: ignore[attr-defined]
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, targets, logit_lengths, target_lengths = ctx.saved_tensors
        grad = _backward(
            ctx.kept, logits, targets, logit_lengths, target_lengths, grad_loss, *ctx.options
        )
        return (grad, *([None] * 11))


def _loss_forward_op(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    one_shot: bool,
    loss_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    loss, kept = _forward(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        blank,
        reduction,
        clamp,
        fused_log_softmax,
        fastemit_lambda,
        zero_infinity,
        one_shot,
        loss_dtype,
    )
    return loss, _token(kept)


def _loss_forward_fake(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
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
    grad_loss: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> torch.Tensor:
    return _backward(
        _kept(token),
        logits,
        targets,
        logit_lengths,
        target_lengths,
        grad_loss,
        blank,
        reduction,
        clamp,
        fused_log_softmax,
        fastemit_lambda,
        zero_infinity,
    )


def _loss_backward_fake(
    token: torch.Tensor,
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    grad_loss: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> torch.Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    """Saves the arrays (autograd's version counters then refuse logits modified in place since
    forward) and the token; the options are plain values."""
    ctx.save_for_backward(*inputs[:4], output[1])
    ctx.options = inputs[4:10]


def _loss_forward_grad(
    ctx: Any, grad_loss: torch.Tensor, grad_token: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    logits, targets, logit_lengths, target_lengths, token = ctx.saved_tensors
    grad = torch.ops.rnnt.loss_backward(
        token, logits, targets, logit_lengths, target_lengths, grad_loss, *ctx.options
    )
    return (grad, *([None] * 11))


#: ``rnnt::loss_forward(logits, targets, logit_lengths, target_lengths, blank, reduction, clamp,
#: fused_log_softmax, fastemit_lambda, zero_infinity, one_shot, loss_dtype) -> (loss, token)``.
loss_forward = custom_op("rnnt::loss_forward", _loss_forward_op, mutates_args=())
register_fake("rnnt::loss_forward", _loss_forward_fake)
register_autograd("rnnt::loss_forward", _loss_forward_grad, setup_context=_setup_context)

#: ``rnnt::loss_backward(token, logits, targets, logit_lengths, target_lengths, grad_loss, blank,
#: reduction, clamp, fused_log_softmax, fastemit_lambda, zero_infinity) -> grad``.
loss_backward = custom_op("rnnt::loss_backward", _loss_backward_op, mutates_args=())
register_fake("rnnt::loss_backward", _loss_backward_fake)


def loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    reduction: str,
    clamp: float,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    one_shot: bool,
    loss_dtype: torch.dtype,
) -> torch.Tensor:
    """The differentiable loss (see :func:`_forward`): through the custom ops while
    ``torch.compile`` or ``torch.export`` traces, through :class:`_EagerLoss` otherwise."""
    args = (
        logits,
        targets,
        logit_lengths,
        target_lengths,
        blank,
        reduction,
        clamp,
        fused_log_softmax,
        fastemit_lambda,
        zero_infinity,
        one_shot,
        loss_dtype,
    )
    if torch.compiler.is_compiling():
        traced: torch.Tensor = torch.ops.rnnt.loss_forward(*args)[0]
        return traced
    eager: torch.Tensor = _EagerLoss.apply(*args)  # type: ignore[no-untyped-call]
    return eager
