//! Audit signing keys are loaded only through `ccbft_crypto::keyfile::read_secret_file`:
//! files that group or others may access, and symbolic links, are refused for both key kinds
//! (the Ed25519 key was once read without any check).

use ccbft_dora::audit::{AuditError, AuditSigner, Ed25519Signer, HybridSigner};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn ed25519_audit_key_readable_by_group_or_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit-ed25519.key");
    let created = Ed25519Signer::load_or_create(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let loaded = Ed25519Signer::load_or_create(&path).unwrap();
    assert_eq!(created.public_key_hex(), loaded.public_key_hex());
    for mode in [0o640, 0o604, 0o644, 0o660, 0o606] {
        chmod(&path, mode);
        match Ed25519Signer::load_or_create(&path) {
            Err(AuditError::Key(m)) => assert!(m.contains("group or others"), "{m}"),
            Err(other) => panic!("mode {mode:o}: {other}"),
            Ok(_) => panic!("mode {mode:o}: key accepted"),
        }
    }
    chmod(&path, 0o400);
    assert_eq!(
        Ed25519Signer::load_or_create(&path)
            .unwrap()
            .public_key_hex(),
        created.public_key_hex()
    );
    // A malformed seed is an error, not a panic.
    let bad = dir.path().join("bad.key");
    ccbft_crypto::keyfile::write_secret_file(&bad, b"abcd").unwrap();
    assert!(matches!(
        Ed25519Signer::load_or_create(&bad),
        Err(AuditError::Key(_))
    ));
}

#[test]
fn audit_keys_behind_a_symbolic_link_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ed = dir.path().join("ed.key");
    let hybrid = dir.path().join("hybrid.key");
    Ed25519Signer::load_or_create(&ed).unwrap();
    HybridSigner::load_or_create(&hybrid).unwrap();
    let ed_link = dir.path().join("ed-link.key");
    let hybrid_link = dir.path().join("hybrid-link.key");
    std::os::unix::fs::symlink(&ed, &ed_link).unwrap();
    std::os::unix::fs::symlink(&hybrid, &hybrid_link).unwrap();
    assert!(matches!(
        Ed25519Signer::load_or_create(&ed_link),
        Err(AuditError::Key(_))
    ));
    assert!(matches!(
        HybridSigner::load(&hybrid_link),
        Err(AuditError::Key(_))
    ));
}
