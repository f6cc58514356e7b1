"""The PyTorch front end: ``rnnt_loss`` and ``RNNTLoss``, with torchaudio's signature, and the
transducer variants: ``tdt_loss`` / ``TDTLoss`` (Token-and-Duration Transducer) and
``multiblank_rnnt_loss`` / ``MultiblankRNNTLoss``; one-symbol-per-frame lattices and the delay
penalty are options of ``rnnt_loss`` (definitions: docs/variants.md).

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

__all__ = [
    "MultiblankRNNTLoss",
    "RNNTLoss",
    "TDTLoss",
    "multiblank_rnnt_loss",
    "reuse_gradient_memory",
    "rnnt_loss",
    "tdt_loss",
]

_REDUCTIONS = ("none", "mean", "sum")
_RNNT_TYPES = ("regular", "modified", "constrained")


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


def _head_tensor(value: Any, name: str) -> torch.Tensor:
    """A TDT head checked as :func:`_cpu_tensor`, left as it is when the native module reads its
    layout in place (the last axis contiguous, the outer axes C-contiguous over rows of any pitch:
    a slice ``joint[..., :V]`` or ``joint[..., V:]`` of one NeMo joint tensor), else made
    contiguous."""
    if not isinstance(value, torch.Tensor) or value.device.type != "cpu" or value.dim() < 2:
        return _cpu_tensor(value, name)
    head: torch.Tensor = value.resolve_neg()
    sizes, strides = head.shape, head.stride()
    readable = strides[-1] == 1 and strides[-2] >= sizes[-1]
    for axis in range(head.dim() - 3, -1, -1):
        readable = readable and strides[axis] == strides[axis + 1] * sizes[axis + 1]
    return head if readable else head.contiguous()


def _joint_of(token: Any, duration: Any, durations: list[int]) -> torch.Tensor | None:
    """The one tensor whose views ``[..., :V]`` and ``[..., V:]`` ``token`` and ``duration`` are
    (NeMo's joint), when they are exactly that and differentiable alike; else None. The loss then
    takes the joint itself, so that autograd gets one joint-shaped gradient, written once, instead
    of two head gradients it would scatter into zero-filled joint-sized buffers and add."""
    if not (isinstance(token, torch.Tensor) and isinstance(duration, torch.Tensor)):
        return None
    base = token._base
    if base is None or duration._base is not base or not durations:
        return None
    v, d = token.shape[-1], len(durations)
    shaped = (
        token.dim() == base.dim()
        and duration.shape[-1] == d
        and base.shape[-1] == v + d
        and token.shape[:-1] == duration.shape[:-1] == base.shape[:-1]
        and token.stride() == duration.stride() == base.stride()
        and token.storage_offset() == base.storage_offset()
        and duration.storage_offset() == base.storage_offset() + v
        and token.requires_grad == duration.requires_grad == base.requires_grad
    )
    return base if shaped else None


def _int_list(value: Any, name: str) -> list[int]:
    """``value`` (a sequence of integers, or a 1-D integer tensor) as a list of ints; the loss
    checks the values."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    try:
        return [operator.index(v) for v in value]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers, got {value!r}") from None


def _rnnt_type(value: Any) -> str:
    if value not in _RNNT_TYPES:
        raise ValueError(
            f'rnnt_type = {value!r} is not one of "regular", "modified", "constrained"'
        )
    return str(value)


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
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
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
        fastemit_lambda: FastEmit lambda >= 0 (Yu et al. 2021, as 1ytic/warp-rnnt defines it):
            label-arc gradient terms are scaled by 1 + lambda; the reported loss stays -log P
            (NeMo reports (1 + lambda)·(-log P) for the same gradient).
        zero_infinity: report impossible items (every path masked by -inf) as loss 0 instead of
            +inf. Their gradient is 0 either way.
        rnnt_type: the lattice, as k2 names it: "regular" (default, the standard loss),
            "modified" (one symbol per frame: a label moves (t, u) to (t+1, u+1), no terminal
            blank, needs T_b >= U_b) or "constrained" (modified, the label arc also reading the
            blank of the next context on the same frame).
        delay_penalty: k2's delay penalty delta: every label arc at frame t gains
            delta*((T_b - 1)/2 - t) (each item's own T_b); the loss includes it.

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
        rnnt_type=_rnnt_type(rnnt_type),
        delay_penalty=delay_penalty,
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
    *,
    duration_logits: Any = None,
    rnnt_type: str = "regular",
    terminal_blank: bool = False,
    delay_penalty: float = 0.0,
    sigma: float = 0.0,
    big_blank_durations: Any = (),
    durations: Any = (),
) -> torch.Tensor:
    """Every loss of this module, with the loss in ``loss_dtype`` (None: the dtype of
    ``logits``); a TDT loss when ``duration_logits`` is given (``logits`` the token logits)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f'reduction = {reduction!r} is not one of "none", "sum", "mean"')
    durations = _int_list(durations, "durations")
    joint = _joint_of(logits, duration_logits, durations)
    if joint is not None:
        # The heads are split again inside the op (rnnt._torch_ops._split).
        logits, duration_logits = joint, None
    tdt = duration_logits is not None
    logits = (
        _head_tensor(logits, "token_logits")
        if tdt or joint is not None
        else _cpu_tensor(logits, "logits")
    )
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
    heads = [logits]
    if tdt:
        duration_logits = _head_tensor(duration_logits, "duration_logits")
        heads.append(duration_logits)
    wants_grad = torch.is_grad_enabled() and any(head.requires_grad for head in heads)
    size = sum(head.numel() * head.element_size() for head in heads)
    one_shot = wants_grad and size < _rnnt.STREAM_MIN_BYTES
    targets, logit_lengths, target_lengths = indices
    return _torch_ops.loss(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        duration_logits,
        _blank_id(blank),
        reduction,
        float(clamp),
        bool(fused_log_softmax),
        float(fastemit_lambda),
        bool(zero_infinity),
        rnnt_type,
        bool(terminal_blank),
        float(delay_penalty),
        float(sigma),
        _int_list(big_blank_durations, "big_blank_durations"),
        durations,
        one_shot,
        logits.dtype if loss_dtype is None else loss_dtype,
    )


def tdt_loss(
    token_logits: torch.Tensor,
    duration_logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    blank: int,
    durations: list[int],
    sigma: float = 0.0,
    reduction: str = "mean",
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
    fused_log_softmax: bool = True,
) -> torch.Tensor:
    """Token-and-Duration Transducer loss (Xu et al. 2023, NeMo's ``TDTLoss``), exact in float64.

    A blank of duration d > 0 moves (t, u) to (t+d, u), a label of duration d >= 0 moves (t, u)
    to (t+d, u+1); each arc weighs log_softmax(token_logits) - sigma plus the duration's
    log_softmax(duration_logits); a path ends with a blank landing exactly on T_b (an item that
    cannot has P = 0: loss +inf, gradient 0).

    Args:
        token_logits: (B, T, U+1, V) token head on the CPU (float32, float64, float16, bfloat16),
            or packed (sum of T_b*(U_b+1), V) as for :func:`rnnt_loss`.
        duration_logits: (B, T, U+1, D) duration head (or packed), D = len(durations), of the
            dtype of ``token_logits``. The two heads may be views ``joint[..., :V]`` and
            ``joint[..., V:]`` of one (B, T, U+1, V+D) tensor (NeMo's joint): they are read in
            place, without a copy.
        targets, logit_lengths, target_lengths: as for :func:`rnnt_loss`.
        blank: blank id of the token head; negative counts from the end.
        durations: ascending distinct durations >= 0 (e.g. [0, 1, 2, 3, 4]; without 0 allowed).
        sigma: undernormalisation constant, subtracted from the token log-probability of every
            arc (never from the durations).
        reduction, clamp, zero_infinity: as for :func:`rnnt_loss`.
        fastemit_lambda: FastEmit lambda >= 0: the token head's label-arc gradient terms are
            scaled by 1 + lambda (the duration head's are not); the loss stays -log P.
        fused_log_softmax: False: ``token_logits`` are log-probabilities used as they are (the
            duration head always goes through log_softmax).

    Returns:
        The loss in the dtype of ``token_logits`` (a scalar, or (B,) for "none"), differentiable
        with respect to both heads.

    Raises:
        ValueError: as :func:`rnnt_loss`, and for bad ``durations`` (not ascending, repeated,
            negative, empty) or a duration head whose last axis is not len(durations), naming the
            argument.
        TypeError: as :func:`rnnt_loss`.
    """
    return _loss(
        token_logits,
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
        duration_logits=duration_logits,
        sigma=sigma,
        durations=durations,
    )


def multiblank_rnnt_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    blank: int,
    big_blank_durations: list[int],
    sigma: float = 0.0,
    reduction: str = "mean",
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
    fused_log_softmax: bool = True,
) -> torch.Tensor:
    """Multi-blank transducer loss (Xu et al. 2022, NeMo's ``MultiblankRNNTLoss``).

    Big blank i, of duration ``big_blank_durations[i]`` (>= 2), is symbol ``blank - 1 - i`` (as
    NeMo: the big blanks sit just below the standard blank, which NeMo models put last) and moves
    t forward by its duration; ``sigma`` is subtracted on every arc.

    Args:
        logits, targets, logit_lengths, target_lengths: as for :func:`rnnt_loss`; no label may
            be a big blank id.
        blank: the standard blank's id; negative counts from the end.
        big_blank_durations: the big blanks' durations, e.g. [2, 4, 8].
        sigma: undernormalisation constant, on every arc.
        reduction, clamp, fastemit_lambda, zero_infinity, fused_log_softmax: as for
            :func:`rnnt_loss`.

    Returns:
        The loss in the dtype of ``logits`` (a scalar, or (B,) for "none"), differentiable with
        respect to ``logits``.

    Raises:
        ValueError: as :func:`rnnt_loss`, and for a big blank id below 0 or equal to a label,
            naming the argument.
        TypeError: as :func:`rnnt_loss`.
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
        sigma=sigma,
        big_blank_durations=big_blank_durations,
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
        rnnt_type: str = "regular",
        delay_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        self.blank = blank
        self.clamp = clamp
        self.reduction = reduction
        self.fused_log_softmax = fused_log_softmax
        self.fastemit_lambda = fastemit_lambda
        self.zero_infinity = zero_infinity
        self.rnnt_type = rnnt_type
        self.delay_penalty = delay_penalty

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
            rnnt_type=self.rnnt_type,
            delay_penalty=self.delay_penalty,
        )


class TDTLoss(torch.nn.Module):
    """:func:`tdt_loss` as a module: ``TDTLoss(blank=..., durations=..., sigma=0.0, ...)``, called
    as ``loss(token_logits, duration_logits, targets, logit_lengths, target_lengths)``."""

    def __init__(self, *, blank: int, durations: list[int], **options: Any) -> None:
        super().__init__()
        self.blank = blank
        self.durations = list(durations)
        self.options = options

    def forward(
        self,
        token_logits: torch.Tensor,
        duration_logits: torch.Tensor,
        targets: torch.Tensor,
        logit_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of one batch; see :func:`tdt_loss`."""
        return tdt_loss(
            token_logits,
            duration_logits,
            targets,
            logit_lengths,
            target_lengths,
            blank=self.blank,
            durations=self.durations,
            **self.options,
        )


class MultiblankRNNTLoss(torch.nn.Module):
    """:func:`multiblank_rnnt_loss` as a module: ``MultiblankRNNTLoss(blank=...,
    big_blank_durations=..., sigma=0.0, ...)``, called as
    ``loss(logits, targets, logit_lengths, target_lengths)``."""

    def __init__(self, *, blank: int, big_blank_durations: list[int], **options: Any) -> None:
        super().__init__()
        self.blank = blank
        self.big_blank_durations = list(big_blank_durations)
        self.options = options

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        logit_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of one batch; see :func:`multiblank_rnnt_loss`."""
        return multiblank_rnnt_loss(
            logits,
            targets,
            logit_lengths,
            target_lengths,
            blank=self.blank,
            big_blank_durations=self.big_blank_durations,
            **self.options,
        )
