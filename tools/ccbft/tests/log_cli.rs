//! `ccbft log bench` and `ccbft log inspect` on the real disk: JSON fields, exit codes,
//! corruption found at its offset, clear errors on bad input. No timing is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ccbft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccbft"))
        .args(args)
        .output()
        .expect("running ccbft")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("ccbft-log-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn bench_then_inspect_then_corrupt() {
    let root = TempDir::new("bench");
    let log = root.0.join("log");
    let out = ccbft(&[
        "log",
        "bench",
        "--dir",
        s(&log),
        "--appenders",
        "8",
        "--record-size",
        "256",
        "--seconds",
        "0.5",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    for field in [
        "appends_per_s",
        "mb_per_s",
        "fdatasyncs_per_s",
        "records_per_fdatasync",
        "raw_fdatasync_per_s",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
    let appends = report["appends"].as_u64().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).is_empty(),
        "progress on stderr"
    );

    let out = ccbft(&["log", "inspect", s(&log), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected = json(&out);
    assert_eq!(inspected["records"].as_u64(), Some(appends));
    assert_eq!(inspected["last_sequence"].as_u64(), Some(appends));
    assert!(inspected["segments"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(inspected["corruption"].as_array().map(Vec::len), Some(0));

    // Flip a byte of the first record (offset 4096 + 64 in segment 0, after its group
    // header): corruption, exit 1.
    let segment = log.join("wal-00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4096 + 100] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let out = ccbft(&["log", "inspect", s(&log), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let inspected = json(&out);
    let corruption = inspected["corruption"].as_array().unwrap();
    assert_eq!(corruption.len(), 1);
    assert_eq!(corruption[0]["segment"].as_u64(), Some(0));
    assert_eq!(corruption[0]["offset"].as_u64(), Some(4160));
    let text = ccbft(&["log", "inspect", s(&log)]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains("CORRUPTION: segment 0 offset 4160"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let root = TempDir::new("bad");
    let out = ccbft(&[
        "log",
        "bench",
        "--dir",
        s(&root.0.join("l")),
        "--appenders",
        "0",
        "--seconds",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--appenders"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ccbft(&["log", "inspect", s(&root.0.join("absent"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));

    std::fs::write(root.0.join("notes.txt"), b"hi").unwrap();
    let out = ccbft(&["log", "inspect", s(&root.0)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a write-ahead log directory"));
}

/// `log inspect` exits non-zero whenever an acknowledged record is missing: a tail cut at
/// a block boundary, or a deleted last segment (review cases of issue 11, where it exited 0).
#[test]
fn inspect_fails_when_acknowledged_records_are_missing() {
    let root = TempDir::new("missing");
    let log = root.0.join("log");
    let out = ccbft(&[
        "log",
        "bench",
        "--dir",
        s(&log),
        "--appenders",
        "8",
        "--record-size",
        "2000",
        "--seconds",
        "0.5",
        "--segment-size",
        "65536",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let appends = json(&out)["appends"].as_u64().unwrap();
    let inspected = json(&ccbft(&["log", "inspect", s(&log), "--json"]));
    assert_eq!(inspected["acked_sequence"].as_u64(), Some(appends));
    let segments = inspected["segments"].as_array().unwrap().len() as u64;
    assert!(segments >= 3, "{segments} segments");

    // Cut the last segment at a block boundary.
    let last = log.join(format!("wal-{:020}.seg", segments - 1));
    let saved = std::fs::read(&last).unwrap();
    assert!(saved.len() > 2 * 4096);
    std::fs::write(&last, &saved[..4096]).unwrap();
    let out = ccbft(&["log", "inspect", s(&log), "--json"]);
    assert_eq!(out.status.code(), Some(1), "a cut tail is not a clean log");
    let corruption = json(&out)["corruption"].as_array().unwrap().clone();
    assert_eq!(
        corruption.last().unwrap()["last_missing"].as_u64(),
        Some(appends)
    );
    assert!(json(&out)["torn_tail"].is_null());
    // `recover` refuses it rather than accept the loss.
    let out = ccbft(&["log", "recover", s(&log)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("corrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Delete the last segment instead.
    std::fs::remove_file(&last).unwrap();
    let text = ccbft(&["log", "inspect", s(&log)]);
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("CORRUPTION"), "{stdout}");
    assert!(
        stdout.contains(&format!("segment {}", segments - 1)),
        "names the missing segment: {stdout}"
    );
}

/// `log recover` on an empty directory that is not a log refuses, and leaves it empty.
#[test]
fn recover_refuses_an_empty_directory() {
    let root = TempDir::new("empty");
    let out = ccbft(&["log", "recover", s(&root.0)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a write-ahead log directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&root.0).unwrap().count(),
        0,
        "nothing created"
    );
}
