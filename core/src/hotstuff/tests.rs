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
