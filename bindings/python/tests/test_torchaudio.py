"""Agreement with ``torchaudio.functional.rnnt_loss`` on random shapes: losses and gradients,
every reduction, with and without clamp, logits and log-probs input, and the module form."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchaudio_functional = pytest.importorskip("torchaudio.functional")

import rnnt  # noqa: E402
import rnnt.compat.torchaudio  # noqa: E402


def random_batch(seed: int) -> tuple[torch.Tensor, ...]:
    """Random (B, T, U+1, V) logits, int32 padded targets and lengths with item 0 at the maxima."""
    generator = torch.Generator().manual_seed(seed)
    batch = int(torch.randint(1, 6, (1,), generator=generator))
    frames = int(torch.randint(1, 30, (1,), generator=generator))
    labels = int(torch.randint(0, 12, (1,), generator=generator))
    vocab = int(torch.randint(2, 40, (1,), generator=generator))
    logits = 2 * torch.randn(batch, frames, labels + 1, vocab, generator=generator)
    blank = vocab - 1
    targets = torch.randint(0, vocab - 1, (batch, labels), generator=generator, dtype=torch.int32)
    logit_lengths = torch.randint(1, frames + 1, (batch,), generator=generator, dtype=torch.int32)
    target_lengths = torch.randint(0, labels + 1, (batch,), generator=generator, dtype=torch.int32)
    logit_lengths[0], target_lengths[0] = frames, labels
    return logits, targets, logit_lengths, target_lengths, torch.tensor(blank)


def loss_and_grad(function, logits, *rest, **options):  # type: ignore[no-untyped-def]
    logits = logits.clone().requires_grad_(True)
    loss = function(logits, *rest, **options)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    return loss.detach(), grad


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("clamp", [-1.0, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_torchaudio(seed: int, reduction: str, clamp: float, fused: bool) -> None:
    logits, targets, logit_lengths, target_lengths, blank = random_batch(seed)
    if not fused:
        logits = torch.log_softmax(logits, dim=-1)
    args = (logits, targets, logit_lengths, target_lengths)
    options = {
        "blank": int(blank),
        "clamp": clamp,
        "reduction": reduction,
        "fused_log_softmax": fused,
    }
    ours, our_grad = loss_and_grad(rnnt.rnnt_loss, *args, **options)
    theirs, their_grad = loss_and_grad(torchaudio_functional.rnnt_loss, *args, **options)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(our_grad, their_grad, rtol=0, atol=1e-4)


def test_default_blank_is_the_last_symbol() -> None:
    logits, targets, logit_lengths, target_lengths, _ = random_batch(3)
    args = (logits, targets, logit_lengths, target_lengths)
    torch.testing.assert_close(
        rnnt.rnnt_loss(*args), torchaudio_functional.rnnt_loss(*args), rtol=1e-5, atol=1e-4
    )


def test_positional_signature_matches_torchaudio() -> None:
    import inspect

    ours = inspect.signature(rnnt.rnnt_loss).parameters
    theirs = inspect.signature(torchaudio_functional.rnnt_loss).parameters
    positional = [p for p in ours.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in positional] == list(theirs)
    assert [p.default for p in positional] == [p.default for p in theirs.values()]


def test_module_and_compat_agree_with_torchaudio_module() -> None:
    import torchaudio.transforms

    logits, targets, logit_lengths, target_lengths, blank = random_batch(5)
    args = (logits, targets, logit_lengths, target_lengths)
    theirs, their_grad = loss_and_grad(
        torchaudio.transforms.RNNTLoss(blank=int(blank), clamp=0.2), *args
    )
    for module in (rnnt.RNNTLoss, rnnt.compat.torchaudio.RNNTLoss):
        ours, our_grad = loss_and_grad(module(blank=int(blank), clamp=0.2), *args)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(our_grad, their_grad, rtol=0, atol=1e-4)
    assert rnnt.compat.torchaudio.rnnt_loss is rnnt.rnnt_loss


def test_upstream_gradient_scales_each_item() -> None:
    """Backward multiplies each item's (clamped) gradient by its own upstream weight."""
    logits, targets, logit_lengths, target_lengths, blank = random_batch(1)
    weights = torch.linspace(-2.0, 3.0, logits.shape[0])
    args = (logits, targets, logit_lengths, target_lengths)
    grads = []
    for function in (rnnt.rnnt_loss, torchaudio_functional.rnnt_loss):
        x = logits.clone().requires_grad_(True)
        losses = function(x, *args[1:], int(blank), 0.1, "none")
        (grad,) = torch.autograd.grad((losses * weights).sum(), x)
        grads.append(grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-4)
