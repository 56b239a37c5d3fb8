//! Byzantine behaviour for simulated replicas. A Byzantine replica runs the honest code and
//! its outgoing messages pass through a strategy that rewrites them, signing with the
//! replica's own key only (it holds no other), so what it forges stays detectable.

use super::rng::Rng;
use crate::crypto::{Digest, Signer, SimSigner, Tag};
use crate::messages::{
    payload_digest, prepare_payload, Block, GlobalMessage, LocalMessage, Message, QuorumCert,
};
use crate::topology::ReplicaId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Blocks an adversary remembers, to build forks from.
const HISTORY_BLOCKS_MAX: usize = 256;
/// Extra delay of a vote held back by the delaying strategy.
pub const VOTE_DELAY_US: u64 = 400_000;

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
}

pub const STRATEGIES: &[Strategy] = &[
    Strategy::Equivocate,
    Strategy::WithholdVotes,
    Strategy::DelayVotes,
    Strategy::InvalidBatches,
    Strategy::ForgeCertificates,
    Strategy::Fork,
];

/// A message the adversary lets out: recipients, message, extra delay.
pub type Outgoing = (Vec<ReplicaId>, Message, u64);

pub struct Adversary {
    pub strategy: Strategy,
    signer: SimSigner,
    history: BTreeMap<Digest, Arc<Block>>,
}

impl Adversary {
    pub fn new(strategy: Strategy, signer: SimSigner) -> Adversary {
        Adversary {
            strategy,
            signer,
            history: BTreeMap::new(),
        }
    }

    /// Remember proposals seen, to fork from them later.
    pub fn observe(&mut self, message: &Message) {
        if let Message::Global(GlobalMessage::Proposal { block, .. }) = message {
            self.remember(block.clone());
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
            Strategy::Fork => self.fork(to, message),
            _ => vec![(to, message, 0)],
        }
    }

    fn split(to: Vec<ReplicaId>) -> (Vec<ReplicaId>, Vec<ReplicaId>) {
        let half = to.len().div_ceil(2);
        let (a, b) = to.split_at(half);
        (a.to_vec(), b.to_vec())
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
                let mut other: Vec<_> = payload.iter().copied().collect();
                other.pop();
                let payload = Arc::new(other);
                let digest = payload_digest(&payload);
                let signature = self.signer.sign(
                    Tag::LocalPrepare,
                    &prepare_payload(*lane, *view, *seq, &digest),
                );
                Some(Message::Local(LocalMessage::PrePrepare {
                    lane: *lane,
                    view: *view,
                    seq: *seq,
                    digest,
                    payload,
                    from: *from,
                    signature,
                }))
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
                let (mut a, b) = Adversary::split(to);
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
                let mut changed: Vec<_> = payload.iter().copied().collect();
                changed[0].amount = changed[0].amount.wrapping_add(1);
                Message::Local(LocalMessage::PrePrepare {
                    lane,
                    view,
                    seq,
                    digest,
                    payload: Arc::new(changed),
                    from,
                    signature,
                })
            }
            other => other,
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
        let fork = Block {
            round: block.round,
            height: great.height + 1,
            parent: great.digest(),
            qc: grandparent.qc.clone(),
            tc: None,
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
