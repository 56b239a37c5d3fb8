#!/usr/bin/env bash
# Mutation testing of the protocol rules (STYLE.md 16): every mutant of a safety rule must be
# killed by the simulator's adversary, a checker or a rule test, or be listed as equivalent
# with the reason in perf/results/mutants.md.
#
# Usage: perf/mutants.sh [extra cargo-mutants options]     (hours on 2 cores; run it in the
# background: it writes mutants.out/ as it goes, caught.txt, missed.txt, timeout.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
# Functions that vote, lock, commit, validate certificates, change views or install new views.
rules='safe_to_vote|process_qc|process_tc|apply_commit_rule|commit|vote|on_timeout|local_timeout'
rules+='|on_piece|on_proposal|well_formed|certificates_valid|syncable|on_block_response'
rules+='|check_prepared|try_commit|adopt_committed|on_pre_prepare|on_prepare|on_commit'
rules+='|on_view_change|view_change_is_valid|new_view_decision|on_new_view|cut_batches'
rules+='|admits|qc|tc|lc|prepared|checkpoint|vote_piece|add|on_stable_checkpoint|on_batch'
exec cargo mutants -p ccbft-core \
    --file core/src/hotstuff.rs --file core/src/pbft.rs --file core/src/certificates.rs \
    --file core/src/vote_aggregation.rs --file core/src/checkpoint.rs \
    --file core/src/replica.rs --file 'core/src/replica/*.rs' \
    --re "\\b($rules)\\b" --timeout 300 "$@" \
    -- --lib --test mutation_target --test pbft_rules
