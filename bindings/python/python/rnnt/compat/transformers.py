"""Drop-ins for HuggingFace transformers' ``transformers.loss.loss_rnnt.rnnt_loss`` (the loss of
its Parakeet RNN-T models) and ``transformers.loss.loss_tdt.tdt_loss`` (Parakeet-TDT's):
``from rnnt.compat.transformers import rnnt_loss, tdt_loss``.

Semantics of the original, kept here:

- ``rnnt_loss(logits, targets, logit_lengths, target_lengths, blank_token_id,
  reduction="mean_volume")``: logits (B, T, U+1, V) with the log_softmax applied inside, padded
  targets (B, U), lengths (B,), the blank id (negative counts from the end).
- NeMo's five reductions of the per-item losses loss_b, with U_b = ``target_lengths``:
  ``"mean_volume"`` Σ_b loss_b / Σ_b U_b (per-token average over the batch: Parakeet's);
  ``"mean_batch"`` Σ_b loss_b / B; ``"mean"`` the mean over b of loss_b / U_b; ``"sum"``
  Σ_b loss_b; ``"none"`` the (B,) losses. An empty target makes ``"mean"`` (and an all-empty batch
  ``"mean_volume"``) divide by zero, as in the original.
- The result is float32 whatever the dtype of ``logits`` (the original casts the logits to
  float32); the gradient has the dtype of ``logits``.

- ``tdt_loss(token_logits, duration_logits, targets, logit_lengths, target_lengths,
  blank_token_id, durations, sigma=0.0, reduction="mean")``: the same five reductions (default
  ``"mean"``, the released Parakeet-TDT checkpoints'), a float32 result, sigma on the token head.

Differences: the original ``tdt_loss`` is a float32 PyTorch recursion differentiated by autograd,
whose gradients are NaN wherever a lattice node no path reaches meets ``logsumexp`` of -inf
(e.g. frames past an item's length, or any item of durations without 0); here both heads'
gradients are exact (float64 α/β) and finite, 0 in padding and for impossible items. The original
``rnnt_loss`` calls torchaudio (float32 α/β, logits copied to float32); we read
float16 / bfloat16 / float64 logits as they are and accumulate in float64, so the losses are at
least as exact. CPU tensors only; bad input raises ValueError / TypeError naming the argument.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnt.torch import _loss

__all__ = ["rnnt_loss", "tdt_loss"]

_REDUCTIONS = ("mean_volume", "mean_batch", "mean", "sum", "none")


def rnnt_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank_token_id: int,
    reduction: str = "mean_volume",
) -> torch.Tensor:
    """transformers' (NeMo's) RNN-T loss with its five reductions.

    Args:
        logits: (B, T, U+1, V) joiner output on the CPU: float32, float64, float16 or bfloat16.
        targets: (B, U) labels padded past ``target_lengths``; int32 or int64.
        logit_lengths: (B,) frames per item, 1 <= T_b <= T; int32 or int64.
        target_lengths: (B,) labels per item, 0 <= U_b <= U; int32 or int64.
        blank_token_id: blank id; negative counts from the end.
        reduction: "mean_volume" (default: Σ_b loss_b / Σ_b U_b), "mean_batch" (Σ_b loss_b / B),
            "mean" (mean over b of loss_b / U_b), "sum" or "none".

    Returns:
        float32: a scalar, or shape (B,) for "none". Differentiable with respect to ``logits``.

    Raises:
        ValueError: an unknown reduction, or as :func:`rnnt.rnnt_loss` (shape, length, label,
            blank id or logit value), naming the argument.
        TypeError: as :func:`rnnt.rnnt_loss` (a bad dtype), naming the argument.
    """
    return _reduced(
        reduction,
        target_lengths,
        lambda inner: _loss(
            logits,
            targets,
            logit_lengths,
            target_lengths,
            blank_token_id,
            -1,
            inner,
            True,
            0.0,
            False,
            torch.float32,
        ),
    )


def tdt_loss(
    token_logits: torch.Tensor,
    duration_logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank_token_id: int,
    durations: list[int],
    sigma: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """transformers' TDT loss with its five reductions (see :func:`rnnt.tdt_loss` for the
    lattice).

    Args:
        token_logits: (B, T, U+1, V) token head on the CPU: float32, float64, float16 or
            bfloat16.
        duration_logits: (B, T, U+1, D) duration head, D = len(durations), of the same dtype
            (views of one joint tensor are read without a copy).
        targets, logit_lengths, target_lengths: as for :func:`rnnt_loss`.
        blank_token_id: blank id; negative counts from the end.
        durations: ascending distinct durations >= 0, e.g. [0, 1, 2, 3, 4].
        sigma: undernormalisation constant on the token head.
        reduction: "mean" (default: mean over b of loss_b / U_b), "mean_volume", "mean_batch",
            "sum" or "none".

    Returns:
        float32: a scalar, or shape (B,) for "none". Differentiable with respect to both heads.

    Raises:
        ValueError: an unknown reduction, or as :func:`rnnt.tdt_loss`, naming the argument.
        TypeError: as :func:`rnnt.tdt_loss`, naming the argument.
    """
    return _reduced(
        reduction,
        target_lengths,
        lambda inner: _loss(
            token_logits,
            targets,
            logit_lengths,
            target_lengths,
            blank_token_id,
            -1,
            inner,
            True,
            0.0,
            False,
            torch.float32,
            duration_logits=duration_logits,
            sigma=sigma,
            durations=durations,
        ),
    )


def _reduced(
    reduction: str,
    target_lengths: torch.Tensor,
    loss_with: Callable[[str], torch.Tensor],
) -> torch.Tensor:
    """NeMo's reduction ``reduction`` of the loss that ``loss_with(inner)`` gives with our
    reduction ``inner`` (options: clamp -1 (off), log_softmax fused, no FastEmit, impossible
    items +inf; float32 loss)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction = {reduction!r} is not one of {', '.join(_REDUCTIONS)}")
    inner = {"mean_batch": "mean", "none": "none", "mean": "none"}.get(reduction, "sum")
    loss = loss_with(inner)
    if reduction == "mean_volume":
        return loss / target_lengths.float().sum()
    if reduction == "mean":
        return (loss / target_lengths.float()).mean()
    return loss
