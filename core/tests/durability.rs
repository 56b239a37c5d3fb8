//! Restarts from persisted records only: every crash loses what was not yet durable (and
//! may tear the record being written), every restart rebuilds the replica with
//! `Replica::restore`, and the checkers ask each restored replica whether it knows every
//! vote it sent. Each planted durability bug is caught by the simulator within 500 seeds.
//! Some runs lose a whole disk: that replica rejoins ([`ccbft_core::replica::Replica::rejoin`]).

use ccbft_core::sim::SimOptions;

mod common;
use common::{assert_clean, run_seeds, Until};

fn crashing(replicas: u32, domains: u32) -> SimOptions {
    SimOptions {
        replicas: Some(replicas),
        domains: Some(domains),
        byzantine: Some(0),
        crashes: Some(true),
        disk_losses: Some(false),
        fault_ms: 1_000,
        stable_ms: 5_000,
        tx_per_s: 150,
        ..SimOptions::default()
    }
}

#[test]
fn crashes_restore_from_records_and_stay_safe_and_live() {
    let mut lost = 0;
    for (replicas, domains) in [(4, 1), (7, 3)] {
        let reports = run_seeds(300, 24, &crashing(replicas, domains), Until::AllSeeds);
        assert_clean(&reports);
        let restores: u64 = reports.iter().map(|r| r.restores).sum();
        assert!(restores >= 24, "every run restarts a replica ({restores})");
        lost += reports.iter().map(|r| r.lost_records).sum::<u64>();
    }
    assert!(
        lost > 0,
        "some crashes lost records that were not durable yet"
    );
}

/// The first violation a planted bug causes within 500 seeds.
fn caught(bug: &str) -> Option<String> {
    let options = SimOptions {
        bug: Some(bug.into()),
        ..crashing(7, 3)
    };
    run_seeds(0, 500, &options, Until::FirstViolation)
        .into_iter()
        .find(|r| !r.violations.is_empty())
        .map(|r| format!("seed {}: {}", r.seed, r.violations[0].what))
}

#[test]
fn planted_skip_persist_vote_is_caught() {
    assert!(caught("skip-persist-vote").is_some());
}

#[test]
fn planted_send_before_durable_is_caught() {
    assert!(caught("send-before-durable").is_some());
}

#[test]
fn planted_restore_forgets_commit_is_caught() {
    assert!(caught("restore-forgets-commit").is_some());
}

/// For every prefix of a run's records that was durable at some point (each flush that left
/// nothing pending), `restore` rebuilds the durable state the live replica had then.
#[test]
fn restore_from_any_durable_prefix_rebuilds_the_live_durable_state() {
    let options = SimOptions {
        audit_restores: true,
        fault_ms: 500,
        stable_ms: 1_500,
        ..crashing(4, 1)
    };
    let reports = run_seeds(700, 4, &options, Until::AllSeeds);
    assert_clean(&reports);
    let audited: u64 = reports.iter().map(|r| r.audited_restores).sum();
    assert!(audited > 100, "only {audited} prefixes audited");
    let compactions: u64 = reports.iter().map(|r| r.compactions).sum();
    assert!(
        compactions > 0,
        "some audited prefixes start from a compacted checkpoint"
    );
    // The same for the log of a replica that rejoined without its disk.
    let options = SimOptions {
        disk_losses: Some(true),
        ..options
    };
    let reports = run_seeds(700, 4, &options, Until::AllSeeds);
    assert_clean(&reports);
    let losses: u64 = reports.iter().map(|r| r.disk_losses).sum();
    assert_eq!(losses, 4, "every run loses a disk");
}

/// Logs are compacted at every durable stable checkpoint, so what a restart replays is
/// bounded by the checkpoint interval, not by how long the replica has run. Without
/// compaction a disk holds every record its replica appended; here a run with many
/// checkpoints holds under half of them at its peak.
#[test]
fn restores_replay_from_the_last_stable_checkpoint() {
    // Enough payments that every run passes a few checkpoints (at 150 per second one run
    // ordered its 450 in 8 blocks, one short of the first checkpoint).
    let options = SimOptions {
        fault_ms: 3_000,
        tx_per_s: 400,
        ..crashing(4, 1)
    };
    let reports = run_seeds(900, 4, &options, Until::AllSeeds);
    assert_clean(&reports);
    let mut long_runs = 0;
    for report in &reports {
        let (held, appended) = (report.log_records_max as u64, report.log_records_appended);
        let seed = report.seed;
        assert!(report.compactions > 0, "seed {seed}: no compaction");
        assert!(
            held < appended,
            "seed {seed}: {held} of {appended} records held"
        );
        if report.compactions >= 20 {
            long_runs += 1;
            assert!(
                held * 2 < appended,
                "seed {seed}: a disk held {held} of the {appended} records its replica appended"
            );
        }
    }
    assert!(long_runs >= 2, "runs with many checkpoints: {long_runs}");
}

fn losing_a_disk(replicas: u32, domains: u32) -> SimOptions {
    SimOptions {
        disk_losses: Some(true),
        ..crashing(replicas, domains)
    }
}

/// A replica that lost its whole disk rejoins: it signs nothing at or below what it had
/// reached before (the checker knows), learns its floors from its peers, and the cluster
/// stays safe and live.
#[test]
fn a_replica_that_lost_its_disk_rejoins_above_everything_it_signed() {
    for (replicas, domains) in [(4, 1), (7, 2)] {
        let reports = run_seeds(600, 16, &losing_a_disk(replicas, domains), Until::AllSeeds);
        assert_clean(&reports);
        let losses: u64 = reports.iter().map(|r| r.disk_losses).sum();
        assert_eq!(losses, 16, "every run loses one disk");
        let learned: u64 = reports.iter().map(|r| r.rejoin_floors_learned).sum();
        assert_eq!(learned, losses, "every rejoin learns its floors");
        let voting: u64 = reports.iter().map(|r| r.rejoins_voting_globally).sum();
        assert!(
            voting * 2 >= losses,
            "most rejoins vote again in the global tier by the end ({voting} of {losses})"
        );
    }
}

#[test]
fn planted_rejoin_without_floor_is_caught() {
    let options = SimOptions {
        bug: Some("rejoin-without-floor".into()),
        ..losing_a_disk(7, 2)
    };
    let amnesia = |what: &str| what.starts_with("amnesia");
    let reports = run_seeds(0, 500, &options, Until::FirstMatching(amnesia));
    assert!(
        reports
            .iter()
            .any(|r| r.violations.iter().any(|v| amnesia(&v.what))),
        "a rejoin that votes at once re-signs below what it reached"
    );
}

/// A disk lost while f replicas are Byzantine is one fault more than the global tier
/// tolerates: progress is not promised, but the rejoining replica still signs nothing it may
/// have signed before, whatever the coalition answers it, so every safety check holds.
#[test]
fn a_disk_lost_on_top_of_f_byzantine_replicas_never_costs_safety() {
    let options = SimOptions {
        byzantine: Some(2),
        ..losing_a_disk(7, 3)
    };
    let reports = run_seeds(40, 16, &options, Until::AllSeeds);
    reports.iter().for_each(common::assert_no_violation);
    let over: Vec<u64> = reports
        .iter()
        .filter(|r| r.disk_loss_over_budget)
        .map(|r| r.seed)
        .collect();
    assert!(
        over.len() >= 2,
        "disks lost beyond the budget: seeds {over:?}"
    );
    let learned: u64 = reports.iter().map(|r| r.rejoin_floors_learned).sum();
    assert!(
        learned >= 1,
        "a rejoin learned its floors with the coalition answering"
    );
}
