#!/usr/bin/env bash
# Simulator speed: simulated seconds per wall-clock second for a 7-replica, 3-domain cluster,
# one worker thread, written to perf/results/simulator.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# CCBFT=path measures a binary built earlier (skips the build).
bin=${CCBFT:-target/release/ccbft}
[ -n "${CCBFT:-}" ] || cargo build --release -q -p ccbft
seeds=${SEEDS:-200}
out=perf/results/simulator.md
run() { # label, extra args
    # Wall time on a shared machine says little, so CPU time is measured too (children's
    # user + system time), and simulated seconds per CPU second is the figure to compare.
    python3 - "$bin" "$seeds" "$@" <<'PY'
import json, resource, subprocess, sys, time
binary, seeds, label, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
command = [binary, "sim", "--seeds", seeds, "--replicas", "7", "--domains", "3",
           "--jobs", "1", "--json", *extra]
start = time.monotonic()
out = subprocess.run(command, capture_output=True, text=True).stdout
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
data = json.loads(out)
sim = data["simulated_seconds"]
print(f"| {label} | {data['runs']} | {sim:.0f} | {wall:.1f} | {cpu:.1f} | {sim / cpu:.1f} "
      f"| {data['events'] / cpu:,.0f} | {len(data['violations'])} |")
PY
}
{
    echo "# Simulator speed"
    echo
    echo "Machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%dT%H:%MZ); commit ${COMMIT:-$(git rev-parse --short HEAD)}."
    echo "Command: \`perf/sim-speed.sh\` (SEEDS=$seeds, one worker thread, release build)."
    echo "Each run: 2 s of faults then 10 s to settle, 400 payments/s, SimKeys MAC signatures."
    echo
    echo "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (wall time is inflated by other work; CPU time is not)."
    echo
    echo "| workload | runs | simulated s | wall s | CPU s | simulated s per CPU s | events per CPU s | violations |"
    echo "|---|---|---|---|---|---|---|---|"
    run "7 replicas, no Byzantine, no crashes (loss and partitions drawn per seed)" --byzantine 0 --crashes no
    run "7 replicas, 2 Byzantine, crashes per seed" --byzantine 2
    run "7 replicas, 1 Byzantine, crashes per seed, one disk lost per run" --byzantine 1 --disk-losses yes
    run "7 replicas, 2 Byzantine, crashes per seed, opaque transactions (0-95 data bytes)" --byzantine 2 --transactions opaque
} | tee "$out"
