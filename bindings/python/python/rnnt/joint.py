"""The joiner fused into the loss, on torch tensors: :func:`joint_rnnt_loss` and the module
:class:`JointRNNTLoss`.

For item b, frame t and label position u the joiner computes
``x[b,t,u] = weight @ act(encoder_out[b,t] + predictor_out[b,u]) + bias`` (torchaudio's
``RNNTJoiner``, icefall's ``Joiner``, NeMo's ``RNNTJoint`` after their input projections), and the
loss is :func:`rnnt.rnnt_loss` of x. Here x is made a tile of rows at a time and dropped: the
B*T*(U+1)*V logits, their gradient and the B*T*(U+1)*H hidden activations are never held
(docs/joint.md). Gradients flow to ``encoder_out``, ``predictor_out``, ``weight`` and ``bias``.
"""

from __future__ import annotations

import math

import torch

from rnnt import _joint_ops
from rnnt._dtypes import common_index_dtype
from rnnt.torch import _blank_id, _cpu_tensor

__all__ = ["JointRNNTLoss", "joint_rnnt_loss"]

_ACTIVATIONS = ("tanh", "relu", "identity")
_REDUCTIONS = ("none", "mean", "sum")


def joint_rnnt_loss(
    encoder_out: torch.Tensor,
    predictor_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    activation: str = "tanh",
    blank: int = -1,
    reduction: str = "mean",
    clamp: float = -1.0,
    fastemit_lambda: float = 0.0,
    zero_infinity: bool = False,
) -> torch.Tensor:
    """The RNN-T loss of the joiner's output, computed from the joiner's inputs.

    Args:
        encoder_out: (B, T, H) encoder side f, float32 or float64.
        predictor_out: (B, U+1, H) predictor side g, of the same dtype.
        weight: (V, H) the joiner's output layer W.
        bias: (V,) its bias, or None.
        targets: (B, U) labels padded past ``target_lengths``, or (sum of U_b,) packed; int32
            or int64.
        logit_lengths: (B,) frames per item, 1 <= T_b <= T.
        target_lengths: (B,) labels per item, 0 <= U_b <= U.
        activation: "tanh", "relu" or "identity", applied to f + g before the output layer.
        blank, reduction, clamp, fastemit_lambda, zero_infinity: as :func:`rnnt.rnnt_loss`.

    Returns:
        The loss of ``x = act(f[t] + g[u]) @ W.T + bias`` as :func:`rnnt.rnnt_loss` reports it
        (0-d, or (B,) for "none"), in the inputs' dtype, differentiable with respect to
        ``encoder_out``, ``predictor_out``, ``weight`` and ``bias``.

    Raises:
        ValueError: shapes that do not agree (naming the arrays and sizes), a length, label,
            option or value out of range, an unknown activation, a tensor not on the CPU.
        TypeError: a non-tensor argument, a dtype other than float32/float64 or int32/int64,
            floats of different dtypes.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f'activation = {activation!r} is not one of "tanh", "relu", "identity"')
    if reduction not in _REDUCTIONS:
        raise ValueError(f'reduction = {reduction!r} is not one of "none", "sum", "mean"')
    floats = [
        _cpu_tensor(value, name)
        for value, name in (
            (encoder_out, "encoder_out"),
            (predictor_out, "predictor_out"),
            (weight, "weight"),
        )
    ]
    for tensor, name, rank in zip(floats, ("encoder_out", "predictor_out", "weight"), (3, 3, 2)):
        if tensor.dim() != rank:
            raise ValueError(
                f"{name} has {tensor.dim()} dimensions (shape {tuple(tensor.shape)}) but "
                f"{rank} were expected"
            )
    bias_tensor = None if bias is None else _cpu_tensor(bias, "bias")
    if bias_tensor is not None and bias_tensor.dim() != 1:
        raise ValueError(
            f"bias has {bias_tensor.dim()} dimensions (shape {tuple(bias_tensor.shape)}) but 1 "
            "was expected"
        )
    indices = [
        _cpu_tensor(value, name)
        for value, name in (
            (targets, "targets"),
            (logit_lengths, "logit_lengths"),
            (target_lengths, "target_lengths"),
        )
    ]
    if common_index_dtype([str(t.dtype).removeprefix("torch.") for t in indices]) is not None:
        indices = [t.to(torch.int64) for t in indices]
    params = (*floats, bias_tensor)
    wants_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in params)
    options = (
        activation,
        _blank_id(blank),
        reduction,
        float(clamp),
        float(fastemit_lambda),
        bool(zero_infinity),
    )
    # Per-item upstream gradients ("none") are only known in backward, which computes them then.
    grads = wants_grad and reduction != "none"
    return _joint_ops.joint_loss((*params, *indices), options, grads)


class JointRNNTLoss(torch.nn.Module):
    """The joiner's output layer and the RNN-T loss in one module: a drop-in for "joiner, then
    loss" whose logits are never materialised (see :func:`joint_rnnt_loss`).

    Owns the (V, H) ``weight`` and the (V,) ``bias`` (when ``bias=True``), initialised as
    ``torch.nn.Linear(hidden, vocab)`` initialises its own; called as
    ``criterion(encoder_out, predictor_out, targets, logit_lengths, target_lengths)`` with
    ``encoder_out`` (B, T, H) and ``predictor_out`` (B, U+1, H) already projected to H.
    """

    def __init__(
        self,
        hidden: int,
        vocab: int,
        *,
        activation: str = "tanh",
        bias: bool = True,
        blank: int = -1,
        reduction: str = "mean",
        clamp: float = -1.0,
        fastemit_lambda: float = 0.0,
        zero_infinity: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f'activation = {activation!r} is not one of "tanh", "relu", "identity"'
            )
        self.weight = torch.nn.Parameter(torch.empty(vocab, hidden, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.empty(vocab, dtype=dtype)) if bias else None
        self.activation = activation
        self.blank = blank
        self.reduction = reduction
        self.clamp = clamp
        self.fastemit_lambda = fastemit_lambda
        self.zero_infinity = zero_infinity
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``torch.nn.Linear``'s initialisation: uniform in +-1/sqrt(H)."""
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1]) if self.weight.shape[1] > 0 else 0.0
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(
        self,
        encoder_out: torch.Tensor,
        predictor_out: torch.Tensor,
        targets: torch.Tensor,
        logit_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of one batch; see :func:`joint_rnnt_loss`."""
        return joint_rnnt_loss(
            encoder_out,
            predictor_out,
            self.weight,
            self.bias,
            targets,
            logit_lengths,
            target_lengths,
            activation=self.activation,
            blank=self.blank,
            reduction=self.reduction,
            clamp=self.clamp,
            fastemit_lambda=self.fastemit_lambda,
            zero_infinity=self.zero_infinity,
        )

    def extra_repr(self) -> str:
        hidden, vocab = self.weight.shape[1], self.weight.shape[0]
        return (
            f"hidden={hidden}, vocab={vocab}, activation={self.activation!r}, "
            f"bias={self.bias is not None}, blank={self.blank}, reduction={self.reduction!r}"
        )
