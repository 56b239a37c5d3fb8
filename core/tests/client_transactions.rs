//! Signed client transactions at one replica: what it refuses at ingress, and that it
//! prepares a primary's batch only when every transfer in it carries its owner's signature.

use ccbft_core::client::{ClientSignature, SignedTransfer, TxRejection};
use ccbft_core::crypto::{Signer, SimKeys, Verifier};
use ccbft_core::ledger::Transfer;
use ccbft_core::messages::{payload_digest, prepare_payload, Lane, LocalMessage, Message};
use ccbft_core::replica::{Action, HealthEvent, Input, ReceiptStatus, Replica, ReplicaConfig};
use ccbft_core::sim::{sim_client_sign, sim_clients, ACCOUNTS, OPENING_BALANCE};
use ccbft_core::topology::{ReplicaId, Topology};
use ccbft_core::vote_pattern::VotePattern;
use std::sync::Arc;

const LANE: Lane = Lane {
    domain: 0,
    shard: 0,
};

fn replica(keys: &SimKeys, me: ReplicaId) -> Replica {
    let config = ReplicaConfig {
        topology: Arc::new(Topology::synthetic(4, 1, 1).unwrap()),
        me,
        genesis_accounts: (0..ACCOUNTS).map(|a| (a, OPENING_BALANCE)).collect(),
        clients: Arc::new(sim_clients(keys)),
        request_timeout_ticks: 150,
        global_timeout_min_ticks: 400,
        global_timeout_max_ticks: 3_000,
        ticks_per_ms: 1,
        rotation_rounds: 3,
        vote_pattern: VotePattern::AllToAll,
        checkpoint_interval_blocks: 8,
    };
    Replica::new(config, &keys.signer(me))
}

fn transfer(key: u128) -> Transfer {
    Transfer {
        key,
        from: 3,
        to: 4,
        amount: 10,
    }
}

/// Steps `input`, and answers every signature check as the host would.
fn step_verified(replica: &mut Replica, keys: &SimKeys, input: Input) -> Vec<Action> {
    let mut inputs = vec![input];
    let mut out = Vec::new();
    while let Some(input) = inputs.pop() {
        for action in replica.step(input, &keys.signer(replica.id())) {
            match action {
                Action::Verify { token, checks } => inputs.push(Input::Verified {
                    token,
                    failed: keys.failed(&checks),
                }),
                other => out.push(other),
            }
        }
    }
    out
}

fn receipts(actions: &[Action]) -> Vec<ReceiptStatus> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Receipt { status, .. } => Some(*status),
            _ => None,
        })
        .collect()
}

#[test]
fn ingress_refuses_what_the_owner_did_not_sign() {
    let keys = SimKeys::new(4, 7);
    let mut primary = replica(&keys, 0);
    let good = sim_client_sign(&keys, transfer(1));
    let mut altered = good;
    altered.transfer.amount += 1;
    let mut stranger = sim_client_sign(&keys, transfer(2));
    stranger.client = 5; // a real client, but not the owner of account 3
    let mut unknown = sim_client_sign(&keys, transfer(3));
    unknown.transfer.from = ACCOUNTS + 1;
    let cases = [
        (altered, TxRejection::BadSignature),
        (stranger, TxRejection::NotOwner),
        (unknown, TxRejection::UnknownAccount),
    ];
    for (tx, reason) in cases {
        let actions = step_verified(&mut primary, &keys, Input::Client(tx));
        assert_eq!(receipts(&actions), [ReceiptStatus::Rejected { reason }]);
    }
    let actions = step_verified(&mut primary, &keys, Input::Client(good));
    assert!(receipts(&actions).is_empty(), "a good transfer is queued");
}

/// A pre-prepare signed by the primary itself, over `payload`.
fn pre_prepare(keys: &SimKeys, payload: Vec<SignedTransfer>) -> Message {
    let payload = Arc::new(payload);
    let digest = payload_digest(&payload);
    let signature = keys.signer(0).sign(
        ccbft_core::crypto::Tag::LocalPrepare,
        &prepare_payload(LANE, 0, 1, &digest),
    );
    Message::Local(LocalMessage::PrePrepare {
        lane: LANE,
        view: 0,
        seq: 1,
        digest,
        payload,
        from: 0,
        signature,
    })
}

fn prepares(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Send {
                    message: Message::Local(LocalMessage::Prepare { .. }),
                    ..
                }
            )
        })
        .count()
}

fn evidence(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Evidence(_)))
        .count()
}

#[test]
fn a_backup_prepares_only_batches_of_transfers_their_owners_signed() {
    let keys = SimKeys::new(4, 7);
    let good = sim_client_sign(&keys, transfer(1));
    let mut altered = good;
    altered.transfer.to = 9;
    let made_up = SignedTransfer {
        signature: ClientSignature([0xA5; 64]),
        ..sim_client_sign(&keys, transfer(2))
    };
    let mut not_owner = sim_client_sign(&keys, transfer(3));
    not_owner.client = 5;
    for bad in [altered, made_up, not_owner] {
        let mut backup = replica(&keys, 1);
        let message = pre_prepare(&keys, vec![good, bad]);
        let actions = step_verified(&mut backup, &keys, Input::Message { from: 0, message });
        assert_eq!(prepares(&actions), 0, "prepared a batch holding {bad:?}");
        assert_eq!(evidence(&actions), 1, "the primary is reported");
    }
    let mut backup = replica(&keys, 1);
    let message = pre_prepare(&keys, vec![good]);
    let actions = step_verified(&mut backup, &keys, Input::Message { from: 0, message });
    assert_eq!(prepares(&actions), 1, "an honest batch is prepared");
    assert_eq!(evidence(&actions), 0);
}

fn failed_checks(actions: &[Action]) -> Vec<HealthEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Health(event @ HealthEvent::CheckFailed { .. }) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// The host reports which checks of a message failed; the replica names the first in its
/// health event and blames the sender.
#[test]
fn a_failed_check_is_reported_by_kind_and_claimed_signer() {
    let keys = SimKeys::new(4, 7);
    let good = sim_client_sign(&keys, transfer(1));
    let mut altered = good;
    altered.transfer.amount += 1;
    let mut backup = replica(&keys, 1);
    let message = pre_prepare(&keys, vec![good, altered]);
    let actions = step_verified(&mut backup, &keys, Input::Message { from: 0, message });
    assert_eq!(
        failed_checks(&actions),
        [HealthEvent::CheckFailed {
            from: 0,
            check: "client signature",
            signer: None
        }]
    );
    let mut forged = pre_prepare(&keys, vec![good]);
    if let Message::Local(LocalMessage::PrePrepare { signature, .. }) = &mut forged {
        signature.0[0] ^= 1;
    }
    let mut backup = replica(&keys, 1);
    let actions = step_verified(
        &mut backup,
        &keys,
        Input::Message {
            from: 0,
            message: forged,
        },
    );
    assert_eq!(
        failed_checks(&actions),
        [HealthEvent::CheckFailed {
            from: 0,
            check: "signature",
            signer: Some(0)
        }]
    );
    assert_eq!(prepares(&actions), 0);
}
