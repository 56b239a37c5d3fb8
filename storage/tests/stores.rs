//! Safety state, batch and block stores over the log, across restarts and checkpoints.

mod common;

use ccbft_storage::merkle::leaf_hash;
use ccbft_storage::stores::{
    ObjectKind, Retain, SafetyKind, StableCheckpoint, Storage, StorageError, KIND_USER_MIN,
};
use ccbft_storage::wal::WalConfig;
use std::path::PathBuf;

fn config() -> WalConfig {
    WalConfig {
        segment_size_bytes: 4 << 20,
        ..WalConfig::default()
    }
}

fn batch(n: u64) -> Vec<u8> {
    let mut bytes = n.to_le_bytes().to_vec();
    bytes.extend((0..30_000u64).map(|i| (i * 13 + n) as u8));
    bytes
}

#[test]
fn safety_state_batches_and_blocks_survive_restarts_and_checkpoints() {
    let dir = common::temp_dir();
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, config(), |_| {}).await.unwrap();
        let durable = store
            .persist_safety(SafetyKind::View, 0, b"view 3")
            .await
            .unwrap();
        assert!(
            store.wal().durable_sequence() >= durable.sequence,
            "durable before the vote"
        );
        let _ = store
            .persist_safety(SafetyKind::HighestVotedRound, 0, b"round 9")
            .await
            .unwrap();
        let _ = store
            .persist_safety(SafetyKind::Lock, 0, b"qc 8")
            .await
            .unwrap();
        for slot in 0..5 {
            let _ = store
                .persist_safety(SafetyKind::PreparedCertificate, slot, &[slot as u8; 100])
                .await
                .unwrap();
        }
        let _ = store
            .persist_safety(SafetyKind::View, 0, b"view 4")
            .await
            .unwrap();
        for n in 1..=300u64 {
            let bytes = batch(n);
            assert!(store
                .put(ObjectKind::Batch, leaf_hash(&bytes), n, &bytes)
                .await
                .unwrap()
                .is_some());
        }
        let block = b"block one".to_vec();
        let _ = store
            .put(ObjectKind::Block, leaf_hash(&block), 1, &block)
            .await
            .unwrap();
        // Idempotent, and a digest cannot move to another number.
        assert!(store
            .put(ObjectKind::Batch, leaf_hash(&batch(7)), 7, &batch(7))
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            store
                .put(ObjectKind::Batch, leaf_hash(&batch(7)), 8, &batch(7))
                .await,
            Err(StorageError::DigestConflict { .. })
        ));
        let _ = store.append_user(KIND_USER_MIN, b"mine").await.unwrap();
        assert!(store.append_user(3, b"no").await.is_err());
    });

    // Restart: everything is back from the log.
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let mut user = Vec::new();
        let (store, recovery) = Storage::open(&path, config(), |r| user.push(r.payload.to_vec()))
            .await
            .unwrap();
        assert!(recovery.segments >= 2, "the batches span segments");
        assert_eq!(user, vec![b"mine".to_vec()]);
        assert_eq!(store.safety(SafetyKind::View, 0).unwrap(), b"view 4");
        assert_eq!(store.safety(SafetyKind::Lock, 0).unwrap(), b"qc 8");
        assert_eq!(store.safety_entries().len(), 3 + 5);
        for n in [1u64, 150, 300] {
            let (digest, bytes) = store
                .get_by_number(ObjectKind::Batch, n)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((digest, &bytes), (leaf_hash(&batch(n)), &batch(n)));
            assert_eq!(
                store
                    .get_by_digest(ObjectKind::Batch, &digest)
                    .await
                    .unwrap()
                    .unwrap()
                    .0,
                n
            );
        }
        assert_eq!(store.highest_number(ObjectKind::Batch), Some(300));
        assert_eq!(
            store
                .get_by_number(ObjectKind::Block, 1)
                .await
                .unwrap()
                .unwrap()
                .1,
            b"block one"
        );

        // A stable checkpoint at 250: batches up to it go, and so do the log segments that
        // held only them; the safety state stays.
        let _ = store
            .forget_safety_below(SafetyKind::PreparedCertificate, 3)
            .await
            .unwrap();
        let segments_before = std::fs::read_dir(&path).unwrap().count();
        let _ = store
            .stable_checkpoint_reached(
                StableCheckpoint {
                    number: 250,
                    root: [7; 32],
                },
                &Retain {
                    low_water: u64::MAX,
                    user_kinds: vec![KIND_USER_MIN],
                },
            )
            .await
            .unwrap();
        assert!(store
            .get_by_number(ObjectKind::Batch, 250)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .get_by_number(ObjectKind::Batch, 251)
            .await
            .unwrap()
            .is_some());
        assert!(
            std::fs::read_dir(&path).unwrap().count() < segments_before,
            "segments truncated"
        );
    });

    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let mut user = Vec::new();
        let (store, recovery) = Storage::open(&path, config(), |r| user.push(r.payload.to_vec()))
            .await
            .unwrap();
        assert_eq!(
            user,
            vec![b"mine".to_vec()],
            "kept: its kind was to be kept"
        );
        assert!(
            recovery.first_sequence > 1,
            "log starts after the truncation"
        );
        assert_eq!(store.stable_checkpoint().unwrap().number, 250);
        assert_eq!(store.safety(SafetyKind::View, 0).unwrap(), b"view 4");
        assert_eq!(
            store.safety(SafetyKind::HighestVotedRound, 0).unwrap(),
            b"round 9"
        );
        assert!(store.safety(SafetyKind::PreparedCertificate, 2).is_none());
        assert_eq!(
            store.safety(SafetyKind::PreparedCertificate, 4).unwrap(),
            vec![4u8; 100]
        );
        assert!(store
            .get_by_number(ObjectKind::Batch, 100)
            .await
            .unwrap()
            .is_none());
        for n in 251..=300u64 {
            assert_eq!(
                store
                    .get_by_number(ObjectKind::Batch, n)
                    .await
                    .unwrap()
                    .unwrap()
                    .1,
                batch(n)
            );
        }
    });
}

fn small_segments() -> WalConfig {
    WalConfig {
        segment_size_bytes: ccbft_storage::format::SEGMENT_SIZE_MIN_BYTES,
        ..WalConfig::default()
    }
}

/// Review case: `stable_checkpoint_reached` snapshotted the safety entries and re-persisted
/// them across awaits; a concurrent `persist_safety` was overwritten by the older value.
#[test]
fn checkpoint_copy_racing_persist_safety_never_rolls_back() {
    let dir = common::temp_dir();
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, config(), |_| {}).await.unwrap();
        let store = std::rc::Rc::new(store);
        for round in 1..=5u64 {
            let old = format!("round {}", round * 10);
            let new = format!("round {}", round * 10 + 7);
            let _ = store
                .persist_safety(SafetyKind::HighestVotedRound, 0, old.as_bytes())
                .await
                .unwrap();
            for n in 0..3u64 {
                let bytes = batch(round * 100 + n);
                let _ = store
                    .put(
                        ObjectKind::Batch,
                        leaf_hash(&bytes),
                        round * 100 + n,
                        &bytes,
                    )
                    .await
                    .unwrap();
            }
            // The checkpoint copies the old value forward while the new one is persisted.
            let checkpoint = {
                let store = store.clone();
                glommio::spawn_local(async move {
                    store
                        .stable_checkpoint_reached(
                            StableCheckpoint {
                                number: round * 100 + 2,
                                root: [round as u8; 32],
                            },
                            &Retain {
                                low_water: u64::MAX,
                                user_kinds: vec![],
                            },
                        )
                        .await
                        .unwrap()
                })
            };
            let persist = {
                let (store, new) = (store.clone(), new.clone());
                glommio::spawn_local(async move {
                    store
                        .persist_safety(SafetyKind::HighestVotedRound, 0, new.as_bytes())
                        .await
                        .unwrap()
                })
            };
            let (_, _) = (checkpoint.await, persist.await);
            assert_eq!(
                store.safety(SafetyKind::HighestVotedRound, 0).unwrap(),
                new.as_bytes(),
                "round {round}: the checkpoint's copy rolled the entry back"
            );
        }
        // Appends woken out of order: the higher sequence wins, whatever the wake order.
        let a = {
            let store = store.clone();
            glommio::spawn_local(async move {
                store
                    .persist_safety(SafetyKind::Lock, 0, b"a")
                    .await
                    .unwrap()
            })
        };
        let b = {
            let store = store.clone();
            glommio::spawn_local(async move {
                store
                    .persist_safety(SafetyKind::Lock, 0, b"b")
                    .await
                    .unwrap()
            })
        };
        let (a, b) = (a.await, b.await);
        let winner: &[u8] = if a.sequence > b.sequence { b"a" } else { b"b" };
        assert_eq!(store.safety(SafetyKind::Lock, 0).unwrap(), winner);
    });
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, config(), |_| {}).await.unwrap();
        assert_eq!(
            store.safety(SafetyKind::HighestVotedRound, 0).unwrap(),
            b"round 57",
            "replay keeps the newest value"
        );
    });
}

/// Review case: `truncate_below` ignored user record kinds; an acknowledged user record was
/// gone after a checkpoint and a reopen.
#[test]
fn truncation_keeps_the_user_records_it_is_asked_to_keep() {
    const KEPT: u16 = KIND_USER_MIN;
    const ABOVE_LOW_WATER: u16 = KIND_USER_MIN + 1;
    let dir = common::temp_dir();
    let path: PathBuf = dir.path().to_path_buf();
    let segments_before = common::run(move || async move {
        let (store, _) = Storage::open(&path, small_segments(), |_| {})
            .await
            .unwrap();
        let _ = store.append_user(KEPT, b"keep me").await.unwrap();
        let mut low_water = 0;
        for n in 1..=40u64 {
            let bytes = batch(n);
            let _ = store
                .put(ObjectKind::Batch, leaf_hash(&bytes), n, &bytes)
                .await
                .unwrap();
            if n == 20 {
                low_water = store
                    .append_user(ABOVE_LOW_WATER, b"above the low-water mark")
                    .await
                    .unwrap()
                    .sequence;
            }
        }
        let segments = std::fs::read_dir(&path).unwrap().count();
        // Nothing is asked to be kept below the checkpoint's needs but the records of
        // KEPT and everything from `low_water` up; batches up to 40 go.
        let _ = store
            .stable_checkpoint_reached(
                StableCheckpoint {
                    number: 40,
                    root: [1; 32],
                },
                &Retain {
                    low_water,
                    user_kinds: vec![KEPT],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_dir(&path).unwrap().count(),
            segments,
            "KEPT's record is in the first segment: nothing goes"
        );
        // Without KEPT in the list, the cut is the low-water mark.
        let _ = store
            .stable_checkpoint_reached(
                StableCheckpoint {
                    number: 40,
                    root: [2; 32],
                },
                &Retain {
                    low_water,
                    user_kinds: vec![],
                },
            )
            .await
            .unwrap();
        segments
    });
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let mut user = Vec::new();
        let (store, recovery) = Storage::open(&path, small_segments(), |r| {
            user.push((r.kind, r.payload.to_vec()))
        })
        .await
        .unwrap();
        assert!(std::fs::read_dir(&path).unwrap().count() < segments_before);
        assert!(recovery.first_sequence > 1);
        assert!(
            user.contains(&(ABOVE_LOW_WATER, b"above the low-water mark".to_vec())),
            "a record above the low-water mark stays: {user:?}"
        );
        assert!(store.stable_checkpoint().is_some());
    });
    // And with KEPT kept, its record survives a checkpoint and a reopen.
    let dir = common::temp_dir();
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, small_segments(), |_| {})
            .await
            .unwrap();
        let _ = store.append_user(KEPT, b"keep me").await.unwrap();
        for n in 1..=40u64 {
            let bytes = batch(n);
            let _ = store
                .put(ObjectKind::Batch, leaf_hash(&bytes), n, &bytes)
                .await
                .unwrap();
        }
        let _ = store
            .stable_checkpoint_reached(
                StableCheckpoint {
                    number: 40,
                    root: [1; 32],
                },
                &Retain {
                    low_water: u64::MAX,
                    user_kinds: vec![KEPT],
                },
            )
            .await
            .unwrap();
    });
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let mut user = Vec::new();
        let _ = Storage::open(&path, small_segments(), |r| user.push(r.payload.to_vec()))
            .await
            .unwrap();
        assert_eq!(user, vec![b"keep me".to_vec()]);
    });
}

/// A different digest under a number already stored is refused, not overwritten.
#[test]
fn a_different_digest_under_the_same_number_is_refused() {
    let dir = common::temp_dir();
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, config(), |_| {}).await.unwrap();
        let (one, two) = (batch(1), batch(2));
        let _ = store
            .put(ObjectKind::Batch, leaf_hash(&one), 5, &one)
            .await
            .unwrap();
        assert!(matches!(
            store.put(ObjectKind::Batch, leaf_hash(&two), 5, &two).await,
            Err(StorageError::NumberConflict { number: 5, .. })
        ));
        let (digest, bytes) = store
            .get_by_number(ObjectKind::Batch, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((digest, bytes), (leaf_hash(&one), one));
    });
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, config(), |_| {}).await.unwrap();
        let (digest, _) = store
            .get_by_number(ObjectKind::Batch, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(digest, leaf_hash(&batch(1)));
    });
}

/// Review case: a batch whose client bytes held an encoded safety record, plus one flipped
/// header bit, reopened with no corruption reported and HighestVotedRound rolled back from
/// 7 to 1 (the scanner resynced inside the payload). Records are now read only where their
/// group header says, group headers verify only under the log's secret UUID, and records
/// chain: the forgery is never replayed and the damage is reported.
#[test]
fn a_record_forged_in_a_payload_is_never_replayed() {
    use ccbft_storage::format::{self, GroupHeader, RecordHeader};
    use ccbft_storage::stores::KIND_SAFETY;
    use ccbft_storage::wal::{CorruptionPolicy, WalError};
    let dir = common::temp_dir();
    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        let (store, _) = Storage::open(&path, config(), |_| {}).await.unwrap();
        let _ = store
            .persist_safety(SafetyKind::HighestVotedRound, 0, b"round 1")
            .await
            .unwrap();
        // The attacker knows the format and even this log's record key (the strongest
        // case); it cannot know the UUID, so its group header carries a guessed one.
        let head = std::fs::read(path.join(format::HEAD_FILE_NAME)).unwrap();
        let key = format::record_key(&format::decode_head(&head).unwrap().log_id);
        let mut forged_safety = vec![SafetyKind::HighestVotedRound as u8];
        forged_safety.extend_from_slice(&0u64.to_le_bytes());
        forged_safety.extend_from_slice(&0u64.to_le_bytes());
        forged_safety.extend_from_slice(b"round 1");
        let mut forged = Vec::new();
        for sequence in 3..=4u64 {
            let header = RecordHeader {
                payload_len: forged_safety.len() as u32,
                sequence,
                kind: KIND_SAFETY,
                prev: 0,
            };
            format::encode_record(&mut forged, key, &header, &forged_safety);
        }
        let mut group = vec![0u8; 64];
        format::encode_group_header(
            &mut group,
            &[0x42; 16],
            &GroupHeader {
                first_sequence: 3,
                records: 2,
                records_bytes: forged.len() as u64,
                chain: 0,
            },
        );
        // The batch record's payload starts 8192 + 64 + 40 + 40 into the segment; put the
        // forged group at the next block boundary and forged records all through it.
        let mut bytes = vec![0u8; 8000];
        let at_block = (12288 - (8192 + 64 + 40 + 40)) as usize;
        bytes[at_block..at_block + 64].copy_from_slice(&group);
        bytes[at_block + 64..at_block + 64 + forged.len()].copy_from_slice(&forged);
        bytes[8..8 + forged.len()].copy_from_slice(&forged);
        let _ = store
            .put(ObjectKind::Batch, leaf_hash(&bytes), 1, &bytes)
            .await
            .unwrap();
        let _ = store
            .persist_safety(SafetyKind::HighestVotedRound, 0, b"round 7")
            .await
            .unwrap();
    });
    // One flipped bit in the batch record's header (its sequence field).
    let segment = dir.path().join(ccbft_storage::format::segment_file_name(0));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8192 + 64 + 16] ^= 0x04;
    std::fs::write(&segment, bytes).unwrap();

    let path: PathBuf = dir.path().to_path_buf();
    common::run(move || async move {
        match Storage::open(&path, config(), |_| {}).await {
            Err(StorageError::Wal(WalError::Corrupt { corruption })) => {
                assert_eq!(corruption.len(), 1);
                assert_eq!(
                    (corruption[0].first_missing, corruption[0].last_missing),
                    (2, 2)
                );
            }
            Err(other) => panic!("expected the batch reported corrupt, got {other}"),
            Ok(_) => panic!("a damaged acknowledged record opened without a report"),
        }
        let report = WalConfig {
            on_corruption: CorruptionPolicy::Report,
            ..config()
        };
        let (store, recovery) = Storage::open(&path, report, |_| {}).await.unwrap();
        assert_eq!(recovery.corruption.len(), 1);
        assert_eq!(recovery.last_sequence, 3);
        assert_eq!(
            store.safety(SafetyKind::HighestVotedRound, 0).unwrap(),
            b"round 7",
            "no roll-back from a forged record"
        );
    });
}
