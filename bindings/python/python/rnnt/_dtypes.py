"""Dtype rules shared by the NumPy and torch front ends."""

from __future__ import annotations

from collections.abc import Sequence

INDEX_DTYPES = ("int32", "int64")
"""Integer dtypes accepted for targets and lengths."""


def common_index_dtype(dtypes: Sequence[str]) -> str | None:
    """The dtype to convert targets and lengths to, or None to pass them as they are.

    The native loss wants one integer dtype for all three; mixed int32 / int64 arrays (small next
    to the logits) are converted to int64. Any other dtype is passed on unchanged so that the native
    module raises a TypeError naming the argument.
    """
    if len(set(dtypes)) > 1 and all(dtype in INDEX_DTYPES for dtype in dtypes):
        return "int64"
    return None
