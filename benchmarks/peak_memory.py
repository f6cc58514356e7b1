"""Peak extra memory and time of one forward + backward on a DESIGN.md §3 shape, rnnt vs torchaudio.

Each implementation runs in a fresh subprocess: it builds the inputs (``compare.inputs``, the same
batches as the speed comparison), reads its resident set size,
runs ``loss.backward()`` once, and reports the peak resident set size above that baseline (which
includes the gradient left in ``logits.grad``, one logits-sized buffer).

    python benchmarks/peak_memory.py            # S3: B=4, T=500, U=100, V=1024, float32
    python benchmarks/peak_memory.py --shape 16,150,40,29
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from compare import SHAPES

HERE = Path(__file__).resolve().parent

CHILD = """
import json, resource, sys, time
import torch

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

which, shape, here = sys.argv[1], tuple(map(int, sys.argv[2:6])), sys.argv[6]
sys.path.insert(0, here)
from compare import inputs
if which == "rnnt":
    import rnnt
    loss_function = rnnt.rnnt_loss
else:
    import torchaudio.functional
    loss_function = torchaudio.functional.rnnt_loss
logits, targets, frames, labels = inputs(shape)
logits.requires_grad_(True)
baseline = rss_bytes()
started = time.perf_counter()
loss = loss_function(logits, targets, frames, labels, blank=shape[3] - 1)
loss.backward()
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"extra_bytes": peak - baseline, "seconds": seconds,
                  "logits_bytes": logits.numel() * logits.element_size()}))
"""


def measure(which: str, shape: tuple[int, int, int, int]) -> dict[str, float]:
    """Runs one implementation on ``shape`` in a fresh interpreter."""
    output = subprocess.run(
        [sys.executable, "-c", CHILD, which, *map(str, shape), str(HERE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(output.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="S3", help="S1..S6 or B,T,U,V")
    args = parser.parse_args()
    shape = SHAPES.get(args.shape) or tuple(int(n) for n in args.shape.split(","))
    print(f"shape B,T,U,V = {shape}, float32")
    for which in ("rnnt", "torchaudio"):
        result = measure(which, shape)  # type: ignore[arg-type]
        extra, logits = result["extra_bytes"], result["logits_bytes"]
        print(
            f"{which:>10}: peak extra {extra / 2**20:8.1f} MiB = {extra / logits:5.2f} x logits"
            f" ({logits / 2**20:.1f} MiB), forward+backward {result['seconds']:.2f} s"
        )


if __name__ == "__main__":
    main()
