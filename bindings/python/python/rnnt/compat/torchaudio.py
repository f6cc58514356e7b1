"""Drop-in for torchaudio's RNN-T loss: ``from rnnt.compat.torchaudio import rnnt_loss``.

Same positional signature, defaults (``blank=-1, clamp=-1, reduction="mean",
fused_log_softmax=True``), result shapes and dtypes as ``torchaudio.functional.rnnt_loss`` and
``torchaudio.transforms.RNNTLoss``; ``mean`` is the mean of the per-item losses. Differences:
int64 targets / lengths and float64 / bfloat16 logits are accepted, the keyword-only options
``fastemit_lambda`` and ``zero_infinity`` exist, bad input raises ValueError / TypeError naming
the argument, and α/β are accumulated in float64 (torchaudio's float32 drifts on long inputs).
"""

from rnnt.torch import RNNTLoss, rnnt_loss

__all__ = ["RNNTLoss", "rnnt_loss"]
