//! Protocol messages of both tiers, their signing payloads and the signature checks the
//! host must run before a message reaches a handler.

use crate::checkpoint::{CheckpointCert, CheckpointVote, SnapshotChunk};
use crate::crypto::{digest, Bitmap, Certificate, Check, Digest, Signature, Signer, Tag};
use crate::evidence::Evidence;
use crate::ledger::Transfer;
use crate::topology::{DomainIndex, ReplicaId};
use std::sync::Arc;

pub type View = u64;
pub type Seq = u64;
pub type Round = u64;

/// One PBFT instance: a (domain, shard) pair. Lanes are ordered by domain, then shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    pub domain: DomainIndex,
    pub shard: u32,
}

impl Lane {
    fn bytes(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&self.domain.to_le_bytes());
        out[4..].copy_from_slice(&self.shard.to_le_bytes());
        out
    }
}

/// The transactions of one batch; shared, never copied on the hot path.
pub type Payload = Arc<Vec<Transfer>>;

pub fn payload_digest(payload: &[Transfer]) -> Digest {
    let bytes: Vec<u8> = payload.iter().flat_map(|t| t.to_bytes()).collect();
    digest(&[b"batch", &bytes])
}

/// A local certificate: q_d commit signatures over (lane, view, seq, digest), all of one view
/// (Castro-Liskov 4.2: commit messages carry the view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCert {
    pub lane: Lane,
    pub view: View,
    pub seq: Seq,
    pub digest: Digest,
    pub cert: Certificate,
}

impl LocalCert {
    pub fn check(&self) -> Check {
        Check::Aggregate {
            tag: Tag::LocalCommit,
            message: commit_payload(self.lane, self.view, self.seq, &self.digest),
            certificate: self.cert.clone(),
        }
    }
}

pub fn prepare_payload(lane: Lane, view: View, seq: Seq, digest: &Digest) -> Vec<u8> {
    [
        &lane.bytes()[..],
        &view.to_le_bytes(),
        &seq.to_le_bytes(),
        digest,
    ]
    .concat()
}

/// The same bytes as a prepare's: the signing tag tells the two votes apart.
pub fn commit_payload(lane: Lane, view: View, seq: Seq, digest: &Digest) -> Vec<u8> {
    prepare_payload(lane, view, seq, digest)
}

/// Proof that a batch prepared in a view: q_d prepare signatures (the pre-prepare counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedProof {
    pub view: View,
    pub seq: Seq,
    pub digest: Digest,
    pub payload: Payload,
    pub cert: Certificate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    pub lane: Lane,
    pub new_view: View,
    /// Highest sequence up to which the sender holds every committed batch.
    pub committed_upto: Seq,
    /// The LC of `committed_upto` (absent when it is 0).
    pub committed_lc: Option<LocalCert>,
    pub prepared: Vec<PreparedProof>,
    pub from: ReplicaId,
    pub signature: Signature,
}

impl ViewChange {
    pub fn payload(&self) -> Vec<u8> {
        let mut bytes = [&self.lane.bytes()[..], &self.new_view.to_le_bytes()].concat();
        bytes.extend_from_slice(&self.committed_upto.to_le_bytes());
        for proof in &self.prepared {
            bytes.extend_from_slice(&proof.view.to_le_bytes());
            bytes.extend_from_slice(&proof.seq.to_le_bytes());
            bytes.extend_from_slice(&proof.digest);
        }
        bytes
    }

    fn checks(&self, out: &mut Vec<Check>) {
        out.push(Check::Single {
            signer: self.from,
            tag: Tag::LocalViewChange,
            message: self.payload(),
            signature: self.signature.clone(),
        });
        out.extend(self.committed_lc.iter().map(LocalCert::check));
        for proof in &self.prepared {
            out.push(Check::Aggregate {
                tag: Tag::LocalPrepare,
                message: prepare_payload(self.lane, proof.view, proof.seq, &proof.digest),
                certificate: proof.cert.clone(),
            });
        }
    }
}

/// Messages of the local (per domain and shard) PBFT tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalMessage {
    /// A client transaction forwarded by a backup to the shard primary.
    Forward {
        lane: Lane,
        tx: Transfer,
    },
    PrePrepare {
        lane: Lane,
        view: View,
        seq: Seq,
        digest: Digest,
        payload: Payload,
        from: ReplicaId,
        signature: Signature,
    },
    Prepare {
        lane: Lane,
        view: View,
        seq: Seq,
        digest: Digest,
        from: ReplicaId,
        signature: Signature,
    },
    Commit {
        lane: Lane,
        view: View,
        seq: Seq,
        digest: Digest,
        from: ReplicaId,
        signature: Signature,
    },
    ViewChange(ViewChange),
    NewView {
        lane: Lane,
        view: View,
        view_changes: Vec<ViewChange>,
        from: ReplicaId,
        signature: Signature,
    },
}

impl LocalMessage {
    pub fn lane(&self) -> Lane {
        match self {
            LocalMessage::Forward { lane, .. }
            | LocalMessage::PrePrepare { lane, .. }
            | LocalMessage::Prepare { lane, .. }
            | LocalMessage::Commit { lane, .. }
            | LocalMessage::NewView { lane, .. } => *lane,
            LocalMessage::ViewChange(vc) => vc.lane,
        }
    }

    /// prepare(v, n, d) signed by `from` (Castro-Liskov 4.2).
    pub fn prepare(
        lane: Lane,
        view: View,
        seq: Seq,
        digest: Digest,
        from: ReplicaId,
        signer: &dyn Signer,
    ) -> Self {
        let signature = signer.sign(
            Tag::LocalPrepare,
            &prepare_payload(lane, view, seq, &digest),
        );
        LocalMessage::Prepare {
            lane,
            view,
            seq,
            digest,
            from,
            signature,
        }
    }

    /// commit(v, n, d) signed by `from` (Castro-Liskov 4.2).
    pub fn commit(
        lane: Lane,
        view: View,
        seq: Seq,
        digest: Digest,
        from: ReplicaId,
        signer: &dyn Signer,
    ) -> Self {
        let signature = signer.sign(Tag::LocalCommit, &commit_payload(lane, view, seq, &digest));
        LocalMessage::Commit {
            lane,
            view,
            seq,
            digest,
            from,
            signature,
        }
    }
}

pub fn new_view_payload(lane: Lane, view: View, view_changes: &[ViewChange]) -> Vec<u8> {
    let mut bytes = [&lane.bytes()[..], &view.to_le_bytes()].concat();
    for vc in view_changes {
        bytes.extend_from_slice(&vc.from.to_le_bytes());
        bytes.extend_from_slice(&digest(&[&vc.payload()]));
    }
    bytes
}

/// A block of the global tier: orders a vector cut of LC-certified batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub round: Round,
    pub height: u64,
    pub parent: Digest,
    /// Certifies the parent.
    pub qc: QuorumCert,
    /// Present when the previous round ended in a timeout.
    pub tc: Option<TimeoutCert>,
    /// For every lane (in lane order), the highest contiguous LC-certified sequence ordered.
    pub cut: Vec<Seq>,
    /// Digests of the newly ordered batches, lane by lane, sequence by sequence. A Byzantine
    /// majority inside one domain could certify two batches at one sequence; naming the
    /// digest keeps the global order safe whatever a domain does.
    pub batches: Vec<Digest>,
    /// Equivocation proofs (at most `EVIDENCE_PER_BLOCK_MAX`); committing one excludes the
    /// offender from leading, at the same block on every honest replica.
    pub evidence: Vec<Evidence>,
    pub proposer: ReplicaId,
}

impl Block {
    /// (lane index, sequence, digest) of every batch this block orders beyond `parent_cut`.
    pub fn ordered(&self, parent_cut: &[Seq]) -> Vec<(usize, Seq, Digest)> {
        let slots = self
            .cut
            .iter()
            .zip(parent_cut)
            .enumerate()
            .flat_map(|(lane, (&cut, &before))| (before + 1..=cut).map(move |seq| (lane, seq)));
        slots
            .zip(&self.batches)
            .map(|((lane, seq), digest)| (lane, seq, *digest))
            .collect()
    }

    pub fn digest(&self) -> Digest {
        let cut: Vec<u8> = self.cut.iter().flat_map(|s| s.to_le_bytes()).collect();
        let batches: Vec<u8> = self.batches.iter().flatten().copied().collect();
        let evidence: Vec<u8> = self
            .evidence
            .iter()
            .flat_map(|e| e.proof_digest())
            .collect();
        let tc = self.tc.as_ref().map_or_else(Vec::new, TimeoutCert::bytes);
        digest(&[
            &batches,
            &evidence,
            &tc,
            b"block",
            &self.round.to_le_bytes(),
            &self.height.to_le_bytes(),
            &self.parent,
            &self.qc.block,
            &self.qc.round.to_le_bytes(),
            &cut,
            &self.proposer.to_le_bytes(),
        ])
    }
}

/// A quorum certificate for a block. The genesis QC (round 0, the genesis block) carries no
/// signers; [`crate::certificates::CertRules::qc`] refuses any other round-0 QC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumCert {
    pub round: Round,
    pub block: Digest,
    pub cert: Certificate,
}

pub fn vote_payload(round: Round, block: &Digest) -> Vec<u8> {
    [&round.to_le_bytes()[..], block].concat()
}

impl QuorumCert {
    /// Round 0 has no signature to check; whether it is the genesis QC is the door's call.
    pub fn is_genesis(&self) -> bool {
        self.round == 0
    }

    fn check(&self) -> Option<Check> {
        (!self.is_genesis()).then(|| Check::Aggregate {
            tag: Tag::GlobalVote,
            message: vote_payload(self.round, &self.block),
            certificate: self.cert.clone(),
        })
    }
}

pub fn timeout_payload(round: Round, high_qc_round: Round) -> Vec<u8> {
    [round.to_le_bytes(), high_qc_round.to_le_bytes()].concat()
}

/// q timeout votes for one round, each naming the signer's highest QC round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutCert {
    pub round: Round,
    pub votes: Vec<(ReplicaId, Round, Signature)>,
}

impl TimeoutCert {
    /// Everything the TC says, for the digest of the block that carries it: the proposer's
    /// signature then covers the TC the receiver acts on.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.round.to_le_bytes().to_vec();
        for (signer, high_qc_round, signature) in &self.votes {
            bytes.extend_from_slice(&signer.to_le_bytes());
            bytes.extend_from_slice(&high_qc_round.to_le_bytes());
            bytes.extend_from_slice(&(signature.0.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&signature.0);
        }
        bytes
    }

    pub fn max_high_qc_round(&self) -> Round {
        self.votes.iter().map(|v| v.1).max().unwrap_or(0)
    }

    pub fn signers(&self) -> Bitmap {
        let mut bitmap = Bitmap::default();
        self.votes.iter().for_each(|v| {
            bitmap.insert(v.0);
        });
        bitmap
    }

    fn checks(&self, out: &mut Vec<Check>) {
        for (signer, high, signature) in &self.votes {
            out.push(Check::Single {
                signer: *signer,
                tag: Tag::Timeout,
                message: timeout_payload(self.round, *high),
                signature: signature.clone(),
            });
        }
    }
}

/// Messages of the global (HotStuff) tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalMessage {
    Proposal {
        block: Arc<Block>,
        signature: Signature,
    },
    Vote {
        round: Round,
        block: Digest,
        from: ReplicaId,
        signature: Signature,
    },
    /// A domain's votes for one block, pre-aggregated by the domain's aggregator in the
    /// linear pattern; `from` is the aggregator (the certificate speaks for the signers).
    DomainVote {
        round: Round,
        block: Digest,
        cert: Certificate,
        from: ReplicaId,
    },
    /// A timeout vote. It carries the sender's highest QC and its latest TC, so a replica
    /// left behind in an older round catches up (DiemBFT-v4 TimeoutMsg.last_round_tc).
    Timeout {
        round: Round,
        high_qc: QuorumCert,
        last_tc: Option<TimeoutCert>,
        from: ReplicaId,
        signature: Signature,
    },
    /// Answer to a timeout from a replica behind us: our highest certificates.
    Sync {
        high_qc: QuorumCert,
        high_tc: Option<TimeoutCert>,
    },
    /// Ask for the peers' highest certificates (answered with `Sync` by those ahead).
    SyncRequest {
        round: Round,
        from: ReplicaId,
    },
    /// Ask a peer for a block (and its ancestors) we miss.
    BlockRequest {
        block: Digest,
        from: ReplicaId,
    },
    BlockResponse {
        blocks: Vec<Arc<Block>>,
    },
}

/// Every message a replica sends or receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Local(LocalMessage),
    /// A locally committed batch with its LC, streamed to every other replica.
    Batch {
        lc: LocalCert,
        payload: Payload,
    },
    /// Ask for a committed batch we miss.
    BatchRequest {
        lane: Lane,
        seq: Seq,
        upto: Seq,
        from: ReplicaId,
    },
    Global(GlobalMessage),
    /// A replica's signed checkpoint of the state after a checkpoint height.
    Checkpoint(CheckpointVote),
    /// A stable checkpoint, sent to a peer that asked for blocks or batches we truncated.
    StableCheckpoint(CheckpointCert),
    /// Ask for one chunk of the snapshot of a stable checkpoint.
    SnapshotRequest {
        height: u64,
        chunk: u64,
        from: ReplicaId,
    },
    SnapshotChunk(Box<SnapshotChunk>),
}

impl Message {
    /// Unsigned requests a peer may send any time; answered only to their sender.
    pub fn is_request(&self) -> bool {
        self.requester().is_some()
    }

    /// The sender a request names (responses go to the authenticated sender, who must be it).
    pub fn requester(&self) -> Option<ReplicaId> {
        match self {
            Message::BatchRequest { from, .. }
            | Message::SnapshotRequest { from, .. }
            | Message::Global(
                GlobalMessage::BlockRequest { from, .. } | GlobalMessage::SyncRequest { from, .. },
            ) => Some(*from),
            _ => None,
        }
    }

    /// The signature checks the host must pass before the message is processed.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        match self {
            Message::Local(local) => local_checks(local, &mut out),
            Message::Batch { lc, .. } => out.push(lc.check()),
            Message::BatchRequest { .. } => {}
            Message::Global(global) => global_checks(global, &mut out),
            Message::Checkpoint(vote) => out.push(vote.check()),
            Message::StableCheckpoint(cert) => out.push(cert.check()),
            Message::SnapshotRequest { .. } => {}
            Message::SnapshotChunk(chunk) => {
                out.push(chunk.checkpoint.check());
                out.extend(chunk.lane_certs.iter().map(LocalCert::check));
                out.extend(chunk.high_qc.check());
            }
        }
        out
    }
}

fn local_checks(message: &LocalMessage, out: &mut Vec<Check>) {
    match message {
        LocalMessage::Forward { .. } => {}
        LocalMessage::PrePrepare {
            lane,
            view,
            seq,
            digest,
            from,
            signature,
            ..
        }
        | LocalMessage::Prepare {
            lane,
            view,
            seq,
            digest,
            from,
            signature,
        } => out.push(Check::Single {
            signer: *from,
            tag: Tag::LocalPrepare,
            message: prepare_payload(*lane, *view, *seq, digest),
            signature: signature.clone(),
        }),
        LocalMessage::Commit {
            lane,
            view,
            seq,
            digest,
            from,
            signature,
        } => out.push(Check::Single {
            signer: *from,
            tag: Tag::LocalCommit,
            message: commit_payload(*lane, *view, *seq, digest),
            signature: signature.clone(),
        }),
        LocalMessage::ViewChange(vc) => vc.checks(out),
        LocalMessage::NewView {
            lane,
            view,
            view_changes,
            from,
            signature,
        } => {
            out.push(Check::Single {
                signer: *from,
                tag: Tag::LocalNewView,
                message: new_view_payload(*lane, *view, view_changes),
                signature: signature.clone(),
            });
            view_changes.iter().for_each(|vc| vc.checks(out));
        }
    }
}

fn global_checks(message: &GlobalMessage, out: &mut Vec<Check>) {
    match message {
        GlobalMessage::Proposal { block, signature } => {
            out.push(Check::Single {
                signer: block.proposer,
                tag: Tag::Proposal,
                message: block.digest().to_vec(),
                signature: signature.clone(),
            });
            out.extend(block.qc.check());
            if let Some(tc) = &block.tc {
                tc.checks(out);
            }
            for evidence in &block.evidence {
                out.extend(evidence.proof().unwrap_or_default());
            }
        }
        GlobalMessage::Vote {
            round,
            block,
            from,
            signature,
        } => out.push(Check::Single {
            signer: *from,
            tag: Tag::GlobalVote,
            message: vote_payload(*round, block),
            signature: signature.clone(),
        }),
        GlobalMessage::DomainVote {
            round, block, cert, ..
        } => out.push(Check::Aggregate {
            tag: Tag::GlobalVote,
            message: vote_payload(*round, block),
            certificate: cert.clone(),
        }),
        GlobalMessage::Timeout {
            round,
            high_qc,
            last_tc,
            from,
            signature,
        } => {
            out.push(Check::Single {
                signer: *from,
                tag: Tag::Timeout,
                message: timeout_payload(*round, high_qc.round),
                signature: signature.clone(),
            });
            out.extend(high_qc.check());
            if let Some(tc) = last_tc {
                tc.checks(out);
            }
        }
        GlobalMessage::Sync { high_qc, high_tc } => {
            out.extend(high_qc.check());
            if let Some(tc) = high_tc {
                tc.checks(out);
            }
        }
        GlobalMessage::BlockRequest { .. } | GlobalMessage::SyncRequest { .. } => {}
        GlobalMessage::BlockResponse { blocks } => {
            // Blocks in a sync response are checked by their QCs, not by the proposer's
            // signature (the responder may not have it).
            for block in blocks {
                out.extend(block.qc.check());
            }
        }
    }
}
