//! `ccbft keygen` and `ccbft dkg` run as a user would: files, modes, contents, bad input; the
//! DKG ceremony as seven operators would run it, one process per party and step.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ccbft-crypto-cli-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ccbft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .output()
        .expect("run ccbft")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn keygen_writes_verified_keys_with_private_modes() {
    let tmp = TempDir::new("keygen");
    let out = tmp.0.join("keys");
    let o = ccbft(&["keygen", "--out", out.to_str().unwrap(), "--replicas", "7"]);
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for i in 0..7 {
        let key = out.join(format!("replica-{i}.key"));
        let public = out.join(format!("replica-{i}.pub"));
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        let k = json(&key);
        let p = json(&public);
        assert_eq!(k["replica"], i);
        assert_eq!(k["secret_key"].as_str().unwrap().len(), 64);
        assert_eq!(p["public_key"].as_str().unwrap().len(), 96);
        assert_eq!(p["proof_of_possession"].as_str().unwrap().len(), 192);
        // The link key pair, separate from the BLS key.
        let link = out.join(format!("replica-{i}.link.key"));
        let link_pub = out.join(format!("replica-{i}.link.pub"));
        assert_eq!(mode(&link), 0o600, "{}", link.display());
        assert_eq!(mode(&link_pub), 0o644, "{}", link_pub.display());
        let lk = json(&link);
        let lp = json(&link_pub);
        assert_eq!(
            (lk["replica"].clone(), lp["replica"].clone()),
            (i.into(), i.into())
        );
        assert_eq!(lk["key"].as_str().unwrap().len(), 64);
        assert_ne!(lk["key"], k["secret_key"], "link key is not the BLS key");
        let (id, sk) = ccbft_net::keys::read_link_secret_key(&link).unwrap();
        let (_, pk) = ccbft_net::keys::read_link_public_key(&link_pub).unwrap();
        assert_eq!((id, sk.public_key()), (i, pk));
        // A copy readable by others is refused.
        let loose = tmp.0.join(format!("loose-{i}.key"));
        fs::copy(&link, &loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ccbft_net::keys::read_link_secret_key(&loose).is_err());
    }
    let committee = json(&out.join("committee.json"));
    assert_eq!(committee["members"].as_array().unwrap().len(), 7);
    assert!(!out.join("replica-7.key").exists());

    // A non-empty directory is refused without --force, accepted with it.
    let o = ccbft(&["keygen", "--out", out.to_str().unwrap(), "--replicas", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    let o = ccbft(&[
        "keygen",
        "--out",
        out.to_str().unwrap(),
        "--replicas",
        "4",
        "--force",
    ]);
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        json(&out.join("committee.json"))["members"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Deterministic seeds give identical keys.
    let a = tmp.0.join("a");
    let b = tmp.0.join("b");
    let seed = "11".repeat(32);
    for dir in [&a, &b] {
        let o = ccbft(&[
            "keygen",
            "--out",
            dir.to_str().unwrap(),
            "--replicas",
            "4",
            "--seed",
            &seed,
        ]);
        assert!(o.status.success());
    }
    assert_eq!(
        fs::read(a.join("replica-1.key")).unwrap(),
        fs::read(b.join("replica-1.key")).unwrap()
    );
    assert_eq!(
        fs::read(a.join("replica-1.link.key")).unwrap(),
        fs::read(b.join("replica-1.link.key")).unwrap()
    );
}

#[test]
fn keygen_rejects_bad_input() {
    let tmp = TempDir::new("keygen-bad");
    let out = tmp.0.join("k");
    let o = ccbft(&["keygen", "--out", out.to_str().unwrap(), "--replicas", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--replicas"));
    let o = ccbft(&[
        "keygen",
        "--out",
        out.to_str().unwrap(),
        "--replicas",
        "3",
        "--seed",
        "abc",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.join("replica-0.key").exists());
}

#[test]
fn dkg_writes_shares_and_a_group_key_that_work() {
    let tmp = TempDir::new("dkg");
    let out = tmp.0.join("dkg");
    let o = ccbft(&[
        "dkg",
        "--trusted-dealer-demo",
        "--threshold",
        "5",
        "--parties",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("phase 3/3"), "progress printed: {stdout}");
    assert!(
        stdout.contains("TRUSTED DEALER"),
        "named for what it is: {stdout}"
    );
    assert!(!stdout.contains("no trusted dealer"), "{stdout}");
    for i in 1..=7 {
        let share = out.join(format!("share-{i}.key"));
        assert_eq!(mode(&share), 0o600);
        let s = json(&share);
        assert_eq!(s["index"], i);
        assert_eq!(s["threshold"], 5);
    }
    let group = json(&out.join("group.pub"));
    assert_eq!(group["share_public_keys"].as_array().unwrap().len(), 7);
    assert_eq!(group["group_public_key"].as_str().unwrap().len(), 96);
    assert_eq!(group["qualified_dealers"].as_array().unwrap().len(), 7);

    // The written files work with the library: any 5 shares sign under the group key.
    let public = ccbft_crypto::threshold::ThresholdPublicKey::from_bytes(
        &ccbft_crypto::hex::decode(group["threshold_public_key"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let partials: Vec<_> = [2, 3, 5, 6, 7]
        .iter()
        .map(|i| {
            let s = json(&out.join(format!("share-{i}.key")));
            let bytes = ccbft_crypto::hex::decode(s["key_share"].as_str().unwrap()).unwrap();
            ccbft_crypto::threshold::KeyShare::from_bytes(&bytes)
                .unwrap()
                .sign(ccbft_crypto::bls::Tag::Receipt, b"r")
        })
        .collect();
    let sig = public
        .combine(ccbft_crypto::bls::Tag::Receipt, b"r", &partials)
        .unwrap();
    public
        .group_key()
        .verify(ccbft_crypto::bls::Tag::Receipt, b"r", &sig)
        .unwrap();
}

#[test]
fn dkg_rejects_bad_parameters() {
    let tmp = TempDir::new("dkg-bad");
    let out = tmp.0.join("d");
    let dir = out.to_str().unwrap();
    for (t, n, needle) in [
        ("8", "7", "exceeds --parties"),
        ("0", "7", "--threshold"),
        ("1", "0", "--parties"),
        ("2", "100000", "maximum"),
    ] {
        let o = ccbft(&[
            "dkg",
            "--trusted-dealer-demo",
            "--threshold",
            t,
            "--parties",
            n,
            "--out",
            dir,
        ]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{t}/{n}: {err}");
    }
    assert!(!out.exists());
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("other"), b"x").unwrap();
    let o = ccbft(&[
        "dkg",
        "--trusted-dealer-demo",
        "--threshold",
        "2",
        "--parties",
        "3",
        "--out",
        dir,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    // The all-in-one mode only runs when asked for by name.
    let fresh = tmp.0.join("fresh");
    let o = ccbft(&[
        "dkg",
        "--threshold",
        "2",
        "--parties",
        "3",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--trusted-dealer-demo"));
    assert!(!fresh.exists());
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One ceremony step of one party, as its own process.
fn step(step: &str, party: u32, key: &Path, board: &Path, extra: &[&str]) -> Output {
    let party = party.to_string();
    let mut args = vec![
        "dkg",
        step,
        "--party",
        &party,
        "--key",
        key.to_str().unwrap(),
        "--board",
        board.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ccbft(&args)
}

fn share(dir: &Path, i: u32) -> ccbft_crypto::threshold::KeyShare {
    let s = json(&dir.join(format!("share-{i}.key")));
    let bytes = ccbft_crypto::hex::decode(s["key_share"].as_str().unwrap()).unwrap();
    ccbft_crypto::threshold::KeyShare::from_bytes(&bytes).unwrap()
}

/// The "must show" ceremony: 7 operators, each a separate `ccbft dkg` process per step holding
/// only its own ceremony key, exchange only public files on the board; all derive the same
/// group key and transcript, and any 5 shares sign under it. Secrets readable by group or
/// others are refused, and steps are run once.
#[test]
fn seven_process_ceremony_without_a_trusted_dealer() {
    let tmp = TempDir::new("ceremony");
    let board = tmp.0.join("board");
    let keys: Vec<PathBuf> = (1..=7)
        .map(|i| tmp.0.join(format!("op{i}/ceremony.key")))
        .collect();
    let outs: Vec<PathBuf> = (1..=7).map(|i| tmp.0.join(format!("op{i}/out"))).collect();
    for (i, key) in (1..=7).zip(&keys) {
        fs::create_dir_all(key.parent().unwrap()).unwrap();
        let o = ccbft(&[
            "dkg",
            "init",
            "--party",
            &i.to_string(),
            "--threshold",
            "5",
            "--parties",
            "7",
            "--key",
            key.to_str().unwrap(),
            "--board",
            board.to_str().unwrap(),
        ]);
        assert!(ok(&o).contains("fingerprint"));
        assert_eq!(mode(key), 0o600);
    }
    // Deal, complain, justify: one process per party.
    for (i, key) in (1..=7).zip(&keys) {
        ok(&step("deal", i, key, &board, &[]));
    }
    assert_eq!(
        step("deal", 1, &keys[0], &board, &[]).status.code(),
        Some(2)
    );
    for (i, key) in (1..=7).zip(&keys) {
        ok(&step("complain", i, key, &board, &[]));
    }
    for (i, key) in (1..=7).zip(&keys) {
        ok(&step("justify", i, key, &board, &[]));
    }
    // The board holds only public material: no share value in the clear.
    for entry in fs::read_dir(&board).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o644, "{}", path.display());
        assert!(json(&path).get("key_share").is_none());
    }
    // A ceremony key readable by others is refused by the loader.
    fs::set_permissions(&keys[2], fs::Permissions::from_mode(0o644)).unwrap();
    let o = step(
        "finish",
        3,
        &keys[2],
        &board,
        &["--out", outs[2].to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("chmod 600"));
    fs::set_permissions(&keys[2], fs::Permissions::from_mode(0o600)).unwrap();
    // Another party's key for --party is refused.
    let o = step(
        "finish",
        4,
        &keys[2],
        &board,
        &["--out", outs[3].to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    let mut transcripts = Vec::new();
    for (i, (key, out)) in (1..=7).zip(keys.iter().zip(&outs)) {
        let stdout = ok(&step(
            "finish",
            i,
            key,
            &board,
            &["--out", out.to_str().unwrap()],
        ));
        assert!(stdout.contains("transcript"), "{stdout}");
        assert_eq!(mode(&out.join(format!("share-{i}.key"))), 0o600);
        // Each operator's directory holds only its own share.
        let files: Vec<_> = fs::read_dir(out).unwrap().collect();
        assert_eq!(files.len(), 2, "share and group.pub only");
        transcripts.push(json(&out.join("group.pub")));
    }
    for g in &transcripts {
        assert_eq!(g["group_public_key"], transcripts[0]["group_public_key"]);
        assert_eq!(g["transcript"], transcripts[0]["transcript"]);
        assert_eq!(g["qualified_dealers"].as_array().unwrap().len(), 7);
    }
    let public = ccbft_crypto::threshold::ThresholdPublicKey::from_bytes(
        &ccbft_crypto::hex::decode(transcripts[0]["threshold_public_key"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let tag = ccbft_crypto::bls::Tag::Checkpoint;
    let msg = b"checkpoint signed by the ceremony's key";
    for subset in [[1u32, 2, 3, 4, 5], [3, 4, 5, 6, 7], [1, 3, 5, 6, 7]] {
        let partials: Vec<_> = subset
            .iter()
            .map(|&i| share(&outs[i as usize - 1], i).sign(tag, msg))
            .collect();
        let sig = public.combine(tag, msg, &partials).unwrap();
        public.group_key().verify(tag, msg, &sig).unwrap();
    }
    // Four shares are not enough.
    let partials: Vec<_> = (1..=4)
        .map(|i| share(&outs[i as usize - 1], i).sign(tag, msg))
        .collect();
    assert!(public.combine(tag, msg, &partials).is_err());
}

/// Replica key files readable by group or others fail the keygen read-back through the same
/// loader (the check is no longer private to the CLI).
#[test]
fn secret_loader_refuses_shared_secret_files() {
    let tmp = TempDir::new("loader");
    let board = tmp.0.join("board");
    let key = tmp.0.join("k.key");
    ok(&ccbft(&[
        "dkg",
        "init",
        "--party",
        "1",
        "--threshold",
        "1",
        "--parties",
        "2",
        "--key",
        key.to_str().unwrap(),
        "--board",
        board.to_str().unwrap(),
    ]));
    // A second init never overwrites the key.
    let o = ccbft(&[
        "dkg",
        "init",
        "--party",
        "1",
        "--threshold",
        "1",
        "--parties",
        "2",
        "--key",
        key.to_str().unwrap(),
        "--board",
        board.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // Party 2 has not joined: steps are refused until the roster is complete.
    let o = step("deal", 1, &key, &board, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("roster entry of party 2"));
    for m in [0o640, 0o604] {
        fs::set_permissions(&key, fs::Permissions::from_mode(m)).unwrap();
        let o = step("deal", 1, &key, &board, &[]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("must not be accessible by group or others"),
            "{err}"
        );
    }
}
