"""An independent float64 reference of every transducer variant (definitions:
tests/golden-variants/README.md), written as plainly as possible: each item's lattice is built as
an explicit list of arcs, α and β run over it in topological order, and the gradients come from the
arc occupancies. ``brute_force_loss`` enumerates every path of the same arc list by depth-first
search instead (no dynamic programming), for tiny shapes.

Per item, a node is (t, u); ``END`` is the single final node. An arc carries its weight (log
domain, σ and the delay bonus included) and the entries it reads: (head, t, u, symbol) with head
0 the token logits and 1 the duration logits, and whether it is a label arc (FastEmit scales the
token-head reads of label arcs by 1 + λ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

END = (-1, -1)

Node = tuple[int, int]
Read = tuple[int, int, int, int]
Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Variant:
    """The lattice topology and its parameters (the defaults: the standard RNN-T loss)."""

    rnnt_type: str = "regular"
    terminal_blank: bool = False
    delay_penalty: float = 0.0
    sigma: float = 0.0
    big_blank_durations: tuple[int, ...] = ()
    durations: tuple[int, ...] | None = None
    fastemit_lambda: float = 0.0


@dataclass
class Arc:
    src: Node
    dst: Node
    weight: float
    reads: list[Read]
    label: bool


def log_softmax(x: Array) -> Array:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@dataclass
class Item:
    """One item's log-probabilities cut to its lengths, and its arcs."""

    lp: Array  # (T, U+1, V) token log-probabilities (or free log-probs)
    ld: Array | None  # (T, U+1, D) duration log-probabilities
    arcs: list[Arc] = field(default_factory=list)


def item_arcs(lp: Array, ld: Array | None, labels: Array, blank: int, v: Variant) -> list[Arc]:
    """The arcs of one item's lattice (lp, ld already cut to T_b and U_b + 1)."""
    frames, positions = lp.shape[0], lp.shape[1]
    big_u = positions - 1
    arcs: list[Arc] = []

    def bonus(t: int) -> float:
        return v.delay_penalty * ((frames - 1) / 2 - t)

    def token(t: int, u: int, k: int) -> tuple[float, Read]:
        return float(lp[t, u, k]) - v.sigma, (0, t, u, k)

    if v.durations is not None:
        assert ld is not None
        for t in range(frames):
            for u in range(positions):
                for i, d in enumerate(v.durations):
                    dur = float(ld[t, u, i])
                    if d > 0:
                        w, r = token(t, u, blank)
                        reads = [r, (1, t, u, i)]
                        if t + d < frames:
                            arcs.append(Arc((t, u), (t + d, u), w + dur, reads, False))
                        elif t + d == frames and u == big_u:
                            arcs.append(Arc((t, u), END, w + dur, reads, False))
                    if u < big_u and t + d < frames:
                        w, r = token(t, u, int(labels[u]))
                        arcs.append(Arc((t, u), (t + d, u + 1), w + dur, [r, (1, t, u, i)], True))
        return arcs
    if v.rnnt_type == "regular":
        blanks = [(blank, 1)] + [(blank - 1 - i, d) for i, d in enumerate(v.big_blank_durations)]
        for t in range(frames):
            for u in range(positions):
                for symbol, d in blanks:
                    w, r = token(t, u, symbol)
                    if t + d < frames:
                        arcs.append(Arc((t, u), (t + d, u), w, [r], False))
                    elif t + d == frames and u == big_u:
                        arcs.append(Arc((t, u), END, w, [r], False))
                if u < big_u:
                    w, r = token(t, u, int(labels[u]))
                    arcs.append(Arc((t, u), (t, u + 1), w + bonus(t), [r], True))
        return arcs
    # One symbol per frame: frames 0..last-1 each consume one arc, the path ends at (last, U);
    # with terminal_blank the frame T-1 is the final blank instead.
    last = frames - 1 if v.terminal_blank else frames
    for t in range(last):
        for u in range(positions):
            w, r = token(t, u, blank)
            arcs.append(Arc((t, u), (t + 1, u), w, [r], False))
            if u < big_u:
                w, r = token(t, u, int(labels[u]))
                reads = [r]
                if v.rnnt_type == "constrained":
                    wb, rb = token(t, u + 1, blank)
                    w, reads = w + wb + v.sigma, [r, rb]  # σ once per arc
                arcs.append(Arc((t, u), (t + 1, u + 1), w + bonus(t), reads, True))
    if v.terminal_blank:
        w, r = token(frames - 1, big_u, blank)
        arcs.append(Arc((frames - 1, big_u), END, w, [r], False))
    else:
        arcs.append(Arc((frames, big_u), END, 0.0, [], False))
    return arcs


def _order(node: Node) -> tuple[int, int]:
    return (1 << 30, 0) if node == END else node


def alpha_beta(arcs: list[Arc]) -> tuple[dict[Node, float], dict[Node, float]]:
    """Forward and backward log scores of every node (arcs go forward in (t, u) order)."""
    arcs = sorted(arcs, key=lambda a: _order(a.src))
    alpha: dict[Node, float] = {(0, 0): 0.0}
    for arc in arcs:
        if arc.src in alpha:
            alpha[arc.dst] = np.logaddexp(alpha.get(arc.dst, -np.inf), alpha[arc.src] + arc.weight)
    beta: dict[Node, float] = {END: 0.0}
    for arc in sorted(arcs, key=lambda a: _order(a.dst), reverse=True):
        if arc.dst in beta:
            beta[arc.src] = np.logaddexp(beta.get(arc.src, -np.inf), beta[arc.dst] + arc.weight)
    return alpha, beta


def item_loss_and_grads(
    logits: Array,
    durations_logits: Array | None,
    labels: Array,
    blank: int,
    v: Variant,
    fused: bool = True,
) -> tuple[float, Array, Array | None]:
    """loss_b and its gradients for one item's (T_b, U_b+1, ·) heads (float64)."""
    lp = log_softmax(logits) if fused else np.asarray(logits, dtype=np.float64)
    ld = None if durations_logits is None else log_softmax(durations_logits)
    arcs = item_arcs(lp, ld, labels, blank, v)
    alpha, beta = alpha_beta(arcs)
    log_p = alpha.get(END, -np.inf)
    counts = [np.zeros(lp.shape), None if ld is None else np.zeros(ld.shape)]
    if log_p == -np.inf:
        return np.inf, counts[0], counts[1]
    for arc in arcs:
        if arc.src not in alpha or arc.dst not in beta:
            continue
        occ = np.exp(alpha[arc.src] + arc.weight + beta[arc.dst] - log_p)
        for head, t, u, k in arc.reads:
            scale = 1.0 + v.fastemit_lambda if arc.label and head == 0 else 1.0
            counts[head][t, u, k] += occ * scale  # type: ignore[index]
    grads: list[Array | None] = []
    for head, (c, logp) in enumerate(zip(counts, (lp, ld))):
        if c is None or logp is None:
            grads.append(None)
        elif fused or head == 1:
            grads.append(c.sum(axis=-1, keepdims=True) * np.exp(logp) - c)
        else:
            grads.append(-c)
    return -float(log_p), grads[0], grads[1]  # type: ignore[return-value]


def batch(
    logits: Array,
    targets: Array,
    logit_lengths: Array,
    target_lengths: Array,
    blank: int,
    v: Variant,
    duration_logits: Array | None = None,
    fused: bool = True,
) -> tuple[Array, Array, Array | None]:
    """Per-item losses (B,) and d(Σ_b loss_b)/d heads of padded (B, T, U+1, ·) inputs."""
    logits = np.asarray(logits, dtype=np.float64)
    losses = np.zeros(logits.shape[0])
    grad = np.zeros(logits.shape)
    dgrad = None if duration_logits is None else np.zeros(duration_logits.shape)
    blank = blank % logits.shape[-1]
    for b in range(logits.shape[0]):
        t, u = int(logit_lengths[b]), int(target_lengths[b])
        dur = None if duration_logits is None else duration_logits[b, :t, : u + 1]
        loss, g, dg = item_loss_and_grads(
            logits[b, :t, : u + 1], dur, targets[b, :u], blank, v, fused
        )
        losses[b] = loss
        grad[b, :t, : u + 1] = g
        if dgrad is not None:
            dgrad[b, :t, : u + 1] = dg
    return losses, grad, dgrad


def brute_force_loss(
    logits: Array,
    labels: Array,
    blank: int,
    v: Variant,
    duration_logits: Array | None = None,
) -> float:
    """One item's loss by enumerating every path from (0, 0) to END (tiny shapes only)."""
    lp = log_softmax(logits)
    ld = None if duration_logits is None else log_softmax(duration_logits)
    outgoing: dict[Node, list[Arc]] = {}
    for arc in item_arcs(lp, ld, labels, blank % lp.shape[-1], v):
        outgoing.setdefault(arc.src, []).append(arc)
    scores: list[float] = []

    def walk(node: Node, score: float) -> None:
        if node == END:
            scores.append(score)
            return
        for arc in outgoing.get(node, []):
            walk(arc.dst, score + arc.weight)

    walk((0, 0), 0.0)
    if not scores:
        return float(np.inf)
    return -float(np.logaddexp.reduce(np.asarray(scores)))
