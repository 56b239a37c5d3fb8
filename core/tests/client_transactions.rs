//! Signed client transactions at one replica: what it refuses at ingress, and that it
//! prepares a primary's batch only when every transfer in it carries its owner's signature.

use ccbft_core::client::{ClientSignature, SignedTransfer, TxRejection};
use ccbft_core::crypto::SimKeys;
use ccbft_core::ledger::Transfer;
use ccbft_core::messages::{LocalMessage, Message};
use ccbft_core::replica::{Action, HealthEvent, Input, ReceiptStatus, Replica};
use ccbft_core::sim::{sim_client_sign, ACCOUNTS};
use ccbft_core::topology::ReplicaId;

mod common;
use common::{four_replica_config, pre_prepare, receipts, step_verified};

fn replica(keys: &SimKeys, me: ReplicaId) -> Replica {
    Replica::new(four_replica_config(keys, me), &keys.signer(me))
}

fn transfer(key: u128) -> Transfer {
    Transfer {
        key,
        from: 3,
        to: 4,
        amount: 10,
    }
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
        let actions = step_verified(&mut primary, &keys, Input::Client(tx.into()));
        assert_eq!(receipts(&actions), [ReceiptStatus::Rejected { reason }]);
    }
    let actions = step_verified(&mut primary, &keys, Input::Client(good.into()));
    assert!(receipts(&actions).is_empty(), "a good transfer is queued");
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
