"""Drop-in for ``optimized_transducer`` 1.4 (csukuangfj/optimized_transducer):
``from rnnt.compat.optimized_transducer import transducer_loss``.

Semantics of the original, kept here:

- ``logits`` are packed, 2-D (sum of T_b*(U_b+1), V): item b's (T_b, U_b+1, V) block flattened
  to T_b*(U_b+1) rows, frame-major, the items concatenated in batch order (no padding). Padded
  (B, T, U+1, V) logits are taken too.
- ``targets`` (B, U) padded labels, ``logit_lengths`` and ``target_lengths`` (B,); the original
  wants int32, we also take int64 (and packed (sum of U_b,) targets).
- ``from_log_softmax=False``: ``logits`` are the joiner's output and log_softmax over V is
  applied inside (the gradient is with respect to the logits). ``True``: they are
  log-probabilities used as they are, and the gradient treats them as free inputs: minus the
  occupancy of the blank arc at ``blank`` and of the emission arc at the next label, 0 for every
  other symbol (the original's ``ComputeGradientForLogSoftmax``).
- ``reduction="mean"`` is the mean of the per-item losses (the sum over B, and the gradient
  divided by B); ``"sum"`` their sum. Both are 0-d tensors in the dtype of ``logits`` (the
  original's docstring says shape (1,); its code returns ``loss.mean()`` / ``loss.sum()``, 0-d).
  Other reductions raise ValueError (the original asserts).
- ``one_sym_per_frame=True``: at most one symbol per frame (its ``ComputeAlphaOneSymPerFrame``):
  every arc consumes one frame, a label moves (t, u) to (t+1, u+1), and a path ends with a blank
  from (T_b-1, U_b) (needs T_b >= U_b+1): k2's "modified" lattice with a terminal blank, i.e.
  loss = k2_modified(logits[:T_b-1]) - log p(blank at (T_b-1, U_b)).

Differences: the original takes float32 only and, with ``from_log_softmax=False``, overwrites
``logits`` with their gradient to save memory; we take float64 / float16 / bfloat16 as well and
leave the logits untouched (the gradient is a new tensor, or reuses the memory of an earlier one:
:func:`rnnt.reuse_gradient_memory`). ``blank`` may also be negative (counting from the end).
"""

from __future__ import annotations

import torch

from rnnt.torch import _loss

__all__ = ["TransducerLoss", "transducer_loss"]

_REDUCTIONS = ("mean", "sum")


def transducer_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    from_log_softmax: bool,
    one_sym_per_frame: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """optimized_transducer's ``transducer_loss``: packed logits in, a 0-d loss out."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f'reduction = {reduction!r} is not one of "mean", "sum"')
    return _loss(
        logits,
        targets,
        logit_lengths,
        target_lengths,
        blank,
        -1.0,
        reduction,
        not from_log_softmax,
        0.0,
        False,
        None,
        rnnt_type="modified" if one_sym_per_frame else "regular",
        terminal_blank=bool(one_sym_per_frame),
    )


class TransducerLoss(torch.nn.Module):
    """optimized_transducer's ``TransducerLoss(blank, reduction="mean")``, called as
    ``(logits, targets, logit_lengths, target_lengths, from_log_softmax,
    one_sym_per_frame=False)``; see :func:`transducer_loss`."""

    def __init__(self, blank: int, reduction: str = "mean") -> None:
        super().__init__()
        self.blank = blank
        self.reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        logit_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
        from_log_softmax: bool,
        one_sym_per_frame: bool = False,
    ) -> torch.Tensor:
        """The loss of one batch; see :func:`transducer_loss`."""
        return transducer_loss(
            logits,
            targets,
            logit_lengths,
            target_lengths,
            self.blank,
            from_log_softmax,
            one_sym_per_frame,
            self.reduction,
        )
