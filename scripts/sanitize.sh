#!/usr/bin/env bash
# The core crate's tests under AddressSanitizer (nightly; the standard library rebuilt with ASan
# by -Zbuild-std, so its allocations are checked too): no invalid read or write, no leak.
#
# The unit tests run every vector kernel on every instruction set the CPU has (they loop over
# Isa::available()), whole rows and masked tails. The integration tests then run once per
# instruction set forced with RNNT_SIMD (scalar, avx2, avx512; a set the CPU lacks is skipped):
# the golden cases through every path, the random ragged batches of every dtype (V up to 32,
# so tails of every length), the item-by-item path (one thread, B >= 2), the streamed stores of
# a 72 MB gradient (tests/streamed.rs), the alignments and every bad input.
# Usage: scripts/sanitize.sh [extra cargo test arguments]. Takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1"
# Its own target folder: instrumented artefacts never mix with the ordinary ones.
export CARGO_TARGET_DIR=target/asan
asan_test() {
  cargo +nightly test -Zbuild-std --target "$host" -p rnnt "$@"
}

echo "== ASan: unit tests (every kernel on every instruction set this CPU has)"
asan_test --lib "$@"

for isa in scalar avx2 avx512; do
  case "$isa" in
    avx2) flag=avx2 ;;
    avx512) flag=avx512f ;;
    *) flag= ;;
  esac
  if [ -n "$flag" ] && ! grep -qw "$flag" /proc/cpuinfo; then
    echo "== ASan: $isa skipped (this CPU lacks $flag)"
    continue
  fi
  echo "== ASan: integration tests, RNNT_SIMD=$isa"
  RNNT_SIMD=$isa asan_test --test '*' "$@"
done
