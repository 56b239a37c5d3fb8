//! The peer table a transport is given: replica id, socket address, pinned link key.
//! The runtime fills it from the cluster file; net never parses that file.

use crate::keys::LinkPublicKey;
use std::net::SocketAddr;

/// A replica id on the wire of the cluster file (never on the wire of a frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u32);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Replicas in one table at most (matches the committee maximum order of magnitude).
pub const PEERS_MAX: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEntry {
    pub id: PeerId,
    pub addr: SocketAddr,
    pub link_key: LinkPublicKey,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerTableError {
    #[error("peer table has {0} entries, more than {PEERS_MAX}")]
    TooMany(usize),
    #[error("replica id {0} appears twice")]
    DuplicateId(PeerId),
    #[error("replicas {0} and {1} share a link key")]
    DuplicateKey(PeerId, PeerId),
}

/// All replicas (this one included), sorted by id; ids and keys are unique.
#[derive(Clone, Debug)]
pub struct PeerTable {
    entries: Vec<PeerEntry>,
}

impl PeerTable {
    pub fn new(mut entries: Vec<PeerEntry>) -> Result<PeerTable, PeerTableError> {
        if entries.len() > PEERS_MAX {
            return Err(PeerTableError::TooMany(entries.len()));
        }
        entries.sort_by_key(|e| e.id);
        for w in entries.windows(2) {
            if w[0].id == w[1].id {
                return Err(PeerTableError::DuplicateId(w[0].id));
            }
        }
        for (i, a) in entries.iter().enumerate() {
            if let Some(b) = entries[i + 1..].iter().find(|b| b.link_key == a.link_key) {
                return Err(PeerTableError::DuplicateKey(a.id, b.id));
            }
        }
        Ok(PeerTable { entries })
    }

    pub fn get(&self, id: PeerId) -> Option<&PeerEntry> {
        self.entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn by_key(&self, key: &LinkPublicKey) -> Option<&PeerEntry> {
        self.entries.iter().find(|e| &e.link_key == key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PeerEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
