"""The NumPy front end, without torch: ``loss_and_grad`` (the standard loss, k2's one-symbol-per-
frame lattices, the delay penalty), ``tdt_loss_and_grad`` (Token-and-Duration Transducer) and
``multiblank_loss_and_grad`` on NumPy arrays (definitions: docs/variants.md).

Shape letters, as everywhere in rnnt: B items, T frames, U labels (U+1 label positions), V symbols
including ``blank``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rnnt import _rnnt
from rnnt._dtypes import common_index_dtype
from rnnt._gradient_memory import MEMORY

__all__ = ["loss_and_grad", "multiblank_loss_and_grad", "tdt_loss_and_grad"]


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
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
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
        fastemit_lambda: FastEmit lambda >= 0 (1ytic/warp-rnnt's definition): scales label-arc
            gradient terms by 1 + lambda. The reported loss stays -log P.
        zero_infinity: report impossible items (every path masked by -inf) as loss 0 instead of
            +inf. Their gradient is 0 either way.
        rnnt_type: "regular" (default), or k2's one-symbol-per-frame lattices "modified" (a
            label moves (t, u) to (t+1, u+1), no terminal blank, needs T_b >= U_b) and
            "constrained" (the label arc also reads the blank of the next context).
        delay_penalty: k2's delay penalty delta: each label arc at frame t gains
            delta*((T_b - 1)/2 - t); the loss includes it.

    Returns:
        ``(loss, grad)``: ``loss`` is a 0-d array (shape (B,) for "none") and ``grad`` the
        gradient of the reported loss (of the sum for "none"), of the shape of ``logits`` (0 in
        padding); both in the dtype of ``logits``. The computation accumulates in float64.

    Raises:
        ValueError: a bad shape, length, label, option or logit value (NaN or +inf within the
            lengths); the message names the argument and the value.
        TypeError: a dtype outside those above, naming the argument.
    """
    loss, grads = _loss_and_grads(
        (logits, targets, logit_lengths, target_lengths),
        None,
        blank=blank,
        reduction=reduction,
        fused_log_softmax=fused_log_softmax,
        clamp=clamp,
        fastemit_lambda=fastemit_lambda,
        zero_infinity=zero_infinity,
        rnnt_type=rnnt_type,
        delay_penalty=delay_penalty,
    )
    return loss, grads[0]


def tdt_loss_and_grad(
    token_logits: npt.ArrayLike,
    duration_logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    logit_lengths: npt.ArrayLike,
    target_lengths: npt.ArrayLike,
    *,
    blank: int,
    durations: Sequence[int],
    sigma: float = 0.0,
    reduction: str = "mean",
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
    fused_log_softmax: bool = True,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Token-and-Duration Transducer loss (Xu et al. 2023) and its gradients for both heads.

    Args:
        token_logits: (B, T, U+1, V) token head (or packed (sum of T_b*(U_b+1), V)), as
            ``logits`` of :func:`loss_and_grad`.
        duration_logits: (B, T, U+1, D) duration head (or packed), D = len(durations), of the
            dtype of ``token_logits``. Read in place when its last axis is contiguous and its
            rows evenly spaced (e.g. ``joint[..., V:]`` of one (B, T, U+1, V+D) array).
        targets, logit_lengths, target_lengths: as for :func:`loss_and_grad`.
        blank: blank id of the token head; negative counts from the end.
        durations: ascending distinct durations >= 0, e.g. [0, 1, 2, 3, 4].
        sigma: undernormalisation constant, subtracted from every arc's token log-probability.
        reduction, clamp, fastemit_lambda, zero_infinity, fused_log_softmax: as for
            :func:`loss_and_grad` (FastEmit scales the token head's label-arc terms only;
            ``fused_log_softmax`` concerns the token head, the duration head always goes through
            log_softmax).

    Returns:
        ``(loss, grad_token_logits, grad_duration_logits)``, in the dtype of ``token_logits``.

    Raises:
        ValueError: as :func:`loss_and_grad`, and for bad ``durations`` (not ascending, repeated,
            negative, empty) or a duration head of the wrong size, naming the argument.
        TypeError: as :func:`loss_and_grad`.
    """
    loss, grads = _loss_and_grads(
        (token_logits, targets, logit_lengths, target_lengths),
        duration_logits,
        blank=blank,
        reduction=reduction,
        fused_log_softmax=fused_log_softmax,
        clamp=clamp,
        fastemit_lambda=fastemit_lambda,
        zero_infinity=zero_infinity,
        sigma=sigma,
        durations=[operator.index(d) for d in durations],
    )
    return loss, grads[0], grads[1]


def multiblank_loss_and_grad(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    logit_lengths: npt.ArrayLike,
    target_lengths: npt.ArrayLike,
    *,
    blank: int,
    big_blank_durations: Sequence[int],
    sigma: float = 0.0,
    reduction: str = "mean",
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
    fused_log_softmax: bool = True,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Multi-blank transducer loss (Xu et al. 2022) and its gradient with respect to ``logits``.

    Big blank i, of duration ``big_blank_durations[i]`` (>= 2), is symbol ``blank - 1 - i`` (as
    NeMo) and moves t forward by its duration; ``sigma`` is subtracted on every arc. The other
    arguments and the result are those of :func:`loss_and_grad`; no label may be a big blank id.

    Raises:
        ValueError: as :func:`loss_and_grad`, and for a big blank id below 0 or equal to a
            label, naming the argument.
        TypeError: as :func:`loss_and_grad`.
    """
    loss, grads = _loss_and_grads(
        (logits, targets, logit_lengths, target_lengths),
        None,
        blank=blank,
        reduction=reduction,
        fused_log_softmax=fused_log_softmax,
        clamp=clamp,
        fastemit_lambda=fastemit_lambda,
        zero_infinity=zero_infinity,
        sigma=sigma,
        big_blank_durations=[operator.index(d) for d in big_blank_durations],
    )
    return loss, grads[0]


def _as_head(value: npt.ArrayLike) -> np.ndarray[Any, Any]:
    """A TDT duration head: kept as it is when the native module reads its layout in place (the
    last axis contiguous, the outer axes C-contiguous over evenly spaced rows: a slice of one
    joint array), else as :func:`_as_c_array`."""
    array: np.ndarray[Any, Any] = np.asarray(value)
    if array.ndim >= 2 and array.dtype.isnative and array.strides[-1] == array.itemsize:
        rows = array.strides[-2]
        outer = all(
            array.strides[axis] == array.strides[axis + 1] * array.shape[axis + 1]
            for axis in range(array.ndim - 2)
        )
        if outer and rows >= array.shape[-1] * array.itemsize and rows % array.itemsize == 0:
            return array if (_LENDS_READ_ONLY or array.flags.writeable) else array.copy()
    return _as_c_array(array)


def _empty_like(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """An uninitialised C-contiguous array like ``values``, in reused memory when large."""
    raw = MEMORY.take(values.nbytes)
    if raw is None:
        return np.empty(values.shape, dtype=values.dtype)
    grad: np.ndarray[Any, Any] = raw.view(values.dtype).reshape(values.shape)
    return grad


def _loss_and_grads(
    arrays: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    duration_logits: npt.ArrayLike | None,
    *,
    reduction: str,
    **options: Any,
) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]]]:
    """The loss and the gradients of every head (the logits', then for TDT the duration
    logits') of one native call with ``options``."""
    given, *indices = (_as_c_array(a) for a in arrays)
    heads = [_lendable(given)]
    if duration_logits is not None:
        heads.append(_lendable(_as_head(duration_logits)))
    inputs: Any = _with_one_index_dtype(heads[0], indices)
    grads = [_empty_like(head) for head in heads]
    if duration_logits is not None:
        inputs = (*inputs, heads[1])
        options["duration_grad"] = grads[1]
    state = _rnnt.loss_and_grad_into(inputs, grads[0], reduction=reduction, **options)
    loss = state.losses() if reduction == "none" else state.loss()
    if heads[0] is not given:
        grads = [grad.astype(given.dtype) for grad in grads]
    return np.asarray(loss, dtype=given.dtype), grads
