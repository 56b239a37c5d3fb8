//! A replica that lost its disk, at one replica: it persists that it rejoins before anything
//! else, signs nothing (no prepare, no timeout) until enough peers answered its request under
//! its own nonce, learns floors above everything it could have signed, and resumes a rejoin
//! in progress after a restart.

use ccbft_core::client::SignedTransfer;
use ccbft_core::crypto::{Bitmap, Certificate, Digest, Signature, Signer, SimKeys, Tag};
use ccbft_core::durable::{Record, RejoinFloors, RejoinState};
use ccbft_core::ledger::Transfer;
use ccbft_core::messages::{
    commit_payload, timeout_payload, vote_payload, GlobalMessage, Lane, LocalCert, LocalMessage,
    Message, Payload, QuorumCert, RecoveryReply, Round, Seq, TimeoutCert,
};
use ccbft_core::pbft::SLOTS_AHEAD_MAX;
use ccbft_core::replica::{answers_needed, Action, Input, Replica, ReplicaConfig};
use ccbft_core::sim::sim_client_sign;
use ccbft_core::topology::{ReplicaId, Topology};
use std::sync::Arc;

mod common;
use common::{four_replica_config, pre_prepare, step_verified, LANE};

const NONCE: u64 = 0x5eed;
const REJOINER: ReplicaId = 3;

/// A primary's pre-prepare, then long enough for any prepare and any global timeout.
fn pre_prepare_and_wait(replica: &mut Replica, keys: &SimKeys) -> Vec<Action> {
    let message = pre_prepare(keys, one_transfer(keys));
    let mut actions = step_verified(replica, keys, Input::Message { from: 0, message });
    for _ in 0..4_000 {
        actions.extend(step_verified(replica, keys, Input::Tick));
    }
    actions
}

fn sent(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

fn persisted(actions: &[Action]) -> Vec<&Record> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist { record, .. } => Some(record),
            _ => None,
        })
        .collect()
}

/// Signed by the replica or by the local or global tier: what a silent replica must not send.
fn signed_votes(actions: &[Action]) -> usize {
    sent(actions)
        .iter()
        .filter(|m| {
            matches!(
                m,
                Message::Local(
                    LocalMessage::PrePrepare { .. }
                        | LocalMessage::Prepare { .. }
                        | LocalMessage::Commit { .. }
                        | LocalMessage::ViewChange(_)
                        | LocalMessage::NewView { .. }
                ) | Message::Global(
                    GlobalMessage::Vote { .. }
                        | GlobalMessage::Timeout { .. }
                        | GlobalMessage::Proposal { .. }
                )
            )
        })
        .count()
}

fn one_transfer(keys: &SimKeys) -> Vec<SignedTransfer> {
    let transfer = Transfer {
        key: 1,
        from: 3,
        to: 4,
        amount: 10,
    };
    vec![sim_client_sign(keys, transfer)]
}

/// Peer `from`'s answer to a recovery request under `nonce`.
fn answer(keys: &SimKeys, from: ReplicaId, nonce: u64) -> Message {
    answer_of(keys, four_replica_config(keys, from), REJOINER, nonce)
}

/// The answer of a fresh replica with `config` to `rejoiner`'s recovery request.
fn answer_of(keys: &SimKeys, config: ReplicaConfig, rejoiner: ReplicaId, nonce: u64) -> Message {
    let from = config.me;
    let mut peer = Replica::new(config, &keys.signer(from));
    let request = Message::RecoveryRequest {
        nonce,
        from: rejoiner,
    };
    let actions = step_verified(
        &mut peer,
        keys,
        Input::Message {
            from: rejoiner,
            message: request,
        },
    );
    let replies: Vec<&Message> = sent(&actions)
        .into_iter()
        .filter(|m| matches!(m, Message::RecoveryReply(_)))
        .collect();
    assert_eq!(replies.len(), 1, "a peer answers a rejoining replica once");
    replies[0].clone()
}

#[test]
fn a_rejoining_replica_persists_first_then_asks_every_peer() {
    let keys = SimKeys::new(4, 7);
    let (replica, actions) = Replica::rejoin(
        four_replica_config(&keys, REJOINER),
        &keys.signer(REJOINER),
        NONCE,
    )
    .unwrap();
    assert!(replica.is_rejoining());
    let Action::Persist { seq: 1, record } = &actions[0] else {
        panic!("the first action persists the rejoin: {actions:?}");
    };
    assert_eq!(
        record,
        &Record::Rejoined(RejoinState {
            nonce: NONCE,
            floors: None
        })
    );
    let asked: Vec<(&Vec<ReplicaId>, u64)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                message: Message::RecoveryRequest { nonce: NONCE, .. },
                after,
            } => Some((to, *after)),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec![(&vec![0, 1, 2], 1)],
        "asks all others, after the record"
    );
}

#[test]
fn a_rejoining_replica_signs_nothing_until_enough_peers_answered() {
    let keys = SimKeys::new(4, 7);
    let quorum = Topology::synthetic(4, 1, 1).unwrap().quorum();
    assert_eq!(answers_needed(&quorum), 3);
    let (mut replica, _) = Replica::rejoin(
        four_replica_config(&keys, REJOINER),
        &keys.signer(REJOINER),
        NONCE,
    )
    .unwrap();
    let actions = pre_prepare_and_wait(&mut replica, &keys);
    assert_eq!(
        signed_votes(&actions),
        0,
        "silent while it learns its floors"
    );
    // A stale answer (another nonce) does not count; neither does a second from one peer.
    for (from, nonce) in [(0, NONCE + 1), (0, NONCE), (0, NONCE), (1, NONCE)] {
        let message = answer(&keys, from, nonce);
        let actions = step_verified(&mut replica, &keys, Input::Message { from, message });
        assert!(
            !persisted(&actions)
                .iter()
                .any(|r| matches!(r, Record::Rejoined(_))),
            "floors from too few answers"
        );
    }
    let message = answer(&keys, 2, NONCE);
    let actions = step_verified(&mut replica, &keys, Input::Message { from: 2, message });
    // Entry round 1 (the genesis QC), rotation 3: next slot starts 3, then 6. No LC yet.
    let floors = RejoinFloors {
        global_round: 6,
        lane_seqs: vec![2 * SLOTS_AHEAD_MAX],
    };
    assert!(
        persisted(&actions).contains(&&Record::Rejoined(RejoinState {
            nonce: NONCE,
            floors: Some(floors)
        })),
        "{actions:?}"
    );
    assert!(
        replica.is_rejoining(),
        "below its floors it still counts as rejoining"
    );
    assert_eq!(
        replica.durable_state().last_voted_round,
        5,
        "never votes below the global floor"
    );
    let actions = pre_prepare_and_wait(&mut replica, &keys);
    assert_eq!(
        signed_votes(&actions),
        0,
        "no prepare below the lane floor, no timeout below the global floor"
    );
}

#[test]
fn a_rejoining_replica_answers_no_other_rejoining_replica() {
    let keys = SimKeys::new(4, 7);
    let (mut replica, _) =
        Replica::rejoin(four_replica_config(&keys, 2), &keys.signer(2), NONCE).unwrap();
    let request = Message::RecoveryRequest {
        nonce: 1,
        from: REJOINER,
    };
    let actions = step_verified(
        &mut replica,
        &keys,
        Input::Message {
            from: REJOINER,
            message: request,
        },
    );
    assert!(sent(&actions).is_empty(), "{actions:?}");
}

#[test]
fn a_restart_resumes_the_rejoin_and_keeps_learned_floors() {
    let keys = SimKeys::new(4, 7);
    let signer = keys.signer(REJOINER);
    let learning = Record::Rejoined(RejoinState {
        nonce: NONCE,
        floors: None,
    });
    let mut restored = Replica::restore(
        four_replica_config(&keys, REJOINER),
        &signer,
        &[learning],
        1,
    );
    assert!(restored.is_rejoining());
    let mut actions = Vec::new();
    for _ in 0..100 {
        actions.extend(step_verified(&mut restored, &keys, Input::Tick));
    }
    assert!(
        sent(&actions)
            .iter()
            .any(|m| matches!(m, Message::RecoveryRequest { nonce: NONCE, .. })),
        "asks again under the same nonce"
    );
    let learned = Record::Rejoined(RejoinState {
        nonce: NONCE,
        floors: Some(RejoinFloors {
            global_round: 9,
            lane_seqs: vec![0],
        }),
    });
    let restored = Replica::restore(four_replica_config(&keys, REJOINER), &signer, &[learned], 2);
    assert_eq!(restored.durable_state().last_voted_round, 8);
    assert!(
        restored.is_rejoining(),
        "its certificates reach round 1 only"
    );
}

#[test]
fn a_rejoin_is_refused_where_too_few_peers_could_answer() {
    let keys = SimKeys::new(4, 7);
    let mut lonely = four_replica_config(&keys, 0);
    lonely.topology = Arc::new(Topology::synthetic(4, 4, 1).unwrap());
    let Err(error) = Replica::rejoin(lonely, &keys.signer(0), NONCE) else {
        panic!("a member of a domain of one rejoined");
    };
    assert!(error.to_string().contains("domain"), "{error}");
}

/// Answers from every peer, each altered by `alter` (a reply message).
fn altered_answers(keys: &SimKeys, alter: fn(&mut RecoveryReply)) -> Vec<(ReplicaId, Message)> {
    (0..3)
        .map(|from| {
            let Message::RecoveryReply(mut reply) = answer(keys, from, NONCE) else {
                unreachable!("answer returns a reply");
            };
            alter(&mut reply);
            (from, Message::RecoveryReply(reply))
        })
        .collect()
}

fn learns_floors(
    replica: &mut Replica,
    keys: &SimKeys,
    answers: Vec<(ReplicaId, Message)>,
) -> bool {
    answers.into_iter().any(|(from, message)| {
        let actions = step_verified(replica, keys, Input::Message { from, message });
        persisted(&actions)
            .iter()
            .any(|r| matches!(r, Record::Rejoined(_)))
    })
}

/// Only answers to our own nonce count, and only those whose certificates pass the door:
/// a round-0 QC of another block, or a TC without its votes (neither carries a signature
/// for the host to refuse), makes a peer's answer worthless.
#[test]
fn answers_to_another_nonce_or_with_uncertified_claims_do_not_count() {
    let keys = SimKeys::new(4, 7);
    let alterations: [fn(&mut RecoveryReply); 3] = [
        |reply| reply.nonce += 1,
        |reply| reply.high_qc.block = [7; 32],
        |reply| {
            reply.high_tc = Some(TimeoutCert {
                round: 40,
                votes: Vec::new(),
            })
        },
    ];
    for alter in alterations {
        let (mut replica, _) = Replica::rejoin(
            four_replica_config(&keys, REJOINER),
            &keys.signer(REJOINER),
            NONCE,
        )
        .unwrap();
        let answers = altered_answers(&keys, alter);
        assert!(!learns_floors(&mut replica, &keys, answers));
        let genuine = altered_answers(&keys, |_| {});
        assert!(
            learns_floors(&mut replica, &keys, genuine),
            "then genuine ones do"
        );
    }
}

/// Answers from all over the cluster are not enough: n_d - q_d + f_d + 1 must come from the
/// rejoiner's own domain (they bound its lanes).
#[test]
fn a_rejoin_waits_for_enough_answers_from_its_own_domain() {
    let keys = SimKeys::new(7, 7);
    let topology = Arc::new(Topology::synthetic(7, 2, 1).unwrap());
    let domain = topology.domain_of(0);
    let members = topology.domain_members(domain);
    assert_eq!(
        members.len(),
        4,
        "a domain of four: three answers needed from it"
    );
    let config_of = |me: ReplicaId| ReplicaConfig {
        topology: topology.clone(),
        ..four_replica_config(&keys, me)
    };
    let rejoiner = members[0];
    let (mut replica, _) =
        Replica::rejoin(config_of(rejoiner), &keys.signer(rejoiner), NONCE).unwrap();
    let others: Vec<ReplicaId> = (0..7).filter(|id| !members.contains(id)).collect();
    let order = others.iter().chain(&members[1..]);
    let mut learned_after = None;
    for (count, &from) in order.enumerate() {
        let message = answer_of(&keys, config_of(from), rejoiner, NONCE);
        let actions = step_verified(&mut replica, &keys, Input::Message { from, message });
        let learned = persisted(&actions)
            .iter()
            .any(|r| matches!(r, Record::Rejoined(_)));
        if learned {
            learned_after = Some(count + 1);
            break;
        }
    }
    // Three from the other domain and two of its own make the global five, not enough.
    assert_eq!(learned_after, Some(others.len() + 3));
}

// ---- Certificates of the cluster's progress the rejoiner forgot, signed with SimKeys ----

/// A QC of `block` at `round`, signed by replicas 0, 1 and 2 (a quorum of four).
fn qc_of(keys: &SimKeys, round: Round, block: Digest) -> QuorumCert {
    let payload = vote_payload(round, &block);
    let signatures: Vec<Signature> = (0..3)
        .map(|s| keys.signer(s).sign(Tag::GlobalVote, &payload))
        .collect();
    let mut signers = Bitmap::default();
    (0..3).for_each(|s| {
        signers.insert(s);
    });
    QuorumCert {
        round,
        block,
        cert: Certificate {
            signers,
            aggregate: keys.signer(0).aggregate(&signatures),
        },
    }
}

/// A TC of `round` from replicas 0, 1 and 2, each timing out with the high-QC round given.
fn tc_of(keys: &SimKeys, round: Round, high_qc_rounds: [Round; 3]) -> TimeoutCert {
    let votes = (0..3)
        .zip(high_qc_rounds)
        .map(|(s, high)| {
            let signature = keys
                .signer(s)
                .sign(Tag::Timeout, &timeout_payload(round, high));
            (s, high, signature)
        })
        .collect();
    TimeoutCert { round, votes }
}

/// An LC of `lane` at view 0, `seq`, signed by the first q_d members of the lane's domain.
fn lc_of(keys: &SimKeys, topology: &Topology, lane: Lane, seq: Seq, digest: Digest) -> LocalCert {
    let q = topology.domain_quorum(lane.domain).q as usize;
    let members: Vec<ReplicaId> = topology.domain_members(lane.domain)[..q].to_vec();
    let payload = commit_payload(lane, 0, seq, &digest);
    let signatures: Vec<Signature> = members
        .iter()
        .map(|&s| keys.signer(s).sign(Tag::LocalCommit, &payload))
        .collect();
    let mut signers = Bitmap::default();
    members.iter().for_each(|&s| {
        signers.insert(s);
    });
    LocalCert {
        lane,
        view: 0,
        seq,
        digest,
        cert: Certificate {
            signers,
            aggregate: keys.signer(members[0]).aggregate(&signatures),
        },
    }
}

/// Peer `from`'s timeout vote of `round`, carrying `high_qc` and `last_tc`.
fn timeout_vote(
    keys: &SimKeys,
    from: ReplicaId,
    round: Round,
    high_qc: QuorumCert,
    last_tc: Option<TimeoutCert>,
) -> Message {
    let signature = keys
        .signer(from)
        .sign(Tag::Timeout, &timeout_payload(round, high_qc.round));
    Message::Global(GlobalMessage::Timeout {
        round,
        high_qc,
        last_tc,
        from,
        signature,
    })
}

/// The genesis QC, as every fresh peer answers it.
fn genesis_qc(keys: &SimKeys) -> QuorumCert {
    let Message::RecoveryReply(reply) = answer(keys, 0, NONCE) else {
        unreachable!("answer returns a reply");
    };
    assert_eq!(reply.high_qc.round, 0);
    reply.high_qc
}

/// The floors persisted once the answers are enough, if they are.
fn floors_learned(
    replica: &mut Replica,
    keys: &SimKeys,
    answers: Vec<(ReplicaId, Message)>,
) -> Option<RejoinFloors> {
    answers.into_iter().find_map(|(from, message)| {
        let actions = step_verified(replica, keys, Input::Message { from, message });
        persisted(&actions).into_iter().find_map(|r| match r {
            Record::Rejoined(RejoinState {
                floors: Some(floors),
                ..
            }) => Some(floors.clone()),
            _ => None,
        })
    })
}

/// Timeout votes the replica signed: (round, high-QC round) of each.
fn timeouts_signed(actions: &[Action]) -> Vec<(Round, Round)> {
    sent(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Global(GlobalMessage::Timeout {
                round,
                high_qc,
                from: REJOINER,
                ..
            }) => Some((*round, high_qc.round)),
            _ => None,
        })
        .collect()
}

/// The safety rule of `may_time_out`: past its floor, a rejoined replica that holds a TC
/// claiming a QC above its own does not time out (its forgotten life may have voted for the
/// block of that QC, and its timeout would then hide the lock), neither on its own timer nor
/// joining f + 1 peers; once the claimed QC arrives it times out as any replica.
#[test]
fn a_rejoined_replica_signs_no_timeout_until_it_holds_the_qc_its_tc_claims() {
    let keys = SimKeys::new(4, 7);
    let (mut replica, _) = Replica::rejoin(
        four_replica_config(&keys, REJOINER),
        &keys.signer(REJOINER),
        NONCE,
    )
    .unwrap();
    let floors = floors_learned(&mut replica, &keys, altered_answers(&keys, |_| {}));
    assert_eq!(floors.map(|f| f.global_round), Some(6));
    // Meanwhile the cluster certified a block at round 7, then timed out in round 9 with
    // replica 0 naming that QC: TC(9) claims round 7 and moves everyone to round 12.
    let genesis = genesis_qc(&keys);
    let claimed = qc_of(&keys, 7, [7; 32]);
    let tc = tc_of(&keys, 9, [claimed.round, 0, 0]);
    assert_eq!(tc.max_high_qc_round(), 7);
    let message = timeout_vote(&keys, 1, 12, genesis.clone(), Some(tc));
    let mut actions = step_verified(&mut replica, &keys, Input::Message { from: 1, message });
    assert_eq!(replica.global_round(), 12, "the TC moved it past its floor");
    assert!(replica.global_floor_passed());
    assert_eq!(replica.durable_state().high_qc_round, 0);
    // A committed batch gives the round work, so its timer runs out.
    let payload = Payload::from_transfers(&one_transfer(&keys));
    let topology = Topology::synthetic(4, 1, 1).unwrap();
    let lc = lc_of(&keys, &topology, LANE, 1, payload.digest());
    let message = Message::Batch { lc, payload };
    actions.extend(step_verified(
        &mut replica,
        &keys,
        Input::Message { from: 0, message },
    ));
    for _ in 0..4_000 {
        actions.extend(step_verified(&mut replica, &keys, Input::Tick));
    }
    // A second peer's timeout: f + 1 report round 12, which an honest replica would join.
    let message = timeout_vote(&keys, 2, 12, genesis, None);
    actions.extend(step_verified(
        &mut replica,
        &keys,
        Input::Message { from: 2, message },
    ));
    assert_eq!(
        timeouts_signed(&actions),
        vec![],
        "no timeout without the QC the TC claims"
    );
    assert_eq!(replica.global_round(), 12);
    // The claimed QC arrives (its block not yet): now the timer may run out.
    let message = Message::Global(GlobalMessage::Sync {
        high_qc: claimed,
        high_tc: None,
    });
    let mut actions = step_verified(&mut replica, &keys, Input::Message { from: 0, message });
    assert_eq!(replica.durable_state().high_qc_round, 7);
    for _ in 0..4_000 {
        actions.extend(step_verified(&mut replica, &keys, Input::Tick));
    }
    assert_eq!(
        timeouts_signed(&actions).first(),
        Some(&(12, 7)),
        "times out in round 12 with the claimed QC"
    );
}

/// A floor that is a slot start led by the rejoiner: every round below it is given up (no
/// proposal either), the floor round itself is not. Reaching the floor round ends the global
/// part of the rejoin, not one round later.
#[test]
fn a_rejoined_replica_proposes_in_the_round_of_its_floor_and_counts_as_past_it_there() {
    let keys = SimKeys::new(4, 7);
    let (mut replica, _) = Replica::rejoin(
        four_replica_config(&keys, REJOINER),
        &keys.signer(REJOINER),
        NONCE,
    )
    .unwrap();
    // The peers hold TC(2): they entered round 3, so the floor is two slots on, round 9,
    // the first round of the rejoiner's slot.
    let answers: Vec<(ReplicaId, Message)> = altered_answers(&keys, |_| {})
        .into_iter()
        .map(|(from, message)| {
            let Message::RecoveryReply(mut reply) = message else {
                unreachable!("answers are replies");
            };
            reply.high_tc = Some(tc_of(&keys, 2, [0, 0, 0]));
            (from, Message::RecoveryReply(reply))
        })
        .collect();
    let floors = floors_learned(&mut replica, &keys, answers);
    assert_eq!(floors.map(|f| f.global_round), Some(9));
    assert_eq!(replica.durable_state().last_voted_round, 8);
    assert_eq!(
        replica.global_round(),
        3,
        "the answers' TC brought it to round 3"
    );
    assert!(!replica.global_floor_passed(), "round 3 is below the floor");
    // Round 8 timed out; TC(8) brings the cluster to round 9, the floor.
    let tc = tc_of(&keys, 8, [0, 0, 0]);
    let message = Message::Global(GlobalMessage::Sync {
        high_qc: genesis_qc(&keys),
        high_tc: Some(tc),
    });
    let actions = step_verified(&mut replica, &keys, Input::Message { from: 0, message });
    assert_eq!(replica.global_round(), 9);
    assert!(
        replica.global_floor_passed(),
        "entered at its floor: the global tier votes again"
    );
    let proposed: Vec<Round> = sent(&actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Global(GlobalMessage::Proposal { block, .. }) => Some(block.round),
            _ => None,
        })
        .collect();
    assert_eq!(proposed, vec![9], "the leader of round 9 proposes there");
}

/// The lane floor counts only LCs of the rejoiner's own domain: an LC of another domain's
/// lane at a higher sequence, valid as it is, bounds nothing it signed.
#[test]
fn a_rejoins_lane_floor_comes_from_its_own_domains_lcs_only() {
    let keys = SimKeys::new(7, 7);
    let topology = Arc::new(Topology::synthetic(7, 2, 1).unwrap());
    let rejoiner = topology.domain_members(0)[0];
    let other_domain = topology.domain_of(topology.domain_members(1)[0]);
    assert_ne!(other_domain, 0);
    let config_of = |me: ReplicaId| ReplicaConfig {
        topology: topology.clone(),
        ..four_replica_config(&keys, me)
    };
    let (mut replica, _) =
        Replica::rejoin(config_of(rejoiner), &keys.signer(rejoiner), NONCE).unwrap();
    let own = lc_of(
        &keys,
        &topology,
        Lane {
            domain: 0,
            shard: 0,
        },
        5,
        [5; 32],
    );
    let foreign = lc_of(
        &keys,
        &topology,
        Lane {
            domain: other_domain,
            shard: 0,
        },
        40,
        [40; 32],
    );
    let answers: Vec<(ReplicaId, Message)> = (0..7)
        .filter(|&from| from != rejoiner)
        .map(|from| {
            let Message::RecoveryReply(mut reply) =
                answer_of(&keys, config_of(from), rejoiner, NONCE)
            else {
                panic!("a peer answers with a reply");
            };
            reply.lane_lcs = vec![foreign.clone(), own.clone()];
            (from, Message::RecoveryReply(reply))
        })
        .collect();
    let floors = floors_learned(&mut replica, &keys, answers);
    assert_eq!(
        floors.map(|f| f.lane_seqs),
        Some(vec![5 + 2 * SLOTS_AHEAD_MAX]),
        "the floor of its one lane, from the LC of that lane"
    );
}
