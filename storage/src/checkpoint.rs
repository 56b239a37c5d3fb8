//! Checkpoint snapshots and state transfer.
//!
//! A snapshot is the state's bytes cut into fixed-size chunks (the last may be shorter),
//! with a Merkle tree over the chunks (`merkle.rs`). Its root is what replicas sign. A
//! replica serves chunks with proofs; a lagging replica fetches them from several untrusted
//! peers, keeps a chunk only when its proof verifies against the signed root, and records
//! progress on disk so an interrupted transfer resumes where it stopped.
//!
//! Everything here is synchronous and sans-network: the replica moves chunks between
//! peers and `StateTransfer` (run it on a blocking thread or a low-share task queue).
//!
//! Sizes come from the signed checkpoint, never from a peer: the [`Manifest`] handed to
//! `StateTransfer::open` is the one the checkpoint certificate signs (root, state length,
//! chunk size), and memory and disk use are bounded by it (a bitmap of received chunks in
//! memory; the partial state grows only by chunks that verified). A manifest a peer sends
//! is only compared with it (`check_peer_manifest`): one that disagrees marks that peer
//! faulty and changes nothing else. Progress is kept in fixed-size slots, slot `i` at
//! offset `i * 48` written in place, so a torn write damages one chunk's entry only.

use crate::merkle::{leaf_hash, Hash, MerkleProof, MerkleTree};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;
use xxhash_rust::xxh3::xxh3_64_with_seed;

pub const CHUNK_SIZE_MIN_BYTES: u32 = 4 << 10;
pub const CHUNK_SIZE_MAX_BYTES: u32 = 16 << 20;
pub const STATE_SIZE_MAX_BYTES: u64 = 1 << 40;
/// Most chunks of one snapshot: bounds the received-chunk bitmap (128 KiB), the progress
/// file (48 MiB) and the leaf hashes `finish` holds (32 MiB). A 1 TiB state needs chunks
/// of 1 MiB or more.
pub const CHUNK_COUNT_MAX: u64 = 1 << 20;
/// Progress slots read or checked per batch when resuming.
const PROGRESS_SLOTS_PER_READ: u64 = 1024;
/// Most chunk requests outstanding per peer in one plan.
pub const REQUESTS_PER_PEER_MAX: usize = 64;

const _: () = assert!(CHUNK_SIZE_MIN_BYTES <= CHUNK_SIZE_MAX_BYTES);
const _: () = assert!(CHUNK_COUNT_MAX <= u32::MAX as u64);
const _: () = assert!(CHUNK_COUNT_MAX * CHUNK_SIZE_MAX_BYTES as u64 >= STATE_SIZE_MAX_BYTES);

const PROGRESS_ENTRY_BYTES: usize = 48;
const MANIFEST_FILE: &str = "manifest";
const PROGRESS_FILE: &str = "progress";
const PARTIAL_FILE: &str = "state.partial";
const STATE_FILE: &str = "state";

/// What identifies a snapshot: all three fields are signed in the checkpoint certificate.
/// A manifest from a peer is only ever checked against the signed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    pub root: Hash,
    pub state_len: u64,
    pub chunk_size: u32,
}

impl Manifest {
    pub fn chunk_count(&self) -> u64 {
        self.state_len.div_ceil(u64::from(self.chunk_size)).max(1)
    }

    /// Bytes chunk `index` must have.
    pub fn chunk_len(&self, index: u64) -> u64 {
        let start = index * u64::from(self.chunk_size);
        u64::from(self.chunk_size).min(self.state_len - start.min(self.state_len))
    }

    fn check(&self) -> Result<(), CheckpointError> {
        if !(CHUNK_SIZE_MIN_BYTES..=CHUNK_SIZE_MAX_BYTES).contains(&self.chunk_size) {
            return Err(CheckpointError::BadManifest("chunk size out of range"));
        }
        if self.state_len > STATE_SIZE_MAX_BYTES {
            return Err(CheckpointError::BadManifest("state too large"));
        }
        if self.chunk_count() > CHUNK_COUNT_MAX {
            return Err(CheckpointError::BadManifest(
                "more chunks than a transfer holds: a larger chunk size is needed",
            ));
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.root.to_vec();
        out.extend_from_slice(&self.state_len.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        let checksum = xxh3_64(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Manifest> {
        if bytes.len() != 52 || xxh3_64(&bytes[..44]).to_le_bytes() != bytes[44..52] {
            return None;
        }
        Some(Manifest {
            root: bytes[0..32].try_into().ok()?,
            state_len: u64::from_le_bytes(bytes[32..40].try_into().ok()?),
            chunk_size: u32::from_le_bytes(bytes[40..44].try_into().ok()?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad manifest: {0}")]
    BadManifest(&'static str),
    #[error("state transfer incomplete: {missing} chunk(s) missing")]
    Incomplete { missing: u64 },
    #[error("rebuilt state has root {got:02x?}, expected {expected:02x?}")]
    RootMismatch { expected: Hash, got: Hash },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A snapshot held in memory, ready to serve chunks.
pub struct Snapshot {
    state: Vec<u8>,
    manifest: Manifest,
    tree: MerkleTree,
}

/// One chunk with its proof, as sent to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub index: u64,
    pub bytes: Vec<u8>,
    pub proof: MerkleProof,
}

impl Snapshot {
    pub fn new(state: Vec<u8>, chunk_size: u32) -> Result<Snapshot, CheckpointError> {
        let mut manifest = Manifest {
            root: [0u8; 32],
            state_len: state.len() as u64,
            chunk_size,
        };
        manifest.check()?;
        let tree = MerkleTree::from_leaf_hashes(
            (0..manifest.chunk_count())
                .map(|i| leaf_hash(chunk_slice(&state, &manifest, i)))
                .collect(),
        );
        manifest.root = tree.root();
        assert_eq!(tree.leaf_count(), manifest.chunk_count());
        Ok(Snapshot {
            state,
            manifest,
            tree,
        })
    }

    /// Reads a snapshot written by `write`.
    pub fn open(path: &Path, chunk_size: u32) -> Result<Snapshot, CheckpointError> {
        let mut state = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut state))
            .map_err(io_err(path))?;
        Snapshot::new(state, chunk_size)
    }

    /// Writes the state durably to `path` (temporary file, fsync, rename, directory sync).
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&self.state).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(&tmp))?;
        sync_parent(path)
    }

    pub fn manifest(&self) -> Manifest {
        self.manifest
    }

    pub fn root(&self) -> Hash {
        self.manifest.root
    }

    pub fn state(&self) -> &[u8] {
        &self.state
    }

    /// Chunk `index` with its proof; `None` past the end.
    pub fn chunk(&self, index: u64) -> Option<Chunk> {
        let proof = self.tree.proof(index)?;
        Some(Chunk {
            index,
            bytes: chunk_slice(&self.state, &self.manifest, index).to_vec(),
            proof,
        })
    }
}

fn chunk_slice<'a>(state: &'a [u8], manifest: &Manifest, index: u64) -> &'a [u8] {
    let start = (index * u64::from(manifest.chunk_size)).min(state.len() as u64) as usize;
    let len = manifest.chunk_len(index) as usize;
    &state[start..start + len]
}

/// Identifies a peer for the transfer.
pub type PeerId = u32;

/// Why a chunk was refused. The peer that sent it is marked faulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRejected {
    #[error("chunk index {index} is past the last chunk")]
    OutOfRange { index: u64 },
    #[error("chunk {index} has {got} bytes, expected {expected}")]
    WrongLength { index: u64, got: u64, expected: u64 },
    #[error("chunk {index}'s proof does not verify against the signed root")]
    BadProof { index: u64 },
}

/// A peer's manifest that is not the signed one; the peer is marked faulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer {peer}'s manifest (state {state_len} bytes in chunks of {chunk_size}) disagrees with the signed checkpoint")]
pub struct ManifestRejected {
    pub peer: PeerId,
    pub state_len: u64,
    pub chunk_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    AlreadyHad,
}

/// A state being rebuilt in a directory of its own.
pub struct StateTransfer {
    dir: PathBuf,
    manifest: Manifest,
    /// Bit i set: chunk i is in and recorded.
    have: Vec<u64>,
    missing: u64,
    partial: File,
    progress: File,
    faulty: BTreeSet<PeerId>,
}

/// A progress slot: `[0..8)` chunk index, `[8..40)` its leaf hash, `[40..48)` xxh3 of the
/// first 40 bytes seeded with the signed root (a slot of another snapshot never verifies).
fn encode_slot(root: &Hash, index: u64, hash: &Hash) -> [u8; PROGRESS_ENTRY_BYTES] {
    let mut slot = [0u8; PROGRESS_ENTRY_BYTES];
    slot[0..8].copy_from_slice(&index.to_le_bytes());
    slot[8..40].copy_from_slice(hash);
    let checksum = xxh3_64_with_seed(&slot[..40], root_seed(root));
    slot[40..48].copy_from_slice(&checksum.to_le_bytes());
    slot
}

fn decode_slot(root: &Hash, index: u64, slot: &[u8]) -> Option<Hash> {
    let ok = slot.len() == PROGRESS_ENTRY_BYTES
        && slot[0..8] == index.to_le_bytes()
        && xxh3_64_with_seed(&slot[..40], root_seed(root)).to_le_bytes() == slot[40..48];
    ok.then(|| slot[8..40].try_into().expect("32 bytes"))
}

fn root_seed(root: &Hash) -> u64 {
    u64::from_le_bytes(root[..8].try_into().expect("8 bytes"))
}

impl StateTransfer {
    /// Starts, or resumes, rebuilding the snapshot of the signed checkpoint `signed` in
    /// `dir`. Progress recorded for another snapshot is discarded; chunks recorded as
    /// received are re-verified against their recorded hashes (a crash may have lost data
    /// written after them), each slot on its own.
    pub fn open(dir: &Path, signed: Manifest) -> Result<StateTransfer, CheckpointError> {
        signed.check()?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let same = std::fs::read(&manifest_path)
            .ok()
            .and_then(|bytes| Manifest::decode(&bytes))
            .is_some_and(|stored| stored == signed);
        let progress_path = dir.join(PROGRESS_FILE);
        let partial_path = dir.join(PARTIAL_FILE);
        if !same {
            for path in [&progress_path, &partial_path] {
                match std::fs::remove_file(path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io_err(path)(err))
                    }
                    _ => {}
                }
            }
            let mut file = File::create(&manifest_path).map_err(io_err(&manifest_path))?;
            file.write_all(&signed.encode())
                .map_err(io_err(&manifest_path))?;
            file.sync_all().map_err(io_err(&manifest_path))?;
            sync_parent(&manifest_path)?;
        }
        let open = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_err(path))
        };
        // Never pre-sized: the partial state grows only by chunks that verified.
        let partial = open(&partial_path)?;
        let progress = open(&progress_path)?;
        sync_parent(&progress_path)?;
        let count = signed.chunk_count();
        let mut transfer = StateTransfer {
            dir: dir.to_path_buf(),
            manifest: signed,
            have: vec![0u64; count.div_ceil(64) as usize],
            missing: count,
            partial,
            progress,
            faulty: BTreeSet::new(),
        };
        transfer.resume()?;
        Ok(transfer)
    }

    /// Reads the progress slots in batches and keeps each chunk whose slot verifies and
    /// whose bytes on disk still hash to it.
    fn resume(&mut self) -> Result<(), CheckpointError> {
        let count = self.manifest.chunk_count();
        let path = self.dir.join(PROGRESS_FILE);
        let len = self.progress.metadata().map_err(io_err(&path))?.len();
        let slots = (len / PROGRESS_ENTRY_BYTES as u64).min(count);
        let mut first = 0u64;
        while first < slots {
            let batch = PROGRESS_SLOTS_PER_READ.min(slots - first);
            let mut buf = vec![0u8; (batch as usize) * PROGRESS_ENTRY_BYTES];
            self.progress
                .read_exact_at(&mut buf, first * PROGRESS_ENTRY_BYTES as u64)
                .map_err(io_err(&path))?;
            for (n, slot) in buf.chunks_exact(PROGRESS_ENTRY_BYTES).enumerate() {
                let index = first + n as u64;
                let Some(hash) = decode_slot(&self.manifest.root, index, slot) else {
                    continue; // never written, or torn: fetch this chunk again
                };
                if self.read_chunk(index)?.map(|b| leaf_hash(&b)) == Some(hash) {
                    self.mark(index);
                }
            }
            first += batch;
        }
        Ok(())
    }

    fn has(&self, index: u64) -> bool {
        self.have[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    fn mark(&mut self, index: u64) {
        assert!(!self.has(index));
        self.have[(index / 64) as usize] |= 1 << (index % 64);
        self.missing -= 1;
    }

    /// Compares a manifest a peer sent with the signed one. A peer whose manifest differs
    /// (another size or chunking under the same root, or another root) is marked faulty;
    /// nothing else changes: the signed manifest and the progress stay.
    pub fn check_peer_manifest(
        &mut self,
        peer: PeerId,
        theirs: &Manifest,
    ) -> Result<(), ManifestRejected> {
        if *theirs == self.manifest {
            return Ok(());
        }
        self.faulty.insert(peer);
        Err(ManifestRejected {
            peer,
            state_len: theirs.state_len,
            chunk_size: theirs.chunk_size,
        })
    }

    pub fn manifest(&self) -> Manifest {
        self.manifest
    }

    pub fn missing_count(&self) -> u64 {
        self.missing
    }

    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    pub fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.manifest.chunk_count()).filter(|i| !self.has(*i))
    }

    /// Peers that sent a chunk whose proof failed.
    pub fn faulty_peers(&self) -> &BTreeSet<PeerId> {
        &self.faulty
    }

    /// Spreads missing chunks over the peers not found faulty, round robin, at most
    /// `REQUESTS_PER_PEER_MAX` each. Rotating by `round` moves a chunk to another peer when
    /// asked again, so one silent peer cannot stall a chunk.
    pub fn plan(&self, peers: &[PeerId], round: u64) -> Vec<(PeerId, u64)> {
        let good: Vec<PeerId> = peers
            .iter()
            .copied()
            .filter(|p| !self.faulty.contains(p))
            .collect();
        if good.is_empty() {
            return Vec::new();
        }
        self.missing()
            .take(good.len() * REQUESTS_PER_PEER_MAX)
            .enumerate()
            .map(|(n, index)| (good[(n + round as usize) % good.len()], index))
            .collect()
    }

    /// Verifies a chunk from `peer` and keeps it if its proof holds.
    pub fn accept(&mut self, peer: PeerId, chunk: &Chunk) -> Result<Accepted, ChunkRejected> {
        let result = self.verify(chunk);
        if result.is_err() {
            self.faulty.insert(peer);
        }
        result?;
        if self.has(chunk.index) {
            return Ok(Accepted::AlreadyHad);
        }
        Ok(Accepted::New)
    }

    fn verify(&self, chunk: &Chunk) -> Result<(), ChunkRejected> {
        let index = chunk.index;
        if index >= self.manifest.chunk_count() {
            return Err(ChunkRejected::OutOfRange { index });
        }
        let expected = self.manifest.chunk_len(index);
        if chunk.bytes.len() as u64 != expected {
            return Err(ChunkRejected::WrongLength {
                index,
                got: chunk.bytes.len() as u64,
                expected,
            });
        }
        let proof_ok = chunk.proof.leaf_index == index
            && chunk.proof.leaf_count == self.manifest.chunk_count()
            && chunk
                .proof
                .verify(&self.manifest.root, &leaf_hash(&chunk.bytes));
        if !proof_ok {
            return Err(ChunkRejected::BadProof { index });
        }
        Ok(())
    }

    /// `accept`, then write the chunk and record it (both synced before returning).
    pub fn store(
        &mut self,
        peer: PeerId,
        chunk: &Chunk,
    ) -> Result<Result<Accepted, ChunkRejected>, CheckpointError> {
        match self.accept(peer, chunk) {
            Ok(Accepted::New) => {}
            other => return Ok(other),
        }
        let offset = chunk.index * u64::from(self.manifest.chunk_size);
        let path = self.dir.join(PARTIAL_FILE);
        self.partial
            .write_all_at(&chunk.bytes, offset)
            .map_err(io_err(&path))?;
        self.partial.sync_data().map_err(io_err(&path))?;
        let hash = leaf_hash(&chunk.bytes);
        let slot = encode_slot(&self.manifest.root, chunk.index, &hash);
        let progress_path = self.dir.join(PROGRESS_FILE);
        self.progress
            .write_all_at(&slot, chunk.index * PROGRESS_ENTRY_BYTES as u64)
            .map_err(io_err(&progress_path))?;
        self.progress.sync_data().map_err(io_err(&progress_path))?;
        // Read-back check of the chunk just written.
        assert_eq!(
            self.read_chunk(chunk.index)?.as_deref(),
            Some(&chunk.bytes[..])
        );
        self.mark(chunk.index);
        Ok(Ok(Accepted::New))
    }

    fn read_chunk(&self, index: u64) -> Result<Option<Vec<u8>>, CheckpointError> {
        let mut bytes = vec![0u8; self.manifest.chunk_len(index) as usize];
        let offset = index * u64::from(self.manifest.chunk_size);
        match self.partial.read_exact_at(&mut bytes, offset) {
            Ok(()) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(err) => Err(io_err(&self.dir.join(PARTIAL_FILE))(err)),
        }
    }

    /// When every chunk is in: checks the root over all chunks and moves the state to
    /// `dir/state`, returning its path.
    pub fn finish(self) -> Result<PathBuf, CheckpointError> {
        if self.missing > 0 {
            return Err(CheckpointError::Incomplete {
                missing: self.missing,
            });
        }
        let leaves = self.recorded_leaves()?;
        let got = MerkleTree::from_leaf_hashes(leaves).root();
        if got != self.manifest.root {
            return Err(CheckpointError::RootMismatch {
                expected: self.manifest.root,
                got,
            });
        }
        let partial = self.dir.join(PARTIAL_FILE);
        let state = self.dir.join(STATE_FILE);
        self.partial
            .set_len(self.manifest.state_len)
            .and_then(|()| self.partial.sync_all())
            .map_err(io_err(&partial))?;
        std::fs::rename(&partial, &state).map_err(io_err(&partial))?;
        for name in [PROGRESS_FILE, MANIFEST_FILE] {
            let path = self.dir.join(name);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        sync_parent(&state)?;
        Ok(state)
    }
}

impl StateTransfer {
    /// The leaf hashes from the progress slots (every slot verified on resume or store).
    fn recorded_leaves(&self) -> Result<Vec<Hash>, CheckpointError> {
        let count = self.manifest.chunk_count();
        let path = self.dir.join(PROGRESS_FILE);
        let mut leaves = Vec::with_capacity(count as usize);
        let mut slot = [0u8; PROGRESS_ENTRY_BYTES];
        for index in 0..count {
            self.progress
                .read_exact_at(&mut slot, index * PROGRESS_ENTRY_BYTES as u64)
                .map_err(io_err(&path))?;
            let hash = decode_slot(&self.manifest.root, index, &slot)
                .ok_or(CheckpointError::Incomplete { missing: 1 })?;
            leaves.push(hash);
        }
        Ok(leaves)
    }
}

fn sync_parent(path: &Path) -> Result<(), CheckpointError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lengths_and_proofs() {
        let state: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let snapshot = Snapshot::new(state.clone(), 4096).unwrap();
        let manifest = snapshot.manifest();
        assert_eq!(manifest.chunk_count(), 3);
        assert_eq!(manifest.chunk_len(2), 10_000 - 8192);
        let rebuilt: Vec<u8> = (0..3)
            .flat_map(|i| snapshot.chunk(i).unwrap().bytes)
            .collect();
        assert_eq!(rebuilt, state);
        assert!(snapshot.chunk(3).is_none());
        let empty = Snapshot::new(Vec::new(), 4096).unwrap();
        assert_eq!(empty.manifest().chunk_count(), 1);
        assert_eq!(empty.chunk(0).unwrap().bytes.len(), 0);
        assert!(Snapshot::new(vec![1], 100).is_err());
    }
}
