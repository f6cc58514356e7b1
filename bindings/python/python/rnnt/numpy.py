"""The NumPy front end: ``loss_and_grad`` on NumPy arrays, without torch.

Shape letters, as everywhere in rnnt: B items, T frames, U labels (U+1 label positions), V symbols
including ``blank``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rnnt import _rnnt
from rnnt._dtypes import common_index_dtype
from rnnt._gradient_memory import MEMORY

__all__ = ["loss_and_grad"]


#: Whether this NumPy lends read-only arrays through DLPack (versioned DLPack, NumPy 2.1 on);
#: older ones refuse to, and such arrays are copied.
_LENDS_READ_ONLY = np.lib.NumpyVersion(np.__version__) >= "2.1.0"


def _as_c_array(value: npt.ArrayLike) -> np.ndarray[Any, Any]:
    """``value`` as a C-contiguous array in native byte order that NumPy can lend through
    DLPack; copies only when it is not one."""
    array = np.asarray(value, order="C")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    elif not (_LENDS_READ_ONLY or array.flags.writeable):
        array = array.copy()
    return array


def _with_one_index_dtype(
    values: np.ndarray[Any, Any], indices: Sequence[np.ndarray[Any, Any]]
) -> _rnnt.Inputs:
    """The four arrays of a call as the native module takes them (it reads them through DLPack,
    without a copy), the three index arrays brought to one int dtype when they differ."""
    index_dtype = common_index_dtype([a.dtype.name for a in indices])
    if index_dtype is not None:
        indices = [a.astype(index_dtype) for a in indices]
    targets, logit_lengths, target_lengths = indices
    return (values, targets, logit_lengths, target_lengths)


def _lendable(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values``, or a float32 copy of an ``ml_dtypes`` bfloat16 array (exact: DLPack cannot
    export NumPy's extension dtypes)."""
    if values.dtype.name == "bfloat16":
        return values.astype(np.float32)
    return values


def loss_and_grad(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    logit_lengths: npt.ArrayLike,
    target_lengths: npt.ArrayLike,
    *,
    blank: int = -1,
    reduction: str = "mean",
    fused_log_softmax: bool = True,
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """RNN-T loss and its gradient with respect to ``logits``.

    Args:
        logits: (B, T, U+1, V) joiner output, float32, float64, float16 (or an ``ml_dtypes``
            bfloat16 array, widened to float32 and its gradient rounded back). With
            ``fused_log_softmax=False`` it holds log-probabilities. Positions past an item's
            lengths are padding and never read. Or packed, 2-D (sum of T_b*(U_b+1), V): item b's
            T_b x (U_b+1) rows, frame-major, after those of the items before it (the total must
            match the lengths). Read without a copy when C-contiguous and in native byte order.
        targets: (B, U) labels padded past ``target_lengths``, or (sum of U_b,) labels packed end to
            end; int32 or int64.
        logit_lengths: (B,) frames per item, 1 <= T_b <= T; int32 or int64.
        target_lengths: (B,) labels per item, 0 <= U_b <= U; int32 or int64 (mixed int types are
            converted to int64).
        blank: blank id; negative counts from the end (-1, the default, is the last symbol).
        reduction: "mean" (sum / B, torchaudio's default), "sum" or "none".
        fused_log_softmax: True: apply log_softmax over V inside the loss. False: ``logits`` are
            log-probabilities used as they are, and the gradient treats them as free inputs.
        clamp: when > 0, clip each item's gradient to [-clamp, clamp] (before the reduction's
            scaling, as torchaudio does).
        fastemit_lambda: FastEmit lambda >= 0; scales emission-arc gradient terms by 1 + lambda.
            The reported loss stays -log P.
        zero_infinity: report impossible items (every path masked by -inf) as loss 0 instead of
            +inf. Their gradient is 0 either way.

    Returns:
        ``(loss, grad)``: ``loss`` is a 0-d array (shape (B,) for "none") and ``grad`` the
        gradient of the reported loss (of the sum for "none"), of the shape of ``logits`` (0 in
        padding); both in the dtype of ``logits``. The computation accumulates in float64.

    Raises:
        ValueError: a bad shape, length, label, option or logit value (NaN or +inf within the
            lengths); the message names the argument and the value.
        TypeError: a dtype outside those above, naming the argument.
    """
    given, *indices = (_as_c_array(a) for a in (logits, targets, logit_lengths, target_lengths))
    values = _lendable(given)
    inputs = _with_one_index_dtype(values, indices)
    raw = MEMORY.take(values.nbytes)
    grad = np.empty_like(values) if raw is None else raw.view(values.dtype).reshape(values.shape)
    state = _rnnt.loss_and_grad_into(
        inputs,
        grad,
        blank=blank,
        reduction=reduction,
        fused_log_softmax=fused_log_softmax,
        clamp=clamp,
        fastemit_lambda=fastemit_lambda,
        zero_infinity=zero_infinity,
    )
    loss = state.losses() if reduction == "none" else state.loss()
    if values is not given:
        grad = grad.astype(given.dtype)
    return np.asarray(loss, dtype=given.dtype), grad
