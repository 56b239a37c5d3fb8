//! BLS signatures for the core's crypto boundary, with `ccbft-crypto` (BLS12-381, blst,
//! min_pk: 48-byte keys, 96-byte signatures, proof-of-possession scheme).
//!
//! - [`BlsKeys`]: a committee's keys derived deterministically from a seed (tests, the
//!   simulator, local clusters); every public key joins the [`Committee`] with its proof of
//!   possession checked, which makes same-message aggregation safe against rogue keys.
//! - [`BlsSigner`]: one replica's [`Signer`].
//! - [`BlsVerifier`]: the host's [`Verifier`]; an aggregate costs one aggregation of public
//!   keys and one pairing check.
//!
//! # Domain separation
//!
//! The core has eight tags, the crypto crate seven hash-to-curve domains (one DST each). Each
//! core tag is signed under the nearest crypto tag (see [`crypto_tag`]): the local tier's
//! prepare, commit and view-change votes under `LocalVote`, the local new-view message (the new
//! primary's) and the global proposal under `Proposal`, checkpoints under `Checkpoint`, global
//! votes and timeouts under their own tags. In addition the signed bytes are the core tag's
//! fixed wire byte ([`tag_byte`]) followed by the message, so two core tags that share a DST
//! still never sign the same bytes: a signature of one core tag never verifies as another
//! (tested for every pair). The prefix is one fixed-length byte, so the encoding is injective.
//!
//! Nothing here panics on bytes from the network: bad signature bytes, unknown signers and
//! empty or out-of-committee bitmaps make [`BlsVerifier::verify`] return false.

use crate::client::{ClientKey, ClientSignature};
use crate::crypto::{Bitmap, Check, Signature, Signer, Tag, Verifier};
use crate::topology::{ReplicaId, REPLICAS_MAX};
use ccbft_crypto::bls;
use ccbft_crypto::certificate::Committee;
use ccbft_crypto::client::{self, ClientPublicKey};
use ccbft_crypto::CryptoError;
use std::sync::Arc;

/// Domain of the per-replica key seeds derived by [`BlsKeys::generate`].
const KEY_SEED_DOMAIN: &[u8] = b"CCBFT-V1-CORE-BLS-KEY-SEED";

/// The fixed wire byte of a core tag, prefixed to every signed message. Explicit values, so
/// that reordering [`Tag`] never changes what is signed.
pub const fn tag_byte(tag: Tag) -> u8 {
    match tag {
        Tag::LocalPrepare => 1,
        Tag::LocalCommit => 2,
        Tag::LocalViewChange => 3,
        Tag::LocalNewView => 4,
        Tag::LocalCheckpoint => 5,
        Tag::Proposal => 6,
        Tag::GlobalVote => 7,
        Tag::Timeout => 8,
        Tag::Checkpoint => 9,
    }
}

/// The crypto crate's tag (hash-to-curve domain) a core tag is signed under.
pub const fn crypto_tag(tag: Tag) -> bls::Tag {
    match tag {
        Tag::LocalPrepare | Tag::LocalCommit | Tag::LocalViewChange => bls::Tag::LocalVote,
        Tag::LocalNewView | Tag::Proposal => bls::Tag::Proposal,
        Tag::LocalCheckpoint | Tag::Checkpoint => bls::Tag::Checkpoint,
        Tag::GlobalVote => bls::Tag::GlobalVote,
        Tag::Timeout => bls::Tag::Timeout,
    }
}

/// The bytes actually signed for `message` under core tag `tag`: the tag byte, then the message.
fn signed_bytes(tag: Tag, message: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(message.len() + 1);
    bytes.push(tag_byte(tag));
    bytes.extend_from_slice(message);
    bytes
}

/// Errors building a verifier from a committee.
#[derive(Debug, thiserror::Error)]
pub enum BlsError {
    #[error("committee of {got} members exceeds the {max} replicas a bitmap holds")]
    CommitteeTooLarge { got: usize, max: usize },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The keys of a whole committee, derived from one seed. Replica `i` holds member `i`'s key.
#[derive(Debug, Clone)]
pub struct BlsKeys {
    secrets: Vec<bls::SecretKey>,
    committee: Arc<Committee>,
}

impl BlsKeys {
    /// Derives `replicas` keys from `seed`: replica `id`'s secret key is
    /// `SecretKey::from_seed(SHA-256(domain, seed, id))`, and the committee (epoch 0) is
    /// registered with every proof of possession checked.
    ///
    /// # Panics
    /// If `replicas` is 0 or above [`REPLICAS_MAX`] (a caller's bug, not input).
    pub fn generate(replicas: u32, seed: u64) -> BlsKeys {
        assert!(
            (1..=REPLICAS_MAX).contains(&(replicas as usize)),
            "between 1 and {REPLICAS_MAX} replicas, not {replicas}"
        );
        let secrets: Vec<bls::SecretKey> = (0..replicas)
            .map(|id| {
                let key_seed = crate::crypto::digest(&[
                    KEY_SEED_DOMAIN,
                    &seed.to_le_bytes(),
                    &id.to_le_bytes(),
                ]);
                bls::SecretKey::from_seed(&key_seed)
            })
            .collect();
        let members = secrets
            .iter()
            .map(|sk| (sk.public_key(), sk.proof_of_possession()))
            .collect();
        // Distinct seeds give distinct keys and honest proofs verify: failure is a bug.
        let committee = Committee::new(0, members).expect("derived keys form a committee");
        BlsKeys {
            secrets,
            committee: Arc::new(committee),
        }
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Always false: there is at least one replica.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The committee: every public key, proofs of possession checked.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The signer of replica `id`: it can sign only as that replica.
    ///
    /// # Panics
    /// If `id` is not a replica of this committee.
    pub fn signer(&self, id: ReplicaId) -> BlsSigner {
        let secret = self
            .secrets
            .get(id as usize)
            .expect("replica of the committee");
        BlsSigner::new(id, secret.clone())
    }

    /// A verifier for the whole committee.
    pub fn verifier(&self) -> BlsVerifier {
        BlsVerifier {
            committee: self.committee.clone(),
        }
    }
}

/// One replica's BLS key behind the core's [`Signer`].
#[derive(Debug, Clone)]
pub struct BlsSigner {
    id: ReplicaId,
    secret: bls::SecretKey,
}

impl BlsSigner {
    /// A signer for replica `id` holding `secret` (member `id` of the committee).
    pub fn new(id: ReplicaId, secret: bls::SecretKey) -> BlsSigner {
        BlsSigner { id, secret }
    }

    /// This replica's public key.
    pub fn public_key(&self) -> bls::PublicKey {
        self.secret.public_key()
    }
}

impl Signer for BlsSigner {
    fn id(&self) -> ReplicaId {
        self.id
    }

    fn sign(&self, tag: Tag, message: &[u8]) -> Signature {
        let signature = self
            .secret
            .sign(crypto_tag(tag), &signed_bytes(tag, message));
        Signature(signature.to_bytes().to_vec())
    }

    /// The sum of the signatures. Any undecodable signature (or an empty list, or a sum at
    /// infinity) gives an empty signature, which never verifies.
    fn aggregate(&self, signatures: &[Signature]) -> Signature {
        let decoded: Result<Vec<bls::Signature>, CryptoError> = signatures
            .iter()
            .map(|s| bls::Signature::from_bytes(&s.0))
            .collect();
        match decoded.and_then(|sigs| bls::Signature::aggregate(&sigs)) {
            Ok(aggregate) => Signature(aggregate.to_bytes().to_vec()),
            Err(_) => Signature(Vec::new()),
        }
    }
}

/// Verifies single signatures and aggregate certificates against a committee.
#[derive(Debug, Clone)]
pub struct BlsVerifier {
    committee: Arc<Committee>,
}

impl BlsVerifier {
    /// A verifier for `committee`; member `i` is replica `i`. A committee must fit in a
    /// [`Bitmap`] (at most [`REPLICAS_MAX`] members).
    pub fn new(committee: Committee) -> Result<BlsVerifier, BlsError> {
        if committee.len() > REPLICAS_MAX {
            return Err(BlsError::CommitteeTooLarge {
                got: committee.len(),
                max: REPLICAS_MAX,
            });
        }
        Ok(BlsVerifier {
            committee: Arc::new(committee),
        })
    }

    /// The committee's keys.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    fn verify_single(
        &self,
        signer: ReplicaId,
        tag: Tag,
        message: &[u8],
        signature: &Signature,
    ) -> bool {
        let Some(key) = self.committee.public_key(signer as usize) else {
            return false;
        };
        let Ok(signature) = bls::Signature::from_bytes(&signature.0) else {
            return false;
        };
        key.verify(crypto_tag(tag), &signed_bytes(tag, message), &signature)
            .is_ok()
    }

    /// One pairing check of the aggregate against the sum of the signers' keys.
    fn verify_aggregate(
        &self,
        tag: Tag,
        message: &[u8],
        signers: &Bitmap,
        aggregate: &Signature,
    ) -> bool {
        let keys: Option<Vec<&bls::PublicKey>> = signers
            .ids()
            .map(|id| self.committee.public_key(id as usize))
            .collect();
        let Some(keys) = keys.filter(|keys| !keys.is_empty()) else {
            return false; // an unknown signer, or nobody
        };
        let Ok(aggregate) = bls::Signature::from_bytes(&aggregate.0) else {
            return false;
        };
        let Ok(key) = bls::PublicKey::aggregate(&keys) else {
            return false;
        };
        key.verify(crypto_tag(tag), &signed_bytes(tag, message), &aggregate)
            .is_ok()
    }
}

/// Ed25519, strict (crypto's `client` module); a key or signature that does not decode fails.
fn verify_client(key: &ClientKey, message: &[u8], signature: &ClientSignature) -> bool {
    let (Ok(key), Ok(signature)) = (
        ClientPublicKey::from_bytes(&key.0),
        client::ClientSignature::from_bytes(&signature.0),
    ) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

impl Verifier for BlsVerifier {
    fn verify(&self, check: &Check) -> bool {
        match check {
            Check::Single {
                signer,
                tag,
                message,
                signature,
            } => self.verify_single(*signer, *tag, message, signature),
            Check::Aggregate {
                tag,
                message,
                certificate,
            } => self.verify_aggregate(*tag, message, &certificate.signers, &certificate.aggregate),
            Check::Client {
                key,
                message,
                signature,
            } => verify_client(key, message, signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientRegistry, SignedTransfer};
    use crate::crypto::Certificate;
    use crate::ledger::Transfer;
    use crate::messages::Message;
    use crate::replica::{Action, Input, ReceiptStatus, Replica, ReplicaConfig};
    use crate::topology::Topology;
    use crate::vote_pattern::VotePattern;
    use ccbft_crypto::client::ClientSigningKey;
    use std::collections::{BTreeMap, VecDeque};

    const ALL_TAGS: [Tag; 9] = [
        Tag::LocalPrepare,
        Tag::LocalCommit,
        Tag::LocalViewChange,
        Tag::LocalNewView,
        Tag::LocalCheckpoint,
        Tag::Proposal,
        Tag::GlobalVote,
        Tag::Timeout,
        Tag::Checkpoint,
    ];

    fn single(signer: ReplicaId, tag: Tag, message: &[u8], signature: &Signature) -> Check {
        Check::Single {
            signer,
            tag,
            message: message.to_vec(),
            signature: signature.clone(),
        }
    }

    fn aggregate_check(tag: Tag, message: &[u8], signers: Bitmap, aggregate: Signature) -> Check {
        Check::Aggregate {
            tag,
            message: message.to_vec(),
            certificate: Certificate { signers, aggregate },
        }
    }

    #[test]
    fn keys_are_deterministic_and_distinct() {
        let a = BlsKeys::generate(4, 7);
        let b = BlsKeys::generate(4, 7);
        let c = BlsKeys::generate(4, 8);
        assert_eq!(a.committee(), b.committee());
        assert_ne!(a.committee().public_keys(), c.committee().public_keys());
        assert_eq!(a.len(), 4);
        assert_eq!(a.signer(2).public_key(), a.committee().public_keys()[2]);
        let verifier = BlsVerifier::new(a.committee().clone()).unwrap();
        let signature = a.signer(1).sign(Tag::GlobalVote, b"m");
        assert!(verifier.verify(&single(1, Tag::GlobalVote, b"m", &signature)));
        assert!(!c
            .verifier()
            .verify(&single(1, Tag::GlobalVote, b"m", &signature)));
    }

    #[test]
    fn tag_bytes_are_distinct() {
        for (i, a) in ALL_TAGS.iter().enumerate() {
            for b in &ALL_TAGS[i + 1..] {
                assert_ne!(tag_byte(*a), tag_byte(*b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn round_trip_for_every_tag_and_no_cross_tag_verification() {
        let keys = BlsKeys::generate(4, 1);
        let verifier = keys.verifier();
        let signer = keys.signer(2);
        assert_eq!(signer.id(), 2);
        for tag in ALL_TAGS {
            let signature = signer.sign(tag, b"message");
            assert_eq!(signature.0.len(), bls::SIGNATURE_BYTES);
            assert!(
                verifier.verify(&single(2, tag, b"message", &signature)),
                "{tag:?}"
            );
            for other in ALL_TAGS.into_iter().filter(|&t| t != tag) {
                assert!(
                    !verifier.verify(&single(2, other, b"message", &signature)),
                    "{tag:?} verified as {other:?}"
                );
            }
            assert!(!verifier.verify(&single(1, tag, b"message", &signature)));
            assert!(!verifier.verify(&single(3, tag, b"message", &signature)));
            assert!(!verifier.verify(&single(2, tag, b"messagf", &signature)));
            assert!(!verifier.verify(&single(2, tag, b"", &signature)));
        }
    }

    #[test]
    fn unknown_signer_and_garbage_bytes_are_refused() {
        let keys = BlsKeys::generate(4, 2);
        let verifier = keys.verifier();
        let good = keys.signer(0).sign(Tag::LocalCommit, b"x");
        assert!(verifier.verify(&single(0, Tag::LocalCommit, b"x", &good)));
        assert!(!verifier.verify(&single(4, Tag::LocalCommit, b"x", &good)));
        assert!(!verifier.verify(&single(u32::MAX, Tag::LocalCommit, b"x", &good)));
        let mut garbage = vec![
            Signature(Vec::new()),
            Signature(vec![0; 16]),
            Signature(vec![0; 96]),
            Signature(vec![0xff; 96]),
            Signature(vec![0xab; 97]),
        ];
        let mut truncated = good.clone();
        truncated.0.pop();
        garbage.push(truncated);
        for i in 0..good.0.len() {
            let mut flipped = good.clone();
            flipped.0[i] ^= 1 << (i % 8);
            garbage.push(flipped);
        }
        let mut bitmap = Bitmap::default();
        bitmap.insert(0);
        for signature in &garbage {
            assert!(!verifier.verify(&single(0, Tag::LocalCommit, b"x", signature)));
            assert!(!verifier.verify(&aggregate_check(
                Tag::LocalCommit,
                b"x",
                bitmap,
                signature.clone()
            )));
        }
        // A garbage signature poisons an aggregate: the result is empty and never verifies.
        let aggregate = keys
            .signer(0)
            .aggregate(&[good.clone(), Signature(vec![1; 96])]);
        assert!(aggregate.0.is_empty());
        assert!(keys.signer(0).aggregate(&[]).0.is_empty());
        assert!(!verifier.verify(&aggregate_check(Tag::LocalCommit, b"x", bitmap, aggregate)));
    }

    #[test]
    fn aggregate_of_a_quorum_verifies_only_with_its_exact_signers() {
        let keys = BlsKeys::generate(7, 3);
        let verifier = keys.verifier();
        let quorum: Vec<ReplicaId> = vec![0, 2, 3, 5, 6];
        let message = b"block digest";
        let tag = Tag::GlobalVote;
        let signatures: Vec<Signature> = quorum
            .iter()
            .map(|&id| keys.signer(id).sign(tag, message))
            .collect();
        let aggregate = keys.signer(1).aggregate(&signatures);
        assert_eq!(aggregate.0.len(), bls::SIGNATURE_BYTES);
        let mut signers = Bitmap::default();
        quorum.iter().for_each(|&id| assert!(signers.insert(id)));
        let check = |signers: Bitmap, tag: Tag, message: &[u8]| {
            verifier.verify(&aggregate_check(tag, message, signers, aggregate.clone()))
        };
        assert!(check(signers, tag, message));
        // An extra claimed signer.
        let mut extra = signers;
        extra.insert(1);
        assert!(!check(extra, tag, message));
        // A missing signer.
        let mut missing = Bitmap::default();
        quorum[1..].iter().for_each(|&id| {
            missing.insert(id);
        });
        assert!(!check(missing, tag, message));
        // An unknown signer (beyond the committee), and nobody at all.
        let mut unknown = signers;
        unknown.insert(7);
        assert!(!check(unknown, tag, message));
        assert!(!check(Bitmap::default(), tag, message));
        // Wrong tag (same DST, different prefix), wrong tag (other DST), wrong message.
        assert!(!check(signers, Tag::Timeout, message));
        assert!(!check(signers, Tag::LocalCommit, message));
        assert!(!check(signers, tag, b"other digest"));
        // A single signature is not an aggregate of several.
        assert!(!verifier.verify(&aggregate_check(
            tag,
            message,
            signers,
            signatures[0].clone()
        )));
        let mut one = Bitmap::default();
        one.insert(0);
        assert!(verifier.verify(&aggregate_check(tag, message, one, signatures[0].clone())));
    }

    #[test]
    fn verifier_refuses_a_committee_larger_than_a_bitmap() {
        let secret = bls::SecretKey::from_seed(&[9; 32]);
        let members = (0..=REPLICAS_MAX)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let sk = bls::SecretKey::from_seed(&seed);
                (sk.public_key(), sk.proof_of_possession())
            })
            .collect();
        let committee = Committee::new(0, members).unwrap();
        assert!(matches!(
            BlsVerifier::new(committee),
            Err(BlsError::CommitteeTooLarge { got: 257, max: 256 })
        ));
        let small = Committee::new(0, vec![(secret.public_key(), secret.proof_of_possession())]);
        assert!(BlsVerifier::new(small.unwrap()).is_ok());
    }

    /// Four replicas, real BLS, a FIFO network that delivers at once, verification on the
    /// spot; the run ends when every transfer is globally final on every replica.
    struct Cluster {
        replicas: Vec<Replica>,
        signers: Vec<BlsSigner>,
        verifier: BlsVerifier,
        queue: VecDeque<(ReplicaId, ReplicaId, Message)>,
        /// Globally final receipts: (key, replica) -> count.
        final_receipts: BTreeMap<(u128, ReplicaId), u32>,
        evidence: u64,
        checks: u64,
        failed_checks: u64,
        deliveries: u64,
    }

    /// Bound on message deliveries in one run (a livelock guard).
    const DELIVERIES_MAX: u64 = 200_000;

    impl Cluster {
        fn step(&mut self, id: ReplicaId, input: Input) {
            let mut inputs = vec![input];
            while let Some(input) = inputs.pop() {
                let actions = self.replicas[id as usize].step(input, &self.signers[id as usize]);
                for action in actions {
                    match action {
                        // Records are durable at once here, so no send waits.
                        Action::Send { to, message, .. } => {
                            for target in to {
                                self.queue.push_back((id, target, message.clone()));
                            }
                        }
                        Action::Verify { token, checks } => {
                            self.checks += checks.len() as u64;
                            let failed = self.verifier.failed(&checks);
                            self.failed_checks += failed.len() as u64;
                            inputs.push(Input::Verified { token, failed });
                        }
                        Action::Receipt {
                            key,
                            status: ReceiptStatus::GloballyFinal { .. },
                        } => *self.final_receipts.entry((key, id)).or_default() += 1,
                        Action::Evidence(_) => self.evidence += 1,
                        _ => {}
                    }
                }
            }
        }

        fn drain(&mut self) {
            while let Some((from, to, message)) = self.queue.pop_front() {
                self.deliveries += 1;
                assert!(self.deliveries <= DELIVERIES_MAX, "livelock guard");
                self.step(to, Input::Message { from, message });
            }
        }
    }

    #[test]
    fn replicas_reach_agreement_with_real_bls() {
        const N: u32 = 4;
        const TICKS_MAX: u64 = 3_000;
        let topology = Arc::new(Topology::synthetic(N, 1, 1).unwrap());
        let keys = BlsKeys::generate(N, 42);
        let signers: Vec<BlsSigner> = (0..N).map(|id| keys.signer(id)).collect();
        // Real Ed25519 clients: client a owns account a.
        let client_keys: Vec<ClientSigningKey> = (0..16u8)
            .map(|a| ClientSigningKey::from_seed(&[a; 32]))
            .collect();
        let clients = Arc::new(
            ClientRegistry::new(
                (0..16u32).map(|a| {
                    (
                        a,
                        ClientKey(client_keys[a as usize].public_key().to_bytes()),
                    )
                }),
                (0..16u32).map(|a| (u64::from(a), a)),
            )
            .unwrap(),
        );
        let replicas = (0..N)
            .map(|id| {
                let config = ReplicaConfig {
                    topology: topology.clone(),
                    me: id,
                    genesis_accounts: (0..16).map(|a| (a, 1_000)).collect(),
                    clients: clients.clone(),
                    request_timeout_ticks: 150,
                    global_timeout_min_ticks: 400,
                    global_timeout_max_ticks: 3_000,
                    ticks_per_ms: 1,
                    rotation_rounds: 3,
                    vote_pattern: VotePattern::AllToAll,
                    checkpoint_interval_blocks: 8,
                };
                Replica::new(config, &signers[id as usize])
            })
            .collect();
        let mut cluster = Cluster {
            replicas,
            signers,
            verifier: keys.verifier(),
            queue: VecDeque::new(),
            final_receipts: BTreeMap::new(),
            evidence: 0,
            checks: 0,
            failed_checks: 0,
            deliveries: 0,
        };
        let transfers: Vec<SignedTransfer> = (0..10u64)
            .map(|i| {
                let transfer = Transfer {
                    key: 1_000 + u128::from(i),
                    from: i % 16,
                    to: (i + 5) % 16,
                    amount: 10 + i,
                };
                let client = (i % 16) as u32;
                let bytes = SignedTransfer::signed_bytes(&transfer, client);
                let signature = client_keys[client as usize].sign(&bytes).to_bytes();
                SignedTransfer {
                    transfer,
                    client,
                    signature: ClientSignature(signature),
                }
            })
            .collect();
        let all_final = |cluster: &Cluster| {
            transfers
                .iter()
                .all(|tx| (0..N).all(|id| cluster.final_receipts.contains_key(&(tx.key(), id))))
        };
        let mut ticks = 0;
        while ticks < TICKS_MAX && !all_final(&cluster) {
            ticks += 1;
            if ticks == 5 {
                for (i, tx) in transfers.iter().enumerate() {
                    cluster.step(i as ReplicaId % N, Input::Client((*tx).into()));
                }
                cluster.drain();
            }
            for id in 0..N {
                cluster.step(id, Input::Tick);
            }
            cluster.drain();
        }
        // A few more ticks: the cluster stays quiet and in agreement (no spin, no evidence).
        let deliveries_at_final = cluster.deliveries;
        for _ in 0..50 {
            for id in 0..N {
                cluster.step(id, Input::Tick);
            }
            cluster.drain();
        }
        eprintln!(
            "real BLS: {ticks} ticks, {} deliveries, {} checks ({} failed), {} blocks executed",
            cluster.deliveries,
            cluster.checks,
            cluster.failed_checks,
            cluster.replicas[0].executed().len()
        );
        assert!(
            all_final(&cluster),
            "not every transfer final after {ticks} ticks"
        );
        assert_eq!(cluster.evidence, 0);
        assert_eq!(cluster.failed_checks, 0);
        let executed = cluster.replicas[0].executed();
        assert!(!executed.is_empty());
        for replica in &cluster.replicas[1..] {
            assert_eq!(replica.executed(), executed, "replica {}", replica.id());
        }
        for replica in &cluster.replicas {
            assert_eq!(replica.ledger().executed_count(), transfers.len() as u64);
        }
        assert!(
            cluster.deliveries - deliveries_at_final < 200,
            "spins after finality"
        );
        assert!(
            cluster.checks > 0 && cluster.checks < 5_000,
            "{} checks",
            cluster.checks
        );
    }
}
