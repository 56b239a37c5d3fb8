#!/usr/bin/env bash
# Mutation testing of the protocol's safety rules (STYLE.md 16): every mutant of a rule that
# votes, locks, commits, validates a certificate, changes views or installs a new view must be
# killed by the simulator's adversary, a checker or a rule test, or be listed as equivalent
# with the reason in perf/results/mutants.md.
#
# Usage: perf/mutants.sh [extra cargo-mutants options]
#   e.g. perf/mutants.sh --shard 1/4   (runs can be split over sessions; each shard's
#   outcomes land in mutants.out/: caught.txt, missed.txt, timeout.txt, unviable.txt)
#   perf/mutants.sh --list             (the mutants in scope, without running them)
# Hours on 2 cores: run it in the background, in a worktree of its own (it mutates in place).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
# The safety rules, by function (the mutant's name ends "in Type::function").
rules='Global::(safe_to_vote|process_qc|process_tc|apply_commit_rule|commit|vote'
rules+='|on_timeout|local_timeout|certificates_valid|well_formed|syncable)'
rules+='|CertRules::[a-z_]+|SignerSet::admits'
rules+='|VoteKeeper::add|Votes::add|LocalShard::(check_prepared|try_commit|on_prepare'
rules+='|on_commit|view_change_is_valid|new_view_decision|on_new_view)'
rules+='|QuorumCollector::add|DomainAggregator::add|CheckpointVotes::add'
exec cargo mutants -p ccbft-core \
    --file core/src/hotstuff.rs --file core/src/pbft.rs --file core/src/certificates.rs \
    --file core/src/vote_aggregation.rs --file core/src/checkpoint.rs \
    --re " in ($rules)\$" --timeout 300 "$@" \
    -- --lib --test mutation_target --test pbft_rules
