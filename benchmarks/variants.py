"""CPU timings of the transducer variants, forward + backward through torch autograd, best of N:
``rnnt.tdt_loss`` (D = 5, durations [0, 1, 2, 3, 4]) beside HuggingFace transformers' own
``tdt_loss`` (its PyTorch CPU fallback) in the same run, ``rnnt.multiblank_rnnt_loss`` with big
blanks [2, 4, 8], and ``rnnt.rnnt_loss(rnnt_type="modified")`` and the standard loss for scale.

Shapes are DESIGN.md's S2–S4 (B, T, U, V), float32, lengths uniform in [0.8, 1]·max with item 0 at
the maximum, seed 0. Each line also gives the memory floor's rate: the bytes of every head read
twice and its gradient written once, divided by the time. transformers' losses are checked against
ours (float32: relative 1e-4).

    python benchmarks/variants.py                          # S2 S3 S4, 2 threads, best of 3
    python benchmarks/variants.py --shape S2 --repeat 5 --transformers-repeat 1
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from collections.abc import Callable

import torch

import rnnt

SHAPES: dict[str, tuple[int, int, int, int]] = {
    "S2": (8, 300, 60, 256),
    "S3": (4, 500, 100, 1024),
    "S4": (2, 1000, 200, 512),
}
DURATIONS = [0, 1, 2, 3, 4]
BIG_BLANKS = [2, 4, 8]


def _inputs(shape: tuple[int, int, int, int], heads: int) -> tuple[torch.Tensor, ...]:
    """A (B, T, U+1, V + heads) float32 joint (heads: extra duration columns), padded labels
    below the blank V-1 and the big blanks under it, and lengths."""
    b, t, u, v = shape
    g = torch.Generator().manual_seed(0)
    joint = torch.randn(b, t, u + 1, v + heads, generator=g)
    targets = torch.randint(0, v - 1 - len(BIG_BLANKS), (b, u), generator=g, dtype=torch.int32)
    logit_lengths = (torch.rand(b, generator=g) * 0.2 * t + 0.8 * t).int().clamp(1, t)
    target_lengths = (torch.rand(b, generator=g) * 0.2 * u + 0.8 * u).int().clamp(0, u)
    logit_lengths[0], target_lengths[0] = t, u
    return joint, targets, logit_lengths, target_lengths


def _best(step: Callable[[], torch.Tensor], repeat: int) -> tuple[float, torch.Tensor]:
    """The fastest of ``repeat`` runs of ``step`` (forward + backward) in ms, and its loss."""
    best, loss = float("inf"), torch.tensor(0.0)
    for _ in range(repeat):
        start = time.perf_counter()
        loss = step()
        best = min(best, (time.perf_counter() - start) * 1e3)
    return best, loss


def _tdt_step(
    fn: Callable[..., torch.Tensor], joint: torch.Tensor, v: int, args: tuple[torch.Tensor, ...]
) -> Callable[[], torch.Tensor]:
    """A TDT step on views ``joint[..., :V]``, ``joint[..., V:]`` of one leaf (NeMo's joint)."""
    b = args[0].shape[0]

    def step() -> torch.Tensor:
        leaf = joint.detach().requires_grad_(True)
        if fn is rnnt.tdt_loss:
            loss = fn(leaf[..., :v], leaf[..., v:], *args, blank=v - 1, durations=DURATIONS)
        else:
            loss = fn(leaf[..., :v], leaf[..., v:], *args, v - 1, DURATIONS, 0.0, "sum") / b
        loss.backward()
        return loss.detach()

    return step


def _rows(
    shape: tuple[int, int, int, int],
    repeat: int,
    peer: Callable[..., torch.Tensor] | None,
    peer_repeat: int,
) -> list[tuple[str, float, int, str]]:
    """(loss, best ms, floor bytes, note) of every loss on one shape."""
    v = shape[3]
    joint, *rest = _inputs(shape, len(DURATIONS))
    args = tuple(rest)
    floor = 3 * joint.numel() * joint.element_size()
    ours, our_loss = _best(_tdt_step(rnnt.tdt_loss, joint, v, args), repeat)
    rows = [("rnnt.tdt_loss D=5", ours, floor, "")]
    if peer is not None:
        theirs, their_loss = _best(_tdt_step(peer, joint, v, args), peer_repeat)
        assert torch.allclose(their_loss, our_loss, rtol=1e-4), (their_loss, our_loss)
        rows.append(("transformers tdt_loss D=5", theirs, floor, f"{theirs / ours:.0f}x ours"))
    logits = joint[..., :v].contiguous()
    head_floor = 3 * logits.numel() * logits.element_size()
    calls: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "rnnt.multiblank_rnnt_loss [2,4,8]": lambda x: rnnt.multiblank_rnnt_loss(
            x, *args, blank=v - 1, big_blank_durations=BIG_BLANKS
        ),
        'rnnt.rnnt_loss rnnt_type="modified"': lambda x: rnnt.rnnt_loss(
            x, *args, blank=v - 1, rnnt_type="modified"
        ),
        "rnnt.rnnt_loss (standard)": lambda x: rnnt.rnnt_loss(x, *args, blank=v - 1),
    }
    for label, call in calls.items():

        def step(call: Callable[[torch.Tensor], torch.Tensor] = call) -> torch.Tensor:
            leaf = logits.detach().requires_grad_(True)
            loss = call(leaf)
            loss.backward()
            return loss.detach()

        rows.append((label, _best(step, repeat)[0], head_floor, ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--transformers-repeat", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    try:
        from transformers.loss.loss_tdt import tdt_loss as peer
    except ImportError:
        peer = None
    print(
        f"# {platform.processor() or platform.machine()}, {options.threads} threads, "
        f"{datetime.date.today()}, torch {torch.__version__}"
    )
    print("| shape (B, T, U, V) | loss | ms (best) | floor GB/s | note |")
    print("| --- | --- | --- | --- | --- |")
    for name in options.shape or list(SHAPES):
        shape = SHAPES[name]
        for label, ms, nbytes, note in _rows(
            shape, options.repeat, peer, options.transformers_repeat
        ):
            print(f"| {name} {shape} | {label} | {ms:.1f} | {nbytes / ms / 1e6:.1f} | {note} |")


if __name__ == "__main__":
    main()
