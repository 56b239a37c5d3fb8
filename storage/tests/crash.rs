//! Crash test on the real disk: a child process appends with group commit and prints each
//! acknowledged sequence; we SIGKILL it at random points, reopen, and check that every
//! acknowledged record is present and intact, that every record present is one the child
//! wrote (nothing invented, nothing half-written), and that the log takes new appends.

mod common;

use ccbft_storage::testkit::{crash_payload, crash_payload_id, splitmix64};
use ccbft_storage::wal::{Wal, WalConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CRASH_ROUNDS: u32 = 40;
const KILL_DELAY_MAX_MS: u64 = 400;
const SEGMENT_SIZE_BYTES: u64 = 4 << 20;
const APPENDERS: u32 = 16;

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_record() {
    let dir = common::temp_dir();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = seed;
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new(); // sequence -> id
    let mut kills_after_acks = 0;
    for round in 0..CRASH_ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ccbft-wal-crash-child"))
            .arg(dir.path())
            .arg(APPENDERS.to_string())
            .arg(SEGMENT_SIZE_BYTES.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the crash child");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        let delay = splitmix64(&mut rng) % KILL_DELAY_MAX_MS;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child must have been killed"
        );
        let lines = reader.join().unwrap();
        let mut round_acks = 0;
        for line in &lines {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some("ack"), Some(seq), Some(id)) => {
                    let (seq, id): (u64, u64) = (seq.parse().unwrap(), id.parse().unwrap());
                    assert!(
                        acked.insert(seq, id).is_none(),
                        "sequence {seq} acknowledged twice"
                    );
                    round_acks += 1;
                }
                (Some("open"), Some(_), None) => {}
                // A line cut by the kill mid-write.
                _ => {}
            }
        }
        if round_acks > 0 {
            kills_after_acks += 1;
        }
        check_and_extend(dir.path(), &acked, round);
    }
    assert!(
        kills_after_acks >= CRASH_ROUNDS / 2,
        "too few rounds got as far as acknowledging"
    );
    eprintln!(
        "{} acknowledged records over {CRASH_ROUNDS} kills",
        acked.len()
    );
}

/// Reopens the log, checks it against the acknowledgements, appends a few records.
fn check_and_extend(dir: &std::path::Path, acked: &BTreeMap<u64, u64>, round: u32) {
    let dir = dir.to_path_buf();
    let acked = acked.clone();
    common::run(move || async move {
        let config = WalConfig {
            segment_size_bytes: SEGMENT_SIZE_BYTES,
            ..WalConfig::default()
        };
        let mut records: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let (wal, recovery) = Wal::open(&dir, config, |record| {
            assert_eq!(record.kind, 7);
            assert!(records
                .insert(record.sequence, record.payload.to_vec())
                .is_none());
        })
        .await
        .unwrap_or_else(|err| panic!("round {round}: reopening failed: {err}"));
        assert!(recovery.corruption.is_empty());
        // Contiguous from the start.
        let expected: Vec<u64> = (recovery.first_sequence..=recovery.last_sequence).collect();
        assert_eq!(
            records.keys().copied().collect::<Vec<_>>(),
            expected,
            "round {round}"
        );
        // Nothing invented: every record present is a whole payload the child wrote.
        for (seq, payload) in &records {
            assert!(
                crash_payload_id(payload).is_some(),
                "round {round}: record {seq} is not a child payload"
            );
        }
        // Every acknowledged record is there and is the one acknowledged.
        for (seq, id) in &acked {
            let payload = records
                .get(seq)
                .unwrap_or_else(|| panic!("round {round}: acknowledged sequence {seq} lost"));
            assert_eq!(
                *payload,
                crash_payload(*id),
                "round {round}: sequence {seq} changed"
            );
        }
        // The log takes new appends, right after the recovered end.
        for n in 0..3u64 {
            let appended = wal.append(7, &crash_payload(u64::MAX - n)).await.unwrap();
            assert_eq!(appended.sequence, recovery.last_sequence + 1 + n);
            let back = wal.read(appended.location).await.unwrap();
            assert_eq!(back.payload, crash_payload(u64::MAX - n));
        }
    });
}
