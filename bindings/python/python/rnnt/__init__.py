"""rnnt: the exact, fast RNN-Transducer loss for NumPy and PyTorch.

- ``rnnt.loss_and_grad(logits, targets, logit_lengths, target_lengths, ...)`` on NumPy arrays,
  and the variants ``rnnt.tdt_loss_and_grad`` and ``rnnt.multiblank_loss_and_grad``
  (:mod:`rnnt.numpy`);
- ``rnnt.rnnt_loss`` and ``rnnt.RNNTLoss`` on torch tensors, with torchaudio's signature, and the
  variants ``rnnt.tdt_loss`` / ``rnnt.TDTLoss`` and ``rnnt.multiblank_rnnt_loss`` /
  ``rnnt.MultiblankRNNTLoss`` (:mod:`rnnt.torch`, imported on first use: ``import rnnt`` never
  imports torch); one symbol per frame (``rnnt_type``) and the delay penalty are options;
- ``rnnt.joint_rnnt_loss`` and ``rnnt.JointRNNTLoss``: the joiner's output layer fused into the
  loss, the logits never materialised (:mod:`rnnt.joint`; ``rnnt.joint_loss_and_grad`` on NumPy
  arrays, :mod:`rnnt.joint_numpy`);
- ``rnnt.align(...)``: best paths, emission frames and occupancies, and ``rnnt.plot_alignment``
  to draw them with matplotlib (:mod:`rnnt.alignment`);
- ``rnnt.reuse_gradient_memory(enabled)``: whether large gradients reuse the memory of earlier ones
  that nothing refers to any more (default: on);
- drop-in replacements for torchaudio, warprnnt_pytorch, awni's transducer and HuggingFace
  transformers' ``rnnt_loss`` and ``tdt_loss``, optimized_transducer in :mod:`rnnt.compat`.

Shapes use B items, T frames, U labels (U+1 label positions) and V symbols including ``blank``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rnnt._gradient_memory import reuse_gradient_memory
from rnnt.alignment import Alignment, align, plot_alignment
from rnnt.joint_numpy import joint_loss_and_grad
from rnnt.numpy import loss_and_grad, multiblank_loss_and_grad, tdt_loss_and_grad

if TYPE_CHECKING:
    from rnnt.joint import JointRNNTLoss, joint_rnnt_loss
    from rnnt.torch import (
        MultiblankRNNTLoss,
        RNNTLoss,
        TDTLoss,
        multiblank_rnnt_loss,
        rnnt_loss,
        tdt_loss,
    )

__all__ = [
    "Alignment",
    "JointRNNTLoss",
    "MultiblankRNNTLoss",
    "RNNTLoss",
    "TDTLoss",
    "align",
    "joint_loss_and_grad",
    "joint_rnnt_loss",
    "loss_and_grad",
    "multiblank_loss_and_grad",
    "multiblank_rnnt_loss",
    "plot_alignment",
    "reuse_gradient_memory",
    "rnnt_loss",
    "tdt_loss",
    "tdt_loss_and_grad",
]
__version__ = "0.1.0"

_TORCH_NAMES = (
    "MultiblankRNNTLoss",
    "RNNTLoss",
    "TDTLoss",
    "multiblank_rnnt_loss",
    "rnnt_loss",
    "tdt_loss",
)
_JOINT_NAMES = ("JointRNNTLoss", "joint_rnnt_loss")


def __getattr__(name: str) -> Any:
    """Imports the torch front end on first access of one of its names."""
    if name in _TORCH_NAMES:
        import rnnt.torch

        return getattr(rnnt.torch, name)
    if name in _JOINT_NAMES:
        import rnnt.joint

        return getattr(rnnt.joint, name)
    raise AttributeError(f"module 'rnnt' has no attribute {name!r}")
