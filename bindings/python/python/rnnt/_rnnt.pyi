"""Stubs of the native module ``rnnt._rnnt`` (private: use ``rnnt`` and ``rnnt.torch``).

Every array is passed as a descriptor ``(address, shape, dtype name, C-contiguous)``; the caller
keeps the array alive and unmodified during the call.
"""

Descriptor = tuple[int, tuple[int, ...], str, bool]
Inputs = tuple[Descriptor, Descriptor, Descriptor, Descriptor]
"""(logits, targets, logit_lengths, target_lengths)"""

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
    grad: Descriptor,
) -> None:
    """Writes d objective/d input into ``grad`` (every element, 0 in padding), given
    d objective/d loss_b = ``item_weights[b]`` (GIL released)."""
