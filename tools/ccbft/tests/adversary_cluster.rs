//! Byzantine replicas as real processes: `ccbft node --adversary STRATEGY` runs one of the
//! simulator's strategies on what a replica sends, signed with its real key, over real links.
//! The honest replicas must prove an equivocation with the two signed messages, keep one
//! ledger, and keep committing while f replicas withhold their votes.
//!
//! Only in builds with the `adversary` feature (tools/test turns it on).
#![cfg(feature = "adversary")]

mod cluster;

use ccbft_core::crypto::Verifier;
use ccbft_core::evidence::Evidence;
use ccbft_core::topology::Topology;
use ccbft_node::evidence_log::{self, EVIDENCE_FILE};
use cluster::*;

#[test]
fn an_equivocating_primary_is_proven_with_its_two_signed_messages_and_the_ledger_stays_one() {
    let mut cluster = Cluster::files(&ONE_DOMAIN);
    let byzantine = 0;
    cluster.local.set_adversary(byzantine, "equivocate");
    cluster.local.start_all().unwrap();
    cluster
        .local
        .await_line(1, "lane 0/0 primary", PATIENCE)
        .unwrap();
    assert_eq!(
        cluster.local.last_named(1, "lane 0/0 primary"),
        Some(byzantine),
        "the equivocator must be the lane's primary for this test to mean anything"
    );

    let report = cluster.submit_ok(&["--count", "200", "--first-key", "1"]);
    assert_eq!(field(&report, "answered"), 200, "{report:?}");
    assert_eq!(
        field(&report, "applied") + field(&report, "duplicate"),
        200,
        "{report:?}"
    );
    let height = field(&report, "height");
    for id in 1..cluster.replicas() {
        cluster.await_replica_height(id, height);
    }
    cluster.assert_one_root_per_height();

    // The equivocator sends the twin to one replica that also got the original: that replica
    // recorded both, and anyone holding the committee's public keys can check the proof.
    let topology = Topology::load(&cluster.local.cluster_file()).unwrap();
    let verifier = ccbft_node::keys::load(&cluster.local.keys_dir(), 1, &topology)
        .unwrap()
        .verifier;
    let mut proven = 0;
    for id in (0..cluster.replicas()).filter(|&id| id != byzantine) {
        let path = cluster.local.data_dir(id).join(EVIDENCE_FILE);
        if !path.exists() {
            continue;
        }
        for (json, messages) in evidence_log::read(&path).unwrap() {
            assert_eq!(
                json["offender"], byzantine,
                "r{id} accused an honest replica: {json}"
            );
            if json["kind"] != "equivocation" {
                continue;
            }
            let [first, second] = <[_; 2]>::try_from(messages).expect("two messages");
            let evidence = Evidence::Equivocation {
                offender: byzantine,
                first: Box::new(first),
                second: Box::new(second),
            };
            let checks = evidence.proof().expect("the same slot, different content");
            assert!(
                verifier.failed(&checks).is_empty(),
                "both signatures verify"
            );
            proven += 1;
        }
    }
    assert!(
        proven > 0,
        "no honest replica recorded the equivocation\n{}",
        cluster.local.log_tails(8)
    );
}

#[test]
fn one_replica_of_four_withholding_its_votes_does_not_stop_commits() {
    let mut cluster = Cluster::files(&ONE_DOMAIN);
    // Not replica 0: `submit` enters there, and this test is about votes, not ingress.
    let byzantine = 3;
    cluster.local.set_adversary(byzantine, "withhold-votes");
    cluster.local.start_all().unwrap();

    let report = cluster.submit_ok(&["--count", "200", "--first-key", "1"]);
    assert_eq!(field(&report, "answered"), 200, "{report:?}");
    assert_eq!(field(&report, "applied"), 200, "{report:?}");
    let height = field(&report, "height");
    for id in (0..cluster.replicas()).filter(|&id| id != byzantine) {
        cluster.await_replica_height(id, height);
    }
    cluster.assert_one_root_per_height();
    let log = cluster.local.current_log(byzantine);
    assert!(
        log.contains("ADVERSARY MODE: strategy withhold-votes"),
        "{log}"
    );
    // It did withhold: the commits above were made without its votes.
    let withheld = cluster.metric(byzantine, "ccbft_adversary_withheld_total");
    assert!(withheld > 0);
}

#[test]
fn an_unknown_strategy_is_refused_at_start_up() {
    let cluster = Cluster::files(&ONE_DOMAIN);
    let data = cluster.local.data_dir(0);
    let args = [
        "--id",
        "0",
        "--adversary",
        "be-nice",
        "--data",
        data.to_str().unwrap(),
    ];
    let out = cluster.node(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no adversary strategy \"be-nice\""),
        "{}",
        text(&out.stderr)
    );
}
