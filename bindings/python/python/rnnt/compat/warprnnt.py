"""Drop-in for ``warprnnt_pytorch`` (HawkAaron/warp-transducer):
``from rnnt.compat.warprnnt import RNNTLoss``.

Semantics of the original, kept here:

- ``acts`` are logits (B, T, U+1, V). warp's CPU path applies ``log_softmax`` in Python and its
  kernel then treats the input as log-probabilities; its GPU path normalises inside the kernel.
  Either way the loss is that of ``log_softmax(acts)``. Because ``log_softmax`` is idempotent,
  passing log-probabilities instead of logits gives the same loss (this, not a sign heuristic,
  is why the seed notebook saw equal values). We apply the fused log_softmax, which also gives the
  same gradient with respect to ``acts``.
- ``labels`` are (B, U) padded labels, ``act_lens`` and ``label_lens`` (B,); warp wants int32,
  we also take int64.
- ``blank`` defaults to 0 (torchaudio's default is -1, the last symbol).
- ``reduction="mean"`` divides the batch sum by B (warp's docstring says it also divides by the
  target lengths; its code does not, and neither do we). ``"sum"`` and ``"mean"`` return shape
  (1,), ``"none"`` shape (B,), in the dtype of ``acts``.

Differences: warp requires ``T == max(act_lens)`` and ``U + 1 == max(label_lens) + 1``; we accept
any padding. Bad input raises ValueError / TypeError naming the argument.
"""

from __future__ import annotations

import torch

from rnnt.torch import rnnt_loss as _per_item_loss

__all__ = ["RNNTLoss", "rnnt_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def rnnt_loss(
    acts: torch.Tensor,
    labels: torch.Tensor,
    act_lens: torch.Tensor,
    label_lens: torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    """warp-transducer's ``rnnt_loss``: logits in; (1,) for "mean" / "sum", (B,) for "none"."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f'reduction = {reduction!r} is not one of "none", "sum", "mean"')
    losses = _per_item_loss(acts, labels, act_lens, label_lens, blank, reduction="none")
    if reduction == "none":
        return losses
    total = losses.sum().reshape(1)
    return total / losses.shape[0] if reduction == "mean" else total


class RNNTLoss(torch.nn.Module):
    """warp-transducer's ``RNNTLoss(blank=0, reduction="mean")``, called as
    ``(acts, labels, act_lens, label_lens)``; see :func:`rnnt_loss`."""

    def __init__(self, blank: int = 0, reduction: str = "mean") -> None:
        super().__init__()
        self.blank = blank
        self.reduction = reduction

    def forward(
        self,
        acts: torch.Tensor,
        labels: torch.Tensor,
        act_lens: torch.Tensor,
        label_lens: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of one batch; see :func:`rnnt_loss`."""
        return rnnt_loss(acts, labels, act_lens, label_lens, self.blank, self.reduction)
