//! Home-lane admission: only an account's home domain takes its debits, a locally final
//! receipt carries the outcome the global order then gives (DESIGN.md, "Execution"), and
//! the simulator catches a lane that accepts more than the account can pay.

use ccbft_core::client::{home_domain, TxRejection};
use ccbft_core::crypto::SimKeys;
use ccbft_core::ledger::Transfer;
use ccbft_core::replica::{Input, ReceiptStatus, Replica, ReplicaConfig};
use ccbft_core::sim::adversary::Strategy;
use ccbft_core::sim::{sim_client_sign, SimOptions, ACCOUNTS};
use ccbft_core::topology::Topology;
use std::sync::Arc;

mod common;
use common::{assert_clean, four_replica_config, receipts, run_seeds, step_verified, Until};

/// Replica 0 of eight in two domains of four.
fn two_domain_config(keys: &SimKeys) -> ReplicaConfig {
    ReplicaConfig {
        topology: Arc::new(Topology::synthetic(8, 2, 1).unwrap()),
        ..four_replica_config(keys, 0)
    }
}

fn debit_of(from: u64, key: u128) -> Transfer {
    Transfer {
        key,
        from,
        to: (from + 1) % ACCOUNTS,
        amount: 10,
    }
}

#[test]
fn a_debit_is_taken_only_in_its_home_domain() {
    let keys = SimKeys::new(8, 7);
    let mut replica = Replica::new(two_domain_config(&keys), &keys.signer(0));
    assert_eq!(replica.id(), 0);
    let homed_here = (0..ACCOUNTS).find(|&a| home_domain(a, 2) == 0).unwrap();
    let homed_there = (0..ACCOUNTS).find(|&a| home_domain(a, 2) == 1).unwrap();
    let foreign = sim_client_sign(&keys, debit_of(homed_there, 1));
    let actions = step_verified(&mut replica, &keys, Input::Client(foreign.into()));
    assert_eq!(
        receipts(&actions),
        [ReceiptStatus::Rejected {
            reason: TxRejection::NotHome { domain: 1 }
        }]
    );
    let local = sim_client_sign(&keys, debit_of(homed_here, 2));
    let actions = step_verified(&mut replica, &keys, Input::Client(local.into()));
    assert!(
        receipts(&actions).is_empty(),
        "a debit of a homed account is queued"
    );
}

#[test]
fn accounts_spread_over_every_domain() {
    for domains in 1..=4 {
        let homes: std::collections::BTreeSet<u32> =
            (0..ACCOUNTS).map(|a| home_domain(a, domains)).collect();
        assert_eq!(homes.len(), domains as usize, "{domains} domains");
    }
}

/// Two domains of four (f_d = 1 each) with one Byzantine replica: the domain that holds it
/// is within its bound, so every locally final outcome there is checked too.
fn within_bound_options() -> SimOptions {
    SimOptions {
        replicas: Some(8),
        domains: Some(2),
        byzantine: Some(1),
        fault_ms: 1_000,
        stable_ms: 5_000,
        tx_per_s: 300,
        ..SimOptions::default()
    }
}

#[test]
fn locally_final_outcomes_hold_in_the_global_order() {
    let reports = run_seeds(0, 24, &within_bound_options(), Until::AllSeeds);
    assert_clean(&reports);
    let checked: u64 = reports.iter().map(|r| r.admission.checked).sum();
    let rejected: u64 = reports.iter().map(|r| r.admission.rejected).sum();
    let exempt: u64 = reports.iter().map(|r| r.admission.exempt).sum();
    assert!(checked > 1_000, "only {checked} predictions checked");
    assert!(
        rejected > 0,
        "no debit was refused locally: no contention in the workload"
    );
    assert_eq!(exempt, 0, "both domains are within their bound");
}

/// A lane that accepts debits without reserving them promises money twice; the global
/// order then refuses the second debit, and the checker names the reversal.
#[test]
fn planted_admit_without_reservation_is_caught() {
    let options = SimOptions {
        bug: Some("admit-without-reservation".into()),
        ..within_bound_options()
    };
    let found = run_seeds(0, 500, &options, Until::FirstViolation)
        .into_iter()
        .find_map(|r| r.violations.into_iter().next());
    let found = found.expect("over-accepting went unnoticed in 500 seeds");
    assert!(
        found.what.starts_with("reversed") || found.what.starts_with("admission"),
        "{}",
        found.what
    );
}

/// A primary that stamps credit floors it never executed makes its lane's members wait
/// (they promise nothing they cannot know), and execution refuses what no honest ledger
/// backs: no locally final outcome is reversed, and every debit still settles.
#[test]
fn a_primary_lying_about_credits_reverses_nothing() {
    let options = SimOptions {
        strategy: Some(Strategy::LieAboutCredits),
        ..within_bound_options()
    };
    let reports = run_seeds(0, 24, &options, Until::AllSeeds);
    assert_clean(&reports);
    let checked: u64 = reports.iter().map(|r| r.admission.checked).sum();
    assert!(checked > 1_000, "only {checked} predictions checked");
}

/// Four replicas of one domain: `txs` submitted to the primary, then twenty rounds of a tick
/// to everyone and every message delivered; each replica's receipts.
fn commit_by_hand(
    keys: &SimKeys,
    txs: Vec<ccbft_core::client::SignedTransfer>,
) -> Vec<Vec<ReceiptStatus>> {
    use ccbft_core::replica::Action;
    let mut replicas: Vec<Replica> = (0..4)
        .map(|me| Replica::new(four_replica_config(keys, me), &keys.signer(me)))
        .collect();
    let mut seen = vec![Vec::new(); 4];
    let mut queue = Vec::new();
    let mut take = |me: usize, actions: Vec<Action>, queue: &mut Vec<_>| {
        seen[me].extend(receipts(&actions));
        for action in actions {
            if let Action::Send { to, message, .. } = action {
                for peer in to {
                    queue.push((me as u32, peer, message.clone()));
                }
            }
        }
    };
    for tx in txs {
        let actions = step_verified(&mut replicas[0], keys, Input::Client(tx.into()));
        take(0, actions, &mut queue);
    }
    for _ in 0..20 {
        for (me, replica) in replicas.iter_mut().enumerate() {
            let actions = step_verified(replica, keys, Input::Tick);
            take(me, actions, &mut queue);
        }
        while let Some((from, to, message)) = queue.pop() {
            let actions = step_verified(
                &mut replicas[to as usize],
                keys,
                Input::Message { from, message },
            );
            take(to as usize, actions, &mut queue);
        }
    }
    seen
}

/// A batch whose debits' credit floors are met exactly (nothing was ever credited to the
/// accounts, floor 0) is decided as soon as it is committed: every member gives its locally
/// final receipts without waiting for a credit that may never come (a surviving mutant,
/// `credited < floor` to `<=`, held such batches back).
#[test]
fn a_batch_whose_credit_floors_are_met_exactly_is_decided_at_once() {
    let keys = SimKeys::new(4, 3);
    let txs: Vec<_> = (0..4u64)
        .map(|i| sim_client_sign(&keys, debit_of(2 * i + 1, u128::from(i) + 1)))
        .collect();
    let seen = commit_by_hand(&keys, txs);
    for (me, statuses) in seen.iter().enumerate() {
        let local = statuses
            .iter()
            .filter(|s| matches!(s, ReceiptStatus::LocallyFinal { .. }))
            .count();
        assert_eq!(local, 4, "replica {me}: {statuses:?}");
    }
}

/// What the runtime reports of a replica (its logs and `/metrics` follow these): each local
/// lane with its primary, and the global leader as the schedule ranks the replicas.
#[test]
fn a_replica_reports_its_lane_primaries_and_the_global_leader() {
    let keys = SimKeys::new(6, 3);
    let replica = Replica::new(four_replica_config(&keys, 2), &keys.signer(2));
    let primaries: Vec<_> = replica.lane_primaries().collect();
    assert_eq!(primaries, [(common::LANE, 0)], "view 0: the first member");

    // Two replicas far from the other four: the four rank first (smaller quorum latency),
    // so replica 0, though first by id, does not lead the first slot.
    let mut text = String::from("[cluster]\nname = \"lopsided\"\n\n[[domains]]\nname = \"a/far\"\n\n[[domains]]\nname = \"b/near\"\n");
    for id in 0..6 {
        let domain = if id < 2 { "a/far" } else { "b/near" };
        text += &format!(
            "\n[[replicas]]\nid = {id}\ndomain = \"{domain}\"\naddress = \"127.0.0.1:{}\"\n",
            7000 + id
        );
    }
    text += "\n[[links]]\na = \"a/far\"\nb = \"b/near\"\nrtt_ms = 50.0\n";
    let config = ReplicaConfig {
        topology: Arc::new(Topology::from_toml_str(&text).unwrap()),
        ..four_replica_config(&keys, 0)
    };
    let replica = Replica::new(config, &keys.signer(0));
    assert!(
        (2..6).contains(&replica.global_leader()),
        "leader r{} of round {}",
        replica.global_leader(),
        replica.global_round()
    );
}
