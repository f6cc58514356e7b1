#!/usr/bin/env bash
# Runs every test of the project from a fresh clone: formatting and lints, the Rust test suite,
# the golden cases through the command line, and the Python package's tests in a virtual
# environment this script creates (.venv: torch 2.11 + torchaudio 2.11, numpy, pytest, ruff, mypy,
# transformers, ml_dtypes, hypothesis). The fuzz corpus replays in `cargo test` (crates/rnnt-fuzz);
# fuzzing itself (scripts/fuzz.sh), the sanitizer run (scripts/sanitize.sh) and the long soak
# (scripts/soak.py) are run by hand: docs/robustness.md.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Golden variant cases in step with ../shared/golden-variants"
if [ -d ../shared/golden-variants ]; then
  diff -r ../shared/golden-variants tests/golden-variants \
    || { echo "tests/golden-variants differs from ../shared/golden-variants: copy them again"; exit 1; }
fi
echo "== Golden cases in step with ../shared/golden"
if [ -d ../shared/golden ]; then
  diff -r ../shared/golden tests/golden \
    || { echo "tests/golden differs from ../shared/golden: copy the shared cases again"; exit 1; }
else
  echo "../shared/golden is not beside this clone: using tests/golden as it is"
fi

echo "== Python virtual environment (.venv)"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch and torchaudio must match: a newer torch with torchaudio 2.11 fails to import.
# transformers (for the comparison with its rnnt_loss) does not depend on torch: it keeps 2.11.
# ml_dtypes gives NumPy a bfloat16 dtype, for the NumPy front end's bfloat16 path.
.venv/bin/python -m pip install --quiet torch==2.11.0 torchaudio==2.11.0 numpy pytest ruff mypy \
  transformers ml_dtypes hypothesis

# torch's wheel ships NVRTC: with it the CUDA kernels are compiled for real by the rnnt-cuda tests
# (running them still needs a GPU; those tests print why they skip).
nvrtc=$(ls .venv/lib/python3*/site-packages/nvidia/cu13/lib/libnvrtc.so.13 2>/dev/null | head -n 1 || true)
if [ -n "$nvrtc" ]; then
  export RNNT_NVRTC_LIBRARY="$PWD/$nvrtc"
fi

echo "== Rust: format, lints, tests"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The end-to-end tests again on the narrower instruction sets (the kernels' own tests cover every
# set this CPU has in one process; these run the whole loss on one, chosen by RNNT_SIMD; a set
# the CPU lacks falls back to the detected one).
for simd in avx512 avx2 scalar; do
    RNNT_SIMD=$simd cargo test -p rnnt --test golden --test golden_half --test properties
done

echo "== Golden cases through the command line"
cargo run --release -p rnnt-cli -- check tests/golden
cargo run --release -p rnnt-cli -- check tests/golden-variants
cargo run --release -p rnnt-cli -- check tests/golden-variants-extra

echo "== The fused joiner through the command line (a small shape; it checks fused and unfused agree)"
cargo run --release -p rnnt-cli -- bench --joint 32 --shape 2,30,8,40 --repeat 1

echo "== Python package: lints, build into .venv, tests"
cargo fmt --manifest-path bindings/python/Cargo.toml --check
cargo clippy --manifest-path bindings/python/Cargo.toml --all-targets -- -D warnings
.venv/bin/python -m pip install --quiet --force-reinstall --no-deps ./bindings/python
(cd bindings/python && ../../.venv/bin/ruff check python tests ../../benchmarks ../../examples \
    ../../scripts/make_joint_cases.py \
  && ../../.venv/bin/ruff format --check python tests ../../benchmarks ../../examples \
    ../../scripts/make_joint_cases.py && ../../.venv/bin/mypy)
.venv/bin/python -m pytest -q bindings/python/tests
