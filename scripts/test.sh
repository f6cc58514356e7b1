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

echo "== Python package: lints, build into a fresh virtual environment, tests"
cargo fmt --manifest-path bindings/python/Cargo.toml --check
cargo clippy --manifest-path bindings/python/Cargo.toml --all-targets -- -D warnings
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch and torchaudio must match: a newer torch with torchaudio 2.11 fails to import.
.venv/bin/python -m pip install --quiet torch==2.11.0 torchaudio==2.11.0 numpy pytest ruff mypy
.venv/bin/python -m pip install --quiet --force-reinstall --no-deps ./bindings/python
(cd bindings/python && ../../.venv/bin/ruff check python tests bench ../../examples \
  && ../../.venv/bin/ruff format --check python tests bench ../../examples && ../../.venv/bin/mypy)
.venv/bin/python -m pytest -q bindings/python/tests
