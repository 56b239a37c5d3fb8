//! The audit trail catches altered, deleted, swapped and truncated entries, and entries whose
//! hybrid signature (BLS12-381 + ML-DSA-65) is not made, in both halves, by the log's key.

use ccbft_crypto::bls::SIGNATURE_BYTES as BLS_SIGNATURE_BYTES;
use ccbft_dora::audit::{
    from_hex, to_hex, verify_dir, AuditError, AuditLog, AuditSigner, Ed25519Signer, HybridSigner,
    ALG_ED25519, ALG_HYBRID, HEAD_FILE, LOG_FILE, PUBKEY_FILE,
};
use ccbft_dora::chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::path::Path;

fn make_log(dir: &Path, entries: usize) {
    let mut log = AuditLog::open(dir, HybridSigner::from_seed([7; 32])).unwrap();
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
    let other = HybridSigner::from_seed([9; 32]);
    e["signature"] = json!(to_hex(&other.sign(e["hash"].as_str().unwrap().as_bytes())));
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
    assert!(AuditLog::open(dir.path(), HybridSigner::from_seed([7; 32])).is_err());
    let dir2 = tempfile::tempdir().unwrap();
    make_log(dir2.path(), 3);
    let other = HybridSigner::from_seed([1; 32]).public_key_hex();
    std::fs::write(
        dir2.path().join(PUBKEY_FILE),
        format!("{ALG_HYBRID} {other}\n"),
    )
    .unwrap();
    assert_eq!(first_bad_line(dir2.path()), 1);
}

/// Replaces the signature of the entry on `line` (0-based) by `signature`.
fn set_signature(dir: &Path, line: usize, signature: &[u8]) {
    let mut l = lines(dir);
    let mut e: Value = serde_json::from_str(&l[line]).unwrap();
    e["signature"] = json!(to_hex(signature));
    l[line] = serde_json::to_string(&e).unwrap();
    write_lines(dir, &l);
}

fn entry_signature_and_hash(dir: &Path, line: usize) -> (Vec<u8>, String) {
    let e: Value = serde_json::from_str(&lines(dir)[line]).unwrap();
    (
        from_hex(e["signature"].as_str().unwrap()).unwrap(),
        e["hash"].as_str().unwrap().to_string(),
    )
}

#[test]
fn log_header_and_entries_name_the_hybrid_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 2);
    let header = std::fs::read_to_string(dir.path().join(PUBKEY_FILE)).unwrap();
    assert!(header.starts_with(&format!("{ALG_HYBRID} ")), "{header}");
    for line in lines(dir.path()) {
        let e: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["algorithm"], ALG_HYBRID);
    }
    let head: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(HEAD_FILE)).unwrap())
            .unwrap();
    assert_eq!(head["algorithm"], ALG_HYBRID);
}

#[test]
fn entry_signed_by_another_hybrid_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let (_, hash) = entry_signature_and_hash(dir.path(), 1);
    let other = HybridSigner::from_seed([9; 32]);
    set_signature(dir.path(), 1, &other.sign(hash.as_bytes()));
    let bad = verify_dir(dir.path()).unwrap().first_bad.unwrap();
    assert_eq!(bad.line, 2);
    assert!(bad.reason.contains("signature"), "{}", bad.reason);
}

#[test]
fn entry_with_ml_dsa_half_tampered_and_bls_half_intact_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let (sig, hash) = entry_signature_and_hash(dir.path(), 2);
    // A well-formed ML-DSA-65 half by another key over the same message.
    let forged = HybridSigner::from_seed([9; 32]).sign(hash.as_bytes());
    let mut spliced = sig[..BLS_SIGNATURE_BYTES].to_vec();
    spliced.extend_from_slice(&forged[BLS_SIGNATURE_BYTES..]);
    set_signature(dir.path(), 2, &spliced);
    let bad = verify_dir(dir.path()).unwrap().first_bad.unwrap();
    assert_eq!(bad.line, 3);
    assert!(bad.reason.contains("ML-DSA-65 half"), "{}", bad.reason);

    // One flipped bit in the ML-DSA half is rejected too.
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let (mut sig, _) = entry_signature_and_hash(dir.path(), 2);
    sig[BLS_SIGNATURE_BYTES + 100] ^= 0x01;
    set_signature(dir.path(), 2, &sig);
    let bad = verify_dir(dir.path()).unwrap().first_bad.unwrap();
    assert_eq!(bad.line, 3);
    assert!(bad.reason.contains("signature"), "{}", bad.reason);
}

#[test]
fn entry_with_bls_half_tampered_and_ml_dsa_half_intact_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let (sig, hash) = entry_signature_and_hash(dir.path(), 2);
    // A valid BLS signature by another key over the same message, ML-DSA half unchanged.
    let forged = HybridSigner::from_seed([9; 32]).sign(hash.as_bytes());
    let mut spliced = forged[..BLS_SIGNATURE_BYTES].to_vec();
    spliced.extend_from_slice(&sig[BLS_SIGNATURE_BYTES..]);
    set_signature(dir.path(), 2, &spliced);
    let bad = verify_dir(dir.path()).unwrap().first_bad.unwrap();
    assert_eq!(bad.line, 3);
    assert!(bad.reason.contains("BLS12-381 half"), "{}", bad.reason);
}

#[test]
fn unknown_algorithm_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 2);
    let header = std::fs::read_to_string(dir.path().join(PUBKEY_FILE)).unwrap();
    std::fs::write(
        dir.path().join(PUBKEY_FILE),
        header.replacen(ALG_HYBRID, "rsa-1024", 1),
    )
    .unwrap();
    match verify_dir(dir.path()) {
        Err(e @ AuditError::UnknownAlgorithm { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("rsa-1024") && text.contains(ALG_HYBRID),
                "{text}"
            );
        }
        other => panic!("expected UnknownAlgorithm, got {other:?}"),
    }
    // An entry naming an unknown algorithm under a valid header is the first bad entry.
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 3);
    let mut l = lines(dir.path());
    l[1] = l[1].replace(ALG_HYBRID, "rsa-1024");
    write_lines(dir.path(), &l);
    let bad = verify_dir(dir.path()).unwrap().first_bad.unwrap();
    assert_eq!(bad.line, 2);
    assert!(
        bad.reason.contains("unknown signature algorithm"),
        "{}",
        bad.reason
    );
}

#[test]
fn ed25519_log_from_before_the_switch_still_verifies_and_is_not_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path(), Ed25519Signer::from_seed([7; 32])).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap();
    log.append(t0, "incident", "INC-0", json!({})).unwrap();
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.ok && v.entries == 1, "{:?}", v.first_bad);
    // A hybrid signer may not append to it.
    assert!(matches!(
        AuditLog::open(dir.path(), HybridSigner::from_seed([7; 32])),
        Err(AuditError::Key(_))
    ));
    // An entry claiming the other known algorithm is named as such.
    let mut l = lines(dir.path());
    l[0] = l[0].replace(ALG_ED25519, ALG_HYBRID);
    write_lines(dir.path(), &l);
    let bad = verify_dir(dir.path()).unwrap().first_bad.unwrap();
    assert_eq!(bad.line, 1);
    assert!(bad.reason.contains("audit.pub holds"), "{}", bad.reason);
}

#[test]
fn hybrid_key_file_is_private_and_reloads_the_same_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/audit-hybrid.key");
    let created = HybridSigner::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = HybridSigner::load_or_create(&path).unwrap();
    assert_eq!(created.public_key_hex(), loaded.public_key_hex());
    // A key file readable by others is refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        HybridSigner::load(&path),
        Err(AuditError::Key(m)) if m.contains("600")
    ));
    // A malformed key file is an error, not a panic.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &path,
        r#"{"kind":"ccbft-hybrid-secret-key","secret_key":"zz"}"#,
    )
    .unwrap();
    assert!(matches!(HybridSigner::load(&path), Err(AuditError::Key(_))));
}

#[test]
fn open_checks_the_chain_and_last_signature_and_verify_checks_every_signature() {
    let other = HybridSigner::from_seed([9; 32]);
    // The last entry's signature by another key: appending is refused.
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let (_, hash) = entry_signature_and_hash(dir.path(), 3);
    set_signature(dir.path(), 3, &other.sign(hash.as_bytes()));
    assert!(matches!(
        AuditLog::open(dir.path(), HybridSigner::from_seed([7; 32])),
        Err(AuditError::Corrupt(m)) if m.contains("line 4")
    ));
    // An earlier entry's signature replaced, content intact: the chain and the signed head
    // still hold, so appending is allowed, and the full verification names the entry.
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let (_, hash) = entry_signature_and_hash(dir.path(), 1);
    set_signature(dir.path(), 1, &other.sign(hash.as_bytes()));
    assert!(AuditLog::open(dir.path(), HybridSigner::from_seed([7; 32])).is_ok());
    assert_eq!(first_bad_line(dir.path()), 2);
    // A changed earlier entry is refused on open (chain), whatever its signature.
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path(), 4);
    let mut l = lines(dir.path());
    l[1] = l[1].replace("opened", "closed");
    write_lines(dir.path(), &l);
    assert!(AuditLog::open(dir.path(), HybridSigner::from_seed([7; 32])).is_err());
}

#[test]
fn engine_state_uses_a_private_hybrid_key_and_continues_an_ed25519_log() {
    use ccbft_dora::state::{Engine, AUDIT_DIR, KEY_FILE, LEGACY_ED25519_KEY_FILE};
    use std::os::unix::fs::PermissionsExt;
    let t0 = Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap();
    // A new state directory: hybrid key (mode 0600), hybrid log.
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::open(state.path()).unwrap();
    engine.audit(t0, "note", "a", json!({})).unwrap();
    engine.audit(t0, "note", "b", json!({})).unwrap();
    let key = state.path().join(KEY_FILE);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let audit = state.path().join(AUDIT_DIR);
    let header = std::fs::read_to_string(audit.join(PUBKEY_FILE)).unwrap();
    assert!(header.starts_with(ALG_HYBRID), "{header}");
    let v = verify_dir(&audit).unwrap();
    assert!(v.ok && v.entries == 2, "{:?}", v.first_bad);
    assert!(!state.path().join(LEGACY_ED25519_KEY_FILE).exists());

    // A state directory whose log was started with Ed25519 keeps appending with that key.
    let state = tempfile::tempdir().unwrap();
    let legacy_key = state.path().join(LEGACY_ED25519_KEY_FILE);
    let signer = Ed25519Signer::load_or_create(&legacy_key).unwrap();
    let mut log = AuditLog::open(&state.path().join(AUDIT_DIR), signer).unwrap();
    log.append(t0, "note", "old", json!({})).unwrap();
    let engine = Engine::open(state.path()).unwrap();
    engine.audit(t0, "note", "new", json!({})).unwrap();
    let v = verify_dir(&state.path().join(AUDIT_DIR)).unwrap();
    assert!(v.ok && v.entries == 2, "{:?}", v.first_bad);
    assert!(!state.path().join(KEY_FILE).exists());
}
