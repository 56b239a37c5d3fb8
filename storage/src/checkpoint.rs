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

use crate::merkle::{leaf_hash, Hash, MerkleProof, MerkleTree};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

pub const CHUNK_SIZE_MIN_BYTES: u32 = 4 << 10;
pub const CHUNK_SIZE_MAX_BYTES: u32 = 16 << 20;
pub const STATE_SIZE_MAX_BYTES: u64 = 1 << 40;
pub const CHUNK_COUNT_MAX: u64 = STATE_SIZE_MAX_BYTES / CHUNK_SIZE_MIN_BYTES as u64;
/// Most chunk requests outstanding per peer in one plan.
pub const REQUESTS_PER_PEER_MAX: usize = 64;

const _: () = assert!(CHUNK_SIZE_MIN_BYTES <= CHUNK_SIZE_MAX_BYTES);
const _: () = assert!(CHUNK_COUNT_MAX <= u32::MAX as u64 * 64);

const PROGRESS_ENTRY_BYTES: usize = 48;
const MANIFEST_FILE: &str = "manifest";
const PROGRESS_FILE: &str = "progress";
const PARTIAL_FILE: &str = "state.partial";
const STATE_FILE: &str = "state";

/// What identifies a snapshot. `root` comes from the signed checkpoint; the other fields
/// may come from any peer: a wrong count or size makes every proof fail.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    AlreadyHad,
}

/// A state being rebuilt in a directory of its own.
pub struct StateTransfer {
    dir: PathBuf,
    manifest: Manifest,
    have: Vec<Option<Hash>>,
    missing: u64,
    partial: File,
    progress: File,
    faulty: BTreeSet<PeerId>,
}

impl StateTransfer {
    /// Starts, or resumes, rebuilding the snapshot `manifest` in `dir`. Progress recorded
    /// for another manifest is discarded; chunks recorded as received are re-verified
    /// against their recorded hashes (a crash may have lost data written after them).
    pub fn open(dir: &Path, manifest: Manifest) -> Result<StateTransfer, CheckpointError> {
        manifest.check()?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let same = std::fs::read(&manifest_path)
            .ok()
            .and_then(|bytes| Manifest::decode(&bytes))
            .is_some_and(|stored| stored == manifest);
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
            file.write_all(&manifest.encode())
                .map_err(io_err(&manifest_path))?;
            file.sync_all().map_err(io_err(&manifest_path))?;
            sync_parent(&manifest_path)?;
        }
        let partial = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial_path)
            .map_err(io_err(&partial_path))?;
        partial
            .set_len(manifest.state_len)
            .map_err(io_err(&partial_path))?;
        let mut progress = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&progress_path)
            .map_err(io_err(&progress_path))?;
        let mut log = Vec::new();
        progress
            .read_to_end(&mut log)
            .map_err(io_err(&progress_path))?;
        let count = manifest.chunk_count();
        let mut transfer = StateTransfer {
            dir: dir.to_path_buf(),
            manifest,
            have: vec![None; count as usize],
            missing: count,
            partial,
            progress,
            faulty: BTreeSet::new(),
        };
        for entry in log.chunks_exact(PROGRESS_ENTRY_BYTES) {
            if xxh3_64(&entry[..40]).to_le_bytes() != entry[40..48] {
                continue; // torn append
            }
            let index = u64::from_le_bytes(entry[0..8].try_into().expect("8 bytes"));
            let hash: Hash = entry[8..40].try_into().expect("32 bytes");
            if index < count
                && transfer.have[index as usize].is_none()
                && transfer.read_chunk(index)?.map(|b| leaf_hash(&b)) == Some(hash)
            {
                transfer.have[index as usize] = Some(hash);
                transfer.missing -= 1;
            }
        }
        Ok(transfer)
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
        self.have
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_none())
            .map(|(i, _)| i as u64)
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
        if self.have[chunk.index as usize].is_some() {
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
        let mut entry = chunk.index.to_le_bytes().to_vec();
        entry.extend_from_slice(&hash);
        let checksum = xxh3_64(&entry);
        entry.extend_from_slice(&checksum.to_le_bytes());
        assert_eq!(entry.len(), PROGRESS_ENTRY_BYTES);
        let progress_path = self.dir.join(PROGRESS_FILE);
        self.progress
            .write_all(&entry)
            .map_err(io_err(&progress_path))?;
        self.progress.sync_data().map_err(io_err(&progress_path))?;
        // Read-back check of the chunk just written.
        assert_eq!(
            self.read_chunk(chunk.index)?.as_deref(),
            Some(&chunk.bytes[..])
        );
        self.have[chunk.index as usize] = Some(hash);
        self.missing -= 1;
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
        let leaves = self.have.iter().map(|h| h.expect("complete")).collect();
        let got = MerkleTree::from_leaf_hashes(leaves).root();
        if got != self.manifest.root {
            return Err(CheckpointError::RootMismatch {
                expected: self.manifest.root,
                got,
            });
        }
        let partial = self.dir.join(PARTIAL_FILE);
        let state = self.dir.join(STATE_FILE);
        std::fs::rename(&partial, &state).map_err(io_err(&partial))?;
        for name in [PROGRESS_FILE, MANIFEST_FILE] {
            let path = self.dir.join(name);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        sync_parent(&state)?;
        Ok(state)
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
