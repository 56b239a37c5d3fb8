//! Global tier: chained HotStuff with the two-chain commit of Jolteon / DiemBFT-v4.
//!
//! Rules (DiemBFT-v4 "Safety" module, Jolteon section 4):
//! - vote at most once per round, and only for a block whose round is greater than the last
//!   round voted or timed out in (`last_voted_round`);
//! - safe to vote: the block's QC is from the previous round, or the block carries a TC for
//!   the previous round and its QC is at least as high as every QC in the TC (the lock);
//! - commit a block when its direct child, in the next round, is certified by a QC.
//!
//! The pacemaker moves to round r + 1 on a QC of round r and, on a TC of round r, to the
//! first round of the next leader slot, so a silent leader costs one timeout.

use crate::bugs::PlantedBugs;
use crate::certificates::CertRules;
use crate::crypto::{Bitmap, Certificate, Digest, Signature, Signer, Tag};
use crate::evidence::{Evidence, EVIDENCE_PER_BLOCK_MAX};
use crate::leader::LeaderSchedule;
use crate::messages::{
    timeout_payload, vote_payload, Block, GlobalMessage, Lane, Message, QuorumCert, Round, Seq,
    TimeoutCert,
};
use crate::topology::{Quorum, ReplicaId};
use crate::vote_aggregation::{DomainAggregator, Piece, QuorumCollector, TimeoutKeeper};
use crate::vote_pattern::{LinkSample, VotePattern, VotePatternPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Ticks between requests for the block our highest QC certifies, while we miss it.
pub const BLOCK_REFETCH_TICKS: u64 = 50;
/// Checkpoint heights whose reputation state is kept until execution takes the checkpoint.
pub const REPUTATION_CHECKPOINTS_MAX: usize = 8;
/// SyncRequest rounds (one per BLOCK_REFETCH_TICKS) after installing a checkpoint.
pub const SYNC_REQUESTS_AFTER_INSTALL: u32 = 5;
/// Rounds ahead of ours for which we keep votes and timeouts.
pub const ROUNDS_AHEAD_MAX: u64 = 64;
/// Batches of one lane a block may order beyond its parent.
pub const BATCHES_PER_LANE_PER_BLOCK_MAX: u64 = 256;
/// Proposals held back while we fetch their batches or ancestors.
pub const PENDING_PROPOSALS_MAX: usize = 16;
/// Blocks in one sync response.
pub const SYNC_BLOCKS_MAX: usize = 64;
/// Uncommitted blocks kept in memory.
pub const UNCOMMITTED_BLOCKS_MAX: usize = 4_096;
/// Recent round latencies the adaptive timeout looks at.
pub const LATENCY_WINDOW_ROUNDS: usize = 64;

const _: () = assert!(SYNC_BLOCKS_MAX <= UNCOMMITTED_BLOCKS_MAX);

#[derive(Debug, Clone)]
pub struct GlobalConfig {
    pub me: ReplicaId,
    pub replicas: Vec<ReplicaId>,
    pub quorum: Quorum,
    pub lanes: Vec<Lane>,
    /// Floor and ceiling of the adaptive round timeout, in ticks.
    pub timeout_min_ticks: u64,
    pub timeout_max_ticks: u64,
    /// Ticks per millisecond of simulated or real time (for link samples).
    pub ticks_per_ms: u64,
    /// Members of our domain, who pre-aggregate their votes in the linear pattern.
    pub domain_members: Vec<ReplicaId>,
    /// Ticks an aggregator waits for the rest of its domain before forwarding what it has.
    pub aggregation_wait_ticks: u64,
    /// Blocks between state checkpoints: the schedule's reputation is kept at these heights.
    pub checkpoint_interval_blocks: u64,
    /// The one door every certificate passes (signers and quorum).
    pub rules: Arc<CertRules>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalEvent {
    RoundTimeout {
        round: Round,
        leader: ReplicaId,
    },
    NewRound {
        round: Round,
        via_tc: bool,
    },
    VotePatternSwitched {
        round: Round,
        from: VotePattern,
        to: VotePattern,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalOutput {
    Send {
        to: Vec<ReplicaId>,
        message: GlobalMessage,
    },
    /// Voting state became durable-relevant: must be on disk before the next Send leaves.
    /// The safety state, persisted before the messages that depend on it leave.
    Persist {
        last_voted_round: Round,
        /// A leader never proposes twice in a round, restarts included.
        proposed_round: Round,
        high_qc: QuorumCert,
        /// With `high_qc`, the certificate that brought us to our round: a restart resumes
        /// in the round they enter, never in one no certificate we hold reaches.
        high_tc: Option<TimeoutCert>,
    },
    /// A block is final; emitted once per block, in chain order.
    Commit(Arc<Block>),
    /// We need the batches of `lane` from `first` up to `upto` before we can vote; `from`
    /// holds them. `first` may be below what we hold contiguously: a domain beyond its fault
    /// bound can certify two batches at one sequence, and the block orders the other one.
    NeedBatches {
        lane: usize,
        first: Seq,
        upto: Seq,
        from: ReplicaId,
    },
    Evidence(Evidence),
    Event(GlobalEvent),
}

pub fn genesis_block(lanes: usize) -> Block {
    Block {
        round: 0,
        height: 0,
        parent: [0; 32],
        qc: QuorumCert {
            round: 0,
            block: [0; 32],
            cert: empty_cert(),
        },
        tc: None,
        cut: vec![0; lanes],
        batches: Vec::new(),
        evidence: Vec::new(),
        proposer: 0,
    }
}

fn empty_cert() -> Certificate {
    Certificate {
        signers: Bitmap::default(),
        aggregate: Signature(Vec::new()),
    }
}

pub struct Global {
    config: GlobalConfig,
    bugs: PlantedBugs,
    schedule: LeaderSchedule,
    policy: VotePatternPolicy,
    // Durable (persisted before the messages that depend on them leave).
    last_voted_round: Round,
    high_qc: QuorumCert,
    blocks: BTreeMap<Digest, Arc<Block>>,
    committed: Arc<Block>,
    // Volatile.
    round: Round,
    round_started: u64,
    high_tc: Option<TimeoutCert>,
    votes: QuorumCollector,
    aggregator: DomainAggregator,
    /// Our vote sent to our domain's aggregator, and when to send it to the leader directly
    /// if the round has not moved on by then (the aggregator may be faulty).
    direct_fallback: Option<(GlobalMessage, u64)>,
    voted_by: BTreeMap<(Round, ReplicaId), GlobalMessage>,
    /// The block each signer's votes back in a round, over single votes and domain pieces:
    /// a signer backs one block per round, so at most n vote targets exist per round.
    backed: BTreeMap<(Round, ReplicaId), Digest>,
    timeouts: TimeoutKeeper,
    proposals_seen: BTreeMap<Round, GlobalMessage>,
    pending: Vec<Arc<Block>>,
    proposed_round: Round,
    /// Equivocation proofs waiting to be committed, one per offender (at most n).
    accusations: BTreeMap<ReplicaId, Evidence>,
    /// SyncRequests still to send after a state transfer.
    sync_requests_left: u32,
    /// Reputation state right after committing each recent checkpoint height.
    reputation_at: BTreeMap<u64, Vec<u8>>,
    /// Highest contiguous sequence held per lane.
    available: Vec<Seq>,
    /// Digests of the committed batches we hold, above the committed cut.
    held: BTreeMap<(usize, Seq), Vec<Digest>>,
    round_latencies: Vec<u64>,
    /// Ticks proposals waited for their batches, and since when one waits now.
    payload_latencies: Vec<u64>,
    pending_since: Option<u64>,
    /// A restore replays records: propose nothing until it is done.
    replaying: bool,
    /// Rejoined after a disk loss: no vote, timeout or proposal in a round below this
    /// ([`Global::rejoin_floor`]; `Round::MAX` while it is being learned).
    silent_below: Round,
    /// Rounds to keep moving without batches, for a peer that rejoins ([`Global::answered_rejoin`]).
    rejoin_work_until: Round,
    now: u64,
}

impl Global {
    pub fn new(
        config: GlobalConfig,
        schedule: LeaderSchedule,
        policy: VotePatternPolicy,
        bugs: PlantedBugs,
    ) -> Global {
        let genesis = Arc::new(genesis_block(config.lanes.len()));
        let genesis_digest = genesis.digest();
        assert_eq!(genesis_digest, config.rules.genesis(), "one genesis block");
        let lanes = config.lanes.len();
        Global {
            bugs,
            schedule,
            policy,
            last_voted_round: 0,
            high_qc: config.rules.genesis_qc(),
            blocks: BTreeMap::from([(genesis_digest, genesis.clone())]),
            committed: genesis,
            round: 1,
            round_started: 0,
            high_tc: None,
            votes: QuorumCollector::default(),
            aggregator: DomainAggregator::new(
                config.domain_members.clone(),
                config.aggregation_wait_ticks,
            ),
            direct_fallback: None,
            voted_by: BTreeMap::new(),
            backed: BTreeMap::new(),
            timeouts: TimeoutKeeper::default(),
            proposals_seen: BTreeMap::new(),
            pending: Vec::new(),
            proposed_round: 0,
            accusations: BTreeMap::new(),
            sync_requests_left: 0,
            reputation_at: BTreeMap::new(),
            available: vec![0; lanes],
            held: BTreeMap::new(),
            round_latencies: Vec::new(),
            payload_latencies: Vec::new(),
            pending_since: None,
            replaying: false,
            silent_below: 0,
            rejoin_work_until: 0,
            now: 0,
            config,
        }
    }

    /// Restore: the safety state recorded at a vote, timeout or proposal (never lowered).
    pub fn replay_safety(
        &mut self,
        last_voted_round: Round,
        proposed_round: Round,
        high_qc: QuorumCert,
        high_tc: Option<TimeoutCert>,
    ) {
        self.replaying = true;
        self.last_voted_round = self.last_voted_round.max(last_voted_round);
        self.proposed_round = self.proposed_round.max(proposed_round);
        if high_qc.round > self.high_qc.round {
            self.high_qc = high_qc;
        }
        if high_tc.as_ref().map(|tc| tc.round) > self.high_tc.as_ref().map(|tc| tc.round) {
            self.high_tc = high_tc;
        }
    }

    fn persist_safety(&self, out: &mut Vec<GlobalOutput>) {
        out.push(GlobalOutput::Persist {
            last_voted_round: self.last_voted_round,
            proposed_round: self.proposed_round,
            high_qc: self.high_qc.clone(),
            high_tc: self.high_tc.clone(),
        });
    }

    /// The round our certificates bring us to. Our round is always this: rounds move only
    /// by certificates (a restart included), so a replica has voted or timed out only in
    /// rounds its durable certificates reach, which is what a rejoining peer learns its
    /// floor from.
    pub fn entry_round(&self) -> Round {
        self.entry_of(&self.high_qc, self.high_tc.as_ref())
    }

    /// The round a QC and a TC bring a replica to.
    pub fn entry_of(&self, qc: &QuorumCert, tc: Option<&TimeoutCert>) -> Round {
        let by_qc = qc.round.saturating_add(1);
        let by_tc = tc.map_or(0, |tc| self.schedule.next_slot_start(tc.round));
        by_qc.max(by_tc)
    }

    pub fn high_tc(&self) -> Option<&TimeoutCert> {
        self.high_tc.as_ref()
    }

    /// The global floor of a replica that lost its disk, from `entry`, the highest round
    /// that the certificates of n - q + f + 1 other replicas enter (each answering after the
    /// loss). Its last round x was entered by a certificate whose q signers include an honest
    /// answerer, who signed in a round at least x - 1 (a QC of x - 1) or t (a TC of t, x its
    /// next slot start), so x <= next_slot_start(entry). A timeout in x gave up every round
    /// before next_slot_start(x): it voted in no round at or above the floor returned.
    pub fn rejoin_floor(&self, entry: Round) -> Round {
        let schedule = &self.schedule;
        schedule.next_slot_start(schedule.next_slot_start(entry))
    }

    /// Rejoining after a disk loss: no vote, timeout or proposal until the floor is known.
    pub fn silence(&mut self) {
        self.silent_below = Round::MAX;
    }

    /// The floor is known: vote, time out and propose only in rounds at or above it. The
    /// answers' certificates are taken in as any others.
    pub fn rejoin_at(
        &mut self,
        floor: Round,
        certificates: Vec<(QuorumCert, Option<TimeoutCert>)>,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        assert!(floor >= 1, "a floor is a round");
        self.replay_rejoin(floor);
        self.persist_safety(out);
        for (high_qc, high_tc) in certificates {
            self.on_sync(high_qc, high_tc, signer, out);
        }
        self.sync_requests_left = self.sync_requests_left.max(SYNC_REQUESTS_AFTER_INSTALL);
    }

    /// The floor a rejoin learned (`Round::MAX`: not learned yet), at restore or as learned.
    pub fn replay_rejoin(&mut self, floor: Round) {
        self.silent_below = floor;
        if floor != Round::MAX {
            self.last_voted_round = self.last_voted_round.max(floor - 1);
            self.proposed_round = self.proposed_round.max(floor - 1);
        }
    }

    /// Still below the floor of a rejoin: our certificates do not yet reach it, so they do
    /// not bound what we signed before the disk loss (we answer no rejoining peer then).
    pub fn rejoining(&self) -> bool {
        self.entry_round() < self.silent_below
    }

    /// A rejoined replica times out only at or above its floor, and only with a QC at least
    /// as high as the TC that brought it to its round claims: that TC holds an honest member
    /// of any quorum that certified a block we voted to extend before the disk loss, so the
    /// lock we lost is restored before a timeout of ours could hide it. (Entered by a QC, our
    /// QC is above every round we voted in before.)
    fn may_time_out(&self) -> bool {
        if self.silent_below == 0 {
            return true;
        }
        let claimed = self
            .high_tc
            .as_ref()
            .map_or(0, TimeoutCert::max_high_qc_round);
        self.round >= self.silent_below && self.high_qc.round >= claimed
    }

    /// Restore: a block recorded final, in chain order. True if it extends what we hold
    /// (an installed snapshot may already be past it).
    pub fn replay_commit(&mut self, block: Arc<Block>) -> bool {
        self.replaying = true;
        if block.height <= self.committed.height {
            return false;
        }
        assert_eq!(
            block.parent,
            self.committed.digest(),
            "records keep the chain order"
        );
        self.blocks.insert(block.digest(), block.clone());
        self.commit_one(block);
        true
    }

    /// Restore done: resume in the round our certificates enter. No message we sent was in a
    /// later round: each waited for the records of the certificates that had moved us.
    pub fn restored(&mut self) {
        self.replaying = false;
        self.round = self.entry_round();
        self.proposed_round = self.proposed_round.max(self.last_voted_round);
        self.prune();
    }

    /// One line of state for traces.
    pub fn describe(&self) -> String {
        format!(
            "round {} voted {} high_qc {} committed h{} cut {:?} available {:?} pending {} leader(next) r{}",
            self.round,
            self.last_voted_round,
            self.high_qc.round,
            self.committed.height,
            self.committed.cut,
            self.available,
            self.pending.len(),
            self.schedule.leader(self.round)
        )
    }

    pub fn high_qc_round(&self) -> Round {
        self.high_qc.round
    }

    /// Votes and timeouts are never sent at or below this round again.
    pub fn last_voted_round(&self) -> Round {
        self.last_voted_round
    }

    pub fn round(&self) -> Round {
        self.round
    }

    pub fn committed(&self) -> &Arc<Block> {
        &self.committed
    }

    pub fn vote_pattern(&self) -> VotePattern {
        self.policy.current()
    }

    pub fn schedule(&self) -> &LeaderSchedule {
        &self.schedule
    }

    pub fn schedule_mut(&mut self) -> &mut LeaderSchedule {
        &mut self.schedule
    }

    fn q(&self) -> usize {
        self.config.quorum.q as usize
    }

    fn others(&self) -> Vec<ReplicaId> {
        self.config
            .replicas
            .iter()
            .copied()
            .filter(|&r| r != self.config.me)
            .collect()
    }

    /// Evidence found by this replica. Proofs of equivocation wait to be put into a block we
    /// propose; committing it excludes the offender from leading on every honest replica.
    pub fn accuse(&mut self, evidence: Evidence) {
        let offender = evidence.offender();
        // Evidence nested past what a block may carry (a proposal that already carries the
        // deepest evidence, equivocated) would make our blocks undecodable: keep it out.
        if evidence.proof().is_some()
            && self.config.replicas.contains(&offender)
            && !self.schedule.is_misbehaving(offender)
            && evidence.wire_nesting() <= crate::evidence::EVIDENCE_NESTING_MAX
        {
            self.accusations.entry(offender).or_insert(evidence);
        }
    }

    /// Accusations not yet carried by `parent` or its uncommitted ancestors.
    fn accusations_for(&self, parent: &Block) -> Vec<Evidence> {
        let mut carried = Vec::new();
        let mut block = Some(parent);
        while let Some(b) = block.filter(|b| b.height > self.committed.height) {
            carried.extend(b.evidence.iter().map(Evidence::offender));
            block = self.blocks.get(&b.parent).map(|p| p.as_ref());
        }
        self.accusations
            .iter()
            .filter(|(offender, _)| !carried.contains(offender))
            .map(|(_, evidence)| evidence.clone())
            .take(EVIDENCE_PER_BLOCK_MAX)
            .collect()
    }

    /// We hold an LC-certified batch. Feeds the proposer's cut and the voter's availability check.
    pub fn on_batch_held(
        &mut self,
        lane: usize,
        seq: Seq,
        digest: Digest,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if seq <= self.committed.cut[lane] {
            return;
        }
        let versions = self.held.entry((lane, seq)).or_default();
        if !versions.contains(&digest) {
            versions.push(digest);
        }
        self.available[lane] = self.available[lane].max(self.committed.cut[lane]);
        let before = self.available[lane];
        while self.held.contains_key(&(lane, self.available[lane] + 1)) {
            self.available[lane] += 1;
        }
        if self.available[lane] > before {
            self.retry_pending(signer, out);
            self.maybe_propose(signer, out);
        } else {
            self.retry_pending(signer, out);
        }
    }

    /// Batches at or below the committed cut executed already; the rest we must hold.
    fn holds(&self, lane: usize, seq: Seq, digest: &Digest) -> bool {
        seq <= self.committed.cut[lane]
            || self
                .held
                .get(&(lane, seq))
                .is_some_and(|v| v.contains(digest))
    }

    /// Work is outstanding when we hold batches not yet ordered, or certified content that
    /// is not final yet.
    fn has_work(&self) -> bool {
        let ordered = &self.committed.cut;
        self.available.iter().zip(ordered).any(|(a, o)| a > o)
            || self.certified_content_pending()
            || self.round < self.rejoin_work_until
    }

    /// We answered a rejoining peer: its floor lies at most two leader slots above the
    /// round the answers enter, and it votes only once the cluster is there, so keep the
    /// rounds moving (empty blocks) a slot beyond that even if no batch comes.
    pub fn answered_rejoin(&mut self) {
        let floor = self.rejoin_floor(self.entry_round());
        let until = self.schedule.next_slot_start(floor);
        self.rejoin_work_until = self.rejoin_work_until.max(until);
    }

    /// The highest certified block or its parent orders batches and is not committed: one
    /// more block (carrying that QC) is needed to make them final everywhere. Empty blocks
    /// beyond that would only spin.
    fn certified_content_pending(&self) -> bool {
        let Some(certified) = self.blocks.get(&self.high_qc.block) else {
            return false;
        };
        let pending =
            |block: &Block| block.height > self.committed.height && !block.batches.is_empty();
        let parent_pending = self
            .blocks
            .get(&certified.parent)
            .is_some_and(|p| pending(p));
        pending(certified) || parent_pending
    }

    /// The pacemaker's round timeout, adapted to observed latency and kept apart for the two
    /// kinds of waiting: coordination (proposal, votes: 3 x p99 of recent rounds) and, while
    /// we hold a proposal back for its batches, payload transfer (2 x p99 of recent fetches).
    fn timeout_ticks(&self) -> u64 {
        let coordination = (p99(&self.round_latencies) * 3)
            .clamp(self.config.timeout_min_ticks, self.config.timeout_max_ticks);
        let payload = match self.pending_since {
            Some(_) => p99(&self.payload_latencies) * 2,
            None => 0,
        };
        (coordination + payload).min(self.config.timeout_max_ticks)
    }

    pub fn on_tick(&mut self, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        self.now += 1;
        for (round, block, piece) in self.aggregator.on_tick(self.now, signer) {
            self.forward_piece(round, block, piece, out);
        }
        self.send_direct_if_stalled(out);
        self.refetch_certified_block(out);
        self.ask_for_newer_certificates(out);
        if !self.has_work() {
            self.round_started = self.now;
            return;
        }
        self.maybe_propose(signer, out);
        if self.now >= self.round_started + self.timeout_ticks() {
            self.local_timeout(signer, out);
        }
    }

    /// We hold a QC for a block we do not have (the answer to our request was lost, or came
    /// from a peer that had truncated it): ask again, from other signers each time, or a
    /// replica that caught up by state transfer into a quiet cluster never commits the tail.
    fn refetch_certified_block(&mut self, out: &mut Vec<GlobalOutput>) {
        if self.high_qc.is_genesis()
            || self.blocks.contains_key(&self.high_qc.block)
            || !self.now.is_multiple_of(BLOCK_REFETCH_TICKS)
        {
            return;
        }
        let signers: Vec<ReplicaId> = self
            .high_qc
            .cert
            .signers
            .ids()
            .filter(|&r| r != self.config.me)
            .collect();
        if signers.is_empty() {
            return;
        }
        let first = (self.now / BLOCK_REFETCH_TICKS) as usize % signers.len();
        let to = signers
            .iter()
            .cycle()
            .skip(first)
            .take(2.min(signers.len()));
        out.push(GlobalOutput::Send {
            to: to.copied().collect(),
            message: GlobalMessage::BlockRequest {
                block: self.high_qc.block,
                from: self.config.me,
            },
        });
    }

    /// After a state transfer the cluster may have gone quiet: no proposal or timeout will
    /// bring us the QCs above the checkpoint, so ask for them a few times.
    fn ask_for_newer_certificates(&mut self, out: &mut Vec<GlobalOutput>) {
        if self.sync_requests_left == 0 || !self.now.is_multiple_of(BLOCK_REFETCH_TICKS) {
            return;
        }
        self.sync_requests_left -= 1;
        out.push(GlobalOutput::Send {
            to: self.others(),
            message: GlobalMessage::SyncRequest {
                round: self.high_qc.round,
                from: self.config.me,
            },
        });
    }

    /// on_round_timeout: stop voting in this round and broadcast a timeout vote with our
    /// highest QC (Jolteon: safe to time out only for the current round).
    ///
    /// A TC of round r moves the pacemaker to the next slot's first round s, not to r + 1,
    /// so a timeout vote also gives up voting in every round before s. Without that, a QC
    /// could form in a skipped round (r < round < s) that the TC's highest-QC rule does not
    /// see, and a block at s extending an older QC would fork a committed block (simulator
    /// seed 18, n=4, delayed votes). With it, TC(r) plays the role of Jolteon's TC(s - 1).
    fn local_timeout(&mut self, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        if !self.may_time_out() {
            return;
        }
        let round = self.round;
        let skipped_to = self.schedule.next_slot_start(round) - 1;
        self.last_voted_round = self.last_voted_round.max(skipped_to);
        self.round_started = self.now;
        self.persist_safety(out);
        out.push(GlobalOutput::Event(GlobalEvent::RoundTimeout {
            round,
            leader: self.schedule.leader(round),
        }));
        let signature = signer.sign(Tag::Timeout, &timeout_payload(round, self.high_qc.round));
        let message = GlobalMessage::Timeout {
            round,
            high_qc: self.high_qc.clone(),
            last_tc: self.high_tc.clone(),
            from: self.config.me,
            signature,
        };
        out.push(GlobalOutput::Send {
            to: self.others(),
            message: message.clone(),
        });
        self.on_message(message, signer, out);
    }

    pub fn on_message(
        &mut self,
        message: GlobalMessage,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        match message {
            GlobalMessage::Proposal { ref block, .. } => {
                let block = block.clone();
                self.on_proposal(block, message, signer, out)
            }
            GlobalMessage::Vote {
                round,
                block,
                from,
                ref signature,
            } => {
                let signature = signature.clone();
                self.on_vote(round, block, from, signature, message, signer, out)
            }
            GlobalMessage::DomainVote {
                round, block, cert, ..
            } => self.on_piece(round, block, cert, signer, out),
            GlobalMessage::Timeout {
                round,
                high_qc,
                last_tc,
                from,
                signature,
            } => {
                if let Some(tc) = last_tc {
                    self.process_tc(tc, signer, out);
                }
                self.on_timeout(round, high_qc, from, signature, signer, out)
            }
            GlobalMessage::Sync { high_qc, high_tc } => self.on_sync(high_qc, high_tc, signer, out),
            GlobalMessage::BlockRequest { block, from } => self.on_block_request(block, from, out),
            GlobalMessage::SyncRequest { round, from } => self.on_sync_request(round, from, out),
            GlobalMessage::BlockResponse { blocks } => self.on_block_response(blocks, signer, out),
        }
    }

    /// A peer's highest certificates: each goes through the door like any other.
    fn on_sync(
        &mut self,
        high_qc: QuorumCert,
        high_tc: Option<TimeoutCert>,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if let Some(tc) = high_tc {
            self.process_tc(tc, signer, out);
        }
        self.process_qc(high_qc, signer, out);
    }

    /// A peer behind `round` asks for our highest certificates (only when we have newer).
    fn on_sync_request(&mut self, round: Round, from: ReplicaId, out: &mut Vec<GlobalOutput>) {
        if self.high_qc.round > round && from != self.config.me {
            out.push(GlobalOutput::Send {
                to: vec![from],
                message: GlobalMessage::Sync {
                    high_qc: self.high_qc.clone(),
                    high_tc: self.high_tc.clone(),
                },
            });
        }
    }

    fn on_proposal(
        &mut self,
        block: Arc<Block>,
        message: GlobalMessage,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if block.round.saturating_add(ROUNDS_AHEAD_MAX) < self.round {
            return;
        }
        if let Err(reason) = self.certificates_valid(&block) {
            out.push(GlobalOutput::Evidence(Evidence::InvalidProposal {
                offender: block.proposer,
                reason,
                message: Box::new(Message::Global(message)),
            }));
            return;
        }
        if block.round > self.round.saturating_add(ROUNDS_AHEAD_MAX) {
            // Far behind (a partition healed while no round times out): keep nothing of
            // the proposal, but its verified QC is a safe way to catch up.
            self.process_qc(block.qc.clone(), signer, out);
            return;
        }
        if block.proposer != self.schedule.leader(block.round) {
            // Not the leader we compute (our schedule may lag, e.g. after a state transfer):
            // no vote, but the verified QC it carries still moves us forward.
            self.process_qc(block.qc.clone(), signer, out);
            return;
        }
        if let Some(first) = self.proposals_seen.get(&block.round) {
            if first != &message {
                out.push(GlobalOutput::Evidence(Evidence::Equivocation {
                    offender: block.proposer,
                    first: Box::new(Message::Global(first.clone())),
                    second: Box::new(Message::Global(message)),
                }));
                return;
            }
        } else {
            self.proposals_seen.insert(block.round, message.clone());
            self.proposals_seen
                .retain(|&r, _| r + ROUNDS_AHEAD_MAX >= block.round);
        }
        // The certificates a proposal carries move us forward even if we cannot vote.
        self.process_qc(block.qc.clone(), signer, out);
        if let Some(tc) = &block.tc {
            self.process_tc(tc.clone(), signer, out);
        }
        self.consider(block, signer, out);
    }

    /// Vote for a block once its parent and batches are here; hold it back until then.
    fn consider(&mut self, block: Arc<Block>, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        let Some(parent) = self.blocks.get(&block.parent).cloned() else {
            self.hold(block.clone());
            out.push(GlobalOutput::Send {
                to: vec![block.proposer],
                message: GlobalMessage::BlockRequest {
                    block: block.parent,
                    from: self.config.me,
                },
            });
            return;
        };
        if let Err(reason) = self.well_formed(&block, &parent) {
            out.push(GlobalOutput::Evidence(Evidence::InvalidProposal {
                offender: block.proposer,
                reason,
                message: Box::new(Message::Global(GlobalMessage::Proposal {
                    block: block.clone(),
                    signature: Signature(Vec::new()),
                })),
            }));
            return;
        }
        self.store_block(block.clone());
        let missing = block.first_missing(&parent.cut, |lane, seq, digest| {
            self.holds(lane, seq, digest)
        });
        if !missing.is_empty() {
            for (lane, first) in missing {
                out.push(GlobalOutput::NeedBatches {
                    lane,
                    first,
                    upto: block.cut[lane],
                    from: block.proposer,
                });
            }
            self.hold(block);
            return;
        }
        self.vote(&block, signer, out);
    }

    /// Hold a proposal back while its parent or batches arrive. Full, keep the lowest
    /// rounds: a leader with proposals for many rounds ahead cannot push out the one that
    /// the current round needs.
    fn hold(&mut self, block: Arc<Block>) {
        if self.pending.contains(&block) {
            return;
        }
        if self.pending.len() >= PENDING_PROPOSALS_MAX {
            let highest = (0..self.pending.len()).max_by_key(|&i| self.pending[i].round);
            match highest {
                Some(i) if self.pending[i].round > block.round => {
                    self.pending.swap_remove(i);
                }
                _ => return,
            }
        }
        self.pending.push(block);
        self.pending_since.get_or_insert(self.now);
    }

    fn retry_pending(&mut self, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        let pending = std::mem::take(&mut self.pending);
        for block in pending {
            if block.round >= self.round && block.round > self.last_voted_round {
                self.consider(block, signer, out);
            }
        }
        if self.pending.is_empty() {
            if let Some(since) = self.pending_since.take() {
                push_bounded(&mut self.payload_latencies, self.now - since);
            }
        }
    }

    fn well_formed(&self, block: &Block, parent: &Block) -> Result<(), String> {
        if block.qc.block != block.parent {
            return Err("QC does not certify the parent".into());
        }
        if block.height != parent.height + 1 || block.round <= parent.round {
            return Err("height or round does not follow the parent".into());
        }
        if block.cut.len() != self.config.lanes.len() {
            return Err("cut has the wrong number of lanes".into());
        }
        let ordered: u64 = block
            .cut
            .iter()
            .zip(&parent.cut)
            .map(|(c, b)| c.saturating_sub(*b))
            .sum();
        if ordered != block.batches.len() as u64 {
            return Err("batch digests do not match the cut".into());
        }
        if block.evidence.len() > EVIDENCE_PER_BLOCK_MAX {
            return Err(format!(
                "more than {EVIDENCE_PER_BLOCK_MAX} pieces of evidence"
            ));
        }
        if block.evidence.iter().any(|e| e.proof().is_none()) {
            return Err("evidence that proves nothing".into());
        }
        for (lane, (&seq, &before)) in block.cut.iter().zip(&parent.cut).enumerate() {
            if seq < before {
                return Err(format!(
                    "cut of lane {lane} goes back from {before} to {seq}"
                ));
            }
            if seq - before > BATCHES_PER_LANE_PER_BLOCK_MAX {
                return Err(format!(
                    "cut of lane {lane} orders more than {BATCHES_PER_LANE_PER_BLOCK_MAX} batches"
                ));
            }
        }
        Ok(())
    }

    /// safe_to_vote (DiemBFT-v4 Safety::safe_to_vote).
    fn safe_to_vote(&self, block: &Block) -> bool {
        if block.round <= self.last_voted_round {
            return false;
        }
        if self.bugs.ignore_lock {
            return true;
        }
        let consecutive = block.round == block.qc.round + 1;
        // A TC of round t is used at the next slot's start s; the timeout votes behind it gave
        // up every round before s (see `local_timeout`), so it plays Jolteon's TC of s - 1.
        let after_tc = block.tc.as_ref().is_some_and(|tc| {
            self.config.rules.tc(tc).is_ok()
                && block.round == self.schedule.next_slot_start(tc.round)
                && block.qc.round >= tc.max_high_qc_round()
        });
        consecutive || after_tc
    }

    /// The QC and TC a block carries pass the door (signers, quorum, genesis).
    fn certificates_valid(&self, block: &Block) -> Result<(), String> {
        self.config
            .rules
            .qc(&block.qc)
            .map_err(|e| format!("QC: {e}"))?;
        if let Some(tc) = &block.tc {
            self.config.rules.tc(tc).map_err(|e| format!("TC: {e}"))?;
        }
        Ok(())
    }

    fn vote(&mut self, block: &Arc<Block>, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        if block.round != self.round || block.round < self.silent_below || !self.safe_to_vote(block)
        {
            return;
        }
        assert!(
            block.round > self.last_voted_round,
            "the last voted round only grows"
        );
        self.last_voted_round = block.round;
        if !self.bugs.skip_persist_vote {
            self.persist_safety(out);
        }
        let digest = block.digest();
        let signature = signer.sign(Tag::GlobalVote, &vote_payload(block.round, &digest));
        let message = GlobalMessage::Vote {
            round: block.round,
            block: digest,
            from: self.config.me,
            signature,
        };
        let (to, via_aggregator) = self.vote_recipients(block.round);
        if via_aggregator {
            let at = self.now + (self.timeout_ticks() / 2).max(1);
            self.direct_fallback = Some((message.clone(), at));
        }
        let (local, remote): (Vec<ReplicaId>, Vec<ReplicaId>) =
            to.into_iter().partition(|&r| r == self.config.me);
        if !remote.is_empty() {
            out.push(GlobalOutput::Send {
                to: remote,
                message: message.clone(),
            });
        }
        if !local.is_empty() {
            self.on_message(message, signer, out);
        }
    }

    /// Linear: to the next leader, through our domain's aggregator unless the leader is in
    /// our domain. All-to-all: everyone. True when the vote goes through the aggregator
    /// (then it also goes direct if the round stalls).
    fn vote_recipients(&self, round: Round) -> (Vec<ReplicaId>, bool) {
        if self.policy.current() == VotePattern::AllToAll {
            return (self.config.replicas.clone(), false);
        }
        let leader = self.schedule.leader(round + 1);
        if self.aggregator.is_member(leader) {
            (vec![leader], false)
        } else {
            (vec![self.aggregator.aggregator(round)], true)
        }
    }

    /// Our vote went to our domain's aggregator and the round has not moved on within half
    /// a timeout: send it to the leader directly.
    fn send_direct_if_stalled(&mut self, out: &mut Vec<GlobalOutput>) {
        let Some((GlobalMessage::Vote { round, .. }, at)) = &self.direct_fallback else {
            return;
        };
        let (round, at) = (*round, *at);
        if self.round > round {
            self.direct_fallback = None;
        } else if self.now >= at {
            let (message, _) = self.direct_fallback.take().expect("checked above");
            out.push(GlobalOutput::Send {
                to: vec![self.schedule.leader(round + 1)],
                message,
            });
        }
    }

    /// We aggregate our domain's votes of `round` when the next leader is elsewhere.
    fn aggregates(&self, round: Round, from: ReplicaId) -> bool {
        self.policy.current() == VotePattern::Linear
            && self.aggregator.aggregator(round) == self.config.me
            && self.aggregator.is_member(from)
            && !self.aggregator.is_member(self.schedule.leader(round + 1))
    }

    fn forward_piece(
        &self,
        round: Round,
        block: Digest,
        piece: Piece,
        out: &mut Vec<GlobalOutput>,
    ) {
        out.push(GlobalOutput::Send {
            to: vec![self.schedule.leader(round + 1)],
            message: GlobalMessage::DomainVote {
                round,
                block,
                cert: piece,
                from: self.config.me,
            },
        });
    }

    fn vote_round_open(&self, round: Round) -> bool {
        round.saturating_add(1) >= self.round
            && round <= self.round.saturating_add(ROUNDS_AHEAD_MAX)
            && round > self.high_qc.round
    }

    /// A verified piece of votes (one vote or one domain's aggregate) towards a QC.
    fn on_piece(
        &mut self,
        round: Round,
        block: Digest,
        piece: Piece,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if !self.vote_round_open(round) || self.config.rules.vote_piece(&piece).is_err() {
            return;
        }
        let conflicting = piece
            .signers
            .ids()
            .any(|id| self.backed.get(&(round, id)).is_some_and(|b| *b != block));
        if conflicting {
            return; // a signer in it backs another block this round (proven for single votes)
        }
        for id in piece.signers.ids() {
            self.backed.insert((round, id), block);
        }
        if let Some(cert) = self.votes.add(round, block, piece, self.q(), signer) {
            assert!(
                cert.signers.count() >= self.config.quorum.q,
                "a QC has q signers"
            );
            self.process_qc(QuorumCert { round, block, cert }, signer, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_vote(
        &mut self,
        round: Round,
        block: Digest,
        from: ReplicaId,
        signature: Signature,
        message: GlobalMessage,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if !self.vote_round_open(round) {
            return;
        }
        if let Some(first) = self.voted_by.get(&(round, from)) {
            if first != &message {
                out.push(GlobalOutput::Evidence(Evidence::Equivocation {
                    offender: from,
                    first: Box::new(Message::Global(first.clone())),
                    second: Box::new(Message::Global(message)),
                }));
            }
            return;
        }
        self.voted_by.insert((round, from), message);
        if self.aggregates(round, from) {
            let piece =
                self.aggregator
                    .add(round, block, from, signature.clone(), self.now, signer);
            if let Some(piece) = piece {
                self.forward_piece(round, block, piece, out);
            }
        }
        let mut signers = Bitmap::default();
        signers.insert(from);
        let piece = Piece {
            signers,
            aggregate: signature,
        };
        self.on_piece(round, block, piece, signer, out);
    }

    fn on_timeout(
        &mut self,
        round: Round,
        high_qc: QuorumCert,
        from: ReplicaId,
        signature: Signature,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if high_qc.round >= round || self.config.rules.qc(&high_qc).is_err() {
            // A QC from the timed-out round or later, or one that is not a certificate: the
            // claimed round would go into our TC, and no leader could extend a QC that
            // does not exist. Drop the vote.
            return;
        }
        self.process_qc(high_qc.clone(), signer, out);
        if round < self.round {
            // The sender is behind: hand it the certificates that moved us on.
            let message = GlobalMessage::Sync {
                high_qc: self.high_qc.clone(),
                high_tc: self.high_tc.clone(),
            };
            out.push(GlobalOutput::Send {
                to: vec![from],
                message,
            });
            return;
        }
        if round > self.round.saturating_add(ROUNDS_AHEAD_MAX) {
            return;
        }
        let count = self.timeouts.add(round, from, high_qc.round, signature);
        // Join a timeout that f + 1 replicas reported: one of them is honest (Bracha).
        let sent = self.timeouts.has_timed_out(round, self.config.me);
        if count > self.config.quorum.f as usize && round == self.round && !sent {
            self.local_timeout(signer, out);
        }
        // Our own timeout may just have formed the TC and moved us past this round; then the
        // keeper no longer holds it and this finds nothing.
        if let Some(tc) = self.timeouts.certificate(round, self.q()) {
            self.process_tc(tc, signer, out);
        }
    }

    fn process_tc(&mut self, tc: TimeoutCert, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        if self.config.rules.tc(&tc).is_err() {
            return;
        }
        let next = self.schedule.next_slot_start(tc.round);
        if next <= self.round {
            return;
        }
        self.high_tc = Some(tc);
        self.persist_safety(out);
        self.enter_round(next, true, signer, out);
    }

    /// Take in a QC: raise the lock, apply the commit rule, move to the next round.
    fn process_qc(&mut self, qc: QuorumCert, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        if self.config.rules.qc(&qc).is_err() || qc.is_genesis() {
            return;
        }
        if qc.round > self.high_qc.round {
            self.high_qc = qc.clone();
            self.persist_safety(out);
        }
        match self.blocks.get(&qc.block).cloned() {
            Some(certified) => self.apply_commit_rule(&certified, out),
            None => out.push(GlobalOutput::Send {
                to: qc
                    .cert
                    .signers
                    .ids()
                    .filter(|&r| r != self.config.me)
                    .take(2)
                    .collect(),
                message: GlobalMessage::BlockRequest {
                    block: qc.block,
                    from: self.config.me,
                },
            }),
        }
        if qc.round >= self.round {
            self.record_round_latency();
            self.high_tc = None;
            self.enter_round(qc.round + 1, false, signer, out);
        }
    }

    /// Two-chain rule: a certified block whose parent is from the previous round commits
    /// the parent (Jolteon). The planted bug commits the certified block itself.
    fn apply_commit_rule(&mut self, certified: &Arc<Block>, out: &mut Vec<GlobalOutput>) {
        if self.bugs.commit_one_chain {
            self.commit(certified.clone(), out);
            return;
        }
        let Some(parent) = self.blocks.get(&certified.parent).cloned() else {
            return;
        };
        if certified.round == parent.round + 1 && parent.height > 0 {
            self.commit(parent, out);
        }
    }

    fn commit(&mut self, target: Arc<Block>, out: &mut Vec<GlobalOutput>) {
        if target.height <= self.committed.height {
            return;
        }
        let mut chain = vec![target.clone()];
        while chain.last().expect("non-empty").height > self.committed.height + 1 {
            let parent = chain.last().expect("non-empty").parent;
            match self.blocks.get(&parent) {
                Some(block) => chain.push(block.clone()),
                None => {
                    // An ancestor is missing: fetch the chain below it; we retry on arrival.
                    let below = chain.last().expect("non-empty");
                    let mut ask: Vec<ReplicaId> = [below.proposer, target.proposer]
                        .into_iter()
                        .filter(|&r| r != self.config.me)
                        .collect();
                    ask.dedup(); // one request per peer
                    out.push(GlobalOutput::Send {
                        to: ask,
                        message: GlobalMessage::BlockRequest {
                            block: parent,
                            from: self.config.me,
                        },
                    });
                    return;
                }
            }
        }
        let first = chain.last().expect("non-empty");
        if first.parent != self.committed.digest() {
            // Committing a block that does not extend our committed chain breaks safety.
            // Honest rules never get here; a planted bug may, and the simulator's agreement
            // checker reports it.
            assert!(
                self.bugs.any(),
                "commit of a block that conflicts with the committed chain"
            );
        }
        for block in chain.into_iter().rev() {
            self.commit_one(block.clone());
            out.push(GlobalOutput::Commit(block));
        }
        self.prune();
    }

    /// The bookkeeping of one block becoming final: the leader schedule's record, the
    /// reputation at checkpoint heights, the committed cut.
    fn commit_one(&mut self, block: Arc<Block>) {
        if let Some(tc) = &block.tc {
            self.schedule
                .record_miss(self.schedule.leader(tc.round), tc.round);
        }
        self.schedule.record_success(block.proposer, block.round);
        for evidence in &block.evidence {
            self.schedule.record_misbehaviour(evidence.offender());
            self.accusations.remove(&evidence.offender());
        }
        if block
            .height
            .is_multiple_of(self.config.checkpoint_interval_blocks)
        {
            let reputation = self.schedule.reputation_bytes();
            self.reputation_at.insert(block.height, reputation);
            while self.reputation_at.len() > REPUTATION_CHECKPOINTS_MAX {
                self.reputation_at.pop_first();
            }
        }
        for (lane, &seq) in block.cut.iter().enumerate() {
            self.available[lane] = self.available[lane].max(seq);
        }
        self.committed = block;
    }

    fn prune(&mut self) {
        let cut = &self.committed.cut;
        self.held.retain(|(lane, seq), _| *seq > cut[*lane]);
        let floor = self.committed.height;
        if self.blocks.len() > UNCOMMITTED_BLOCKS_MAX {
            let committed = self.committed.digest();
            self.blocks
                .retain(|d, b| b.height + 8 >= floor || *d == committed);
        }
        self.forget_old_rounds();
    }

    /// Votes, pieces and timeouts of rounds before the previous one can no longer matter.
    fn forget_old_rounds(&mut self) {
        let from = self.round.saturating_sub(1);
        self.votes.retain_from(from);
        self.aggregator.retain_from(from);
        self.voted_by.retain(|(r, _), _| *r >= from);
        self.backed.retain(|(r, _), _| *r >= from);
        self.timeouts.retain_from(from);
    }

    /// Every buffer a peer can fill is within its bound (the simulator checks this after
    /// every step; a violation is a memory exhaustion attack that worked).
    pub fn assert_bounded(&self) {
        let n = self.config.replicas.len();
        let rounds = (ROUNDS_AHEAD_MAX + 2) as usize;
        assert!(
            self.blocks.len() <= UNCOMMITTED_BLOCKS_MAX * 2,
            "blocks bounded"
        );
        assert!(
            self.pending.len() <= PENDING_PROPOSALS_MAX,
            "pending bounded"
        );
        self.timeouts.assert_bounded(rounds, n);
        assert!(self.voted_by.len() <= rounds * n, "votes bounded");
        assert!(self.backed.len() <= rounds * n, "vote backing bounded");
        assert!(self.proposals_seen.len() <= rounds, "proposals bounded");
        assert!(self.accusations.len() <= n, "accusations bounded");
        assert!(self.round_latencies.len() <= LATENCY_WINDOW_ROUNDS);
        self.votes.assert_bounded();
        self.aggregator.assert_bounded();
    }

    /// Our highest QC (sent with snapshot chunks so a replica that installs one can sync).
    pub fn high_qc(&self) -> &QuorumCert {
        &self.high_qc
    }

    /// Whether we hold the block (a sync request for one we truncated gets our checkpoint).
    pub fn has_block(&self, digest: &Digest) -> bool {
        self.blocks.contains_key(digest)
    }

    /// Blocks held, committed and not (for bounds checks).
    pub fn blocks_held(&self) -> usize {
        self.blocks.len()
    }

    /// A stable checkpoint at `height` was executed: committed blocks below it are no longer
    /// needed (a replica that lags further installs the snapshot). The committed block and
    /// everything uncommitted stay.
    pub fn truncate_below(&mut self, height: u64) {
        assert!(
            height <= self.committed.height,
            "truncate only executed history"
        );
        let committed = self.committed.digest();
        self.blocks
            .retain(|d, b| b.height >= height || *d == committed);
    }

    /// State transfer installed the snapshot of the certified `block`: continue from it as
    /// if it had been committed here (its batches are executed; their digests are gone).
    /// A block at or below our committed height changes nothing.
    /// The reputation state as of committed checkpoint height `height` (execution, which
    /// takes checkpoints, may trail commits); older entries are dropped.
    pub fn reputation_at(&mut self, height: u64) -> Option<Vec<u8>> {
        self.reputation_at.retain(|&h, _| h >= height);
        self.reputation_at.get(&height).cloned()
    }

    pub fn install_checkpoint(&mut self, block: Arc<Block>, reputation: &[u8]) {
        if block.height <= self.committed.height {
            return;
        }
        // Certified by q replicas together with the ledger, so it decodes.
        self.schedule
            .restore_reputation(reputation)
            .expect("certified reputation state decodes");
        self.reputation_at.clear();
        assert_eq!(
            block.cut.len(),
            self.available.len(),
            "one cut entry per lane"
        );
        for (lane, &seq) in block.cut.iter().enumerate() {
            self.available[lane] = self.available[lane].max(seq);
        }
        self.blocks.insert(block.digest(), block.clone());
        self.committed = block;
        self.sync_requests_left = SYNC_REQUESTS_AFTER_INSTALL;
        let floor = self.committed.height;
        let committed = self.committed.digest();
        self.blocks
            .retain(|d, b| b.height > floor || *d == committed);
        let cut = &self.committed.cut;
        self.held.retain(|(lane, seq), _| *seq > cut[*lane]);
    }

    fn record_round_latency(&mut self) {
        push_bounded(&mut self.round_latencies, self.now - self.round_started);
    }

    fn enter_round(
        &mut self,
        round: Round,
        via_tc: bool,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        assert!(round > self.round, "rounds only move forward");
        self.round = round;
        self.round_started = self.now;
        self.forget_old_rounds();
        out.push(GlobalOutput::Event(GlobalEvent::NewRound { round, via_tc }));
        self.observe_links(out);
        self.maybe_propose(signer, out);
        self.retry_pending(signer, out);
    }

    fn observe_links(&mut self, out: &mut Vec<GlobalOutput>) {
        let Some(&last) = self.round_latencies.last() else {
            return;
        };
        let sample = LinkSample {
            n: self.config.replicas.len() as u32,
            quorum_rtt_us: (last * 1000 / self.config.ticks_per_ms.max(1)) as u32,
            bandwidth_bytes_per_s: 125_000_000,
            vote_bytes: 160,
        };
        if let Some(switch) = self.policy.observe(self.round, sample) {
            out.push(GlobalOutput::Event(GlobalEvent::VotePatternSwitched {
                round: switch.round,
                from: switch.from,
                to: switch.to,
                reason: switch.reason,
            }));
        }
    }

    /// on_propose: the leader of the round extends its highest QC with the batches it holds.
    fn maybe_propose(&mut self, signer: &dyn Signer, out: &mut Vec<GlobalOutput>) {
        let round = self.round;
        if self.replaying
            || self.schedule.leader(round) != self.config.me
            || self.proposed_round >= round
            || round < self.silent_below
        {
            return;
        }
        let Some(parent) = self.blocks.get(&self.high_qc.block).cloned() else {
            return;
        };
        let cut: Vec<Seq> = parent
            .cut
            .iter()
            .zip(&self.available)
            .map(|(&before, &held)| held.clamp(before, before + BATCHES_PER_LANE_PER_BLOCK_MAX))
            .collect();
        let batches: Vec<Digest> = cut
            .iter()
            .zip(&parent.cut)
            .enumerate()
            .flat_map(|(lane, (&upto, &before))| (before + 1..=upto).map(move |seq| (lane, seq)))
            .map(|key| self.held.get(&key).map(|versions| versions[0]))
            .collect::<Option<Vec<Digest>>>()
            .unwrap_or_default();
        if batches.len() as u64 != cut.iter().zip(&parent.cut).map(|(c, b)| c - b).sum::<u64>() {
            return; // our view of the batches is behind the parent's cut; wait for them
        }
        let tc = self
            .high_tc
            .clone()
            .filter(|tc| self.schedule.next_slot_start(tc.round) == round);
        // A parent or grandparent with batches needs this block: it carries the QC that
        // makes them final, and in the linear pattern only we hold that QC (we may have
        // committed the grandparent already; the others have not).
        let parent_has_content = !parent.batches.is_empty()
            || self
                .blocks
                .get(&parent.parent)
                .is_some_and(|p| !p.batches.is_empty());
        if cut == parent.cut && !parent_has_content && tc.is_none() {
            return; // nothing to order yet
        }
        let block = Arc::new(Block {
            round,
            height: parent.height + 1,
            parent: parent.digest(),
            qc: self.high_qc.clone(),
            tc,
            cut,
            batches,
            evidence: self.accusations_for(&parent),
            proposer: self.config.me,
        });
        self.proposed_round = round;
        self.persist_safety(out);
        let signature = signer.sign(Tag::Proposal, &block.digest());
        let message = GlobalMessage::Proposal { block, signature };
        out.push(GlobalOutput::Send {
            to: self.others(),
            message: message.clone(),
        });
        self.on_message(message, signer, out);
    }

    fn on_block_request(&mut self, wanted: Digest, from: ReplicaId, out: &mut Vec<GlobalOutput>) {
        let mut blocks = Vec::new();
        let mut next = wanted;
        while let Some(block) = self.blocks.get(&next) {
            if block.height == 0 || blocks.len() == SYNC_BLOCKS_MAX {
                break;
            }
            blocks.push(block.clone());
            next = block.parent;
        }
        if !blocks.is_empty() {
            out.push(GlobalOutput::Send {
                to: vec![from],
                message: GlobalMessage::BlockResponse { blocks },
            });
        }
    }

    /// Sync: accept a block of a response only if a QC that passed the door certifies it
    /// (our highest QC, the QC of a block we hold or wait on, or the QC of a block of this
    /// response accepted before it), and it is checked like a proposal: its own certificates
    /// pass the door, its QC certifies its parent, and it follows the parent when we hold it.
    /// A response lists blocks child first, so one pass walks a certified chain down.
    fn on_block_response(
        &mut self,
        blocks: Vec<Arc<Block>>,
        signer: &dyn Signer,
        out: &mut Vec<GlobalOutput>,
    ) {
        if blocks.len() > SYNC_BLOCKS_MAX {
            return; // oversized: an honest responder sends at most SYNC_BLOCKS_MAX
        }
        let mut certified: Vec<Digest> = vec![self.high_qc.block];
        certified.extend(self.pending.iter().map(|b| b.qc.block));
        let mut accepted = 0;
        for block in &blocks {
            let digest = block.digest();
            let vouched =
                certified.contains(&digest) || self.blocks.values().any(|b| b.qc.block == digest);
            if !vouched || self.blocks.contains_key(&digest) || !self.syncable(block) {
                continue;
            }
            certified.push(block.qc.block);
            self.store_block(block.clone());
            accepted += 1;
        }
        if accepted > 0 {
            let certified = self.blocks.get(&self.high_qc.block).cloned();
            if let Some(certified) = certified {
                self.apply_commit_rule(&certified, out);
            }
            self.retry_pending(signer, out);
            self.maybe_propose(signer, out);
        }
    }

    /// A certified block from a response is stored only if it is well formed on its own, and
    /// against its parent when we hold the parent.
    fn syncable(&self, block: &Block) -> bool {
        let own = self.certificates_valid(block).is_ok()
            && block.qc.block == block.parent
            && block.qc.round < block.round
            && block.height > 0
            && block.cut.len() == self.config.lanes.len()
            && block.evidence.len() <= EVIDENCE_PER_BLOCK_MAX;
        own && self
            .blocks
            .get(&block.parent)
            .is_none_or(|parent| self.well_formed(block, parent).is_ok())
    }

    fn store_block(&mut self, block: Arc<Block>) {
        if self.blocks.len() < UNCOMMITTED_BLOCKS_MAX * 2 {
            self.blocks.insert(block.digest(), block);
        }
    }
}

/// The 99th percentile of a latency window (0 when empty).
fn p99(window: &[u64]) -> u64 {
    let mut sorted = window.to_vec();
    sorted.sort_unstable();
    sorted
        .get(sorted.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0)
}

fn push_bounded(window: &mut Vec<u64>, sample: u64) {
    if window.len() == LATENCY_WINDOW_ROUNDS {
        window.remove(0);
    }
    window.push(sample);
}

#[cfg(test)]
mod tests;
