"""Drop-in for awni's ``TransducerLoss`` (awni/transducer, the revision that takes ``blank_label``,
``functions/transducer.py``, the log-probs API the seed notebook used):
``from rnnt.compat.awni import TransducerLoss``.

Semantics of the original, kept here:

- ``TransducerLoss(size_average=True, blank_label=None)``, in that positional order.
  ``blank_label=None`` means the last symbol, V−1.
- ``log_probs`` are log-probabilities (B, T, U+1, V), e.g. ``log_softmax(joiner_output, -1)``;
  they are used as they are (no normalisation inside), and the gradient treats them as free
  inputs, as awni's kernel does. Autograd carries it through your own ``log_softmax``.
- ``labels`` are packed: the labels of every item concatenated in batch order, shape
  (sum of U_b,); ``lengths`` (B,) frames and ``label_lengths`` (B,) labels per item. awni wants
  int32, we also take int64.
- The result has shape (1,): the mean of the per-item losses over the batch (the batch sum / B)
  with ``size_average=True`` (default), the batch sum with ``size_average=False``. Its gradient
  is that of the result, divided by B for the mean.

Differences: awni requires float32 and ``T == max(lengths)``, ``U + 1 == max(label_lengths) + 1``;
we accept float64 / float16 / bfloat16 (the result has the dtype of ``log_probs``; awni's is
float32) and any padding. awni's backward ignores the upstream gradient (it returns the gradient
of the loss itself whatever multiplies the loss afterwards); ours applies it. The per-item
``Transducer`` function of that revision is ``rnnt.rnnt_loss(log_probs, labels, lengths,
label_lengths, blank, reduction="none", fused_log_softmax=False)``; later awni releases changed the
API (emissions + predictions).
"""

from __future__ import annotations

import torch

from rnnt.torch import rnnt_loss

__all__ = ["TransducerLoss"]


class TransducerLoss(torch.nn.Module):
    """awni's ``TransducerLoss(size_average=True, blank_label=None)``: log-probs and packed labels
    in, the batch mean (or sum) out as a tensor of shape (1,).

    Args:
        size_average: True (default): the mean of the per-item losses over the batch. False:
            their sum.
        blank_label: blank id; None (default) means the last symbol, V−1. Negative ids count
            from the end.
    """

    def __init__(self, size_average: bool = True, blank_label: int | None = None) -> None:
        super().__init__()
        self.size_average = size_average
        self.blank_label = blank_label

    def forward(
        self,
        log_probs: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor,
        label_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of one batch.

        Args:
            log_probs: (B, T, U+1, V) log-probabilities on the CPU: float32, float64, float16 or
                bfloat16.
            labels: (sum of U_b,) the labels of every item concatenated in batch order; int32 or
                int64.
            lengths: (B,) frames per item, 1 <= T_b <= T; int32 or int64.
            label_lengths: (B,) labels per item, 0 <= U_b <= U; int32 or int64.

        Returns:
            Shape (1,), in the dtype of ``log_probs``: Σ_b −log P(y_b | x_b), divided by B when
            ``size_average``. Differentiable with respect to ``log_probs``.

        Raises:
            ValueError, TypeError: as :func:`rnnt.rnnt_loss`, naming the argument.
        """
        blank = -1 if self.blank_label is None else self.blank_label
        loss = rnnt_loss(
            log_probs,
            labels,
            lengths,
            label_lengths,
            blank,
            reduction="mean" if self.size_average else "sum",
            fused_log_softmax=False,
        )
        return loss.reshape(1)
