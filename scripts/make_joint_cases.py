"""Writes the golden cases of the fused joiner (tests/golden-joint, format in its README).

The truth is computed here, independently of the rnnt package: the joiner written out in torch
float64 (x = act(f[t] + g[u]) @ W.T + bias), a plain float64 alpha recursion over the RNN-T
lattice in torch, and torch autograd for the four gradients of the sum of the per-item losses. As
a cross-check, torchaudio's float32 ``rnnt_loss`` on the same logits must agree with the truth
(recorded in the manifest's "check").

Run from the repository root: ``python scripts/make_joint_cases.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "golden-joint"

FLOAT32_TOLERANCE = {"loss_rtol": 1e-5, "loss_atol": 1e-4, "grad_atol": 1e-4}
FLOAT64_TOLERANCE = {"loss_rtol": 1e-9, "loss_atol": 1e-9, "grad_atol": 1e-9}

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda z: z,
}


def joiner(
    f: torch.Tensor, g: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, activation: str
) -> torch.Tensor:
    """x[b,t,u,:] = act(f[b,t] + g[b,u]) @ W.T + bias, (B, T, U+1, V)."""
    x = ACTIVATIONS[activation](f[:, :, None, :] + g[:, None, :, :]) @ w.T
    return x if b is None else x + b


def item_loss(x: torch.Tensor, labels: list[int], blank: int) -> torch.Tensor:
    """-log P(labels | x) of one item's (T_b, U_b+1, V) logits by the alpha recursion."""
    lp = torch.log_softmax(x, dim=-1)
    frames, positions = lp.shape[0], len(labels) + 1
    alpha: list[list[torch.Tensor]] = [[lp.new_zeros(())] * positions for _ in range(frames)]
    neg_inf = lp.new_full((), float("-inf"))
    for t in range(frames):
        for u in range(positions):
            if t == 0 and u == 0:
                continue
            via_blank = alpha[t - 1][u] + lp[t - 1, u, blank] if t > 0 else neg_inf
            via_emit = alpha[t][u - 1] + lp[t, u - 1, labels[u - 1]] if u > 0 else neg_inf
            alpha[t][u] = torch.logaddexp(via_blank, via_emit)
    return -(alpha[frames - 1][positions - 1] + lp[frames - 1, positions - 1, blank])


def make_case(
    name: str,
    *,
    sizes: tuple[int, int, int, int, int],
    lengths: tuple[list[int], list[int]],
    activation: str,
    bias: bool,
    blank: int,
    dtype: str,
    scale: float,
    seed: int,
) -> dict[str, Any]:
    batch, frames, labels, vocab, hidden = sizes
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "encoder_out": rng.normal(0, scale, (batch, frames, hidden)).astype(dtype),
        "predictor_out": rng.normal(0, scale, (batch, labels + 1, hidden)).astype(dtype),
        "weight": rng.normal(0, scale, (vocab, hidden)).astype(dtype),
    }
    if bias:
        arrays["bias"] = rng.normal(0, 1.0, vocab).astype(dtype)
    choices = [k for k in range(vocab) if k != blank]
    arrays["targets"] = rng.choice(choices, (batch, labels)).astype(np.int32)
    arrays["logit_lengths"] = np.array(lengths[0], dtype=np.int32)
    arrays["target_lengths"] = np.array(lengths[1], dtype=np.int32)
    arrays["blank"] = np.array(blank, dtype=np.int64)

    inputs = [
        torch.tensor(arrays[key], dtype=torch.float64, requires_grad=True)
        for key in ("encoder_out", "predictor_out", "weight")
    ]
    bias_input = (
        torch.tensor(arrays["bias"], dtype=torch.float64, requires_grad=True) if bias else None
    )
    x = joiner(*inputs, bias_input, activation)
    losses = []
    for b in range(batch):
        t_b, u_b = lengths[0][b], lengths[1][b]
        item_labels = [int(y) for y in arrays["targets"][b, :u_b]]
        losses.append(item_loss(x[b, :t_b, : u_b + 1], item_labels, blank))
    total = torch.stack(losses).sum()
    wrt = [*inputs, *([bias_input] if bias_input is not None else [])]
    grads = torch.autograd.grad(total, wrt)
    arrays["losses"] = torch.stack(losses).detach().numpy()
    names = ["grad_encoder_out", "grad_predictor_out", "grad_weight", "grad_bias"]
    for key, grad in zip(names, grads):
        arrays[key] = grad.numpy()
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    return {
        "sizes": {"B": batch, "T": frames, "U": labels, "V": vocab, "H": hidden},
        "dtype": dtype,
        "activation": activation,
        "bias": bias,
        "blank": blank,
        "tolerance": FLOAT64_TOLERANCE if dtype == "float64" else FLOAT32_TOLERANCE,
        "check": torchaudio_check(x.detach(), arrays),
    }


def torchaudio_check(x: torch.Tensor, arrays: dict[str, np.ndarray[Any, Any]]) -> str:
    """torchaudio's float32 loss and logits gradient against this script's float64 truth."""
    try:
        import torchaudio.functional as taf
    except ImportError:
        return "torchaudio not installed"
    # torchaudio wants the padded sizes to be the longest lengths.
    frames, labels = int(arrays["logit_lengths"].max()), int(arrays["target_lengths"].max())
    if labels == 0:
        return "torchaudio refuses targets of length 0 throughout"
    losses = taf.rnnt_loss(
        x[:, :frames, : labels + 1].to(torch.float32),
        torch.from_numpy(arrays["targets"][:, :labels]),
        torch.from_numpy(arrays["logit_lengths"]),
        torch.from_numpy(arrays["target_lengths"]),
        blank=int(arrays["blank"]),
        reduction="none",
    )
    truth = arrays["losses"]
    error = float(np.max(np.abs(losses.detach().numpy() - truth) / np.maximum(np.abs(truth), 1)))
    if error > 1e-4:
        raise AssertionError(f"torchaudio disagrees with the truth: {error:.1e}")
    return f"torchaudio agrees on the losses: rel {error:.1e}"


CASES: dict[str, dict[str, Any]] = {
    "tanh_bias_ragged": {
        "sizes": (2, 4, 2, 6, 5),
        "lengths": ([4, 2], [2, 1]),
        "activation": "tanh",
        "bias": True,
        "blank": 5,
        "dtype": "float32",
        "scale": 1.0,
    },
    "relu_no_bias": {
        "sizes": (3, 5, 3, 7, 8),
        "lengths": ([5, 3, 4], [3, 0, 2]),
        "activation": "relu",
        "bias": False,
        "blank": 0,
        "dtype": "float32",
        "scale": 0.8,
    },
    "identity_bias": {
        "sizes": (2, 6, 4, 9, 4),
        "lengths": ([6, 5], [4, 3]),
        "activation": "identity",
        "bias": True,
        "blank": 4,
        "dtype": "float32",
        "scale": 0.7,
    },
    "empty_targets": {
        "sizes": (2, 3, 1, 5, 3),
        "lengths": ([3, 2], [0, 0]),
        "activation": "tanh",
        "bias": True,
        "blank": 4,
        "dtype": "float32",
        "scale": 1.0,
    },
    "single_frame": {
        "sizes": (2, 1, 3, 6, 4),
        "lengths": ([1, 1], [3, 1]),
        "activation": "tanh",
        "bias": False,
        "blank": 5,
        "dtype": "float32",
        "scale": 1.0,
    },
    "float64_input": {
        "sizes": (2, 7, 3, 8, 6),
        "lengths": ([7, 4], [3, 2]),
        "activation": "tanh",
        "bias": True,
        "blank": 7,
        "dtype": "float64",
        "scale": 1.0,
    },
    "medium": {
        "sizes": (2, 24, 8, 32, 16),
        "lengths": ([24, 17], [8, 5]),
        "activation": "tanh",
        "bias": True,
        "blank": 0,
        "dtype": "float32",
        "scale": 0.5,
    },
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {
        name: make_case(name, seed=seed, **spec)
        for seed, (name, spec) in enumerate(sorted(CASES.items()))
    }
    with open(OUT / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
