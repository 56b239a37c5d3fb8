//! One test per rule of the global tier, on a few `Global` instances wired by hand. Every
//! delivered message first passes its signature checks, as the host would run them.

use super::*;
use crate::crypto::{SimKeys, SimSigner, Verifier};
use crate::topology::Topology;
use crate::vote_pattern::PolicyConfig;
use std::collections::VecDeque;

struct Cluster {
    keys: SimKeys,
    topology: Topology,
    nodes: Vec<Global>,
    signers: Vec<SimSigner>,
    queue: VecDeque<(ReplicaId, ReplicaId, GlobalMessage)>,
    sent: Vec<(ReplicaId, ReplicaId, GlobalMessage)>,
    commits: Vec<Vec<Digest>>,
    evidence: Vec<Evidence>,
}

fn cluster(replicas: u32, domains: u32, pattern: VotePattern) -> Cluster {
    let topology = Topology::synthetic(replicas, domains, 1).expect("valid shape");
    let keys = SimKeys::new(replicas, 7);
    let ids: Vec<ReplicaId> = topology.replicas.iter().map(|r| r.id).collect();
    let rules = Arc::new(CertRules::new(&topology, PlantedBugs::none()));
    let nodes = ids
        .iter()
        .map(|&me| {
            let config = GlobalConfig {
                me,
                replicas: ids.clone(),
                quorum: topology.quorum(),
                // Every lane of the topology (the genesis block has one cut entry each);
                // the tests order batches of lane 0.
                lanes: (0..domains)
                    .map(|domain| Lane { domain, shard: 0 })
                    .collect(),
                timeout_min_ticks: 100,
                timeout_max_ticks: 1_000,
                ticks_per_ms: 1,
                domain_members: topology.domain_members(topology.domain_of(me)),
                aggregation_wait_ticks: 2,
                checkpoint_interval_blocks: 100,
                rules: rules.clone(),
            };
            let schedule = LeaderSchedule::new(&topology, 3);
            let policy = VotePatternPolicy::new(pattern, PolicyConfig::default());
            Global::new(config, schedule, policy, PlantedBugs::none())
        })
        .collect();
    Cluster {
        signers: ids.iter().map(|&id| keys.signer(id)).collect(),
        commits: vec![Vec::new(); ids.len()],
        keys,
        topology,
        nodes,
        queue: VecDeque::new(),
        sent: Vec::new(),
        evidence: Vec::new(),
    }
}

impl Cluster {
    fn absorb(&mut self, from: ReplicaId, outputs: Vec<GlobalOutput>) {
        for output in outputs {
            match output {
                GlobalOutput::Send { to, message } => {
                    for to in to {
                        self.sent.push((from, to, message.clone()));
                        self.queue.push_back((from, to, message.clone()));
                    }
                }
                GlobalOutput::Commit(block) => self.commits[from as usize].push(block.digest()),
                GlobalOutput::Evidence(evidence) => {
                    self.nodes[from as usize].accuse(evidence.clone());
                    self.evidence.push(evidence);
                }
                _ => {}
            }
        }
    }

    fn deliver(&mut self, to: ReplicaId, message: GlobalMessage) {
        let checks = Message::Global(message.clone()).checks();
        assert!(checks.iter().all(|c| self.keys.verify(c)), "bad signature");
        let mut out = Vec::new();
        let node = to as usize;
        self.nodes[node].on_message(message, &self.signers[node], &mut out);
        self.absorb(to, out);
    }

    /// Deliver queued messages until none is left; `drop` discards some in flight.
    fn run(&mut self, drop: impl Fn(ReplicaId, ReplicaId, &GlobalMessage) -> bool) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            if !drop(from, to, &message) {
                self.deliver(to, message);
            }
        }
    }

    fn tick(&mut self, ticks: u64) {
        for _ in 0..ticks {
            for node in 0..self.nodes.len() {
                let mut out = Vec::new();
                self.nodes[node].on_tick(&self.signers[node], &mut out);
                self.absorb(node as ReplicaId, out);
            }
        }
    }

    /// Every replica holds LC-certified batch `seq` of the lane.
    fn hold_batch(&mut self, seq: Seq) {
        for node in 0..self.nodes.len() {
            let mut out = Vec::new();
            self.nodes[node].on_batch_held(0, seq, [seq as u8; 32], &self.signers[node], &mut out);
            self.absorb(node as ReplicaId, out);
        }
    }

    /// Committed chains are prefixes of one chain, and every replica committed the first
    /// block (the one ordering batch 1). In the linear pattern the last QC of a run is known
    /// only to the leader that formed it, so the leader may be one block ahead.
    fn batch_block_committed_everywhere(&self) -> Arc<Block> {
        let longest = self
            .commits
            .iter()
            .max_by_key(|c| c.len())
            .expect("replicas");
        for commits in &self.commits {
            assert!(!commits.is_empty(), "a replica committed nothing");
            assert_eq!(commits[..], longest[..commits.len()], "chains diverge");
        }
        self.nodes[0].blocks[&longest[0]].clone()
    }

    fn proposal(&self, round: Round, parent: &Block, qc: QuorumCert, cut: Seq) -> GlobalMessage {
        let proposer = self.nodes[0].schedule.leader(round);
        let block = Block {
            round,
            height: parent.height + 1,
            parent: parent.digest(),
            qc,
            tc: None,
            cut: [cut]
                .into_iter()
                .chain(parent.cut[1..].iter().copied())
                .collect(),
            batches: (parent.cut[0] + 1..=cut).map(|s| [s as u8; 32]).collect(),
            evidence: Vec::new(),
            proposer,
        };
        let signature = self.signers[proposer as usize].sign(Tag::Proposal, &block.digest());
        GlobalMessage::Proposal {
            block: Arc::new(block),
            signature,
        }
    }
}

impl Cluster {
    /// A timeout vote of `from` for `round`, carrying `high_qc`.
    fn timeout(&self, round: Round, from: ReplicaId, high_qc: QuorumCert) -> GlobalMessage {
        let payload = timeout_payload(round, high_qc.round);
        GlobalMessage::Timeout {
            round,
            high_qc,
            last_tc: None,
            from,
            signature: self.signers[from as usize].sign(Tag::Timeout, &payload),
        }
    }

    /// Two proposals of round 1 on genesis by its leader: an equivocation that proves itself.
    fn equivocation_proof(&self) -> Evidence {
        let node = &self.nodes[0];
        let genesis = node.committed.clone();
        let proposal = |cut| Message::Global(self.proposal(1, &genesis, node.high_qc.clone(), cut));
        Evidence::Equivocation {
            offender: node.schedule.leader(1),
            first: Box::new(proposal(0)),
            second: Box::new(proposal(1)),
        }
    }
}

fn never(_: ReplicaId, _: ReplicaId, _: &GlobalMessage) -> bool {
    false
}

#[test]
fn a_block_commits_once_its_child_in_the_next_round_is_certified() {
    for pattern in [VotePattern::AllToAll, VotePattern::Linear] {
        let mut c = cluster(4, 1, pattern);
        c.hold_batch(1);
        c.run(never);
        let block = c.batch_block_committed_everywhere();
        assert_eq!(
            (block.height, block.cut.clone()),
            (1, vec![1]),
            "{pattern:?}"
        );
        // Its child certified it in the next round, and that QC reached everyone.
        let child = c.nodes[0]
            .blocks
            .values()
            .find(|b| b.parent == block.digest())
            .expect("child");
        assert_eq!(child.round, block.round + 1);
    }
}

#[test]
fn linear_votes_cross_the_wan_once_per_domain() {
    let mut c = cluster(7, 3, VotePattern::Linear);
    c.hold_batch(1);
    c.run(never);
    assert_eq!(c.batch_block_committed_everywhere().cut[0], 1);
    let domain = |id: ReplicaId| c.topology.domain_of(id);
    let mut domain_votes = 0;
    for (from, to, message) in &c.sent {
        match message {
            GlobalMessage::Vote { .. } => {
                assert_eq!(domain(*from), domain(*to), "a single vote crossed domains")
            }
            GlobalMessage::DomainVote { round, cert, .. } => {
                domain_votes += 1;
                assert_eq!(*to, c.nodes[0].schedule.leader(round + 1));
                assert!(cert.signers.ids().all(|s| domain(s) == domain(*from)));
            }
            _ => {}
        }
    }
    assert!(domain_votes > 0, "domains pre-aggregated their votes");
}

#[test]
fn a_silent_aggregator_costs_half_a_timeout_not_the_round() {
    let mut c = cluster(7, 3, VotePattern::Linear);
    c.hold_batch(1);
    let leader = c.nodes[0].schedule.leader(2);
    let silent = |from: ReplicaId, _: ReplicaId, m: &GlobalMessage| {
        matches!(m, GlobalMessage::DomainVote { .. }) && from != leader
    };
    c.run(silent);
    assert!(
        c.commits.iter().all(Vec::is_empty),
        "no QC without the domains' votes"
    );
    c.tick(60); // half of the 100-tick minimum timeout, plus slack
    c.run(silent);
    let timeouts = c
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, GlobalMessage::Timeout { .. }))
        .count();
    assert_eq!(timeouts, 0, "direct votes arrived before any timeout");
    assert!(
        c.nodes[leader as usize].high_qc.round >= 1,
        "the leader formed QC 1"
    );
    c.tick(100);
    c.run(silent);
    let no_timeouts = !c
        .sent
        .iter()
        .any(|(_, _, m)| matches!(m, GlobalMessage::Timeout { .. }));
    assert!(no_timeouts, "round 2 also completed on direct votes");
    assert_eq!(c.batch_block_committed_everywhere().cut[0], 1);
}

#[test]
fn a_replica_votes_once_per_round_and_reports_an_equivocating_leader() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let genesis_qc = c.nodes[0].high_qc.clone();
    for seq in 1..=2 {
        c.hold_batch(seq);
    }
    c.queue.clear();
    c.sent.clear();
    let voter = (c.nodes[0].schedule.leader(1) + 1) % 4;
    let first = c.proposal(1, &genesis, genesis_qc.clone(), 1);
    let second = c.proposal(1, &genesis, genesis_qc, 2);
    c.deliver(voter, first);
    c.deliver(voter, second);
    let mut votes: Vec<&GlobalMessage> = Vec::new();
    for (from, _, message) in &c.sent {
        if *from == voter
            && matches!(message, GlobalMessage::Vote { .. })
            && !votes.contains(&message)
        {
            votes.push(message);
        }
    }
    assert_eq!(votes.len(), 1, "one vote in round 1");
    assert!(c
        .evidence
        .iter()
        .any(|e| matches!(e, Evidence::Equivocation { .. })));
}

#[test]
fn a_timeout_gives_up_every_round_before_the_next_slot() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    c.hold_batch(1);
    c.queue.clear(); // the round-1 proposal is lost
    c.tick(101);
    let node = &c.nodes[1];
    assert_eq!(node.round, 1, "no TC delivered yet");
    // Rotation 3: the TC of round 1 leads to round 3, so rounds 1 and 2 are given up.
    assert_eq!(node.last_voted_round, 2);
    let genesis = node.committed.clone();
    let mut block = match c.proposal(2, &genesis, node.high_qc.clone(), 1) {
        GlobalMessage::Proposal { block, .. } => (*block).clone(),
        _ => unreachable!(),
    };
    assert!(
        !node.safe_to_vote(&block),
        "round 2 was skipped by the timeout"
    );
    block.round = 3;
    block.qc.round = 2;
    assert!(
        node.safe_to_vote(&block),
        "consecutive QC in round 3 is fine"
    );
}

#[test]
fn a_block_after_a_timeout_must_extend_the_highest_qc_of_the_tc() {
    let c = cluster(4, 1, VotePattern::AllToAll);
    let node = &c.nodes[0];
    let tc_round = 4;
    let votes = (0..3)
        .map(|id| {
            let high = if id == 2 { 3 } else { 2 };
            let signature =
                c.signers[id as usize].sign(Tag::Timeout, &timeout_payload(tc_round, high));
            (id, high, signature)
        })
        .collect();
    let tc = TimeoutCert {
        round: tc_round,
        votes,
    };
    let genesis = node.committed.clone();
    let mut block = match c.proposal(6, &genesis, node.high_qc.clone(), 0) {
        GlobalMessage::Proposal { block, .. } => (*block).clone(),
        _ => unreachable!(),
    };
    block.tc = Some(tc);
    block.qc.round = 2;
    assert!(
        !node.safe_to_vote(&block),
        "QC 2 is below the TC's highest QC 3: locked"
    );
    block.qc.round = 3;
    assert!(node.safe_to_vote(&block));
    block.round = 5;
    assert!(
        !node.safe_to_vote(&block),
        "a TC block must open the next slot"
    );
}

#[test]
fn a_committed_equivocation_proof_excludes_the_offender_from_leading() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let genesis_qc = c.nodes[0].high_qc.clone();
    c.hold_batch(1);
    c.run(never);
    let offender = c.nodes[0].schedule.leader(1);
    // The leader's honest proposal of round 1 ordered batch 1; this twin orders nothing.
    let twin = c.proposal(1, &genesis, genesis_qc, 0);
    let honest: Vec<ReplicaId> = (0..4).filter(|&id| id != offender).collect();
    for &id in &honest {
        c.deliver(id, twin.clone());
    }
    assert!(
        c.nodes.iter().all(|n| !n.schedule.is_misbehaving(offender)),
        "not yet committed"
    );
    assert!(
        c.evidence.len() >= honest.len(),
        "every honest replica saw both"
    );
    for seq in 2..=8 {
        c.hold_batch(seq);
        c.run(never);
        c.tick(300);
        c.run(never);
    }
    let carried = c.nodes[honest[0] as usize]
        .blocks
        .values()
        .any(|b| b.evidence.iter().any(|e| e.offender() == offender));
    assert!(carried, "a block carried the proof");
    for &id in &honest {
        assert!(c.nodes[id as usize].schedule.is_misbehaving(offender));
        assert!((0..12).all(|round| c.nodes[id as usize].schedule.leader(round) != offender));
    }
}

#[test]
fn a_block_carrying_evidence_that_proves_nothing_is_refused() {
    let c = cluster(4, 1, VotePattern::AllToAll);
    let node = &c.nodes[0];
    let genesis = node.committed.clone();
    let first = c.proposal(1, &genesis, node.high_qc.clone(), 0);
    let GlobalMessage::Proposal { block, .. } = &first else {
        unreachable!()
    };
    let mut block = (**block).clone();
    // The same proposal twice is no equivocation.
    block.evidence = vec![Evidence::Equivocation {
        offender: block.proposer,
        first: Box::new(Message::Global(first.clone())),
        second: Box::new(Message::Global(first.clone())),
    }];
    assert!(node.well_formed(&block, &genesis).is_err());
}

/// Review finding: one leader with an empty TC forked the chain, because `safe_to_vote`
/// took the TC's highest-QC round (0 for no votes) without asking whether q replicas timed
/// out. Now the TC must pass the door: an empty or sub-quorum TC releases no lock.
#[test]
fn an_empty_or_sub_quorum_tc_releases_no_lock() {
    let c = cluster(4, 1, VotePattern::AllToAll);
    let node = &c.nodes[0];
    let genesis = node.committed.clone();
    let mut block = match c.proposal(6, &genesis, node.high_qc.clone(), 0) {
        GlobalMessage::Proposal { block, .. } => (*block).clone(),
        _ => unreachable!(),
    };
    block.tc = Some(TimeoutCert {
        round: 5,
        votes: Vec::new(),
    });
    assert!(!node.safe_to_vote(&block), "an empty TC is not a TC");
    let votes = (0..2)
        .map(|id| {
            let signature = c.signers[id as usize].sign(Tag::Timeout, &timeout_payload(5, 0));
            (id, 0, signature)
        })
        .collect();
    block.tc = Some(TimeoutCert { round: 5, votes });
    assert!(!node.safe_to_vote(&block), "two of q = 3 timeout votes");
}

/// The proposer's signature covers the TC: swapping it changes the block's digest.
#[test]
fn the_block_digest_covers_its_timeout_certificate() {
    let c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let mut block = match c.proposal(6, &genesis, c.nodes[0].high_qc.clone(), 0) {
        GlobalMessage::Proposal { block, .. } => (*block).clone(),
        _ => unreachable!(),
    };
    let before = block.digest();
    block.tc = Some(TimeoutCert {
        round: 5,
        votes: Vec::new(),
    });
    assert_ne!(block.digest(), before);
}

/// Review finding: any round-0 certificate passed as genesis, so a proposal could extend a
/// fabricated block. Only the genesis block's QC has round 0; the proposal is refused.
#[test]
fn a_round_zero_qc_for_another_block_is_refused() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let mut fabricated = (*genesis).clone();
    fabricated.round = 1;
    fabricated.height = 1;
    fabricated.parent = genesis.digest();
    let false_genesis = QuorumCert {
        round: 0,
        block: fabricated.digest(),
        cert: empty_cert(),
    };
    let message = c.proposal(1, &fabricated, false_genesis, 0);
    let proposer = c.nodes[0].schedule.leader(1);
    let voter = (proposer + 1) % 4;
    c.deliver(voter, message);
    assert!(
        c.evidence
            .iter()
            .any(|e| matches!(e, Evidence::InvalidProposal { .. })),
        "the proposal is reported"
    );
    assert_eq!(c.nodes[voter as usize].last_voted_round, 0, "no vote");
    assert!(!c.nodes[voter as usize]
        .blocks
        .contains_key(&fabricated.digest()));
}

/// Review finding: a block response stored every block named as a parent by another block
/// of the same response, with no check (63 fabricated blocks at heights near u64::MAX). A
/// block is stored only if a QC that passed the door certifies it.
#[test]
fn a_block_response_stores_only_certified_blocks() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let mut blocks = Vec::new();
    let mut parent = (*genesis).clone();
    for i in 0..63u64 {
        let mut block = (*genesis).clone();
        block.round = u64::MAX - 63 + i;
        block.height = u64::MAX - 63 + i;
        block.parent = parent.digest();
        block.qc = QuorumCert {
            round: 0,
            block: parent.digest(),
            cert: empty_cert(),
        };
        parent = block.clone();
        blocks.push(Arc::new(block));
    }
    blocks.reverse(); // child first, as a responder sends them
    let held = c.nodes[1].blocks.len();
    c.deliver(1, GlobalMessage::BlockResponse { blocks });
    assert_eq!(
        c.nodes[1].blocks.len(),
        held,
        "nothing fabricated is stored"
    );
}

/// Review finding: a vote or proposal for round u64::MAX overflowed (overflow checks are on
/// in release). Extreme rounds are dropped.
#[test]
fn extreme_rounds_are_dropped_without_panic() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let signature = c.signers[2].sign(Tag::GlobalVote, &vote_payload(u64::MAX, &[1; 32]));
    c.deliver(
        0,
        GlobalMessage::Vote {
            round: u64::MAX,
            block: [1; 32],
            from: 2,
            signature,
        },
    );
    let signature = c.signers[2].sign(Tag::Timeout, &timeout_payload(u64::MAX, 0));
    let genesis_qc = c.nodes[0].high_qc.clone();
    c.deliver(
        0,
        GlobalMessage::Timeout {
            round: u64::MAX,
            high_qc: genesis_qc,
            last_tc: None,
            from: 2,
            signature,
        },
    );
    let genesis = c.nodes[0].committed.clone();
    let mut far = (*genesis).clone();
    far.round = u64::MAX;
    far.height = u64::MAX;
    far.parent = genesis.digest();
    far.qc = c.nodes[0].high_qc.clone();
    far.proposer = 2;
    let signature = c.signers[2].sign(Tag::Proposal, &far.digest());
    c.deliver(
        0,
        GlobalMessage::Proposal {
            block: Arc::new(far),
            signature,
        },
    );
    assert_eq!(c.nodes[0].round, 1, "nothing moved the round");
    c.nodes[0].assert_bounded();
}

/// Review finding: domain pieces skipped the per-sender dedup, so junk pieces for made-up
/// blocks filled the shared collector. A signer backs one block per round.
#[test]
fn a_signer_backs_one_block_per_round_across_votes_and_pieces() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    for i in 0..2_000u32 {
        let block: Digest = std::array::from_fn(|b| (i >> (b % 4 * 8)) as u8);
        let round = 1 + u64::from(i % 60);
        let signature = c.signers[3].sign(Tag::GlobalVote, &vote_payload(round, &block));
        let mut signers = Bitmap::default();
        signers.insert(3);
        c.deliver(
            0,
            GlobalMessage::DomainVote {
                round,
                block,
                cert: Certificate {
                    signers,
                    aggregate: signature,
                },
                from: 3,
            },
        );
    }
    assert!(
        c.nodes[0].backed.len() <= 60,
        "one backing per signer and round"
    );
    c.nodes[0].assert_bounded();
    // The honest run still forms its QCs.
    c.hold_batch(1);
    c.run(never);
    assert_eq!(c.batch_block_committed_everywhere().cut[0], 1);
}

/// Evidence that nests deeper than a block may carry stays out of our proposals: blocks
/// carrying it would be refused by every decoder (a Byzantine leader could otherwise make
/// honest leaders' blocks undecodable by equivocating with proposals already that deep).
#[test]
fn evidence_too_deep_for_a_block_is_not_kept_for_proposals() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let mut deep = Evidence::InvalidCertificate { offender: 2 };
    while deep.wire_nesting() < crate::evidence::EVIDENCE_NESTING_MAX {
        let mut block = genesis_block(1);
        block.evidence = vec![deep];
        deep = Evidence::InvalidProposal {
            offender: 2,
            reason: "nested".into(),
            message: Box::new(Message::Global(GlobalMessage::Proposal {
                block: Arc::new(block),
                signature: Signature(Vec::new()),
            })),
        };
    }
    let equivocation = |evidence: Vec<Evidence>| {
        let proposal = |cut: u64| {
            let mut block = genesis_block(1);
            (block.round, block.proposer, block.cut) = (5, 1, vec![cut]);
            block.evidence = evidence.clone();
            let signature = c.signers[1].sign(Tag::Proposal, &block.digest());
            Box::new(Message::Global(GlobalMessage::Proposal {
                block: Arc::new(block),
                signature,
            }))
        };
        Evidence::Equivocation {
            offender: 1,
            first: proposal(0),
            second: proposal(1),
        }
    };
    let (too_deep, shallow) = (equivocation(vec![deep]), equivocation(Vec::new()));
    assert!(too_deep.proof().is_some() && shallow.proof().is_some());
    c.nodes[0].accuse(too_deep);
    assert!(c.nodes[0].accusations.is_empty(), "too deep to carry");
    c.nodes[0].accuse(shallow);
    assert_eq!(
        c.nodes[0].accusations.len(),
        1,
        "the same offence, shallow, is kept"
    );
}

/// Mutation run finding: the shape rules of `well_formed` had no test of their own (a block
/// skipping a height, a round not above its parent's, and each bound at and past its limit).
#[test]
fn a_block_follows_its_parent_and_stays_within_its_bounds() {
    let c = cluster(4, 1, VotePattern::AllToAll);
    let node = &c.nodes[0];
    let genesis = node.committed.clone();
    let good = block_of(c.proposal(1, &genesis, node.high_qc.clone(), 0));
    assert_eq!(node.well_formed(&good, &genesis), Ok(()));
    let skips_a_height = Block {
        height: genesis.height + 2,
        ..good.clone()
    };
    assert!(node.well_formed(&skips_a_height, &genesis).is_err());
    let same_round_as_parent = Block {
        round: genesis.round,
        ..good.clone()
    };
    assert!(node.well_formed(&same_round_as_parent, &genesis).is_err());

    let most = BATCHES_PER_LANE_PER_BLOCK_MAX;
    let full = block_of(c.proposal(1, &genesis, node.high_qc.clone(), most));
    assert_eq!(
        node.well_formed(&full, &genesis),
        Ok(()),
        "{most} batches of a lane"
    );
    let over = block_of(c.proposal(1, &genesis, node.high_qc.clone(), most + 1));
    assert!(node.well_formed(&over, &genesis).is_err());

    let proof = c.equivocation_proof();
    assert!(proof.proof().is_some());
    let carrying = |pieces: usize| Block {
        evidence: vec![proof.clone(); pieces],
        ..good.clone()
    };
    let most = EVIDENCE_PER_BLOCK_MAX;
    assert_eq!(node.well_formed(&carrying(most), &genesis), Ok(()));
    assert!(node.well_formed(&carrying(most + 1), &genesis).is_err());
}

/// Mutation run finding: nothing in the rule tests saw a vote leave without its record.
/// The safety state a vote raises is persisted before the vote is sent.
#[test]
fn a_vote_is_persisted_before_it_is_sent() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let voter = (c.nodes[0].schedule.leader(1) + 1) % 4;
    let proposal = c.proposal(1, &genesis, c.nodes[0].high_qc.clone(), 0);
    let mut out = Vec::new();
    let node = voter as usize;
    c.nodes[node].on_message(proposal, &c.signers[node], &mut out);
    let persisted = out.iter().position(|o| {
        matches!(
            o,
            GlobalOutput::Persist {
                last_voted_round: 1,
                ..
            }
        )
    });
    let sent = out.iter().position(|o| {
        matches!(
            o,
            GlobalOutput::Send {
                message: GlobalMessage::Vote { round: 1, .. },
                ..
            }
        )
    });
    assert!(sent.is_some(), "the replica voted");
    assert!(persisted.is_some_and(|p| Some(p) < sent), "{out:?}");
}

/// Mutation run finding: the direct fallback of the linear pattern (a vote sent through the
/// domain's aggregator also goes straight to the next leader if no QC came) had no test of
/// its target or its delay. It goes to the leader of the next round, after half a timeout.
#[test]
fn a_vote_through_an_aggregator_goes_direct_to_the_next_leader_after_half_a_timeout() {
    let mut c = cluster(7, 3, VotePattern::Linear);
    let genesis = c.nodes[0].committed.clone();
    let next_leader = c.nodes[0].schedule.leader(2);
    let voter = (0..7)
        .find(|&r| {
            let node = &c.nodes[r as usize];
            r != next_leader && node.vote_recipients(1).1
        })
        .expect("a replica that votes through an aggregator");
    let proposal = c.proposal(1, &genesis, c.nodes[0].high_qc.clone(), 0);
    c.deliver(voter, proposal);
    let direct = |c: &Cluster| {
        c.sent.iter().any(|(from, to, m)| {
            *from == voter && *to == next_leader && matches!(m, GlobalMessage::Vote { .. })
        })
    };
    assert!(!direct(&c), "the first copy goes to the aggregator only");
    let half = c.nodes[voter as usize].timeout_ticks() / 2;
    let tick = |c: &mut Cluster| {
        let mut out = Vec::new();
        let node = voter as usize;
        c.nodes[node].on_tick(&c.signers[node], &mut out);
        c.absorb(voter, out);
    };
    for _ in 0..half - 1 {
        tick(&mut c);
    }
    assert!(!direct(&c), "not before half a timeout");
    for _ in 0..2 {
        tick(&mut c);
    }
    assert!(direct(&c), "sent straight to the next leader");
}

/// Mutation run finding: a timeout vote must carry a QC that passes the door, or its claimed
/// round would go into a TC. One vote with a QC of a single signer (a valid signature, but
/// no quorum) does not complete a TC that two honest votes began; a third honest vote does.
#[test]
fn a_timeout_vote_with_a_sub_quorum_qc_is_not_counted() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis_qc = c.nodes[0].high_qc.clone();
    let block = [9; 32];
    let mut signers = Bitmap::default();
    signers.insert(3);
    let lone = c.signers[3].sign(Tag::GlobalVote, &vote_payload(1, &block));
    let sub_quorum = QuorumCert {
        round: 1,
        block,
        cert: Certificate {
            signers,
            aggregate: c.signers[3].aggregate(&[lone]),
        },
    };
    for from in [1, 2] {
        let message = c.timeout(2, from, genesis_qc.clone());
        c.deliver(0, message);
    }
    let message = c.timeout(2, 3, sub_quorum);
    c.deliver(0, message);
    assert_eq!(c.nodes[0].round, 1, "two counted votes of q = 3: no TC");
    let message = c.timeout(2, 3, genesis_qc);
    c.deliver(0, message);
    assert!(c.nodes[0].round > 2, "the third honest vote forms TC(2)");
}

/// A QC of `block` signed by `signers`.
fn qc_for(c: &Cluster, block: &Block, signers: &[ReplicaId]) -> QuorumCert {
    let payload = vote_payload(block.round, &block.digest());
    let signatures: Vec<Signature> = signers
        .iter()
        .map(|&s| c.signers[s as usize].sign(Tag::GlobalVote, &payload))
        .collect();
    let mut bitmap = Bitmap::default();
    signers.iter().for_each(|&s| {
        bitmap.insert(s);
    });
    QuorumCert {
        round: block.round,
        block: block.digest(),
        cert: Certificate {
            signers: bitmap,
            aggregate: c.signers[0].aggregate(&signatures),
        },
    }
}

fn block_of(message: GlobalMessage) -> Block {
    match message {
        GlobalMessage::Proposal { block, .. } => (*block).clone(),
        _ => unreachable!(),
    }
}

/// Mutation run finding: `process_qc` takes in only QCs that pass the door, persists a new
/// lock once, and fetches a certified block it lacks from signers other than itself.
#[test]
fn a_qc_moves_the_lock_once_and_only_if_it_passes_the_door() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let b1 = block_of(c.proposal(1, &genesis, c.nodes[0].high_qc.clone(), 0));
    let node = 0;
    let persists = |out: &[GlobalOutput]| {
        out.iter()
            .filter(|o| matches!(o, GlobalOutput::Persist { .. }))
            .count()
    };
    let mut out = Vec::new();
    let sub_quorum = qc_for(&c, &b1, &[1, 2]);
    c.nodes[node].process_qc(sub_quorum, &c.signers[node], &mut out);
    assert_eq!(c.nodes[node].high_qc.round, 0, "two of q = 3 signers");
    assert_eq!(persists(&out), 0);
    let qc = qc_for(&c, &b1, &[0, 1, 2]);
    let mut out = Vec::new();
    c.nodes[node].process_qc(qc.clone(), &c.signers[node], &mut out);
    assert_eq!(c.nodes[node].high_qc.round, 1);
    assert_eq!(persists(&out), 1, "the new lock is persisted");
    let asked: Vec<&Vec<ReplicaId>> = out
        .iter()
        .filter_map(|o| match o {
            GlobalOutput::Send {
                to,
                message: GlobalMessage::BlockRequest { block, .. },
            } if *block == b1.digest() => Some(to),
            _ => None,
        })
        .collect();
    assert!(
        asked.iter().all(|to| !to.is_empty() && !to.contains(&0)) && !asked.is_empty(),
        "the missing block is asked of other signers: {asked:?}"
    );
    let mut out = Vec::new();
    c.nodes[node].process_qc(qc, &c.signers[node], &mut out);
    assert_eq!(persists(&out), 0, "the same lock again persists nothing");
}

/// Mutation run finding: the two-chain rule commits a parent only through a certified
/// child of the very next round (Jolteon); a child after a skipped round commits nothing.
#[test]
fn only_a_certified_child_of_the_next_round_commits_its_parent() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let b1 = Arc::new(block_of(c.proposal(
        1,
        &genesis,
        c.nodes[0].high_qc.clone(),
        0,
    )));
    let qc1 = qc_for(&c, &b1, &[0, 1, 2]);
    let b3 = Arc::new(block_of(c.proposal(3, &b1, qc1.clone(), 0)));
    let b2 = Arc::new(block_of(c.proposal(2, &b1, qc1, 0)));
    let node = &mut c.nodes[0];
    for block in [&b1, &b2, &b3] {
        node.blocks.insert(block.digest(), block.clone());
    }
    let commits = |out: &[GlobalOutput]| {
        out.iter()
            .filter(|o| matches!(o, GlobalOutput::Commit(_)))
            .count()
    };
    let mut out = Vec::new();
    node.apply_commit_rule(&b3, &mut out);
    assert_eq!(commits(&out), 0, "round 3 does not follow round 1");
    node.apply_commit_rule(&b2, &mut out);
    assert_eq!(commits(&out), 1, "round 2 does");
    assert_eq!(node.committed.digest(), b1.digest());
}

/// Mutation run finding: committing a block whose ancestor is missing asks the proposers
/// for it, never only ourselves.
#[test]
fn a_commit_with_a_missing_ancestor_asks_the_proposer() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let b1 = block_of(c.proposal(1, &genesis, c.nodes[0].high_qc.clone(), 0));
    let b2 = Arc::new(block_of(c.proposal(2, &b1, qc_for(&c, &b1, &[0, 1, 2]), 0)));
    let me = (0..4).find(|&r| r != b2.proposer).expect("a non-proposer");
    let node = &mut c.nodes[me as usize];
    node.blocks.insert(b2.digest(), b2.clone());
    let mut out = Vec::new();
    node.commit(b2.clone(), &mut out);
    let asked = out.iter().find_map(|o| match o {
        GlobalOutput::Send {
            to,
            message: GlobalMessage::BlockRequest { block, .. },
        } if *block == b1.digest() => Some(to.clone()),
        _ => None,
    });
    assert_eq!(asked, Some(vec![b2.proposer]));
}

/// Mutation run finding: a replica joins a timeout of its round that f + 1 others reported
/// (one of them is honest, Bracha), and not on f reports or reports of another round.
#[test]
fn a_replica_joins_a_timeout_of_its_round_reported_by_f_plus_one() {
    let mut c = cluster(4, 1, VotePattern::AllToAll);
    let genesis_qc = c.nodes[0].high_qc.clone();
    let joined = |c: &Cluster, round: Round| {
        c.sent.iter().any(|(from, _, m)| {
            *from == 0 && matches!(m, GlobalMessage::Timeout { round: r, .. } if *r == round)
        })
    };
    for from in [1, 2] {
        let message = c.timeout(2, from, genesis_qc.clone());
        c.deliver(0, message);
    }
    assert!(!joined(&c, 2), "round 2 is not our round");
    let message = c.timeout(1, 1, genesis_qc.clone());
    c.deliver(0, message);
    assert!(!joined(&c, 1), "f = 1 report");
    let message = c.timeout(1, 2, genesis_qc.clone());
    c.deliver(0, message);
    assert!(joined(&c, 1), "f + 1 reports");
}

/// Mutation run finding: timeout votes count up to ROUNDS_AHEAD_MAX rounds ahead of ours
/// (q of them form a TC we catch up by), and no further; a timeout from a round we left
/// gets our certificates back.
#[test]
fn timeouts_count_up_to_rounds_ahead_max_ahead_and_stale_ones_get_a_sync() {
    let deliver_q = |round: Round| {
        let mut c = cluster(4, 1, VotePattern::AllToAll);
        let genesis_qc = c.nodes[0].high_qc.clone();
        for from in [1, 2, 3] {
            let message = c.timeout(round, from, genesis_qc.clone());
            c.deliver(0, message);
        }
        c
    };
    let at_bound = 1 + ROUNDS_AHEAD_MAX;
    let mut c = deliver_q(at_bound);
    assert!(c.nodes[0].round > at_bound, "TC at the bound");
    let too_far = deliver_q(at_bound + 1);
    assert_eq!(too_far.nodes[0].round, 1, "beyond the bound: dropped");
    c.sent.clear();
    let stale = c.timeout(1, 1, c.nodes[0].high_qc.clone());
    c.deliver(0, stale);
    assert!(c
        .sent
        .iter()
        .any(|(from, to, m)| *from == 0 && *to == 1 && matches!(m, GlobalMessage::Sync { .. })));
}

/// Mutation run finding: each condition `syncable` asks of a block from a response, alone,
/// keeps it out (the parent is not held, so only the block's own checks decide).
#[test]
fn a_block_from_a_response_must_pass_each_of_its_own_checks() {
    let c = cluster(4, 1, VotePattern::AllToAll);
    let genesis = c.nodes[0].committed.clone();
    let b1 = block_of(c.proposal(1, &genesis, c.nodes[0].high_qc.clone(), 0));
    let good = block_of(c.proposal(2, &b1, qc_for(&c, &b1, &[0, 1, 2]), 0));
    let node = &c.nodes[0];
    assert!(!node.blocks.contains_key(&b1.digest()));
    assert!(node.syncable(&good));
    let proof = c.equivocation_proof();
    let bad: Vec<(&str, Block)> = vec![
        (
            "a TC that is not one",
            Block {
                tc: Some(TimeoutCert {
                    round: 1,
                    votes: Vec::new(),
                }),
                ..good.clone()
            },
        ),
        (
            "a QC of another block",
            Block {
                parent: [7; 32],
                ..good.clone()
            },
        ),
        (
            "a QC not below the block's round",
            Block {
                round: good.qc.round,
                ..good.clone()
            },
        ),
        (
            "height 0",
            Block {
                height: 0,
                ..good.clone()
            },
        ),
        (
            "a lane too many",
            Block {
                cut: [good.cut.clone(), vec![0]].concat(),
                ..good.clone()
            },
        ),
        (
            "too much evidence",
            Block {
                evidence: vec![proof; EVIDENCE_PER_BLOCK_MAX + 1],
                ..good.clone()
            },
        ),
    ];
    for (what, block) in bad {
        assert!(!node.syncable(&block), "{what}");
    }
}
