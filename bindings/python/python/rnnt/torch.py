"""The PyTorch front end: ``rnnt_loss`` and ``RNNTLoss``, with torchaudio's signature.

Shape letters, as everywhere in rnnt: B items, T frames, U labels (U+1 label positions), V symbols
including ``blank``.

The loss is the custom op ``rnnt::loss_forward`` with its autograd formula
``rnnt::loss_backward`` (:mod:`rnnt._torch_ops`), so ``torch.compile`` traces it without a graph
break. Forward returns the loss (reduced inside it) and, for a large gradient, keeps only the
O(B*T*U) lattice state for backward, which reads the logits again and writes the gradient, already
scaled, into a fresh tensor. No B*T*(U+1)*V buffer lives between forward and backward then
(torchaudio keeps one). A gradient small enough to stay in cache (below
``_rnnt.STREAM_MIN_BYTES``, 64 MiB: S1 is 11 MB) is instead computed in the forward call when the
logits need one, in one pass with the softmax terms kept in it (the core's one-shot
``loss_and_grad_into``), and handed to backward: the cost of autograd's two calls is then the cost
of one, for a buffer of at most the logits' own size held in between. Large gradients reuse the
memory of earlier ones that nothing refers to any more (:func:`rnnt.reuse_gradient_memory`).
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from rnnt import _rnnt, _torch_ops
from rnnt._dtypes import common_index_dtype
from rnnt._gradient_memory import reuse_gradient_memory

__all__ = ["RNNTLoss", "reuse_gradient_memory", "rnnt_loss"]

_REDUCTIONS = ("none", "mean", "sum")


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


def _blank_id(blank: Any) -> int:
    """``blank`` as an int64 (any integer type); the loss checks its range against V."""
    try:
        value = operator.index(blank)
    except TypeError:
        raise TypeError(f"blank must be an integer, got {type(blank).__name__}") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"blank = {value} is out of range")
    return value


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

    ``torch.compile`` (``fullgraph=True`` included) traces it without a graph break: it is the
    custom op ``rnnt::loss_forward`` there, with ``rnnt::loss_backward`` as its gradient.

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
    return _loss(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        blank,
        clamp,
        reduction,
        fused_log_softmax,
        fastemit_lambda,
        zero_infinity,
        None,
    )


def _loss(
    logits: Any,
    targets: Any,
    logit_lengths: Any,
    target_lengths: Any,
    blank: Any,
    clamp: float,
    reduction: str,
    fused_log_softmax: bool,
    fastemit_lambda: float,
    zero_infinity: bool,
    loss_dtype: torch.dtype | None,
) -> torch.Tensor:
    """:func:`rnnt_loss`, with the loss in ``loss_dtype`` (None: the dtype of ``logits``)."""
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
    # Whether backward will be asked for (the op runs below autograd, so it cannot tell).
    wants_grad = torch.is_grad_enabled() and logits.requires_grad
    one_shot = wants_grad and logits.numel() * logits.element_size() < _rnnt.STREAM_MIN_BYTES
    targets, logit_lengths, target_lengths = indices
    return _torch_ops.loss(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        _blank_id(blank),
        reduction,
        float(clamp),
        bool(fused_log_softmax),
        float(fastemit_lambda),
        bool(zero_infinity),
        one_shot,
        logits.dtype if loss_dtype is None else loss_dtype,
    )


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
