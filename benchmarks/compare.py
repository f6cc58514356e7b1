"""Side-by-side CPU timings of ``rnnt.rnnt_loss`` and its peers on the DESIGN.md §3 shapes.

Each implementation runs loss + ``backward()`` through torch autograd, end to end: the time
includes allocating the gradient, as a training step pays it. Inputs follow the DESIGN.md rule
(lengths uniform in [0.8, 1]·max with item 0 at the maximum, random labels, N(0, 1) float32
logits, seed 0; drawn with torch's generator). Losses are checked against torchaudio's on the
same logits in float32, rounded to the logits' dtype (the dtype the losses are reported in).

With ``--dtype`` the logits are rounded to float64, float16 or bfloat16 first (mixed-precision
training hands the loss half-precision logits), and ``rnnt`` on the float32 logits is timed
beside, so that the two can be compared in one run; a peer that rejects the dtype is left blank.

Peers: torchaudio's ``rnnt_loss`` always; ``optimized_transducer`` and ``fast_rnnt`` when they
import (they are skipped with a note otherwise). Writes ``results/compare.md`` (a Markdown table)
and ``results/compare.png`` (a log-scale bar chart) beside this script (``compare-DTYPE.*`` with
``--dtype``).

    python benchmarks/compare.py                      # S1..S6, 2 threads
    python benchmarks/compare.py --shape S1 --shape S2 --threads 2 --repeat 3
    python benchmarks/compare.py --dtype bfloat16 --peer-repeat 0  # rnnt bf16 against rnnt f32
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

SHAPES: dict[str, tuple[int, int, int, int]] = {
    "S1": (16, 150, 40, 29),
    "S2": (8, 300, 60, 256),
    "S3": (4, 500, 100, 1024),
    "S4": (2, 1000, 200, 512),
    "S5": (32, 100, 20, 5000),
    "S6": (1, 3000, 400, 128),
}

RESULTS = Path(__file__).resolve().parent / "results"

DTYPES = ["float32", "float64", "float16", "bfloat16"]

LossFunction = Callable[..., "object"]


def inputs(shape: tuple[int, int, int, int]) -> tuple[object, object, object, object]:
    """Logits, targets, logit lengths and target lengths of one benchmark batch."""
    import torch

    b, t, u, v = shape
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(b, t, u + 1, v, generator=generator)
    frames = (t * (0.8 + 0.2 * torch.rand(b, generator=generator))).ceil().int().clamp(1, t)
    labels = (u * (0.8 + 0.2 * torch.rand(b, generator=generator))).ceil().int().clamp(0, u)
    frames[0], labels[0] = t, u
    targets = torch.randint(0, v - 1, (b, u), generator=generator, dtype=torch.int32)
    return logits, targets, frames, labels


def peers() -> tuple[dict[str, LossFunction], list[str]]:
    """The loss functions that import here, by name, and a note for each one that does not."""
    import torchaudio.functional

    import rnnt

    found: dict[str, LossFunction] = {
        "rnnt": rnnt.rnnt_loss,
        "torchaudio": torchaudio.functional.rnnt_loss,
    }
    notes = []
    for module_name in ["optimized_transducer", "fast_rnnt"]:
        if importlib.util.find_spec(module_name) is None:
            notes.append(
                f"{module_name}: skipped: not installed in this environment"
                " (it builds from source; install it to include it)"
            )
        else:
            notes.append(f"{module_name}: installed, but its API differs and is not wired in here")
    return found, notes


def with_dtype(
    batch: tuple[object, object, object, object], dtype: str
) -> tuple[object, object, object, object]:
    """``batch`` with its logits rounded to ``dtype``."""
    import torch

    logits, *rest = batch
    assert isinstance(logits, torch.Tensor)
    return (logits.to(getattr(torch, dtype)), *rest)  # type: ignore[return-value]


def time_one(
    loss_function: LossFunction,
    batch: tuple[object, object, object, object],
    repeat: int,
) -> tuple[float, object] | None:
    """Best wall time of loss + backward over ``repeat`` runs, and the per-item losses (in
    float64); None if the function rejects the batch (a dtype it does not take) or ``repeat``
    is 0."""
    import torch

    logits, targets, frames, labels = batch
    assert isinstance(logits, torch.Tensor)
    best = float("inf")
    losses = None
    for _ in range(repeat):
        leaf = logits.detach().requires_grad_(True)
        started = time.perf_counter()
        try:
            loss = loss_function(
                leaf,
                targets,
                frames,
                labels,
                blank=int(logits.shape[-1]) - 1,
                reduction="none",
            )
        except (RuntimeError, TypeError, ValueError) as error:
            print(f"  rejected: {str(error).splitlines()[0]}", flush=True)
            return None
        loss.sum().backward()
        best = min(best, time.perf_counter() - started)
        losses = loss.detach().double()
    return None if losses is None else (best, losses)


def chart(rows: list[dict[str, object]], names: list[str], dtype: str, path: Path) -> None:
    """A grouped bar chart of seconds per shape, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(rows))]
        ys = [float(row[name]) if row.get(name) is not None else 0.0 for row in rows]
        axes.bar(xs, ys, width, label=name)
    axes.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
    axes.set_xticklabels([str(row["shape"]) for row in rows])
    axes.set_yscale("log")
    axes.set_ylabel("loss + backward, seconds (log scale)")
    axes.set_title(f"RNN-T loss on the CPU, {dtype}, end to end through torch autograd")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="default: all")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every library")
    parser.add_argument("--repeat", type=int, default=3, help="runs of rnnt per shape (best kept)")
    parser.add_argument("--peer-repeat", type=int, default=1, help="runs of each peer per shape")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="the logits' dtype")
    args = parser.parse_args()
    os.environ["RNNT_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    functions, notes = peers()
    reference = functions["torchaudio"]
    if args.dtype != "float32":
        functions = {"rnnt": functions["rnnt"], "rnnt float32": functions["rnnt"]} | {
            name: function for name, function in functions.items() if name != "rnnt"
        }
    names = list(functions)
    rows: list[dict[str, object]] = []
    for shape_name in args.shape or list(SHAPES):
        shape = SHAPES[shape_name]
        batch32 = inputs(shape)
        batch = with_dtype(batch32, args.dtype)
        row: dict[str, object] = {"shape": shape_name, "dims": shape}
        ours = None
        for name, function in functions.items():
            repeat = args.repeat if name.startswith("rnnt") else args.peer_repeat
            timed = time_one(function, batch32 if name == "rnnt float32" else batch, repeat)
            row[name] = None if timed is None else timed[0]
            if timed is not None:
                print(f"{shape_name} {name}: {timed[0] * 1e3:.1f} ms", flush=True)
            if name == "rnnt" and timed is not None:
                ours = timed[1]
        # The truth for the rounded logits: torchaudio on them, in float32, then rounded to the
        # dtype the losses are reported in (the logits').
        truth = time_one(reference, with_dtype(batch, "float32"), 1)
        assert isinstance(ours, torch.Tensor) and truth is not None
        theirs = truth[1]
        assert isinstance(theirs, torch.Tensor)
        theirs = theirs.to(getattr(torch, args.dtype)).double()
        row["loss_error"] = float(((ours - theirs).abs() / theirs.abs().clamp(min=1.0)).max())
        rows.append(row)
    write(rows, names, notes, args.threads, args.dtype)


def cpu_model() -> str:
    """The CPU's model name as Linux reports it, else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def write(
    rows: list[dict[str, object]], names: list[str], notes: list[str], threads: int, dtype: str
) -> None:
    """The Markdown table and the chart."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    header = [
        "shape",
        "(B, T, U, V)",
        *[f"{name} ms" for name in names],
        "speed-up vs torchaudio",
    ]
    lines = [
        (
            f"CPU, {dtype}, loss + backward through torch autograd, {threads} threads, best run; "
            f"{datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} logical CPUs."
        ),
        "",
        "| " + " | ".join([*header, "max relative loss difference"]) + " |",
        "|" + " --- |" * (len(header) + 1),
    ]
    for row in rows:
        cells = [str(row["shape"]), str(row["dims"])]
        cells += ["" if row[name] is None else f"{float(row[name]) * 1e3:.1f}" for name in names]
        speedup = row["torchaudio"] is not None and row["rnnt"] is not None
        cells.append(f"{float(row['torchaudio']) / float(row['rnnt']):.0f}x" if speedup else "")
        cells.append(f"{float(row['loss_error']):.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *[f"- {note}" for note in notes]]
    stem = "compare" if dtype == "float32" else f"compare-{dtype}"
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        chart(rows, names, dtype, RESULTS / f"{stem}.png")
    except ImportError:
        print("matplotlib is not installed: no chart written")


if __name__ == "__main__":
    main()
