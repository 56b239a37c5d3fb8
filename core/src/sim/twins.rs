//! Twins (aptos-core consensus/src/twins/): a Byzantine replica runs as two instances of the
//! honest code under one key, each talking to its own part of the cluster. Each instance
//! follows the protocol, so together they equivocate on every message kind exactly the way
//! honest code would, which no message rewriting reaches: two proposals for a round, two
//! votes, two pre-prepares per slot, two view changes, two timeouts. The partition is drawn
//! again every [`REPARTITION_US`], so a replica that saw one twin later hears the other.

use super::rng::Rng;
use crate::replica::Replica;
use crate::topology::ReplicaId;
use std::collections::BTreeSet;

/// Simulated time between two draws of the twins' partition.
pub const REPARTITION_US: u64 = 1_500_000;

/// The second instance of a Twins replica. The first is the replica in the simulator's
/// ordinary slot; it talks to every peer outside `peers`.
pub struct Twin {
    pub replica: Replica,
    /// The peers that talk to this instance (and not to the first).
    pub peers: BTreeSet<ReplicaId>,
}

impl Twin {
    pub fn new(replica: Replica, n: u32, rng: &mut Rng) -> Twin {
        let mut twin = Twin {
            replica,
            peers: BTreeSet::new(),
        };
        twin.repartition(n, rng);
        twin
    }

    /// Split the other replicas in two, each peer on either side with even odds, so that
    /// over a run both sides can reach a quorum with their twin and neither always does.
    pub fn repartition(&mut self, n: u32, rng: &mut Rng) {
        let me = self.replica.id();
        self.peers = (0..n).filter(|&p| p != me && rng.chance(500)).collect();
    }

    /// Whether a message from `peer` reaches this instance rather than the first.
    pub fn hears(&self, peer: ReplicaId) -> bool {
        self.peers.contains(&peer)
    }
}
