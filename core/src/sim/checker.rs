//! The invariants every simulated run must keep.

use crate::crypto::Digest;
use crate::replica::Replica;
use crate::topology::{ReplicaId, Topology};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub what: String,
}

/// What the simulator saw honest replicas do.
#[derive(Debug, Default)]
pub struct Observations {
    /// Per replica, executed blocks in order: (height, block, parent, state root).
    executed: BTreeMap<ReplicaId, Vec<(u64, Digest, Digest, Digest)>>,
    /// Per replica, how often each key was applied (balances moved).
    applied: BTreeMap<ReplicaId, BTreeMap<u128, u32>>,
    /// Per replica, keys with a globally final outcome.
    finalised: BTreeMap<ReplicaId, BTreeSet<u128>>,
    /// Keys executed that no client submitted.
    foreign: Vec<(ReplicaId, u128)>,
}

impl Observations {
    pub fn executed(
        &mut self,
        id: ReplicaId,
        height: u64,
        block: Digest,
        parent: Digest,
        root: Digest,
    ) {
        self.executed
            .entry(id)
            .or_default()
            .push((height, block, parent, root));
    }

    pub fn outcome(&mut self, id: ReplicaId, key: u128, applied: bool) {
        self.finalised.entry(id).or_default().insert(key);
        if applied {
            *self.applied.entry(id).or_default().entry(key).or_default() += 1;
        }
    }

    /// Whether replica `id` executed `key` (has a globally final outcome for it).
    pub fn finalised_on(&self, id: ReplicaId, key: u128) -> bool {
        self.finalised.get(&id).is_some_and(|f| f.contains(&key))
    }

    pub fn foreign(&mut self, id: ReplicaId, key: u128) {
        self.foreign.push((id, key));
    }

    /// Agreement, total order, equal state roots, validity, conservation, liveness.
    pub fn check(
        &self,
        seed: u64,
        honest: &[&Replica],
        submitted: &BTreeSet<u128>,
    ) -> Vec<Violation> {
        let mut found = Vec::new();
        let mut say = |what: String| found.push(Violation { seed, what });
        self.check_chains(&mut say);
        self.check_agreement(&mut say);
        for (&id, counts) in &self.applied {
            if let Some((key, count)) = counts.iter().find(|(_, &c)| c > 1) {
                say(format!(
                    "validity: r{id} applied transaction {key:#x} {count} times"
                ));
            }
        }
        if let Some((id, key)) = self.foreign.first() {
            say(format!(
                "validity: r{id} executed transaction {key:#x} that no client submitted"
            ));
        }
        for replica in honest {
            let ledger = replica.ledger();
            if ledger.total_balance() != ledger.genesis_total() {
                say(format!(
                    "conservation: r{} holds {} in total, genesis had {}",
                    replica.id(),
                    ledger.total_balance(),
                    ledger.genesis_total()
                ));
            }
            let finalised = self.finalised.get(&replica.id());
            let missing = submitted
                .iter()
                .filter(|k| !finalised.is_some_and(|f| f.contains(k)))
                .count();
            if missing > 0 {
                say(format!(
                    "liveness: r{} has not executed {missing} of {} submitted transactions after stabilisation",
                    replica.id(),
                    submitted.len()
                ));
            }
        }
        found
    }

    /// Each replica's committed log is one chain: heights 1, 2, 3, ... each extending the last.
    fn check_chains(&self, say: &mut impl FnMut(String)) {
        for (&id, log) in &self.executed {
            for (i, window) in log.windows(2).enumerate() {
                let ((h0, b0, _, _), (h1, _, p1, _)) = (window[0], window[1]);
                if h1 != h0 + 1 || p1 != b0 {
                    say(format!("total order: r{id} executed height {h1} after {h0} (entry {i}) without extending it"));
                    return;
                }
            }
            if log.first().is_some_and(|e| e.0 != 1) {
                say(format!(
                    "total order: r{id} started executing at height {}",
                    log[0].0
                ));
            }
        }
    }

    /// Every honest replica's log is a prefix of one log, with equal state roots.
    fn check_agreement(&self, say: &mut impl FnMut(String)) {
        let mut reference: BTreeMap<u64, (ReplicaId, Digest, Digest)> = BTreeMap::new();
        for (&id, log) in &self.executed {
            for &(height, block, _, root) in log {
                let (first, known_block, known_root) =
                    *reference.entry(height).or_insert((id, block, root));
                if known_block != block {
                    say(format!("agreement: r{first} and r{id} executed different blocks at height {height}"));
                    return;
                }
                if known_root != root {
                    say(format!(
                        "state: r{first} and r{id} have different state roots at height {height}"
                    ));
                    return;
                }
            }
        }
    }
}

/// Local agreement: in every domain with at most f_d Byzantine replicas, each lane has one
/// committed batch per sequence across all honest replicas.
pub fn check_local_agreement(
    seed: u64,
    topology: &Topology,
    honest: &[&Replica],
    byzantine_in: impl Fn(u32) -> u32,
) -> Vec<Violation> {
    let mut seen: BTreeMap<(usize, u64), (ReplicaId, Digest)> = BTreeMap::new();
    let shards = topology.shards as usize;
    for replica in honest {
        for (lane, seq, digest) in replica.batch_digests() {
            let domain = (lane / shards) as u32;
            if byzantine_in(domain) > topology.domain_quorum(domain).f {
                continue;
            }
            let (first, known) = *seen.entry((lane, seq)).or_insert((replica.id(), digest));
            if known != digest {
                let what = format!(
                    "local agreement: lane {lane} seq {seq}: r{first} and r{} hold different committed batches",
                    replica.id()
                );
                return vec![Violation { seed, what }];
            }
        }
    }
    Vec::new()
}
