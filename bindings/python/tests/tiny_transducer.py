"""A tiny transducer and ragged batches for the tests of training set-ups (``torch.compile``,
DistributedDataParallel): a linear encoder, an embedding prediction network and an additive
joiner giving (B, T, U+1, V) logits, with no recurrent layer (``torch.compile`` traces it whole).
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 6
BLANK = VOCAB - 1  # the last symbol: rnnt_loss's default blank=-1, awni's blank_label=None
FEATURES = 4
HIDDEN = 8


class TinyTransducer(nn.Module):
    """Logits (B, T, U+1, V) for frames (B, T, FEATURES) and teacher-forced targets (B, U)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(FEATURES, HIDDEN)
        self.embedding = nn.Embedding(VOCAB, HIDDEN)  # the blank id doubles as "start"
        self.joiner = nn.Linear(HIDDEN, VOCAB)

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        start = torch.full((targets.shape[0], 1), BLANK, dtype=torch.long)
        predicted = self.embedding(torch.cat([start, targets.long()], dim=1))
        encoded = self.encoder(features)
        return self.joiner(torch.tanh(encoded.unsqueeze(2) + predicted.unsqueeze(1)))


def ragged_batch(
    seed: int, items: int, frames: int = 7, labels: int = 3
) -> tuple[torch.Tensor, ...]:
    """Frames (B, T, FEATURES) float32, padded targets (B, U), frame lengths (B,) and label lengths
    (B,), int32, with item 0 at the maxima and the others shorter."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(items, frames, FEATURES, generator=generator)
    targets = torch.randint(0, BLANK, (items, labels), generator=generator, dtype=torch.int32)
    frame_lengths = torch.randint(max(1, frames - 3), frames + 1, (items,), generator=generator)
    label_lengths = torch.randint(0, labels + 1, (items,), generator=generator)
    frame_lengths[0], label_lengths[0] = frames, labels
    return features, targets, frame_lengths.to(torch.int32), label_lengths.to(torch.int32)


def packed(targets: torch.Tensor, label_lengths: torch.Tensor) -> torch.Tensor:
    """Each item's labels within its length, concatenated (ΣU_b,), as awni takes them."""
    return torch.cat([row[: int(n)] for row, n in zip(targets, label_lengths)])
