"""Drop-in for awni's ``transducer.TransducerLoss`` (awni/transducer, the log-probs API the seed
notebook used): ``from rnnt.compat.awni import TransducerLoss``.

Semantics of the original, kept here:

- ``log_probs`` are log-probabilities (B, T, U+1, V), e.g. ``log_softmax(joiner_output, -1)``;
  they are used as they are (no normalisation inside), and the gradient treats them as free
  inputs, as awni's kernel does. Autograd carries it through your own ``log_softmax``.
- ``labels`` are packed: the labels of every item concatenated in batch order, shape
  (sum of U_b,); ``lengths`` (B,) frames and ``label_lengths`` (B,) labels per item. awni wants
  int32, we also take int64.
- The result is the batch sum of the per-item losses, a 0-d tensor in the dtype of
  ``log_probs``.

Differences: awni requires float32 and ``T == max(lengths)``, ``U + 1 == max(label_lengths) + 1``;
we accept float64 / float16 / bfloat16 and any padding. Later awni releases changed the API
(emissions + predictions, per-item costs); for per-item losses on log-probs use
``rnnt.rnnt_loss(log_probs, labels, lengths, label_lengths, blank, reduction="none",
fused_log_softmax=False)``.
"""

from __future__ import annotations

import torch

from rnnt.torch import rnnt_loss

__all__ = ["TransducerLoss"]


class TransducerLoss(torch.nn.Module):
    """awni's ``TransducerLoss(blank_label=0)``: log-probs and packed labels in, batch sum out."""

    def __init__(self, blank_label: int = 0) -> None:
        super().__init__()
        self.blank_label = blank_label

    def forward(
        self,
        log_probs: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor,
        label_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Σ_b −log P(y_b | x_b) for log-probs (B, T, U+1, V) and packed labels (ΣU_b,)."""
        return rnnt_loss(
            log_probs,
            labels,
            lengths,
            label_lengths,
            self.blank_label,
            reduction="sum",
            fused_log_softmax=False,
        )
