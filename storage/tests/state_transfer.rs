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
