"""Stubs of the native module ``rnnt._rnnt`` (private: use ``rnnt`` and ``rnnt.torch``).

Every array is a NumPy array or a torch CPU tensor (not requiring grad), or another object with
``__dlpack__``, or a DLPack capsule: the module reads it through DLPack, without a copy, holding
the producer's memory for the whole call. It must be C-contiguous, in CPU memory and of the dtype
the argument takes; anything else raises TypeError or ValueError naming the argument.

Topology options (keyword-only, on ``forward``, ``loss_and_grad_into`` and ``align``; the defaults
are the standard loss):

- ``rnnt_type``: ``"regular"`` (the standard lattice), ``"modified"`` (k2: one symbol per frame,
  a label moves (t, u) to (t+1, u+1), no terminal blank, needs T_b >= U_b) or ``"constrained"``
  (``"modified"`` whose label arc also reads the blank of the next context on the same frame).
- ``terminal_blank``: with ``"modified"`` only, optimized_transducer's ``one_sym_per_frame``
  convention: paths end with a blank from (T_b-1, U_b) (needs T_b >= U_b+1).
- ``delay_penalty``: k2's delay penalty delta: every label arc at frame t gains
  delta*((T_b-1)/2 - t); on the ``"regular"``, ``"modified"`` and ``"constrained"`` lattices;
  the loss includes it.
- ``sigma``: undernormalisation, subtracted from the token head's log-probability on every arc
  of any topology (NeMo uses it with TDT: blank and label arcs, and multi-blank: every arc).
- ``big_blank_durations``: multi-blank (NeMo): big blank i (duration d_i >= 2) is symbol
  ``blank - 1 - i`` and moves t to t + d_i; ``None`` or empty: no big blanks.
- ``durations``: TDT (NeMo): ascending distinct durations >= 0 of the duration head; given, the
  call is a TDT call and ``inputs`` is a ``TdtInputs`` 5-tuple. ``None``: not TDT.

A call with options the core does not combine (``rnnt_type`` other than ``"regular"`` with
``durations`` or ``big_blank_durations``, both of those at once, ``delay_penalty`` on TDT or
multi-blank, ``terminal_blank`` without ``"modified"``) raises ValueError naming them, as does a
bad value (durations not ascending, repeated, negative or empty; a big blank id below 0 or equal
to a label's; NaN or inf ``sigma`` / ``delay_penalty``; T_b < U_b for one symbol per frame).
"""

from typing import Any, Protocol

class SupportsDLPack(Protocol):
    """An array that lends its memory through DLPack (NumPy arrays, torch tensors)."""

    def __dlpack__(self, *, max_version: tuple[int, int] | None = None) -> object: ...

Inputs = tuple[SupportsDLPack, SupportsDLPack, SupportsDLPack, SupportsDLPack]
"""(logits, targets, logit_lengths, target_lengths); logits 4-D (B, T, U+1, V) padded or 2-D
(sum of T_b*(U_b+1), V) packed, the gradient of their shape."""

TdtInputs = tuple[SupportsDLPack, SupportsDLPack, SupportsDLPack, SupportsDLPack, SupportsDLPack]
"""(token_logits, targets, logit_lengths, target_lengths, duration_logits) of a TDT call (one
with ``durations``): token logits (B, T, U+1, V) or packed (sum of T_b*(U_b+1), V), duration
logits (B, T, U+1, D) or packed (sum of T_b*(U_b+1), D), D = len(durations).

Unlike every other array, the two heads (and their gradients ``grad`` and ``duration_grad``) may
be strided views of one tensor, as NeMo's joint gives them: ``joint[..., :V]`` and
``joint[..., V:]`` of a (B, T, U+1, V+D) tensor. They are read and written in place, never copied:
the last axis must have stride 1, the row axis (U+1 padded, rows packed) any stride (the row
pitch) at least the row's length, and each outer axis the stride of the axis inside it times that
axis's extent (the outer axes as C-contiguous over rows of that pitch). Other layouts raise
ValueError. A gradient may share its rows with the other head's gradient (the two column ranges
must not intersect) but no byte with an input."""

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
    inputs: Inputs | TdtInputs,
    *,
    blank: int,
    reduction: str,
    fused_log_softmax: bool,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str = "regular",
    terminal_blank: bool = False,
    delay_penalty: float = 0.0,
    sigma: float = 0.0,
    big_blank_durations: list[int] | None = None,
    durations: list[int] | None = None,
) -> ForwardState:
    """Validates the input and runs the front pass and the alpha/beta lattice (GIL released).

    Raises ValueError for a bad shape, length, label, option or logit value, TypeError for a bad
    dtype; the message names the argument and the value.
    """

def backward(
    state: ForwardState,
    inputs: Inputs | TdtInputs,
    item_weights: list[float],
    grad: SupportsDLPack,
    duration_grad: SupportsDLPack | None = None,
) -> None:
    """Writes d objective/d input into ``grad`` (every element, 0 in padding), given
    d objective/d loss_b = ``item_weights[b]`` (GIL released). ``inputs`` are the arrays
    ``forward`` read. After a TDT forward, ``grad`` is the token logits' gradient and
    ``duration_grad`` (required then, refused otherwise) the duration logits'.

    Raises as ``forward``, and ValueError when ``grad`` is read-only or overlaps an input.
    """

def loss_and_grad_into(
    inputs: Inputs | TdtInputs,
    grad: SupportsDLPack,
    *,
    blank: int,
    reduction: str,
    fused_log_softmax: bool,
    clamp: float,
    fastemit_lambda: float,
    zero_infinity: bool,
    rnnt_type: str = "regular",
    terminal_blank: bool = False,
    delay_penalty: float = 0.0,
    sigma: float = 0.0,
    big_blank_durations: list[int] | None = None,
    durations: list[int] | None = None,
    duration_grad: SupportsDLPack | None = None,
) -> ForwardState:
    """``forward`` and ``backward`` of the reported (reduced) loss in one call (GIL released):
    writes its gradient into ``grad`` (every element, 0 in padding), keeping the softmax terms
    there between the passes where the gradient stays in cache. A TDT call (``durations`` given)
    writes the duration logits' gradient into ``duration_grad`` (required then, refused
    otherwise).

    Raises as ``forward``, and ValueError when ``grad`` is read-only or overlaps an input.
    """

class ItemAlignment:
    """The alignment of one item (see ``rnnt.alignment.Alignment``)."""

    def labels(self) -> list[int]:
        """The item's label ids y[1..U_b]."""

    def frames(self) -> int:
        """T_b."""

    def path(self) -> list[tuple[int, int]]:
        """The best path's (t, u) nodes from (0, 0) to the node its final arc leaves: (T_b-1, U_b)
        for the standard lattice; for TDT and multi-blank (T_b-d, U_b) where d is the duration of
        the final blank, and consecutive nodes may jump several frames; for "modified" and
        "constrained" the last node is (T_b, U_b) (each arc consumes one frame; with
        ``terminal_blank`` (T_b-1, U_b)). Empty when P = 0."""

    def score(self) -> float:
        """ln probability (the weight, with sigma and the delay bonus) of the best path, final
        arc included; -inf when P = 0."""

    def emit_frames(self) -> list[int]:
        """The frame at which the best path emits each label; empty when P = 0."""

    def token_durations(self) -> list[tuple[int, int]]:
        """For each label the best path emits, (frame, duration): the frame it is emitted at
        and the frames its arc advances (TDT: the duration head's choice, 0 allowed; "modified"
        and "constrained": 1; otherwise 0). Parakeet-TDT's token timestamps. Empty when P = 0."""

    def blank_durations(self) -> list[tuple[int, int]]:
        """For each blank on the best path (final one included), (frame, duration): 1 for the
        standard blank, d for a TDT blank or a multi-blank big blank. Empty when P = 0."""

    def log_prob(self) -> float:
        """ln P(y|x) over all paths (with sigma and the delay bonus: minus the loss)."""

    def occupancy(self) -> list[float]:
        """gamma(t, u), row-major (T_b, U_b+1): the probability that a path visits (t, u)
        ("modified"/"constrained": (T_b+1, U_b+1), frames 0..T_b)."""

    def emit_posterior(self) -> list[float]:
        """P(label j+1 emitted at frame t), row-major (U_b, T_b)."""

    def emit_frame_spreads(self) -> list[tuple[float, float]]:
        """(mean, standard deviation) of each label's emission frame."""

def align(
    inputs: Inputs | TdtInputs,
    *,
    blank: int,
    fused_log_softmax: bool,
    rnnt_type: str = "regular",
    terminal_blank: bool = False,
    delay_penalty: float = 0.0,
    sigma: float = 0.0,
    big_blank_durations: list[int] | None = None,
    durations: list[int] | None = None,
) -> list[ItemAlignment]:
    """Validates the input as ``forward`` does and aligns every item (GIL released), on the
    topology the options select."""

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
