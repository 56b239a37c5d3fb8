//! The README's first command, `ccbft demo`, runs to success on real processes: the embedded
//! three-cloud cluster commits every payment, loses none, and ends with one state root, with
//! its global leader killed and restarted midway. The simulated demo (`ccbft sim --demo`)
//! holds every invariant.

use std::process::Command;

/// Runs `ccbft ARGS`, which must succeed and print one JSON object; that, and its stderr.
fn json_of(args: &[&str]) -> (serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .output()
        .expect("ccbft runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let report = serde_json::from_slice(&out.stdout).expect("JSON");
    (report, stderr)
}

#[test]
fn the_demo_commits_every_payment_through_a_leader_crash_with_one_state_root() {
    let (report, stderr) = json_of(&["demo", "--json", "--txs", "600"]);
    assert_eq!(report["cluster"], "three-clouds");
    assert_eq!(report["replicas"], 7);
    assert_eq!(report["submitted_txs"], 600);
    assert_eq!(report["committed_txs"], 600, "{report}");
    assert_eq!(report["lost_txs"], 0, "{report}");
    assert_eq!(report["refused_txs"], 0, "{report}");
    assert_eq!(report["state_roots_equal"], true, "{report}");
    assert!(report["killed_replica"].is_u64(), "{report}");
    for key in [
        "tps",
        "local_p50_ms",
        "local_p99_ms",
        "global_p50_ms",
        "global_p99_ms",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {report}"
        );
    }
    let heights = report["executed_heights"].as_array().expect("heights");
    assert!(heights.iter().all(|h| h.as_u64() > Some(0)), "{report}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

#[test]
fn the_simulated_demo_commits_every_transaction_and_holds_every_invariant() {
    let (report, stderr) = json_of(&["sim", "--demo", "--json"]);
    assert_eq!(report["cluster"], "three-clouds");
    assert_eq!(report["violations"], serde_json::json!([]), "{stderr}");
    let submitted = report["submitted_txs"].as_u64().expect("a count");
    assert!(submitted > 0);
    // Debits homed in the Byzantine replica's domain (f_d = 0 in every domain of 3/2/2)
    // are at its mercy: only their home domain may order them.
    let pending = report["pending_beyond_fault_bound"]
        .as_u64()
        .expect("a count");
    assert!(
        pending * 100 <= submitted,
        "{pending} of {submitted} pending"
    );
    assert_eq!(report["committed_txs"].as_u64(), Some(submitted - pending));
    assert_eq!(report["lost_txs"].as_u64(), Some(0));
    assert_eq!(report["incomplete_runs"]["runs"], serde_json::json!([]));
}
