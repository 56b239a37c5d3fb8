//! Signed state checkpoints, truncation and state transfer in the deterministic simulator.
//! Every failure names its seed; `ccbft sim --seed S --trace` replays the random ones.

use ccbft_core::sim::{self, RunReport, SimOptions, CHECKPOINT_INTERVAL_BLOCKS};

mod common;
use common::assert_no_violation;

/// Four replicas in one domain; replica 3 is down from 0.2 s to 2.2 s of a 3 s fault phase
/// while 200 payments per second keep coming, so the others pass several checkpoints and
/// truncate what it would need to catch up block by block.
fn long_crash() -> SimOptions {
    SimOptions {
        replicas: Some(4),
        domains: Some(1),
        shards: Some(1),
        byzantine: Some(0),
        crashes: Some(false),
        disk_losses: Some(false),
        fault_ms: 3_000,
        stable_ms: 6_000,
        tx_per_s: 200,
        crash: Some((3, 200, 2_200)),
        ..SimOptions::default()
    }
}

fn assert_clean(report: &RunReport) {
    assert_no_violation(report);
    assert_eq!(report.lost_txs, 0, "seed {}", report.seed);
}

/// Seeds whose drawn shape keeps the global tier busy while replica 3 is down (in others,
/// e.g. seed 3, the chain orders many batches per block and never gets far enough ahead).
const SEEDS: [u64; 5] = [1, 2, 4, 7, 8];

#[test]
fn lagging_replica_catches_up_by_state_transfer() {
    for seed in SEEDS {
        let report = sim::run(seed, &long_crash()).unwrap();
        assert_clean(&report);
        assert!(
            report.stable_checkpoint_height >= 3 * CHECKPOINT_INTERVAL_BLOCKS,
            "seed {seed}: checkpoints reached {} only",
            report.stable_checkpoint_height
        );
        assert!(
            report.snapshots_installed >= 1,
            "seed {seed}: the restarted replica did not install a snapshot"
        );
        // It executed new blocks after the snapshot, with the same state roots as the
        // others (the state checker compares every height).
        assert!(
            report.executed_after_install > 0,
            "seed {seed}: nothing executed after the install"
        );
        // Truncation keeps memory bounded: blocks and the executed log held span about two
        // checkpoint intervals (plus blocks not yet committed or executed), not the chain.
        let (_, blocks, log) = report.retained_max;
        let bound = (4 * CHECKPOINT_INTERVAL_BLOCKS) as usize;
        assert!(
            report.committed_blocks > (bound as u64) + 2 * CHECKPOINT_INTERVAL_BLOCKS,
            "seed {seed}: run too short ({} blocks) to show truncation",
            report.committed_blocks
        );
        assert!(
            blocks <= bound && log <= bound,
            "seed {seed}: held {blocks} blocks, {log} log entries"
        );
    }
}

#[test]
fn corrupt_snapshot_chunks_are_rejected_and_another_peer_asked() {
    // Seed 4 with the corrupting peer catches up without a transfer (it restarts early in
    // a slow stretch of the chain), so it is left out here.
    for seed in [1, 2, 7, 8] {
        let options = SimOptions {
            // Replica 0 signs the checkpoint, so it is the first peer asked.
            corrupt_snapshots: Some(0),
            ..long_crash()
        };
        let report = sim::run(seed, &options).unwrap();
        assert_clean(&report);
        assert!(report.snapshots_installed >= 1, "seed {seed}: no install");
        assert!(
            report.snapshot_chunks_rejected >= 1,
            "seed {seed}: the corrupt chunk was not rejected"
        );
        assert!(report.executed_after_install > 0, "seed {seed}");
    }
}

/// Seven replicas over three domains with two shards: lanes of other domains resume after
/// the checkpoint too.
#[test]
fn state_transfer_across_domains() {
    for seed in [2, 3, 4, 6] {
        let options = SimOptions {
            replicas: Some(7),
            domains: Some(3),
            shards: Some(2),
            crash: Some((5, 200, 2_200)),
            ..long_crash()
        };
        let report = sim::run(seed, &options).unwrap();
        assert_clean(&report);
        assert!(report.snapshots_installed >= 1, "seed {seed}: no install");
        assert!(report.executed_after_install > 0, "seed {seed}");
    }
}

/// Replay helper: `SEED=7 [CORRUPT=1] [WIDE=1] cargo test -p ccbft-core --test checkpoints
/// replay_trace -- --ignored --nocapture` prints the restarted replica's trace and figures.
#[test]
#[ignore]
fn replay_trace() {
    let mut options = SimOptions {
        trace: true,
        ..long_crash()
    };
    if std::env::var("CORRUPT").is_ok() {
        options.corrupt_snapshots = Some(0);
    }
    if std::env::var("WIDE").is_ok() {
        options.replicas = Some(7);
        options.domains = Some(3);
        options.shards = Some(2);
        options.crash = Some((5, 200, 2_200));
    }
    let seed = std::env::var("SEED").map_or(1, |s| s.parse().unwrap());
    let report = sim::run(seed, &options).unwrap();
    println!("{}", report.shape);
    for line in &report.trace {
        if line.contains("r3 ")
            || line.contains("r5 ")
            || line.contains("end")
            || line.contains("heal")
        {
            println!("{line}");
        }
    }
    println!(
        "blocks {} stable {} installed {} after {} retained {:?} violations {:?}",
        report.committed_blocks,
        report.stable_checkpoint_height,
        report.snapshots_installed,
        report.executed_after_install,
        report.retained_max,
        report.violations
    );
}
