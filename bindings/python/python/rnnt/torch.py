"""The PyTorch front end: ``rnnt_loss`` and ``RNNTLoss``, with torchaudio's signature.

Shape letters, as everywhere in rnnt: B items, T frames, U labels (U+1 label positions), V symbols
including ``blank``.

The autograd function returns the loss (reduced inside it) and, for a large gradient, keeps only
the O(B*T*U) lattice state between forward and backward: backward reads the logits again and
writes the gradient, already scaled, into a fresh tensor. No B*T*(U+1)*V buffer lives between
forward and backward then (torchaudio keeps one). A gradient small enough to stay in cache
(below ``_rnnt.STREAM_MIN_BYTES``, 64 MiB: S1 is 11 MB) is instead computed in the forward call
when the logits need one, in one pass with the softmax terms kept in it (the core's one-shot
``loss_and_grad_into``), and handed to backward: the cost of autograd's two calls is then the
cost of one, for a buffer of at most the logits' own size held in between. Large gradients reuse
the memory of earlier ones that nothing refers to any more (:func:`rnnt.reuse_gradient_memory`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

# Documented as torch.utils.dlpack.to_dlpack, but left out of the module's __all__.
from torch.utils.dlpack import to_dlpack  # type: ignore[attr-defined]

from rnnt import _rnnt
from rnnt._dtypes import common_index_dtype
from rnnt._gradient_memory import MEMORY, reuse_gradient_memory

__all__ = ["RNNTLoss", "reuse_gradient_memory", "rnnt_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def _gradient_like(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``like``'s shape and dtype, in reused memory when it
    is large (see :func:`rnnt.reuse_gradient_memory`)."""
    raw = MEMORY.take(like.numel() * like.element_size())
    if raw is None:
        return torch.empty_like(like, memory_format=torch.contiguous_format)
    return torch.from_numpy(raw).view(like.dtype).view(like.shape)


def _lent(tensor: torch.Tensor) -> Any:
    """A DLPack capsule of ``tensor``, which the native module reads without a copy.

    ``to_dlpack`` rather than the tensor itself (whose ``__dlpack__`` the module would call): an
    unversioned capsule (torch marks no tensor read-only) for a tenth of the cost (0.2 against
    3 us, five times a step), and for tensors that require grad too (``__dlpack__`` refuses them;
    the module only reads them)."""
    return to_dlpack(tensor)


def _lent_inputs(arrays: tuple[torch.Tensor, ...]) -> _rnnt.Inputs:
    """The four arrays of a loss call as the native module takes them (see :func:`_lent`)."""
    logits, targets, logit_lengths, target_lengths = arrays
    return (_lent(logits), _lent(targets), _lent(logit_lengths), _lent(target_lengths))


def _cpu_tensor(value: Any, name: str) -> torch.Tensor:
    """``value`` checked to be a CPU tensor, made contiguous only if it is not (and its values
    materialised if it is a lazily negated view, whose memory holds them unnegated)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.device.type != "cpu":
        raise ValueError(
            f"{name} is on {value.device}: rnnt has no GPU backend yet; pass CPU tensors"
        )
    return value.resolve_neg().contiguous()


def _item_scale(
    per_item: torch.Tensor, grad: torch.Tensor, arrays: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """``per_item`` (B,) shaped to broadcast over ``grad`` item by item: (B, 1, 1, 1) for padded
    logits, one entry per row for packed ones (item b's T_b*(U_b+1) rows)."""
    if grad.dim() != 2:
        return per_item.reshape(-1, *([1] * (grad.dim() - 1)))
    _, _, logit_lengths, target_lengths = arrays
    rows = logit_lengths.to(torch.int64) * (target_lengths.to(torch.int64) + 1)
    return per_item.repeat_interleave(rows, output_size=grad.shape[0]).reshape(-1, 1)


class _RNNTLossFunction(torch.autograd.Function):
    """The RNN-T loss of a batch (reduced as ``reduction`` says); backward writes d objective /
    d logits."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: torch.Tensor,
        targets: torch.Tensor,
        logit_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
        options: dict[str, Any],
        wants_grad: bool,
    ) -> torch.Tensor:
        arrays = (logits, targets, logit_lengths, target_lengths)
        inputs = _lent_inputs(arrays)
        one_shot = wants_grad and logits.numel() * logits.element_size() < _rnnt.STREAM_MIN_BYTES
        if one_shot:
            grad = _gradient_like(logits)
            state = _rnnt.loss_and_grad_into(inputs, _lent(grad), **options)
            ctx.grad = grad  # type: ignore[attr-defined]
        else:
            state = _rnnt.forward(inputs, **options)
        ctx.state = state  # type: ignore[attr-defined]
        ctx.reduction = options["reduction"]  # type: ignore[attr-defined]
        ctx.save_for_backward(*arrays)
        if options["reduction"] == "none":
            return torch.tensor(state.losses(), dtype=logits.dtype)
        return torch.tensor(state.loss(), dtype=logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_loss = grad_loss.detach().to(torch.float64)
        # Read in either case: autograd's version counter then refuses logits modified in place
        # since forward, whether or not their gradient was computed there.
        arrays = ctx.saved_tensors
        grad = getattr(ctx, "grad", None)
        if grad is not None:
            # The gradient of the forward call, for an upstream gradient of 1; handed over (kept
            # here, it would be copied into .grad instead of becoming it). A second backward
            # (retain_graph) computes it again below.
            del ctx.grad
            if ctx.reduction == "none":
                if bool((grad_loss != 1.0).any()):
                    grad.mul_(_item_scale(grad_loss.to(grad.dtype), grad, arrays))
            elif float(grad_loss) != 1.0:
                grad.mul_(float(grad_loss))
            return grad, None, None, None, None, None
        grad = _gradient_like(arrays[0])
        if ctx.reduction == "none":
            weights = grad_loss.tolist()
        else:
            weights = ctx.state.item_weights(float(grad_loss))
        _rnnt.backward(ctx.state, _lent_inputs(arrays), weights, _lent(grad))
        return grad, None, None, None, None, None


def rnnt_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = -1,
    clamp: float = -1,
    reduction: str = "mean",
    fused_log_softmax: bool = True,
    *,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
) -> torch.Tensor:
    """RNN-T loss (Graves 2012), a drop-in for ``torchaudio.functional.rnnt_loss``.

    Args:
        logits: (B, T, U+1, V) joiner output on the CPU: float32, float64, float16 or bfloat16.
            With ``fused_log_softmax=False`` it holds log-probabilities. Positions past an item's
            lengths are padding and never read. Or packed, 2-D (sum of T_b*(U_b+1), V): item b's
            T_b x (U_b+1) rows, frame-major, after those of the items before it (no padding;
            the total must match the lengths). Read through DLPack without a copy when
            contiguous.
        targets: (B, U) labels padded past ``target_lengths`` (or (sum of U_b,) labels packed end
            to end); int32 or int64.
        logit_lengths: (B,) frames per item, 1 <= T_b <= T; int32 or int64.
        target_lengths: (B,) labels per item, 0 <= U_b <= U; int32 or int64 (mixed int types
            are converted to int64).
        blank: blank id; negative counts from the end (default -1, the last symbol).
        clamp: when > 0, clip each item's gradient to [-clamp, clamp] before the reduction's
            scaling (torchaudio semantics). Default -1: no clipping.
        reduction: "mean" (default: the mean of the per-item losses, ``losses.mean()``), "sum"
            or "none".
        fused_log_softmax: True (default): log_softmax over V is applied inside the loss. False:
            ``logits`` are used as log-probabilities and the gradient treats them as free inputs.
        fastemit_lambda: FastEmit lambda >= 0 (Yu et al. 2021): emission-arc gradient terms are
            scaled by 1 + lambda; the reported loss stays -log P.
        zero_infinity: report impossible items (every path masked by -inf) as loss 0 instead of
            +inf. Their gradient is 0 either way.

    Returns:
        The loss in the dtype of ``logits``: a scalar for "mean" and "sum", shape (B,) for
        "none". Differentiable with respect to ``logits``. The computation accumulates in
        float64.

    Raises:
        ValueError: a bad shape, length, label, option or logit value (NaN or +inf within the
            lengths), or a tensor not on the CPU; the message names the argument and the value.
        TypeError: an argument that is not a tensor or has an unsupported dtype, naming it.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f'reduction = {reduction!r} is not one of "none", "sum", "mean"')
    logits = _cpu_tensor(logits, "logits")
    indices = [
        _cpu_tensor(value, name)
        for value, name in (
            (targets, "targets"),
            (logit_lengths, "logit_lengths"),
            (target_lengths, "target_lengths"),
        )
    ]
    index_dtype = common_index_dtype([str(t.dtype).removeprefix("torch.") for t in indices])
    if index_dtype is not None:
        indices = [t.to(torch.int64) for t in indices]
    options = {
        "blank": blank,
        "reduction": reduction,
        "clamp": float(clamp),
        "fused_log_softmax": fused_log_softmax,
        "fastemit_lambda": fastemit_lambda,
        "zero_infinity": zero_infinity,
    }
    # Whether backward will be asked for (forward runs without grad mode, so it cannot tell).
    wants_grad = torch.is_grad_enabled() and logits.requires_grad
    loss: torch.Tensor = _RNNTLossFunction.apply(  # type: ignore[no-untyped-call]
        logits, *indices, options, wants_grad
    )
    return loss


class RNNTLoss(torch.nn.Module):
    """RNN-T loss as a module, a drop-in for ``torchaudio.transforms.RNNTLoss``.

    The options are those of :func:`rnnt_loss`; call it as
    ``loss(logits, targets, logit_lengths, target_lengths)``.
    """

    def __init__(
        self,
        blank: int = -1,
        clamp: float = -1.0,
        reduction: str = "mean",
        fused_log_softmax: bool = True,
        *,
        fastemit_lambda: float = 0.0,
        zero_infinity: bool = False,
    ) -> None:
        super().__init__()
        self.blank = blank
        self.clamp = clamp
        self.reduction = reduction
        self.fused_log_softmax = fused_log_softmax
        self.fastemit_lambda = fastemit_lambda
        self.zero_infinity = zero_infinity

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        logit_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of one batch; see :func:`rnnt_loss` for shapes and the result."""
        return rnnt_loss(
            logits,
            targets,
            logit_lengths,
            target_lengths,
            self.blank,
            self.clamp,
            self.reduction,
            self.fused_log_softmax,
            fastemit_lambda=self.fastemit_lambda,
            zero_infinity=self.zero_infinity,
        )
