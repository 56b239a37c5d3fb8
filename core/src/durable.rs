//! What a replica persists, and the contract with the host that persists it.
//!
//! Durable state is exactly the records: [`crate::replica::Replica::restore`] rebuilds a
//! replica from the records it persisted and nothing else. Each [`Record`] gets the next
//! [`RecordSeq`]; the host writes them in order, and reports how far they are durable with
//! `Input::Durable { upto }`. A `Send` names the last record it depends on (`after`): the host
//! must not release it before that record is durable, so no vote leaves that a crash could
//! make the replica forget (raft-rs `persisted_messages`).
//!
//! The log stays bounded: every stable checkpoint record carries the replica's state at it,
//! and [`compact`] rewrites a log to start there, so a restart replays one checkpoint
//! interval, not the replica's whole history.

use crate::checkpoint::CheckpointCert;
use crate::crypto::Digest;
use crate::messages::{
    Block, Lane, LocalCert, LocalMessage, Payload, PreparedProof, QuorumCert, TimeoutCert,
};
use crate::messages::{Seq, View};
use std::sync::Arc;

/// Position of a record in the replica's log: 1 for the first record, 0 for "none".
pub type RecordSeq = u64;

/// A durable-state record, one kind per fact the replica must not forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The global tier's safety state at a vote, timeout or proposal: never vote in a round
    /// at or below `last_voted_round`, never propose twice in a round, and the lock.
    GlobalSafety {
        last_voted_round: u64,
        proposed_round: u64,
        high_qc: QuorumCert,
        /// The TC that brought us to our round, if one did (a restart resumes there).
        high_tc: Option<TimeoutCert>,
    },
    /// A global block became final (emitted in chain order); execution replays these.
    GlobalCommitted(Arc<Block>),
    /// One PBFT lane's fact.
    Local { lane: Lane, record: LocalRecord },
    /// A committed batch held in the batch store, with its LC.
    Batch { lc: LocalCert, payload: Payload },
    /// A stable checkpoint with our state at it: durable before anything below it is
    /// truncated or served. A compacted log starts from the last one ([`compact`]).
    StableCheckpoint(CheckpointState),
    /// A snapshot installed by state transfer (the host may store the bytes beside the log).
    SnapshotInstalled(CheckpointState),
    /// We lost our disk and rejoined ([`crate::replica::Replica::rejoin`]): we may have
    /// voted in anything before, so we vote in nothing until the floors are learned from a
    /// quorum of peers, and then only above them. The first record of such a log.
    Rejoined(RejoinState),
}

/// What a replica that lost its disk knows of the votes it may have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejoinState {
    /// Our recovery request's nonce: only answers to it count.
    pub nonce: u64,
    /// None while we wait for a quorum of answers.
    pub floors: Option<RejoinFloors>,
}

/// Below these we may have voted before the disk loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejoinFloors {
    /// No global vote, timeout or proposal in a round below it.
    pub global_round: u64,
    /// Per shard of our domain: no local vote until the lane's stable point reaches it.
    pub lane_seqs: Vec<Seq>,
}

/// A certified state (a stable checkpoint of ours, or a snapshot state transfer installed):
/// the certificate, the snapshot it certifies (ledger and reputation), the certified block
/// and the LCs of its cut. The host may store the snapshot bytes beside the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointState {
    pub cert: CheckpointCert,
    pub snapshot: Arc<Vec<u8>>,
    pub block: Arc<Block>,
    pub lane_certs: Vec<LocalCert>,
}

/// The facts of one PBFT lane (Castro-Liskov 4.2, 4.4): what was accepted and sent, per
/// view and sequence, so a restarted member neither contradicts itself nor forgets what a
/// view change must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRecord {
    /// The view entered, and whether a view change to it is still in progress.
    View { view: View, in_view_change: bool },
    /// A pre-prepare accepted (a backup) or sent (the primary), with its batch.
    PrePrepare {
        view: View,
        seq: Seq,
        digest: Digest,
        payload: Payload,
        /// The signed pre-prepare when it came from the primary (None when decided by a
        /// new-view).
        message: Option<LocalMessage>,
    },
    /// prepare(v, n, d) sent.
    PrepareSent {
        view: View,
        seq: Seq,
        digest: Digest,
    },
    /// prepared(m, v, n) with its certificate: a view change must carry it.
    Prepared(PreparedProof),
    /// commit(v, n, d) sent.
    CommitSent {
        view: View,
        seq: Seq,
        digest: Digest,
    },
    /// The new-view that installed our view (members that missed it get it from us).
    NewViewInstalled(LocalMessage),
}

impl LocalRecord {
    /// The sequence a slot record is about (None for view records).
    pub fn seq(&self) -> Option<Seq> {
        match self {
            LocalRecord::PrePrepare { seq, .. }
            | LocalRecord::PrepareSent { seq, .. }
            | LocalRecord::CommitSent { seq, .. } => Some(*seq),
            LocalRecord::Prepared(proof) => Some(proof.seq),
            LocalRecord::View { .. } | LocalRecord::NewViewInstalled(_) => None,
        }
    }
}

impl Record {
    /// Short name of the record's kind, for traces and counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::GlobalSafety { .. } => "global-safety",
            Record::GlobalCommitted(_) => "global-committed",
            Record::Local { record, .. } => match record {
                LocalRecord::View { .. } => "local-view",
                LocalRecord::PrePrepare { .. } => "local-pre-prepare",
                LocalRecord::PrepareSent { .. } => "local-prepare-sent",
                LocalRecord::Prepared(_) => "local-prepared",
                LocalRecord::CommitSent { .. } => "local-commit-sent",
                LocalRecord::NewViewInstalled(_) => "local-new-view",
            },
            Record::Batch { .. } => "batch",
            Record::StableCheckpoint(_) => "stable-checkpoint",
            Record::SnapshotInstalled(_) => "snapshot-installed",
            Record::Rejoined(_) => "rejoined",
        }
    }
}

/// Compact a log at its last certified state (our stable checkpoint, or an installed
/// snapshot) so that restore replays from there: that record first, then of the records
/// before it only what the state does not already cover, then every record after it
/// unchanged. `Replica::restore` from the result rebuilds the same durable state as from
/// `records`; the host replaces the records it compacted by the result, atomically.
///
/// Dropped from before the base: blocks at or below its height, batches and lane slots at or
/// below its cut, earlier bases and checkpoints, and every safety, view and new-view record
/// but the last (each is the full state of its kind, and never lowers it).
pub fn compact(records: &[Record], shards: u32) -> Vec<Record> {
    let Some(base) = records.iter().rposition(Record::is_base) else {
        return records.to_vec();
    };
    let (height, cut) = records[base].base_position().expect("a base record");
    let lane_cut = |lane: &Lane| {
        let index = lane.domain as usize * shards as usize + lane.shard as usize;
        cut.get(index).copied().unwrap_or(0)
    };
    // Records that hold the whole state of their kind (per lane): only the last counts.
    let mut last = std::collections::BTreeMap::new();
    for (index, record) in records[..base].iter().enumerate() {
        if let Some(key) = whole_state_key(record) {
            last.insert(key, index);
        }
    }
    let mut kept = vec![records[base].clone()];
    for (index, record) in records[..base].iter().enumerate() {
        let keep = match record {
            _ if whole_state_key(record).is_some() => {
                whole_state_key(record).and_then(|key| last.get(&key)) == Some(&index)
            }
            Record::GlobalCommitted(block) => block.height > height,
            Record::Batch { lc, .. } => lc.seq > lane_cut(&lc.lane),
            Record::Local { lane, record } => record.seq().is_some_and(|seq| seq > lane_cut(lane)),
            Record::GlobalSafety { .. }
            | Record::Rejoined(_)
            | Record::StableCheckpoint(_)
            | Record::SnapshotInstalled(_) => false,
        };
        if keep {
            kept.push(record.clone());
        }
    }
    kept.extend_from_slice(&records[base + 1..]);
    kept
}

/// For a record that holds the whole state of its kind (the global safety state, the rejoin
/// state, a lane's view, a lane's installed new-view): its kind and lane.
fn whole_state_key(record: &Record) -> Option<(u8, Option<Lane>)> {
    match record {
        Record::GlobalSafety { .. } | Record::Rejoined(_) => Some((record.wire_kind(), None)),
        Record::Local { lane, record: fact } if fact.seq().is_none() => {
            Some((record.wire_kind(), Some(*lane)))
        }
        _ => None,
    }
}

impl Record {
    /// A record a compacted log can start from.
    pub fn is_base(&self) -> bool {
        self.base_position().is_some()
    }

    /// Height and cut of a certified state record.
    fn base_position(&self) -> Option<(u64, &[Seq])> {
        match self {
            Record::StableCheckpoint(state) | Record::SnapshotInstalled(state) => {
                Some((state.block.height, &state.block.cut))
            }
            _ => None,
        }
    }
}

// ---- Wire encoding (crate::wire) ----

use crate::checkpoint::SNAPSHOT_BYTES_MAX;
use crate::messages::LANES_MAX;
use crate::topology::SHARDS_MAX;
use crate::wire::{
    put_bool, put_bytes, put_u64, put_u8, put_vec, Encoder, Reader, Wire, WireError,
};

// Record kind tags: at or above 0x80, so no record frame decodes as a message frame.
const KIND_GLOBAL_SAFETY: u8 = 0x80;
const KIND_GLOBAL_COMMITTED: u8 = 0x81;
const KIND_LOCAL_VIEW: u8 = 0x82;
const KIND_LOCAL_PRE_PREPARE: u8 = 0x83;
const KIND_LOCAL_PREPARE_SENT: u8 = 0x84;
const KIND_LOCAL_PREPARED: u8 = 0x85;
const KIND_LOCAL_COMMIT_SENT: u8 = 0x86;
const KIND_LOCAL_NEW_VIEW: u8 = 0x87;
const KIND_BATCH: u8 = 0x90;
const KIND_STABLE_CHECKPOINT: u8 = 0x91;
const KIND_SNAPSHOT_INSTALLED: u8 = 0x92;
const KIND_REJOINED: u8 = 0x93;
const LOCAL_KINDS: std::ops::RangeInclusive<u8> = KIND_LOCAL_VIEW..=KIND_LOCAL_NEW_VIEW;

impl LocalRecord {
    fn wire_kind(&self) -> u8 {
        match self {
            LocalRecord::View { .. } => KIND_LOCAL_VIEW,
            LocalRecord::PrePrepare { .. } => KIND_LOCAL_PRE_PREPARE,
            LocalRecord::PrepareSent { .. } => KIND_LOCAL_PREPARE_SENT,
            LocalRecord::Prepared(_) => KIND_LOCAL_PREPARED,
            LocalRecord::CommitSent { .. } => KIND_LOCAL_COMMIT_SENT,
            LocalRecord::NewViewInstalled(_) => KIND_LOCAL_NEW_VIEW,
        }
    }

    fn encode_body(&self, out: &mut Encoder) {
        match self {
            LocalRecord::View {
                view,
                in_view_change,
            } => {
                put_u64(out, *view);
                put_bool(out, *in_view_change);
            }
            LocalRecord::PrePrepare {
                view,
                seq,
                digest,
                payload,
                message,
            } => {
                put_u64(out, *view);
                put_u64(out, *seq);
                digest.encode(out);
                payload.encode(out);
                message.encode(out);
            }
            LocalRecord::PrepareSent { view, seq, digest }
            | LocalRecord::CommitSent { view, seq, digest } => {
                put_u64(out, *view);
                put_u64(out, *seq);
                digest.encode(out);
            }
            LocalRecord::Prepared(proof) => proof.encode(out),
            LocalRecord::NewViewInstalled(message) => message.encode(out),
        }
    }

    fn decode_body(kind: u8, reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match kind {
            KIND_LOCAL_VIEW => LocalRecord::View {
                view: reader.u64("view")?,
                in_view_change: reader.bool("in view change")?,
            },
            KIND_LOCAL_PRE_PREPARE => LocalRecord::PrePrepare {
                view: reader.u64("view")?,
                seq: reader.u64("seq")?,
                digest: Digest::decode(reader)?,
                payload: Payload::decode(reader)?,
                message: Option::decode(reader)?,
            },
            KIND_LOCAL_PREPARE_SENT => LocalRecord::PrepareSent {
                view: reader.u64("view")?,
                seq: reader.u64("seq")?,
                digest: Digest::decode(reader)?,
            },
            KIND_LOCAL_PREPARED => LocalRecord::Prepared(PreparedProof::decode(reader)?),
            KIND_LOCAL_COMMIT_SENT => LocalRecord::CommitSent {
                view: reader.u64("view")?,
                seq: reader.u64("seq")?,
                digest: Digest::decode(reader)?,
            },
            KIND_LOCAL_NEW_VIEW => LocalRecord::NewViewInstalled(LocalMessage::decode(reader)?),
            tag => {
                return Err(WireError::UnknownTag {
                    what: "local record kind",
                    tag,
                })
            }
        })
    }
}

impl Record {
    /// The kind tag a frame of this record starts with (after the version).
    pub fn wire_kind(&self) -> u8 {
        match self {
            Record::GlobalSafety { .. } => KIND_GLOBAL_SAFETY,
            Record::GlobalCommitted(_) => KIND_GLOBAL_COMMITTED,
            Record::Local { record, .. } => record.wire_kind(),
            Record::Batch { .. } => KIND_BATCH,
            Record::StableCheckpoint(_) => KIND_STABLE_CHECKPOINT,
            Record::SnapshotInstalled(_) => KIND_SNAPSHOT_INSTALLED,
            Record::Rejoined(_) => KIND_REJOINED,
        }
    }

    fn encode_body(&self, out: &mut Encoder) {
        match self {
            Record::GlobalSafety {
                last_voted_round,
                proposed_round,
                high_qc,
                high_tc,
            } => {
                put_u64(out, *last_voted_round);
                put_u64(out, *proposed_round);
                high_qc.encode(out);
                high_tc.encode(out);
            }
            Record::GlobalCommitted(block) => block.encode(out),
            Record::Local { lane, record } => {
                lane.encode(out);
                record.encode_body(out);
            }
            Record::Batch { lc, payload } => {
                lc.encode(out);
                payload.encode(out);
            }
            Record::StableCheckpoint(state) | Record::SnapshotInstalled(state) => state.encode(out),
            Record::Rejoined(state) => {
                put_u64(out, state.nonce);
                state.floors.encode(out);
            }
        }
    }

    fn decode_body(kind: u8, reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match kind {
            KIND_GLOBAL_SAFETY => Record::GlobalSafety {
                last_voted_round: reader.u64("last voted round")?,
                proposed_round: reader.u64("proposed round")?,
                high_qc: QuorumCert::decode(reader)?,
                high_tc: Option::decode(reader)?,
            },
            KIND_GLOBAL_COMMITTED => Record::GlobalCommitted(Arc::decode(reader)?),
            kind if LOCAL_KINDS.contains(&kind) => Record::Local {
                lane: Lane::decode(reader)?,
                record: LocalRecord::decode_body(kind, reader)?,
            },
            KIND_BATCH => Record::Batch {
                lc: LocalCert::decode(reader)?,
                payload: Payload::decode(reader)?,
            },
            KIND_STABLE_CHECKPOINT => Record::StableCheckpoint(CheckpointState::decode(reader)?),
            KIND_SNAPSHOT_INSTALLED => Record::SnapshotInstalled(CheckpointState::decode(reader)?),
            KIND_REJOINED => Record::Rejoined(RejoinState {
                nonce: reader.u64("rejoin nonce")?,
                floors: Option::decode(reader)?,
            }),
            tag => {
                return Err(WireError::UnknownTag {
                    what: "record kind",
                    tag,
                })
            }
        })
    }
}

/// Any record: its kind tag, then its body (a frame adds the version in front).
impl Wire for Record {
    fn encode(&self, out: &mut Encoder) {
        put_u8(out, self.wire_kind());
        self.encode_body(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        let kind = reader.u8("record kind")?;
        Record::decode_body(kind, reader)
    }
}

impl Wire for RejoinFloors {
    fn encode(&self, out: &mut Encoder) {
        put_u64(out, self.global_round);
        put_vec(
            out,
            "rejoin lane floors",
            &self.lane_seqs,
            SHARDS_MAX as usize,
        );
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RejoinFloors {
            global_round: reader.u64("rejoin global floor")?,
            lane_seqs: reader.vec("rejoin lane floors", SHARDS_MAX as usize)?,
        })
    }
}

impl Wire for CheckpointState {
    fn encode(&self, out: &mut Encoder) {
        self.cert.encode(out);
        put_bytes(out, "snapshot bytes", &self.snapshot, SNAPSHOT_BYTES_MAX);
        self.block.encode(out);
        put_vec(out, "snapshot lane certs", &self.lane_certs, LANES_MAX);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(CheckpointState {
            cert: CheckpointCert::decode(reader)?,
            snapshot: Arc::new(reader.bytes("snapshot bytes", SNAPSHOT_BYTES_MAX)?.to_vec()),
            block: Arc::decode(reader)?,
            lane_certs: reader.vec("snapshot lane certs", LANES_MAX)?,
        })
    }
}
