//! The invariants every simulated run must keep.

use crate::client::TxRejection;
use crate::crypto::Digest;
use crate::ledger::Outcome;
use crate::messages::{Lane, Seq};
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
    /// Per transaction in a batch (key, lane, sequence), the outcome the first honest member
    /// of its lane predicted in its locally final receipt.
    predicted: BTreeMap<(u128, Lane, Seq), (ReplicaId, Outcome)>,
    /// Honest members that predicted otherwise than the first: (occurrence, member, outcome).
    contradicted: Vec<((u128, Lane, Seq), ReplicaId, Outcome)>,
    /// Per transaction in a batch, its outcome in the global order (equal everywhere, or
    /// agreement fails).
    settled: BTreeMap<(u128, Lane, Seq), Outcome>,
}

/// What the admission check saw: locally final predictions compared with the global order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionCounts {
    /// Predictions of domains within their fault bound whose global outcome is known.
    pub checked: u64,
    /// Of those, predicted rejections (admission refused the debit locally).
    pub rejected: u64,
    /// Predictions not checked: of domains beyond their fault bound.
    pub exempt: u64,
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

    /// Honest member `id` said, locally final, that `key` in batch `seq` of `lane` will
    /// execute as `outcome`.
    pub fn predicted(&mut self, id: ReplicaId, key: u128, lane: Lane, seq: Seq, outcome: Outcome) {
        let occurrence = (key, lane, seq);
        let (_, first) = *self.predicted.entry(occurrence).or_insert((id, outcome));
        if first != outcome {
            self.contradicted.push((occurrence, id, outcome));
        }
    }

    /// `key` in batch `seq` of `lane` executed as `outcome`.
    pub fn settled(&mut self, key: u128, lane: Lane, seq: Seq, outcome: Outcome) {
        self.settled.entry((key, lane, seq)).or_insert(outcome);
    }

    /// The global order never reverses a locally final outcome of a domain within its
    /// fault bound, and the honest members of such a lane all predict alike.
    pub fn check_admission(
        &self,
        seed: u64,
        beyond_bound: impl Fn(u32) -> bool,
    ) -> (Vec<Violation>, AdmissionCounts) {
        let mut found = Vec::new();
        let mut counts = AdmissionCounts::default();
        if let Some(&((key, lane, seq), id, outcome)) = self
            .contradicted
            .iter()
            .find(|((_, lane, _), ..)| !beyond_bound(lane.domain))
        {
            let (first, said) = self.predicted[&(key, lane, seq)];
            found.push(Violation { seed, what: format!(
                "admission: r{first} and r{id} predicted {said:?} and {outcome:?} for {key:#x} in {lane:?} seq {seq}"
            )});
        }
        for (occurrence, &(id, said)) in &self.predicted {
            let (key, lane, seq) = *occurrence;
            if beyond_bound(lane.domain) {
                counts.exempt += 1;
                continue;
            }
            let Some(&settled) = self.settled.get(occurrence) else {
                continue;
            };
            counts.checked += 1;
            counts.rejected += u64::from(matches!(said, Outcome::Rejected(_)));
            if settled != said && found.len() < 2 {
                found.push(Violation { seed, what: format!(
                    "reversed: r{id} said {key:#x} in {lane:?} seq {seq} is locally final as {said:?}; the global order gave {settled:?}"
                )});
            }
        }
        (found, counts)
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
