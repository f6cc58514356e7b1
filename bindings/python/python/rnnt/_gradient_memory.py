"""Memory for large CPU gradients, kept from one loss call to the next.

A fresh gradient tensor of hundreds of MB costs about as much as the loss itself the first time it
is written: every page faults into the kernel, which zeroes it (on S3, 828 MB, about 80 ms against
90 ms for the loss). Training calls the loss every step with gradients of similar size, so the
torch front end keeps the memory of the last large gradient it returned and writes the next one
into it, but only once nothing refers to the old gradient any more.

How that is known: the memory is a NumPy byte array held by this module alone; a gradient is a
tensor made by ``torch.from_numpy`` on a slice of it, and torch keeps a reference to that slice,
hence to the array, for as long as any tensor or view shares the storage (as ``.grad``, in the
optimizer, anywhere). So the array's reference count says exactly whether a gradient made from it
may still be read, however it was passed on; memory still referenced is never reused.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch

__all__ = ["GradientMemory"]

#: Gradients smaller than this come from ``torch.empty_like``: the allocator reuses small blocks
#: itself, and few pages fault.
MIN_BYTES = 16 << 20

#: Alignment of a gradient's first element, in bytes (a cache line: the backend streams whole
#: lines).
ALIGNMENT = 64

#: A new buffer is this much larger than the gradient that asked for it, so that batches of
#: slightly varying size share it.
GROWTH = 1.25


class GradientMemory:
    """One reusable buffer for CPU gradients (see the module docs); thread-safe."""

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None
        self._lock = threading.Lock()
        self.enabled = True

    def empty_like(self, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``like``'s shape and dtype, in the kept buffer
        when it is large enough, free and reuse is enabled."""
        nbytes = like.numel() * like.element_size()
        if not self.enabled or nbytes < MIN_BYTES:
            return torch.empty_like(like, memory_format=torch.contiguous_format)
        with self._lock:
            if not self._fits(nbytes):
                # The old buffer, if any, lives on while a gradient still refers to it.
                self._buffer = np.empty(int(nbytes * GROWTH) + ALIGNMENT, dtype=np.uint8)
            buffer = self._buffer
            assert buffer is not None
            start = -buffer.ctypes.data % ALIGNMENT
            raw = torch.from_numpy(buffer[start : start + nbytes])
        return raw.view(like.dtype).view(like.shape)

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
