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

/// `ccbft dora incident list --json` of the state directory `state`.
fn incidents(state: &std::path::Path) -> Vec<serde_json::Value> {
    let out = ccbft()
        .args(["dora", "incident", "list", "--json", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|row| row["incident"].clone())
        .collect()
}

/// The conditions of `kind` about replica `replica` in any incident.
fn conditions(state: &std::path::Path, kind: &str, replica: u32) -> Vec<serde_json::Value> {
    incidents(state)
        .iter()
        .flat_map(|i| i["conditions"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["kind"] == kind && c["replica"] == replica)
        .collect()
}

fn await_condition(state: &std::path::Path, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what}: {:?}",
            incidents(state)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn dora_watch_opens_incidents_from_a_live_cluster_for_a_replica_down_and_an_equivocation() {
    let mut cluster = Cluster::files(&ONE_DOMAIN);
    cluster.local.set_adversary(0, "equivocate");
    cluster.local.start_all().unwrap();
    let state = cluster::dora_init(cluster.dir.path());
    let mut watch = ccbft();
    watch
        .args(["dora", "watch", "--interval-ms", "100", "--state"])
        .arg(&state)
        .arg("--cluster")
        .arg(cluster.local.cluster_file()); // its control addresses, too
    let watch = watch
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let report = cluster.submit_ok(&["--count", "200", "--first-key", "1"]);
    assert_eq!(field(&report, "answered"), 200, "{report:?}");
    await_condition(&state, "equivocation incident", || {
        incidents(&state).iter().any(|i| {
            i["equivocation_offenders"]
                .as_array()
                .is_some_and(|o| o.contains(&0.into()))
        })
    });

    cluster.kill(3);
    await_condition(&state, "replica 3 down", || {
        !conditions(&state, "replica_down", 3).is_empty()
    });
    cluster.start(3);
    await_condition(&state, "replica 3 up again", || {
        conditions(&state, "replica_down", 3)
            .iter()
            .all(|c| !c["recovered_at"].is_null())
    });

    // SIGTERM: the watcher stops between polls and says what it did.
    // SAFETY: signalling our own child, not yet reaped.
    unsafe {
        libc::kill(watch.id() as libc::pid_t, libc::SIGTERM);
    }
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("replica_down") && stdout.contains("events ingested"),
        "{stdout}"
    );
    // No honest replica is accused.
    for incident in incidents(&state) {
        let offenders = incident["equivocation_offenders"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(offenders.iter().all(|o| *o == 0), "{incident}");
    }
}
