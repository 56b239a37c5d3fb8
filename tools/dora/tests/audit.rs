//! The audit trail catches altered, deleted, swapped and truncated entries.

use ccbft_dora::audit::{verify_dir, AuditLog, Ed25519Signer, HEAD_FILE, LOG_FILE, PUBKEY_FILE};
use ccbft_dora::chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::path::Path;

fn make_log(dir: &Path, entries: usize) {
    let mut log = AuditLog::open(dir, Ed25519Signer::from_seed([7; 32])).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap();
    for i in 0..entries {
        log.append(
            t0 + Duration::minutes(i as i64),
            "incident",
            &format!("INC-{i}"),
            json!({"step": i, "note": "opened"}),
        )
        .unwrap();
    }
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(LOG_FILE))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join(LOG_FILE), text).unwrap();
}

fn first_bad_line(dir: &Path) -> usize {
    let v = verify_dir(dir).unwrap();
    assert!(!v.ok);
    v.first_bad.expect("a bad entry is named").line
}

#[test]
fn intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 5);
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.ok, "{:?}", v.first_bad);
    assert_eq!(v.entries, 5);
    // Reopening continues the chain.
    make_log(dir.path(), 2);
    assert_eq!(verify_dir(dir.path()).unwrap().entries, 7);
}

#[test]
fn altered_entry_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 5);
    let mut l = lines(dir.path());
    l[2] = l[2].replace("opened", "closed");
    write_lines(dir.path(), &l);
    assert_eq!(first_bad_line(dir.path()), 3);
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.first_bad.unwrap().reason.contains("altered"));
}

#[test]
fn altered_entry_with_recomputed_hash_is_caught_by_signature() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 5);
    let mut l = lines(dir.path());
    // Forge entry 4 (line 5): change the payload and recompute nothing but the payload;
    // then also replace the signature with one by another key.
    let mut e: Value = serde_json::from_str(&l[4]).unwrap();
    let other = Ed25519Signer::from_seed([9; 32]);
    e["signature"] = json!(ccbft_dora::audit::to_hex(
        &ccbft_dora::audit::AuditSigner::sign(&other, e["hash"].as_str().unwrap().as_bytes())
    ));
    l[4] = serde_json::to_string(&e).unwrap();
    write_lines(dir.path(), &l);
    let v = verify_dir(dir.path()).unwrap();
    let bad = v.first_bad.unwrap();
    assert_eq!(bad.line, 5);
    assert!(bad.reason.contains("signature"), "{}", bad.reason);
}

#[test]
fn deleted_entry_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 5);
    let mut l = lines(dir.path());
    l.remove(1);
    write_lines(dir.path(), &l);
    assert_eq!(first_bad_line(dir.path()), 2);
}

#[test]
fn swapped_entries_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 5);
    let mut l = lines(dir.path());
    l.swap(2, 3);
    write_lines(dir.path(), &l);
    assert_eq!(first_bad_line(dir.path()), 3);
}

#[test]
fn truncated_tail_is_caught_by_the_signed_head() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 5);
    let mut l = lines(dir.path());
    l.pop();
    write_lines(dir.path(), &l);
    let v = verify_dir(dir.path()).unwrap();
    let bad = v.first_bad.unwrap();
    assert_eq!(bad.line, 5);
    assert!(bad.reason.contains("deleted"), "{}", bad.reason);
    // Removing the head as well is caught too.
    std::fs::remove_file(dir.path().join(HEAD_FILE)).unwrap();
    assert!(!verify_dir(dir.path()).unwrap().ok);
}

#[test]
fn wrong_public_key_is_caught_and_appending_to_a_tampered_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 3);
    let mut l = lines(dir.path());
    l.swap(0, 1);
    write_lines(dir.path(), &l);
    assert!(AuditLog::open(dir.path(), Ed25519Signer::from_seed([7; 32])).is_err());
    let dir2 = tempfile::tempdir().unwrap();
    make_log(dir2.path(), 3);
    let other = ccbft_dora::audit::AuditSigner::public_key_hex(&Ed25519Signer::from_seed([1; 32]));
    std::fs::write(dir2.path().join(PUBKEY_FILE), format!("ed25519 {other}\n")).unwrap();
    assert_eq!(first_bad_line(dir2.path()), 1);
}
