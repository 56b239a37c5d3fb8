//! What a replica persists, and the contract with the host that persists it.
//!
//! Durable state is exactly the records: [`crate::replica::Replica::restore`] rebuilds a
//! replica from the records it persisted and nothing else. Each [`Record`] gets the next
//! [`RecordSeq`]; the host writes them in order, and reports how far they are durable with
//! `Input::Durable { upto }`. A `Send` names the last record it depends on (`after`): the host
//! must not release it before that record is durable, so no vote leaves that a crash could
//! make the replica forget (raft-rs `persisted_messages`).

use crate::checkpoint::CheckpointCert;
use crate::crypto::Digest;
use crate::messages::{Block, Lane, LocalCert, LocalMessage, Payload, PreparedProof, QuorumCert};
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
    },
    /// A global block became final (emitted in chain order); execution replays these.
    GlobalCommitted(Arc<Block>),
    /// One PBFT lane's fact.
    Local { lane: Lane, record: LocalRecord },
    /// A committed batch held in the batch store, with its LC.
    Batch { lc: LocalCert, payload: Payload },
    /// A stable checkpoint: durable before anything below it is truncated or served.
    StableCheckpoint(CheckpointCert),
    /// A snapshot installed by state transfer (the host stores the bytes as the new base).
    SnapshotInstalled {
        checkpoint: CheckpointCert,
        snapshot: Arc<Vec<u8>>,
        /// The certified block and the LCs of its cut, as the transfer delivered them.
        block: Arc<Block>,
        lane_certs: Vec<LocalCert>,
    },
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
            Record::SnapshotInstalled { .. } => "snapshot-installed",
        }
    }
}
