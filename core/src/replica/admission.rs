//! Locally final receipts that carry the outcome global execution will give
//! (`ledger::admission`): each of our domain's lanes decides its committed batches in sequence
//! order against our ledger, and releases the decisions once our ledger executed them.
//!
//! A decision is a function of the lane's order and the batches' credit floors alone, so it
//! does not matter when a member makes it (before or after a restart, behind or ahead of its
//! peers): it waits only while our ledger has executed fewer credits than a floor counts, and
//! a batch our ledger already executed is not decided at all (its client has the global
//! receipt).

use super::{Action, ReceiptStatus, Replica};
use crate::ledger::{DebitAdmission, IdempotencyKey, Outcome};
use crate::messages::{Lane, Seq};
use crate::transaction::{Payload, PayloadKind};
use std::collections::BTreeMap;

/// One of our lanes' decisions that our ledger has not executed yet.
#[derive(Debug, Clone, Default)]
pub(super) struct LaneDecisions {
    admission: DebitAdmission,
    /// Highest sequence decided, or executed here (nothing at or below it is decided).
    decided_upto: Seq,
    /// Keys each decided batch left pending, to release when our ledger executes it.
    keys: BTreeMap<Seq, Vec<IdempotencyKey>>,
}

impl LaneDecisions {
    pub(super) fn new(forget_reservations: bool) -> LaneDecisions {
        let mut admission = DebitAdmission::new();
        if forget_reservations {
            admission.plant_forget_reservations();
        }
        LaneDecisions {
            admission,
            ..LaneDecisions::default()
        }
    }

    /// Every pending key belongs to a decided batch our ledger has not executed.
    pub(super) fn assert_consistent(&self, executed_upto: Seq) {
        let held: usize = self.keys.values().map(Vec::len).sum();
        assert_eq!(held, self.admission.pending_count(), "decisions tracked");
        assert!(self
            .keys
            .keys()
            .all(|&seq| seq > executed_upto && seq <= self.decided_upto));
    }
}

impl Replica {
    /// Our ledger executed more: release what it executed, then decide what can be now.
    pub(super) fn after_execution(&mut self, actions: &mut Vec<Action>) {
        for shard in 0..self.decisions.len() {
            let executed = self.last_executed_cut[self.own_lane_index(shard)];
            let decisions = &mut self.decisions[shard];
            while let Some(entry) = decisions.keys.first_entry() {
                if *entry.key() > executed {
                    break;
                }
                for key in entry.remove() {
                    decisions.admission.release(key);
                }
            }
            self.decide_ready(shard, actions);
        }
    }

    /// Decides our lane's committed batches in order, as far as our ledger allows.
    pub(super) fn decide_ready(&mut self, shard: usize, actions: &mut Vec<Action>) {
        let index = self.own_lane_index(shard);
        let lane = self.lanes[index];
        loop {
            let executed = self.last_executed_cut[index];
            let decisions = &mut self.decisions[shard];
            decisions.decided_upto = decisions.decided_upto.max(executed);
            let seq = decisions.decided_upto + 1;
            // Two versions of one sequence: the domain is beyond its fault bound and no
            // prediction can hold; its clients wait for the global receipt.
            let Some([(_, payload)]) = self.batches.get(&(index, seq)).map(Vec::as_slice) else {
                return;
            };
            let payload = payload.clone();
            if !self.decide(shard, lane, seq, &payload, actions) {
                return;
            }
        }
    }

    /// Decides one batch whole, or not at all while a floor is ahead of our ledger.
    fn decide(
        &mut self,
        shard: usize,
        lane: Lane,
        seq: Seq,
        payload: &Payload,
        actions: &mut Vec<Action>,
    ) -> bool {
        if payload.kind() == PayloadKind::Opaque {
            for tx in payload.iter() {
                let status = ReceiptStatus::LocallyOrdered { lane, seq };
                actions.push(Action::Receipt {
                    key: tx.key(),
                    status,
                });
            }
            self.decisions[shard].decided_upto = seq;
            return true;
        }
        let ledger = &self.ledger;
        if payload
            .stamped_transfers()
            .any(|(tx, floor)| ledger.credited(tx.transfer.from) < floor)
        {
            return false;
        }
        let decisions = &mut self.decisions[shard];
        let mut pending = Vec::new();
        for (tx, floor) in payload.stamped_transfers() {
            let outcome = decisions
                .admission
                .decide(ledger, &tx.transfer, floor)
                .expect("every floor is within our ledger's credits");
            if outcome != Outcome::Duplicate {
                pending.push(tx.key());
            }
            let status = ReceiptStatus::LocallyFinal { lane, seq, outcome };
            actions.push(Action::Receipt {
                key: tx.key(),
                status,
            });
        }
        decisions.decided_upto = seq;
        if !pending.is_empty() {
            assert!(decisions.keys.insert(seq, pending).is_none());
        }
        true
    }

    /// Index among all lanes of our domain's lane `shard`.
    fn own_lane_index(&self, shard: usize) -> usize {
        let domain = self.config.topology.domain_of(self.config.me) as usize;
        domain * self.shards.len() + shard
    }
}
