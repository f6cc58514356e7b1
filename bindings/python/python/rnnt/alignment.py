"""Alignments: the Viterbi best path of each item, its emission frames, the node occupancy and
each label's emission-frame posterior, on the lattice the loss computes (any variant: TDT,
multi-blank, one symbol per frame, the delay penalty); and a picture of them.

Shape letters, as everywhere in rnnt: B items, T frames, U labels (U+1 label positions), V symbols
including ``blank``. Frames count from 0.

Ties: when paths score exactly the same, the one that emits earlier wins (the backtrace takes the
blank arc into a node whenever it is at least as good as the emission arc), so among all best paths
the one returned emits every label at its earliest possible frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rnnt import _rnnt
from rnnt.numpy import _as_c_array, _lendable, _with_one_index_dtype

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Alignment", "align", "plot_alignment"]

_LOG10_FLOOR = -6.0
"""Occupancies at or below 10**_LOG10_FLOOR share the darkest colour in pictures."""


@dataclass(frozen=True)
class Alignment:
    """The alignment of one item (NumPy arrays, float64 probabilities, int64 indices).

    Attributes:
        labels: (U_b,) the item's label ids.
        path: (n, 2) the best path's [t, u] nodes from [0, 0] to the node its final arc leaves:
            [T_b-1, U_b] on the standard lattice (n = T_b + U_b); for TDT and multi-blank
            [T_b-d, U_b], d the final blank's duration, and consecutive nodes may jump several
            frames; for "modified" / "constrained" [T_b, U_b]. (0, 2) when the item is impossible
            (P = 0).
        score: natural-log weight of the best path, final arc included (with sigma and the
            delay bonus); -inf when P = 0.
        emit_frames: (U_b,) the frame at which the best path emits each label; empty when P = 0.
        token_durations: (U_b, 2) [frame, duration] of each label the best path emits: for TDT
            the duration head's choice (Parakeet-TDT's token timestamps), 1 for one symbol per
            frame, 0 otherwise; empty when P = 0.
        blank_durations: (k, 2) [frame, duration] of each blank on the best path, the final one
            included (TDT and multi-blank: the frames the blank advances); empty when P = 0.
        log_prob: ln P(y|x) over all paths (= -loss); -inf when P = 0.
        occupancy: (T_b, U_b+1) node occupancy gamma(t, u) = exp(alpha + beta - ln P), the
            probability that a path visits (t, u) ((T_b+1, U_b+1) for "modified" and
            "constrained", frames 0..T_b); all 0 when P = 0. On the standard lattice each
            anti-diagonal t + u = d sums to 1.
        emit_posterior: (U_b, T_b) row j, column t: the probability that label j+1 is emitted at
            frame t (each row sums to 1; all 0 when P = 0).
        emit_frame_mean: (U_b,) expected emission frame of each label (NaN when P = 0).
        emit_frame_std: (U_b,) its standard deviation (NaN when P = 0).
    """

    labels: np.ndarray[Any, np.dtype[np.int64]]
    path: np.ndarray[Any, np.dtype[np.int64]]
    score: float
    emit_frames: np.ndarray[Any, np.dtype[np.int64]]
    token_durations: np.ndarray[Any, np.dtype[np.int64]]
    blank_durations: np.ndarray[Any, np.dtype[np.int64]]
    log_prob: float
    occupancy: np.ndarray[Any, np.dtype[np.float64]]
    emit_posterior: np.ndarray[Any, np.dtype[np.float64]]
    emit_frame_mean: np.ndarray[Any, np.dtype[np.float64]]
    emit_frame_std: np.ndarray[Any, np.dtype[np.float64]]

    @classmethod
    def _from_native(cls, item: _rnnt.ItemAlignment) -> Alignment:
        labels = np.asarray(item.labels(), dtype=np.int64)
        frames, positions = item.frames(), len(labels) + 1
        occupancy = np.asarray(item.occupancy(), dtype=np.float64)
        spreads = np.asarray(item.emit_frame_spreads(), dtype=np.float64).reshape(-1, 2)
        return cls(
            labels=labels,
            path=np.asarray(item.path(), dtype=np.int64).reshape(-1, 2),
            score=item.score(),
            emit_frames=np.asarray(item.emit_frames(), dtype=np.int64),
            token_durations=np.asarray(item.token_durations(), dtype=np.int64).reshape(-1, 2),
            blank_durations=np.asarray(item.blank_durations(), dtype=np.int64).reshape(-1, 2),
            log_prob=item.log_prob(),
            occupancy=occupancy.reshape(-1, positions),
            emit_posterior=np.asarray(item.emit_posterior(), dtype=np.float64).reshape(
                len(labels), frames
            ),
            emit_frame_mean=spreads[:, 0].copy(),
            emit_frame_std=spreads[:, 1].copy(),
        )


def _as_numpy(value: Any) -> np.ndarray[Any, Any]:
    """A NumPy view of ``value``; torch tensors are detached and moved to the CPU (bfloat16 is
    widened exactly to float32, which NumPy lacks), without importing torch."""
    if type(value).__module__.startswith("torch"):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        value = tensor.numpy()
    return _as_c_array(value)


def align(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    logit_lengths: npt.ArrayLike,
    target_lengths: npt.ArrayLike,
    *,
    blank: int = -1,
    fused_log_softmax: bool = True,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    sigma: float = 0.0,
    big_blank_durations: Sequence[int] | None = None,
    durations: Sequence[int] | None = None,
    duration_logits: npt.ArrayLike | None = None,
) -> list[Alignment]:
    """Best path, emission frames and occupancies of every item of a batch, on the lattice of any
    variant.

    The arguments are those of the loss (:func:`rnnt.loss_and_grad`,
    :func:`rnnt.tdt_loss_and_grad`, :func:`rnnt.multiblank_loss_and_grad`), validated the same
    way:

    Args:
        logits: (B, T, U+1, V) joiner output, float32, float64 or float16 (NumPy arrays, or torch
            tensors on any device, including bfloat16; these are copied to the CPU). With
            ``fused_log_softmax=False`` it holds log-probabilities. Or packed, 2-D
            (sum of T_b*(U_b+1), V), as for the loss.
        targets: (B, U) padded or (sum of U_b,) packed labels; int32 or int64.
        logit_lengths: (B,) frames per item, 1 <= T_b <= T.
        target_lengths: (B,) labels per item, 0 <= U_b <= U.
        blank: blank id; negative counts from the end (-1, the default, is the last symbol).
        fused_log_softmax: True: apply log_softmax over V first; False: ``logits`` are
            log-probabilities used as they are.
        rnnt_type, delay_penalty: the lattice ("regular", "modified", "constrained") and k2's
            delay penalty, as for :func:`rnnt.loss_and_grad`.
        sigma: undernormalisation constant (TDT and multi-blank).
        big_blank_durations: multi-blank: the big blanks' durations (ids blank-1-i).
        durations, duration_logits: TDT: the durations and the (B, T, U+1, D) duration head
            (``logits`` is then the token head); both or neither.

    Returns:
        One :class:`Alignment` per item, in batch order, computed in float64.

    Raises:
        ValueError: a bad shape, length, label or logit value, naming the argument and the value.
        TypeError: a dtype outside those above, naming the argument.
    """
    if (durations is None) != (duration_logits is None):
        raise ValueError("durations and duration_logits go together (TDT): give both or neither")
    values, *indices = (_as_numpy(a) for a in (logits, targets, logit_lengths, target_lengths))
    inputs: Any = _with_one_index_dtype(_lendable(values), indices)
    if duration_logits is not None:
        inputs = (*inputs, _lendable(_as_numpy(duration_logits)))
    items = _rnnt.align(
        inputs,
        blank=blank,
        fused_log_softmax=fused_log_softmax,
        rnnt_type=rnnt_type,
        delay_penalty=delay_penalty,
        sigma=sigma,
        big_blank_durations=None if big_blank_durations is None else list(big_blank_durations),
        durations=None if durations is None else list(durations),
    )
    return [Alignment._from_native(item) for item in items]


def plot_alignment(
    alignment: Alignment, ax: Axes | None = None, *, title: str | None = None
) -> Axes:
    """Draws the occupancy heatmap (log scale) of one item with its best path over it (TDT and
    multi-blank paths jump several frames at once: the picture shows the jumps).

    Frames t run across, label positions u up (tick: u and the id of the last label emitted);
    occupancies at or below 1e-6 share the darkest colour. Needs matplotlib.

    Args:
        alignment: one item of :func:`align`'s result.
        ax: the matplotlib axes to draw on; a new figure's when None.
        title: the axes' title; by default ln P and the best path's score.

    Returns:
        The axes drawn on.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plot_alignment needs matplotlib: pip install matplotlib") from error
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    frames, positions = alignment.occupancy.shape
    with np.errstate(divide="ignore"):
        log_occupancy = np.log10(alignment.occupancy)
    image = ax.imshow(
        np.maximum(log_occupancy, _LOG10_FLOOR).T,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=_LOG10_FLOOR,
        vmax=0.0,
        interpolation="nearest",
        extent=(-0.5, frames - 0.5, -0.5, positions - 0.5),
    )
    colour_bar = ax.figure.colorbar(image, ax=ax)
    colour_bar.set_label("occupancy γ (log10)")
    if len(alignment.path):
        # The nodes, then the final blank leaving the last node to the right edge.
        ts = [*alignment.path[:, 0].tolist(), frames - 0.5]
        us = [*alignment.path[:, 1].tolist(), positions - 1]
        ax.plot(ts, us, color="white", linewidth=3.5)
        ax.plot(ts, us, color="#e6192d", linewidth=2, marker="o", markersize=3)
    ax.set_xlabel("frame t")
    ax.set_ylabel("labels emitted u (last label id)")
    ticks = np.unique(np.linspace(0, positions - 1, min(positions, 12)).round().astype(int))
    ax.set_yticks(ticks)
    ax.set_yticklabels(
        ["0 (start)" if u == 0 else f"{u} ({alignment.labels[u - 1]})" for u in ticks]
    )
    if title is None:
        title = (
            f"ln P = {alignment.log_prob:.4f}, best path ln p = {alignment.score:.4f}"
            if len(alignment.path)
            else "impossible (P = 0): no path"
        )
    ax.set_title(title)
    return ax
