//! Rejoining after a disk loss (a replaced machine). The replica may have signed anything
//! before and remembers none of it. It persists that it is rejoining, asks every peer for its
//! certified progress under a fresh nonce, and signs nothing until the answers of enough
//! peers bound what it could have signed: in the global tier every round below
//! [`Global::rejoin_floor`](crate::hotstuff::Global::rejoin_floor), in each lane of its
//! domain every sequence up to [`pbft::rejoin_floor`]. Meanwhile it catches up like any
//! replica that fell behind (blocks, batches, state transfer); until it passes the floors it
//! counts against the fault bound, as a crashed replica would.
//!
//! How many answers: a certificate's q signers and a answers from the other n - 1 replicas
//! share at least a + q - n replicas other than us; with a = n - q + f + 1 that is f + 1, so
//! one of them is honest, signed the certificate, and answered from at or above it. The same
//! holds inside the domain with its n_d, q_d and f_d.

use super::{Action, Replica, ReplicaConfig};
use crate::bugs::PlantedBugs;
use crate::crypto::Signer;
use crate::durable::{Record, RejoinFloors, RejoinState};
use crate::messages::{Message, QuorumCert, RecoveryReply, Round, Seq, TimeoutCert};
use crate::pbft;
use crate::topology::{Quorum, ReplicaId};

use std::collections::BTreeMap;

/// Milliseconds between requests to the peers that have not answered yet.
pub const REJOIN_REQUEST_MS: u64 = 20;

/// Answers a rejoin waits for (see the module docs).
pub fn answers_needed(quorum: &Quorum) -> u32 {
    quorum.n - quorum.q + quorum.f + 1
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejoinError {
    #[error(
        "a replica cannot rejoin without its disk here: it needs answers from {needed} of \
         the other {others} replicas of its {scope}, and there are too few"
    )]
    TooFewPeers {
        scope: &'static str,
        needed: u32,
        others: u32,
    },
}

/// Answers gathered so far.
#[derive(Debug)]
pub(super) struct Rejoin {
    nonce: u64,
    /// Per answering peer: the round its certificates enter, and the certificates.
    global: BTreeMap<ReplicaId, (Round, QuorumCert, Option<TimeoutCert>)>,
    /// Per answering member of our domain: its stable point in each of our lanes.
    local: BTreeMap<ReplicaId, Vec<Seq>>,
}

impl Replica {
    /// A replica whose disk is gone (a new machine for an old identity): the actions are
    /// the first record and the first requests, for the host to persist and send.
    pub fn rejoin(
        config: ReplicaConfig,
        signer: &dyn Signer,
        nonce: u64,
    ) -> Result<(Replica, Vec<Action>), RejoinError> {
        Replica::rejoin_with_bugs(config, signer, PlantedBugs::none(), nonce)
    }

    pub(crate) fn rejoin_with_bugs(
        config: ReplicaConfig,
        signer: &dyn Signer,
        bugs: PlantedBugs,
        nonce: u64,
    ) -> Result<(Replica, Vec<Action>), RejoinError> {
        let topology = &config.topology;
        let domain = topology.domain_of(config.me);
        let scopes = [
            ("cluster", topology.quorum()),
            ("domain", topology.domain_quorum(domain)),
        ];
        for (scope, quorum) in scopes {
            let (needed, others) = (answers_needed(&quorum), quorum.n - 1);
            if needed > others {
                return Err(RejoinError::TooFewPeers {
                    scope,
                    needed,
                    others,
                });
            }
        }
        let mut replica = Replica::with_bugs(config, signer, bugs);
        let state = RejoinState {
            nonce,
            floors: None,
        };
        let mut actions = vec![Action::persist(Record::Rejoined(state))];
        replica.begin_rejoin(nonce);
        replica.ask_to_rejoin(&mut actions);
        replica.number_records(&mut actions);
        Ok((replica, actions))
    }

    /// Both tiers stay silent until the floors are known.
    fn begin_rejoin(&mut self, nonce: u64) {
        if self.bugs.rejoin_without_floor {
            return;
        }
        self.global.silence();
        for shard in &mut self.shards {
            shard.silence_until(Seq::MAX);
        }
        self.rejoin = Some(Rejoin {
            nonce,
            global: BTreeMap::new(),
            local: BTreeMap::new(),
        });
    }

    /// Restore: a rejoin in progress resumes (answers to the same nonce still count); a
    /// finished one keeps its floors.
    pub(super) fn replay_rejoined(&mut self, state: RejoinState) {
        let Some(floors) = state.floors else {
            return self.begin_rejoin(state.nonce);
        };
        self.rejoin = None;
        self.global.replay_rejoin(floors.global_round);
        self.silence_lanes(&floors.lane_seqs);
    }

    fn silence_lanes(&mut self, floors: &[Seq]) {
        for (shard, &floor) in self.shards.iter_mut().zip(floors) {
            shard.silence_until(floor);
        }
    }

    /// The floors are known (the answers arrived), for a replica that rejoined.
    pub fn rejoin_floors_known(&self) -> bool {
        self.rejoin.is_none()
    }

    /// The floors are known and the global tier is past its floor (it votes again).
    pub fn global_floor_passed(&self) -> bool {
        self.rejoin.is_none() && !self.global.rejoining()
    }

    /// Still waiting for answers, or below a floor (our certificates then do not bound
    /// what we signed before the loss, so we answer no other rejoining replica).
    pub fn is_rejoining(&self) -> bool {
        self.rejoin.is_some()
            || self.global.rejoining()
            || self.shards.iter().any(|shard| shard.is_silent())
    }

    fn ask_to_rejoin(&self, actions: &mut Vec<Action>) {
        let Some(rejoin) = &self.rejoin else {
            return;
        };
        let me = self.config.me;
        let to: Vec<ReplicaId> = self
            .config
            .topology
            .replicas
            .iter()
            .map(|r| r.id)
            .filter(|&id| id != me && !rejoin.global.contains_key(&id))
            .collect();
        let message = Message::RecoveryRequest {
            nonce: rejoin.nonce,
            from: me,
        };
        actions.push(Action::send(to, message));
    }

    pub(super) fn rejoin_tick(&self, actions: &mut Vec<Action>) {
        let every = (REJOIN_REQUEST_MS * self.config.ticks_per_ms).max(1);
        if self.now.is_multiple_of(every) {
            self.ask_to_rejoin(actions);
        }
    }

    /// A rejoining peer asks for our certified progress.
    pub(super) fn on_recovery_request(
        &mut self,
        nonce: u64,
        from: ReplicaId,
        actions: &mut Vec<Action>,
    ) {
        if from == self.config.me || self.is_rejoining() {
            return;
        }
        let reply = RecoveryReply {
            nonce,
            high_qc: self.global.high_qc().clone(),
            high_tc: self.global.high_tc().cloned(),
            lane_lcs: self
                .shards
                .iter()
                .filter_map(|shard| shard.stable_lc().cloned())
                .collect(),
        };
        actions.push(Action::send(
            vec![from],
            Message::RecoveryReply(Box::new(reply)),
        ));
        self.global.answered_rejoin();
    }

    /// An answer (its signatures checked by the host; signers and quorums here).
    pub(super) fn on_recovery_reply(
        &mut self,
        from: ReplicaId,
        reply: RecoveryReply,
        signer: &dyn Signer,
        actions: &mut Vec<Action>,
    ) {
        let my_domain = self.config.topology.domain_of(self.config.me);
        let Some(nonce) = self.rejoin.as_ref().map(|rejoin| rejoin.nonce) else {
            return;
        };
        if reply.nonce != nonce || from == self.config.me {
            return;
        }
        let rules = &self.rules;
        let valid = rules.qc(&reply.high_qc).is_ok()
            && reply.high_tc.as_ref().is_none_or(|tc| rules.tc(tc).is_ok())
            && reply.lane_lcs.iter().all(|lc| rules.lc(lc).is_ok());
        if !valid {
            return;
        }
        let entry = self.global.entry_of(&reply.high_qc, reply.high_tc.as_ref());
        let mut stable = vec![0; self.shards.len()];
        for lc in reply
            .lane_lcs
            .iter()
            .filter(|lc| lc.lane.domain == my_domain)
        {
            if let Some(seq) = stable.get_mut(lc.lane.shard as usize) {
                *seq = (*seq).max(lc.seq);
            }
        }
        let rejoin = self.rejoin.as_mut().expect("rejoining: checked above");
        rejoin
            .global
            .insert(from, (entry, reply.high_qc, reply.high_tc));
        if self.config.topology.domain_of(from) == my_domain {
            rejoin.local.insert(from, stable);
        }
        self.maybe_finish_rejoin(signer, actions);
    }

    fn maybe_finish_rejoin(&mut self, signer: &dyn Signer, actions: &mut Vec<Action>) {
        let topology = &self.config.topology;
        let domain_quorum = topology.domain_quorum(topology.domain_of(self.config.me));
        let enough = self.rejoin.as_ref().is_some_and(|rejoin| {
            rejoin.global.len() as u32 >= answers_needed(&topology.quorum())
                && rejoin.local.len() as u32 >= answers_needed(&domain_quorum)
        });
        if !enough {
            return;
        }
        let rejoin = self.rejoin.take().expect("checked above");
        let entry = rejoin.global.values().map(|a| a.0).max().unwrap_or(1);
        let lane_seqs: Vec<Seq> = (0..self.shards.len())
            .map(|shard| {
                let highest = rejoin.local.values().map(|s| s[shard]).max().unwrap_or(0);
                pbft::rejoin_floor(highest)
            })
            .collect();
        let floors = RejoinFloors {
            global_round: self.global.rejoin_floor(entry),
            lane_seqs,
        };
        tracing::info!(
            replica = self.config.me,
            global_floor = floors.global_round,
            lane_floors = ?floors.lane_seqs,
            "rejoin floors learned"
        );
        let state = RejoinState {
            nonce: rejoin.nonce,
            floors: Some(floors.clone()),
        };
        actions.push(Action::persist(Record::Rejoined(state)));
        self.silence_lanes(&floors.lane_seqs);
        let certificates = rejoin
            .global
            .into_values()
            .map(|(_, qc, tc)| (qc, tc))
            .collect();
        let mut out = Vec::new();
        self.global
            .rejoin_at(floors.global_round, certificates, signer, &mut out);
        self.apply_global(out, signer, actions);
    }
}
