#!/usr/bin/env bash
# Runs each cargo-fuzz target of rust_core for a bounded time: scripts/fuzz.sh SECONDS
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target starts
# from the committed seeds in rust_core/fuzz/seeds/<target> (real model files, LIBFFM lines);
# the growing corpus and any crash artifacts stay untracked under rust_core/fuzz/.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/../rust_core"
for target in model_file model_fields libffm; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    echo "== fuzzing $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- -max_total_time="$seconds" -max_len=4096 2>&1 \
        | grep -E '^(#[0-9]+\s+DONE|Done|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' || true
    if compgen -G "fuzz/artifacts/$target/*" > /dev/null; then
        echo "!! $target: crash artifacts in rust_core/fuzz/artifacts/$target" >&2
        exit 1
    fi
done
echo "no crashes"
