//! Protocol messages of both tiers, their signing payloads and the signature checks the
//! host must run before a message reaches a handler.

use crate::checkpoint::{CheckpointCert, CheckpointVote, SnapshotChunk};
use crate::crypto::{digest, Bitmap, Certificate, Check, Digest, Signature, Signer, Tag};
use crate::evidence::Evidence;
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

pub use crate::transaction::{Payload, Transaction};

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
        tx: Transaction,
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

    /// Per lane, the first sequence this block orders beyond `parent_cut` whose batch
    /// `held` says we lack (the batch requests start there).
    pub fn first_missing(
        &self,
        parent_cut: &[Seq],
        held: impl Fn(usize, Seq, &Digest) -> bool,
    ) -> std::collections::BTreeMap<usize, Seq> {
        let mut missing = std::collections::BTreeMap::new();
        for (lane, seq, digest) in self.ordered(parent_cut) {
            if !held(lane, seq, &digest) {
                missing.entry(lane).or_insert(seq);
            }
        }
        missing
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
    /// A replica that lost its disk asks for its peers' certified progress; `nonce` is fresh
    /// per rejoin, so an answer to an earlier one does not count.
    RecoveryRequest {
        nonce: u64,
        from: ReplicaId,
    },
    RecoveryReply(Box<RecoveryReply>),
}

/// A peer's certified progress, for a replica rejoining without its disk: the highest global
/// certificates, and the LC of each lane of the peer's domain at its stable point (a lane
/// that has committed nothing has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReply {
    pub nonce: u64,
    pub high_qc: QuorumCert,
    pub high_tc: Option<TimeoutCert>,
    pub lane_lcs: Vec<LocalCert>,
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
            | Message::RecoveryRequest { from, .. }
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
            Message::RecoveryRequest { .. } => {}
            Message::RecoveryReply(reply) => {
                high_certificate_checks(&reply.high_qc, &reply.high_tc, &mut out);
                out.extend(reply.lane_lcs.iter().map(LocalCert::check));
            }
        }
        out
    }
}

/// The checks of a replica's highest certificates (a sync answer, a recovery reply).
fn high_certificate_checks(qc: &QuorumCert, tc: &Option<TimeoutCert>, out: &mut Vec<Check>) {
    out.extend(qc.check());
    if let Some(tc) = tc {
        tc.checks(out);
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
        GlobalMessage::Sync { high_qc, high_tc } => high_certificate_checks(high_qc, high_tc, out),
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

// ---- Wire encoding (crate::wire) ----

use crate::evidence::EVIDENCE_PER_BLOCK_MAX;
use crate::hotstuff::{BATCHES_PER_LANE_PER_BLOCK_MAX, SYNC_BLOCKS_MAX};
use crate::pbft::SLOTS_AHEAD_MAX;
use crate::topology::{REPLICAS_MAX, SHARDS_MAX};
use crate::wire::{put_count, put_u32, put_u64, put_u8, put_vec, Encoder, Reader, Wire, WireError};

/// Most lanes a cluster can have: every domain holds a replica (an empty domain is refused
/// when the cluster file is read), so at most [`REPLICAS_MAX`] domains of [`SHARDS_MAX`]
/// shards each. Bounds a block's cut and the lane certificates of a snapshot.
pub const LANES_MAX: usize = REPLICAS_MAX * SHARDS_MAX as usize;
/// Most batch digests one block can name: each lane orders at most
/// [`BATCHES_PER_LANE_PER_BLOCK_MAX`] batches per block.
pub const BLOCK_BATCHES_MAX: usize = LANES_MAX * BATCHES_PER_LANE_PER_BLOCK_MAX as usize;
/// Prepared proofs in one view change: one per slot a member holds, and a member holds at
/// most [`SLOTS_AHEAD_MAX`] (the receiver then refuses more than a window of them).
pub const VIEW_CHANGE_PROOFS_MAX: usize = SLOTS_AHEAD_MAX as usize;

const _: () = assert!(BLOCK_BATCHES_MAX <= u32::MAX as usize);

// Message kind tags (the byte after the version). Ranges group the tiers.
const KIND_FORWARD: u8 = 0x01;
const KIND_PRE_PREPARE: u8 = 0x02;
const KIND_PREPARE: u8 = 0x03;
const KIND_COMMIT: u8 = 0x04;
const KIND_VIEW_CHANGE: u8 = 0x05;
const KIND_NEW_VIEW: u8 = 0x06;
const KIND_BATCH: u8 = 0x10;
const KIND_BATCH_REQUEST: u8 = 0x11;
const KIND_PROPOSAL: u8 = 0x20;
const KIND_VOTE: u8 = 0x21;
const KIND_DOMAIN_VOTE: u8 = 0x22;
const KIND_TIMEOUT: u8 = 0x23;
const KIND_SYNC: u8 = 0x24;
const KIND_SYNC_REQUEST: u8 = 0x25;
const KIND_BLOCK_REQUEST: u8 = 0x26;
const KIND_BLOCK_RESPONSE: u8 = 0x27;
const KIND_CHECKPOINT: u8 = 0x30;
const KIND_STABLE_CHECKPOINT: u8 = 0x31;
const KIND_SNAPSHOT_REQUEST: u8 = 0x32;
const KIND_SNAPSHOT_CHUNK: u8 = 0x33;
const KIND_RECOVERY_REQUEST: u8 = 0x34;
const KIND_RECOVERY_REPLY: u8 = 0x35;
const LOCAL_KINDS: std::ops::RangeInclusive<u8> = KIND_FORWARD..=KIND_NEW_VIEW;
const GLOBAL_KINDS: std::ops::RangeInclusive<u8> = KIND_PROPOSAL..=KIND_BLOCK_RESPONSE;

impl Wire for Lane {
    const ENCODED_BYTES_MIN: usize = 8;

    fn encode(&self, out: &mut Encoder) {
        out.extend_from_slice(&self.bytes());
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Lane {
            domain: reader.index("lane domain", REPLICAS_MAX)?,
            shard: reader.index("lane shard", SHARDS_MAX as usize)?,
        })
    }
}

impl Wire for LocalCert {
    fn encode(&self, out: &mut Encoder) {
        self.lane.encode(out);
        put_u64(out, self.view);
        put_u64(out, self.seq);
        self.digest.encode(out);
        self.cert.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(LocalCert {
            lane: Lane::decode(reader)?,
            view: reader.u64("view")?,
            seq: reader.u64("seq")?,
            digest: Digest::decode(reader)?,
            cert: Certificate::decode(reader)?,
        })
    }
}

impl Wire for PreparedProof {
    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.view);
        put_u64(out, self.seq);
        self.digest.encode(out);
        self.payload.encode(out);
        self.cert.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(PreparedProof {
            view: reader.u64("view")?,
            seq: reader.u64("seq")?,
            digest: Digest::decode(reader)?,
            payload: Payload::decode(reader)?,
            cert: Certificate::decode(reader)?,
        })
    }
}

impl Wire for ViewChange {
    fn encode(&self, out: &mut Encoder) {
        self.lane.encode(out);
        put_u64(out, self.new_view);
        put_u64(out, self.committed_upto);
        self.committed_lc.encode(out);
        put_vec(
            out,
            "prepared proofs",
            &self.prepared,
            VIEW_CHANGE_PROOFS_MAX,
        );
        put_u32(out, self.from);
        self.signature.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(ViewChange {
            lane: Lane::decode(reader)?,
            new_view: reader.u64("new view")?,
            committed_upto: reader.u64("committed upto")?,
            committed_lc: Option::decode(reader)?,
            prepared: reader.vec("prepared proofs", VIEW_CHANGE_PROOFS_MAX)?,
            from: reader.replica("view change sender")?,
            signature: Signature::decode(reader)?,
        })
    }
}

/// (lane, view, seq, digest): what pre-prepares, prepares and commits all name.
fn encode_slot(lane: &Lane, view: View, seq: Seq, digest: &Digest, out: &mut Encoder) {
    lane.encode(out);
    put_u64(out, view);
    put_u64(out, seq);
    digest.encode(out);
}

fn decode_slot(reader: &mut Reader<'_>) -> Result<(Lane, View, Seq, Digest), WireError> {
    Ok((
        Lane::decode(reader)?,
        reader.u64("view")?,
        reader.u64("seq")?,
        Digest::decode(reader)?,
    ))
}

impl LocalMessage {
    fn kind(&self) -> u8 {
        match self {
            LocalMessage::Forward { .. } => KIND_FORWARD,
            LocalMessage::PrePrepare { .. } => KIND_PRE_PREPARE,
            LocalMessage::Prepare { .. } => KIND_PREPARE,
            LocalMessage::Commit { .. } => KIND_COMMIT,
            LocalMessage::ViewChange(_) => KIND_VIEW_CHANGE,
            LocalMessage::NewView { .. } => KIND_NEW_VIEW,
        }
    }

    fn encode_body(&self, out: &mut Encoder) {
        match self {
            LocalMessage::Forward { lane, tx } => {
                lane.encode(out);
                tx.encode(out);
            }
            LocalMessage::PrePrepare {
                lane,
                view,
                seq,
                digest,
                payload,
                from,
                signature,
            } => {
                encode_slot(lane, *view, *seq, digest, out);
                payload.encode(out);
                put_u32(out, *from);
                signature.encode(out);
            }
            LocalMessage::Prepare {
                lane,
                view,
                seq,
                digest,
                from,
                signature,
            }
            | LocalMessage::Commit {
                lane,
                view,
                seq,
                digest,
                from,
                signature,
            } => {
                encode_slot(lane, *view, *seq, digest, out);
                put_u32(out, *from);
                signature.encode(out);
            }
            LocalMessage::ViewChange(vc) => vc.encode(out),
            LocalMessage::NewView {
                lane,
                view,
                view_changes,
                from,
                signature,
            } => {
                lane.encode(out);
                put_u64(out, *view);
                put_vec(out, "view changes", view_changes, REPLICAS_MAX);
                put_u32(out, *from);
                signature.encode(out);
            }
        }
    }

    fn decode_body(kind: u8, reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match kind {
            KIND_FORWARD => LocalMessage::Forward {
                lane: Lane::decode(reader)?,
                tx: Transaction::decode(reader)?,
            },
            KIND_PRE_PREPARE => {
                let (lane, view, seq, digest) = decode_slot(reader)?;
                LocalMessage::PrePrepare {
                    lane,
                    view,
                    seq,
                    digest,
                    payload: Payload::decode(reader)?,
                    from: reader.replica("pre-prepare sender")?,
                    signature: Signature::decode(reader)?,
                }
            }
            KIND_PREPARE => {
                let (lane, view, seq, digest) = decode_slot(reader)?;
                LocalMessage::Prepare {
                    lane,
                    view,
                    seq,
                    digest,
                    from: reader.replica("prepare sender")?,
                    signature: Signature::decode(reader)?,
                }
            }
            KIND_COMMIT => {
                let (lane, view, seq, digest) = decode_slot(reader)?;
                LocalMessage::Commit {
                    lane,
                    view,
                    seq,
                    digest,
                    from: reader.replica("commit sender")?,
                    signature: Signature::decode(reader)?,
                }
            }
            KIND_VIEW_CHANGE => LocalMessage::ViewChange(ViewChange::decode(reader)?),
            KIND_NEW_VIEW => LocalMessage::NewView {
                lane: Lane::decode(reader)?,
                view: reader.u64("view")?,
                view_changes: reader.vec("view changes", REPLICAS_MAX)?,
                from: reader.replica("new view sender")?,
                signature: Signature::decode(reader)?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "local message",
                    tag,
                })
            }
        })
    }
}

/// A local message alone (as a record holds it): its kind tag, then its body.
impl Wire for LocalMessage {
    fn encode(&self, out: &mut Encoder) {
        put_u8(out, self.kind());
        self.encode_body(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let kind = reader.u8("local message kind")?;
        LocalMessage::decode_body(kind, reader)
    }
}

impl Wire for QuorumCert {
    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.round);
        self.block.encode(out);
        self.cert.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(QuorumCert {
            round: reader.u64("round")?,
            block: Digest::decode(reader)?,
            cert: Certificate::decode(reader)?,
        })
    }
}

/// One timeout vote of a TC: (signer, its high QC round, signature).
const TIMEOUT_VOTE_BYTES_MIN: usize = 4 + 8 + Signature::ENCODED_BYTES_MIN;

impl Wire for TimeoutCert {
    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.round);
        put_count(out, "timeout votes", self.votes.len(), REPLICAS_MAX);
        for (signer, high_qc_round, signature) in &self.votes {
            put_u32(out, *signer);
            put_u64(out, *high_qc_round);
            signature.encode(out);
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let round = reader.u64("round")?;
        let len = reader.count("timeout votes", REPLICAS_MAX, TIMEOUT_VOTE_BYTES_MIN)?;
        let mut votes = Vec::with_capacity(len);
        for _ in 0..len {
            votes.push((
                reader.replica("timeout signer")?,
                reader.u64("high qc round")?,
                Signature::decode(reader)?,
            ));
        }
        Ok(TimeoutCert { round, votes })
    }
}

impl Wire for Block {
    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.round);
        put_u64(out, self.height);
        self.parent.encode(out);
        self.qc.encode(out);
        self.tc.encode(out);
        put_vec(out, "block cut", &self.cut, LANES_MAX);
        put_vec(out, "block batches", &self.batches, BLOCK_BATCHES_MAX);
        put_vec(
            out,
            "block evidence",
            &self.evidence,
            EVIDENCE_PER_BLOCK_MAX,
        );
        put_u32(out, self.proposer);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Block {
            round: reader.u64("round")?,
            height: reader.u64("height")?,
            parent: Digest::decode(reader)?,
            qc: QuorumCert::decode(reader)?,
            tc: Option::decode(reader)?,
            cut: reader.vec("block cut", LANES_MAX)?,
            batches: reader.vec("block batches", BLOCK_BATCHES_MAX)?,
            evidence: reader.vec("block evidence", EVIDENCE_PER_BLOCK_MAX)?,
            proposer: reader.replica("proposer")?,
        })
    }
}

impl GlobalMessage {
    fn kind(&self) -> u8 {
        match self {
            GlobalMessage::Proposal { .. } => KIND_PROPOSAL,
            GlobalMessage::Vote { .. } => KIND_VOTE,
            GlobalMessage::DomainVote { .. } => KIND_DOMAIN_VOTE,
            GlobalMessage::Timeout { .. } => KIND_TIMEOUT,
            GlobalMessage::Sync { .. } => KIND_SYNC,
            GlobalMessage::SyncRequest { .. } => KIND_SYNC_REQUEST,
            GlobalMessage::BlockRequest { .. } => KIND_BLOCK_REQUEST,
            GlobalMessage::BlockResponse { .. } => KIND_BLOCK_RESPONSE,
        }
    }

    fn encode_body(&self, out: &mut Encoder) {
        match self {
            GlobalMessage::Proposal { block, signature } => {
                block.encode(out);
                signature.encode(out);
            }
            GlobalMessage::Vote {
                round,
                block,
                from,
                signature,
            } => {
                put_u64(out, *round);
                block.encode(out);
                put_u32(out, *from);
                signature.encode(out);
            }
            GlobalMessage::DomainVote {
                round,
                block,
                cert,
                from,
            } => {
                put_u64(out, *round);
                block.encode(out);
                cert.encode(out);
                put_u32(out, *from);
            }
            GlobalMessage::Timeout {
                round,
                high_qc,
                last_tc,
                from,
                signature,
            } => {
                put_u64(out, *round);
                high_qc.encode(out);
                last_tc.encode(out);
                put_u32(out, *from);
                signature.encode(out);
            }
            GlobalMessage::Sync { high_qc, high_tc } => {
                high_qc.encode(out);
                high_tc.encode(out);
            }
            GlobalMessage::SyncRequest { round, from } => {
                put_u64(out, *round);
                put_u32(out, *from);
            }
            GlobalMessage::BlockRequest { block, from } => {
                block.encode(out);
                put_u32(out, *from);
            }
            GlobalMessage::BlockResponse { blocks } => {
                put_vec(out, "response blocks", blocks, SYNC_BLOCKS_MAX);
            }
        }
    }

    fn decode_body(kind: u8, reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match kind {
            KIND_PROPOSAL => GlobalMessage::Proposal {
                block: Arc::decode(reader)?,
                signature: Signature::decode(reader)?,
            },
            KIND_VOTE => GlobalMessage::Vote {
                round: reader.u64("round")?,
                block: Digest::decode(reader)?,
                from: reader.replica("voter")?,
                signature: Signature::decode(reader)?,
            },
            KIND_DOMAIN_VOTE => GlobalMessage::DomainVote {
                round: reader.u64("round")?,
                block: Digest::decode(reader)?,
                cert: Certificate::decode(reader)?,
                from: reader.replica("aggregator")?,
            },
            KIND_TIMEOUT => GlobalMessage::Timeout {
                round: reader.u64("round")?,
                high_qc: QuorumCert::decode(reader)?,
                last_tc: Option::decode(reader)?,
                from: reader.replica("timeout sender")?,
                signature: Signature::decode(reader)?,
            },
            KIND_SYNC => GlobalMessage::Sync {
                high_qc: QuorumCert::decode(reader)?,
                high_tc: Option::decode(reader)?,
            },
            KIND_SYNC_REQUEST => GlobalMessage::SyncRequest {
                round: reader.u64("round")?,
                from: reader.replica("sync requester")?,
            },
            KIND_BLOCK_REQUEST => GlobalMessage::BlockRequest {
                block: Digest::decode(reader)?,
                from: reader.replica("block requester")?,
            },
            KIND_BLOCK_RESPONSE => GlobalMessage::BlockResponse {
                blocks: reader.vec("response blocks", SYNC_BLOCKS_MAX)?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "global message",
                    tag,
                })
            }
        })
    }
}

impl Message {
    /// The kind tag a frame of this message starts with (after the version).
    pub fn wire_kind(&self) -> u8 {
        match self {
            Message::Local(local) => local.kind(),
            Message::Batch { .. } => KIND_BATCH,
            Message::BatchRequest { .. } => KIND_BATCH_REQUEST,
            Message::Global(global) => global.kind(),
            Message::Checkpoint(_) => KIND_CHECKPOINT,
            Message::StableCheckpoint(_) => KIND_STABLE_CHECKPOINT,
            Message::SnapshotRequest { .. } => KIND_SNAPSHOT_REQUEST,
            Message::SnapshotChunk(_) => KIND_SNAPSHOT_CHUNK,
            Message::RecoveryRequest { .. } => KIND_RECOVERY_REQUEST,
            Message::RecoveryReply(_) => KIND_RECOVERY_REPLY,
        }
    }

    fn encode_body(&self, out: &mut Encoder) {
        match self {
            Message::Local(local) => local.encode_body(out),
            Message::Batch { lc, payload } => {
                lc.encode(out);
                payload.encode(out);
            }
            Message::BatchRequest {
                lane,
                seq,
                upto,
                from,
            } => {
                lane.encode(out);
                put_u64(out, *seq);
                put_u64(out, *upto);
                put_u32(out, *from);
            }
            Message::Global(global) => global.encode_body(out),
            Message::Checkpoint(vote) => vote.encode(out),
            Message::StableCheckpoint(cert) => cert.encode(out),
            Message::SnapshotRequest {
                height,
                chunk,
                from,
            } => {
                put_u64(out, *height);
                put_u64(out, *chunk);
                put_u32(out, *from);
            }
            Message::SnapshotChunk(chunk) => chunk.encode(out),
            Message::RecoveryRequest { nonce, from } => {
                put_u64(out, *nonce);
                put_u32(out, *from);
            }
            Message::RecoveryReply(reply) => {
                put_u64(out, reply.nonce);
                reply.high_qc.encode(out);
                reply.high_tc.encode(out);
                put_vec(
                    out,
                    "recovery lane certs",
                    &reply.lane_lcs,
                    SHARDS_MAX as usize,
                );
            }
        }
    }

    fn decode_body(kind: u8, reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match kind {
            kind if LOCAL_KINDS.contains(&kind) => {
                Message::Local(LocalMessage::decode_body(kind, reader)?)
            }
            kind if GLOBAL_KINDS.contains(&kind) => {
                Message::Global(GlobalMessage::decode_body(kind, reader)?)
            }
            KIND_BATCH => Message::Batch {
                lc: LocalCert::decode(reader)?,
                payload: Payload::decode(reader)?,
            },
            KIND_BATCH_REQUEST => Message::BatchRequest {
                lane: Lane::decode(reader)?,
                seq: reader.u64("seq")?,
                upto: reader.u64("upto")?,
                from: reader.replica("batch requester")?,
            },
            KIND_CHECKPOINT => Message::Checkpoint(CheckpointVote::decode(reader)?),
            KIND_STABLE_CHECKPOINT => Message::StableCheckpoint(CheckpointCert::decode(reader)?),
            KIND_SNAPSHOT_REQUEST => Message::SnapshotRequest {
                height: reader.u64("height")?,
                chunk: reader.u64("chunk")?,
                from: reader.replica("snapshot requester")?,
            },
            KIND_SNAPSHOT_CHUNK => Message::SnapshotChunk(Box::decode(reader)?),
            KIND_RECOVERY_REQUEST => Message::RecoveryRequest {
                nonce: reader.u64("nonce")?,
                from: reader.replica("recovery requester")?,
            },
            KIND_RECOVERY_REPLY => Message::RecoveryReply(Box::new(RecoveryReply {
                nonce: reader.u64("nonce")?,
                high_qc: QuorumCert::decode(reader)?,
                high_tc: Option::decode(reader)?,
                lane_lcs: reader.vec("recovery lane certs", SHARDS_MAX as usize)?,
            })),
            tag => {
                return Err(WireError::UnknownTag {
                    what: "message kind",
                    tag,
                })
            }
        })
    }
}

/// Any message: its kind tag, then its body (a frame adds the version in front).
impl Wire for Message {
    fn encode(&self, out: &mut Encoder) {
        put_u8(out, self.wire_kind());
        self.encode_body(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let kind = reader.u8("message kind")?;
        Message::decode_body(kind, reader)
    }
}
