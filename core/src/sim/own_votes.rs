//! Honest replicas never contradict themselves: every vote-like message an honest replica
//! sends is remembered, and a second one for the same slot with another value is a
//! violation. Only a replica that forgot what it sent (a record not persisted, a send
//! released before its record was durable, a restore that drops a record) can do it.

use crate::crypto::Digest;
use crate::messages::{GlobalMessage, Lane, LocalMessage, Message, Seq, View};
use crate::topology::ReplicaId;
use std::collections::BTreeMap;

/// Messages remembered per replica between restarts (a run sends far fewer).
const SENT_KEPT_MAX: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    GlobalVote(u64),
    Proposal(u64),
    PrePrepare(Lane, View, Seq),
    Prepare(Lane, View, Seq),
    Commit(Lane, View, Seq),
}

#[derive(Debug, Default)]
pub struct OwnVotes {
    sent: BTreeMap<(ReplicaId, Slot), Digest>,
    /// Vote-like messages each replica sent since its last restart, for the question a
    /// restart must answer: does the restored replica know it sent them?
    since_restart: BTreeMap<ReplicaId, Vec<Message>>,
}

impl OwnVotes {
    /// An honest replica sends `message`: the contradiction, if it is one.
    pub fn observe(&mut self, from: ReplicaId, message: &Message) -> Option<String> {
        let (slot, value) = Self::slot(message)?;
        let since = self.since_restart.entry(from).or_default();
        if since.len() < SENT_KEPT_MAX {
            since.push(message.clone());
        }
        let first = *self.sent.entry((from, slot)).or_insert(value);
        (first != value).then(|| {
            format!(
                "honest r{from} contradicted itself at {slot:?}: {:02x?} then {:02x?}",
                &first[..4],
                &value[..4]
            )
        })
    }

    /// The messages `id` sent that a restart made it forget, and how many it sent since its
    /// last restart (the list starts over).
    pub fn forgotten_at_restart(
        &mut self,
        id: ReplicaId,
        remembers: impl Fn(&Message) -> bool,
    ) -> (Vec<Message>, usize) {
        let sent = self.since_restart.remove(&id).unwrap_or_default();
        let count = sent.len();
        (sent.into_iter().filter(|m| !remembers(m)).collect(), count)
    }

    /// The slot a vote-like message fills, for violations.
    pub fn describe(message: &Message) -> String {
        Self::slot(message).map_or_else(|| "a message".into(), |(slot, _)| format!("{slot:?}"))
    }

    fn slot(message: &Message) -> Option<(Slot, Digest)> {
        Some(match message {
            Message::Global(GlobalMessage::Vote { round, block, .. }) => {
                (Slot::GlobalVote(*round), *block)
            }
            Message::Global(GlobalMessage::Proposal { block, .. }) => {
                (Slot::Proposal(block.round), block.digest())
            }
            Message::Local(LocalMessage::PrePrepare {
                lane,
                view,
                seq,
                digest,
                ..
            }) => (Slot::PrePrepare(*lane, *view, *seq), *digest),
            Message::Local(LocalMessage::Prepare {
                lane,
                view,
                seq,
                digest,
                ..
            }) => (Slot::Prepare(*lane, *view, *seq), *digest),
            Message::Local(LocalMessage::Commit {
                lane,
                view,
                seq,
                digest,
                ..
            }) => (Slot::Commit(*lane, *view, *seq), *digest),
            _ => return None,
        })
    }
}
