//! What the simulation test targets share: seeds on two threads (the CI machine has two
//! cores) and the clean-run assertion. Every failure names its seed; `ccbft sim --seed S
//! --trace` replays it.

#![allow(dead_code)] // each test target uses its own part

use ccbft_core::client::SignedTransfer;
use ccbft_core::crypto::{Signer, SimKeys, Tag, Verifier};
use ccbft_core::messages::{prepare_payload, Lane, LocalMessage, Message, Payload};
use ccbft_core::replica::{Action, Input, ReceiptStatus, Replica, ReplicaConfig};
use ccbft_core::sim::{self, sim_clients, RunReport, SimOptions, ACCOUNTS, OPENING_BALANCE};
use ccbft_core::topology::{ReplicaId, Topology};
use ccbft_core::vote_pattern::VotePattern;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether `run_seeds` stops at the first run with a violation (a planted-bug hunt), or
/// with a violation its description of which passes the test.
#[derive(Clone, Copy)]
pub enum Until {
    AllSeeds,
    FirstViolation,
    FirstMatching(fn(&str) -> bool),
}

impl Until {
    fn stops_at(&self, report: &RunReport) -> bool {
        match self {
            Until::AllSeeds => false,
            Until::FirstViolation => !report.violations.is_empty(),
            Until::FirstMatching(matches) => report.violations.iter().any(|v| matches(&v.what)),
        }
    }
}

/// Runs seeds `start..start + count`, interleaved over two threads.
pub fn run_seeds(start: u64, count: u64, options: &SimOptions, until: Until) -> Vec<RunReport> {
    let found = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|half| {
                let found = &found;
                scope.spawn(move || {
                    let mut reports = Vec::new();
                    for seed in (start..start + count).filter(|s| s % 2 == half) {
                        if found.load(Ordering::Relaxed) {
                            break;
                        }
                        let report = sim::run(seed, options).unwrap();
                        if until.stops_at(&report) {
                            found.store(true, Ordering::Relaxed);
                        }
                        reports.push(report);
                    }
                    reports
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// No run violated an invariant and every run committed transactions.
pub fn assert_clean(reports: &[RunReport]) {
    for report in reports {
        assert_no_violation(report);
        assert!(
            report.committed_txs > 0,
            "seed {} ({}) committed nothing",
            report.seed,
            report.shape
        );
    }
}

pub fn assert_no_violation(report: &RunReport) {
    assert!(
        report.violations.is_empty(),
        "seed {} ({}) violated: {:?}",
        report.seed,
        report.shape,
        report.violations
    );
}

/// Replica `me` of four in one domain and one shard, with the simulator's clients: for tests
/// that drive one replica by hand.
pub fn four_replica_config(keys: &SimKeys, me: ReplicaId) -> ReplicaConfig {
    ReplicaConfig {
        topology: Arc::new(Topology::synthetic(4, 1, 1).unwrap()),
        me,
        genesis_accounts: (0..ACCOUNTS).map(|a| (a, OPENING_BALANCE)).collect(),
        clients: Arc::new(sim_clients(keys)),
        request_timeout_ticks: 150,
        global_timeout_min_ticks: 400,
        global_timeout_max_ticks: 3_000,
        ticks_per_ms: 1,
        rotation_rounds: 3,
        vote_pattern: VotePattern::AllToAll,
        checkpoint_interval_blocks: 8,
    }
}

/// The statuses of the receipts among `actions`, in order.
pub fn receipts(actions: &[Action]) -> Vec<ReceiptStatus> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Receipt { status, .. } => Some(*status),
            _ => None,
        })
        .collect()
}

/// Steps `input`, and answers every signature check as the host would.
pub fn step_verified(replica: &mut Replica, keys: &SimKeys, input: Input) -> Vec<Action> {
    let mut inputs = vec![input];
    let mut out = Vec::new();
    while let Some(input) = inputs.pop() {
        for action in replica.step(input, &keys.signer(replica.id())) {
            match action {
                Action::Verify { token, checks } => inputs.push(Input::Verified {
                    token,
                    failed: keys.failed(&checks),
                }),
                other => out.push(other),
            }
        }
    }
    out
}

/// The one lane of [`four_replica_config`].
pub const LANE: Lane = Lane {
    domain: 0,
    shard: 0,
};

/// Replica 0's pre-prepare of `payload` at view 0, sequence 1 of [`LANE`].
pub fn pre_prepare(keys: &SimKeys, payload: Vec<SignedTransfer>) -> Message {
    pre_prepare_of(keys, Payload::from_transfers(&payload))
}

/// [`pre_prepare`] of a payload of either kind.
pub fn pre_prepare_of(keys: &SimKeys, payload: Payload) -> Message {
    let digest = payload.digest();
    let signature = keys
        .signer(0)
        .sign(Tag::LocalPrepare, &prepare_payload(LANE, 0, 1, &digest));
    Message::Local(LocalMessage::PrePrepare {
        lane: LANE,
        view: 0,
        seq: 1,
        digest,
        payload,
        from: 0,
        signature,
    })
}
