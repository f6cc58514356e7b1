"""DistributedDataParallel: a tiny transducer trained for a few steps in 2 processes on the CPU
(gloo) has, after every step, the parameters of single-process training on the whole batch.

Why they match: each process computes ``rnnt_loss(..., reduction="mean")`` on its half of the
batch, and DDP averages the gradients over the processes, so with equal halves the gradient is
(mean over half 0 + mean over half 1) / 2 = the mean over the whole batch, which the single
process computes. (With ``reduction="sum"`` DDP's average would be the whole batch's sum / 2.)
Each half keeps the whole batch's padded T and U: items need not reach the padding.
"""

from __future__ import annotations

import datetime
import socket
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

import rnnt  # noqa: E402
from tiny_transducer import TinyTransducer, ragged_batch  # noqa: E402

WORLD = 2
STEPS = 4
ITEMS = 6  # the whole batch: 3 items per process
LEARNING_RATE = 0.5
TIME_LIMIT_S = 120


def batches() -> list[tuple[torch.Tensor, ...]]:
    """The whole batch of each step, float64 frames."""
    out = []
    for step in range(STEPS):
        features, *labels = ragged_batch(100 + step, ITEMS)
        out.append((features.double(), *labels))
    return out


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyTransducer().double()


def train(
    model: torch.nn.Module, batch_parts: list[tuple[torch.Tensor, ...]]
) -> list[dict[str, torch.Tensor]]:
    """SGD steps with the mean loss of each batch; the parameters after each step."""
    optimiser = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    states = []
    for features, targets, frame_lengths, label_lengths in batch_parts:
        logits = model(features, targets)
        loss = rnnt.rnnt_loss(logits, targets, frame_lengths, label_lengths, reduction="mean")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        inner = model.module if isinstance(model, DistributedDataParallel) else model
        states.append({k: v.detach().clone() for k, v in inner.state_dict().items()})
    return states


def worker(rank: int, port: int, out_dir: str) -> None:
    """One DDP process: trains on its share of each batch and saves its parameters per step."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=TIME_LIMIT_S),
    )
    try:
        share = ITEMS // WORLD
        parts = [
            tuple(tensor[rank * share : (rank + 1) * share] for tensor in batch)
            for batch in batches()
        ]
        model = DistributedDataParallel(fresh_model())
        torch.save(train(model, parts), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_ddp_training_equals_single_process_training_on_the_whole_batch(tmp_path: Path) -> None:
    context = mp.spawn(
        worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=False, daemon=True
    )
    deadline = time.monotonic() + TIME_LIMIT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            pytest.fail(f"the {WORLD} DDP processes did not finish in {TIME_LIMIT_S} s")
    single = train(fresh_model(), batches())
    initial = fresh_model().state_dict()
    for rank in range(WORLD):
        distributed = torch.load(tmp_path / f"rank{rank}.pt")
        assert len(distributed) == STEPS
        for step, (got, want) in enumerate(zip(distributed, single)):
            for name in want:
                torch.testing.assert_close(
                    got[name], want[name], rtol=1e-10, atol=1e-12, msg=f"step {step}, {name}"
                )
    # The steps moved the parameters: the comparison is not of untrained models.
    assert any(not torch.equal(single[-1][name], initial[name]) for name in initial)
