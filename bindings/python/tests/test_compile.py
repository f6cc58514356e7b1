"""The loss under ``torch.compile``: the custom ops ``rnnt::loss_forward`` and
``rnnt::loss_backward`` let a model whose ``forward`` calls ``rnnt.rnnt_loss`` (or a compat
function or module) compile with ``fullgraph=True``, with no graph break, and give the eager
losses and gradients; the compiled graph keeps the eager memory behaviour (the one-shot gradient
handed over, or the lattice state alone kept for a large gradient)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import rnnt  # noqa: E402
import rnnt._torch_ops  # noqa: E402
from rnnt.compat import awni, torchaudio, transformers, warprnnt  # noqa: E402
from tiny_transducer import BLANK, TinyTransducer, packed, ragged_batch  # noqa: E402

Loss = Callable[..., torch.Tensor]

# Each takes (logits, targets, frame_lengths, label_lengths, packed_targets) and returns a
# scalar to differentiate.
LOSSES: dict[str, Loss] = {
    "rnnt_loss": lambda x, y, t, u, p: rnnt.rnnt_loss(x, y, t, u),
    "rnnt_loss none, weighted": lambda x, y, t, u, p: (
        rnnt.rnnt_loss(x, y, t, u, reduction="none") * torch.arange(1.0, 1.0 + x.shape[0])
    ).sum(),
    "RNNTLoss sum, packed": lambda x, y, t, u, p: rnnt.RNNTLoss(reduction="sum")(x, p, t, u),
    "torchaudio clamp": lambda x, y, t, u, p: torchaudio.rnnt_loss(x, y, t, u, clamp=0.05),
    "warprnnt": lambda x, y, t, u, p: warprnnt.RNNTLoss(blank=BLANK)(x, y, t, u).sum(),
    "awni": lambda x, y, t, u, p: awni.TransducerLoss()(torch.log_softmax(x, -1), p, t, u).sum(),
    "transformers mean_volume": lambda x, y, t, u, p: transformers.rnnt_loss(x, y, t, u, BLANK),
}


class WithLoss(torch.nn.Module):
    def __init__(self, loss: Loss) -> None:
        super().__init__()
        self.model = TinyTransducer()
        self.loss = loss

    def forward(self, features: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor:
        targets, frame_lengths, label_lengths, packed_targets = labels
        logits = self.model(features, targets)
        return self.loss(logits, targets, frame_lengths, label_lengths, packed_targets)


def inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    features, targets, frame_lengths, label_lengths = ragged_batch(seed, 3)
    return features, targets, frame_lengths, label_lengths, packed(targets, label_lengths)


def loss_and_grads(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The loss and its gradients with respect to the module's parameters."""
    loss = module(*args)
    return [loss.detach(), *torch.autograd.grad(loss, list(module.parameters()))]


def assert_close(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    """Equal within 1e-6 of each tensor's largest magnitude."""
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * float(b.abs().max()))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_compiled_model_equals_eager_with_no_graph_break(name: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    module = WithLoss(LOSSES[name])
    explanation = torch._dynamo.explain(module)(*inputs())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    compiled = torch.compile(module, fullgraph=True)
    for seed in (0, 1):  # the second batch reuses the compiled graph (same shapes)
        args = inputs(seed)
        assert_close(loss_and_grads(compiled, args), loss_and_grads(module, args))


def test_compiled_with_dynamic_shapes_equals_eager() -> None:
    """Batches of other sizes (B, T, U) run through one graph with symbolic shapes."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    module = WithLoss(LOSSES["rnnt_loss"])
    compiled = torch.compile(module, fullgraph=True, dynamic=True)
    for items, frames, labels in ((3, 7, 3), (5, 9, 4), (4, 12, 2)):
        features, targets, frame_lengths, label_lengths = ragged_batch(4, items, frames, labels)
        args = (features, targets, frame_lengths, label_lengths, targets)  # no packed ones used
        assert_close(loss_and_grads(compiled, args), loss_and_grads(module, args))
    torch._dynamo.reset()


@pytest.mark.parametrize("one_shot", [True, False])
def test_compiled_graph_keeps_the_eager_memory_behaviour(
    monkeypatch: pytest.MonkeyPatch, one_shot: bool
) -> None:
    """One-shot (small gradient): one native call in forward, whose gradient backward hands over
    with no further call. Streamed (large gradient; here every gradient, by a threshold of 0):
    forward keeps the lattice state and backward uses it, with no second forward."""
    if not one_shot:
        monkeypatch.setattr(rnnt._torch_ops._rnnt, "STREAM_MIN_BYTES", 0)
    calls: dict[str, int] = {}
    for name in ("forward", "backward", "loss_and_grad_into"):
        native = getattr(rnnt._torch_ops._rnnt, name)

        def counted(*args: Any, _name: str = name, _native: Any = native, **kw: Any) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _native(*args, **kw)

        monkeypatch.setattr(rnnt._torch_ops._rnnt, name, counted)
    torch._dynamo.reset()
    module = WithLoss(LOSSES["rnnt_loss"])
    compiled = torch.compile(module, fullgraph=True)
    args = inputs()
    want = loss_and_grads(module, args)
    calls.clear()
    assert_close(loss_and_grads(compiled, args), want)
    if one_shot:
        assert calls == {"loss_and_grad_into": 1}
    else:
        assert calls == {"forward": 1, "backward": 1}
    torch._dynamo.reset()


def test_opcheck() -> None:
    """torch.library.opcheck: schema (no mutation, no alias), autograd registration, fake
    implementations and AOT dispatch (forward and gradient) of both ops."""
    features, targets, frame_lengths, label_lengths = ragged_batch(2, 3)
    logits = TinyTransducer()(features, targets).detach().requires_grad_(True)
    for reduction in ("mean", "none"):
        for one_shot in (True, False):
            # No duration head (the variants' ops: tests/test_variants_frontends.py).
            args = (logits, targets, frame_lengths, label_lengths, None)
            options = (BLANK, reduction, -1.0, True, 0.0, False, "regular", False, 0.0, 0.0, [], [])
            # The loss in float64 once (as the transformers drop-in asks for float32).
            forward = (*args, *options, one_shot, torch.float64 if one_shot else logits.dtype)
            torch.library.opcheck(torch.ops.rnnt.loss_forward.default, forward)
            _, token = torch.ops.rnnt.loss_forward(*forward)
            upstream = torch.rand(3) if reduction == "none" else torch.tensor(2.0)
            torch.library.opcheck(
                torch.ops.rnnt.loss_backward.default,
                (token, logits.detach(), *args[1:], upstream, *options),
            )


def test_kept_state_goes_with_the_compiled_graph() -> None:
    """What the compiled forward keeps for backward is freed after backward, or with an unused
    graph."""
    torch._dynamo.reset()
    compiled = torch.compile(WithLoss(LOSSES["rnnt_loss none, weighted"]), fullgraph=True)
    kept = rnnt._torch_ops._KEPT
    before = len(kept)
    loss = compiled(*inputs())
    assert len(kept) == before + 1
    loss.backward()
    assert len(kept) == before
    loss = compiled(*inputs())
    assert len(kept) == before + 1
    del loss
    gc.collect()
    assert len(kept) == before
    torch._dynamo.reset()
