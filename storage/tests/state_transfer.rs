//! State transfer from three untrusted peers, one serving corrupted chunks; interruption and
//! resumption from the progress on disk.

mod common;

use ccbft_storage::checkpoint::{Accepted, Chunk, ChunkRejected, PeerId, Snapshot, StateTransfer};
use ccbft_storage::merkle::MerkleTree;
use ccbft_storage::testkit::splitmix64;

const CHUNK_SIZE_BYTES: u32 = 4096;
const BAD_PEER: PeerId = 2;

fn state(len: usize) -> Vec<u8> {
    let mut rng = 42u64;
    (0..len).map(|_| splitmix64(&mut rng) as u8).collect()
}

/// What peer `peer` answers when asked for chunk `index`; peer 2 flips a byte, or sends
/// another chunk's bytes and proof under the asked index, or a short chunk.
fn serve(snapshot: &Snapshot, peer: PeerId, index: u64) -> Chunk {
    let mut chunk = snapshot.chunk(index).unwrap();
    if peer == BAD_PEER {
        match index % 3 {
            0 => {
                let at = (index as usize * 7) % chunk.bytes.len();
                chunk.bytes[at] ^= 0x10;
            }
            1 => {
                let other = snapshot
                    .chunk((index + 1) % snapshot.manifest().chunk_count())
                    .unwrap();
                chunk.bytes = other.bytes;
                chunk.proof.siblings = other.proof.siblings;
            }
            _ => chunk.bytes.truncate(100),
        }
    }
    chunk
}

/// Runs rounds of requests until done or `chunks_budget` chunks were stored.
fn transfer_rounds(
    transfer: &mut StateTransfer,
    snapshot: &Snapshot,
    chunks_budget: u64,
) -> (u64, u64) {
    let (mut stored, mut rejected) = (0u64, 0u64);
    for round in 0..100u64 {
        if transfer.is_complete() || stored >= chunks_budget {
            break;
        }
        for (peer, index) in transfer.plan(&[0, 1, 2], round) {
            if stored >= chunks_budget {
                break;
            }
            match transfer.store(peer, &serve(snapshot, peer, index)).unwrap() {
                Ok(Accepted::New) => stored += 1,
                Ok(Accepted::AlreadyHad) => {}
                Err(ChunkRejected::BadProof { .. } | ChunkRejected::WrongLength { .. }) => {
                    rejected += 1
                }
                Err(other) => panic!("unexpected rejection {other}"),
            }
        }
    }
    (stored, rejected)
}

#[test]
fn three_peers_one_corrupt_rebuilds_the_exact_root() {
    let original = state(300 * CHUNK_SIZE_BYTES as usize + 123);
    let snapshot = Snapshot::new(original.clone(), CHUNK_SIZE_BYTES).unwrap();
    let dir = common::temp_dir();
    let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    assert_eq!(transfer.missing_count(), 301);
    let (stored, rejected) = transfer_rounds(&mut transfer, &snapshot, u64::MAX);
    assert_eq!(stored, 301);
    assert!(rejected >= 1, "the bad peer was asked and refused");
    assert_eq!(
        transfer.faulty_peers().iter().copied().collect::<Vec<_>>(),
        vec![BAD_PEER]
    );
    let path = transfer.finish().unwrap();
    let rebuilt = std::fs::read(path).unwrap();
    assert_eq!(rebuilt, original);
    let chunks: Vec<&[u8]> = rebuilt.chunks(CHUNK_SIZE_BYTES as usize).collect();
    assert_eq!(MerkleTree::from_leaves(chunks).root(), snapshot.root());
}

#[test]
fn every_kind_of_bad_chunk_is_rejected() {
    let snapshot = Snapshot::new(state(10 * CHUNK_SIZE_BYTES as usize), CHUNK_SIZE_BYTES).unwrap();
    let dir = common::temp_dir();
    let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    for index in 0..3 {
        let bad = serve(&snapshot, BAD_PEER, index);
        assert!(
            transfer.store(BAD_PEER, &bad).unwrap().is_err(),
            "chunk {index}"
        );
    }
    let mut wrong_index = snapshot.chunk(4).unwrap();
    wrong_index.index = 5;
    assert!(transfer.store(0, &wrong_index).unwrap().is_err());
    let mut past_end = snapshot.chunk(9).unwrap();
    past_end.index = 10;
    assert_eq!(
        transfer.store(1, &past_end).unwrap(),
        Err(ChunkRejected::OutOfRange { index: 10 })
    );
    assert_eq!(transfer.missing_count(), 10);
    // A snapshot of other state with the same shape does not fit this root.
    let other = Snapshot::new(
        state(10 * CHUNK_SIZE_BYTES as usize + 1)[1..].to_vec(),
        CHUNK_SIZE_BYTES,
    )
    .unwrap();
    assert!(transfer
        .store(0, &other.chunk(3).unwrap())
        .unwrap()
        .is_err());
    assert!(
        transfer.finish().is_err(),
        "incomplete transfer does not finish"
    );
}

#[test]
fn an_interrupted_transfer_resumes_from_disk() {
    let original = state(200 * CHUNK_SIZE_BYTES as usize);
    let snapshot = Snapshot::new(original.clone(), CHUNK_SIZE_BYTES).unwrap();
    let dir = common::temp_dir();
    {
        let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
        let (stored, _) = transfer_rounds(&mut transfer, &snapshot, 70);
        assert_eq!(stored, 70);
        // Dropped here: the process "dies" mid-transfer.
    }
    let transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    assert_eq!(transfer.missing_count(), 130, "progress survived");
    // Damage one chunk recorded as received: it must be fetched again.
    let received: Vec<u64> = (0..200)
        .filter(|i| !transfer.missing().any(|m| m == *i))
        .collect();
    drop(transfer);
    let partial = dir.path().join("state.partial");
    let mut bytes = std::fs::read(&partial).unwrap();
    bytes[received[3] as usize * CHUNK_SIZE_BYTES as usize] ^= 1;
    std::fs::write(&partial, bytes).unwrap();
    let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    assert_eq!(transfer.missing_count(), 131);
    let (stored, _) = transfer_rounds(&mut transfer, &snapshot, u64::MAX);
    assert_eq!(stored, 131);
    let path = transfer.finish().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), original);

    // Progress for another checkpoint is discarded, not mixed in.
    let newer = Snapshot::new(state(50 * CHUNK_SIZE_BYTES as usize), CHUNK_SIZE_BYTES).unwrap();
    let transfer = StateTransfer::open(dir.path(), newer.manifest()).unwrap();
    assert_eq!(transfer.missing_count(), 50);
}

#[test]
fn snapshot_written_and_reopened_serves_the_same_root() {
    let dir = common::temp_dir();
    let snapshot = Snapshot::new(state(33_333), CHUNK_SIZE_BYTES).unwrap();
    let path = dir.path().join("checkpoint-7");
    snapshot.write(&path).unwrap();
    let reopened = Snapshot::open(&path, CHUNK_SIZE_BYTES).unwrap();
    assert_eq!(reopened.root(), snapshot.root());
    assert_eq!(reopened.chunk(8), snapshot.chunk(8));
}

use ccbft_storage::checkpoint::{CheckpointError, Manifest, CHUNK_SIZE_MAX_BYTES};

/// Review case: a peer's manifest with state_len = 2^40 made the transfer allocate 8.9 GB
/// and abort, and created a 1 TiB sparse file. Sizes now come from the signed checkpoint:
/// a peer's other size is refused and blamed on that peer, and even a signed 2^40-byte
/// state costs a bitmap in memory and nothing on disk before chunks arrive.
#[test]
fn state_len_two_to_the_forty_from_a_peer_is_refused() {
    let snapshot = Snapshot::new(state(10 * CHUNK_SIZE_BYTES as usize), CHUNK_SIZE_BYTES).unwrap();
    let dir = common::temp_dir();
    let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    let huge = Manifest {
        state_len: 1 << 40,
        ..snapshot.manifest()
    };
    let rejected = transfer.check_peer_manifest(BAD_PEER, &huge).unwrap_err();
    assert_eq!(rejected.peer, BAD_PEER);
    assert_eq!(transfer.manifest(), snapshot.manifest());
    assert_eq!(transfer.missing_count(), 10);
    assert!(transfer
        .check_peer_manifest(0, &snapshot.manifest())
        .is_ok());
    assert_eq!(
        transfer.faulty_peers().iter().copied().collect::<Vec<_>>(),
        vec![BAD_PEER]
    );
    drop(transfer);

    // Signed with 4 KiB chunks: 2^28 chunks, beyond what a transfer holds: refused up front.
    let other = common::temp_dir();
    assert!(matches!(
        StateTransfer::open(other.path(), huge),
        Err(CheckpointError::BadManifest(_))
    ));
    // Signed with 16 MiB chunks: opens; nothing is allocated on disk ahead of the chunks.
    let big = Manifest {
        root: [9; 32],
        state_len: 1 << 40,
        chunk_size: CHUNK_SIZE_MAX_BYTES,
    };
    let transfer = StateTransfer::open(other.path(), big).unwrap();
    assert_eq!(transfer.missing_count(), 1 << 16);
    let partial = std::fs::metadata(other.path().join("state.partial")).unwrap();
    assert_eq!(partial.len(), 0, "no pre-sized (sparse) partial state");
}

/// Review case: a manifest with the same root but another chunk size wiped the progress and
/// marked the honest peers faulty.
#[test]
fn a_manifest_with_another_chunk_size_blames_its_sender_only() {
    let snapshot = Snapshot::new(state(40 * CHUNK_SIZE_BYTES as usize), CHUNK_SIZE_BYTES).unwrap();
    let dir = common::temp_dir();
    let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    let (stored, _) = transfer_rounds(&mut transfer, &snapshot, 15);
    assert_eq!(stored, 15);
    let resized = Manifest {
        chunk_size: 2 * CHUNK_SIZE_BYTES,
        ..snapshot.manifest()
    };
    assert!(transfer.check_peer_manifest(BAD_PEER, &resized).is_err());
    assert_eq!(transfer.missing_count(), 25, "progress kept");
    assert_eq!(
        transfer.faulty_peers().iter().copied().collect::<Vec<_>>(),
        vec![BAD_PEER],
        "only the sender is blamed"
    );
    // Honest peers are still asked, and the transfer finishes.
    let (stored, _) = transfer_rounds(&mut transfer, &snapshot, u64::MAX);
    assert_eq!(stored, 25);
    drop(transfer);
    let transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    assert!(transfer.is_complete(), "progress survived on disk too");
    assert_eq!(
        std::fs::read(transfer.finish().unwrap()).unwrap(),
        snapshot.state()
    );
}

/// Review case: one torn progress entry misaligned every later one. Slots are fixed: a
/// torn slot costs its own chunk only.
#[test]
fn a_torn_progress_entry_costs_one_chunk() {
    let snapshot = Snapshot::new(state(20 * CHUNK_SIZE_BYTES as usize), CHUNK_SIZE_BYTES).unwrap();
    let dir = common::temp_dir();
    {
        let mut transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
        for index in 0..10 {
            let chunk = snapshot.chunk(index).unwrap();
            assert_eq!(transfer.store(0, &chunk).unwrap(), Ok(Accepted::New));
        }
    }
    // Tear slot 3: its second half is lost.
    let progress = dir.path().join("progress");
    let mut bytes = std::fs::read(&progress).unwrap();
    bytes[3 * 48 + 24..4 * 48].fill(0);
    std::fs::write(&progress, &bytes).unwrap();
    let transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    assert_eq!(transfer.missing_count(), 11);
    let missing: Vec<u64> = transfer.missing().collect();
    assert_eq!(missing[0], 3);
    assert_eq!(&missing[1..], &(10..20).collect::<Vec<_>>()[..]);
    // A slot cut short at the end of the file costs its chunk only, too.
    drop(transfer);
    std::fs::write(&progress, &bytes[..9 * 48 + 20]).unwrap();
    let transfer = StateTransfer::open(dir.path(), snapshot.manifest()).unwrap();
    assert_eq!(transfer.missing_count(), 12);
}
