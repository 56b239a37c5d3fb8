//! Collecting global votes into quorum certificates, and pre-aggregating them per domain in
//! the linear pattern (DESIGN.md, data path item 4).
//!
//! In the linear pattern a replica sends its vote to its domain's aggregator for the round
//! (a member chosen by rotation), which combines the domain's votes into one aggregate and
//! forwards that single piece across the WAN to the next leader. The leader merges pieces
//! whose signer sets are disjoint. A Byzantine aggregator can only withhold or delay its
//! domain's votes: pieces are verified like any certificate, and voters that see no
//! progress send their vote to the leader directly (see `hotstuff::Global`).

use crate::crypto::{Bitmap, Certificate, Digest, Signature, Signer};
use crate::messages::{Round, TimeoutCert};
use crate::topology::{ReplicaId, REPLICAS_MAX};
use std::collections::BTreeMap;

/// Distinct (round, block) pairs tracked; each needs a vote signed by some replica, so an
/// honest run uses a handful and a Byzantine flood is cut here.
pub const VOTE_TARGETS_MAX: usize = 1_024;

/// Signatures over one (round, block) towards a QC: one vote or one domain's aggregate,
/// shaped like any certificate (signer bitmap plus one aggregate).
pub type Piece = Certificate;

/// The leader's (or, all-to-all, every replica's) side: disjoint pieces until q signers.
#[derive(Debug, Default, Clone)]
pub struct QuorumCollector {
    pieces: BTreeMap<(Round, Digest), Vec<Piece>>,
}

impl QuorumCollector {
    /// Adds a verified piece. Returns the certificate the first time the pieces cover `q`
    /// signers. A piece overlapping the ones held is taken only when it strictly contains
    /// every piece it overlaps (a domain aggregate after some members' direct votes).
    pub fn add(
        &mut self,
        round: Round,
        block: Digest,
        piece: Piece,
        q: usize,
        signer: &dyn Signer,
    ) -> Option<Certificate> {
        if piece.signers.count() == 0 {
            return None;
        }
        if !self.pieces.contains_key(&(round, block)) && self.pieces.len() >= VOTE_TARGETS_MAX {
            return None;
        }
        let pieces = self.pieces.entry((round, block)).or_default();
        if covered(pieces).count() as usize >= q {
            return None; // certificate already formed
        }
        let (overlapping, disjoint): (Vec<Piece>, Vec<Piece>) = std::mem::take(pieces)
            .into_iter()
            .partition(|held| held.signers.intersects(&piece.signers));
        let replaces = overlapping
            .iter()
            .all(|held| held.signers.is_subset(&piece.signers))
            && covered(&overlapping) != piece.signers;
        *pieces = disjoint;
        if replaces {
            pieces.push(piece);
        } else {
            pieces.extend(overlapping);
        }
        let signers = covered(pieces);
        if (signers.count() as usize) < q {
            return None;
        }
        let signatures: Vec<Signature> = pieces.iter().map(|p| p.aggregate.clone()).collect();
        Some(Certificate {
            signers,
            aggregate: signer.aggregate(&signatures),
        })
    }

    /// Forget rounds before `round`.
    pub fn retain_from(&mut self, round: Round) {
        self.pieces.retain(|(r, _), _| *r >= round);
    }

    pub fn assert_bounded(&self) {
        assert!(
            self.pieces.len() <= VOTE_TARGETS_MAX,
            "vote targets bounded"
        );
        assert!(
            self.pieces.values().all(|p| p.len() <= REPLICAS_MAX),
            "pieces per target bounded"
        );
    }
}

/// Timeout votes per round (Jolteon): the first vote of each sender in a round counts, and q
/// of them form a timeout certificate. The caller admits only verified votes of rounds in
/// its window, so the keeper holds at most one vote per replica and admitted round.
#[derive(Debug, Default, Clone)]
pub struct TimeoutKeeper {
    rounds: BTreeMap<Round, BTreeMap<ReplicaId, (Round, Signature)>>,
}

impl TimeoutKeeper {
    /// Adds a verified timeout vote carrying the sender's highest QC round; returns how many
    /// distinct replicas timed out in `round` so far.
    pub fn add(
        &mut self,
        round: Round,
        from: ReplicaId,
        high_qc_round: Round,
        signature: Signature,
    ) -> usize {
        let votes = self.rounds.entry(round).or_default();
        votes.entry(from).or_insert((high_qc_round, signature));
        votes.len()
    }

    pub fn has_timed_out(&self, round: Round, id: ReplicaId) -> bool {
        self.rounds.get(&round).is_some_and(|v| v.contains_key(&id))
    }

    /// The certificate of `round` once `q` replicas timed out in it: exactly q votes of
    /// distinct signers.
    pub fn certificate(&self, round: Round, q: usize) -> Option<TimeoutCert> {
        let votes = self.rounds.get(&round).filter(|v| v.len() >= q)?;
        let votes: Vec<(ReplicaId, Round, Signature)> = votes
            .iter()
            .take(q)
            .map(|(&id, (high_qc_round, signature))| (id, *high_qc_round, signature.clone()))
            .collect();
        assert_eq!(votes.len(), q, "a timeout certificate holds q votes");
        Some(TimeoutCert { round, votes })
    }

    /// Forget rounds before `round`.
    pub fn retain_from(&mut self, round: Round) {
        self.rounds.retain(|r, _| *r >= round);
    }

    /// At most `rounds` rounds and one vote per replica of `n` in each.
    pub fn assert_bounded(&self, rounds: usize, n: usize) {
        assert!(self.rounds.len() <= rounds, "timeout rounds bounded");
        assert!(
            self.rounds.values().all(|votes| votes.len() <= n),
            "timeouts per round bounded"
        );
    }
}

fn covered(pieces: &[Piece]) -> Bitmap {
    pieces
        .iter()
        .fold(Bitmap::default(), |acc, p| acc.union(&p.signers))
}

/// Votes of the domain gathered by its aggregator for one (round, block).
#[derive(Debug, Clone)]
struct Gathering {
    seen: Bitmap,
    unsent_signers: Bitmap,
    unsent: Vec<Signature>,
    since: u64,
    flushed: bool,
}

/// The aggregator's side: a domain's votes for one (round, block) leave as one piece once
/// every member voted or `wait_ticks` passed; stragglers follow as pieces of their own.
#[derive(Debug, Clone)]
pub struct DomainAggregator {
    members: Vec<ReplicaId>,
    wait_ticks: u64,
    gathering: BTreeMap<(Round, Digest), Gathering>,
}

impl DomainAggregator {
    pub fn new(mut members: Vec<ReplicaId>, wait_ticks: u64) -> DomainAggregator {
        assert!(!members.is_empty(), "a domain has members");
        members.sort_unstable();
        members.dedup();
        DomainAggregator {
            members,
            wait_ticks,
            gathering: BTreeMap::new(),
        }
    }

    /// The member that aggregates the domain's votes of `round`; rotates so a Byzantine
    /// aggregator stalls at most its share of rounds.
    pub fn aggregator(&self, round: Round) -> ReplicaId {
        self.members[(round % self.members.len() as u64) as usize]
    }

    pub fn is_member(&self, id: ReplicaId) -> bool {
        self.members.binary_search(&id).is_ok()
    }

    /// Adds a verified vote of a domain member; returns the piece to forward, if it is time.
    pub fn add(
        &mut self,
        round: Round,
        block: Digest,
        from: ReplicaId,
        signature: Signature,
        now: u64,
        signer: &dyn Signer,
    ) -> Option<Piece> {
        if !self.is_member(from) {
            return None;
        }
        if !self.gathering.contains_key(&(round, block)) && self.gathering.len() >= VOTE_TARGETS_MAX
        {
            return None;
        }
        let gathering = self
            .gathering
            .entry((round, block))
            .or_insert_with(|| Gathering {
                seen: Bitmap::default(),
                unsent_signers: Bitmap::default(),
                unsent: Vec::new(),
                since: now,
                flushed: false,
            });
        if !gathering.seen.insert(from) {
            return None;
        }
        gathering.unsent_signers.insert(from);
        gathering.unsent.push(signature);
        let complete = gathering.seen.count() as usize == self.members.len();
        (complete || gathering.flushed).then(|| flush(gathering, signer))?
    }

    /// Pieces whose wait is over: (round, block, piece).
    pub fn on_tick(&mut self, now: u64, signer: &dyn Signer) -> Vec<(Round, Digest, Piece)> {
        let wait = self.wait_ticks;
        self.gathering
            .iter_mut()
            .filter(|(_, g)| !g.flushed && now >= g.since + wait)
            .filter_map(|(&(round, block), g)| flush(g, signer).map(|p| (round, block, p)))
            .collect()
    }

    /// Forget rounds before `round`.
    pub fn retain_from(&mut self, round: Round) {
        self.gathering.retain(|(r, _), _| *r >= round);
    }

    pub fn assert_bounded(&self) {
        assert!(
            self.gathering.len() <= VOTE_TARGETS_MAX,
            "gatherings bounded"
        );
    }
}

fn flush(gathering: &mut Gathering, signer: &dyn Signer) -> Option<Piece> {
    gathering.flushed = true;
    if gathering.unsent.is_empty() {
        return None;
    }
    let piece = Piece {
        signers: std::mem::take(&mut gathering.unsent_signers),
        aggregate: signer.aggregate(&std::mem::take(&mut gathering.unsent)),
    };
    Some(piece)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Check, SimKeys, Tag, Verifier};
    use crate::messages::vote_payload;

    const BLOCK: Digest = [7; 32];

    fn vote(keys: &SimKeys, id: ReplicaId) -> Piece {
        let signature = keys
            .signer(id)
            .sign(Tag::GlobalVote, &vote_payload(3, &BLOCK));
        let mut signers = Bitmap::default();
        signers.insert(id);
        Piece {
            signers,
            aggregate: signature,
        }
    }

    fn verifies(keys: &SimKeys, certificate: Certificate) -> bool {
        keys.verify(&Check::Aggregate {
            tag: Tag::GlobalVote,
            message: vote_payload(3, &BLOCK),
            certificate,
        })
    }

    #[test]
    fn domain_piece_leaves_when_every_member_voted() {
        let keys = SimKeys::new(7, 1);
        let signer = keys.signer(0);
        let mut aggregator = DomainAggregator::new(vec![2, 0, 1], 10);
        assert_eq!(aggregator.aggregator(4), 1);
        let sig = |id| vote(&keys, id).aggregate;
        assert!(aggregator.add(3, BLOCK, 0, sig(0), 0, &signer).is_none());
        assert!(aggregator.add(3, BLOCK, 0, sig(0), 0, &signer).is_none());
        assert!(
            aggregator.add(3, BLOCK, 5, sig(5), 0, &signer).is_none(),
            "not a member"
        );
        assert!(aggregator.add(3, BLOCK, 1, sig(1), 1, &signer).is_none());
        let piece = aggregator
            .add(3, BLOCK, 2, sig(2), 2, &signer)
            .expect("complete");
        assert_eq!(piece.signers.ids().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(verifies(&keys, piece));
    }

    /// A full aggregator refuses new targets but still completes the ones it gathers (a
    /// mutation run found no test filled it).
    #[test]
    fn a_full_aggregator_takes_no_new_target_but_completes_its_own() {
        let keys = SimKeys::new(7, 1);
        let signer = keys.signer(0);
        let mut aggregator = DomainAggregator::new(vec![0, 1], 10);
        let sig = |id| vote(&keys, id).aggregate;
        for round in 1..=VOTE_TARGETS_MAX as Round {
            assert!(aggregator
                .add(round, BLOCK, 0, sig(0), 0, &signer)
                .is_none());
        }
        let beyond = VOTE_TARGETS_MAX as Round + 1;
        assert!(aggregator
            .add(beyond, BLOCK, 0, sig(0), 0, &signer)
            .is_none());
        assert!(
            aggregator
                .add(beyond, BLOCK, 1, sig(1), 0, &signer)
                .is_none(),
            "a target past the bound is not gathered, so it never completes"
        );
        assert!(
            aggregator.add(1, BLOCK, 1, sig(1), 0, &signer).is_some(),
            "a gathered target still completes"
        );
    }

    #[test]
    fn domain_piece_leaves_after_the_wait_and_stragglers_follow() {
        let keys = SimKeys::new(7, 1);
        let signer = keys.signer(0);
        let mut aggregator = DomainAggregator::new(vec![0, 1, 2], 10);
        let sig = |id| vote(&keys, id).aggregate;
        assert!(aggregator.add(3, BLOCK, 0, sig(0), 5, &signer).is_none());
        assert!(aggregator.on_tick(14, &signer).is_empty());
        let flushed = aggregator.on_tick(15, &signer);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].2.signers.count(), 1);
        assert!(aggregator.on_tick(16, &signer).is_empty(), "flushed once");
        let straggler = aggregator
            .add(3, BLOCK, 2, sig(2), 20, &signer)
            .expect("at once");
        assert_eq!(straggler.signers.ids().collect::<Vec<_>>(), vec![2]);
        aggregator.retain_from(4);
        assert!(aggregator.on_tick(100, &signer).is_empty());
    }

    #[test]
    fn collector_merges_disjoint_pieces_into_a_valid_certificate() {
        let keys = SimKeys::new(7, 1);
        let signer = keys.signer(0);
        let mut collector = QuorumCollector::default();
        let domain = |ids: &[ReplicaId]| {
            let pieces: Vec<Piece> = ids.iter().map(|&id| vote(&keys, id)).collect();
            Piece {
                signers: covered(&pieces),
                aggregate: signer.aggregate(
                    &pieces
                        .iter()
                        .map(|p| p.aggregate.clone())
                        .collect::<Vec<_>>(),
                ),
            }
        };
        assert!(collector
            .add(3, BLOCK, domain(&[0, 1, 2]), 5, &signer)
            .is_none());
        assert!(
            collector
                .add(3, BLOCK, domain(&[2, 3]), 5, &signer)
                .is_none(),
            "overlap without containing is refused"
        );
        assert!(collector
            .add(3, BLOCK, vote(&keys, 3), 5, &signer)
            .is_none());
        let certificate = collector
            .add(3, BLOCK, domain(&[3, 4]), 5, &signer)
            .expect("the domain piece replaces the member's own vote and completes q");
        assert_eq!(certificate.signers.count(), 5);
        assert!(verifies(&keys, certificate));
        assert!(
            collector
                .add(3, BLOCK, vote(&keys, 5), 5, &signer)
                .is_none(),
            "formed once"
        );
    }

    #[test]
    fn collector_keeps_targets_apart_and_forgets_old_rounds() {
        let keys = SimKeys::new(4, 1);
        let signer = keys.signer(0);
        let mut collector = QuorumCollector::default();
        assert!(collector
            .add(3, [1; 32], vote(&keys, 0), 2, &signer)
            .is_none());
        assert!(collector
            .add(3, BLOCK, vote(&keys, 1), 2, &signer)
            .is_none());
        collector.retain_from(4);
        assert!(collector
            .add(3, BLOCK, vote(&keys, 2), 2, &signer)
            .is_none());
        assert!(collector
            .add(3, BLOCK, vote(&keys, 1), 2, &signer)
            .is_some());
    }

    /// A full collector refuses new targets but still completes the ones it holds (a
    /// mutation run found no test filled it).
    #[test]
    fn a_full_collector_takes_no_new_target_but_completes_its_own() {
        let keys = SimKeys::new(4, 1);
        let signer = keys.signer(0);
        let mut collector = QuorumCollector::default();
        for round in 1..=VOTE_TARGETS_MAX as Round {
            assert!(collector
                .add(round, BLOCK, vote(&keys, 0), 2, &signer)
                .is_none());
        }
        collector.assert_bounded();
        let beyond = VOTE_TARGETS_MAX as Round + 1;
        assert!(collector
            .add(beyond, BLOCK, vote(&keys, 0), 2, &signer)
            .is_none());
        assert!(
            collector
                .add(beyond, BLOCK, vote(&keys, 1), 2, &signer)
                .is_none(),
            "a target past the bound is not held, so it never completes"
        );
        collector.assert_bounded();
        assert!(
            collector
                .add(1, BLOCK, vote(&keys, 1), 2, &signer)
                .is_some(),
            "a held target still completes"
        );
    }

    fn timeout(keys: &SimKeys, id: ReplicaId, round: Round) -> Signature {
        keys.signer(id)
            .sign(Tag::Timeout, &crate::messages::timeout_payload(round, 0))
    }

    #[test]
    fn a_timeout_certificate_needs_q_distinct_senders_of_its_round() {
        let keys = SimKeys::new(4, 1);
        let mut keeper = TimeoutKeeper::default();
        assert_eq!(keeper.add(5, 0, 0, timeout(&keys, 0, 5)), 1);
        assert_eq!(
            keeper.add(5, 0, 0, timeout(&keys, 0, 5)),
            1,
            "one vote per sender"
        );
        assert_eq!(keeper.add(6, 1, 0, timeout(&keys, 1, 6)), 1, "rounds apart");
        assert_eq!(keeper.add(5, 2, 0, timeout(&keys, 2, 5)), 2);
        assert!(keeper.certificate(5, 3).is_none());
        assert!(keeper.has_timed_out(5, 2) && !keeper.has_timed_out(5, 1));
        assert_eq!(keeper.add(5, 3, 0, timeout(&keys, 3, 5)), 3);
        let tc = keeper.certificate(5, 3).expect("three of round 5");
        assert_eq!(tc.round, 5);
        let signers: Vec<ReplicaId> = tc.votes.iter().map(|v| v.0).collect();
        assert_eq!(signers, vec![0, 2, 3]);
        keeper.retain_from(6);
        assert!(keeper.certificate(5, 3).is_none() && keeper.has_timed_out(6, 1));
    }
}
