#!/usr/bin/env python3
"""The long soak: ``python scripts/soak.py [CALLS]`` (default 10,000) runs the loss CALLS times on
a mid-size batch, alternating the NumPy and torch front ends, checks every result, samples the
resident memory and prints the figures that docs/robustness.md reports. The rnnt package must be
installed in the running Python; the loop is that of bindings/python/tests/test_soak.py, which
CI runs with fewer calls."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bindings" / "python" / "tests"))

from test_soak import SOAK_SHAPE, soak


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(f"soak: {calls} calls on (B, T, U+1, V) = {SOAK_SHAPE} float32, {platform.machine()}")
    figures = soak(calls, report=print)
    mib = {k: v / 2**20 for k, v in figures.items() if k.startswith("rss")}
    print(
        f"{calls} calls in {figures['seconds']:.0f} s; RSS after warm-up "
        f"{mib['rss_after_warm_up']:.1f} MiB, at the end {mib['rss_end']:.1f} MiB, largest "
        f"{mib['rss_largest']:.1f} MiB (growth "
        f"{mib['rss_largest'] - mib['rss_after_warm_up']:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
