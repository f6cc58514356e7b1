"""Stubs of the native module ``rnnt._rnnt`` (private: use ``rnnt`` and ``rnnt.torch``).

Every array is a NumPy array or a torch CPU tensor (not requiring grad), or another object with
``__dlpack__``, or a DLPack capsule: the module reads it through DLPack, without a copy, holding
the producer's memory for the whole call. It must be C-contiguous, in CPU memory and of the dtype
the argument takes; anything else raises TypeError or ValueError naming the argument.
"""

from typing import Any, Protocol

class SupportsDLPack(Protocol):
    """An array that lends its memory through DLPack (NumPy arrays, torch tensors)."""

    def __dlpack__(self, *, max_version: tuple[int, int] | None = None) -> object: ...

Inputs = tuple[SupportsDLPack, SupportsDLPack, SupportsDLPack, SupportsDLPack]
"""(logits, targets, logit_lengths, target_lengths); logits 4-D (B, T, U+1, V) padded or 2-D
(sum of T_b*(U_b+1), V) packed, the gradient of their shape."""

STREAM_MIN_BYTES: int
"""Gradients at least this large are streamed past the caches; below, ``loss_and_grad_into``
keeps the softmax terms in the gradient between its passes (faster than forward then
backward)."""

class ForwardState:
    """Per-item losses and the O(B*T*U) lattice state kept between forward and backward."""

    def losses(self) -> list[float]:
        """Per-item losses -log P(y_b | x_b) in float64 (+inf for an impossible item)."""

    def loss(self) -> float:
        """The loss after the reduction given to ``forward`` (the sum for ``"none"``)."""

    def item_weights(self, upstream: float) -> list[float]:
        """d(reported loss)/d loss_b per item, times ``upstream``."""

def forward(
    inputs: Inputs,
    *,
    blank: int,
    reduction: str,
    fused_log_softmax: bool,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> ForwardState:
    """Validates the input and runs the front pass and the alpha/beta lattice (GIL released).

    Raises ValueError for a bad shape, length, label, option or logit value, TypeError for a bad
    dtype; the message names the argument and the value.
    """

def backward(
    state: ForwardState,
    inputs: Inputs,
    item_weights: list[float],
    grad: SupportsDLPack,
) -> None:
    """Writes d objective/d input into ``grad`` (every element, 0 in padding), given
    d objective/d loss_b = ``item_weights[b]`` (GIL released). ``inputs`` are the arrays
    ``forward`` read.

    Raises as ``forward``, and ValueError when ``grad`` is read-only or overlaps an input.
    """

def loss_and_grad_into(
    inputs: Inputs,
    grad: SupportsDLPack,
    *,
    blank: int,
    reduction: str,
    fused_log_softmax: bool,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
) -> ForwardState:
    """``forward`` and ``backward`` of the reported (reduced) loss in one call (GIL released):
    writes its gradient into ``grad`` (every element, 0 in padding), keeping the softmax terms
    there between the passes where the gradient stays in cache.

    Raises as ``forward``, and ValueError when ``grad`` is read-only or overlaps an input.
    """

class ItemAlignment:
    """The alignment of one item (see ``rnnt.alignment.Alignment``)."""

    def labels(self) -> list[int]:
        """The item's label ids y[1..U_b]."""

    def frames(self) -> int:
        """T_b."""

    def path(self) -> list[tuple[int, int]]:
        """The best path's (t, u) nodes from (0, 0) to (T_b-1, U_b); empty when P = 0."""

    def score(self) -> float:
        """ln probability of the best path, final blank included; -inf when P = 0."""

    def emit_frames(self) -> list[int]:
        """The frame at which the best path emits each label; empty when P = 0."""

    def log_prob(self) -> float:
        """ln P(y|x) over all paths."""

    def occupancy(self) -> list[float]:
        """gamma(t, u), row-major (T_b, U_b+1)."""

    def emit_posterior(self) -> list[float]:
        """P(label j+1 emitted at frame t), row-major (U_b, T_b)."""

    def emit_frame_spreads(self) -> list[tuple[float, float]]:
        """(mean, standard deviation) of each label's emission frame."""

def align(inputs: Inputs, *, blank: int, fused_log_softmax: bool) -> list[ItemAlignment]:
    """Validates the input as ``forward`` does and aligns every item (GIL released)."""

def joint_loss(
    arrays: tuple[Any, ...],
    grads: tuple[Any, ...] | None,
    *,
    activation: str,
    blank: int,
    reduction: str,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
    item_weights: list[float] | None,
) -> tuple[list[float], float]:
    """The fused joiner and RNN-T loss over ``(encoder_out, predictor_out, weight, bias, targets,
    logit_lengths, target_lengths)`` (GIL released): per-item losses and the reported loss; with
    ``grads``, the gradients of the reported loss (or of sum(item_weights[b] * loss_b)) written
    into those buffers."""
