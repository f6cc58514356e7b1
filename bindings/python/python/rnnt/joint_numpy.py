"""The joiner fused into the loss on NumPy arrays, without torch: :func:`joint_loss_and_grad`
(see :mod:`rnnt.joint` for what it computes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from rnnt import _rnnt
from rnnt._dtypes import common_index_dtype
from rnnt.numpy import _as_c_array

__all__ = ["joint_loss_and_grad"]

Array = np.ndarray[Any, Any]


def joint_loss_and_grad(
    encoder_out: npt.ArrayLike,
    predictor_out: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None,
    targets: npt.ArrayLike,
    logit_lengths: npt.ArrayLike,
    target_lengths: npt.ArrayLike,
    *,
    activation: str = "tanh",
    blank: int = -1,
    reduction: str = "mean",
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
) -> tuple[Array, Array, Array, Array, Array | None]:
    """RNN-T loss of ``x = act(encoder_out[b,t] + predictor_out[b,u]) @ weight.T + bias`` and its
    gradients, the logits never materialised.

    Args: as :func:`rnnt.joint_rnnt_loss` (float32 or float64 arrays of one dtype; ``bias`` may
    be None).

    Returns:
        ``(loss, grad_encoder_out, grad_predictor_out, grad_weight, grad_bias)``: the reported
        loss (0-d, or (B,) for "none") and the gradients of the reported loss (of the sum for
        "none") with respect to each input, of its shape and dtype; ``grad_bias`` is None
        without a bias.

    Raises:
        ValueError, TypeError: as :func:`rnnt.joint_rnnt_loss`, naming the argument.
    """
    floats = [_as_c_array(a) for a in (encoder_out, predictor_out, weight)]
    bias_array = None if bias is None else _as_c_array(bias)
    indices = [_as_c_array(a) for a in (targets, logit_lengths, target_lengths)]
    index_dtype = common_index_dtype([a.dtype.name for a in indices])
    if index_dtype is not None:
        indices = [a.astype(index_dtype) for a in indices]
    for array, name, rank in zip(floats, ("encoder_out", "predictor_out", "weight"), (3, 3, 2)):
        if array.ndim != rank:
            raise ValueError(
                f"{name} has {array.ndim} dimensions (shape {array.shape}) but {rank} were expected"
            )
    grads = [np.empty_like(a) for a in floats]
    grad_bias = None if bias_array is None else np.empty_like(bias_array)
    losses, loss = _rnnt.joint_loss(
        (*floats, bias_array, *indices),
        (*grads, grad_bias),
        activation=activation,
        blank=blank,
        reduction=reduction,
        clamp=clamp,
        fastemit_lambda=fastemit_lambda,
        zero_infinity=zero_infinity,
        item_weights=None,
    )
    reported = np.asarray(losses if reduction == "none" else loss, dtype=floats[0].dtype)
    return reported, grads[0], grads[1], grads[2], grad_bias
