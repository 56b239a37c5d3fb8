#!/usr/bin/env bash
# Group-commit benchmark matrix and 1 GiB recovery, as recorded in perf/results/storage.md.
# Usage: storage/scripts/bench.sh CCBFT_BINARY WORK_DIR [SECONDS]
# WORK_DIR must be on the disk under test; it is wiped first.
set -euo pipefail
BIN=${1:?ccbft binary}
WORK=${2:?work dir}
SECONDS_EACH=${3:-10}
rm -rf "$WORK" && mkdir -p "$WORK"
for size in 256 4096; do
  for appenders in 1 8 64 512; do
    "$BIN" log bench --dir "$WORK/gc-$appenders-$size" --appenders "$appenders" \
      --record-size "$size" --seconds "$SECONDS_EACH" --json > "$WORK/gc-$appenders-$size.json"
    rm -rf "$WORK/gc-$appenders-$size"
  done
done
# A 1 GiB log (4 KiB records, 512 appenders), then recovery: inspect reads it cold
# (the log was written with O_DIRECT, so it is not in the page cache), recover opens it.
"$BIN" log bench --dir "$WORK/big" --appenders 512 --record-size 4096 --seconds 600 \
  --max-bytes 1073741824 --json > "$WORK/big-bench.json"
"$BIN" log inspect "$WORK/big" --json > "$WORK/big-inspect.json"
"$BIN" log recover "$WORK/big" --json > "$WORK/big-recover.json"
