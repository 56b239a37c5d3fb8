#!/bin/sh
# Regenerate the example reports (all three stages) and the register package from the
# inputs in this directory. Run from the repository root after `cargo build -p ccbft`.
set -eu
E=tools/dora/docs/example
B=${CCBFT:-target/debug/ccbft}
S=$(mktemp -d)/state
mkdir -p "$S"
cp "$E/config.json" "$S/"
"$B" dora set-cluster --state "$S" examples/three-clouds.toml >/dev/null
ID=$("$B" dora ingest --state "$S" "$E/events.jsonl" | sed -n 's/.*"incident": *"\([^"]*\)".*/\1/p' | head -n 1)
"$B" dora incident facts --state "$S" "$ID" "$E/facts.json" >/dev/null
"$B" dora incident classify --state "$S" "$ID" --at 2026-03-03T11:30:00Z >"$E/classification.json"
"$B" dora incident facts --state "$S" "$ID" "$E/facts-description.json" >/dev/null
"$B" dora report --state "$S" --incident "$ID" --stage initial --inputs "$E/inputs.json" >"$E/initial-notification.json"
"$B" dora report --state "$S" --incident "$ID" --stage intermediate --inputs "$E/inputs.json" \
  --html "$E/intermediate-report.html" >"$E/intermediate-report.json"
"$B" dora report --state "$S" --incident "$ID" --stage final --inputs "$E/inputs.json" \
  --html "$E/final-report.html" >"$E/final-report.json"
for r in initial-notification intermediate-report final-report; do
  "$B" dora validate-report "$E/$r.json"
done
NAME=5493001KJTIIGC8Y1R12.IND_DE_DORA010100_DORA_2026-03-31_20260415093000000
"$B" dora register --cluster examples/three-clouds.toml --config "$E/register-config.json" \
  --xbrl-csv "$E/$NAME.zip" --created 2026-04-15T09:30:00Z >/dev/null
"$B" dora register validate "$E/$NAME.zip"
