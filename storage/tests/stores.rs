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
