//! Round trips for every message and record kind, and the decoder's refusals: truncated,
//! mutated and arbitrary input never panics, and counts are checked before allocation.

use super::*;
use crate::checkpoint::{
    CheckpointCert, CheckpointId, CheckpointVote, SnapshotChunk, SNAPSHOT_BYTES_MAX,
    SNAPSHOT_CHUNK_BYTES,
};
use crate::client::{ClientSignature, SignedTransfer};
use crate::crypto::{Bitmap, Certificate, Digest, Signature, SIGNATURE_BYTES_MAX};
use crate::durable::{CheckpointState, LocalRecord, RejoinFloors, RejoinState};
use crate::evidence::{Evidence, EVIDENCE_NESTING_MAX, EVIDENCE_PER_BLOCK_MAX};
use crate::hotstuff::SYNC_BLOCKS_MAX;
use crate::ledger::Transfer;
use crate::messages::{
    Block, GlobalMessage, Lane, LocalCert, LocalMessage, Payload, PreparedProof, QuorumCert,
    RecoveryReply, TimeoutCert, ViewChange,
};
use crate::pbft::BATCH_TXS_MAX;
use crate::topology::SHARDS_MAX;
use crate::transaction::{OpaqueTx, Transaction, BATCH_BYTES_MAX};
use ccbft_storage::merkle::MerkleProof;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------------------
// Strategies: small values of every type, valid for the wire (ids and lanes in range).

fn replica() -> impl Strategy<Value = ReplicaId> {
    0..REPLICAS_MAX as ReplicaId
}

fn lane() -> impl Strategy<Value = Lane> {
    (0..REPLICAS_MAX as u32, 0..SHARDS_MAX).prop_map(|(domain, shard)| Lane { domain, shard })
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<Digest>()
}

fn signature() -> impl Strategy<Value = Signature> {
    vec(any::<u8>(), 0..=SIGNATURE_BYTES_MAX).prop_map(Signature)
}

fn bitmap() -> impl Strategy<Value = Bitmap> {
    any::<[u64; 4]>().prop_map(|mut words| {
        (REPLICAS_MAX..256).for_each(|id| words[id / 64] &= !(1 << (id % 64)));
        Bitmap(words)
    })
}

fn certificate() -> impl Strategy<Value = Certificate> {
    (bitmap(), signature()).prop_map(|(signers, aggregate)| Certificate { signers, aggregate })
}

fn transfer() -> impl Strategy<Value = Transfer> {
    any::<(u128, u64, u64, u64)>().prop_map(|(key, from, to, amount)| Transfer {
        key,
        from,
        to,
        amount,
    })
}

fn signed_transfer() -> impl Strategy<Value = SignedTransfer> {
    (
        transfer(),
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(transfer, client, r, s)| SignedTransfer {
            transfer,
            client,
            signature: ClientSignature([r, s].concat().try_into().expect("64 bytes")),
        })
}

fn opaque_tx() -> impl Strategy<Value = OpaqueTx> {
    (
        any::<u32>(),
        any::<u128>(),
        vec(any::<u8>(), 0..40),
        any::<[u8; 32]>(),
    )
        .prop_map(|(client, key, data, half)| OpaqueTx {
            client,
            key,
            data: data.into(),
            signature: ClientSignature([half, half].concat().try_into().expect("64 bytes")),
        })
}

fn transaction() -> impl Strategy<Value = Transaction> {
    prop_oneof![
        signed_transfer().prop_map(Transaction::from),
        opaque_tx().prop_map(Transaction::from),
    ]
}

/// Batches of either kind (a batch holds one kind).
fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        vec(signed_transfer(), 0..4).prop_map(|txs| Payload::from_transfers(&txs)),
        vec(opaque_tx().prop_map(Transaction::from), 0..4).prop_map(|txs| Payload::of(&txs)),
    ]
}

fn local_cert() -> impl Strategy<Value = LocalCert> {
    (lane(), any::<u64>(), any::<u64>(), digest(), certificate()).prop_map(
        |(lane, view, seq, digest, cert)| LocalCert {
            lane,
            view,
            seq,
            digest,
            cert,
        },
    )
}

fn prepared_proof() -> impl Strategy<Value = PreparedProof> {
    (
        any::<u64>(),
        any::<u64>(),
        digest(),
        payload(),
        certificate(),
    )
        .prop_map(|(view, seq, digest, payload, cert)| PreparedProof {
            view,
            seq,
            digest,
            payload,
            cert,
        })
}

fn view_change() -> impl Strategy<Value = ViewChange> {
    (
        lane(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(local_cert()),
        vec(prepared_proof(), 0..3),
        replica(),
        signature(),
    )
        .prop_map(
            |(lane, new_view, committed_upto, committed_lc, prepared, from, signature)| {
                ViewChange {
                    lane,
                    new_view,
                    committed_upto,
                    committed_lc,
                    prepared,
                    from,
                    signature,
                }
            },
        )
}

fn qc() -> impl Strategy<Value = QuorumCert> {
    (any::<u64>(), digest(), certificate()).prop_map(|(round, block, cert)| QuorumCert {
        round,
        block,
        cert,
    })
}

fn tc() -> impl Strategy<Value = TimeoutCert> {
    (
        any::<u64>(),
        vec((replica(), any::<u64>(), signature()), 0..4),
    )
        .prop_map(|(round, votes)| TimeoutCert { round, votes })
}

fn block(evidence: BoxedStrategy<Evidence>) -> BoxedStrategy<Arc<Block>> {
    (
        (any::<u64>(), any::<u64>(), digest(), qc()),
        proptest::option::of(tc()),
        vec(any::<u64>(), 0..4),
        vec(digest(), 0..4),
        vec(evidence, 0..=EVIDENCE_PER_BLOCK_MAX),
        replica(),
    )
        .prop_map(
            |((round, height, parent, qc), tc, cut, batches, evidence, proposer)| {
                Arc::new(Block {
                    round,
                    height,
                    parent,
                    qc,
                    tc,
                    cut,
                    batches,
                    evidence,
                    proposer,
                })
            },
        )
        .boxed()
}

fn checkpoint_id() -> impl Strategy<Value = CheckpointId> {
    (any::<u64>(), digest(), digest(), digest()).prop_map(
        |(height, block, state_root, snapshot_root)| CheckpointId {
            height,
            block,
            state_root,
            snapshot_root,
        },
    )
}

fn checkpoint_cert() -> impl Strategy<Value = CheckpointCert> {
    (checkpoint_id(), certificate()).prop_map(|(id, cert)| CheckpointCert { id, cert })
}

fn merkle_proof() -> impl Strategy<Value = MerkleProof> {
    (
        any::<u64>(),
        any::<u64>(),
        vec(proptest::option::of(digest()), 0..5),
    )
        .prop_map(|(leaf_index, leaf_count, siblings)| MerkleProof {
            leaf_index,
            leaf_count,
            siblings,
        })
}

fn snapshot_chunk(blocks: BoxedStrategy<Arc<Block>>) -> impl Strategy<Value = SnapshotChunk> {
    (
        checkpoint_cert(),
        blocks,
        vec(local_cert(), 0..3),
        merkle_proof(),
        vec(any::<u8>(), 0..64),
        qc(),
    )
        .prop_map(
            |(checkpoint, block, lane_certs, proof, bytes, high_qc)| SnapshotChunk {
                checkpoint,
                block,
                lane_certs,
                proof,
                bytes,
                high_qc,
            },
        )
}

/// Evidence that holds no message.
fn leaf_evidence() -> BoxedStrategy<Evidence> {
    prop_oneof![
        replica().prop_map(|offender| Evidence::InvalidCertificate { offender }),
        (replica(), any::<u64>())
            .prop_map(|(offender, round)| Evidence::TimingViolation { offender, round }),
    ]
    .boxed()
}

fn evidence_over(messages: BoxedStrategy<Message>) -> BoxedStrategy<Evidence> {
    prop_oneof![
        leaf_evidence(),
        (replica(), messages.clone(), messages.clone()).prop_map(|(offender, a, b)| {
            Evidence::Equivocation {
                offender,
                first: Box::new(a),
                second: Box::new(b),
            }
        }),
        (replica(), "\\PC{0,24}", messages).prop_map(|(offender, reason, message)| {
            Evidence::InvalidProposal {
                offender,
                reason,
                message: Box::new(message),
            }
        }),
    ]
    .boxed()
}

/// The variant of a message, by name; exhaustive, so a new variant must get a strategy.
fn message_variant(message: &Message) -> &'static str {
    match message {
        Message::Local(local) => match local {
            LocalMessage::Forward { .. } => "forward",
            LocalMessage::PrePrepare { .. } => "pre-prepare",
            LocalMessage::Prepare { .. } => "prepare",
            LocalMessage::Commit { .. } => "commit",
            LocalMessage::ViewChange(_) => "view-change",
            LocalMessage::NewView { .. } => "new-view",
        },
        Message::Batch { .. } => "batch",
        Message::BatchRequest { .. } => "batch-request",
        Message::Global(global) => match global {
            GlobalMessage::Proposal { .. } => "proposal",
            GlobalMessage::Vote { .. } => "vote",
            GlobalMessage::DomainVote { .. } => "domain-vote",
            GlobalMessage::Timeout { .. } => "timeout",
            GlobalMessage::Sync { .. } => "sync",
            GlobalMessage::SyncRequest { .. } => "sync-request",
            GlobalMessage::BlockRequest { .. } => "block-request",
            GlobalMessage::BlockResponse { .. } => "block-response",
        },
        Message::Checkpoint(_) => "checkpoint",
        Message::StableCheckpoint(_) => "stable-checkpoint",
        Message::SnapshotRequest { .. } => "snapshot-request",
        Message::SnapshotChunk(_) => "snapshot-chunk",
        Message::RecoveryRequest { .. } => "recovery-request",
        Message::RecoveryReply(_) => "recovery-reply",
    }
}

type Kinds<T> = Vec<(&'static str, BoxedStrategy<T>)>;

fn local_kinds() -> Kinds<LocalMessage> {
    let slot = || (lane(), any::<u64>(), any::<u64>(), digest());
    vec![
        (
            "forward",
            (lane(), transaction())
                .prop_map(|(lane, tx)| LocalMessage::Forward { lane, tx })
                .boxed(),
        ),
        (
            "pre-prepare",
            (slot(), payload(), replica(), signature())
                .prop_map(|((lane, view, seq, digest), payload, from, signature)| {
                    LocalMessage::PrePrepare {
                        lane,
                        view,
                        seq,
                        digest,
                        payload,
                        from,
                        signature,
                    }
                })
                .boxed(),
        ),
        (
            "prepare",
            (slot(), replica(), signature())
                .prop_map(
                    |((lane, view, seq, digest), from, signature)| LocalMessage::Prepare {
                        lane,
                        view,
                        seq,
                        digest,
                        from,
                        signature,
                    },
                )
                .boxed(),
        ),
        (
            "commit",
            (slot(), replica(), signature())
                .prop_map(
                    |((lane, view, seq, digest), from, signature)| LocalMessage::Commit {
                        lane,
                        view,
                        seq,
                        digest,
                        from,
                        signature,
                    },
                )
                .boxed(),
        ),
        (
            "view-change",
            view_change().prop_map(LocalMessage::ViewChange).boxed(),
        ),
        (
            "new-view",
            (
                lane(),
                any::<u64>(),
                vec(view_change(), 0..3),
                replica(),
                signature(),
            )
                .prop_map(
                    |(lane, view, view_changes, from, signature)| LocalMessage::NewView {
                        lane,
                        view,
                        view_changes,
                        from,
                        signature,
                    },
                )
                .boxed(),
        ),
    ]
}

fn global_kinds(blocks: BoxedStrategy<Arc<Block>>) -> Kinds<GlobalMessage> {
    vec![
        (
            "proposal",
            (blocks.clone(), signature())
                .prop_map(|(block, signature)| GlobalMessage::Proposal { block, signature })
                .boxed(),
        ),
        (
            "vote",
            (any::<u64>(), digest(), replica(), signature())
                .prop_map(|(round, block, from, signature)| GlobalMessage::Vote {
                    round,
                    block,
                    from,
                    signature,
                })
                .boxed(),
        ),
        (
            "domain-vote",
            (any::<u64>(), digest(), certificate(), replica())
                .prop_map(|(round, block, cert, from)| GlobalMessage::DomainVote {
                    round,
                    block,
                    cert,
                    from,
                })
                .boxed(),
        ),
        (
            "timeout",
            (
                any::<u64>(),
                qc(),
                proptest::option::of(tc()),
                replica(),
                signature(),
            )
                .prop_map(
                    |(round, high_qc, last_tc, from, signature)| GlobalMessage::Timeout {
                        round,
                        high_qc,
                        last_tc,
                        from,
                        signature,
                    },
                )
                .boxed(),
        ),
        (
            "sync",
            (qc(), proptest::option::of(tc()))
                .prop_map(|(high_qc, high_tc)| GlobalMessage::Sync { high_qc, high_tc })
                .boxed(),
        ),
        (
            "sync-request",
            (any::<u64>(), replica())
                .prop_map(|(round, from)| GlobalMessage::SyncRequest { round, from })
                .boxed(),
        ),
        (
            "block-request",
            (digest(), replica())
                .prop_map(|(block, from)| GlobalMessage::BlockRequest { block, from })
                .boxed(),
        ),
        (
            "block-response",
            vec(blocks, 0..3)
                .prop_map(|blocks| GlobalMessage::BlockResponse { blocks })
                .boxed(),
        ),
    ]
}

/// One strategy per message kind, blocks carrying evidence drawn from `evidence`.
fn message_kinds(evidence: BoxedStrategy<Evidence>) -> Kinds<Message> {
    let blocks = block(evidence);
    let mut kinds: Kinds<Message> = local_kinds()
        .into_iter()
        .map(|(name, s)| (name, s.prop_map(Message::Local).boxed()))
        .collect();
    kinds.extend(
        global_kinds(blocks.clone())
            .into_iter()
            .map(|(name, s)| (name, s.prop_map(Message::Global).boxed())),
    );
    let checkpoint_vote =
        (checkpoint_id(), replica(), signature()).prop_map(|(id, from, signature)| {
            CheckpointVote {
                id,
                from,
                signature,
            }
        });
    kinds.extend([
        (
            "batch",
            (local_cert(), payload())
                .prop_map(|(lc, payload)| Message::Batch { lc, payload })
                .boxed(),
        ),
        (
            "batch-request",
            (lane(), any::<u64>(), any::<u64>(), replica())
                .prop_map(|(lane, seq, upto, from)| Message::BatchRequest {
                    lane,
                    seq,
                    upto,
                    from,
                })
                .boxed(),
        ),
        (
            "checkpoint",
            checkpoint_vote.prop_map(Message::Checkpoint).boxed(),
        ),
        (
            "stable-checkpoint",
            checkpoint_cert()
                .prop_map(Message::StableCheckpoint)
                .boxed(),
        ),
        (
            "snapshot-request",
            (any::<u64>(), any::<u64>(), replica())
                .prop_map(|(height, chunk, from)| Message::SnapshotRequest {
                    height,
                    chunk,
                    from,
                })
                .boxed(),
        ),
        (
            "snapshot-chunk",
            snapshot_chunk(blocks)
                .prop_map(|chunk| Message::SnapshotChunk(Box::new(chunk)))
                .boxed(),
        ),
        (
            "recovery-request",
            (any::<u64>(), replica())
                .prop_map(|(nonce, from)| Message::RecoveryRequest { nonce, from })
                .boxed(),
        ),
        (
            "recovery-reply",
            (
                any::<u64>(),
                qc(),
                proptest::option::of(tc()),
                vec(local_cert(), 0..3),
            )
                .prop_map(|(nonce, high_qc, high_tc, lane_lcs)| {
                    Message::RecoveryReply(Box::new(RecoveryReply {
                        nonce,
                        high_qc,
                        high_tc,
                        lane_lcs,
                    }))
                })
                .boxed(),
        ),
    ]);
    kinds
}

fn any_of<T: std::fmt::Debug + 'static>(kinds: Kinds<T>) -> BoxedStrategy<T> {
    Union::new(kinds.into_iter().map(|(_, s)| s)).boxed()
}

/// Evidence nested up to `depth` levels of messages (built bottom-up, strategies shared).
fn evidence_to_depth(depth: u32) -> BoxedStrategy<Evidence> {
    let mut evidence = leaf_evidence();
    for _ in 0..depth {
        evidence = evidence_over(any_of(message_kinds(evidence)));
    }
    evidence
}

fn record_kinds(evidence: BoxedStrategy<Evidence>) -> Kinds<Record> {
    let blocks = block(evidence);
    let slot = || (any::<u64>(), any::<u64>(), digest());
    let local = |record: BoxedStrategy<LocalRecord>| {
        (lane(), record)
            .prop_map(|(lane, record)| Record::Local { lane, record })
            .boxed()
    };
    let local_message = any_of(local_kinds());
    vec![
        (
            "global-safety",
            (any::<u64>(), any::<u64>(), qc(), proptest::option::of(tc()))
                .prop_map(|(last_voted_round, proposed_round, high_qc, high_tc)| {
                    Record::GlobalSafety {
                        last_voted_round,
                        proposed_round,
                        high_qc,
                        high_tc,
                    }
                })
                .boxed(),
        ),
        (
            "global-committed",
            blocks.clone().prop_map(Record::GlobalCommitted).boxed(),
        ),
        (
            "local-view",
            local(
                (any::<u64>(), any::<bool>())
                    .prop_map(|(view, in_view_change)| LocalRecord::View {
                        view,
                        in_view_change,
                    })
                    .boxed(),
            ),
        ),
        (
            "local-pre-prepare",
            local(
                (
                    slot(),
                    payload(),
                    proptest::option::of(local_message.clone()),
                )
                    .prop_map(
                        |((view, seq, digest), payload, message)| LocalRecord::PrePrepare {
                            view,
                            seq,
                            digest,
                            payload,
                            message,
                        },
                    )
                    .boxed(),
            ),
        ),
        (
            "local-prepare-sent",
            local(
                slot()
                    .prop_map(|(view, seq, digest)| LocalRecord::PrepareSent { view, seq, digest })
                    .boxed(),
            ),
        ),
        (
            "local-prepared",
            local(prepared_proof().prop_map(LocalRecord::Prepared).boxed()),
        ),
        (
            "local-commit-sent",
            local(
                slot()
                    .prop_map(|(view, seq, digest)| LocalRecord::CommitSent { view, seq, digest })
                    .boxed(),
            ),
        ),
        (
            "local-new-view",
            local(
                local_message
                    .prop_map(LocalRecord::NewViewInstalled)
                    .boxed(),
            ),
        ),
        (
            "batch",
            (local_cert(), payload())
                .prop_map(|(lc, payload)| Record::Batch { lc, payload })
                .boxed(),
        ),
        (
            "stable-checkpoint",
            (
                checkpoint_cert(),
                vec(any::<u8>(), 0..128),
                blocks.clone(),
                vec(local_cert(), 0..3),
            )
                .prop_map(|(cert, snapshot, block, lane_certs)| {
                    Record::StableCheckpoint(CheckpointState {
                        cert,
                        snapshot: Arc::new(snapshot),
                        block,
                        lane_certs,
                    })
                })
                .boxed(),
        ),
        (
            "snapshot-installed",
            (
                checkpoint_cert(),
                vec(any::<u8>(), 0..128),
                blocks,
                vec(local_cert(), 0..3),
            )
                .prop_map(|(cert, snapshot, block, lane_certs)| {
                    Record::SnapshotInstalled(CheckpointState {
                        cert,
                        snapshot: Arc::new(snapshot),
                        block,
                        lane_certs,
                    })
                })
                .boxed(),
        ),
        (
            "rejoined",
            (
                any::<u64>(),
                proptest::option::of((any::<u64>(), vec(any::<u64>(), 0..4))),
            )
                .prop_map(|(nonce, floors)| {
                    Record::Rejoined(RejoinState {
                        nonce,
                        floors: floors.map(|(global_round, lane_seqs)| RejoinFloors {
                            global_round,
                            lane_seqs,
                        }),
                    })
                })
                .boxed(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Runner: every kind gets its own cases, so none is left to chance.

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn for_each_kind<T: std::fmt::Debug + 'static>(
    kinds: Kinds<T>,
    cases: u32,
    name_of: fn(&T) -> &'static str,
    test: impl Fn(&T) -> Result<(), TestCaseError>,
) {
    for (name, strategy) in kinds {
        runner(cases)
            .run(&strategy, |value| {
                prop_assert_eq!(name_of(&value), name);
                test(&value)
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

const MESSAGE_KINDS: usize = 22;
const RECORD_KINDS: usize = 12;

fn check_message_round_trip(message: &Message) -> Result<(), TestCaseError> {
    let frame = encode_message(message);
    prop_assert_eq!(frame[0], WIRE_VERSION);
    prop_assert_eq!(frame[1], message.wire_kind());
    let decoded = decode_message(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, message);
    prop_assert_eq!(
        encode_message(&decoded),
        frame.clone(),
        "one encoding per value"
    );
    prop_assert_eq!(
        encode_message_parts(message).concat(),
        frame.clone(),
        "the parts are the frame"
    );
    let shared = bytes::Bytes::from(frame);
    let decoded = decode_message_shared(&shared).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, message, "a shared frame decodes the same");
    Ok(())
}

fn check_record_round_trip(record: &Record) -> Result<(), TestCaseError> {
    let frame = encode_record(record);
    prop_assert_eq!(frame[0], WIRE_VERSION);
    prop_assert_eq!(frame[1], record.wire_kind());
    let decoded = decode_record(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, record);
    prop_assert_eq!(encode_record(&decoded), frame, "one encoding per value");
    Ok(())
}

#[test]
fn every_message_kind_round_trips() {
    let kinds = message_kinds(evidence_to_depth(2));
    assert_eq!(kinds.len(), MESSAGE_KINDS);
    for_each_kind(kinds, 24, message_variant, check_message_round_trip);
}

#[test]
fn every_record_kind_round_trips() {
    let kinds = record_kinds(evidence_to_depth(2));
    assert_eq!(kinds.len(), RECORD_KINDS);
    for_each_kind(kinds, 24, Record::kind, check_record_round_trip);
}

fn sample<T: std::fmt::Debug>(strategy: &BoxedStrategy<T>) -> T {
    strategy
        .new_tree(&mut runner(1))
        .expect("a value")
        .current()
}

#[test]
fn kind_tags_are_distinct_and_messages_and_records_apart() {
    let message_tags: Vec<u8> = message_kinds(leaf_evidence())
        .iter()
        .map(|(_, s)| sample(s).wire_kind())
        .collect();
    let record_tags: Vec<u8> = record_kinds(leaf_evidence())
        .iter()
        .map(|(_, s)| sample(s).wire_kind())
        .collect();
    let distinct = |tags: &[u8]| tags.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(distinct(&message_tags), MESSAGE_KINDS);
    assert_eq!(distinct(&record_tags), RECORD_KINDS);
    assert!(message_tags.iter().all(|&t| t < 0x80));
    assert!(record_tags.iter().all(|&t| t >= 0x80));
}

/// Every strict prefix of a valid frame is refused (the decoder never reads past the end
/// or accepts a frame cut short), whatever kind it is.
fn check_truncations<T>(frame: &[u8], decode: fn(&[u8]) -> Result<T, WireError>) -> bool {
    (0..frame.len()).all(|len| decode(&frame[..len]).is_err())
}

#[test]
fn every_truncation_is_an_error() {
    for_each_kind(
        message_kinds(evidence_to_depth(1)),
        6,
        message_variant,
        |m| {
            prop_assert!(check_truncations(&encode_message(m), decode_message));
            Ok(())
        },
    );
    for_each_kind(record_kinds(evidence_to_depth(1)), 6, Record::kind, |r| {
        prop_assert!(check_truncations(&encode_record(r), decode_record));
        Ok(())
    });
}

/// A frame with one byte changed either fails cleanly or is another valid value, which
/// then round-trips like any other.
#[test]
fn single_byte_mutations_never_panic() {
    let cases = (
        any_of(message_kinds(evidence_to_depth(1))),
        any::<usize>(),
        1..=255u8,
    );
    runner(256)
        .run(&cases, |(message, at, flip)| {
            let mut frame = encode_message(&message);
            let at = at % frame.len();
            frame[at] ^= flip;
            if let Ok(mutated) = decode_message(&frame) {
                check_message_round_trip(&mutated)?;
            }
            Ok(())
        })
        .unwrap();
    let cases = (
        any_of(record_kinds(evidence_to_depth(1))),
        any::<usize>(),
        1..=255u8,
    );
    runner(256)
        .run(&cases, |(record, at, flip)| {
            let mut frame = encode_record(&record);
            let at = at % frame.len();
            frame[at] ^= flip;
            if let Ok(mutated) = decode_record(&frame) {
                check_record_round_trip(&mutated)?;
            }
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    /// Arbitrary bytes behind a valid version and any kind tag reach every body decoder.
    #[test]
    fn arbitrary_bytes_never_panic(kind in any::<u8>(), body in vec(any::<u8>(), 0..256)) {
        let frame = [&[WIRE_VERSION, kind][..], &body].concat();
        if let Ok(message) = decode_message(&frame) {
            check_message_round_trip(&message)?;
        }
        if let Ok(record) = decode_record(&frame) {
            check_record_round_trip(&record)?;
        }
        let _ = decode_message(&body);
        let _ = decode_record(&body);
    }
}

// ---------------------------------------------------------------------------------------
// Refusals, one per rule.

fn qc0() -> QuorumCert {
    QuorumCert {
        round: 0,
        block: [0; 32],
        cert: Certificate {
            signers: Bitmap::default(),
            aggregate: Signature(Vec::new()),
        },
    }
}

fn block_with(evidence: Vec<Evidence>) -> Block {
    Block {
        round: 1,
        height: 1,
        parent: [0; 32],
        qc: qc0(),
        tc: None,
        cut: vec![0],
        batches: Vec::new(),
        evidence,
        proposer: 0,
    }
}

fn sync_request() -> Message {
    Message::Global(GlobalMessage::SyncRequest { round: 3, from: 1 })
}

#[test]
fn version_kind_and_trailing_bytes_are_checked() {
    let mut frame = encode_message(&sync_request());
    assert_eq!(decode_message(&frame), Ok(sync_request()));
    assert!(matches!(
        decode_message(&[]),
        Err(WireError::Truncated {
            what: "format version",
            ..
        })
    ));
    frame[0] = WIRE_VERSION + 1;
    assert_eq!(
        decode_message(&frame),
        Err(WireError::UnknownVersion(WIRE_VERSION + 1))
    );
    assert_eq!(
        decode_message(&[WIRE_VERSION, 0x7f]),
        Err(WireError::UnknownTag {
            what: "message kind",
            tag: 0x7f
        })
    );
    let mut long = encode_message(&sync_request());
    long.extend_from_slice(&[0, 0]);
    assert_eq!(decode_message(&long), Err(WireError::TrailingBytes(2)));
}

#[test]
fn a_record_frame_is_not_a_message_frame() {
    let record = Record::Local {
        lane: Lane {
            domain: 0,
            shard: 0,
        },
        record: LocalRecord::View {
            view: 2,
            in_view_change: true,
        },
    };
    let frame = encode_record(&record);
    assert!(matches!(
        decode_message(&frame),
        Err(WireError::UnknownTag {
            what: "message kind",
            ..
        })
    ));
    assert!(matches!(
        decode_record(&encode_message(&sync_request())),
        Err(WireError::UnknownTag {
            what: "record kind",
            ..
        })
    ));
}

#[test]
fn out_of_range_values_are_refused() {
    // SyncRequest: kind, round (8), sender (4).
    let mut frame = encode_message(&sync_request());
    frame[10..14].copy_from_slice(&(REPLICAS_MAX as u32).to_le_bytes());
    assert_eq!(
        decode_message(&frame),
        Err(WireError::OutOfRange {
            what: "sync requester",
            value: REPLICAS_MAX as u64,
            bound: REPLICAS_MAX as u64
        })
    );
    // BatchRequest: kind, lane domain (4), lane shard (4).
    let request = Message::BatchRequest {
        lane: Lane {
            domain: 0,
            shard: 0,
        },
        seq: 1,
        upto: 2,
        from: 0,
    };
    let mut frame = encode_message(&request);
    frame[6..10].copy_from_slice(&SHARDS_MAX.to_le_bytes());
    assert!(matches!(
        decode_message(&frame),
        Err(WireError::OutOfRange {
            what: "lane shard",
            ..
        })
    ));
    // LocalRecord::View: kind, lane (8), view (8), in_view_change (1).
    let view = Record::Local {
        lane: Lane {
            domain: 0,
            shard: 0,
        },
        record: LocalRecord::View {
            view: 2,
            in_view_change: false,
        },
    };
    let mut frame = encode_record(&view);
    frame[18] = 2;
    assert_eq!(
        decode_record(&frame),
        Err(WireError::UnknownTag {
            what: "in view change",
            tag: 2
        })
    );
}

#[test]
fn option_presence_and_reason_text_are_checked() {
    let sync = Message::Global(GlobalMessage::Sync {
        high_qc: qc0(),
        high_tc: None,
    });
    let mut frame = encode_message(&sync);
    *frame.last_mut().expect("presence byte") = 2;
    assert_eq!(
        decode_message(&frame),
        Err(WireError::UnknownTag {
            what: "option presence",
            tag: 2
        })
    );
    let evidence = Evidence::InvalidProposal {
        offender: 0,
        reason: "ab".into(),
        message: Box::new(sync_request()),
    };
    let mut frame = encode_record(&Record::GlobalCommitted(Arc::new(block_with(vec![
        evidence,
    ]))));
    let at = frame
        .windows(2)
        .position(|w| w == b"ab")
        .expect("reason bytes");
    frame[at] = 0xff;
    assert_eq!(
        decode_record(&frame),
        Err(WireError::Invalid {
            what: "evidence reason",
            reason: "not UTF-8"
        })
    );
}

#[test]
fn a_signature_above_its_bound_is_refused() {
    let vote = Message::Global(GlobalMessage::Vote {
        round: 1,
        block: [1; 32],
        from: 0,
        signature: Signature(vec![7; SIGNATURE_BYTES_MAX]),
    });
    let mut frame = encode_message(&vote);
    assert!(decode_message(&frame).is_ok());
    // Vote: kind, round (8), block (32), sender (4), then the signature length.
    let at = 2 + 8 + 32 + 4;
    frame[at..at + 4].copy_from_slice(&(SIGNATURE_BYTES_MAX as u32 + 1).to_le_bytes());
    frame.push(7);
    assert_eq!(
        decode_message(&frame),
        Err(WireError::TooLong {
            what: "signature",
            len: SIGNATURE_BYTES_MAX as u64 + 1,
            max: SIGNATURE_BYTES_MAX as u64
        })
    );
}

/// `levels` pieces of evidence, each holding a proposal whose block holds the next.
fn nested_proposal(levels: u32) -> Message {
    let mut message = sync_request();
    for _ in 0..levels {
        let evidence = Evidence::InvalidProposal {
            offender: 0,
            reason: String::new(),
            message: Box::new(message),
        };
        message = Message::Global(GlobalMessage::Proposal {
            block: Arc::new(block_with(vec![evidence])),
            signature: Signature(vec![1; 16]),
        });
    }
    message
}

fn outer_evidence(message: &Message) -> &Evidence {
    let Message::Global(GlobalMessage::Proposal { block, .. }) = message else {
        panic!("a proposal")
    };
    &block.evidence[0]
}

#[test]
fn evidence_nesting_is_bounded() {
    let deepest = nested_proposal(EVIDENCE_NESTING_MAX);
    assert_eq!(
        outer_evidence(&deepest).wire_nesting(),
        EVIDENCE_NESTING_MAX
    );
    assert_eq!(
        decode_message(&encode_message(&deepest)),
        Ok(deepest.clone())
    );
    // Evidence against the sender of two such proposals is one level too deep to carry.
    let equivocation = Evidence::Equivocation {
        offender: 0,
        first: Box::new(deepest.clone()),
        second: Box::new(deepest),
    };
    assert_eq!(equivocation.wire_nesting(), EVIDENCE_NESTING_MAX + 1);
    let too_deep = encode_message(&nested_proposal(EVIDENCE_NESTING_MAX + 1));
    assert_eq!(
        decode_message(&too_deep),
        Err(WireError::TooDeep {
            max: EVIDENCE_NESTING_MAX
        })
    );
}

fn with_count(prefix: &[u8], count: u32) -> Vec<u8> {
    [prefix, &count.to_le_bytes()].concat()
}

#[test]
fn counts_above_their_bound_are_refused_before_allocation() {
    let blocks = with_count(&[WIRE_VERSION, 0x27], u32::MAX);
    assert_eq!(
        decode_message(&blocks),
        Err(WireError::TooLong {
            what: "response blocks",
            len: u32::MAX.into(),
            max: SYNC_BLOCKS_MAX as u64
        })
    );
    let batch = Message::Batch {
        lc: LocalCert {
            lane: Lane {
                domain: 0,
                shard: 0,
            },
            view: 0,
            seq: 1,
            digest: [0; 32],
            cert: qc0().cert,
        },
        payload: Payload::empty(),
    };
    let frame = encode_message(&batch);
    // The payload ends the frame: its transaction count, then its byte length.
    let prefix = &frame[..frame.len() - 8];
    assert_eq!(
        decode_message(&with_count(prefix, u32::MAX)),
        Err(WireError::TooLong {
            what: "payload transactions",
            len: u32::MAX.into(),
            max: BATCH_TXS_MAX as u64
        })
    );
    let prefix = &frame[..frame.len() - 4];
    assert_eq!(
        decode_message(&with_count(prefix, u32::MAX)),
        Err(WireError::TooLong {
            what: "payload bytes",
            len: u32::MAX.into(),
            max: BATCH_BYTES_MAX as u64
        })
    );
    // Within the bound but beyond the input: refused before anything is reserved.
    assert!(matches!(
        decode_message(&with_count(prefix, BATCH_BYTES_MAX as u32)),
        Err(WireError::Truncated { what: "payload bytes", needed, remaining: 0 })
            if needed == BATCH_BYTES_MAX as u64
    ));
}

#[test]
fn a_snapshot_length_is_checked_against_the_input() {
    let record = Record::SnapshotInstalled(CheckpointState {
        cert: CheckpointCert {
            id: CheckpointId {
                height: 1,
                block: [0; 32],
                state_root: [0; 32],
                snapshot_root: [0; 32],
            },
            cert: qc0().cert,
        },
        snapshot: Arc::new(vec![9; 3]),
        block: Arc::new(block_with(Vec::new())),
        lane_certs: Vec::new(),
    });
    let frame = encode_record(&record);
    // Kind, checkpoint id (104), certificate (32 + 4), then the snapshot length.
    let at = 2 + 104 + 36;
    assert_eq!(frame[at..at + 4], 3u32.to_le_bytes());
    let mut claim = frame[..at].to_vec();
    claim.extend_from_slice(&(SNAPSHOT_BYTES_MAX as u32).to_le_bytes());
    assert!(matches!(
        decode_record(&claim),
        Err(WireError::Truncated {
            what: "snapshot bytes",
            ..
        })
    ));
    claim.truncate(at);
    claim.extend_from_slice(&(SNAPSHOT_BYTES_MAX as u32 + 1).to_le_bytes());
    assert!(matches!(
        decode_record(&claim),
        Err(WireError::TooLong {
            what: "snapshot bytes",
            ..
        })
    ));
}

fn chunk_of(bytes: Vec<u8>) -> Message {
    Message::SnapshotChunk(Box::new(SnapshotChunk {
        checkpoint: CheckpointCert {
            id: CheckpointId {
                height: 1,
                block: [0; 32],
                state_root: [0; 32],
                snapshot_root: [0; 32],
            },
            cert: qc0().cert,
        },
        block: Arc::new(block_with(Vec::new())),
        lane_certs: Vec::new(),
        proof: MerkleProof {
            leaf_index: 0,
            leaf_count: 1,
            siblings: Vec::new(),
        },
        bytes,
        high_qc: qc0(),
    }))
}

#[test]
fn a_full_snapshot_chunk_round_trips() {
    let chunk = chunk_of(vec![1; SNAPSHOT_CHUNK_BYTES]);
    assert_eq!(decode_message(&encode_message(&chunk)), Ok(chunk));
}

/// A replica never sends (or logs) what it would refuse: encoding asserts the bounds.
#[test]
#[should_panic(expected = "snapshot chunk bytes")]
fn encoding_a_chunk_above_its_bound_is_a_bug() {
    let _ = encode_message(&chunk_of(vec![1; SNAPSHOT_CHUNK_BYTES + 1]));
}

#[test]
#[should_panic(expected = "batch bounded")]
fn building_a_batch_above_its_bound_is_a_bug() {
    let tx = SignedTransfer {
        transfer: Transfer {
            key: 1,
            from: 2,
            to: 3,
            amount: 4,
        },
        client: 2,
        signature: ClientSignature([5; 64]),
    };
    let record = Record::Batch {
        lc: LocalCert {
            lane: Lane {
                domain: 0,
                shard: 0,
            },
            view: 0,
            seq: 1,
            digest: [0; 32],
            cert: qc0().cert,
        },
        payload: Payload::from_transfers(&[tx; BATCH_TXS_MAX + 1]),
    };
    let _ = encode_record(&record);
}
