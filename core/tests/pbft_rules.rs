//! Protocol rules of the local tier, driven message by message.

use ccbft_core::bugs::PlantedBugs;
use ccbft_core::certificates::CertRules;
use ccbft_core::client::{ClientSignature, SignedTransfer};
use ccbft_core::crypto::{Bitmap, Certificate, Signature, Tag};
use ccbft_core::crypto::{SimKeys, SimSigner};
use ccbft_core::ledger::Transfer;
use ccbft_core::messages::Payload;
use ccbft_core::messages::{Lane, LocalCert, LocalMessage, PreparedProof, ViewChange};
use ccbft_core::pbft::{LocalConfig, LocalOutput, LocalShard, SLOTS_AHEAD_MAX, WINDOW_SEQS};
use ccbft_core::topology::{Quorum, ReplicaId, Topology};
use std::collections::{BTreeMap, VecDeque};

const LANE: Lane = Lane {
    domain: 0,
    shard: 0,
};

struct Group {
    shards: Vec<LocalShard>,
    signers: Vec<SimSigner>,
    queue: VecDeque<(ReplicaId, LocalMessage)>,
    committed: Vec<Vec<(u64, [u8; 32])>>,
}

impl Group {
    fn new(n: u32) -> Group {
        Group::with_shards(n, 1)
    }

    /// `n` members of one domain whose accounts home over `shards` lanes; the group runs
    /// lane 0.
    fn with_shards(n: u32, shards: u32) -> Group {
        let keys = SimKeys::new(n, 1);
        let config = LocalConfig {
            lane: LANE,
            members: (0..n).collect(),
            quorum: Quorum::byzantine(n),
            request_timeout_ticks: 10,
            rules: std::sync::Arc::new(CertRules::new(
                &Topology::synthetic(n, 1, shards).expect("one domain"),
                PlantedBugs::none(),
            )),
        };
        Group {
            shards: (0..n)
                .map(|id| LocalShard::new(config.clone(), id, PlantedBugs::none()))
                .collect(),
            signers: (0..n).map(|id| keys.signer(id)).collect(),
            queue: VecDeque::new(),
            committed: vec![Vec::new(); n as usize],
        }
    }

    fn absorb(&mut self, outputs: Vec<LocalOutput>, id: usize) {
        for output in outputs {
            match output {
                LocalOutput::Send { to, message } => to
                    .into_iter()
                    .for_each(|t| self.queue.push_back((t, message.clone()))),
                LocalOutput::Committed { lc, .. } => self.committed[id].push((lc.seq, lc.digest)),
                _ => {}
            }
        }
    }

    /// Deliver queued messages; `drop` decides which are lost.
    fn deliver(&mut self, drop: impl Fn(ReplicaId, &LocalMessage) -> bool) {
        while let Some((to, message)) = self.queue.pop_front() {
            if drop(to, &message) {
                continue;
            }
            let mut out = Vec::new();
            self.shards[to as usize].on_message(message, &self.signers[to as usize], &mut out);
            self.absorb(out, to as usize);
        }
    }

    fn tick(&mut self, ids: &[usize]) {
        for &id in ids {
            let mut out = Vec::new();
            self.shards[id].on_tick(&self.signers[id], &|_| 0, &mut out);
            self.absorb(out, id);
        }
    }
}

/// A client transaction; the shard does not verify client signatures (the replica has the
/// host check them before a shard sees the transaction).
fn transfer(key: u128) -> SignedTransfer {
    SignedTransfer {
        transfer: Transfer {
            key,
            from: 1,
            to: 2,
            amount: 5,
        },
        client: 1,
        signature: ClientSignature([0; 64]),
    }
}

#[test]
fn normal_case_commits_the_same_batch_everywhere() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    assert!(group.shards[0].on_client(transfer(1).into(), &mut out));
    for _ in 0..5 {
        group.tick(&[0, 1, 2, 3]);
        group.deliver(|_, _| false);
    }
    let first = group.committed[0].clone();
    assert_eq!(first.len(), 1);
    assert!(group.committed.iter().all(|c| *c == first));
}

#[test]
fn view_change_carries_a_prepared_batch_into_the_new_view() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[0].on_client(transfer(7).into(), &mut out);
    // The primary (r0) pre-prepares; every member prepares, but every commit is lost, so
    // the batch is prepared everywhere and committed nowhere.
    for _ in 0..3 {
        group.tick(&[0]);
    }
    group.deliver(|_, m| matches!(m, LocalMessage::Commit { .. }));
    assert!(group.committed.iter().all(|c| c.is_empty()));
    let prepared_digest = Payload::from_transfers(&[transfer(7)]).digest();
    // The primary goes silent; a request waits at the backups until they suspect it.
    for id in 1..4 {
        let mut out = Vec::new();
        group.shards[id].on_client(transfer(8).into(), &mut out);
    }
    group.queue.clear(); // the forwards to the primary are lost
    for _ in 0..40 {
        group.tick(&[1, 2, 3]);
        group.deliver(|to, _| to == 0);
    }
    // View 1 is led by r1 and its new-view re-proposed the prepared batch at sequence 1.
    for id in 1..4 {
        assert!(group.shards[id].view() >= 1);
        assert_eq!(
            group.committed[id].first(),
            Some(&(1, prepared_digest)),
            "replica {id}"
        );
    }
}

#[test]
fn equivocating_primary_is_reported_with_both_messages() {
    let mut group = Group::new(4);
    let lane = LANE;
    let make = |amount: u64| {
        let mut tx = transfer(3);
        tx.transfer.amount = amount;
        let payload = Payload::from_transfers(&[tx]);
        let digest = payload.digest();
        let payload_bytes = ccbft_core::messages::prepare_payload(lane, 0, 1, &digest);
        let signature = ccbft_core::crypto::Signer::sign(
            &group.signers[0],
            ccbft_core::crypto::Tag::LocalPrepare,
            &payload_bytes,
        );
        LocalMessage::PrePrepare {
            lane,
            view: 0,
            seq: 1,
            digest,
            payload,
            from: 0,
            signature,
        }
    };
    let (a, b) = (make(1), make(2));
    let mut out = Vec::new();
    group.shards[1].on_message(a, &group.signers[1], &mut out);
    group.shards[1].on_message(b, &group.signers[1], &mut out);
    let evidence: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            LocalOutput::Evidence(e) => Some(e.kind()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence, vec!["equivocation"]);
    assert!(
        group.shards[1].view() == 1,
        "the backup moves to the next view"
    );
}

fn sign(group: &Group, id: usize, tag: ccbft_core::crypto::Tag, bytes: &[u8]) -> Signature {
    ccbft_core::crypto::Signer::sign(&group.signers[id], tag, bytes)
}

/// Review finding: a view change's LC was counted, not checked, so one member plus
/// outsiders pushed the lane's stable point to any sequence (u64::MAX then overflowed).
#[test]
fn a_view_change_with_an_lc_of_outsiders_is_ignored() {
    let mut group = Group::new(4);
    let digest = [9; 32];
    let mut signers = Bitmap::default();
    for id in [3, 9, 10] {
        signers.insert(id);
    }
    let lc = LocalCert {
        lane: LANE,
        view: 0,
        seq: u64::MAX,
        digest,
        cert: Certificate {
            signers,
            aggregate: Signature(vec![0; 16]),
        },
    };
    let mut vc = ViewChange {
        lane: LANE,
        new_view: 1,
        committed_upto: u64::MAX,
        committed_lc: Some(lc),
        prepared: Vec::new(),
        from: 3,
        signature: Signature(Vec::new()),
    };
    vc.signature = sign(&group, 3, Tag::LocalViewChange, &vc.payload());
    let mut out = Vec::new();
    group.shards[1].on_message(LocalMessage::ViewChange(vc), &group.signers[1], &mut out);
    assert!(
        !out.iter()
            .any(|o| matches!(o, LocalOutput::NeedBatches { .. })),
        "no batches are fetched on the word of outsiders: {out:?}"
    );
    assert_eq!(group.shards[1].view(), 0);
    group.shards[1].assert_bounded();
}

/// Review finding: a new primary skipped slots accepted in an older view, so a sequence
/// nobody prepared stayed empty for good and nothing after it could commit.
#[test]
fn a_new_primary_fills_a_slot_accepted_only_in_an_older_view() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[0].on_client(transfer(7).into(), &mut out);
    for _ in 0..3 {
        group.tick(&[0]);
    }
    // Only r1 sees the pre-prepare of sequence 1; nobody prepares it.
    group.deliver(|to, m| !(to == 1 && matches!(m, LocalMessage::PrePrepare { .. })));
    for id in 1..4 {
        let mut out = Vec::new();
        group.shards[id].on_client(transfer(8).into(), &mut out);
    }
    group.queue.clear();
    for _ in 0..60 {
        group.tick(&[1, 2, 3]);
        group.deliver(|to, _| to == 0);
    }
    for id in 1..4 {
        assert!(group.shards[id].view() >= 1, "replica {id} changed view");
        assert_eq!(
            group.committed[id].first().map(|c| c.0),
            Some(1),
            "replica {id} committed sequence 1"
        );
    }
}

/// Review finding: a Forward sent only to backups made them suspect an honest primary (the
/// backups waited for a request the primary never saw). A backup relays it to the primary.
#[test]
fn a_forward_sent_only_to_backups_reaches_the_primary_and_changes_no_view() {
    let mut group = Group::new(4);
    for id in [1, 2] {
        let mut out = Vec::new();
        group.shards[id].on_forward(transfer(11).into(), 3, &mut out);
        group.absorb(out, id);
    }
    for _ in 0..40 {
        group.tick(&[0, 1, 2, 3]);
        group.deliver(|_, _| false);
    }
    for id in 0..4 {
        assert_eq!(group.shards[id].view(), 0, "replica {id} kept the primary");
        assert_eq!(
            group.committed[id].len(),
            1,
            "replica {id} committed the forward"
        );
    }
}

/// Review finding: a few junk prepares from one member filled a slot's (view, digest) map
/// and blocked the sequence. A member backs one digest per view; the honest run commits.
#[test]
fn junk_prepares_from_one_member_do_not_block_a_sequence() {
    let mut group = Group::new(4);
    for i in 0..200u32 {
        let digest: [u8; 32] = std::array::from_fn(|b| (i >> (b % 4 * 8)) as u8);
        let view = u64::from(i % 9);
        let bytes = ccbft_core::messages::prepare_payload(LANE, view, 1, &digest);
        let prepare = LocalMessage::Prepare {
            lane: LANE,
            view,
            seq: 1,
            digest,
            from: 3,
            signature: sign(&group, 3, Tag::LocalPrepare, &bytes),
        };
        for to in 0..3 {
            let mut out = Vec::new();
            group.shards[to].on_message(prepare.clone(), &group.signers[to], &mut out);
        }
    }
    (0..4).for_each(|id| group.shards[id].assert_bounded());
    let mut out = Vec::new();
    group.shards[0].on_client(transfer(1).into(), &mut out);
    for _ in 0..5 {
        group.tick(&[0, 1, 2, 3]);
        group.deliver(|_, _| false);
    }
    for id in 0..3 {
        assert_eq!(group.committed[id].len(), 1, "replica {id}");
    }
}

/// The primary r0 pre-prepared one batch and only backup r1 got it (and prepared it): the
/// group, and the pre-prepare's view, sequence and digest.
fn backup_holding_a_batch() -> (Group, u64, u64, [u8; 32]) {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[0].on_client(transfer(1).into(), &mut out);
    for _ in 0..3 {
        group.tick(&[0]);
    }
    let (view, seq, digest) = group
        .queue
        .iter()
        .find_map(|(_, m)| match m {
            LocalMessage::PrePrepare {
                view, seq, digest, ..
            } => Some((*view, *seq, *digest)),
            _ => None,
        })
        .expect("the primary pre-prepared");
    group.deliver(|to, _| to != 1);
    (group, view, seq, digest)
}

/// Mutation run finding: a prepare from outside the domain must not count. A backup holding
/// the pre-prepare and its own prepare (2 of q = 3) is not prepared by two outsiders'
/// prepares; one member's prepare prepares it (it then sends its commit).
#[test]
fn prepares_from_outside_the_domain_are_not_counted() {
    let (mut group, view, seq, digest) = backup_holding_a_batch();
    let bytes = ccbft_core::messages::prepare_payload(LANE, view, seq, &digest);
    let prepare = |group: &Group, from: ReplicaId| LocalMessage::Prepare {
        lane: LANE,
        view,
        seq,
        digest,
        from,
        signature: sign(group, 2, Tag::LocalPrepare, &bytes),
    };
    let commits_sent = |out: &[LocalOutput]| {
        out.iter().any(|o| {
            matches!(
                o,
                LocalOutput::Send {
                    message: LocalMessage::Commit { .. },
                    ..
                }
            )
        })
    };
    for outsider in [4, 5] {
        let mut out = Vec::new();
        let message = prepare(&group, outsider);
        group.shards[1].on_message(message, &group.signers[1], &mut out);
        assert!(!commits_sent(&out), "prepared by outsider r{outsider}");
    }
    let mut out = Vec::new();
    let message = prepare(&group, 2);
    group.shards[1].on_message(message, &group.signers[1], &mut out);
    assert!(
        commits_sent(&out),
        "a member's prepare completes the quorum"
    );
}

/// Mutation run finding: commits count up to VIEWS_AHEAD_MAX views ahead of ours (a batch
/// committed there is committed) and no further. A backup holding the batch commits it on
/// q commits at the bound; q commits one view further are dropped.
#[test]
fn commits_count_up_to_views_ahead_max_ahead() {
    let committed_with_commits_of = |view: u64| {
        let (mut group, _, seq, digest) = backup_holding_a_batch();
        assert!(group.committed[1].is_empty());
        let bytes = ccbft_core::messages::commit_payload(LANE, view, seq, &digest);
        for from in [0, 2, 3] {
            let commit = LocalMessage::Commit {
                lane: LANE,
                view,
                seq,
                digest,
                from,
                signature: sign(&group, from as usize, Tag::LocalCommit, &bytes),
            };
            let mut out = Vec::new();
            group.shards[1].on_message(commit, &group.signers[1], &mut out);
            group.absorb(out, 1);
        }
        !group.committed[1].is_empty()
    };
    let bound = ccbft_core::pbft::VIEWS_AHEAD_MAX;
    assert!(committed_with_commits_of(bound), "at the bound");
    assert!(!committed_with_commits_of(bound + 1), "beyond the bound");
}

/// Signers {0, 1, 2}: a quorum of the four-member domain (the shard counts signers; the host
/// has verified the aggregate).
fn quorum_cert() -> Certificate {
    let mut signers = Bitmap::default();
    [0, 1, 2].into_iter().for_each(|id| {
        signers.insert(id);
    });
    Certificate {
        signers,
        aggregate: Signature(vec![0; 16]),
    }
}

fn proof(view: u64, seq: u64, payload: Vec<SignedTransfer>) -> PreparedProof {
    let payload = Payload::from_transfers(&payload);
    PreparedProof {
        view,
        seq,
        digest: payload.digest(),
        payload,
        cert: quorum_cert(),
    }
}

/// A view change to view 1 that holds every rule: committed up to 1 (with its LC), one
/// batch prepared at sequence 2 in view 0.
fn valid_view_change(from: ReplicaId) -> ViewChange {
    ViewChange {
        lane: LANE,
        new_view: 1,
        committed_upto: 1,
        committed_lc: Some(LocalCert {
            lane: LANE,
            view: 0,
            seq: 1,
            digest: [1; 32],
            cert: quorum_cert(),
        }),
        prepared: vec![proof(0, 2, vec![transfer(20)])],
        from,
        signature: Signature(vec![0; 16]),
    }
}

/// Whether backup r0 joins view 1 after a valid view change from r2 and `second` from r3:
/// it joins on f + 1 = 2 valid ones.
fn joins_with(second: ViewChange) -> bool {
    let mut group = Group::new(4);
    for vc in [valid_view_change(2), second] {
        let mut out = Vec::new();
        group.shards[0].on_message(LocalMessage::ViewChange(vc), &group.signers[0], &mut out);
    }
    group.shards[0].assert_bounded();
    group.shards[0].view() == 1
}

/// One way to break a valid view change.
type Breaks = fn(&mut ViewChange);

/// Each condition of a view change's validity, broken alone in an otherwise valid message
/// whose certificates are all well formed: the message is not counted (a mutation run found
/// that no test sent a view change breaking any one of them).
#[test]
fn a_view_change_is_counted_only_if_each_of_its_claims_holds() {
    assert!(joins_with(valid_view_change(3)), "two valid view changes");
    let full_window = ViewChange {
        prepared: (2..2 + WINDOW_SEQS)
            .map(|seq| proof(0, seq, vec![transfer(u128::from(seq))]))
            .collect(),
        ..valid_view_change(3)
    };
    assert!(joins_with(full_window), "a full window of prepared batches");
    let broken: Vec<(&str, Breaks)> = vec![
        ("more proofs than the window", |vc| {
            vc.prepared = (2..3 + WINDOW_SEQS).map(|s| proof(0, s, vec![])).collect()
        }),
        ("committed without an LC", |vc| vc.committed_lc = None),
        ("an LC of another sequence", |vc| {
            vc.committed_lc.as_mut().unwrap().seq = 2
        }),
        ("an LC of another lane", |vc| {
            vc.committed_lc.as_mut().unwrap().lane.shard = 1
        }),
        ("an LC of too few signers", |vc| {
            vc.committed_lc.as_mut().unwrap().cert.signers = Bitmap::default()
        }),
        ("a proof at or below the committed point", |vc| {
            vc.prepared = vec![proof(0, 1, vec![transfer(20)])]
        }),
        ("a proof beyond the window", |vc| {
            vc.prepared = vec![proof(0, 2 + WINDOW_SEQS, vec![transfer(20)])]
        }),
        ("two proofs of one sequence", |vc| {
            vc.prepared = vec![proof(0, 2, vec![transfer(20)]), proof(0, 2, vec![])]
        }),
        ("a proof of the new view itself", |vc| {
            vc.prepared = vec![proof(1, 2, vec![transfer(20)])]
        }),
        ("a proof whose digest is not its payload's", |vc| {
            vc.prepared[0].digest = [7; 32]
        }),
        ("a proof of too few signers", |vc| {
            vc.prepared[0].cert.signers = Bitmap::default()
        }),
    ];
    for (what, break_it) in broken {
        let mut vc = valid_view_change(3);
        break_it(&mut vc);
        assert!(!joins_with(vc), "counted a view change with {what}");
    }
    // A lone view change reaches only its own lane's shard; one of another lane can only
    // come inside a new-view message.
    assert!(installs_new_view_with(valid_view_change(3)));
    let mut other_lane = valid_view_change(3);
    other_lane.lane.shard = 1;
    assert!(
        !installs_new_view_with(other_lane),
        "installed a view change of another lane"
    );
}

/// Whether backup r0 installs view 1 from its primary r1, justified by valid view changes
/// from r1 and r2 and `third` from r3.
fn installs_new_view_with(third: ViewChange) -> bool {
    let mut group = Group::new(4);
    let message = LocalMessage::NewView {
        lane: LANE,
        view: 1,
        view_changes: vec![valid_view_change(1), valid_view_change(2), third],
        from: 1,
        signature: Signature(vec![0; 16]),
    };
    let mut out = Vec::new();
    group.shards[0].on_message(message, &group.signers[0], &mut out);
    group.shards[0].view() == 1
}

/// The new-view decision re-proposes, at each sequence, the batch prepared in the highest
/// view (Castro-Liskov 4.4): a batch prepared in view 0 by members that never completed it
/// and another prepared at the same sequence in view 1 can both be proved, and only the
/// later one may have committed (a mutation run found no test told the two apart).
#[test]
fn a_new_view_re_proposes_the_batch_prepared_in_the_highest_view() {
    let older = proof(0, 2, vec![transfer(30)]);
    let newer = proof(1, 2, vec![transfer(31)]);
    let newer_digest = newer.digest;
    let view_change = |from: ReplicaId, prepared: Vec<PreparedProof>| ViewChange {
        new_view: 2,
        prepared,
        ..valid_view_change(from)
    };
    let message = LocalMessage::NewView {
        lane: LANE,
        view: 2,
        // The older proof first: a rule that kept the first, or the lowest, would pick it.
        view_changes: vec![
            view_change(1, vec![older]),
            view_change(2, vec![newer]),
            view_change(3, vec![]),
        ],
        from: 2,
        signature: Signature(vec![0; 16]),
    };
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[0].on_message(message, &group.signers[0], &mut out);
    assert_eq!(group.shards[0].view(), 2, "the new view is installed");
    let prepared: Vec<(u64, u64, [u8; 32])> = out
        .iter()
        .filter_map(|o| match o {
            LocalOutput::Send {
                message:
                    LocalMessage::Prepare {
                        view, seq, digest, ..
                    },
                ..
            } => Some((*view, *seq, *digest)),
            _ => None,
        })
        .collect();
    assert_eq!(prepared, [(2, 2, newer_digest)]);
}

fn new_view(view: u64, from: ReplicaId, view_changes: Vec<ViewChange>) -> LocalMessage {
    LocalMessage::NewView {
        lane: LANE,
        view,
        view_changes,
        from,
        signature: Signature(vec![0; 16]),
    }
}

/// View changes to `view` from each of `senders`, valid otherwise.
fn view_changes_to(view: u64, senders: &[ReplicaId]) -> Vec<ViewChange> {
    senders
        .iter()
        .map(|&from| ViewChange {
            new_view: view,
            ..valid_view_change(from)
        })
        .collect()
}

fn deliver_to_r0(group: &mut Group, message: LocalMessage) -> Vec<LocalOutput> {
    let mut out = Vec::new();
    group.shards[0].on_message(message, &group.signers[0], &mut out);
    out
}

/// A backup installs a new view only from that view's primary, only for a view above its
/// own (or its own, while it is changing views), and only on q distinct members' valid view
/// changes for exactly that view; each condition broken alone leaves it where it was (a
/// mutation run found that no test sent a new-view breaking any one of them).
#[test]
fn a_new_view_needs_its_primary_and_a_quorum_of_view_changes_for_it() {
    let mut group = Group::new(4);
    let out = deliver_to_r0(&mut group, new_view(1, 1, view_changes_to(1, &[1, 2, 3])));
    assert_eq!(group.shards[0].view(), 1, "a valid new view is installed");
    assert!(
        out.iter()
            .any(|o| matches!(o, LocalOutput::NeedBatches { upto: 1, from: 1 })),
        "the batches below the new view's LC are fetched from a holder: {out:?}"
    );
    let again = deliver_to_r0(&mut group, new_view(1, 1, view_changes_to(1, &[1, 2, 3])));
    assert!(
        again.is_empty(),
        "an installed view is not installed again: {again:?}"
    );
    deliver_to_r0(&mut group, new_view(2, 2, view_changes_to(2, &[1, 2, 3])));
    assert_eq!(group.shards[0].view(), 2);
    deliver_to_r0(&mut group, new_view(1, 1, view_changes_to(1, &[1, 2, 3])));
    assert_eq!(
        group.shards[0].view(),
        2,
        "a new view below ours is ignored"
    );

    let mut from_stranger = view_changes_to(1, &[1, 2, 3]);
    from_stranger[2].from = 9;
    let mut other_view = view_changes_to(1, &[1, 2, 3]);
    other_view[2].new_view = 2;
    let broken = [
        (
            "not sent by the view's primary",
            new_view(1, 2, view_changes_to(1, &[1, 2, 3])),
        ),
        (
            "one sender twice",
            new_view(1, 1, view_changes_to(1, &[1, 2, 3, 3])),
        ),
        (
            "fewer than q view changes",
            new_view(1, 1, view_changes_to(1, &[1, 2])),
        ),
        (
            "a view change of a non-member",
            new_view(1, 1, from_stranger),
        ),
        ("a view change for another view", new_view(1, 1, other_view)),
    ];
    for (what, message) in broken {
        let mut group = Group::new(4);
        deliver_to_r0(&mut group, message);
        assert_eq!(group.shards[0].view(), 0, "installed a new view {what}");
    }
}

/// A backup that committed as far as or further than the view changes of a new view say
/// neither fetches batches it holds nor prepares again a sequence it committed (mutation run
/// findings).
#[test]
fn a_new_view_at_or_below_what_a_backup_committed_changes_none_of_it() {
    // r1, r2, r3 report sequence `upto` committed and sequence `upto + 1` prepared in view 0.
    for upto in [1, 2] {
        let mut group = Group::new(4);
        for key in [1, 2] {
            let mut out = Vec::new();
            assert!(group.shards[0].on_client(transfer(key).into(), &mut out));
            for _ in 0..5 {
                group.tick(&[0, 1, 2, 3]);
                group.deliver(|_, _| false);
            }
        }
        assert_eq!(group.shards[0].committed_upto(), 2);
        let mut view_changes = view_changes_to(1, &[1, 2, 3]);
        for vc in &mut view_changes {
            vc.committed_upto = upto;
            vc.committed_lc.as_mut().expect("an LC").seq = upto;
            vc.prepared = vec![proof(0, upto + 1, vec![transfer(40)])];
        }
        let out = deliver_to_r0(&mut group, new_view(1, 1, view_changes));
        assert_eq!(group.shards[0].view(), 1);
        let refetched_or_reprepared = out.iter().any(|o| {
            matches!(
                o,
                LocalOutput::NeedBatches { .. }
                    | LocalOutput::Send {
                        message: LocalMessage::Prepare { seq: ..=2, .. },
                        ..
                    }
            )
        });
        assert!(
            !refetched_or_reprepared,
            "view changes up to {upto}: {out:?}"
        );
        assert_eq!(group.shards[0].committed_upto(), 2);
    }
}

/// A backup far behind the view changes of a new view fetches the committed batches first
/// and holds no slot beyond its reach (a mutation run finding).
#[test]
fn a_new_view_far_ahead_of_a_backup_fills_no_slot_beyond_its_reach() {
    let upto = SLOTS_AHEAD_MAX + 10;
    let mut view_changes = view_changes_to(1, &[1, 2, 3]);
    for vc in &mut view_changes {
        vc.committed_upto = upto;
        vc.committed_lc.as_mut().expect("an LC").seq = upto;
        vc.prepared = vec![proof(0, upto + 1, vec![transfer(50)])];
    }
    let mut group = Group::new(4);
    let out = deliver_to_r0(&mut group, new_view(1, 1, view_changes));
    assert_eq!(group.shards[0].view(), 1);
    assert!(out
        .iter()
        .any(|o| matches!(o, LocalOutput::NeedBatches { upto: u, .. } if *u == upto)));
    assert!(
        !out.iter().any(|o| matches!(
            o,
            LocalOutput::Send {
                message: LocalMessage::Prepare { .. },
                ..
            }
        )),
        "prepared beyond its reach: {out:?}"
    );
    group.shards[0].assert_bounded();
}

/// The ticks (of `ticks` ticks of member `id`) at which it sent a message `pick` matches,
/// with how many members each went to; nothing it sends is delivered.
fn sends_while_ticking(
    group: &mut Group,
    id: usize,
    ticks: u64,
    pick: fn(&LocalMessage) -> bool,
) -> Vec<(u64, usize)> {
    let mut sends = Vec::new();
    for tick in 1..=ticks {
        group.tick(&[id]);
        let picked = group.queue.iter().filter(|(_, m)| pick(m)).count();
        if picked > 0 {
            sends.push((tick, picked));
        }
        group.queue.clear();
    }
    sends
}

fn is_pre_prepare(message: &LocalMessage) -> bool {
    matches!(message, LocalMessage::PrePrepare { .. })
}

fn is_view_change(message: &LocalMessage) -> bool {
    matches!(message, LocalMessage::ViewChange(_))
}

#[test]
fn a_stalled_primary_resends_its_pending_pre_prepares_once_per_request_timeout() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    assert!(group.shards[0].on_client(transfer(1).into(), &mut out));
    // The pre-prepare goes out and is lost.
    let first = sends_while_ticking(&mut group, 0, 5, is_pre_prepare);
    assert_eq!(first.len(), 1, "one pre-prepare cut: {first:?}");
    let cut_at = first[0].0;
    assert!(cut_at < 5);
    // Ticks 6 to 40: without progress since the start, it resends at ticks 10, 20, 30, 40.
    let resends = sends_while_ticking(&mut group, 0, 35, is_pre_prepare);
    let timeout = 10; // Group's request_timeout_ticks
    let expected: Vec<(u64, usize)> = (1..=4).map(|k| (k * timeout - 5, 3)).collect();
    assert_eq!(
        resends, expected,
        "every {timeout} ticks without progress, to every other member"
    );
    // One resend delivered: the batch commits everywhere, and nothing is resent after.
    group.tick(&[0]);
    for _ in 0..timeout {
        group.tick(&[0]);
    }
    group.deliver(|_, _| false);
    assert!(
        group.committed.iter().all(|c| c.len() == 1),
        "{:?}",
        group.committed
    );
    let after = sends_while_ticking(&mut group, 0, 3 * timeout, is_pre_prepare);
    assert!(
        after.is_empty(),
        "a committed batch is not resent: {after:?}"
    );
}

#[test]
fn a_view_change_short_of_a_quorum_resends_its_own_message_instead_of_moving_on() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[3].on_client(transfer(9).into(), &mut out);
    // Replica 3 alone suspects the primary: it can never gather a quorum for a later view.
    let mut view_changes = Vec::new();
    for tick in 1..=200 {
        group.tick(&[3]);
        let sent = group
            .queue
            .iter()
            .filter(|(_, m)| is_view_change(m))
            .count();
        if sent > 0 {
            view_changes.push(tick);
        }
        group.queue.clear();
    }
    assert_eq!(
        group.shards[3].view(),
        1,
        "alone, it stays in the view it suspects into"
    );
    assert!(view_changes.len() >= 3, "it keeps asking: {view_changes:?}");
}

#[test]
fn each_failed_view_change_doubles_the_wait_before_the_next() {
    let mut group = Group::new(4);
    // Backups 1, 2, 3 wait for a request the primary never orders, and every new view's
    // NewView is lost: only the view-change timer moves them on.
    for id in 1..4 {
        let mut out = Vec::new();
        group.shards[id].on_client(transfer(9).into(), &mut out);
    }
    let lost = |to: ReplicaId, m: &LocalMessage| {
        to == 0
            || matches!(
                m,
                LocalMessage::NewView { .. } | LocalMessage::Forward { .. }
            )
    };
    let mut entered = BTreeMap::new(); // view -> tick replica 3 entered it
    for tick in 1..=200 {
        group.tick(&[1, 2, 3]);
        group.deliver(lost);
        entered.entry(group.shards[3].view()).or_insert(tick);
    }
    assert!(
        entered.keys().copied().eq(0..entered.len() as u64),
        "one view at a time: {entered:?}"
    );
    // Replica 3 led view 3 (its attempts start again); views 4, 5 and 6 then fail in turn,
    // each after twice the wait of the one before (the request timeout is 10 ticks).
    let waits: Vec<u64> = (4..7).map(|v| entered[&(v + 1)] - entered[&v]).collect();
    assert_eq!(waits, [10, 20, 40], "views entered: {entered:?}");
}

/// Review finding: a primary whose next free sequence lay past its window (the slots after
/// its own pending batch already committed through LCs) took a batch of transactions off
/// its queue, found no sequence to put them at, and dropped them.
#[test]
fn a_primary_at_the_end_of_its_window_keeps_its_queued_transactions() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[0].on_client(transfer(1).into(), &mut out);
    for _ in 0..3 {
        group.tick(&[0]);
    }
    let pending_first = std::mem::take(&mut group.queue);
    // Every other sequence of the window commits through LCs learned from elsewhere.
    for seq in 2..=WINDOW_SEQS {
        let payload = Payload::from_transfers(&[transfer(1_000 + u128::from(seq))]);
        let lc = LocalCert {
            lane: LANE,
            view: 0,
            seq,
            digest: payload.digest(),
            cert: quorum_cert(),
        };
        group.shards[0].adopt_committed(lc, payload, &mut out);
    }
    assert_eq!(
        group.shards[0].committed_upto(),
        0,
        "sequence 1 is still open"
    );
    group.shards[0].on_client(transfer(2).into(), &mut out);
    for _ in 0..5 {
        group.tick(&[0]);
    }
    // Sequence 1 commits; the stable point jumps to the window's end and the queued
    // transfer must still be there to go into the next sequence.
    group.queue = pending_first;
    for _ in 0..10 {
        group.tick(&[0, 1, 2, 3]);
        group.deliver(|_, _| false);
    }
    let batches_of_r0 = |group: &Group| group.committed[0].iter().map(|c| c.0).max();
    assert!(
        batches_of_r0(&group).is_some_and(|seq| seq > WINDOW_SEQS),
        "the transfer queued while the window was full went into sequence {}: committed {:?}",
        WINDOW_SEQS + 1,
        group.committed[0].iter().map(|c| c.0).collect::<Vec<_>>()
    );
}

/// A backup refuses a batch that debits an account homed in another lane, even when every
/// other transfer of it belongs here: only the home lane orders an account's debits.
#[test]
fn a_batch_with_one_debit_homed_elsewhere_is_not_prepared() {
    let homed_in = |shard: u32| {
        (0u64..)
            .find(|&account| ccbft_core::client::home_lane(account, 1, 2).shard == shard)
            .expect("some account homes in each shard")
    };
    let debit = |key: u128, from: u64| SignedTransfer {
        transfer: Transfer {
            key,
            from,
            to: from + 1,
            amount: 5,
        },
        ..transfer(key)
    };
    let mut group = Group::with_shards(4, 2);
    let mut out = Vec::new();
    group.shards[0].on_client(debit(1, homed_in(0)).into(), &mut out);
    group.shards[0].on_client(debit(2, homed_in(0)).into(), &mut out);
    group.shards[0].on_client(debit(3, homed_in(1)).into(), &mut out);
    for _ in 0..5 {
        group.tick(&[0]);
    }
    group.deliver(|_, _| false);
    for id in 1..4 {
        assert!(group.committed[id].is_empty(), "r{id} committed the batch");
    }
}

/// A member of a newer view hands its installed new-view to a member still sending in an
/// older one, at most once per request timeout, and to nobody else: not for a message of
/// its own view, not to itself, not to an outsider.
#[test]
fn a_new_view_is_relayed_to_a_laggard_once_per_request_timeout() {
    let mut group = Group::new(4);
    let mut out = Vec::new();
    group.shards[0].on_client(transfer(7).into(), &mut out);
    for id in 1..4 {
        group.shards[id].on_client(transfer(8).into(), &mut out);
    }
    // r0, the primary of view 0, is cut off while the others move on without it.
    for _ in 0..60 {
        group.tick(&[1, 2, 3]);
        group.deliver(|to, _| to == 0);
    }
    let view = group.shards[2].view();
    assert!(view >= 1, "r2 changed view");
    let message = |view: u64, from: ReplicaId| LocalMessage::Prepare {
        lane: LANE,
        view,
        seq: 1,
        digest: [0; 32],
        from,
        signature: Signature(vec![0; 16]),
    };
    let relays = |group: &mut Group, message: LocalMessage| {
        let mut out = Vec::new();
        group.shards[2].on_message(message, &group.signers[2], &mut out);
        out.iter()
            .filter_map(|o| match o {
                LocalOutput::Send {
                    to,
                    message: LocalMessage::NewView { .. },
                } => Some(to.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        relays(&mut group, message(view, 0)),
        Vec::<Vec<ReplicaId>>::new()
    );
    assert!(
        relays(&mut group, message(view - 1, 2)).is_empty(),
        "not to itself"
    );
    assert!(
        relays(&mut group, message(view - 1, 9)).is_empty(),
        "not to an outsider"
    );
    assert_eq!(relays(&mut group, message(view - 1, 0)), vec![vec![0]]);
    assert!(
        relays(&mut group, message(view - 1, 0)).is_empty(),
        "once per timeout"
    );
    for _ in 0..10 {
        group.tick(&[2]);
    }
    group.queue.clear();
    assert_eq!(group.shards[2].view(), view, "r2 stayed in its view");
    assert_eq!(
        relays(&mut group, message(view - 1, 0)),
        vec![vec![0]],
        "again after it"
    );
}
