//! Crash tests over the fault-injecting file layer (`ccbft_storage::faulty`): the log runs a
//! concurrent workload (group commit, segment rolls, a truncation) once, recording every
//! write, sync and directory operation; then, for thousands of seeded crash points, the disk
//! a power loss there would leave (unsynced writes dropped, kept, torn at any sector,
//! reordered; unsynced directory operations dropped) is recovered and checked: every
//! acknowledged record comes back byte for byte, nothing comes back that was not written,
//! and the watermark never claims what the disk does not hold. A second level reopens some
//! crash images (as after SIGKILL, with the page cache intact, or after power loss), appends,
//! crashes again and checks that what recovery replayed was made durable.
//!
//! Bounded for the suite: `FAULT_POINTS` crash points at level one (about a few seconds).

mod common;

use ccbft_storage::faulty::{Crash, Disk, FaultyDir};
use ccbft_storage::format::{self, SEGMENT_SIZE_MIN_BYTES};
use ccbft_storage::scan::{self, ScanError};
use ccbft_storage::testkit::{crash_payload, splitmix64};
use ccbft_storage::wal::{Wal, WalConfig, WalError};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

const APPENDERS: u64 = 8;
const APPENDS_PER_APPENDER: u64 = 60;
/// Level-one crash points: every operation index, times seeds, capped to this many.
const FAULT_POINTS: usize = 4000;
/// Level-two runs (open a crash image, append, crash again).
const REOPEN_RUNS: usize = 150;
const RECORD_KIND: u16 = 9;

fn config() -> WalConfig {
    WalConfig {
        segment_size_bytes: SEGMENT_SIZE_MIN_BYTES,
        ..WalConfig::default()
    }
}

/// A name for the poison list unique to each opened directory object.
fn key() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    PathBuf::from(format!(
        "/faulty-test/{}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// An append whose future completed, with the number of operations recorded by then.
#[derive(Debug, Clone, Copy)]
struct Ack {
    sequence: u64,
    id: u64,
    ops: usize,
}

/// The history of one run: what was appended, when it was acknowledged, and the
/// truncation (operation index it started at, its low-water mark).
struct Run {
    dir: FaultyDir,
    acks: Vec<Ack>,
    /// Every sequence appended -> payload id (all appends completed in the run).
    written: BTreeMap<u64, u64>,
    truncation: Option<(usize, u64)>,
}

fn workload(dir: FaultyDir, id_base: u64, appenders: u64, per: u64, truncate: bool) -> Run {
    let run_dir = dir.clone();
    let (acks, truncation) = common::run(move || async move {
        let (wal, _) = Wal::open_in(Rc::new(dir.clone()), key(), config(), |_| {})
            .await
            .unwrap();
        let acks = Rc::new(RefCell::new(Vec::new()));
        let truncation = Rc::new(RefCell::new(None));
        let mut tasks = Vec::new();
        for task in 0..appenders {
            let (wal, acks, dir, truncation) =
                (wal.clone(), acks.clone(), dir.clone(), truncation.clone());
            tasks.push(glommio::spawn_local(async move {
                for n in 0..per {
                    let id = id_base + task * 1000 + n;
                    let appended = wal.append(RECORD_KIND, &crash_payload(id)).await.unwrap();
                    acks.borrow_mut().push(Ack {
                        sequence: appended.sequence,
                        id,
                        ops: dir.ops(),
                    });
                    if truncate && task == 0 && n == per / 2 {
                        let low_water = wal.durable_sequence() / 2;
                        *truncation.borrow_mut() = Some((dir.ops(), low_water));
                        wal.truncate_below(low_water).await.unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await;
        }
        let acks = acks.borrow().clone();
        let truncation = *truncation.borrow();
        (acks, truncation)
    });
    let written = acks.iter().map(|a| (a.sequence, a.id)).collect();
    Run {
        dir: run_dir,
        acks,
        written,
        truncation,
    }
}

/// What a recovery of some image replayed.
type Replayed = BTreeMap<u64, Vec<u8>>;

/// Checks a recovered image against the history up to crash point `point`. `written`
/// covers every record ever appended to this log.
fn check(
    what: &str,
    report: &scan::ScanReport,
    replayed: &Replayed,
    acks: &[Ack],
    point: usize,
    written: &BTreeMap<u64, u64>,
    truncation: Option<(usize, u64)>,
) {
    assert!(
        report.corruption.is_empty(),
        "{what}: recovery reports corruption {:?}",
        report.corruption
    );
    let truncated_below = truncation
        .filter(|(at, _)| *at <= point)
        .map_or(0, |(_, low)| low);
    for ack in acks.iter().filter(|a| a.ops <= point) {
        if ack.sequence < truncated_below.min(report.first_sequence) {
            continue; // legitimately truncated away
        }
        let got = replayed
            .get(&ack.sequence)
            .unwrap_or_else(|| panic!("{what}: acknowledged sequence {} lost", ack.sequence));
        assert!(
            *got == crash_payload(ack.id),
            "{what}: acknowledged sequence {} changed",
            ack.sequence
        );
    }
    for (sequence, payload) in replayed {
        let id = written
            .get(sequence)
            .unwrap_or_else(|| panic!("{what}: sequence {sequence} was never appended"));
        assert!(
            *payload == crash_payload(*id),
            "{what}: sequence {sequence} is not what was appended"
        );
    }
    let acked_max = acks
        .iter()
        .filter(|a| a.ops <= point)
        .map(|a| a.sequence)
        .max()
        .unwrap_or(0);
    assert!(
        report.acked_sequence >= acked_max,
        "{what}: watermark {} below acknowledged {acked_max}",
        report.acked_sequence
    );
}

fn scan_image(image: &Disk) -> Result<(scan::ScanReport, Replayed), ScanError> {
    let mut replayed = Replayed::new();
    let report = scan::scan_source(image, |r| {
        assert_eq!(r.kind, RECORD_KIND);
        assert!(replayed.insert(r.sequence, r.payload.to_vec()).is_none());
    })?;
    Ok((report, replayed))
}

#[test]
fn power_loss_at_thousands_of_points_loses_and_invents_nothing() {
    let run = workload(FaultyDir::new(), 0, APPENDERS, APPENDS_PER_APPENDER, true);
    let ops = run.dir.ops();
    assert_eq!(run.acks.len() as u64, APPENDERS * APPENDS_PER_APPENDER);
    let segments = run
        .dir
        .current()
        .names()
        .iter()
        .filter(|n| format::parse_segment_file_name(n).is_some())
        .count();
    assert!(
        segments >= 3,
        "the workload rolls segments ({segments} live)"
    );
    assert!(run.truncation.is_some());
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11u64);
    eprintln!("{ops} operations recorded; fault seed {seed} (rerun with FAULT_SEED={seed})");
    let mut rng = seed;
    let mut checked = 0usize;
    let mut recovered_records = 0u64;
    for n in 0..FAULT_POINTS {
        // Every operation index once, then random ones.
        let point = if n <= ops {
            n
        } else {
            (splitmix64(&mut rng) % (ops as u64 + 1)) as usize
        };
        let crash_seed = splitmix64(&mut rng);
        let image = run.dir.image_at(point, crash_seed);
        let what = format!("crash point {point} of {ops}, crash seed {crash_seed}");
        match scan_image(&image) {
            Ok((report, replayed)) => {
                check(
                    &what,
                    &report,
                    &replayed,
                    &run.acks,
                    point,
                    &run.written,
                    run.truncation,
                );
                recovered_records += replayed.len() as u64;
            }
            // Before the log's creation finished, nothing was acknowledged.
            Err(ScanError::NotALog { .. }) => assert!(
                run.acks.iter().all(|a| a.ops > point),
                "{what}: no log, yet acknowledged"
            ),
            Err(err) => panic!("{what}: {err}"),
        }
        checked += 1;
    }
    eprintln!("{checked} crash points checked, {recovered_records} records recovered in all");
    assert!(recovered_records > 0);
}

/// Level two: recover a crash image (as after SIGKILL: unsynced bytes still in the page
/// cache, or after a power loss), append more, then lose power at any point of that second
/// run. What the first recovery replayed must have been made durable by it.
#[test]
fn recovery_makes_durable_what_it_replays() {
    let run = workload(FaultyDir::new(), 0, 4, 30, false);
    let ops = run.dir.ops();
    let mut rng = 5u64;
    let mut kills = 0;
    for n in 0..REOPEN_RUNS {
        let point = (splitmix64(&mut rng) % (ops as u64 + 1)) as usize;
        let crash = if n % 2 == 0 {
            kills += 1;
            Crash::ProcessKill
        } else {
            Crash::PowerLoss {
                seed: splitmix64(&mut rng),
            }
        };
        let image = run.dir.crash_at(point, crash);
        let what = format!("first crash {crash:?} at {point} of {ops}");
        let reopened = reopen_and_append(image.clone(), 1_000_000 * (n as u64 + 1));
        let Some((replayed, opened_at, second)) = reopened else {
            assert!(run.acks.iter().all(|a| a.ops > point), "{what}: no log");
            continue;
        };
        let mut written = run.written.clone();
        written.extend(second.acks.iter().map(|a| (a.sequence, a.id)));
        let ops2 = image.ops();
        for m in 0..8 {
            let point2 = (splitmix64(&mut rng) % (ops2 as u64 + 1)) as usize;
            let image2 = image.image_at(point2, splitmix64(&mut rng) ^ m);
            let what2 = format!("{what}, then power loss at {point2} of {ops2}");
            let (report, replayed2) =
                scan_image(&image2).unwrap_or_else(|err| panic!("{what2}: {err}"));
            // Everything acknowledged in the first run up to its crash survives...
            let first_acks: Vec<Ack> = run
                .acks
                .iter()
                .filter(|a| a.ops <= point)
                .map(|a| Ack { ops: 0, ..*a })
                .collect();
            check(
                &what2,
                &report,
                &replayed2,
                &first_acks,
                point2,
                &written,
                None,
            );
            // ...and so does what the reopen replayed, once the reopen returned.
            if point2 >= opened_at {
                for (sequence, payload) in &replayed {
                    assert!(
                        replayed2.get(sequence) == Some(payload),
                        "{what2}: sequence {sequence}, replayed by the reopen, lost"
                    );
                }
            }
            check(
                &what2,
                &report,
                &replayed2,
                &second.acks,
                point2,
                &written,
                None,
            );
        }
    }
    assert!(kills > 0);
}

/// Opens a crash image, appends a few records from two appenders; `None` when the image
/// holds no log yet (created anew then). Returns what the open replayed, the operation
/// count when the open returned, and the second run.
fn reopen_and_append(image: FaultyDir, id_base: u64) -> Option<(Replayed, usize, Run)> {
    let names = image.current().names();
    if !names.iter().any(|n| n == format::HEAD_FILE_NAME) {
        return None;
    }
    let dir = image.clone();
    let (replayed, opened_at, acks) = common::run(move || async move {
        let mut replayed = Replayed::new();
        let (wal, _) = Wal::open_in(Rc::new(dir.clone()), key(), config(), |r| {
            replayed.insert(r.sequence, r.payload.to_vec());
        })
        .await
        .unwrap_or_else(|err| panic!("reopening a crash image: {err}"));
        let opened_at = dir.ops();
        let mut acks = Vec::new();
        for n in 0..6u64 {
            let id = id_base + n;
            let appended = wal.append(RECORD_KIND, &crash_payload(id)).await.unwrap();
            acks.push(Ack {
                sequence: appended.sequence,
                id,
                ops: dir.ops(),
            });
        }
        (replayed, opened_at, acks)
    });
    let written = acks.iter().map(|a| (a.sequence, a.id)).collect();
    Some((
        replayed,
        opened_at,
        Run {
            dir: image,
            acks,
            written,
            truncation: None,
        },
    ))
}

/// An fdatasync that fails with EIO poisons the log, and the log cannot be reopened in the
/// same process (the page cache may show bytes that never reach the disk); a new process
/// recovers it without the failed group being counted as acknowledged.
#[test]
fn fdatasync_error_poisons_the_log_for_the_process() {
    let dir = FaultyDir::new();
    let log_key = key();
    let (first, failed_from) = {
        let (dir, log_key) = (dir.clone(), log_key.clone());
        common::run(move || async move {
            let (wal, _) = Wal::open_in(Rc::new(dir.clone()), log_key.clone(), config(), |_| {})
                .await
                .unwrap();
            for n in 0..5u64 {
                wal.append(RECORD_KIND, &crash_payload(n)).await.unwrap();
            }
            dir.fail_fdatasync(0);
            let err = wal
                .append(RECORD_KIND, &crash_payload(5))
                .await
                .unwrap_err();
            assert!(matches!(err, WalError::Poisoned(_)), "{err}");
            assert!(matches!(
                wal.append(RECORD_KIND, &crash_payload(6)).await,
                Err(WalError::Poisoned(_))
            ));
            drop(wal);
            // The same directory in the same process: refused.
            match Wal::open_in(Rc::new(dir.clone()), log_key, config(), |_| {}).await {
                Err(err @ WalError::PoisonedDir { .. }) => {
                    assert!(err.to_string().contains("restart the process"), "{err}")
                }
                Err(other) => panic!("expected PoisonedDir, got {other}"),
                Ok(_) => panic!("a poisoned log reopened in the same process"),
            }
            (5u64, 6u64)
        })
    };
    // A power loss now: the five acknowledged records are there, the failed one is not
    // claimed as acknowledged.
    let ops = dir.ops();
    for seed in 0..200u64 {
        let (report, replayed) = scan_image(&dir.image_at(ops, seed)).unwrap();
        assert!(
            report.corruption.is_empty(),
            "seed {seed}: {:?}",
            report.corruption
        );
        assert_eq!(report.acked_sequence, first, "seed {seed}");
        for n in 0..first {
            assert_eq!(
                replayed.get(&(n + 1)),
                Some(&crash_payload(n)),
                "seed {seed}"
            );
        }
        assert!(replayed.len() as u64 <= failed_from, "seed {seed}");
    }
}

/// A segment of another log (another UUID) put in place of one of ours is refused, not
/// mixed in, even in reporting mode.
#[test]
fn a_segment_of_another_log_is_refused() {
    let ours = workload(FaultyDir::new(), 0, 2, 40, false);
    let theirs = workload(FaultyDir::new(), 0, 2, 40, false);
    let mut disk = ours.dir.current();
    let name = format::segment_file_name(1);
    disk.put(&name, theirs.dir.current().file(&name).unwrap().clone());
    match scan::scan_source(&disk, |_| {}) {
        Err(ScanError::ForeignSegment { path, .. }) => {
            assert!(path.to_string_lossy().contains(&name))
        }
        other => panic!("expected a foreign segment, got {other:?}"),
    }
    let dir = FaultyDir::with_disk(disk);
    let refused = common::run(move || async move {
        let config = WalConfig {
            on_corruption: ccbft_storage::wal::CorruptionPolicy::Report,
            ..config()
        };
        matches!(
            Wal::open_in(Rc::new(dir), key(), config, |_| {}).await,
            Err(WalError::Scan(ScanError::ForeignSegment { .. }))
        )
    });
    assert!(refused);
}

mod damaged_bytes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever bytes get damaged, the scanner does not panic, every record it hands
        /// out is exactly one that was written, at its own sequence, and what it does not
        /// hand out up to the watermark is reported missing.
        #[test]
        fn scanner_never_invents_records(
            flips in proptest::collection::vec((any::<u64>(), 0u8..8), 0..6),
            cut in any::<u64>(),
            do_cut in any::<bool>(),
        ) {
            thread_local! {
                static RUN: (Disk, BTreeMap<u64, u64>) = {
                    let run = workload(FaultyDir::new(), 0, 3, 12, false);
                    (run.dir.current(), run.written)
                };
            }
            let (mut disk, written) = RUN.with(|r| r.clone());
            let name = format::segment_file_name(0);
            let mut buf = disk.file(&name).unwrap().clone();
            for (at, bit) in flips {
                let at = (at % buf.len() as u64) as usize;
                buf[at] ^= 1 << bit;
            }
            if do_cut {
                buf.truncate(1 + (cut % buf.len() as u64) as usize);
            }
            disk.put(&name, buf);
            let mut seen = Vec::new();
            if let Ok(report) = scan::scan_source(&disk, |r| seen.push((r.sequence, r.payload.to_vec()))) {
                for (seq, bytes) in &seen {
                    let id = written.get(seq);
                    prop_assert!(id.is_some());
                    prop_assert_eq!(bytes, &crash_payload(*id.unwrap()));
                }
                let missing: u64 = report.corruption.iter().map(|c| c.last_missing - c.first_missing + 1).sum();
                prop_assert!(seen.len() as u64 + missing >= report.acked_sequence.min(report.last_sequence));
            }
        }
    }
}

/// A truncation whose superblock fdatasync fails leaves memory as the disk says: the
/// segments are still listed and readable, the log is poisoned, and a new process recovers
/// a consistent log from either superblock.
#[test]
fn a_failed_truncation_leaves_memory_and_disk_consistent() {
    let dir = FaultyDir::new();
    let run_dir = dir.clone();
    let (acks, first_before) = common::run(move || async move {
        let (wal, _) = Wal::open_in(Rc::new(run_dir.clone()), key(), config(), |_| {})
            .await
            .unwrap();
        let mut acks = Vec::new();
        for id in 0..120u64 {
            let appended = wal.append(RECORD_KIND, &crash_payload(id)).await.unwrap();
            acks.push((appended, id));
        }
        assert!(acks.last().unwrap().0.location.segment >= 2);
        let first_before = wal.first_sequence();
        run_dir.fail_fdatasync(0);
        assert!(wal.truncate_below(100).await.is_err());
        assert_eq!(wal.first_sequence(), first_before, "memory unchanged");
        let (oldest, id) = acks[0];
        assert_eq!(
            wal.read(oldest.location).await.unwrap().payload,
            crash_payload(id),
            "the segments memory lists are still there"
        );
        assert!(matches!(
            wal.append(RECORD_KIND, b"x").await,
            Err(WalError::Poisoned(_))
        ));
        (acks, first_before)
    });
    for seed in 0..100u64 {
        let (report, replayed) = scan_image(&dir.image_at(dir.ops(), seed)).unwrap();
        assert!(report.corruption.is_empty(), "seed {seed}");
        assert!(report.first_sequence >= first_before);
        for (appended, id) in &acks {
            if appended.sequence >= report.first_sequence {
                assert_eq!(replayed.get(&appended.sequence), Some(&crash_payload(*id)));
            }
        }
        assert_eq!(report.last_sequence, acks.len() as u64, "seed {seed}");
    }
}
