//! `ccbft dkg --scheme ecdsa-secp256k1`, `ccbft ecdsa sign` and `ccbft ecdsa verify` run as
//! processes: files and modes, JSON output, offline verification, tampering, bad input.
//! The key generation loads pregenerated primes (crypto/tests/data) instead of spending
//! minutes on safe primes; everything else runs for real. This is the test suite's one run of
//! the aux-info protocol (the crypto crate's tests load pregenerated aux info).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn ccbft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .output()
        .expect("run ccbft")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The first `pairs` test primes, in a private file (the loader refuses readable secrets).
fn primes(dir: &Path, pairs: usize) -> String {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crypto/tests/data/ecdsa-primes-7.json");
    let all: Vec<serde_json::Value> = serde_json::from_slice(&fs::read(src).unwrap()).unwrap();
    let dst = dir.join("primes.json");
    fs::write(&dst, serde_json::to_vec(&all[..pairs]).unwrap()).unwrap();
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o600)).unwrap();
    dst.to_str().unwrap().to_string()
}

#[test]
fn ecdsa_dkg_sign_and_verify_as_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shares");
    let out_s = out.to_str().unwrap();
    // Two parties (aux info costs grow with the square of the parties; the 5-of-7 key is
    // tested in the crypto crate). No --threshold: the global quorum of 2, 2.
    let primes = primes(tmp.path(), 2);
    let stdout = ok(&ccbft(&[
        "dkg",
        "--scheme",
        "ecdsa-secp256k1",
        "--parties",
        "2",
        "--out",
        out_s,
        "--primes",
        &primes,
    ]));
    assert!(stdout.contains("2-of-2"), "{stdout}");
    for i in 0..2 {
        assert_eq!(mode(&out.join(format!("ecdsa-share-{i}.key"))), 0o600);
    }
    let group: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("ecdsa-group.json")).unwrap()).unwrap();
    let address = group["address"].as_str().unwrap().to_string();
    assert_eq!(group["threshold"], 2);
    assert_eq!(address.len(), 42);

    let digest = "ab".repeat(32);
    let sig = ok(&ccbft(&[
        "ecdsa",
        "sign",
        "--shares",
        out_s,
        "--signers",
        "1,0",
        "--digest",
        &digest,
        "--json",
    ]));
    let sig_json: serde_json::Value = serde_json::from_str(&sig).unwrap();
    for field in ["r", "s", "v", "public_key", "address"] {
        assert!(sig_json[field].is_string(), "{field} in {sig}");
    }
    assert_eq!(sig_json["address"].as_str().unwrap(), address);
    assert_eq!(sig_json["public_key"], group["public_key"]);
    let sig_path = tmp.path().join("sig.json");
    fs::write(&sig_path, &sig).unwrap();
    let sig_s = sig_path.to_str().unwrap();
    let verified = ok(&ccbft(&[
        "ecdsa",
        "verify",
        "--address",
        &address,
        "--signature",
        sig_s,
    ]));
    assert!(verified.starts_with("valid"), "{verified}");

    // A checkpoint attestation, verified against the group file; then tampered.
    let checkpoint = tmp.path().join("checkpoint.json");
    fs::write(
        &checkpoint,
        format!(
            r#"{{"chain_id": 7, "height": 1024, "block_digest": "{}", "state_root": "{}"}}"#,
            "11".repeat(32),
            "22".repeat(32)
        ),
    )
    .unwrap();
    let att = ok(&ccbft(&[
        "ecdsa",
        "sign",
        "--shares",
        out_s,
        "--signers",
        "0,1",
        "--attest-checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
    ]));
    let att_path = tmp.path().join("att.json");
    fs::write(&att_path, &att).unwrap();
    let group_path = out.join("ecdsa-group.json");
    let args = [
        "ecdsa",
        "verify",
        "--group",
        group_path.to_str().unwrap(),
        "--signature",
    ];
    let with = |path: &Path| ccbft(&[&args[..], &[path.to_str().unwrap()]].concat());
    ok(&with(&att_path));
    let tampered = tmp.path().join("tampered.json");
    fs::write(
        &tampered,
        att.replace("\"height\": 1024", "\"height\": 1025"),
    )
    .unwrap();
    let o = with(&tampered);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("INVALID"));
    // Another address: the signature is not that group's.
    let other = format!("0x{}", "00".repeat(20));
    let o = ccbft(&["ecdsa", "verify", "--address", &other, "--signature", sig_s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // One signer cannot sign; nor can three; unknown or repeated signers; readable share
    // refused; junk digest.
    for signers in ["1", "0,1,2", "0,9", "1,1"] {
        let o = ccbft(&[
            "ecdsa",
            "sign",
            "--shares",
            out_s,
            "--signers",
            signers,
            "--digest",
            &digest,
        ]);
        assert_eq!(o.status.code(), Some(2), "{signers}: {}", text(&o));
    }
    let share = out.join("ecdsa-share-1.key");
    fs::set_permissions(&share, fs::Permissions::from_mode(0o640)).unwrap();
    let o = ccbft(&[
        "ecdsa",
        "sign",
        "--shares",
        out_s,
        "--signers",
        "0,1",
        "--digest",
        &digest,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("group or others"),
        "{}",
        text(&o)
    );
    let o = ccbft(&[
        "ecdsa",
        "sign",
        "--shares",
        out_s,
        "--signers",
        "1,0",
        "--digest",
        "xyz",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--digest"),
        "{}",
        text(&o)
    );
}

#[test]
fn ecdsa_dkg_rejects_bad_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let out_s = out.to_str().unwrap();
    for args in [
        vec!["--threshold", "1", "--parties", "7"],
        vec!["--threshold", "8", "--parties", "7"],
        vec!["--parties", "100000"],
        vec!["--threshold", "3"],
    ] {
        let mut all = vec!["dkg", "--scheme", "ecdsa-secp256k1", "--out", out_s];
        all.extend(args.iter().copied());
        let o = ccbft(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
    // Primes for the wrong number of parties.
    let primes = primes(tmp.path(), 3);
    let o = ccbft(&[
        "dkg",
        "--scheme",
        "ecdsa-secp256k1",
        "--parties",
        "4",
        "--out",
        out_s,
        "--primes",
        &primes,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("prime pairs"),
        "{}",
        text(&o)
    );
}
