#!/usr/bin/env bash
# Simulator speed: simulated seconds per wall-clock second for a 7-replica, 3-domain cluster,
# one worker thread, written to perf/results/simulator.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ccbft
bin=target/release/ccbft
seeds=${SEEDS:-200}
out=perf/results/simulator.md
run() { # label, extra args
    local start end json
    start=$(date +%s.%N)
    json=$("$bin" sim --seeds "$seeds" --replicas 7 --domains 3 --jobs 1 --json "${@:2}" 2>/dev/null)
    end=$(date +%s.%N)
    python3 - "$1" "$start" "$end" "$json" <<'PY'
import json, sys
label, start, end, data = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
wall = end - start
sim = data["simulated_seconds"]
print(f"| {label} | {data['runs']} | {sim:.0f} | {wall:.1f} | {sim / wall:.1f} | {data['events'] / wall:,.0f} | {len(data['violations'])} |")
PY
}
{
    echo "# Simulator speed"
    echo
    echo "Machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD)."
    echo "Command: \`perf/sim-speed.sh\` (SEEDS=$seeds, one worker thread, release build)."
    echo "Each run: 2 s of faults then 10 s to settle, 400 payments/s, SimKeys MAC signatures."
    echo
    echo "| workload | runs | simulated s | wall s | simulated s per wall s | events per wall s | violations |"
    echo "|---|---|---|---|---|---|---|"
    run "7 replicas, no Byzantine, no crashes (loss and partitions drawn per seed)" --byzantine 0 --crashes no
    run "7 replicas, 2 Byzantine, crashes per seed" --byzantine 2
} | tee "$out"
