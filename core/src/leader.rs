//! Latency-aware leader election for the global HotStuff tier (DESIGN.md, data path item 5).
//!
//! A replica's *expected quorum latency* is the q-th smallest round trip from it to all
//! replicas (itself at 0): the time a leader there waits for a quorum of votes. Replicas are
//! ranked by it, ties by id. Only the best-ranked `candidates` replicas lead; rounds are
//! grouped into slots of `rotation_rounds`, and slot `s` is led by
//! `eligible[s % eligible.len()]`, where `eligible` is the candidate list minus replicas
//! with a bad reputation (too many misses in the window, or proven misbehaviour).
//!
//! Agreement: every honest replica must compute the same leader for a round, or it refuses
//! valid proposals and the round times out (a liveness loss; safety comes from the quorum
//! certificates, never from the leader's identity). So the schedule is a pure function of
//! the topology, the RTT matrix given to [`LeaderSchedule::rebuild_with_rtt`] and the
//! recorded events, and the caller feeds events only from *committed* state: two replicas
//! that have committed the same prefix compute the same schedule. To make that robust
//! against commit lag, the eligibility of a slot counts only misses at rounds before
//! `slot start - REPUTATION_LAG_ROUNDS`, so events of the last rounds before a slot (not yet
//! committed everywhere when its first proposal arrives) do not change who leads it.

use crate::topology::{Quorum, ReplicaId, Topology};
use std::collections::{BTreeMap, BTreeSet};

/// Fewest rounds in a slot. The two-chain rule commits a block only when the next round
/// certifies its child, so a leader must hold two consecutive rounds to commit alone: with
/// one-round slots the f Byzantine candidates can sit between the honest ones in the
/// rotation, every certified block's child comes two rounds later, nothing commits, and
/// the reputation that would skip them is fed only by commits (seed 120 of 13/4/4).
pub const ROTATION_ROUNDS_MIN: u64 = 2;
/// Misses a replica may have in the reputation window and still lead; one more and it is
/// skipped. One is tolerated because a single WAN blip can cost an honest leader a round.
pub const REPUTATION_MISSES_MAX: u32 = 1;
/// Rounds of history the reputation looks at. With the default rotation of 100 rounds this
/// is 100 slots, so a silent leader among a few dozen candidates leads (and misses) at
/// least twice inside the window and gets excluded; it returns once its misses age out.
pub const REPUTATION_WINDOW_ROUNDS: u64 = 10_000;
/// Misses of the last rounds before a slot do not count for that slot: when its first
/// proposal arrives they may not be committed at every honest replica yet (two-chain commit
/// takes two rounds in the happy path; the rest is margin).
pub const REPUTATION_LAG_ROUNDS: u64 = 10;
/// Default candidate set: replicas whose expected quorum latency is at most this percentage
/// of the best one (150 = within 1.5x), but never fewer than f + 1.
pub const CANDIDATE_LATENCY_SLACK_PERCENT: u64 = 150;
/// Most misses kept in memory. A miss needs a timeout certificate or a late proposal, so an
/// honest history stays far below this; the bound holds even if the caller misbehaves.
pub const MISSES_RETAINED_MAX: usize = 4_096;

const _: () = assert!(REPUTATION_LAG_ROUNDS < REPUTATION_WINDOW_ROUNDS);
const _: () = assert!(MISSES_RETAINED_MAX > REPUTATION_MISSES_MAX as usize);
const _: () = assert!(CANDIDATE_LATENCY_SLACK_PERCENT >= 100);

/// How many of the best-ranked replicas may lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CandidateRule {
    /// Within [`CANDIDATE_LATENCY_SLACK_PERCENT`] of the best, at least f + 1.
    WithinSlack,
    /// A configured count in [f + 1, n].
    Count(u32),
}

/// Who leads each round of the global tier. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderSchedule {
    /// Replica ids in topology order (sorted); RTT matrix rows and columns follow it.
    ids: Vec<ReplicaId>,
    quorum: Quorum,
    rotation_rounds: u64,
    rule: CandidateRule,
    /// Expected quorum latency per replica, in topology order.
    latency_us: Vec<u32>,
    /// Best expected quorum latency first, ties by id.
    ranking: Vec<ReplicaId>,
    /// Length of the ranking prefix that may lead.
    candidates: usize,
    /// Round -> the leader that missed it. One leader per round, so one entry per round.
    misses: BTreeMap<u64, ReplicaId>,
    /// Proven Byzantine: never lead again.
    misbehaving: BTreeSet<ReplicaId>,
    /// Highest round of any recorded miss or success; anchors the retention horizon.
    round_newest: u64,
}

impl LeaderSchedule {
    /// Default candidate rule: every replica within 1.5x of the best expected quorum
    /// latency, never fewer than f + 1 (so at least one honest replica can lead).
    pub fn new(topology: &Topology, rotation_rounds: u64) -> LeaderSchedule {
        LeaderSchedule::build(topology, rotation_rounds, CandidateRule::WithinSlack)
    }

    /// Exactly the `candidates` best-ranked replicas may lead; f + 1 <= candidates <= n.
    pub fn with_candidates(
        topology: &Topology,
        rotation_rounds: u64,
        candidates: u32,
    ) -> LeaderSchedule {
        let quorum = topology.quorum();
        assert!(
            candidates > quorum.f && candidates <= quorum.n,
            "candidates {candidates} not in [f + 1, n] = [{}, {}]",
            quorum.f + 1,
            quorum.n
        );
        LeaderSchedule::build(topology, rotation_rounds, CandidateRule::Count(candidates))
    }

    fn build(topology: &Topology, rotation_rounds: u64, rule: CandidateRule) -> LeaderSchedule {
        assert!(
            rotation_rounds >= ROTATION_ROUNDS_MIN,
            "a slot holds at least {ROTATION_ROUNDS_MIN} rounds, not {rotation_rounds}"
        );
        let ids: Vec<ReplicaId> = topology.replicas.iter().map(|r| r.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "topology sorts replicas"
        );
        let mut schedule = LeaderSchedule {
            quorum: topology.quorum(),
            rotation_rounds,
            rule,
            latency_us: Vec::new(),
            ranking: Vec::new(),
            candidates: 0,
            misses: BTreeMap::new(),
            misbehaving: BTreeSet::new(),
            round_newest: 0,
            ids,
        };
        let ids = schedule.ids.clone();
        schedule.rank(|i, j| topology.rtt_between_us(ids[i], ids[j]));
        schedule
    }

    /// Replace the static inter-domain matrix by measured replica-to-replica round trips,
    /// `measured_rtt_us[i][j]` from the i-th to the j-th replica in topology order (sorted
    /// by id); the diagonal is ignored (a replica reaches itself at 0). This changes the
    /// leader of every round, so the matrix must be agreed, not local: take it from committed
    /// state and apply it at the same round (an epoch boundary) at every replica.
    pub fn rebuild_with_rtt(&mut self, measured_rtt_us: &[Vec<u32>]) {
        let n = self.ids.len();
        assert_eq!(
            measured_rtt_us.len(),
            n,
            "RTT matrix needs one row per replica"
        );
        assert!(
            measured_rtt_us.iter().all(|row| row.len() == n),
            "RTT matrix needs one column per replica"
        );
        self.rank(|i, j| measured_rtt_us[i][j]);
    }

    /// Recompute expected quorum latencies, ranking and candidate count from `rtt(i, j)`.
    fn rank(&mut self, rtt: impl Fn(usize, usize) -> u32) {
        let n = self.ids.len();
        let q = self.quorum.q as usize;
        assert!(q >= 1 && q <= n);
        self.latency_us = (0..n)
            .map(|i| {
                let mut row: Vec<u32> =
                    (0..n).map(|j| if i == j { 0 } else { rtt(i, j) }).collect();
                *row.select_nth_unstable(q - 1).1
            })
            .collect();
        let mut order: Vec<(u32, ReplicaId)> = self
            .latency_us
            .iter()
            .copied()
            .zip(self.ids.iter().copied())
            .collect();
        order.sort_unstable();
        self.ranking = order.iter().map(|&(_, id)| id).collect();
        self.candidates = self.candidate_count();
        self.assert_ranking();
    }

    fn candidate_count(&self) -> usize {
        let n = self.ids.len();
        let floor = self.quorum.f as usize + 1;
        let count = match self.rule {
            CandidateRule::Count(count) => count as usize,
            CandidateRule::WithinSlack => {
                let best = u64::from(self.expected_quorum_latency_us(self.ranking[0]));
                let bound = best * CANDIDATE_LATENCY_SLACK_PERCENT;
                self.ranking
                    .iter()
                    .filter(|&&id| u64::from(self.expected_quorum_latency_us(id)) * 100 <= bound)
                    .count()
            }
        };
        count.max(floor).min(n)
    }

    fn assert_ranking(&self) {
        let n = self.ids.len();
        assert_eq!(self.ranking.len(), n);
        assert_eq!(self.latency_us.len(), n);
        assert!(self.candidates > self.quorum.f as usize && self.candidates <= n);
        assert!(self.ranking.windows(2).all(|w| {
            let (a, b) = (
                self.expected_quorum_latency_us(w[0]),
                self.expected_quorum_latency_us(w[1]),
            );
            a < b || (a == b && w[0] < w[1])
        }));
    }

    /// Replica ids, best expected quorum latency first, ties by id.
    pub fn ranking(&self) -> &[ReplicaId] {
        &self.ranking
    }

    /// The best-ranked replicas that may lead, before reputation filtering.
    pub fn candidates(&self) -> &[ReplicaId] {
        &self.ranking[..self.candidates]
    }

    /// The q-th smallest round trip from `id` to all replicas, itself counted at 0.
    pub fn expected_quorum_latency_us(&self, id: ReplicaId) -> u32 {
        self.latency_us[self.position(id)]
    }

    pub fn rotation_rounds(&self) -> u64 {
        self.rotation_rounds
    }

    fn position(&self, id: ReplicaId) -> usize {
        self.ids
            .binary_search(&id)
            .unwrap_or_else(|_| panic!("unknown replica {id}"))
    }

    /// The leader of `round`: `eligible[slot % eligible.len()]`, slot = round / rotation.
    pub fn leader(&self, round: u64) -> ReplicaId {
        let slot = round / self.rotation_rounds;
        let eligible = self.eligible_in_slot(slot);
        eligible[(slot % eligible.len() as u64) as usize]
    }

    /// First round of the slot after the one holding `round`. The pacemaker jumps there
    /// after a timeout certificate, so a silent leader costs one timeout, not a whole slot.
    pub fn next_slot_start(&self, round: u64) -> u64 {
        let slot = round / self.rotation_rounds;
        let start = (slot + 1)
            .checked_mul(self.rotation_rounds)
            .expect("round number overflow");
        assert!(start > round && start - round <= self.rotation_rounds);
        start
    }

    /// The replicas that may lead the slot holding `round`, in ranking order.
    pub fn eligible(&self, round: u64) -> Vec<ReplicaId> {
        self.eligible_in_slot(round / self.rotation_rounds)
    }

    /// Candidates in good standing. If fewer than f + 1 remain, fill up to f + 1 in two
    /// tiers, best-ranked first within each: first non-candidates in good standing, then
    /// replicas with too many misses; proven misbehaving replicas never. f + 1 means at
    /// least one honest leader whatever the Byzantine replicas do with their misses.
    fn eligible_in_slot(&self, slot: u64) -> Vec<ReplicaId> {
        let misses = self.misses_before_slot(slot);
        let not_misbehaving = |id: ReplicaId| !self.misbehaving.contains(&id);
        let reputable = |id: ReplicaId| {
            not_misbehaving(id) && misses.get(&id).copied().unwrap_or(0) <= REPUTATION_MISSES_MAX
        };
        let target = self.eligible_min();
        let mut chosen = vec![false; self.ranking.len()];
        let mut count = 0;
        let is_candidate = |rank: usize, id: ReplicaId| rank < self.candidates && reputable(id);
        self.choose(&mut chosen, &mut count, usize::MAX, is_candidate);
        self.choose(&mut chosen, &mut count, target, |_, id| reputable(id));
        self.choose(&mut chosen, &mut count, target, |_, id| not_misbehaving(id));
        let eligible: Vec<ReplicaId> = (0..self.ranking.len())
            .filter(|&rank| chosen[rank])
            .map(|rank| self.ranking[rank])
            .collect();
        assert!(
            eligible.len() >= target && target >= 1,
            "eligible below f + 1"
        );
        assert!(eligible.iter().all(|&id| not_misbehaving(id)));
        eligible
    }

    /// Mark, in rank order, replicas that pass `accept` until `count` reaches `target`.
    fn choose(
        &self,
        chosen: &mut [bool],
        count: &mut usize,
        target: usize,
        accept: impl Fn(usize, ReplicaId) -> bool,
    ) {
        for (rank, &id) in self.ranking.iter().enumerate() {
            if *count >= target {
                return;
            }
            if !chosen[rank] && accept(rank, id) {
                chosen[rank] = true;
                *count += 1;
            }
        }
        assert_eq!(*count, chosen.iter().filter(|&&c| c).count());
    }

    /// f + 1, or every non-misbehaving replica when fewer remain (only possible in hybrid
    /// fault models with n < 2f + 1).
    fn eligible_min(&self) -> usize {
        let honest = self.ids.len() - self.misbehaving.len();
        (self.quorum.f as usize + 1).min(honest)
    }

    /// Misses per replica in the reputation window of `slot`:
    /// `[start - LAG - WINDOW, start - LAG)`.
    fn misses_before_slot(&self, slot: u64) -> BTreeMap<ReplicaId, u32> {
        let start = slot
            .checked_mul(self.rotation_rounds)
            .expect("round number overflow");
        let cutoff = start.saturating_sub(REPUTATION_LAG_ROUNDS);
        let from = cutoff.saturating_sub(REPUTATION_WINDOW_ROUNDS);
        let mut counts = BTreeMap::new();
        for (_, &id) in self.misses.range(from..cutoff) {
            *counts.entry(id).or_insert(0u32) += 1;
        }
        counts
    }

    /// `leader` missed `round`: the round ended in a timeout certificate, or its proposal was
    /// late. Feed only from committed state (see the module documentation). Misses older than
    /// the retention horizon are dropped: they cannot matter for rounds after the newest event.
    pub fn record_miss(&mut self, leader: ReplicaId, round: u64) {
        self.position(leader);
        self.advance(round);
        if round < self.horizon() {
            return;
        }
        let previous = self.misses.insert(round, leader);
        assert!(
            previous.is_none_or(|p| p == leader),
            "round {round} recorded as missed by two leaders"
        );
        self.prune();
    }

    /// `leader` proposed `round` in time and it was certified. Feed only from committed
    /// state. Eligibility counts misses only, so successes cannot launder misses; a success
    /// still moves the retention horizon, and keeping the call means a future rate-based rule
    /// needs no change in the caller.
    pub fn record_success(&mut self, leader: ReplicaId, round: u64) {
        self.position(leader);
        self.advance(round);
        self.prune();
    }

    /// `id` is proven Byzantine (two conflicting signed messages, an invalid certificate):
    /// it never leads again. Feed only from committed evidence, so every honest replica
    /// excludes it from the same point on. The exclusion applies to every round, past ones
    /// included: check already certified blocks by their certificates, not by recomputing
    /// their leader.
    pub fn record_misbehaviour(&mut self, id: ReplicaId) {
        self.position(id);
        self.misbehaving.insert(id);
        // Proofs cannot be forged against honest replicas; more than f means the fault
        // assumption is broken and no schedule (nor safety) can be trusted.
        assert!(
            self.misbehaving.len() <= self.quorum.f as usize,
            "more than f = {} replicas proven Byzantine",
            self.quorum.f
        );
    }

    /// The reputation state (misses, proven offenders), which only committed blocks change:
    /// part of every checkpoint, so a replica that installs one picks the same leaders.
    pub fn reputation_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.misses.len() * 12 + self.misbehaving.len() * 4);
        out.extend_from_slice(&self.round_newest.to_le_bytes());
        out.extend_from_slice(&(self.misses.len() as u32).to_le_bytes());
        for (&round, &id) in &self.misses {
            out.extend_from_slice(&round.to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out.extend_from_slice(&(self.misbehaving.len() as u32).to_le_bytes());
        for &id in &self.misbehaving {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// Restore what [`LeaderSchedule::reputation_bytes`] wrote; `None` (and no change) for
    /// bytes that do not decode or name unknown replicas.
    pub fn restore_reputation(&mut self, bytes: &[u8]) -> Option<()> {
        let mut reader = Reader(bytes);
        let round_newest = reader.u64()?;
        let misses_len = reader.u32()? as usize;
        if misses_len > MISSES_RETAINED_MAX {
            return None;
        }
        let mut misses = BTreeMap::new();
        for _ in 0..misses_len {
            let (round, id) = (reader.u64()?, reader.u32()?);
            self.ids.binary_search(&id).ok()?;
            misses.insert(round, id);
        }
        let offenders = reader.u32()? as usize;
        if offenders > self.quorum.f as usize {
            return None;
        }
        let mut misbehaving = BTreeSet::new();
        for _ in 0..offenders {
            let id = reader.u32()?;
            self.ids.binary_search(&id).ok()?;
            misbehaving.insert(id);
        }
        if !reader.0.is_empty() {
            return None;
        }
        self.round_newest = round_newest;
        self.misses = misses;
        self.misbehaving = misbehaving;
        Some(())
    }

    /// Whether `id` is permanently excluded.
    pub fn is_misbehaving(&self, id: ReplicaId) -> bool {
        self.misbehaving.contains(&id)
    }

    fn advance(&mut self, round: u64) {
        self.round_newest = self.round_newest.max(round);
    }

    /// Misses below this round cannot fall in the window of any slot that holds a round at
    /// or after the newest recorded event.
    fn horizon(&self) -> u64 {
        let keep = REPUTATION_WINDOW_ROUNDS + REPUTATION_LAG_ROUNDS + self.rotation_rounds;
        self.round_newest.saturating_sub(keep)
    }

    fn prune(&mut self) {
        self.misses = self.misses.split_off(&self.horizon());
        while self.misses.len() > MISSES_RETAINED_MAX {
            self.misses.pop_first();
        }
        assert!(self.misses.len() <= MISSES_RETAINED_MAX);
    }
}

/// Little-endian reads from a byte slice, `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u32 = 1_000;

    fn three_clouds() -> Topology {
        Topology::three_clouds()
    }

    /// n = 7, f = 2, q = 5. The 5th smallest RTT (self at 0, same region 0.5 ms):
    /// AWS (3 replicas):   0, 0.5, 0.5, 22, 22 | 28, 28 -> 22 ms
    /// Azure (2 replicas): 0, 0.5, 22, 22, 22 | 64, 64  -> 22 ms
    /// GCP (2 replicas):   0, 0.5, 28, 28, 28 | 64, 64  -> 28 ms
    /// AWS and Azure tie at 22 ms; AWS ranks first by the id tie-break (ids 0-2).
    #[test]
    fn three_clouds_ranking() {
        let schedule = LeaderSchedule::new(&three_clouds(), 100);
        let expected: &[(ReplicaId, u32)] = &[
            (0, 22 * MS),
            (1, 22 * MS),
            (2, 22 * MS),
            (3, 22 * MS),
            (4, 22 * MS),
            (5, 28 * MS),
            (6, 28 * MS),
        ];
        for &(id, latency) in expected {
            assert_eq!(
                schedule.expected_quorum_latency_us(id),
                latency,
                "replica {id}"
            );
        }
        assert_eq!(schedule.ranking(), &[0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(&schedule.ranking()[..3], &[0, 1, 2], "AWS replicas first");
        // 28 ms <= 1.5 x 22 ms = 33 ms: every replica is a default candidate.
        assert_eq!(schedule.candidates(), &[0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn configured_candidate_count() {
        let schedule = LeaderSchedule::with_candidates(&three_clouds(), 100, 3);
        assert_eq!(schedule.candidates(), &[0, 1, 2]);
        assert_eq!(schedule.eligible(0), vec![0, 1, 2]);
    }

    #[test]
    #[should_panic(expected = "not in [f + 1, n]")]
    fn candidate_count_below_f_plus_one_is_refused() {
        LeaderSchedule::with_candidates(&three_clouds(), 100, 2);
    }

    #[test]
    fn rotation_over_slots() {
        // (candidates, rotation, round, leader)
        let table: &[(u32, u64, u64, ReplicaId)] = &[
            (3, 100, 0, 0),
            (3, 100, 99, 0),
            (3, 100, 100, 1),
            (3, 100, 250, 2),
            (3, 100, 300, 0),
            (3, 100, 1_000_000_050, 1),
            (7, 100, 650, 6),
            (7, 100, 700, 0),
            (7, 2, 10, 5),
            (7, 2, 27, 6),
        ];
        for &(candidates, rotation, round, leader) in table {
            let schedule = LeaderSchedule::with_candidates(&three_clouds(), rotation, candidates);
            assert_eq!(
                schedule.leader(round),
                leader,
                "{candidates} candidates, round {round}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "a slot holds at least 2 rounds, not 1")]
    fn one_round_slots_are_refused() {
        LeaderSchedule::new(&three_clouds(), 1);
    }

    #[test]
    fn next_slot_start_table() {
        // (rotation, round, next slot start)
        let table: &[(u64, u64, u64)] = &[
            (100, 0, 100),
            (100, 99, 100),
            (100, 100, 200),
            (100, 150, 200),
            (2, 5, 6),
            (2, 6, 8),
            (7, 13, 14),
        ];
        for &(rotation, round, next) in table {
            let schedule = LeaderSchedule::new(&three_clouds(), rotation);
            assert_eq!(
                schedule.next_slot_start(round),
                next,
                "rotation {rotation}, round {round}"
            );
            assert_ne!(
                schedule.leader(round),
                schedule.leader(next),
                "a new slot, a new leader"
            );
        }
    }

    /// First slot start whose window no longer holds `round`.
    fn first_slot_forgetting(round: u64, rotation: u64) -> u64 {
        let start = round + 1 + REPUTATION_WINDOW_ROUNDS + REPUTATION_LAG_ROUNDS;
        start.div_ceil(rotation) * rotation
    }

    #[test]
    fn misses_exclude_a_leader_until_they_age_out() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        assert_eq!(schedule.leader(100), 1);
        schedule.record_miss(1, 100);
        assert!(
            schedule.eligible(1_000).contains(&1),
            "one miss is tolerated"
        );
        schedule.record_miss(1, 800);
        // The second miss counts from the first slot whose cutoff passes round 800.
        assert!(
            schedule.eligible(800).contains(&1),
            "a slot's own misses do not count"
        );
        let excluded_from = 900;
        let back_at = first_slot_forgetting(100, 100);
        for start in (excluded_from..back_at).step_by(100) {
            assert!(!schedule.eligible(start).contains(&1), "slot at {start}");
            assert_ne!(schedule.leader(start), 1);
        }
        assert_eq!(schedule.eligible(back_at - 100).len(), 6);
        assert!(
            schedule.eligible(back_at).contains(&1),
            "back after the window"
        );
    }

    #[test]
    fn recent_misses_do_not_change_the_current_slot() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        let before: Vec<ReplicaId> = (0..2_000).map(|r| schedule.leader(r)).collect();
        let cutoff = 1_000 - REPUTATION_LAG_ROUNDS;
        schedule.record_miss(3, cutoff);
        schedule.record_miss(3, cutoff + 1);
        let after: Vec<ReplicaId> = (0..2_000).map(|r| schedule.leader(r)).collect();
        assert_eq!(before[..1_100], after[..1_100]);
        assert!(!schedule.eligible(1_100).contains(&3));
    }

    #[test]
    fn reputation_state_round_trips_and_restores_the_same_leaders() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        schedule.record_misbehaviour(0);
        schedule.record_miss(3, 250);
        schedule.record_miss(5, 420);
        let bytes = schedule.reputation_bytes();
        let mut fresh = LeaderSchedule::new(&three_clouds(), 100);
        assert_ne!(fresh.leader(0), schedule.leader(0));
        assert_eq!(fresh.restore_reputation(&bytes), Some(()));
        assert_eq!(fresh.reputation_bytes(), bytes);
        for round in (0..5_000).step_by(50) {
            assert_eq!(fresh.leader(round), schedule.leader(round), "round {round}");
        }
        // Truncated, trailing or unknown-replica bytes are refused and change nothing.
        let before = fresh.reputation_bytes();
        assert!(fresh
            .restore_reputation(&bytes[..bytes.len() - 1])
            .is_none());
        assert!(fresh
            .restore_reputation(&[bytes.as_slice(), &[0]].concat())
            .is_none());
        let mut unknown = bytes.clone();
        let last = unknown.len() - 4;
        unknown[last..].copy_from_slice(&99u32.to_le_bytes());
        assert!(fresh.restore_reputation(&unknown).is_none());
        assert_eq!(fresh.reputation_bytes(), before);
    }

    #[test]
    fn misbehaviour_excludes_permanently() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        schedule.record_misbehaviour(0);
        assert!(schedule.is_misbehaving(0));
        for round in (0..200_000).step_by(100) {
            assert_ne!(schedule.leader(round), 0, "round {round}");
        }
        // Even when the fallback has to refill the eligible set.
        for id in 1..7 {
            schedule.record_miss(id, 100 * u64::from(id));
            schedule.record_miss(id, 100 * u64::from(id) + 10);
        }
        let eligible = schedule.eligible(1_000);
        assert_eq!(
            eligible,
            vec![1, 2, 3],
            "best-ranked non-misbehaving fill up to f + 1"
        );
    }

    #[test]
    #[should_panic(expected = "more than f")]
    fn more_than_f_misbehaving_is_refused() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        for id in 0..3 {
            schedule.record_misbehaviour(id);
        }
    }

    #[test]
    fn fallback_tiers() {
        // (candidates, replicas with two misses, expected eligible); f + 1 = 3.
        let table: &[(u32, &[ReplicaId], &[ReplicaId])] = &[
            (3, &[], &[0, 1, 2]),
            (3, &[0], &[1, 2, 3]),
            (3, &[0, 1, 2], &[3, 4, 5]),
            (3, &[0, 1, 2, 3, 4], &[0, 5, 6]),
            (3, &[0, 1, 2, 3, 4, 5, 6], &[0, 1, 2]),
            (7, &[2, 4], &[0, 1, 3, 5, 6]),
        ];
        for &(candidates, missing, expected) in table {
            let mut schedule = LeaderSchedule::with_candidates(&three_clouds(), 100, candidates);
            for &id in missing {
                schedule.record_miss(id, 10 * u64::from(id));
                schedule.record_miss(id, 10 * u64::from(id) + 1);
            }
            assert_eq!(schedule.eligible(500), expected, "missing {missing:?}");
        }
    }

    #[test]
    fn measured_rtt_reranks() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        // Higher ids sit closer to everyone: rtt(i, j) = (12 - i - j) ms.
        let matrix: Vec<Vec<u32>> = (0..7u32)
            .map(|i| (0..7u32).map(|j| (12 - i - j) * MS).collect())
            .collect();
        schedule.rebuild_with_rtt(&matrix);
        // 5th smallest of {0} and {12 - i - j : j != i}; e.g. replica 6: 0, 1, 2, 3, 4.
        // Replicas 2 and 3 tie at 7 ms and go by id.
        let expected: &[(ReplicaId, u32)] =
            &[(6, 4), (5, 5), (4, 6), (2, 7), (3, 7), (1, 8), (0, 9)];
        for &(id, ms) in expected {
            assert_eq!(
                schedule.expected_quorum_latency_us(id),
                ms * MS,
                "replica {id}"
            );
        }
        let ranking: Vec<ReplicaId> = expected.iter().map(|&(id, _)| id).collect();
        assert_eq!(schedule.ranking(), ranking.as_slice());
        // Within 1.5 x 4 ms = 6 ms: replicas 6, 5, 4, which is also f + 1.
        assert_eq!(schedule.candidates(), &[6, 5, 4]);
        assert_eq!(schedule.leader(0), 6);
    }

    #[test]
    #[should_panic(expected = "one row per replica")]
    fn measured_rtt_must_be_n_by_n() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 100);
        schedule.rebuild_with_rtt(&[vec![0; 7]]);
    }

    #[test]
    fn retention_is_bounded() {
        let mut schedule = LeaderSchedule::new(&three_clouds(), 2);
        for round in 0..(MISSES_RETAINED_MAX as u64 * 3) {
            schedule.record_miss(schedule.leader(round), round);
        }
        assert!(schedule.misses.len() <= MISSES_RETAINED_MAX);
        assert!(schedule.eligible(u64::MAX / 2).len() >= 3);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Miss(usize, u64),
        Success(usize, u64),
        Misbehaviour(usize),
    }

    fn apply(schedule: &mut LeaderSchedule, topology: &Topology, event: &Event) {
        let id = |index: &usize| topology.replicas[index % topology.replicas.len()].id;
        match event {
            // A round has one leader: skip a second, conflicting miss for the same round.
            Event::Miss(index, round) => {
                if schedule.misses.get(round).is_none_or(|&m| m == id(index)) {
                    schedule.record_miss(id(index), *round);
                }
            }
            Event::Success(index, round) => schedule.record_success(id(index), *round),
            Event::Misbehaviour(index) => {
                let f = topology.quorum().f as usize;
                let id = id(index);
                if schedule.misbehaving.len() < f || schedule.is_misbehaving(id) {
                    schedule.record_misbehaviour(id);
                }
            }
        }
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (0usize..64, 0u64..30_000).prop_map(|(i, r)| Event::Miss(i, r)),
            2 => (0usize..64, 0u64..30_000).prop_map(|(i, r)| Event::Success(i, r)),
            1 => (0usize..64).prop_map(Event::Misbehaviour),
        ]
    }

    proptest! {
        #[test]
        fn eligible_never_below_f_plus_one(
            n in 4u32..40,
            domains in 1u32..6,
            rotation in ROTATION_ROUNDS_MIN..300,
            events in proptest::collection::vec(event(), 0..200),
        ) {
            let topology = Topology::synthetic(n, domains, 1).unwrap();
            let mut schedule = LeaderSchedule::new(&topology, rotation);
            for event in &events {
                apply(&mut schedule, &topology, event);
            }
            let f = topology.quorum().f as usize;
            for round in (0..40_000u64).step_by(97) {
                let eligible = schedule.eligible(round);
                prop_assert!(eligible.len() > f);
                prop_assert!(eligible.iter().all(|&id| !schedule.is_misbehaving(id)));
                prop_assert!(eligible.contains(&schedule.leader(round)));
            }
        }
    }

    proptest! {
        // Fewer cases: each one checks 40 000 rounds twice.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn same_events_same_schedule(
            n in 4u32..40,
            domains in 1u32..6,
            rotation in ROTATION_ROUNDS_MIN..300,
            events in proptest::collection::vec(event(), 0..200),
        ) {
            let topology = Topology::synthetic(n, domains, 1).unwrap();
            let mut a = LeaderSchedule::new(&topology, rotation);
            let mut b = LeaderSchedule::new(&topology, rotation);
            for event in &events {
                apply(&mut a, &topology, event);
            }
            for event in &events {
                apply(&mut b, &topology, event);
            }
            prop_assert_eq!(&a, &b);
            for round in 0..40_000u64 {
                prop_assert_eq!(a.leader(round), b.leader(round), "round {}", round);
            }
        }
    }
}
