//! Local tier: one PBFT instance (Castro-Liskov) per (domain, shard) lane.
//!
//! Normal case: the primary of the view pre-prepares a batch at a sequence number, members
//! prepare it, a member with q_d matching prepares (the pre-prepare counts as the primary's)
//! is *prepared* and sends a commit; q_d matching commits make the batch *locally committed*
//! and their signatures aggregate into the local certificate (LC).
//!
//! View change: a member that waits too long for a forwarded request, or sees the primary
//! equivocate, moves to the next view and sends a view-change carrying its prepared
//! certificates; the new primary gathers q_d of them into a new-view which re-proposes, for
//! every sequence above the highest LC-certified one, the batch prepared in the highest view
//! (paper section 4.4), or an empty batch. A batch committed anywhere is prepared at q_d - f_d
//! honest members, so every new-view carries it.
//!
//! The "stable checkpoint" of the paper is the highest contiguous LC-certified sequence: an
//! LC proves q_d commits, so it plays the role of the checkpoint certificate for garbage
//! collection and watermarks.

use crate::bugs::PlantedBugs;
use crate::certificates::CertRules;
use crate::client::{shard_of, SignedTransfer};
use crate::crypto::{Bitmap, Certificate, Digest, Signature, Signer, Tag};
use crate::durable::LocalRecord;
use crate::evidence::Evidence;
use crate::messages::{
    commit_payload, new_view_payload, prepare_payload, Lane, LocalCert, LocalMessage, Message,
    Payload, PreparedProof, Seq, View, ViewChange,
};
use crate::topology::{Quorum, ReplicaId};
use crate::transaction::Transaction;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Sequences a primary may run ahead of the stable point (the high watermark).
pub const WINDOW_SEQS: u64 = 64;
/// Sequences above the stable point a member holds slots for (committed batches that arrive
/// ahead of a gap, new-view decisions); beyond it, a lagging member catches up first.
pub const SLOTS_AHEAD_MAX: u64 = 4 * WINDOW_SEQS;
/// Batches in flight (pre-prepared, not yet committed) at once.
pub const PIPELINE_BATCHES_MAX: u64 = 8;
/// Transactions per batch.
pub const BATCH_TXS_MAX: usize = 256;
pub const BATCH_TXS_MIN: usize = 4;
/// Client transactions queued at a primary, and awaited by a backup.
pub const QUEUE_TXS_MAX: usize = 8_192;
/// Views ahead of ours for which we keep view-change messages.
pub const VIEWS_AHEAD_MAX: u64 = 8;
/// Ticks a primary holds a partial batch before cutting it.
pub const BATCH_DELAY_TICKS_MAX: u64 = 2;
/// Forwarded transactions taken from one member per tick (a full batch).
pub const FORWARDS_PER_MEMBER_PER_TICK_MAX: u32 = BATCH_TXS_MAX as u32;

const _: () = assert!(PIPELINE_BATCHES_MAX < WINDOW_SEQS);
const _: () = assert!(WINDOW_SEQS <= SLOTS_AHEAD_MAX);
const _: () = assert!(BATCH_TXS_MIN <= BATCH_TXS_MAX);

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub lane: Lane,
    /// Members of the domain, sorted; the primary of view v is `members[v % n_d]`.
    pub members: Vec<ReplicaId>,
    pub quorum: Quorum,
    /// Ticks a forwarded request may wait for commit before we suspect the primary.
    pub request_timeout_ticks: u64,
    /// The one door every certificate passes (signers and quorum).
    pub rules: Arc<CertRules>,
}

/// What the shard asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalOutput {
    Send {
        to: Vec<ReplicaId>,
        message: LocalMessage,
    },
    /// A batch locally committed, with its LC. Emitted once per sequence, in order.
    Committed {
        lc: LocalCert,
        payload: Payload,
    },
    /// Committed batches up to `upto` exist (proved by an LC) that we do not hold.
    NeedBatches {
        upto: Seq,
        from: ReplicaId,
    },
    /// A member reported fewer committed batches than we hold: send it ours from `from_seq`.
    PeerBehind {
        peer: ReplicaId,
        from_seq: Seq,
    },
    /// A durable fact, persisted before the sends that follow it leave.
    Persist(LocalRecord),
    Evidence(Evidence),
    ViewChanged {
        view: View,
    },
}

#[derive(Debug, Clone, Default)]
struct Votes {
    signers: Bitmap,
    signatures: Vec<Signature>,
}

impl Votes {
    fn add(&mut self, from: ReplicaId, signature: Signature) -> bool {
        let fresh = self.signers.insert(from);
        if fresh {
            self.signatures.push(signature);
        }
        fresh
    }

    fn count(&self) -> usize {
        self.signatures.len()
    }
}

/// Counts one kind of signed vote (prepares or commits) of one slot: per (view, digest), and
/// at most one digest per member and view, so a member cannot fill the slot with digests
/// (STYLE.md 7: the state machine decides, the keeper counts).
#[derive(Debug, Clone, Default)]
struct VoteKeeper {
    backed: BTreeMap<(View, ReplicaId), Digest>,
    votes: BTreeMap<(View, Digest), Votes>,
}

impl VoteKeeper {
    /// Adds a verified vote; false when the member already voted in this view.
    fn add(&mut self, view: View, digest: Digest, from: ReplicaId, signature: Signature) -> bool {
        if self.backed.contains_key(&(view, from)) {
            return false;
        }
        self.backed.insert((view, from), digest);
        self.votes
            .entry((view, digest))
            .or_default()
            .add(from, signature)
    }

    fn get(&self, view: View, digest: &Digest) -> Option<&Votes> {
        self.votes.get(&(view, *digest))
    }

    /// The first (view, digest) with at least `q` votes.
    fn quorum(&self, q: usize) -> Option<(View, Digest, &Votes)> {
        self.votes
            .iter()
            .find(|(_, v)| v.count() >= q)
            .map(|(&(view, digest), votes)| (view, digest, votes))
    }

    /// Forget views before `view` (each member then holds at most one entry per live view).
    fn retain_from(&mut self, view: View) {
        self.backed.retain(|(v, _), _| *v >= view);
        self.votes.retain(|(v, _), _| *v >= view);
    }

    fn len(&self) -> usize {
        self.backed.len()
    }
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// The pre-prepare accepted in `view` (durable: we never accept another in that view).
    accepted: Option<(View, Digest, Payload)>,
    /// The signed pre-prepare accepted, kept as evidence material.
    pre_prepare: Option<LocalMessage>,
    prepares: VoteKeeper,
    commits: VoteKeeper,
    prepared: Option<PreparedProof>,
    /// The view and digest of the last commit we sent (one commit per view, 4.2).
    sent_commit: Option<(View, Digest)>,
    committed: bool,
    /// Set once committed; the slot leaves when the stable point passes it.
    lc: Option<LocalCert>,
}

/// One PBFT lane at one replica.
pub struct LocalShard {
    config: LocalConfig,
    me: ReplicaId,
    bugs: PlantedBugs,
    view: View,
    in_view_change: bool,
    view_change_started: u64,
    slots: BTreeMap<Seq, Slot>,
    /// Highest contiguous committed sequence (the stable point).
    committed_upto: Seq,
    committed_lc: Option<LocalCert>,
    next_seq: Seq,
    queue: VecDeque<(Transaction, u64)>,
    queued_keys: BTreeSet<u128>,
    /// Requests we forwarded, with the tick they must commit by.
    /// Requests we forwarded: the transfer, the tick it must commit by, and whether it was
    /// already re-sent to every member once.
    awaited: BTreeMap<u128, (Transaction, u64, bool)>,
    /// View changes that completed no new-view in a row (the back-off exponent).
    view_change_attempts: u32,
    view_changes: BTreeMap<View, BTreeMap<ReplicaId, ViewChange>>,
    new_view_sent: BTreeSet<View>,
    /// The new-view that installed our view, relayed to members still asking for it.
    installed_new_view: Option<LocalMessage>,
    batch_target: usize,
    /// Forwards taken per member in the current tick: (tick, count).
    forwards_in_tick: BTreeMap<ReplicaId, (u64, u32)>,
    /// When the stable point last moved (or the pipeline was last sent again).
    progress_at: u64,
    /// When we last relayed our new-view to each member still in an older view.
    new_view_relayed: BTreeMap<ReplicaId, u64>,
    /// Rejoined after a disk loss: we sign nothing (pre-prepare, prepare, commit, view
    /// change, new view) while the stable point is below this ([`rejoin_floor`]).
    silent_until: Seq,
    now: u64,
}

/// The lane floor of a member that lost its disk, from `highest`, the highest stable point
/// that q_d other members proved with an LC after the loss. The member voted only at
/// sequences within [`SLOTS_AHEAD_MAX`] of its own stable point s; s has an LC, whose q_d
/// signers include an honest answerer, who committed s within reach of its own stable point
/// and answered from at or above it: s <= highest + SLOTS_AHEAD_MAX. So every sequence it
/// voted in is at or below the floor, and once its stable point reaches the floor every
/// sequence it may vote in lies above.
pub fn rejoin_floor(highest: Seq) -> Seq {
    highest.saturating_add(2 * SLOTS_AHEAD_MAX)
}

impl LocalShard {
    pub fn new(config: LocalConfig, me: ReplicaId, bugs: PlantedBugs) -> LocalShard {
        assert!(
            config.members.contains(&me),
            "a shard runs only on members of its domain"
        );
        assert!(config.members.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(config.quorum.n as usize, config.members.len());
        LocalShard {
            config,
            me,
            bugs,
            view: 0,
            in_view_change: false,
            view_change_started: 0,
            slots: BTreeMap::new(),
            committed_upto: 0,
            committed_lc: None,
            next_seq: 1,
            queue: VecDeque::new(),
            queued_keys: BTreeSet::new(),
            awaited: BTreeMap::new(),
            view_change_attempts: 0,
            view_changes: BTreeMap::new(),
            new_view_sent: BTreeSet::new(),
            installed_new_view: None,
            batch_target: BATCH_TXS_MIN,
            forwards_in_tick: BTreeMap::new(),
            progress_at: 0,
            new_view_relayed: BTreeMap::new(),
            silent_until: 0,
            now: 0,
        }
    }

    /// Rejoining after a disk loss: sign nothing until the stable point reaches `floor`
    /// (`Seq::MAX` while it is not known yet).
    pub fn silence_until(&mut self, floor: Seq) {
        self.silent_until = floor;
    }

    /// Below the floor of a rejoin: we sign nothing.
    pub fn is_silent(&self) -> bool {
        self.committed_upto < self.silent_until
    }

    /// The LC of our stable point (what a rejoining member learns its floor from).
    pub fn stable_lc(&self) -> Option<&LocalCert> {
        self.committed_lc.as_ref()
    }

    /// Restore: take in one durable fact this shard recorded before the restart. Our own
    /// prepares and commits are signed again (signing is deterministic) so they count.
    pub fn replay(&mut self, record: LocalRecord, signer: &dyn Signer) {
        if record.seq().is_some_and(|seq| seq <= self.committed_upto) {
            return; // committed since: the batch record holds what matters
        }
        match record {
            LocalRecord::View {
                view,
                in_view_change,
            } => {
                assert!(view >= self.view, "views never decrease");
                self.view = view;
                self.in_view_change = in_view_change;
            }
            LocalRecord::NewViewInstalled(message) => self.installed_new_view = Some(message),
            LocalRecord::PrePrepare {
                view,
                seq,
                digest,
                payload,
                message,
            } => {
                let primary = self.primary_of(view);
                let slot = self.slot_to_restore(seq);
                if let Some(LocalMessage::PrePrepare { signature, .. }) = &message {
                    slot.prepares.add(view, digest, primary, signature.clone());
                }
                slot.accepted = Some((view, digest, payload));
                slot.pre_prepare = message;
            }
            LocalRecord::PrepareSent { view, seq, digest } => {
                let (lane, me) = (self.lane(), self.me);
                let signature = signer.sign(
                    Tag::LocalPrepare,
                    &prepare_payload(lane, view, seq, &digest),
                );
                let slot = self.slot_to_restore(seq);
                slot.prepares.add(view, digest, me, signature);
            }
            LocalRecord::Prepared(proof) => {
                let seq = proof.seq;
                self.slot_to_restore(seq).prepared = Some(proof);
            }
            LocalRecord::CommitSent { view, seq, digest } => {
                let (lane, me) = (self.lane(), self.me);
                let signature =
                    signer.sign(Tag::LocalCommit, &commit_payload(lane, view, seq, &digest));
                let slot = self.slot_to_restore(seq);
                slot.sent_commit = Some((view, digest));
                slot.commits.add(view, digest, me, signature);
            }
        }
    }

    fn slot_to_restore(&mut self, seq: Seq) -> &mut Slot {
        self.slots.entry(seq).or_default()
    }

    /// Restore done: a primary must not reuse a sequence it pre-prepared in this view (that
    /// would be an equivocation after every restart).
    pub fn restored(&mut self) {
        let (committed, view) = (self.committed_upto, self.view);
        self.slots.retain(|&seq, _| seq > committed);
        let last_used = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.accepted.as_ref().is_some_and(|a| a.0 == view))
            .map(|(&seq, _)| seq)
            .max()
            .unwrap_or(0);
        self.next_seq = self.next_seq.max(committed.max(last_used) + 1);
    }

    /// Every buffer a member can fill is within its bound (checked by the simulator after
    /// every step).
    pub fn assert_bounded(&self) {
        let members = self.config.members.len();
        let votes_max = members * (VIEWS_AHEAD_MAX as usize + 2);
        assert!(self.slots.len() as u64 <= SLOTS_AHEAD_MAX, "slots bounded");
        assert!(
            self.slots
                .keys()
                .all(|&seq| seq > self.committed_upto && self.within_reach(seq)),
            "slots above the stable point, within reach"
        );
        assert!(
            self.slots
                .values()
                .all(|s| s.prepares.len() <= votes_max && s.commits.len() <= votes_max),
            "votes per slot bounded"
        );
        assert!(self.queue.len() <= QUEUE_TXS_MAX, "queue bounded");
        assert!(self.awaited.len() <= QUEUE_TXS_MAX, "awaited bounded");
        assert!(
            self.view_changes.len() as u64 <= VIEWS_AHEAD_MAX + 2,
            "view-change views bounded"
        );
        assert!(
            self.view_changes.values().all(|v| v.len() <= members),
            "view changes per view bounded"
        );
        assert!(self.new_view_sent.len() <= 2, "new-views sent bounded");
        assert!(
            self.forwards_in_tick.len() <= members,
            "forward budgets bounded"
        );
    }

    /// The lowest slot held, for traces: (seq, accepted view, digest byte, prepared view,
    /// sent commit view, commit votes per (view, count)).
    pub fn describe_first_slot(&self) -> String {
        let Some((seq, slot)) = self.slots.iter().next() else {
            return String::new();
        };
        let commits: Vec<(View, u8, usize)> = slot
            .commits
            .votes
            .iter()
            .map(|(&(v, d), votes)| (v, d[0], votes.count()))
            .collect();
        let prepares: Vec<(View, u8, usize)> = slot
            .prepares
            .votes
            .iter()
            .map(|(&(v, d), votes)| (v, d[0], votes.count()))
            .collect();
        format!(
            "seq {seq} accepted {:?} prepared {:?} sent_commit {:?} prepares {prepares:?} commits {commits:?} committed {}",
            slot.accepted.as_ref().map(|a| (a.0, a.1[0])),
            slot.prepared.as_ref().map(|p| (p.view, p.digest[0])),
            slot.sent_commit.map(|(v, d)| (v, d[0])),
            slot.committed
        )
    }

    /// One line of state for traces.
    pub fn describe(&self) -> String {
        format!(
            "view {}{} committed {} next {} queue {} awaited {} slots {}",
            self.view,
            if self.in_view_change {
                " (changing)"
            } else {
                ""
            },
            self.committed_upto,
            self.next_seq,
            self.queue.len(),
            self.awaited.len(),
            self.slots.len()
        )
    }

    pub fn lane(&self) -> Lane {
        self.config.lane
    }

    pub fn view(&self) -> View {
        self.view
    }

    /// Whether a restored shard knows it sent `message` (a pre-prepare, prepare or commit of
    /// this lane): the durability checker's question after every restart.
    pub fn remembers(&self, message: &LocalMessage) -> bool {
        let (view, seq, digest, commit) = match message {
            LocalMessage::PrePrepare {
                view, seq, digest, ..
            }
            | LocalMessage::Prepare {
                view, seq, digest, ..
            } => (*view, *seq, *digest, false),
            LocalMessage::Commit {
                view, seq, digest, ..
            } => (*view, *seq, *digest, true),
            _ => return true,
        };
        if self.view < view {
            return false;
        }
        if seq <= self.committed_upto {
            return true;
        }
        let Some(slot) = self.slots.get(&seq) else {
            return false;
        };
        if commit {
            slot.committed
                || slot
                    .sent_commit
                    .is_some_and(|(v, d)| v > view || d == digest)
        } else {
            slot.committed
                || slot
                    .accepted
                    .as_ref()
                    .is_some_and(|a| a.0 > view || a.1 == digest)
        }
    }

    pub fn committed_upto(&self) -> Seq {
        self.committed_upto
    }

    pub fn primary_of(&self, view: View) -> ReplicaId {
        self.config.members[(view % self.config.members.len() as u64) as usize]
    }

    pub fn is_primary(&self) -> bool {
        self.primary_of(self.view) == self.me
    }

    fn others(&self) -> Vec<ReplicaId> {
        self.config
            .members
            .iter()
            .copied()
            .filter(|&m| m != self.me)
            .collect()
    }

    fn q(&self) -> u32 {
        self.config.quorum.q
    }

    /// A client transaction routed to this lane arrived at this replica.
    pub fn on_client(&mut self, tx: Transaction, out: &mut Vec<LocalOutput>) -> bool {
        if self.is_primary() && !self.in_view_change {
            return self.enqueue(tx);
        }
        if self.awaited.len() >= QUEUE_TXS_MAX {
            return false;
        }
        self.awaited.entry(tx.key()).or_insert((
            tx.clone(),
            self.now + self.config.request_timeout_ticks,
            false,
        ));
        let primary = self.primary_of(self.view);
        out.push(LocalOutput::Send {
            to: vec![primary],
            message: LocalMessage::Forward {
                lane: self.lane(),
                tx,
            },
        });
        true
    }

    fn enqueue(&mut self, tx: Transaction) -> bool {
        if self.queue.len() >= QUEUE_TXS_MAX {
            return false;
        }
        if self.queued_keys.insert(tx.key()) {
            self.queue.push_back((tx, self.now));
        }
        true
    }

    /// One tick. A primary cuts batches, stamping each transfer with `credit_floor` of it:
    /// the debited account's credits as this replica executed them (`ledger::admission`).
    pub fn on_tick(
        &mut self,
        signer: &dyn Signer,
        credit_floor: &dyn Fn(&SignedTransfer) -> u128,
        out: &mut Vec<LocalOutput>,
    ) {
        self.now += 1;
        if self.in_view_change {
            self.on_view_change_timeout(signer, out);
            return;
        }
        if self.is_primary() {
            self.retransmit_if_stalled(out);
            self.cut_batches(signer, credit_floor, out);
        } else {
            self.on_request_timeout(signer, out);
        }
    }

    /// A primary whose pipeline made no progress for a request timeout sends its new-view
    /// and its uncommitted pre-prepares again: a member that lost them waits for good
    /// otherwise (the primary never suspects itself, and with another member silent the
    /// rest cannot change the view without it).
    fn retransmit_if_stalled(&mut self, out: &mut Vec<LocalOutput>) {
        if self.is_silent() || self.now < self.progress_at + self.config.request_timeout_ticks {
            return;
        }
        let view = self.view;
        let pending: Vec<LocalMessage> = self
            .slots
            .range(self.committed_upto + 1..)
            .filter(|(_, slot)| {
                !slot.committed && slot.accepted.as_ref().is_some_and(|a| a.0 == view)
            })
            .filter_map(|(_, slot)| slot.pre_prepare.clone())
            .collect();
        if pending.is_empty() {
            return;
        }
        self.progress_at = self.now;
        let resend = self.installed_new_view.iter().cloned().chain(pending);
        for message in resend {
            out.push(LocalOutput::Send {
                to: self.others(),
                message,
            });
        }
    }

    /// A forwarded request is overdue. The first time, hand it to the primary again and to
    /// every member (as a PBFT client's broadcast retry would), so that a lost forward does
    /// not cost a view change and the other members watch the primary too. The second time,
    /// suspect the primary.
    fn on_request_timeout(&mut self, signer: &dyn Signer, out: &mut Vec<LocalOutput>) {
        let now = self.now;
        let overdue: Vec<u128> = self
            .awaited
            .iter()
            .filter(|(_, a)| now > a.1)
            .map(|(k, _)| *k)
            .collect();
        if overdue.is_empty() {
            return;
        }
        if overdue.iter().any(|k| self.awaited[k].2) {
            self.start_view_change(self.view + 1, signer, out);
            return;
        }
        let lane = self.lane();
        let deadline = now + self.config.request_timeout_ticks;
        for key in overdue {
            let entry = self.awaited.get_mut(&key).expect("overdue entry");
            entry.1 = deadline;
            entry.2 = true;
            let message = LocalMessage::Forward {
                lane,
                tx: entry.0.clone(),
            };
            out.push(LocalOutput::Send {
                to: self.others(),
                message,
            });
        }
    }

    /// Castro-Liskov 4.5.2: when q_d members are changing to our view or beyond and no
    /// new-view followed in time, move to the next view, waiting twice as long each time.
    /// Without such a quorum we stay (a lone suspicion must not run ahead of the group) and
    /// repeat our view-change message in case it was lost. A member already beyond our view
    /// counts: it gave our view up, and it repeats only its newest view change, so with a
    /// member silent for good the laggards would otherwise wait for one that never comes.
    fn on_view_change_timeout(&mut self, signer: &dyn Signer, out: &mut Vec<LocalOutput>) {
        let patience = self.config.request_timeout_ticks << (self.view_change_attempts.min(3));
        if self.now < self.view_change_started + patience {
            return;
        }
        let gathered: BTreeSet<ReplicaId> = self
            .view_changes
            .range(self.view..)
            .flat_map(|(_, senders)| senders.keys().copied())
            .collect();
        if gathered.len() >= self.q() as usize {
            self.view_change_attempts += 1;
            self.start_view_change(self.view + 1, signer, out);
        } else {
            // Our own view-change message is volatile: after a restart in the middle of a
            // view change, sign it again, or the group may never gather f_d + 1 for our view.
            let vc = match self
                .view_changes
                .get(&self.view)
                .and_then(|s| s.get(&self.me))
            {
                Some(vc) => vc.clone(),
                None => {
                    let vc = self.own_view_change(self.view, signer);
                    self.view_changes
                        .entry(self.view)
                        .or_default()
                        .insert(self.me, vc.clone());
                    vc
                }
            };
            self.view_change_started = self.now;
            out.push(LocalOutput::Send {
                to: self.others(),
                message: LocalMessage::ViewChange(vc),
            });
        }
    }

    /// Dynamic batch sizing: the target doubles while the queue outgrows the pipeline and
    /// halves when it drains, between the named bounds.
    fn cut_batches(
        &mut self,
        signer: &dyn Signer,
        credit_floor: &dyn Fn(&SignedTransfer) -> u128,
        out: &mut Vec<LocalOutput>,
    ) {
        if self.is_silent() {
            return;
        }
        let backlog = self.queue.len();
        if backlog > self.batch_target * PIPELINE_BATCHES_MAX as usize {
            self.batch_target = (self.batch_target * 2).min(BATCH_TXS_MAX);
        } else if backlog < self.batch_target / 2 {
            self.batch_target = (self.batch_target / 2).max(BATCH_TXS_MIN);
        }
        while !self.queue.is_empty()
            && self.next_seq <= self.committed_upto + PIPELINE_BATCHES_MAX
            && self.next_seq <= self.committed_upto + WINDOW_SEQS
        {
            let oldest = self.queue.front().map(|(_, t)| *t).unwrap_or(self.now);
            if self.queue.len() < self.batch_target && self.now < oldest + BATCH_DELAY_TICKS_MAX {
                break;
            }
            while self.slots.get(&self.next_seq).is_some_and(|slot| {
                slot.committed || slot.accepted.as_ref().is_some_and(|a| a.0 == self.view)
            }) {
                // Decided by this view's new-view, or committed through an LC. A slot
                // accepted only in an older view is ours to fill: skipping it would leave a
                // hole no later batch can pass.
                self.next_seq += 1;
            }
            let seq = self.next_seq;
            if seq > self.committed_upto + WINDOW_SEQS {
                break; // the queue keeps its transactions for a later tick
            }
            self.next_seq += 1;
            let take = self.queue.len().min(self.batch_target);
            let txs: Vec<Transaction> = self.queue.drain(..take).map(|(tx, _)| tx).collect();
            txs.iter().for_each(|tx| {
                self.queued_keys.remove(&tx.key());
            });
            let payload = Payload::of_stamped(&txs, credit_floor);
            self.pre_prepare(seq, payload, signer, out);
        }
    }

    fn pre_prepare(
        &mut self,
        seq: Seq,
        payload: Payload,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        let digest = payload.digest();
        let signature = signer.sign(
            Tag::LocalPrepare,
            &prepare_payload(self.lane(), self.view, seq, &digest),
        );
        let message = LocalMessage::PrePrepare {
            lane: self.lane(),
            view: self.view,
            seq,
            digest,
            payload,
            from: self.me,
            signature,
        };
        // Accepting our own pre-prepare persists it; only then may it leave.
        self.on_message(message.clone(), signer, out);
        out.push(LocalOutput::Send {
            to: self.others(),
            message,
        });
    }

    pub fn on_message(
        &mut self,
        message: LocalMessage,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        assert_eq!(message.lane(), self.lane());
        self.relay_new_view_to_laggard(&message, out);
        match message {
            LocalMessage::Forward { tx, .. } => self.on_forward(tx, self.me, out),
            LocalMessage::PrePrepare { .. } => self.on_pre_prepare(message, signer, out),
            LocalMessage::Prepare {
                view,
                seq,
                digest,
                from,
                signature,
                ..
            } => self.on_prepare(view, seq, digest, from, signature, signer, out),
            LocalMessage::Commit {
                view,
                seq,
                digest,
                from,
                signature,
                ..
            } => self.on_commit(view, seq, digest, from, signature, signer, out),
            LocalMessage::ViewChange(vc) => self.on_view_change(vc, signer, out),
            LocalMessage::NewView {
                view,
                view_changes,
                from,
                signature,
                ..
            } => self.on_new_view(view, view_changes, from, signature, signer, out),
        }
    }

    /// A member still working in an older view missed the new-view of ours (lost, or sent
    /// while it was cut off): hand it over, at most once per request timeout. A primary of
    /// an older view never suspects itself, so without this it waits for good once another
    /// member is silent.
    fn relay_new_view_to_laggard(&mut self, message: &LocalMessage, out: &mut Vec<LocalOutput>) {
        let (view, from) = match message {
            LocalMessage::PrePrepare { view, from, .. }
            | LocalMessage::Prepare { view, from, .. }
            | LocalMessage::Commit { view, from, .. } => (*view, *from),
            _ => return,
        };
        if view >= self.view || self.in_view_change || from == self.me {
            return;
        }
        let Some(new_view) = self.installed_new_view.clone() else {
            return;
        };
        if !self.config.members.contains(&from) {
            return;
        }
        let due = self
            .new_view_relayed
            .get(&from)
            .is_none_or(|&at| self.now >= at + self.config.request_timeout_ticks);
        if due {
            self.new_view_relayed.insert(from, self.now);
            out.push(LocalOutput::Send {
                to: vec![from],
                message: new_view,
            });
        }
    }

    /// A member hands us a client transaction (the replica had its client signature checked;
    /// the forward itself is unsigned, so each member gets a bounded share per tick). It must
    /// debit an account of this shard. The primary queues it; a
    /// backup relays it to the primary itself and watches it with a full timeout, so a
    /// member that forwards only to backups cannot make them suspect an honest primary.
    pub fn on_forward(&mut self, tx: Transaction, from: ReplicaId, out: &mut Vec<LocalOutput>) {
        if !self.config.members.contains(&from)
            || !self.routes_here(&tx)
            || !self.forward_budget(from)
        {
            return;
        }
        if self.is_primary() && !self.in_view_change {
            self.enqueue(tx);
            return;
        }
        if self.is_primary() || self.awaited.contains_key(&tx.key()) {
            return;
        }
        if self.awaited.len() < QUEUE_TXS_MAX {
            let deadline = self.now + self.config.request_timeout_ticks;
            self.awaited.insert(tx.key(), (tx.clone(), deadline, false));
            out.push(LocalOutput::Send {
                to: vec![self.primary_of(self.view)],
                message: LocalMessage::Forward {
                    lane: self.lane(),
                    tx,
                },
            });
        }
    }

    /// Counts one forward of `from` in this tick; false once its share is used up.
    fn forward_budget(&mut self, from: ReplicaId) -> bool {
        let now = self.now;
        let (tick, used) = self.forwards_in_tick.entry(from).or_insert((now, 0));
        if *tick != now {
            (*tick, *used) = (now, 0);
        }
        *used += 1;
        *used <= FORWARDS_PER_MEMBER_PER_TICK_MAX
    }

    /// Slots we hold at all: committed batches and new-view decisions up to
    /// [`SLOTS_AHEAD_MAX`] above the stable point.
    fn within_reach(&self, seq: Seq) -> bool {
        seq <= self.committed_upto.saturating_add(SLOTS_AHEAD_MAX)
    }

    fn in_window(&self, seq: Seq) -> bool {
        seq > self.committed_upto && seq <= self.committed_upto.saturating_add(WINDOW_SEQS)
    }

    /// Views whose votes we keep: ours and a bounded number ahead.
    fn view_open(&self, view: View) -> bool {
        view >= self.view && view <= self.view.saturating_add(VIEWS_AHEAD_MAX)
    }

    fn on_pre_prepare(
        &mut self,
        message: LocalMessage,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        let LocalMessage::PrePrepare {
            view,
            seq,
            digest,
            ref payload,
            from,
            ref signature,
            ..
        } = message
        else {
            unreachable!("dispatched on variant")
        };
        if from != self.primary_of(view)
            || view != self.view
            || self.in_view_change
            || !self.in_window(seq)
        {
            return;
        }
        if let Some(reason) = self.invalid_batch(&digest, payload) {
            self.reject_primary(from, reason, message.clone(), signer, out);
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        if slot.committed {
            return;
        }
        if let Some((accepted_view, accepted_digest, _)) = &slot.accepted {
            if *accepted_view == view && *accepted_digest != digest {
                let Some(first) = slot.pre_prepare.clone() else {
                    return; // decided by the new-view of this view; the primary must follow it
                };
                out.push(LocalOutput::Evidence(Evidence::Equivocation {
                    offender: from,
                    first: Box::new(Message::Local(first)),
                    second: Box::new(Message::Local(message)),
                }));
                self.start_view_change(self.view + 1, signer, out);
                return;
            }
            if *accepted_view == view {
                return;
            }
        }
        slot.accepted = Some((view, digest, payload.clone()));
        slot.pre_prepare = Some(message.clone());
        slot.prepares.add(view, digest, from, signature.clone());
        out.push(LocalOutput::Persist(LocalRecord::PrePrepare {
            view,
            seq,
            digest,
            payload: payload.clone(),
            message: Some(message.clone()),
        }));
        // The request timers keep running until the batch commits (Castro-Liskov 4.5.2):
        // a pre-prepare that reaches too few members must not silence them.
        self.send_prepare(view, seq, digest, false, signer, out);
        self.check_prepared(seq, signer, out);
    }

    /// A payload holds at most `BATCH_TXS_MAX` transactions by construction (and decoding
    /// refuses more), so only its contents are checked here.
    fn invalid_batch(&self, digest: &Digest, payload: &Payload) -> Option<String> {
        if payload.digest() != *digest {
            return Some("batch digest does not match its payload".into());
        }
        // One pass: each transaction is decoded from the payload's bytes once.
        let mut keys = BTreeSet::new();
        let mut all_route_here = true;
        for tx in payload.iter() {
            all_route_here &= self.routes_here(&tx);
            keys.insert(tx.key());
        }
        if keys.len() != payload.len() {
            return Some("batch repeats an idempotency key".into());
        }
        if !all_route_here {
            return Some("batch debits an account homed in another lane".into());
        }
        None
    }

    /// Debits of an account are ordered by its home lane only (DESIGN.md, "Execution");
    /// opaque transactions spread over the domain's shards by key.
    fn routes_here(&self, tx: &Transaction) -> bool {
        match tx {
            Transaction::Transfer(tx) => {
                self.config.rules.home_lane(tx.transfer.from) == self.config.lane
            }
            Transaction::Opaque(_) => {
                shard_of(tx.routing_key(), self.config.rules.shards()) == self.config.lane.shard
            }
        }
    }

    fn reject_primary(
        &mut self,
        offender: ReplicaId,
        reason: String,
        message: LocalMessage,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        out.push(LocalOutput::Evidence(Evidence::InvalidProposal {
            offender,
            reason,
            message: Box::new(Message::Local(message)),
        }));
        self.start_view_change(self.view + 1, signer, out);
    }

    fn send_prepare(
        &mut self,
        view: View,
        seq: Seq,
        digest: Digest,
        after_new_view: bool,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        if self.is_silent() {
            return;
        }
        if self.primary_of(view) == self.me && !after_new_view {
            return; // the pre-prepare is the primary's prepare
        }
        let signature = signer.sign(
            Tag::LocalPrepare,
            &prepare_payload(self.lane(), view, seq, &digest),
        );
        out.push(LocalOutput::Persist(LocalRecord::PrepareSent {
            view,
            seq,
            digest,
        }));
        out.push(LocalOutput::Send {
            to: self.others(),
            message: LocalMessage::Prepare {
                lane: self.lane(),
                view,
                seq,
                digest,
                from: self.me,
                signature: signature.clone(),
            },
        });
        self.slots
            .entry(seq)
            .or_default()
            .prepares
            .add(view, digest, self.me, signature);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_prepare(
        &mut self,
        view: View,
        seq: Seq,
        digest: Digest,
        from: ReplicaId,
        signature: Signature,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        if !self.config.members.contains(&from) || !self.view_open(view) || !self.in_window(seq) {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        if slot.prepares.add(view, digest, from, signature) {
            self.check_prepared(seq, signer, out);
        }
    }

    /// prepared(m, v, n): the accepted pre-prepare plus q_d matching prepares (the
    /// pre-prepare counting as the primary's). Then send the commit (paper 4.2).
    fn check_prepared(&mut self, seq: Seq, signer: &dyn Signer, out: &mut Vec<LocalOutput>) {
        let q = self.q() as usize;
        let skip_prepare_quorum = self.bugs.pbft_no_prepare;
        let silent = self.is_silent();
        let lane = self.lane();
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some((view, digest, payload)) = slot.accepted.clone() else {
            return;
        };
        if slot.sent_commit == Some((view, digest)) {
            return; // one commit per view
        }
        let votes = slot
            .prepares
            .get(view, &digest)
            .cloned()
            .unwrap_or_default();
        if votes.count() < q && !skip_prepare_quorum {
            return;
        }
        if votes.count() >= q {
            let cert = Certificate {
                signers: votes.signers,
                aggregate: signer.aggregate(&votes.signatures),
            };
            let proof = PreparedProof {
                view,
                seq,
                digest,
                payload,
                cert,
            };
            out.push(LocalOutput::Persist(LocalRecord::Prepared(proof.clone())));
            slot.prepared = Some(proof);
        }
        if silent {
            return;
        }
        // Castro-Liskov 4.2: prepared(m, v, n) makes us send commit(v, n, d), one per view;
        // an LC gathers q_d commits of one view. Prepared again after a view change, we
        // commit again in the new view, so commits lost with the old primary cost nothing.
        slot.sent_commit = Some((view, digest));
        let signature = signer.sign(Tag::LocalCommit, &commit_payload(lane, view, seq, &digest));
        out.push(LocalOutput::Persist(LocalRecord::CommitSent {
            view,
            seq,
            digest,
        }));
        out.push(LocalOutput::Send {
            to: self.others(),
            message: LocalMessage::Commit {
                lane,
                view,
                seq,
                digest,
                from: self.me,
                signature: signature.clone(),
            },
        });
        self.on_commit(view, seq, digest, self.me, signature, signer, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_commit(
        &mut self,
        view: View,
        seq: Seq,
        digest: Digest,
        from: ReplicaId,
        signature: Signature,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        // Commits of older views still count (a batch committed there is committed), within
        // the views the keeper holds; views ahead are bounded like prepares.
        if !self.config.members.contains(&from)
            || !self.in_window(seq)
            || view > self.view.saturating_add(VIEWS_AHEAD_MAX)
        {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        if slot.commits.add(view, digest, from, signature) {
            self.try_commit(seq, signer, out);
        }
    }

    /// committed-local(m, v, n): q_d matching commits and the payload in hand.
    fn try_commit(&mut self, seq: Seq, signer: &dyn Signer, out: &mut Vec<LocalOutput>) {
        let q = self.q() as usize;
        let lane = self.lane();
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if slot.committed {
            return;
        }
        let Some((view, digest, votes)) = slot.commits.quorum(q) else {
            return;
        };
        assert!(votes.count() >= q, "an LC has q_d commits");
        let Some(payload) = slot
            .accepted
            .as_ref()
            .filter(|a| a.1 == digest)
            .map(|a| a.2.clone())
        else {
            return; // the payload arrives with a pre-prepare, a new-view or a Batch message
        };
        let cert = Certificate {
            signers: votes.signers,
            aggregate: signer.aggregate(&votes.signatures),
        };
        let lc = LocalCert {
            lane,
            view,
            seq,
            digest,
            cert,
        };
        self.adopt_committed(lc, payload, out);
    }

    /// A batch is committed at `lc.seq`, by our own quorum or by an LC a peer sent.
    pub fn adopt_committed(&mut self, lc: LocalCert, payload: Payload, out: &mut Vec<LocalOutput>) {
        assert_eq!(payload.digest(), lc.digest, "LC and payload agree");
        if lc.seq <= self.committed_upto || !self.within_reach(lc.seq) {
            return; // done, or too far ahead to hold: fetched again once we get there
        }
        let slot = self.slots.entry(lc.seq).or_default();
        if slot.committed {
            return;
        }
        slot.committed = true;
        slot.accepted = Some((
            slot.accepted.as_ref().map_or(self.view, |a| a.0),
            lc.digest,
            payload.clone(),
        ));
        slot.lc = Some(lc);
        self.advance_committed(out);
    }

    /// State transfer installed a checkpoint whose cut reaches `lc.seq` in this lane: every
    /// batch up to it is committed and executed, so resume after it without the payloads.
    pub fn skip_to(&mut self, lc: LocalCert) {
        assert_eq!(lc.lane, self.lane(), "an LC of this lane");
        if lc.seq <= self.committed_upto {
            return;
        }
        self.slots.retain(|&seq, _| seq > lc.seq);
        self.committed_upto = lc.seq;
        self.progress_at = self.now;
        self.next_seq = self.next_seq.max(lc.seq.saturating_add(1));
        self.committed_lc = Some(lc);
    }

    /// Emit committed batches in sequence order and move the stable point.
    fn advance_committed(&mut self, out: &mut Vec<LocalOutput>) {
        while let Some(slot) = self
            .slots
            .get(&self.committed_upto.saturating_add(1))
            .filter(|_| self.committed_upto < Seq::MAX)
        {
            let Some(lc) = slot.lc.clone() else { break };
            let payload = slot
                .accepted
                .as_ref()
                .expect("committed slot has its payload")
                .2
                .clone();
            let seq = lc.seq;
            assert_eq!(
                seq,
                self.committed_upto + 1,
                "the stable point moves by one"
            );
            for tx in payload.iter() {
                self.awaited.remove(&tx.key());
                if self.queued_keys.remove(&tx.key()) {
                    self.queue.retain(|(queued, _)| queued.key() != tx.key());
                }
            }
            self.slots.remove(&seq);
            self.committed_upto = seq;
            self.progress_at = self.now;
            self.committed_lc = Some(lc.clone());
            self.next_seq = self.next_seq.max(seq.saturating_add(1));
            out.push(LocalOutput::Committed { lc, payload });
        }
    }

    /// A new primary took over: hand it the requests we still wait for (clients would
    /// retransmit too; this saves them the wait), each with a fresh deadline.
    fn forward_awaited(&mut self, out: &mut Vec<LocalOutput>) {
        let deadline = self.now + self.config.request_timeout_ticks;
        let primary = self.primary_of(self.view);
        let lane = self.lane();
        let mut forwarded = Vec::new();
        for (tx, d, _) in self.awaited.values_mut() {
            *d = deadline;
            forwarded.push(tx.clone());
        }
        if primary == self.me {
            self.awaited.clear();
            forwarded.into_iter().for_each(|tx| {
                self.enqueue(tx);
            });
            return;
        }
        for tx in forwarded {
            out.push(LocalOutput::Send {
                to: vec![primary],
                message: LocalMessage::Forward { lane, tx },
            });
        }
    }

    fn start_view_change(
        &mut self,
        new_view: View,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        if new_view <= self.view || self.is_silent() {
            return;
        }
        // Requests queued while we were primary go to whoever leads next.
        for (tx, _) in std::mem::take(&mut self.queue) {
            if self.awaited.len() < QUEUE_TXS_MAX {
                let deadline = self.now + self.config.request_timeout_ticks;
                self.awaited
                    .entry(tx.key())
                    .or_insert((tx, deadline, false));
            }
        }
        self.queued_keys.clear();
        self.view = new_view;
        self.in_view_change = true;
        self.view_change_started = self.now;
        out.push(LocalOutput::Persist(LocalRecord::View {
            view: new_view,
            in_view_change: true,
        }));
        out.push(LocalOutput::ViewChanged { view: new_view });
        let vc = self.own_view_change(new_view, signer);
        out.push(LocalOutput::Send {
            to: self.others(),
            message: LocalMessage::ViewChange(vc.clone()),
        });
        self.on_view_change(vc, signer, out);
    }

    /// Our signed view-change message for `new_view`: what we committed and prepared.
    fn own_view_change(&self, new_view: View, signer: &dyn Signer) -> ViewChange {
        let prepared: Vec<PreparedProof> = self
            .slots
            .range(self.committed_upto + 1..)
            .filter_map(|(_, slot)| slot.prepared.clone())
            .collect();
        let mut vc = ViewChange {
            lane: self.lane(),
            new_view,
            committed_upto: self.committed_upto,
            committed_lc: self.committed_lc.clone(),
            prepared,
            from: self.me,
            signature: Signature(Vec::new()),
        };
        vc.signature = signer.sign(Tag::LocalViewChange, &vc.payload());
        vc
    }

    fn on_view_change(&mut self, vc: ViewChange, signer: &dyn Signer, out: &mut Vec<LocalOutput>) {
        let from = vc.from;
        if !self.config.members.contains(&from) || vc.new_view < self.view {
            return;
        }
        if vc.new_view > self.view + VIEWS_AHEAD_MAX || !self.view_change_is_valid(&vc) {
            return;
        }
        if vc.committed_upto < self.committed_upto {
            out.push(LocalOutput::PeerBehind {
                peer: from,
                from_seq: vc.committed_upto + 1,
            });
        }
        if vc.new_view == self.view && !self.in_view_change {
            // The sender missed the new-view of our view (lost, or sent during a partition).
            if let Some(new_view) = self.installed_new_view.clone() {
                out.push(LocalOutput::Send {
                    to: vec![from],
                    message: new_view,
                });
            }
            return;
        }
        if vc.committed_upto > self.committed_upto {
            out.push(LocalOutput::NeedBatches {
                upto: vc.committed_upto,
                from,
            });
        }
        let view = vc.new_view;
        self.view_changes.entry(view).or_default().insert(from, vc);
        self.view_changes.retain(|&v, _| v + 1 >= self.view);
        // Join a view change that f_d + 1 members started: one of them is honest (4.5.2).
        let f = self.config.quorum.f as usize;
        if view > self.view || (view == self.view && !self.in_view_change) {
            let ahead: BTreeSet<ReplicaId> = self
                .view_changes
                .range(self.view + 1..)
                .flat_map(|(_, senders)| senders.keys().copied())
                .collect();
            if ahead.len() > f {
                let smallest = *self
                    .view_changes
                    .range(self.view + 1..)
                    .next()
                    .expect("non-empty")
                    .0;
                self.start_view_change(smallest, signer, out);
            }
        }
        self.maybe_send_new_view(view, signer, out);
    }

    /// A view change's certificates pass the door (members of this domain, q_d of them),
    /// and its claims fit the window: sizes are checked before anything is iterated.
    fn view_change_is_valid(&self, vc: &ViewChange) -> bool {
        let rules = &self.config.rules;
        if vc.lane != self.lane() || vc.prepared.len() as u64 > WINDOW_SEQS {
            return false;
        }
        let lc_ok = match &vc.committed_lc {
            None => vc.committed_upto == 0,
            Some(lc) => {
                lc.seq == vc.committed_upto && lc.lane == self.lane() && rules.lc(lc).is_ok()
            }
        };
        let top = vc.committed_upto.saturating_add(WINDOW_SEQS);
        let mut seqs = BTreeSet::new();
        let proofs_ok = vc.prepared.iter().all(|p| {
            p.seq > vc.committed_upto
                && p.seq <= top
                && seqs.insert(p.seq)
                && p.view < vc.new_view
                && p.payload.digest() == p.digest
                && (rules.prepared(self.lane(), p).is_ok() || self.bugs.pbft_no_prepare)
        });
        lc_ok && proofs_ok
    }

    fn maybe_send_new_view(&mut self, view: View, signer: &dyn Signer, out: &mut Vec<LocalOutput>) {
        if self.primary_of(view) != self.me
            || view != self.view
            || self.new_view_sent.contains(&view)
            || self.is_silent()
        {
            return;
        }
        let Some(senders) = self.view_changes.get(&view) else {
            return;
        };
        if senders.len() < self.q() as usize {
            return;
        }
        let view_changes: Vec<ViewChange> =
            senders.values().take(self.q() as usize).cloned().collect();
        let signature = signer.sign(
            Tag::LocalNewView,
            &new_view_payload(self.lane(), view, &view_changes),
        );
        self.new_view_sent.insert(view);
        self.new_view_sent.retain(|&v| v + 1 >= view);
        let message = LocalMessage::NewView {
            lane: self.lane(),
            view,
            view_changes,
            from: self.me,
            signature,
        };
        // Installing our own new-view persists it; only then may it leave.
        self.on_message(message.clone(), signer, out);
        out.push(LocalOutput::Send {
            to: self.others(),
            message,
        });
    }

    /// The new-view decision (paper 4.4): above the highest LC-certified sequence, re-propose
    /// the batch prepared in the highest view, or an empty batch where nothing prepared.
    fn new_view_decision(view_changes: &[ViewChange]) -> (Seq, BTreeMap<Seq, (Digest, Payload)>) {
        let min_s = view_changes
            .iter()
            .map(|vc| vc.committed_upto)
            .max()
            .unwrap_or(0);
        let mut best: BTreeMap<Seq, &PreparedProof> = BTreeMap::new();
        for proof in view_changes
            .iter()
            .flat_map(|vc| vc.prepared.iter())
            .filter(|p| p.seq > min_s)
        {
            let better = best.get(&proof.seq).is_none_or(|b| proof.view > b.view);
            if better {
                best.insert(proof.seq, proof);
            }
        }
        let max_s = best.keys().next_back().copied().unwrap_or(min_s);
        let empty = Payload::empty();
        // Proofs lie within WINDOW_SEQS above their sender's LC, so the range is bounded;
        // an LC at u64::MAX (a domain beyond its fault bound) leaves nothing to decide.
        let decided = (min_s.saturating_add(1)..=max_s)
            .filter(|&seq| seq > min_s)
            .map(|seq| match best.get(&seq) {
                Some(p) => (seq, (p.digest, p.payload.clone())),
                None => (seq, (empty.digest(), empty.clone())),
            })
            .collect();
        (min_s, decided)
    }

    fn on_new_view(
        &mut self,
        view: View,
        view_changes: Vec<ViewChange>,
        from: ReplicaId,
        signature: Signature,
        signer: &dyn Signer,
        out: &mut Vec<LocalOutput>,
    ) {
        if from != self.primary_of(view)
            || view < self.view
            || (view == self.view && !self.in_view_change)
        {
            return;
        }
        let senders: BTreeSet<ReplicaId> = view_changes.iter().map(|vc| vc.from).collect();
        let well_formed = senders.len() == view_changes.len()
            && senders.len() >= self.q() as usize
            && view_changes.iter().all(|vc| {
                vc.new_view == view
                    && self.config.members.contains(&vc.from)
                    && self.view_change_is_valid(vc)
            });
        if !well_formed {
            return;
        }
        let (min_s, decided) = LocalShard::new_view_decision(&view_changes);
        let installed = LocalMessage::NewView {
            lane: self.lane(),
            view,
            view_changes: view_changes.clone(),
            from,
            signature: signature.clone(),
        };
        out.push(LocalOutput::Persist(LocalRecord::NewViewInstalled(
            installed.clone(),
        )));
        self.installed_new_view = Some(installed);
        self.progress_at = self.now;
        self.view = view;
        self.in_view_change = false;
        self.view_change_attempts = 0;
        out.push(LocalOutput::Persist(LocalRecord::View {
            view,
            in_view_change: false,
        }));
        if min_s > self.committed_upto {
            let holder = view_changes
                .iter()
                .find(|vc| vc.committed_upto == min_s)
                .expect("max exists")
                .from;
            out.push(LocalOutput::NeedBatches {
                upto: min_s,
                from: holder,
            });
        }
        self.next_seq = decided
            .keys()
            .next_back()
            .map_or(min_s, |s| *s)
            .max(self.committed_upto)
            .saturating_add(1);
        for slot in self.slots.values_mut() {
            // Votes of views before the previous one can no longer form a certificate.
            slot.prepares.retain_from(view.saturating_sub(1));
            slot.commits.retain_from(view.saturating_sub(1));
        }
        self.forward_awaited(out);
        for (seq, (digest, payload)) in decided {
            if seq <= self.committed_upto
                || !self.within_reach(seq)
                || self.slots.get(&seq).is_some_and(|s| s.committed)
            {
                continue; // far behind: we catch up on the LCs first (NeedBatches above)
            }
            let slot = self.slots.entry(seq).or_default();
            slot.accepted = Some((view, digest, payload.clone()));
            slot.pre_prepare = None;
            out.push(LocalOutput::Persist(LocalRecord::PrePrepare {
                view,
                seq,
                digest,
                payload,
                message: None,
            }));
            // Every member, the new primary included, prepares each decided batch anew.
            self.send_prepare(view, seq, digest, true, signer, out);
            self.check_prepared(seq, signer, out);
        }
    }
}
