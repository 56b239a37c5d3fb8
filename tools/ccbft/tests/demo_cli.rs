//! The README's first command, `ccbft demo`, runs to success: the embedded three-cloud
//! cluster commits every submitted transaction with no invariant violated.

use std::process::Command;

#[test]
fn the_demo_commits_every_transaction_and_holds_every_invariant() {
    let out = Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(["demo", "--json"])
        .output()
        .expect("ccbft runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
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
