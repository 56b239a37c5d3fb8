//! The invariants every simulated run must keep.

use crate::client::TxRejection;
use crate::crypto::Digest;
use crate::replica::Replica;
use crate::topology::{ReplicaId, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// Parent marker of an installed snapshot in an executed log.
const INSTALLED: Digest = [0xff; 32];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub what: String,
}

/// What the simulator saw honest replicas do.
#[derive(Debug, Default)]
pub struct Observations {
    /// Per replica, executed blocks in order: (height, block, parent, state root). An
    /// installed snapshot is an entry too, with [`INSTALLED`] as its parent: the log restarts
    /// there and the entries below it are not the replica's own execution.
    executed: BTreeMap<ReplicaId, Vec<(u64, Digest, Digest, Digest)>>,
    /// Per key, the height at which it was globally final (equal on every honest replica).
    final_height: BTreeMap<u128, u64>,
    /// Per replica, the highest snapshot it installed.
    installed: BTreeMap<ReplicaId, u64>,
    /// Honest replicas that found their state diverged from a stable checkpoint.
    diverged: Vec<(ReplicaId, u64)>,
    /// Per replica, the heights at which each key was applied (balances moved).
    applied: BTreeMap<ReplicaId, BTreeMap<u128, Vec<u64>>>,
    /// Per replica, keys with a globally final outcome.
    finalised: BTreeMap<ReplicaId, BTreeMap<u128, u64>>,
    /// Keys executed that no client submitted.
    foreign: Vec<(ReplicaId, u128)>,
    /// Transactions an honest replica executed with other contents than the client signed.
    altered: Vec<(ReplicaId, u128)>,
    /// Honest clients' transactions an honest replica refused at ingress.
    rejected: Vec<(ReplicaId, u128, TxRejection)>,
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

    /// A snapshot of `height` was installed: the replica has the state after that block.
    pub fn installed(&mut self, id: ReplicaId, height: u64, block: Digest, root: Digest) {
        self.executed
            .entry(id)
            .or_default()
            .push((height, block, INSTALLED, root));
        let at = self.installed.entry(id).or_default();
        *at = (*at).max(height);
    }

    pub fn diverged(&mut self, id: ReplicaId, height: u64) {
        self.diverged.push((id, height));
    }

    /// Blocks executed after the replica's first installed snapshot, over all replicas.
    pub fn executed_after_install(&self) -> u64 {
        self.executed
            .values()
            .map(|log| {
                log.iter()
                    .skip_while(|e| e.2 != INSTALLED)
                    .filter(|e| e.2 != INSTALLED)
                    .count() as u64
            })
            .sum()
    }

    pub fn outcome(&mut self, id: ReplicaId, key: u128, height: u64, applied: bool) {
        self.final_height.entry(key).or_insert(height);
        self.finalised.entry(id).or_default().insert(key, height);
        if applied {
            self.applied
                .entry(id)
                .or_default()
                .entry(key)
                .or_default()
                .push(height);
        }
    }

    /// Replica `id` restarted from its records with `executed_height` executed: what it
    /// executed above that was not durable, and it executes it again (at-least-once, as a
    /// host's application must expect after a crash).
    pub fn restarted(&mut self, id: ReplicaId, executed_height: u64) {
        if let Some(log) = self.executed.get_mut(&id) {
            log.retain(|&(height, ..)| height <= executed_height);
        }
        if let Some(finalised) = self.finalised.get_mut(&id) {
            finalised.retain(|_, height| *height <= executed_height);
        }
        if let Some(applied) = self.applied.get_mut(&id) {
            for heights in applied.values_mut() {
                heights.retain(|&height| height <= executed_height);
            }
        }
    }

    /// Whether replica `id` executed `key` (has a globally final outcome for it), or
    /// installed a snapshot of a height at or above the one that made `key` final.
    pub fn finalised_on(&self, id: ReplicaId, key: u128) -> bool {
        self.finalised
            .get(&id)
            .is_some_and(|f| f.contains_key(&key))
            || self.installed.get(&id).is_some_and(|&installed| {
                self.final_height
                    .get(&key)
                    .is_some_and(|&height| height <= installed)
            })
    }

    pub fn foreign(&mut self, id: ReplicaId, key: u128) {
        self.foreign.push((id, key));
    }

    pub fn altered(&mut self, id: ReplicaId, key: u128) {
        self.altered.push((id, key));
    }

    pub fn rejected(&mut self, id: ReplicaId, key: u128, reason: TxRejection) {
        self.rejected.push((id, key, reason));
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
        if let Some((id, height)) = self.diverged.first() {
            say(format!(
                "state: honest r{id} diverged from the stable checkpoint at height {height}"
            ));
        }
        for (&id, heights) in &self.applied {
            if let Some((key, at)) = heights.iter().find(|(_, at)| at.len() > 1) {
                say(format!(
                    "validity: r{id} applied transaction {key:#x} {} times (heights {at:?})",
                    at.len()
                ));
            }
        }
        if let Some((id, key)) = self.altered.first() {
            say(format!(
                "validity: r{id} executed transaction {key:#x} altered from what its client signed"
            ));
        }
        if let Some((id, key, reason)) = self.rejected.first() {
            say(format!(
                "validity: r{id} refused an honest client's transaction {key:#x}: {}",
                reason.reason()
            ));
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
            let missing = submitted
                .iter()
                .filter(|&&k| !self.finalised_on(replica.id(), k))
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
                if p1 == INSTALLED && h1 > h0 {
                    continue; // state transfer jumped ahead; agreement checks its root
                }
                if h1 != h0 + 1 || p1 != b0 {
                    say(format!("total order: r{id} executed height {h1} after {h0} (entry {i}) without extending it"));
                    return;
                }
            }
            if log.first().is_some_and(|e| e.0 != 1 && e.2 != INSTALLED) {
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
