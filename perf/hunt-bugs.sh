#!/usr/bin/env bash
# Hunt every planted bug: run the simulator (shapes, faults and strategies drawn per seed) in
# chunks of CHUNK seeds until the bug shows as a violation, at most LIMIT seeds (the issue's
# bound is 500). Prints one line per bug: the first catching seed, or MISSED.
# Usage: perf/hunt-bugs.sh [bug ...]   (default: every bug of `ccbft sim --list-bugs`)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${LIMIT:-500}
CHUNK=${CHUNK:-25}
bin=target/release/ccbft
[ -x "$bin" ] || cargo build --release -p ccbft --locked
bugs=("$@")
[ ${#bugs[@]} -gt 0 ] || mapfile -t bugs < <("$bin" sim --list-bugs | awk '{print $1}')
for bug in "${bugs[@]}"; do
    start=0 found=""
    while [ "$start" -lt "$LIMIT" ] && [ -z "$found" ]; do
        out=$("$bin" sim --plant-bug "$bug" --start "$start" --seeds "$CHUNK" 2>&1 || true)
        found=$(grep -oE '^  seed [0-9]+: [a-z_ -]+' <<<"$out" | head -1 || true)
        start=$((start + CHUNK))
    done
    if [ -n "$found" ]; then
        echo "$bug: caught at ${found#  }"
    else
        echo "$bug: MISSED in $LIMIT seeds"
    fi
done
