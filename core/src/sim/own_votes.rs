//! Honest replicas never contradict themselves: every vote-like message an honest replica
//! sends is remembered, and a second one for the same slot with another value is a
//! violation. Only a replica that forgot what it sent (a record not persisted, a send
//! released before its record was durable, a restore that drops a record) can do it.
//!
//! A replica that lost its whole disk forgot everything: after the loss it must sign no
//! global vote, proposal or timeout in a round, and no local vote at a sequence, at or below
//! the highest it had reached before (its floors lie above them).

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

/// How far a replica's signatures reached: the highest global round it voted, proposed or
/// timed out in, and per lane the highest sequence it pre-prepared, prepared or committed.
#[derive(Debug, Default, Clone)]
struct Reach {
    round: u64,
    seqs: BTreeMap<Lane, Seq>,
}

impl Reach {
    /// The round or the lane sequence a message signs at.
    fn position(message: &Message) -> Option<(Option<Lane>, u64)> {
        Some(match message {
            Message::Global(GlobalMessage::Vote { round, .. })
            | Message::Global(GlobalMessage::Timeout { round, .. }) => (None, *round),
            Message::Global(GlobalMessage::Proposal { block, .. }) => (None, block.round),
            Message::Local(
                LocalMessage::PrePrepare { lane, seq, .. }
                | LocalMessage::Prepare { lane, seq, .. }
                | LocalMessage::Commit { lane, seq, .. },
            ) => (Some(*lane), *seq),
            _ => return None,
        })
    }

    fn kind(message: &Message) -> &'static str {
        match message {
            Message::Global(GlobalMessage::Vote { .. }) => "a vote",
            Message::Global(GlobalMessage::Timeout { .. }) => "a timeout",
            Message::Global(GlobalMessage::Proposal { .. }) => "a proposal",
            Message::Local(LocalMessage::PrePrepare { .. }) => "a pre-prepare",
            Message::Local(LocalMessage::Prepare { .. }) => "a prepare",
            _ => "a commit",
        }
    }

    fn extend(&mut self, position: (Option<Lane>, u64)) {
        match position {
            (None, round) => self.round = self.round.max(round),
            (Some(lane), seq) => {
                let reached = self.seqs.entry(lane).or_default();
                *reached = (*reached).max(seq);
            }
        }
    }

    fn covers(&self, position: (Option<Lane>, u64)) -> bool {
        match position {
            (None, round) => round <= self.round,
            (Some(lane), seq) => self.seqs.get(&lane).is_some_and(|&reached| seq <= reached),
        }
    }
}

#[derive(Debug, Default)]
pub struct OwnVotes {
    sent: BTreeMap<(ReplicaId, Slot), Digest>,
    /// Vote-like messages each replica sent since its last restart, for the question a
    /// restart must answer: does the restored replica know it sent them?
    since_restart: BTreeMap<ReplicaId, Vec<Message>>,
    reach: BTreeMap<ReplicaId, Reach>,
    /// What a replica had reached when it last lost its disk.
    before_loss: BTreeMap<ReplicaId, Reach>,
}

impl OwnVotes {
    /// An honest replica sends `message`: the violation, if it is one (a contradiction, or
    /// a signature below what it reached before it lost its disk).
    pub fn observe(&mut self, from: ReplicaId, message: &Message) -> Option<String> {
        let amnesia = self.observe_reach(from, message);
        let contradiction = self.observe_slot(from, message);
        amnesia.or(contradiction)
    }

    /// The replica lost its disk: what it reached so far is what it must stay above.
    pub fn disk_lost(&mut self, id: ReplicaId) {
        if let Some(reach) = self.reach.get(&id) {
            self.before_loss.insert(id, reach.clone());
        }
        self.since_restart.remove(&id);
    }

    fn observe_reach(&mut self, from: ReplicaId, message: &Message) -> Option<String> {
        let position = Reach::position(message)?;
        self.reach.entry(from).or_default().extend(position);
        let before = self.before_loss.get(&from)?;
        before.covers(position).then(|| {
            let (at, limit) = match position {
                (None, round) => (format!("round {round}"), before.round),
                (Some(lane), seq) => (format!("{lane:?} seq {seq}"), before.seqs[&lane]),
            };
            format!(
                "amnesia: r{from} lost its disk, then signed {} at {at}, at or below the {limit} \
                 it had reached before",
                Reach::kind(message)
            )
        })
    }

    fn observe_slot(&mut self, from: ReplicaId, message: &Message) -> Option<String> {
        let (slot, value) = Self::slot(message)?;
        let since = self.since_restart.entry(from).or_default();
        if since.len() < SENT_KEPT_MAX {
            since.push(message.clone());
        }
        let first = *self.sent.entry((from, slot)).or_insert(value);
        (first != value).then(|| {
            format!(
                "equivocation: honest r{from} contradicted itself at {slot:?}: {:02x?} then {:02x?}",
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
