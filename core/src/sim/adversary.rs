//! Byzantine behaviour for simulated replicas.
//!
//! A Byzantine replica runs the honest code (so it keeps its place in the protocol), its
//! outgoing messages pass through a strategy that may rewrite, split or drop them, and on
//! every tick it may inject anything the coalition can sign ([`Coalition`]: up to f replicas
//! sharing their keys): extreme field values, forged certificates (empty, sub-quorum,
//! outsiders, false genesis), equivocation on every message kind, replays, floods against
//! every bounded buffer and unsolicited responses. It never holds an honest key, so what it
//! forges must be refused by the rules, and a one-line slip in a rule lets it through.

use super::rng::Rng;
use crate::checkpoint::CheckpointVote;
use crate::client::{ClientSignature, SignedTransfer, CLIENT_SIGNATURE_BYTES};
use crate::crypto::{Bitmap, Certificate, Digest, Signature, Signer, Tag};
use crate::hotstuff::genesis_block;
use crate::ledger::Transfer;
use crate::messages::{
    commit_payload, prepare_payload, timeout_payload, vote_payload, Block, GlobalMessage, Lane,
    LocalCert, LocalMessage, Message, QuorumCert, Seq, TimeoutCert, View, ViewChange,
};
use crate::topology::{ReplicaId, Topology};
use crate::transaction::{Payload, Transaction};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Blocks an adversary remembers, to build forks from.
const HISTORY_BLOCKS_MAX: usize = 256;
/// Extra delay of a vote held back by the delaying strategy.
pub const VOTE_DELAY_US: u64 = 400_000;
/// Messages an adversary remembers to replay.
const REPLAY_MESSAGES_MAX: usize = 256;
/// A flooding adversary injects a burst of this many messages every `FLOOD_EVERY_TICKS`
/// (more than every per-peer share of a window).
const FLOOD_BURST: u64 = 100;
const FLOOD_EVERY_TICKS: u64 = 20;
/// Client transfers an adversary remembers, to forward again.
const SEEN_TRANSFERS_MAX: usize = 64;
/// Idempotency keys of fabricated transfers start here (no client submits them).
pub const FABRICATED_KEY_BASE: u128 = 0xBAD0_0000 << 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Send conflicting proposals and pre-prepares to two halves of the recipients that
    /// overlap in one replica; the twin proposal is well formed and orders nothing new.
    Equivocate,
    /// Never send votes (prepares, commits, global votes, timeouts).
    WithholdVotes,
    /// Send votes late.
    DelayVotes,
    /// Pre-prepare batches whose digest does not match the payload.
    InvalidBatches,
    /// Claim signers a certificate does not have.
    ForgeCertificates,
    /// As leader, show the real proposal to one replica and a block extending an older QC
    /// to the others, trying to fork the chain (locking must stop it).
    Fork,
    /// Serve state-transfer chunks with a flipped byte (scripted only: not drawn from
    /// [`STRATEGIES`], so the seeds of the random suites keep their schedules). The
    /// invalid-batches strategy does the same to the chunks it serves.
    CorruptSnapshots,
    /// As leader, fork an older QC with an empty timeout certificate (a TC must hold q
    /// timeout votes, or it releases every lock).
    EmptyTcFork,
    /// As leader, fork an older block with a QC of the coalition's signatures only.
    SubQuorumQcFork,
    /// While no QC exists, lead silently; after a timeout, extend a fabricated block under a
    /// round-0 certificate that is not the genesis one, and serve the block unasked.
    GenesisFork,
    /// Certify fabricated batches of a domain with the coalition's signatures (outsiders).
    OutsiderCertificates,
    /// Send every message kind with extreme rounds, views, sequences, heights and lanes.
    ExtremeValues,
    /// Conflicting votes, timeouts, prepares, commits and checkpoints to different peers.
    EquivocateEverything,
    /// Fill every bounded buffer: votes and pieces for many blocks and rounds, prepares and
    /// commits for many digests, view changes, forwards, requests, oversized responses.
    Flood,
    /// Send old messages again, to anyone.
    Replay,
    /// Run as two honest instances under one key, each talking to its own part of the
    /// cluster ([`super::twins`]); the adversary itself lets everything through.
    Twins,
    /// Alter clients' transfers (amount, recipient) or add made-up ones, in the batches it
    /// pre-prepares as primary (properly signed by itself) and in the transfers it forwards;
    /// it holds no client key, so the client signatures no longer match.
    AlterTransfers,
    /// As primary, stamp debits with credit floors it never executed (slightly above, far
    /// above) or below what it did, re-signing the pre-prepare (scripted only, like
    /// `CorruptSnapshots`): members must wait for credits rather than promise an outcome
    /// that execution then refuses.
    LieAboutCredits,
}

pub const STRATEGIES: &[Strategy] = &[
    Strategy::Equivocate,
    Strategy::WithholdVotes,
    Strategy::DelayVotes,
    Strategy::InvalidBatches,
    Strategy::ForgeCertificates,
    Strategy::Fork,
    Strategy::EmptyTcFork,
    Strategy::SubQuorumQcFork,
    Strategy::GenesisFork,
    Strategy::OutsiderCertificates,
    Strategy::ExtremeValues,
    Strategy::EquivocateEverything,
    Strategy::Flood,
    Strategy::Replay,
    Strategy::Twins,
    Strategy::AlterTransfers,
];

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Equivocate => "equivocate",
            Strategy::WithholdVotes => "withhold-votes",
            Strategy::DelayVotes => "delay-votes",
            Strategy::InvalidBatches => "invalid-batches",
            Strategy::ForgeCertificates => "forge-certificates",
            Strategy::Fork => "fork",
            Strategy::CorruptSnapshots => "corrupt-snapshots",
            Strategy::EmptyTcFork => "empty-tc-fork",
            Strategy::SubQuorumQcFork => "sub-quorum-qc-fork",
            Strategy::GenesisFork => "genesis-fork",
            Strategy::OutsiderCertificates => "outsider-certificates",
            Strategy::ExtremeValues => "extreme-values",
            Strategy::EquivocateEverything => "equivocate-everything",
            Strategy::Flood => "flood",
            Strategy::Replay => "replay",
            Strategy::Twins => "twins",
            Strategy::AlterTransfers => "alter-transfers",
            Strategy::LieAboutCredits => "lie-about-credits",
        }
    }

    pub fn named(name: &str) -> Option<Strategy> {
        STRATEGIES
            .iter()
            .chain([Strategy::CorruptSnapshots, Strategy::LieAboutCredits].iter())
            .copied()
            .find(|s| s.name() == name)
    }
}

/// What the Byzantine replicas share: their keys (they coordinate), and what any replica
/// knows of the cluster. Generic over the signer, so a real node in adversary mode runs the
/// same strategies with its real keys (a coalition of itself).
#[derive(Clone)]
pub struct Coalition<S> {
    pub members: Vec<ReplicaId>,
    /// Each member's signer, in the order of `members`.
    pub signers: Vec<S>,
    pub topology: Arc<Topology>,
    pub rotation_rounds: u64,
}

impl<S: Signer> Coalition<S> {
    fn signer_of(&self, id: ReplicaId) -> &S {
        let index = self.members.iter().position(|&m| m == id);
        &self.signers[index.expect("a coalition member signs")]
    }

    fn lanes(&self) -> usize {
        self.topology.domains.len() * self.topology.shards as usize
    }

    fn honest(&self) -> Vec<ReplicaId> {
        (0..self.topology.n())
            .filter(|id| !self.members.contains(id))
            .collect()
    }

    /// A certificate of the coalition members in `signers` over one message.
    fn certify(&self, signers: &[ReplicaId], tag: Tag, message: &[u8]) -> Certificate {
        let mut bitmap = Bitmap::default();
        let signatures: Vec<Signature> = signers
            .iter()
            .map(|&id| {
                bitmap.insert(id);
                self.signer_of(id).sign(tag, message)
            })
            .collect();
        Certificate {
            signers: bitmap,
            aggregate: self.signers[0].aggregate(&signatures),
        }
    }

    fn genesis(&self) -> Block {
        genesis_block(self.lanes())
    }

    fn genesis_qc(&self) -> QuorumCert {
        let genesis = self.genesis();
        QuorumCert {
            round: 0,
            block: genesis.digest(),
            cert: genesis.qc.cert,
        }
    }
}

/// A message the adversary lets out: recipients, message, extra delay.
pub type Outgoing = (Vec<ReplicaId>, Message, u64);

pub struct Adversary<S> {
    pub strategy: Strategy,
    signer: S,
    coalition: Coalition<S>,
    history: BTreeMap<Digest, Arc<Block>>,
    /// Recent messages received, for replays.
    received: VecDeque<Message>,
    /// Highest sequence seen per lane (from batches), for fabricated certificates.
    seen_seq: BTreeMap<Lane, u64>,
    /// Highest round seen, and whether any QC exists yet.
    seen_round: u64,
    qc_seen: bool,
    seen_transfers: Vec<Transaction>,
    injected: u64,
}

impl<S: Signer> Adversary<S> {
    pub fn new(strategy: Strategy, signer: S, coalition: Coalition<S>) -> Adversary<S> {
        assert_eq!(coalition.members.len(), coalition.signers.len());
        Adversary {
            strategy,
            signer,
            coalition,
            history: BTreeMap::new(),
            received: VecDeque::new(),
            seen_seq: BTreeMap::new(),
            seen_round: 0,
            qc_seen: false,
            seen_transfers: Vec::new(),
            injected: 0,
        }
    }

    /// Remember what arrives: proposals to fork from, batches and rounds to aim at,
    /// messages to replay.
    pub fn observe(&mut self, message: &Message) {
        match message {
            Message::Global(GlobalMessage::Proposal { block, .. }) => {
                self.remember(block.clone());
                self.seen_round = self.seen_round.max(block.round);
                self.qc_seen |= block.qc.round > 0;
            }
            Message::Global(GlobalMessage::Vote { round, .. }) => {
                self.seen_round = self.seen_round.max(*round);
            }
            Message::Global(GlobalMessage::Timeout { high_qc, .. }) => {
                self.qc_seen |= high_qc.round > 0;
            }
            Message::Batch { lc, payload } => {
                let seen = self.seen_seq.entry(lc.lane).or_default();
                *seen = (*seen).max(lc.seq);
                for tx in payload.iter().take(4) {
                    if self.seen_transfers.len() == SEEN_TRANSFERS_MAX {
                        self.seen_transfers.remove(0);
                    }
                    self.seen_transfers.push(tx);
                }
            }
            _ => {}
        }
        if self.strategy == Strategy::Replay {
            if self.received.len() == REPLAY_MESSAGES_MAX {
                self.received.pop_front();
            }
            self.received.push_back(message.clone());
        }
    }

    fn remember(&mut self, block: Arc<Block>) {
        if self.history.len() >= HISTORY_BLOCKS_MAX {
            let oldest = self
                .history
                .iter()
                .min_by_key(|(_, b)| b.round)
                .map(|(d, _)| *d);
            oldest.map(|d| self.history.remove(&d));
        }
        self.history.insert(block.digest(), block);
    }

    pub fn transform(
        &mut self,
        to: Vec<ReplicaId>,
        message: Message,
        rng: &mut Rng,
    ) -> Vec<Outgoing> {
        let is_vote = matches!(
            message,
            Message::Local(LocalMessage::Prepare { .. } | LocalMessage::Commit { .. })
                | Message::Global(
                    GlobalMessage::Vote { .. }
                        | GlobalMessage::DomainVote { .. }
                        | GlobalMessage::Timeout { .. }
                )
                | Message::Checkpoint(_)
        );
        match self.strategy {
            Strategy::WithholdVotes if is_vote => Vec::new(),
            Strategy::DelayVotes if is_vote => vec![(to, message, VOTE_DELAY_US)],
            Strategy::Equivocate => self.equivocate(to, message),
            Strategy::InvalidBatches => {
                vec![(to, corrupt_chunk(self.corrupt_batch(message)), 0)]
            }
            Strategy::CorruptSnapshots => vec![(to, corrupt_chunk(message), 0)],
            Strategy::ForgeCertificates => vec![(to, self.forge(message, rng), 0)],
            Strategy::Fork | Strategy::EmptyTcFork | Strategy::SubQuorumQcFork => {
                self.fork(to, message)
            }
            Strategy::GenesisFork => self.genesis_fork(to, message),
            Strategy::EquivocateEverything => self.equivocate_everything(to, message, rng),
            Strategy::AlterTransfers => vec![(to, self.alter_transfers(message), 0)],
            Strategy::LieAboutCredits => vec![(to, self.lie_about_credits(message), 0)],
            _ => vec![(to, message, 0)],
        }
    }

    fn equivocate(&mut self, to: Vec<ReplicaId>, message: Message) -> Vec<Outgoing> {
        let twin = match &message {
            Message::Local(LocalMessage::PrePrepare {
                lane,
                view,
                seq,
                payload,
                from,
                ..
            }) => {
                let mut other: Vec<_> = payload.iter().collect();
                other.pop();
                let payload = Payload::of(&other);
                Some(self.signed_pre_prepare(*lane, *view, *seq, payload, *from))
            }
            Message::Global(GlobalMessage::Proposal { block, .. }) => {
                self.remember(block.clone());
                self.empty_twin(block)
            }
            _ => None,
        };
        match twin {
            Some(twin) if to.len() > 1 => {
                // The halves overlap in one replica, which sees both signed messages and
                // can prove the equivocation; the others each see a consistent story.
                let (mut a, b) = split(to);
                a.push(b[0]);
                vec![(a, message, 0), (b, twin, 0)]
            }
            _ => vec![(to, message, 0)],
        }
    }

    /// A well-formed block for the same round that orders nothing new: honest replicas
    /// accept either, so only comparing the two signed proposals exposes the leader.
    fn empty_twin(&self, block: &Block) -> Option<Message> {
        let parent = self.history.get(&block.parent)?;
        if block.batches.is_empty() || parent.cut.len() != block.cut.len() {
            return None;
        }
        let mut twin = block.clone();
        twin.cut = parent.cut.clone();
        twin.batches.clear();
        Some(self.sign_proposal(twin))
    }

    fn sign_proposal(&self, block: Block) -> Message {
        let signature = self.signer.sign(Tag::Proposal, &block.digest());
        Message::Global(GlobalMessage::Proposal {
            block: Arc::new(block),
            signature,
        })
    }

    fn corrupt_batch(&self, message: Message) -> Message {
        match message {
            Message::Local(LocalMessage::PrePrepare {
                lane,
                view,
                seq,
                digest,
                payload,
                from,
                signature,
            }) if !payload.is_empty() => {
                // The digest stays that of the original payload.
                let mut changed: Vec<_> = payload.iter().collect();
                changed[0] = altered(&changed[0]);
                Message::Local(LocalMessage::PrePrepare {
                    lane,
                    view,
                    seq,
                    digest,
                    payload: Payload::of(&changed),
                    from,
                    signature,
                })
            }
            other => other,
        }
    }

    /// One change per message, chosen by sequence so every kind occurs: a higher amount, a
    /// redirected payment, a made-up transfer added. A pre-prepare is re-signed, so its own
    /// signature and digest are right and only the client signatures can expose it.
    fn alter_transfers(&mut self, message: Message) -> Message {
        match message {
            Message::Local(LocalMessage::PrePrepare {
                lane,
                view,
                seq,
                payload,
                from,
                ..
            }) if payload.transfers().next().is_some() => {
                let mut changed: Vec<SignedTransfer> = payload.transfers().collect();
                match seq % 3 {
                    0 => changed[0].transfer.amount = changed[0].transfer.amount.saturating_mul(2),
                    1 => changed[0].transfer.to = changed[0].transfer.from.wrapping_add(1),
                    _ => changed.push(self.made_up_transfer(&changed[0])),
                }
                let payload = Payload::from_transfers(&changed);
                self.signed_pre_prepare(lane, view, seq, payload, from)
            }
            Message::Local(LocalMessage::Forward { lane, tx }) => {
                let tx = altered(&tx);
                Message::Local(LocalMessage::Forward { lane, tx })
            }
            other => other,
        }
    }

    /// Credit floors other than the ones it executed, one lie per batch by sequence: one
    /// above (reachable once another credit arrives), far above (never), and zero.
    fn lie_about_credits(&self, message: Message) -> Message {
        let Message::Local(LocalMessage::PrePrepare {
            lane,
            view,
            seq,
            payload,
            from,
            ..
        }) = message
        else {
            return message;
        };
        let lied: Vec<(SignedTransfer, u128)> = payload
            .stamped_transfers()
            .map(|(tx, floor)| match seq % 3 {
                0 => (tx, floor + 1),
                1 => (tx, floor + u128::from(u64::MAX)),
                _ => (tx, 0),
            })
            .collect();
        self.signed_pre_prepare(lane, view, seq, Payload::from_stamped(&lied), from)
    }

    /// A pre-prepare of `payload`, signed by us: its digest and signature are right, so
    /// only what it carries can expose it.
    fn signed_pre_prepare(
        &self,
        lane: Lane,
        view: View,
        seq: Seq,
        payload: Payload,
        from: ReplicaId,
    ) -> Message {
        let digest = payload.digest();
        let signature = self.signer.sign(
            Tag::LocalPrepare,
            &prepare_payload(lane, view, seq, &digest),
        );
        Message::Local(LocalMessage::PrePrepare {
            lane,
            view,
            seq,
            digest,
            payload,
            from,
            signature,
        })
    }

    /// A transfer no client signed, debiting the same account as `like` (so it routes to
    /// the same shard and names the account's owner: only its signature is wrong).
    fn made_up_transfer(&mut self, like: &SignedTransfer) -> SignedTransfer {
        self.injected += 1;
        SignedTransfer {
            transfer: Transfer {
                key: FABRICATED_KEY_BASE | u128::from(self.injected),
                amount: 1,
                ..like.transfer
            },
            client: like.client,
            signature: ClientSignature([0xA5; CLIENT_SIGNATURE_BYTES]),
        }
    }

    fn forge(&self, message: Message, rng: &mut Rng) -> Message {
        let forge_qc = |qc: &mut QuorumCert, rng: &mut Rng| {
            if !qc.is_genesis() {
                let extra = qc.cert.signers.ids().max().unwrap_or(0) + 1 + rng.below(3) as u32;
                qc.cert.signers.insert(extra.min(255));
            }
        };
        match message {
            Message::Global(GlobalMessage::Timeout {
                round,
                mut high_qc,
                last_tc,
                from,
                signature,
            }) => {
                forge_qc(&mut high_qc, rng);
                Message::Global(GlobalMessage::Timeout {
                    round,
                    high_qc,
                    last_tc,
                    from,
                    signature,
                })
            }
            Message::Global(GlobalMessage::Proposal { block, .. }) => {
                let mut forged = (*block).clone();
                forge_qc(&mut forged.qc, rng);
                self.sign_proposal(forged)
            }
            other => other,
        }
    }

    /// Show the real proposal to one replica, and to the others a block at the same round
    /// that extends the great-grandparent, skipping two certified blocks: the one replica
    /// that sees the real proposal commits the grandparent (two-chain), the fork would undo it.
    fn fork(&mut self, to: Vec<ReplicaId>, message: Message) -> Vec<Outgoing> {
        let Message::Global(GlobalMessage::Proposal { block, .. }) = &message else {
            return vec![(to, message, 0)];
        };
        self.remember(block.clone());
        let ancestor = |d: &Digest| self.history.get(d).cloned();
        let Some(parent) = ancestor(&block.parent) else {
            return vec![(to, message, 0)];
        };
        let Some(grandparent) = ancestor(&parent.parent) else {
            return vec![(to, message, 0)];
        };
        let Some(great) = ancestor(&grandparent.parent) else {
            return vec![(to, message, 0)];
        };
        if to.len() < 2 || grandparent.qc.is_genesis() {
            return vec![(to, message, 0)];
        }
        let round = block.round;
        let (qc, tc) = match self.strategy {
            // The lock stops this one: the QC is too old for the consecutive rule.
            Strategy::Fork => (grandparent.qc.clone(), None),
            // An empty TC of the round before, when that TC would lead here.
            Strategy::EmptyTcFork if round % self.coalition.rotation_rounds == 0 => {
                let tc = TimeoutCert {
                    round: round - 1,
                    votes: Vec::new(),
                };
                (grandparent.qc.clone(), Some(tc))
            }
            // A QC of the previous round for the old block, signed by the coalition alone.
            Strategy::SubQuorumQcFork => {
                let qc = QuorumCert {
                    round: round - 1,
                    block: great.digest(),
                    cert: self.coalition.certify(
                        &self.coalition.members,
                        Tag::GlobalVote,
                        &vote_payload(round - 1, &great.digest()),
                    ),
                };
                (qc, None)
            }
            _ => return vec![(to, message, 0)],
        };
        let fork = Block {
            round,
            height: great.height + 1,
            parent: great.digest(),
            qc,
            tc,
            cut: grandparent.cut.clone(),
            batches: grandparent.batches.clone(),
            evidence: Vec::new(),
            proposer: block.proposer,
        };
        let fork = self.sign_proposal(fork);
        let (first, rest) = to.split_at(1);
        vec![(first.to_vec(), message, 0), (rest.to_vec(), fork, 0)]
    }
}

impl<S: Signer> Adversary<S> {
    /// While no QC exists, a coalition leader proposes nothing, so the first timeout
    /// certificate names only round-0 QCs; the leader after it extends a fabricated block F
    /// (ordering a batch nobody holds) under QC{round 0, F}, and serves F right after. Only
    /// a door that takes any round-0 certificate for genesis lets honest replicas vote.
    fn genesis_fork(&mut self, to: Vec<ReplicaId>, message: Message) -> Vec<Outgoing> {
        let Message::Global(GlobalMessage::Proposal { block, .. }) = &message else {
            return vec![(to, message, 0)];
        };
        if self.qc_seen || block.qc.round > 0 {
            self.qc_seen = true;
            return vec![(to, message, 0)];
        }
        let Some(tc) = block.tc.clone().filter(|tc| tc.max_high_qc_round() == 0) else {
            return Vec::new(); // lead silently: the round must time out
        };
        let genesis = self.coalition.genesis();
        let mut cut = genesis.cut.clone();
        cut[0] = 1;
        let fabricated = Block {
            round: 1,
            height: 1,
            parent: genesis.digest(),
            qc: self.coalition.genesis_qc(),
            tc: None,
            cut: cut.clone(),
            batches: vec![[0xBA; 32]],
            evidence: Vec::new(),
            proposer: self.signer.id(),
        };
        let child = Block {
            round: block.round,
            height: 2,
            parent: fabricated.digest(),
            qc: QuorumCert {
                round: 0,
                block: fabricated.digest(),
                cert: self.coalition.genesis_qc().cert,
            },
            tc: Some(tc),
            cut,
            batches: Vec::new(),
            evidence: Vec::new(),
            proposer: block.proposer,
        };
        let response = Message::Global(GlobalMessage::BlockResponse {
            blocks: vec![Arc::new(fabricated)],
        });
        vec![
            (to.clone(), self.sign_proposal(child), 0),
            (to, response, 2_000),
        ]
    }

    /// Split the recipients and give each half its own signed vote, timeout, prepare,
    /// commit or checkpoint vote; the halves overlap in one replica, which can prove it.
    fn equivocate_everything(
        &mut self,
        to: Vec<ReplicaId>,
        message: Message,
        rng: &mut Rng,
    ) -> Vec<Outgoing> {
        let other: Digest = std::array::from_fn(|_| rng.below(256) as u8);
        let twin = match &message {
            Message::Global(GlobalMessage::Vote { round, from, .. }) => {
                Some(Message::Global(GlobalMessage::Vote {
                    round: *round,
                    block: other,
                    from: *from,
                    signature: self
                        .signer
                        .sign(Tag::GlobalVote, &vote_payload(*round, &other)),
                }))
            }
            Message::Global(GlobalMessage::Timeout {
                round,
                last_tc,
                from,
                ..
            }) => Some(Message::Global(GlobalMessage::Timeout {
                round: *round,
                high_qc: self.coalition.genesis_qc(),
                last_tc: last_tc.clone(),
                from: *from,
                signature: self.signer.sign(Tag::Timeout, &timeout_payload(*round, 0)),
            })),
            Message::Local(LocalMessage::Prepare {
                lane,
                view,
                seq,
                from,
                ..
            }) => Some(Message::Local(LocalMessage::prepare(
                *lane,
                *view,
                *seq,
                other,
                *from,
                &self.signer,
            ))),
            Message::Local(LocalMessage::Commit {
                lane,
                view,
                seq,
                from,
                ..
            }) => Some(Message::Local(LocalMessage::commit(
                *lane,
                *view,
                *seq,
                other,
                *from,
                &self.signer,
            ))),
            Message::Checkpoint(vote) => {
                let mut id = vote.id;
                id.state_root = other;
                Some(Message::Checkpoint(CheckpointVote::new(id, &self.signer)))
            }
            _ => None,
        };
        match twin {
            Some(twin) if to.len() > 1 => {
                let (mut a, b) = split(to);
                a.push(b[0]);
                vec![(a, message, 0), (b, twin, 0)]
            }
            _ => self.equivocate(to, message),
        }
    }

    /// What the strategy injects on its own every tick: (recipients, message, extra delay).
    pub fn on_tick(&mut self, rng: &mut Rng) -> Vec<Outgoing> {
        self.injected += 1;
        let honest = self.coalition.honest();
        if honest.is_empty() {
            return Vec::new();
        }
        let target = vec![*rng.pick(&honest)];
        match self.strategy {
            Strategy::OutsiderCertificates if self.injected.is_multiple_of(25) => {
                self.outsider_batches(honest)
            }
            Strategy::ExtremeValues if rng.chance(200) => self
                .extreme_messages(rng)
                .into_iter()
                .map(|m| (target.clone(), m, 0))
                .collect(),
            Strategy::Flood if self.injected.is_multiple_of(FLOOD_EVERY_TICKS) => (0..FLOOD_BURST)
                .map(|_| (target.clone(), self.flood_message(rng), 0))
                .collect(),
            Strategy::Replay if !self.received.is_empty() && rng.chance(300) => {
                let old = self.received[rng.below(self.received.len() as u64) as usize].clone();
                vec![(target, old, 0)]
            }
            _ => Vec::new(),
        }
    }

    /// Batches of a domain certified by the coalition alone: as many coalition signers as
    /// the domain's quorum, members of the domain or not, just above what the lane reached.
    fn outsider_batches(&mut self, to: Vec<ReplicaId>) -> Vec<Outgoing> {
        let topology = self.coalition.topology.clone();
        let mut out = Vec::new();
        for domain in 0..topology.domains.len() as u32 {
            let q_d = topology.domain_quorum(domain).q as usize;
            // Outsiders first: a certificate of members only would be a domain beyond its
            // fault bound, which only signed client transactions can contain (issue
            // "core durability"); this strategy tests that outsiders are refused.
            let mut signers: Vec<ReplicaId> = self.coalition.members.clone();
            signers.sort_by_key(|&id| topology.domain_of(id) == domain);
            if signers.len() < q_d || topology.domain_of(signers[0]) == domain {
                continue;
            }
            let signers = &signers[..q_d];
            for shard in 0..topology.shards {
                let lane = Lane { domain, shard };
                let seq = self.seen_seq.get(&lane).copied().unwrap_or(0) + 1;
                let payload = Payload::from_transfers(&[SignedTransfer {
                    transfer: Transfer {
                        key: FABRICATED_KEY_BASE | u128::from(self.injected),
                        from: 0,
                        to: 1,
                        amount: 1,
                    },
                    client: 0,
                    signature: ClientSignature([0; CLIENT_SIGNATURE_BYTES]),
                }]);
                let digest = payload.digest();
                let lc = LocalCert {
                    lane,
                    view: 0,
                    seq,
                    digest,
                    cert: self.coalition.certify(
                        signers,
                        Tag::LocalCommit,
                        &commit_payload(lane, 0, seq, &digest),
                    ),
                };
                out.push((to.clone(), Message::Batch { lc, payload }, 0));
            }
        }
        out
    }

    /// One of each message kind with a field at or near its extreme, signed where needed.
    fn extreme_messages(&self, rng: &mut Rng) -> Vec<Message> {
        let me = self.signer.id();
        let big = *rng.pick(&[u64::MAX, u64::MAX - 1, u64::MAX / 2, 1 << 63]);
        let lane = Lane {
            domain: *rng.pick(&[0, u32::MAX, 1 << 31]),
            shard: *rng.pick(&[0, u32::MAX]),
        };
        let my_lane = Lane {
            domain: self.coalition.topology.domain_of(me),
            shard: 0,
        };
        let digest = [0xEE; 32];
        let genesis = self.coalition.genesis();
        let far = Block {
            round: big,
            height: big,
            parent: genesis.digest(),
            qc: self.coalition.genesis_qc(),
            tc: Some(TimeoutCert {
                round: big,
                votes: Vec::new(),
            }),
            cut: vec![big; self.coalition.lanes()],
            batches: Vec::new(),
            evidence: Vec::new(),
            proposer: me,
        };
        let view_change = {
            let mut vc = ViewChange {
                lane: my_lane,
                new_view: big,
                committed_upto: big,
                committed_lc: None,
                prepared: Vec::new(),
                from: me,
                signature: Signature(Vec::new()),
            };
            vc.signature = self.signer.sign(Tag::LocalViewChange, &vc.payload());
            vc
        };
        vec![
            Message::Global(GlobalMessage::Vote {
                round: big,
                block: digest,
                from: me,
                signature: self
                    .signer
                    .sign(Tag::GlobalVote, &vote_payload(big, &digest)),
            }),
            Message::Global(GlobalMessage::Timeout {
                round: big,
                high_qc: self.coalition.genesis_qc(),
                last_tc: None,
                from: me,
                signature: self.signer.sign(Tag::Timeout, &timeout_payload(big, 0)),
            }),
            self.sign_proposal(far.clone()),
            Message::Local(LocalMessage::prepare(
                my_lane,
                big,
                big,
                digest,
                me,
                &self.signer,
            )),
            Message::Local(LocalMessage::commit(
                my_lane,
                big,
                big,
                digest,
                me,
                &self.signer,
            )),
            Message::Local(LocalMessage::ViewChange(view_change)),
            Message::BatchRequest {
                lane,
                seq: big,
                upto: u64::MAX,
                from: me,
            },
            Message::BatchRequest {
                lane: my_lane,
                seq: big,
                upto: u64::MAX,
                from: me,
            },
            Message::SnapshotRequest {
                height: big,
                chunk: big,
                from: me,
            },
            Message::Global(GlobalMessage::SyncRequest {
                round: big,
                from: me,
            }),
            Message::Global(GlobalMessage::BlockResponse {
                blocks: vec![Arc::new(far)],
            }),
        ]
    }

    /// One message aimed at a bounded buffer.
    fn flood_message(&mut self, rng: &mut Rng) -> Message {
        let me = self.signer.id();
        let digest: Digest = std::array::from_fn(|_| rng.below(256) as u8);
        let round = self.seen_round + rng.below(80);
        let my_lane = Lane {
            domain: self.coalition.topology.domain_of(me),
            shard: rng.below(u64::from(self.coalition.topology.shards)) as u32,
        };
        let kind = rng.below(7);
        match kind {
            0 => Message::Global(GlobalMessage::Vote {
                round,
                block: digest,
                from: me,
                signature: self
                    .signer
                    .sign(Tag::GlobalVote, &vote_payload(round, &digest)),
            }),
            1 => {
                // A piece of one coalition signature for a block nobody proposed.
                let signer = *rng.pick(&self.coalition.members);
                Message::Global(GlobalMessage::DomainVote {
                    round,
                    block: digest,
                    cert: self.coalition.certify(
                        &[signer],
                        Tag::GlobalVote,
                        &vote_payload(round, &digest),
                    ),
                    from: me,
                })
            }
            2 | 3 => {
                let (view, seq) = (rng.below(10), 1 + rng.below(70));
                let vote = if kind == 2 {
                    LocalMessage::prepare
                } else {
                    LocalMessage::commit
                };
                Message::Local(vote(my_lane, view, seq, digest, me, &self.signer))
            }
            // Forwards of transfers clients did submit, again and again (made-up ones fail
            // their client signature: the alter-transfers strategy sends those).
            4 if !self.seen_transfers.is_empty() => Message::Local(LocalMessage::Forward {
                lane: my_lane,
                tx: rng.pick(&self.seen_transfers).clone(),
            }),
            5 => Message::BatchRequest {
                lane: my_lane,
                seq: 1,
                upto: u64::MAX,
                from: me,
            },
            _ => Message::Global(GlobalMessage::BlockResponse {
                blocks: (0..70)
                    .map(|i| {
                        let mut block = self.coalition.genesis();
                        block.round = i + 1;
                        block.height = i + 1;
                        Arc::new(block)
                    })
                    .collect(),
            }),
        }
    }
}

/// Recipients in two halves (the first one larger when odd).
fn split(to: Vec<ReplicaId>) -> (Vec<ReplicaId>, Vec<ReplicaId>) {
    let half = to.len().div_ceil(2);
    let (a, b) = to.split_at(half);
    (a.to_vec(), b.to_vec())
}

/// Flip one byte of a snapshot chunk (the Merkle proof no longer matches it).
fn corrupt_chunk(message: Message) -> Message {
    match message {
        Message::SnapshotChunk(mut chunk) => {
            let middle = chunk.bytes.len() / 2;
            chunk.bytes[middle] ^= 0x5a;
            Message::SnapshotChunk(chunk)
        }
        other => other,
    }
}

/// `tx` with one signed field changed (an amount raised, a data byte flipped): its client
/// signature no longer covers it.
fn altered(tx: &Transaction) -> Transaction {
    match tx {
        Transaction::Transfer(tx) => {
            let mut tx = *tx;
            tx.transfer.amount = tx.transfer.amount.wrapping_add(1);
            tx.into()
        }
        Transaction::Opaque(tx) => {
            let mut tx = tx.clone();
            let mut data = tx.data.to_vec();
            match data.first_mut() {
                Some(byte) => *byte ^= 1,
                None => data.push(1),
            }
            tx.data = data.into();
            tx.into()
        }
    }
}
