//! Opaque clusters: signed byte strings ordered and delivered in order, not executed. What a
//! replica refuses at ingress and in a primary's batch, and whole simulated runs.

use bytes::Bytes;
use ccbft_core::client::{ClientSignature, SignedTransfer, TxRejection};
use ccbft_core::crypto::SimKeys;
use ccbft_core::messages::{LocalMessage, Message, Payload, Transaction};
use ccbft_core::replica::{Action, Input, ReceiptStatus, Replica};
use ccbft_core::sim::{self, sim_client_sign, SimOptions, ACCOUNTS};
use ccbft_core::topology::{ReplicaId, Topology};
use ccbft_core::transaction::{OpaqueTx, PayloadKind};
use std::sync::Arc;

mod common;
use common::{assert_clean, four_replica_config, pre_prepare_of, receipts, step_verified, Until};

fn opaque_replica(keys: &SimKeys, me: ReplicaId) -> Replica {
    let mut config = four_replica_config(keys, me);
    config.topology = Arc::new(Topology {
        transactions: PayloadKind::Opaque,
        ..(*config.topology).clone()
    });
    Replica::new(config, &keys.signer(me))
}

/// A transfer of 1 from `from` to `to`, signed by the owner of `from`.
fn signed_transfer(keys: &SimKeys, key: u128, from: u64, to: u64) -> SignedTransfer {
    sim_client_sign(
        keys,
        ccbft_core::ledger::Transfer {
            key,
            from,
            to,
            amount: 1,
        },
    )
}

fn opaque(keys: &SimKeys, client: u32, key: u128, data: &[u8]) -> OpaqueTx {
    OpaqueTx {
        client,
        key,
        data: Bytes::copy_from_slice(data),
        signature: keys.sign_client(client, &OpaqueTx::signed_bytes(client, key, data)),
    }
}

#[test]
fn ingress_refuses_other_kinds_unknown_clients_and_altered_data() {
    let keys = SimKeys::new(4, 3);
    let mut primary = opaque_replica(&keys, 0);
    let good = opaque(&keys, 2, 1, b"payment instruction");
    let mut altered = good.clone();
    altered.data = Bytes::from_static(b"payment instructioN");
    let mut unknown = opaque(&keys, 2, 2, b"x");
    unknown.client = ACCOUNTS as u32 + 7;
    let transfer = signed_transfer(&keys, 3, 2, 4);
    let cases: [(Transaction, TxRejection); 3] = [
        (altered.into(), TxRejection::BadSignature),
        (unknown.into(), TxRejection::UnknownClient),
        (transfer.into(), TxRejection::WrongKind),
    ];
    for (tx, reason) in cases {
        let actions = step_verified(&mut primary, &keys, Input::Client(tx));
        assert_eq!(receipts(&actions), [ReceiptStatus::Rejected { reason }]);
    }
    let actions = step_verified(&mut primary, &keys, Input::Client(good.clone().into()));
    assert!(receipts(&actions).is_empty(), "good opaque data is queued");

    // A transfers cluster refuses opaque data.
    let mut ledger = Replica::new(four_replica_config(&keys, 0), &keys.signer(0));
    let actions = step_verified(&mut ledger, &keys, Input::Client(good.into()));
    assert_eq!(
        receipts(&actions),
        [ReceiptStatus::Rejected {
            reason: TxRejection::WrongKind
        }]
    );
}

fn prepared(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Send {
                message: Message::Local(LocalMessage::Prepare { .. }),
                ..
            }
        )
    })
}

#[test]
fn a_backup_prepares_only_opaque_data_its_clients_signed() {
    let keys = SimKeys::new(4, 3);
    let good = opaque(&keys, 1, 10, b"abc");
    let mut altered = opaque(&keys, 1, 11, b"def");
    altered.data = Bytes::from_static(b"deg");
    let forged = OpaqueTx {
        signature: ClientSignature([0x5A; 64]),
        ..opaque(&keys, 1, 12, b"ghi")
    };
    let transfers = Payload::from_transfers(&[signed_transfer(&keys, 13, 1, 2)]);
    let bad_batches = [
        Payload::of(&[good.clone().into(), altered.into()]),
        Payload::of(&[good.clone().into(), forged.into()]),
        transfers,
    ];
    for payload in bad_batches {
        let mut backup = opaque_replica(&keys, 1);
        let message = pre_prepare_of(&keys, payload.clone());
        let actions = step_verified(&mut backup, &keys, Input::Message { from: 0, message });
        assert!(!prepared(&actions), "prepared {payload:?}");
        assert!(
            actions.iter().any(|a| matches!(a, Action::Evidence(_))),
            "the primary is reported for {payload:?}"
        );
    }
    let mut backup = opaque_replica(&keys, 1);
    let message = pre_prepare_of(&keys, Payload::of(&[good.into()]));
    let actions = step_verified(&mut backup, &keys, Input::Message { from: 0, message });
    assert!(prepared(&actions), "a signed opaque batch is prepared");
}

#[test]
fn opaque_clusters_deliver_every_submission_once_under_faults() {
    let options = SimOptions {
        transactions: Some(PayloadKind::Opaque),
        ..SimOptions::standard()
    };
    let reports = common::run_seeds(0, 24, &options, Until::AllSeeds);
    assert_clean(&reports);
    for report in &reports {
        assert_eq!(
            report.committed_txs, report.submitted_txs,
            "seed {} ({}) delivered {} of {}",
            report.seed, report.shape, report.committed_txs, report.submitted_txs
        );
    }
}

#[test]
fn a_seed_draws_the_same_run_whatever_the_cluster_orders() {
    let opaque = SimOptions {
        transactions: Some(PayloadKind::Opaque),
        ..SimOptions::standard()
    };
    for seed in [3, 11] {
        let a = sim::run(seed, &opaque).unwrap();
        let b = sim::run(seed, &SimOptions::standard()).unwrap();
        assert_eq!(a.shape, b.shape);
        assert_eq!(a.submitted_txs, b.submitted_txs);
        assert_eq!(
            a.strategies, b.strategies,
            "seed {seed}: same adversaries drawn"
        );
    }
}

/// A member that forwards a transaction of the other kind is reported and the transaction
/// goes nowhere; a forwarded transaction of the cluster's kind is taken (a mutation pass
/// found the kind check at the door untested).
#[test]
fn a_forward_of_the_other_kind_is_refused_and_reported() {
    let keys = SimKeys::new(4, 3);
    let lane = ccbft_core::messages::Lane {
        domain: 0,
        shard: 0,
    };
    let transfer = signed_transfer(&keys, 5, 1, 2);
    let forwards: [(Transaction, bool); 2] = [
        (transfer.into(), true),
        (opaque(&keys, 1, 6, b"ok").into(), false),
    ];
    for (tx, refused) in forwards {
        let mut primary = opaque_replica(&keys, 0);
        let message = Message::Local(LocalMessage::Forward {
            lane,
            tx: tx.clone(),
        });
        let actions = step_verified(&mut primary, &keys, Input::Message { from: 1, message });
        let reported = actions.iter().any(|a| matches!(a, Action::Evidence(_)));
        assert_eq!(reported, refused, "forward of {tx:?}: {actions:?}");
    }
}
