"""The joiner fused into the loss against the joiner materialised then the loss: forward + backward
time and peak extra memory of one step, float32, on the issue-18 shapes.

Three ways to compute the same loss and gradients (to encoder_out, predictor_out, weight, bias):

- ``fused``: ``rnnt.joint_rnnt_loss``, the logits made a tile at a time and dropped;
- ``unfused-rnnt``: ``x = tanh(f[:, :, None] + g[:, None]) @ W.T + b`` in torch, then
  ``rnnt.rnnt_loss``;
- ``unfused-torchaudio``: the same joiner, then ``torchaudio.functional.rnnt_loss``.

Each runs once per shape in a fresh interpreter on ``--threads`` threads (torch's and rnnt's). It
builds the inputs, resets the process's peak resident set size (``/proc/self/clear_refs``), runs
forward and backward once, and reports the time and the peak resident set size above the size
before the step (the returned gradients, the same for all three, included).

    python benchmarks/joint.py                                  # the three shapes of issue 18
    python benchmarks/joint.py --shape 2,100,20,256,128 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

#: (B, T, U, V, H) of issue 18.
SHAPES = [(4, 500, 100, 1024, 512), (16, 150, 40, 29, 256), (2, 1000, 200, 512, 512)]
WAYS = ["fused", "unfused-rnnt", "unfused-torchaudio"]

CHILD = """
import json, os, sys, time
import torch

which, threads = sys.argv[1], int(sys.argv[2])
batch, frames, labels, vocab, hidden = map(int, sys.argv[3:8])
os.environ["RNNT_NUM_THREADS"] = str(threads)
torch.set_num_threads(threads)
import rnnt

def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)

generator = torch.Generator().manual_seed(0)
f = torch.randn(batch, frames, hidden, generator=generator).requires_grad_(True)
g = torch.randn(batch, labels + 1, hidden, generator=generator).requires_grad_(True)
bound = hidden ** -0.5
w = (torch.rand(vocab, hidden, generator=generator) * 2 - 1).mul_(bound).requires_grad_(True)
b = (torch.rand(vocab, generator=generator) * 2 - 1).mul_(bound).requires_grad_(True)
blank = vocab - 1
targets = torch.randint(0, vocab - 1, (batch, labels), generator=generator, dtype=torch.int32)
logit_lengths = torch.full((batch,), frames, dtype=torch.int32)
target_lengths = torch.full((batch,), labels, dtype=torch.int32)
if which == "unfused-torchaudio":
    import torchaudio.functional
    loss_function = torchaudio.functional.rnnt_loss
else:
    loss_function = rnnt.rnnt_loss
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
baseline = rss("VmRSS")
started = time.perf_counter()
if which == "fused":
    loss = rnnt.joint_rnnt_loss(f, g, w, b, targets, logit_lengths, target_lengths, blank=blank)
else:
    x = torch.tanh(f[:, :, None, :] + g[:, None, :, :]) @ w.T + b
    loss = loss_function(x, targets, logit_lengths, target_lengths, blank=blank)
loss.backward()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "extra_bytes": rss("VmHWM") - baseline,
                  "loss": float(loss)}))
"""


def measure(which: str, shape: tuple[int, ...], threads: int) -> dict[str, float]:
    """One step of ``which`` on ``shape`` in a fresh interpreter."""
    output = subprocess.run(
        [sys.executable, "-c", CHILD, which, str(threads), *map(str, shape)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", help="B,T,U,V,H (default: the three of issue 18)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--ways", default=",".join(WAYS), help="comma-separated subset of " + str(WAYS)
    )
    args = parser.parse_args()
    shapes = [tuple(map(int, args.shape.split(",")))] if args.shape else SHAPES
    ways = args.ways.split(",")
    print("| (B, T, U, V, H) | way | time (s) | peak extra memory (MB) | loss |")
    print("| --- | --- | ---: | ---: | ---: |")
    for shape in shapes:
        for which in ways:
            result = measure(which, shape, args.threads)
            print(
                f"| {shape} | {which} | {result['seconds']:.2f} | "
                f"{result['extra_bytes'] / 1e6:.0f} | {result['loss']:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
