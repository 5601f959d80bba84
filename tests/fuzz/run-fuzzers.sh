#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the protocol fuzz targets with clang (libFuzzer + ASan + UBSan) in
# their own build directory and runs each for a bounded time from the seed
# corpus in tests/fuzz/corpus/<target>/. Fails on any crash, leak, sanitizer
# report or build error.
#   tests/fuzz/run-fuzzers.sh [SECONDS_PER_TARGET (60)] [BUILD_DIR (build-fuzz)]
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
build=${2:-$src/build-fuzz}
targets="fuzz-proto-device fuzz-proto-launcher fuzz-virtqueue fuzz-plugin-proto fuzz-config"

if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" "$src" -Dfuzz=true -Dtests=false
fi
for t in $targets; do
        ninja -C "$build" -j2 "tests/fuzz/$t"
done

work=$(mktemp -d)
for t in $targets; do
        mkdir -p "$work/$t"
        echo "== $t: ${seconds}s"
        # New inputs go to the scratch directory, not into the tree; a crash
        # makes the fuzzer exit non-zero and leaves its input in $work.
        if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
                -artifact_prefix="$work/$t-" -print_final_stats=1 \
                "$work/$t" "$src/tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
                tail -n 60 "$work/$t.log"
                echo "FAIL: $t; log and crash input kept in $work"
                exit 1
        fi
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|Done )' "$work/$t.log" || tail -n 3 "$work/$t.log"
done
rm -rf "$work"
echo "all fuzz targets ran clean"
