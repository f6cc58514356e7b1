"""The differentiable fused joiner and loss of :func:`rnnt.joint_rnnt_loss` as ``torch.library``
custom ops, so that ``torch.compile`` traces it without a graph break: ``rnnt::joint_forward``
returns the loss and, when autograd will ask for them, the four gradients of the reported loss
(computed in the same native call, which makes every tile of logits once more at most);
``rnnt::joint_backward`` computes them again for per-item upstream gradients (``reduction="none"``).
Nothing between the two is larger than the inputs and the gradients themselves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable
from torch.library import custom_op, register_autograd, register_fake

from rnnt import _rnnt

__all__ = ["joint_loss"]

#: The options of a call as the ops take them, after the seven arrays.
Options = tuple[str, int, str, float, float, bool]


def _gradient_buffers(
    encoder_out: torch.Tensor,
    predictor_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fresh buffers for the four gradients, of the inputs' shapes (the bias's empty when there
    is no bias: an op returns tensors, not None)."""
    return (
        torch.empty_like(encoder_out),
        torch.empty_like(predictor_out),
        torch.empty_like(weight),
        torch.empty_like(bias) if bias is not None else weight.new_empty(0),
    )


def _native(
    arrays: tuple[torch.Tensor | None, ...],
    options: Options,
    grads: bool,
    item_weights: list[float] | None,
) -> tuple[list[float], float, tuple[torch.Tensor, ...]]:
    """One native call: the per-item losses, the reported loss and (with ``grads``) the four
    gradients (the last empty when there is no bias)."""
    encoder_out, predictor_out, weight, bias = arrays[:4]
    assert encoder_out is not None and predictor_out is not None and weight is not None
    activation, blank, reduction, clamp, fastemit_lambda, zero_infinity = options
    buffers = None
    out: tuple[torch.Tensor, ...] = ()
    if grads:
        out = _gradient_buffers(encoder_out, predictor_out, weight, bias)
        buffers = (*out[:3], out[3] if bias is not None else None)
    # Detached: DLPack refuses tensors that require grad (the op runs below autograd anyway).
    lent = tuple(None if t is None else t.detach() for t in arrays)
    losses, loss = _rnnt.joint_loss(
        lent,
        buffers,
        activation=activation,
        blank=blank,
        reduction=reduction,
        clamp=clamp,
        fastemit_lambda=fastemit_lambda,
        zero_infinity=zero_infinity,
        item_weights=item_weights,
    )
    return losses, loss, out


def _forward_op(
    encoder_out: torch.Tensor,
    predictor_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    activation: str,
    blank: int,
    reduction: str,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
    grads: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    arrays = (encoder_out, predictor_out, weight, bias, targets, logit_lengths, target_lengths)
    options = (activation, blank, reduction, clamp, fastemit_lambda, zero_infinity)
    losses, loss, out = _native(arrays, options, grads, None)
    reported = losses if reduction == "none" else loss
    if not grads:
        empty = encoder_out.new_empty(0)
        out = (empty, empty.clone(), empty.clone(), empty.clone())
    reported_loss = torch.tensor(reported, dtype=encoder_out.dtype)
    return reported_loss, out[0], out[1], out[2], out[3]


def _forward_fake(
    encoder_out: torch.Tensor,
    predictor_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    activation: str,
    blank: int,
    reduction: str,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
    grads: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    loss_shape = (encoder_out.shape[0],) if reduction == "none" else ()
    loss = encoder_out.new_empty(loss_shape)
    if not grads:
        empty = encoder_out.new_empty(0)
        return loss, empty, empty.clone(), empty.clone(), empty.clone()
    return (loss, *_gradient_buffers(encoder_out, predictor_out, weight, bias))


def _backward_op(
    encoder_out: torch.Tensor,
    predictor_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    grad_loss: torch.Tensor,
    activation: str,
    blank: int,
    reduction: str,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    arrays = (encoder_out, predictor_out, weight, bias, targets, logit_lengths, target_lengths)
    options = (activation, blank, reduction, clamp, fastemit_lambda, zero_infinity)
    upstream = grad_loss.to(torch.float64).reshape(-1)
    if reduction != "none":
        scale = float(upstream[0]) / (encoder_out.shape[0] if reduction == "mean" else 1)
        weights = [scale] * encoder_out.shape[0]
    else:
        weights = upstream.tolist()
    _, _, out = _native(arrays, options, True, weights)
    return out  # type: ignore[return-value]


def _backward_fake(
    encoder_out: torch.Tensor,
    predictor_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    grad_loss: torch.Tensor,
    activation: str,
    blank: int,
    reduction: str,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _gradient_buffers(encoder_out, predictor_out, weight, bias)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    """Saves the arrays and, when forward computed them, the gradients of the reported loss."""
    ctx.has_bias = inputs[3] is not None
    ctx.grads = bool(inputs[13])
    ctx.options = inputs[7:13]
    arrays = [t if t is not None else inputs[0].new_empty(0) for t in inputs[:7]]
    ctx.save_for_backward(*arrays, *(output[1:] if ctx.grads else ()))


def _input_grads(
    ctx: Any, grad_loss: torch.Tensor, backward: Any
) -> tuple[torch.Tensor | None, ...]:
    """The gradients of the op's inputs: those forward computed, scaled by ``grad_loss``, or
    ``backward`` (the backward op or its implementation) on the saved arrays."""
    saved = ctx.saved_tensors
    if ctx.grads:
        grads = [g * grad_loss.to(g.dtype) for g in saved[7:]]
    else:
        bias = saved[3] if ctx.has_bias else None
        grads = list(backward(*saved[:3], bias, *saved[4:7], grad_loss, *ctx.options))
    bias_grad = grads[3] if ctx.has_bias else None
    return (grads[0], grads[1], grads[2], bias_grad, *([None] * 10))


def _forward_grad(ctx: Any, grad_loss: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
    return _input_grads(ctx, grad_loss, torch.ops.rnnt.joint_backward)


#: ``rnnt::joint_forward(encoder_out, predictor_out, weight, bias, targets, logit_lengths,
#: target_lengths, activation, blank, reduction, clamp, fastemit_lambda, zero_infinity, grads)
#: -> (loss, grad_encoder_out, grad_predictor_out, grad_weight, grad_bias)``; the gradients are
#: empty unless ``grads``.
joint_forward = custom_op("rnnt::joint_forward", _forward_op, mutates_args=())
register_fake("rnnt::joint_forward", _forward_fake)
register_autograd("rnnt::joint_forward", _forward_grad, setup_context=_setup_context)

#: ``rnnt::joint_backward(encoder_out, predictor_out, weight, bias, targets, logit_lengths,
#: target_lengths, grad_loss, activation, blank, reduction, clamp, fastemit_lambda,
#: zero_infinity) -> (grad_encoder_out, grad_predictor_out, grad_weight, grad_bias)``.
joint_backward = custom_op("rnnt::joint_backward", _backward_op, mutates_args=())
register_fake("rnnt::joint_backward", _backward_fake)


class _EagerJoint(torch.autograd.Function):
    """The ops' implementations joined by a plain autograd function, for eager mode: a custom
    op's first call imports ``torch._dynamo`` (seconds), and each call pays its Python
    dispatch."""

    @staticmethod
    def forward(ctx: Any, *args: Any) -> torch.Tensor:
        out = _forward_op(*args)
        _setup_context(ctx, args, out)
        return out[0]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return _input_grads(ctx, grad_loss, _backward_op)


def joint_loss(
    arrays: tuple[torch.Tensor | None, ...], options: Options, grads: bool
) -> torch.Tensor:
    """The differentiable loss of the seven ``arrays`` (contiguous CPU tensors; the bias may be
    None) with ``options``; ``grads``: autograd will ask for the gradients. Through the custom
    ops while ``torch.compile`` or ``torch.export`` traces, through :class:`_EagerJoint`
    otherwise."""
    if torch.compiler.is_compiling():
        traced: torch.Tensor = torch.ops.rnnt.joint_forward(*arrays, *options, grads)[0]
        return traced
    eager: torch.Tensor = _EagerJoint.apply(*arrays, *options, grads)  # type: ignore[no-untyped-call]
    return eager
