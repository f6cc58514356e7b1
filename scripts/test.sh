#!/usr/bin/env bash
# Runs every test of the project from a fresh clone: formatting and lints, the Rust test suite,
# the golden cases through the command line, and the Python package's tests in a virtual
# environment this script creates (.venv: torch 2.11 + torchaudio 2.11, numpy, pytest, maturin).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Golden cases in step with ../shared/golden"
if [ -d ../shared/golden ]; then
  diff -r ../shared/golden tests/golden \
    || { echo "tests/golden differs from ../shared/golden: copy the shared cases again"; exit 1; }
else
  echo "../shared/golden is not beside this clone: using tests/golden as it is"
fi

echo "== Rust: format, lints, tests"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

echo "== Golden cases through the command line"
cargo run --release -p rnnt-cli -- check tests/golden
