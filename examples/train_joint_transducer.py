"""Train the tiny transducer of ``train_tiny_transducer.py`` twice from the same seed: once with
its joiner's output layer followed by ``rnnt.rnnt_loss`` (unfused: the (B, T, U+1, V) logits are
materialised), once with that layer moved into ``rnnt.JointRNNTLoss`` (fused: the logits are made a
tile at a time inside the loss and never stored), and show that the two loss curves agree.

Switching a model takes three lines: drop the joiner's output ``nn.Linear(H, V)`` (keep whatever
comes before the ``tanh``), create ``criterion = rnnt.JointRNNTLoss(H, V)`` (its ``weight`` and
``bias`` are that layer's, so copy them over to keep a trained model, and give them to the
optimiser), and replace ``rnnt_loss(joiner(f, g), ...)`` by ``criterion(f, g, ...)`` with the
encoder's (B, T, H) and the prediction network's (B, U+1, H) outputs.

Run: ``python examples/train_joint_transducer.py [--steps 300]``. The two curves agree to float32
rounding (the script prints the largest relative difference of the per-step losses).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_tiny_transducer import BLANK, VOCAB, TinyTransducer, make_batch

import rnnt


def teacher_forced(
    model: TinyTransducer, features: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The joiner's two inputs: encoder (B, T, H) and prediction network (B, U+1, H) outputs."""
    start = torch.full((targets.shape[0], 1), BLANK, dtype=torch.long)
    predicted, _ = model.predict(torch.cat([start, targets.long()], dim=1))
    return model.encode(features), predicted


def train(steps: int, fused: bool) -> list[float]:
    """Per-step losses of ``steps`` steps of Adam, every run from the same seed and batches."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = TinyTransducer()
    criterion = rnnt.JointRNNTLoss(model.joiner.in_features, VOCAB, activation="tanh")
    with torch.no_grad():  # the fused loss owns the joiner's output layer, same initial values
        criterion.weight.copy_(model.joiner.weight)
        assert criterion.bias is not None
        criterion.bias.copy_(model.joiner.bias)
    if fused:
        model = copy.deepcopy(model)
        del model.joiner  # the output layer now lives in the criterion
        parameters = [*model.parameters(), *criterion.parameters()]
    else:
        parameters = list(model.parameters())
    optimiser = torch.optim.Adam(parameters, lr=3e-3)
    losses = []
    for _ in range(steps):
        features, targets, frame_counts, label_counts = make_batch(16, generator)
        encoded, predicted = teacher_forced(model, features, targets)
        if fused:
            loss = criterion(encoded, predicted, targets, frame_counts, label_counts)
        else:
            logits = model.join(encoded, predicted)
            loss = rnnt.rnnt_loss(logits, targets, frame_counts, label_counts)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    unfused = train(args.steps, fused=False)
    fused = train(args.steps, fused=True)
    for step in range(0, args.steps, max(1, args.steps // 10)):
        print(f"step {step + 1:4d}  unfused {unfused[step]:8.4f}  fused {fused[step]:8.4f}")
    worst = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(fused, unfused))
    print(f"largest relative difference of the two loss curves: {worst:.1e}")


if __name__ == "__main__":
    main()
