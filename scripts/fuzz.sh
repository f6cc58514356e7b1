#!/usr/bin/env bash
# Fuzzes the loss, the alignment and the .npz reader: scripts/fuzz.sh SECONDS [TARGET...]
# runs each target (default: loss align npz) for SECONDS, one after the other, under
# AddressSanitizer with debug assertions, starting from and adding to the corpus in
# fuzz/corpus/TARGET. A finding stops the run and leaves its input in fuzz/artifacts/TARGET;
# `cargo test -p rnnt-fuzz` replays the corpus through the same checks (crates/rnnt-fuzz).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). After a long run,
# `cargo +nightly fuzz cmin TARGET` shrinks the corpus to the inputs that add coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(loss align npz)
fi
for target in "${targets[@]}"; do
  case "$target" in
    npz) max_len=8192 ;;  # room for small real .npz files
    *) max_len=4096 ;;    # a whole (3, 5, 5, 40) batch, one byte a value
  esac
  echo "== fuzz $target for ${seconds}s"
  cargo +nightly fuzz run --debug-assertions "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1
done
