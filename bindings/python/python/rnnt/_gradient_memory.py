"""Memory for large gradients, kept from one loss call to the next (both front ends).

A fresh gradient of hundreds of MB costs about as much as the loss itself the first time it is
written: every page faults into the kernel, which zeroes it (on S3, 828 MB, about 80 ms against
75 ms for the loss). Training calls the loss every step with gradients of similar size, so the
front ends keep the memory of the last large gradient they returned and write the next one into
it, but only once nothing refers to the old gradient any more.

How that is known: the memory is a NumPy byte array held by this module alone; a gradient is a
view of it (``rnnt.loss_and_grad``) or a tensor made by ``torch.from_numpy`` on such a view
(``rnnt.rnnt_loss``), and a view keeps a reference to the array, as torch keeps one to the view,
for as long as any array, tensor or view shares the memory (as ``.grad``, in an optimizer,
anywhere). So the array's reference count says exactly whether a gradient made from it may still
be read, however it was passed on; memory still referenced is never reused.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["MEMORY", "GradientMemory", "reuse_gradient_memory"]

#: Gradients smaller than this are allocated fresh: the allocator reuses small blocks itself, and
#: few pages fault.
MIN_BYTES = 16 << 20

#: Alignment of a gradient's first element, in bytes (a cache line: the backend streams whole
#: lines, and a row that starts a line straddles one line fewer).
ALIGNMENT = 64

#: A new buffer is this much larger than the gradient that asked for it, so that batches of
#: slightly varying size share it.
GROWTH = 1.25


class GradientMemory:
    """One reusable buffer for gradients (see the module docs); thread-safe."""

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None
        self._lock = threading.Lock()
        self.enabled = True

    def take(self, nbytes: int) -> np.ndarray | None:
        """``nbytes`` uninitialised bytes, 64-byte aligned, from the kept buffer (replaced by a
        larger or free one when it is too small or still in use); None when reuse is disabled or
        ``nbytes`` is below :data:`MIN_BYTES` (the caller then allocates as usual)."""
        if not self.enabled or nbytes < MIN_BYTES:
            return None
        with self._lock:
            if not self._fits(nbytes):
                # The old buffer, if any, lives on while a gradient still refers to it.
                self._buffer = np.empty(int(nbytes * GROWTH) + ALIGNMENT, dtype=np.uint8)
            buffer = self._buffer
            assert buffer is not None
            start = -buffer.ctypes.data % ALIGNMENT
            return buffer[start : start + nbytes]

    def release(self) -> None:
        """Drops the kept buffer (gradients still using it keep their memory)."""
        with self._lock:
            self._buffer = None

    def _fits(self, nbytes: int) -> bool:
        """Whether the kept buffer holds ``nbytes`` and no gradient refers to it."""
        if self._buffer is None or self._buffer.nbytes < nbytes + ALIGNMENT:
            return False
        # The references: this object's attribute and getrefcount's argument.
        return sys.getrefcount(self._buffer) == 2


#: The memory both front ends share.
MEMORY = GradientMemory()


def reuse_gradient_memory(enabled: bool) -> None:
    """Whether ``rnnt.loss_and_grad`` and the torch backward write large gradients (16 MB and
    more) into the memory of an earlier gradient that nothing refers to any more (default:
    enabled).

    A fresh gradient of hundreds of MB costs about as much as the loss on its first write (page
    faults and the kernel zeroing each page); reusing the memory keeps a training step close to
    the loss's own time. The price is that the memory of one gradient (the largest recent one,
    plus a quarter) stays allocated between calls. Memory still referenced by a gradient (an
    array, ``.grad``, a view, an optimizer) is never reused. Disabling releases the kept memory.
    """
    MEMORY.enabled = enabled
    if not enabled:
        MEMORY.release()
