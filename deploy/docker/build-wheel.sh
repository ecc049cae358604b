#!/usr/bin/env bash
# Build bidscore's manylinux_2_28 wheel: the same steps the container image's builder stage
# runs, and what CI runs (tests/deploy/test_wheel.py) where no container engine exists.
#
#   deploy/docker/build-wheel.sh OUT_DIR
#
# maturin links with zig (`--zig`, the ziglang package from PyPI), so the wheel targets glibc
# 2.28 whatever the build machine's glibc is; `auditwheel`-style checks are maturin's own.
set -euo pipefail
out="${1:?usage: build-wheel.sh OUT_DIR}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"
if [ -n "${BUILD_VENV:-}" ]; then
    tools="$BUILD_VENV"
else  # a throwaway build venv (maturin and zig: 465 MB), deleted when the build ends
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    tools="$scratch/build-venv"
fi

"$python" -m venv "$tools"
"$tools/bin/pip" install -q "maturin>=1.9,<2" ziglang
cd "$root"
# maturin finds zig as `python3 -m ziglang`: the build venv's python must come first.
PATH="$tools/bin:$PATH" "$tools/bin/maturin" build --release --zig --compatibility manylinux_2_28 --out "$out" \
    --target-dir "${CARGO_TARGET_DIR:-$root/target/wheel}"
ls "$out"/bidscore-*.whl
