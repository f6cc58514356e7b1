#!/usr/bin/env bash
# Runs every test of the project from a fresh clone: formatting and lints, the Rust test suite,
# the golden cases through the command line, and the Python package's tests in a virtual
# environment this script creates (.venv: torch 2.11 + torchaudio 2.11, numpy, pytest, maturin).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Rust: format, lints, tests"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

echo "== Golden cases through the command line"
cargo run --release -p rnnt-cli -- check tests/golden
