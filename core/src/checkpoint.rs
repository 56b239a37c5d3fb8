//! Signed state checkpoints (DESIGN.md, data path point 8) and the pieces of state transfer
//! that are pure data: the vote, the stable certificate, the snapshot chunk and its proof.
//!
//! Every `interval` committed global blocks, after executing block height h, a replica signs
//! (h, block digest, state root, snapshot root) and sends it to all. q matching votes make a
//! stable checkpoint certificate (PBFT, Castro-Liskov section 4.3, "stable checkpoint");
//! logs below it are truncated and a replica that fell behind installs the certified
//! snapshot instead of replaying what peers no longer hold.
//!
//! The snapshot root is the Merkle root over fixed-size chunks of the replica snapshot:
//! `Ledger::snapshot_bytes` and the leader schedule's reputation state ([`replica_snapshot`]).
//! Equal states have equal canonical bytes, so honest replicas sign equal snapshot roots,
//! and every chunk of a transfer is verified on its own against the certificate.
//!
//! [`CheckpointVotes`] counts; the replica decides (STYLE.md point 7).

use crate::crypto::{digest, Bitmap, Certificate, Check, Digest, Signature, Signer, Tag};
use crate::messages::{Block, LocalCert, QuorumCert};
use crate::topology::ReplicaId;
use ccbft_storage::merkle::{leaf_hash, MerkleProof, MerkleTree};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Production checkpoint interval, in committed global blocks.
pub const CHECKPOINT_INTERVAL_BLOCKS_DEFAULT: u64 = 100;
/// Heights one peer may hold votes for in our vote keeper (its newest ones). This, not a
/// distance from our own height, bounds what a Byzantine peer can fill: a replica far
/// behind must still be able to learn a checkpoint far ahead of it.
pub const CHECKPOINT_VOTES_PER_PEER_MAX: usize = 4;
/// Bytes of snapshot per state-transfer chunk (one message).
pub const SNAPSHOT_CHUNK_BYTES: usize = 8 * 1024;
/// Chunks one snapshot may have (so at most 512 MiB of state per transfer).
pub const SNAPSHOT_CHUNKS_MAX: u64 = 65_536;
/// Sibling hashes in a chunk proof: enough for [`SNAPSHOT_CHUNKS_MAX`] leaves.
pub const SNAPSHOT_PROOF_DEPTH_MAX: usize = 17;

const _: () = assert!(SNAPSHOT_CHUNKS_MAX <= 1 << (SNAPSHOT_PROOF_DEPTH_MAX - 1));
const _: () = assert!(
    CHECKPOINT_VOTES_PER_PEER_MAX >= 2,
    "room for equivocation evidence"
);

/// What a checkpoint vote signs: everything a lagging replica must trust to install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointId {
    pub height: u64,
    pub block: Digest,
    pub state_root: Digest,
    pub snapshot_root: Digest,
}

impl CheckpointId {
    pub fn payload(&self) -> Vec<u8> {
        digest(&[
            b"checkpoint",
            &self.height.to_le_bytes(),
            &self.block,
            &self.state_root,
            &self.snapshot_root,
        ])
        .to_vec()
    }
}

/// One replica's signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVote {
    pub id: CheckpointId,
    pub from: ReplicaId,
    pub signature: Signature,
}

impl CheckpointVote {
    pub fn new(id: CheckpointId, signer: &dyn Signer) -> CheckpointVote {
        CheckpointVote {
            id,
            from: signer.id(),
            signature: signer.sign(Tag::Checkpoint, &id.payload()),
        }
    }

    pub fn check(&self) -> Check {
        Check::Single {
            signer: self.from,
            tag: Tag::Checkpoint,
            message: self.id.payload(),
            signature: self.signature.clone(),
        }
    }
}

/// A stable checkpoint: q signatures over one [`CheckpointId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCert {
    pub id: CheckpointId,
    pub cert: Certificate,
}

impl CheckpointCert {
    pub fn check(&self) -> Check {
        Check::Aggregate {
            tag: Tag::Checkpoint,
            message: self.id.payload(),
            certificate: self.cert.clone(),
        }
    }
}

/// One chunk of a certified snapshot, with what the receiver needs to verify it alone:
/// the certificate, the certified block (its digest is in the certificate), the LCs of the
/// block's cut (so local lanes can resume after it) and a Merkle proof of the chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub checkpoint: CheckpointCert,
    pub block: Arc<Block>,
    pub lane_certs: Vec<LocalCert>,
    pub proof: MerkleProof,
    pub bytes: Vec<u8>,
    /// The sender's highest QC: after installing, the receiver syncs the blocks above the
    /// checkpoint from it even if the cluster has gone quiet.
    pub high_qc: QuorumCert,
}

impl SnapshotChunk {
    /// The chunk is the `proof.leaf_index`-th of the certified snapshot, and the block is
    /// the certified one. Signatures are checked by the host (see `Message::checks`).
    pub fn verify(&self) -> bool {
        let leaves = self.proof.leaf_count;
        (1..=SNAPSHOT_CHUNKS_MAX).contains(&leaves)
            && self.proof.siblings.len() <= SNAPSHOT_PROOF_DEPTH_MAX
            && !self.bytes.is_empty()
            && self.bytes.len() <= SNAPSHOT_CHUNK_BYTES
            && self.block.digest() == self.checkpoint.id.block
            && self.block.height == self.checkpoint.id.height
            && self
                .proof
                .verify(&self.checkpoint.id.snapshot_root, &leaf_hash(&self.bytes))
    }
}

/// A snapshot cut into chunks, with its Merkle tree (to prove each chunk when serving).
#[derive(Debug, Clone)]
pub struct ChunkedSnapshot {
    pub bytes: Arc<Vec<u8>>,
    tree: MerkleTree,
}

impl ChunkedSnapshot {
    pub fn new(bytes: Vec<u8>) -> ChunkedSnapshot {
        assert!(!bytes.is_empty(), "a snapshot has a header at least");
        let tree = MerkleTree::from_leaves(bytes.chunks(SNAPSHOT_CHUNK_BYTES));
        assert!(
            tree.leaf_count() <= SNAPSHOT_CHUNKS_MAX,
            "snapshot too large"
        );
        ChunkedSnapshot {
            bytes: Arc::new(bytes),
            tree,
        }
    }

    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    pub fn chunks(&self) -> u64 {
        self.tree.leaf_count()
    }

    pub fn chunk(&self, index: u64) -> Option<(MerkleProof, Vec<u8>)> {
        let proof = self.tree.proof(index)?;
        let bytes = self
            .bytes
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .nth(index as usize)?
            .to_vec();
        Some((proof, bytes))
    }
}

/// What adding one vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Counted (or a duplicate); no certificate yet.
    Pending,
    /// Dropped: at or below the stable height, not a checkpoint height, or out of room.
    Ignored,
    /// The signer signed two different checkpoints for one height.
    Equivocation {
        first: CheckpointVote,
        second: CheckpointVote,
    },
    /// This vote completed q matching signatures.
    Stable(CheckpointCert),
}

/// Vote keeper for checkpoints: per peer its newest [`CHECKPOINT_VOTES_PER_PEER_MAX`]
/// votes, so memory is at most n x that many votes whatever peers send.
#[derive(Debug, Clone)]
pub struct CheckpointVotes {
    quorum: usize,
    interval: u64,
    /// Highest height a certificate formed (or was accepted) for.
    stable_height: u64,
    by_peer: BTreeMap<ReplicaId, BTreeMap<u64, CheckpointVote>>,
}

impl CheckpointVotes {
    pub fn new(quorum: usize, interval: u64) -> CheckpointVotes {
        assert!(quorum >= 1 && interval >= 1);
        CheckpointVotes {
            quorum,
            interval,
            stable_height: 0,
            by_peer: BTreeMap::new(),
        }
    }

    pub fn stable_height(&self) -> u64 {
        self.stable_height
    }

    /// Votes held, over all peers (for bounds checks).
    pub fn len(&self) -> usize {
        self.by_peer.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A certificate for `height` exists (ours or a peer's): forget votes at or below it.
    pub fn mark_stable(&mut self, height: u64) {
        self.stable_height = self.stable_height.max(height);
        let stable = self.stable_height;
        for votes in self.by_peer.values_mut() {
            votes.retain(|&h, _| h > stable);
        }
        self.by_peer.retain(|_, votes| !votes.is_empty());
    }

    /// Add a vote whose signature the host verified.
    pub fn add(&mut self, vote: CheckpointVote, signer: &dyn Signer) -> VoteOutcome {
        let height = vote.id.height;
        if height <= self.stable_height || !height.is_multiple_of(self.interval) {
            return VoteOutcome::Ignored;
        }
        let votes = self.by_peer.entry(vote.from).or_default();
        if let Some(first) = votes.get(&height) {
            if first.id == vote.id {
                return VoteOutcome::Pending;
            }
            return VoteOutcome::Equivocation {
                first: first.clone(),
                second: vote,
            };
        }
        if votes.len() >= CHECKPOINT_VOTES_PER_PEER_MAX {
            let lowest = *votes.keys().next().expect("full");
            if lowest > height {
                return VoteOutcome::Ignored;
            }
            votes.remove(&lowest);
        }
        let id = vote.id;
        votes.insert(height, vote);
        assert!(votes.len() <= CHECKPOINT_VOTES_PER_PEER_MAX);
        let matching: Vec<&CheckpointVote> = self
            .by_peer
            .values()
            .filter_map(|votes| votes.get(&height))
            .filter(|v| v.id == id)
            .collect();
        if matching.len() < self.quorum {
            return VoteOutcome::Pending;
        }
        let mut signers = Bitmap::default();
        let signatures: Vec<Signature> = matching
            .iter()
            .take(self.quorum)
            .map(|v| {
                assert!(signers.insert(v.from), "one vote per peer and height");
                v.signature.clone()
            })
            .collect();
        let cert = CheckpointCert {
            id,
            cert: Certificate {
                signers,
                aggregate: signer.aggregate(&signatures),
            },
        };
        assert_eq!(cert.cert.signers.count() as usize, self.quorum);
        self.mark_stable(height);
        VoteOutcome::Stable(cert)
    }
}

/// The bytes a checkpoint certifies: the ledger snapshot, then the leader schedule's
/// reputation state (both deterministic from the committed chain at the checkpoint).
pub fn replica_snapshot(ledger: &[u8], reputation: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + ledger.len() + reputation.len());
    out.extend_from_slice(&(ledger.len() as u64).to_le_bytes());
    out.extend_from_slice(ledger);
    out.extend_from_slice(reputation);
    out
}

/// (ledger bytes, reputation bytes) of a [`replica_snapshot`]; `None` if truncated.
pub fn split_replica_snapshot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_at_checked(8)?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    rest.split_at_checked(len)
}

// ---- Wire encoding (crate::wire) ----

use crate::messages::LANES_MAX;
use crate::wire::{put_bytes, put_u32, put_u64, put_vec, Encoder, Reader, Wire, WireError};

/// Largest snapshot a record holds: [`SNAPSHOT_CHUNKS_MAX`] chunks of
/// [`SNAPSHOT_CHUNK_BYTES`] (512 MiB), the most a transfer can certify.
pub const SNAPSHOT_BYTES_MAX: usize = SNAPSHOT_CHUNKS_MAX as usize * SNAPSHOT_CHUNK_BYTES;

const _: () = assert!(SNAPSHOT_BYTES_MAX <= u32::MAX as usize);

impl Wire for CheckpointId {
    const ENCODED_BYTES_MIN: usize = 8 + 3 * 32;

    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.height);
        self.block.encode(out);
        self.state_root.encode(out);
        self.snapshot_root.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(CheckpointId {
            height: reader.u64("checkpoint height")?,
            block: Digest::decode(reader)?,
            state_root: Digest::decode(reader)?,
            snapshot_root: Digest::decode(reader)?,
        })
    }
}

impl Wire for CheckpointVote {
    fn encode(&self, out: &mut Encoder) {
        self.id.encode(out);
        put_u32(out, self.from);
        self.signature.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(CheckpointVote {
            id: CheckpointId::decode(reader)?,
            from: reader.replica("checkpoint voter")?,
            signature: Signature::decode(reader)?,
        })
    }
}

impl Wire for CheckpointCert {
    fn encode(&self, out: &mut Encoder) {
        self.id.encode(out);
        self.cert.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(CheckpointCert {
            id: CheckpointId::decode(reader)?,
            cert: Certificate::decode(reader)?,
        })
    }
}

/// A chunk proof: leaf index, leaf count, then at most [`SNAPSHOT_PROOF_DEPTH_MAX`]
/// optional sibling hashes (absent where a level has no right neighbour).
impl Wire for MerkleProof {
    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.leaf_index);
        put_u64(out, self.leaf_count);
        put_vec(
            out,
            "proof siblings",
            &self.siblings,
            SNAPSHOT_PROOF_DEPTH_MAX,
        );
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(MerkleProof {
            leaf_index: reader.u64("proof leaf index")?,
            leaf_count: reader.u64("proof leaf count")?,
            siblings: reader.vec("proof siblings", SNAPSHOT_PROOF_DEPTH_MAX)?,
        })
    }
}

impl Wire for SnapshotChunk {
    fn encode(&self, out: &mut Encoder) {
        self.checkpoint.encode(out);
        self.block.encode(out);
        put_vec(out, "snapshot lane certs", &self.lane_certs, LANES_MAX);
        self.proof.encode(out);
        put_bytes(
            out,
            "snapshot chunk bytes",
            &self.bytes,
            SNAPSHOT_CHUNK_BYTES,
        );
        self.high_qc.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(SnapshotChunk {
            checkpoint: CheckpointCert::decode(reader)?,
            block: Arc::decode(reader)?,
            lane_certs: reader.vec("snapshot lane certs", LANES_MAX)?,
            proof: MerkleProof::decode(reader)?,
            bytes: reader
                .bytes("snapshot chunk bytes", SNAPSHOT_CHUNK_BYTES)?
                .to_vec(),
            high_qc: QuorumCert::decode(reader)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{SimKeys, Verifier};

    fn id(height: u64, root: u8) -> CheckpointId {
        CheckpointId {
            height,
            block: [height as u8; 32],
            state_root: [root; 32],
            snapshot_root: [root ^ 0xff; 32],
        }
    }

    /// Table: (votes as (signer, root), quorum, stable after the last vote).
    #[test]
    fn stable_checkpoint_needs_q_matching_votes() {
        let keys = SimKeys::new(7, 3);
        type Case = (&'static [(ReplicaId, u8)], usize, bool);
        let cases: &[Case] = &[
            (&[(0, 1), (1, 1)], 3, false),         // q - 1: not stable
            (&[(0, 1), (1, 1), (2, 1)], 3, true),  // q: stable
            (&[(0, 1), (1, 1), (2, 2)], 3, false), // mismatching roots do not combine
            (&[(0, 1), (1, 2), (2, 1), (3, 1)], 3, true),
            (&[(0, 1), (0, 1), (1, 1)], 3, false), // a duplicate counts once
            (&[(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)], 5, true),
            (&[(0, 1), (1, 1), (2, 1), (3, 1), (4, 2)], 5, false),
        ];
        for (i, &(votes, quorum, stable)) in cases.iter().enumerate() {
            let mut keeper = CheckpointVotes::new(quorum, 8);
            let mut outcome = VoteOutcome::Pending;
            for &(from, root) in votes {
                let vote = CheckpointVote::new(id(8, root), &keys.signer(from));
                outcome = keeper.add(vote, &keys.signer(0));
            }
            match outcome {
                VoteOutcome::Stable(cert) => {
                    assert!(stable, "case {i}: stable too early");
                    assert_eq!(cert.cert.signers.count() as usize, quorum, "case {i}");
                    assert!(keys.verify(&cert.check()), "case {i}: aggregate verifies");
                    assert_eq!(keeper.stable_height(), 8);
                }
                other => assert!(!stable, "case {i}: expected stable, got {other:?}"),
            }
        }
    }

    #[test]
    fn two_roots_for_one_height_is_equivocation() {
        let keys = SimKeys::new(4, 3);
        let mut keeper = CheckpointVotes::new(3, 8);
        let first = CheckpointVote::new(id(8, 1), &keys.signer(2));
        let second = CheckpointVote::new(id(8, 2), &keys.signer(2));
        assert_eq!(
            keeper.add(first.clone(), &keys.signer(0)),
            VoteOutcome::Pending
        );
        assert_eq!(
            keeper.add(second.clone(), &keys.signer(0)),
            VoteOutcome::Equivocation { first, second }
        );
    }

    #[test]
    fn a_peer_fills_at_most_its_own_slots() {
        let keys = SimKeys::new(4, 3);
        let mut keeper = CheckpointVotes::new(3, 8);
        for height in 1..=1_000u64 {
            let vote = CheckpointVote::new(id(height * 8, 1), &keys.signer(3));
            keeper.add(vote, &keys.signer(0));
        }
        assert_eq!(keeper.len(), CHECKPOINT_VOTES_PER_PEER_MAX);
        // Older than every vote the peer has here: it evicts none of them.
        let older = CheckpointVote::new(id(8 * 500, 1), &keys.signer(3));
        assert_eq!(keeper.add(older, &keys.signer(0)), VoteOutcome::Ignored);
        // Not a checkpoint height, and below the stable height: ignored.
        let odd = CheckpointVote::new(id(9, 1), &keys.signer(1));
        assert_eq!(keeper.add(odd, &keys.signer(0)), VoteOutcome::Ignored);
        keeper.mark_stable(16);
        let old = CheckpointVote::new(id(16, 1), &keys.signer(1));
        assert_eq!(keeper.add(old, &keys.signer(0)), VoteOutcome::Ignored);
        // Honest votes at a real height still form a certificate.
        let mut last = VoteOutcome::Pending;
        for from in 0..3 {
            last = keeper.add(
                CheckpointVote::new(id(24, 1), &keys.signer(from)),
                &keys.signer(0),
            );
        }
        assert!(matches!(last, VoteOutcome::Stable(_)));
    }

    #[test]
    fn chunks_verify_against_the_snapshot_root_and_corruption_is_caught() {
        let bytes: Vec<u8> = (0..SNAPSHOT_CHUNK_BYTES * 3 + 17)
            .map(|i| (i * 7) as u8)
            .collect();
        let snapshot = ChunkedSnapshot::new(bytes.clone());
        assert_eq!(snapshot.chunks(), 4);
        let mut rebuilt = Vec::new();
        for index in 0..snapshot.chunks() {
            let (proof, chunk) = snapshot.chunk(index).unwrap();
            assert!(proof.verify(&snapshot.root(), &leaf_hash(&chunk)));
            let mut bad = chunk.clone();
            bad[0] ^= 1;
            assert!(!proof.verify(&snapshot.root(), &leaf_hash(&bad)));
            rebuilt.extend(chunk);
        }
        assert_eq!(rebuilt, bytes);
        assert!(snapshot.chunk(4).is_none());
    }

    #[test]
    fn replica_snapshot_splits_back_into_its_parts() {
        let bytes = replica_snapshot(b"ledger", b"reputation");
        assert_eq!(
            split_replica_snapshot(&bytes),
            Some((&b"ledger"[..], &b"reputation"[..]))
        );
        assert_eq!(split_replica_snapshot(&bytes[..7]), None);
        assert_eq!(split_replica_snapshot(&bytes[..10]), None);
    }
}
