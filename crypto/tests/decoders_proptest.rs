//! Bad bytes never panic: every decoder gets random inputs, random lengths and random
//! mutations of valid encodings, and must return a value or an error. The hybrid decoders
//! also get a valid BLS prefix followed by random bytes, so that the ML-DSA-65 decoders
//! (behind the BLS check) see random input, which plain random bytes never reach.

use ccbft_crypto::bls::{ProofOfPossession, PublicKey, SecretKey, Signature, Tag};
use ccbft_crypto::certificate::{sign_vote, Certificate, Committee, SignerBitmap};
use ccbft_crypto::client::{ClientPublicKey, ClientSignature, ClientSigningKey};
use ccbft_crypto::dkg::{Complaint, DealerCommitment, Justification, SecretShare};
use ccbft_crypto::hex;
use ccbft_crypto::hybrid::{HybridPublicKey, HybridSecretKey, HybridSignature};
use ccbft_crypto::threshold::{KeyShare, PartialSignature, ThresholdPublicKey};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Runs every decoder on `bytes`; only the absence of a panic is checked here, plus that
/// whatever decodes re-encodes to the same bytes (canonical encodings).
fn decode_all(bytes: &[u8]) {
    if let Ok(v) = SecretKey::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = PublicKey::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = Signature::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = ProofOfPossession::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = SignerBitmap::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    if let Ok(v) = Certificate::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    if let Ok(v) = Committee::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    if let Ok(v) = ClientPublicKey::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = ClientSignature::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    let _ = ClientSigningKey::from_bytes(bytes);
    if let Ok(v) = KeyShare::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = PartialSignature::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = ThresholdPublicKey::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    if let Ok(v) = DealerCommitment::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    if let Ok(v) = SecretShare::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = Complaint::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = Justification::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = HybridSecretKey::from_bytes(bytes) {
        assert_eq!(v.to_bytes()[..], bytes[..]);
    }
    if let Ok(v) = HybridPublicKey::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    if let Ok(v) = HybridSignature::from_bytes(bytes) {
        assert_eq!(v.to_bytes(), bytes);
    }
    let _ = Tag::from_u8(bytes.first().copied().unwrap_or(0));
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = hex::decode(text);
    }
}

/// Valid encodings of every type, to mutate.
fn samples() -> &'static Vec<Vec<u8>> {
    static SAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let sks: Vec<SecretKey> = (0..4u8).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let members = sks
            .iter()
            .map(|s| (s.public_key(), s.proof_of_possession()))
            .collect();
        let committee = Committee::new(2, members).unwrap();
        let mut b = committee.certificate_builder(Tag::LocalVote, b"m");
        for (i, s) in sks.iter().enumerate() {
            b.add_vote(i, sign_vote(s, 2, Tag::LocalVote, b"m"))
                .unwrap();
        }
        let cert = b.build(4).unwrap();
        let params = ccbft_crypto::threshold::ThresholdParams::new(2, 3).unwrap();
        let dkg = ccbft_crypto::dkg::run_local(params, [1; 32], &[], &mut |_| {}).unwrap();
        let client = ClientSigningKey::from_seed(&[3; 32]);
        let hybrid = HybridSecretKey::from_seed(&[4; 32]);
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([5; 32]);
        let dealing = ccbft_crypto::dkg::Dealing::generate(params, 1, &mut rng).unwrap();
        vec![
            sks[0].to_bytes().to_vec(),
            sks[0].public_key().to_bytes().to_vec(),
            sks[0].sign(Tag::Timeout, b"x").to_bytes().to_vec(),
            cert.to_bytes(),
            cert.signers.to_bytes(),
            committee.to_bytes(),
            client.public_key().to_bytes().to_vec(),
            client.sign(b"tx").to_bytes().to_vec(),
            dkg.outputs[0].share.to_bytes().to_vec(),
            dkg.outputs[0]
                .share
                .sign(Tag::Checkpoint, b"c")
                .to_bytes()
                .to_vec(),
            dkg.outputs[0].public.to_bytes(),
            dealing.commitment.to_bytes(),
            dealing.shares[0].to_bytes().to_vec(),
            hybrid.to_bytes().to_vec(),
            hybrid.public_key().to_bytes(),
            hybrid.sign(Tag::AuditTrail, b"a").to_bytes(),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        decode_all(&bytes);
    }

    #[test]
    fn random_bytes_of_exact_lengths_never_panic(
        len in prop::sample::select(vec![32usize, 40, 44, 48, 64, 100, 107, 152, 298, 3405, 2000]),
        seed in any::<u64>(),
    ) {
        let mut state = seed | 1;
        let bytes: Vec<u8> = (0..len).map(|_| {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            state as u8
        }).collect();
        decode_all(&bytes);
    }

    #[test]
    fn mutated_valid_encodings_never_panic(
        which in 0usize..16,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<Option<usize>>(),
    ) {
        let mut bytes = samples()[which].clone();
        decode_all(&bytes);
        for (pos, x) in flips {
            let n = bytes.len();
            bytes[pos % n] ^= x;
        }
        if let Some(c) = cut {
            let n = bytes.len();
            bytes.truncate(c % (n + 1));
        }
        decode_all(&bytes);
    }
}

/// A valid hybrid public key's BLS half and a valid hybrid signature's BLS half.
fn hybrid_prefixes() -> &'static (Vec<u8>, Vec<u8>, HybridPublicKey) {
    static PREFIXES: OnceLock<(Vec<u8>, Vec<u8>, HybridPublicKey)> = OnceLock::new();
    PREFIXES.get_or_init(|| {
        let sk = HybridSecretKey::from_seed(&[6; 32]);
        let pk = sk.public_key();
        let sig = sk.sign(Tag::AuditTrail, b"a");
        (
            pk.to_bytes()[..48].to_vec(),
            sig.to_bytes()[..96].to_vec(),
            pk,
        )
    })
}

fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Valid BLS signature, then 3309 random bytes: the ML-DSA-65 signature decoder runs on
    /// them (any error names the ML-DSA half, never the BLS one), and whatever decodes is
    /// canonical and does not verify.
    #[test]
    fn ml_dsa_signature_decoder_sees_random_bytes(seed in any::<u64>()) {
        let (_, bls_sig, pk) = hybrid_prefixes();
        let mut bytes = bls_sig.clone();
        bytes.extend(xorshift_bytes(seed, ccbft_crypto::hybrid::ML_DSA_65_SIGNATURE_BYTES));
        match HybridSignature::from_bytes(&bytes) {
            Ok(sig) => {
                prop_assert_eq!(sig.to_bytes(), bytes);
                prop_assert!(pk.verify(Tag::AuditTrail, b"a", &sig).is_err());
            }
            Err(e) => prop_assert_eq!(
                e,
                ccbft_crypto::CryptoError::NonCanonical { kind: "ML-DSA-65 signature" }
            ),
        }
    }

    /// Valid BLS key, then 1952 random bytes: the ML-DSA-65 verifying-key decoder runs on
    /// them; whatever decodes re-encodes to the same bytes and verifies nothing it did not
    /// sign.
    #[test]
    fn ml_dsa_key_decoder_sees_random_bytes(seed in any::<u64>()) {
        let (bls_pk, _, pk) = hybrid_prefixes();
        let mut bytes = bls_pk.clone();
        bytes.extend(xorshift_bytes(seed, ccbft_crypto::hybrid::ML_DSA_65_PUBLIC_KEY_BYTES));
        match HybridPublicKey::from_bytes(&bytes) {
            Ok(random_key) => {
                prop_assert_eq!(random_key.to_bytes(), bytes);
                let sig = HybridSecretKey::from_seed(&[6; 32]).sign(Tag::AuditTrail, b"a");
                prop_assert!(pk.verify(Tag::AuditTrail, b"a", &sig).is_ok());
                prop_assert!(random_key.verify(Tag::AuditTrail, b"a", &sig).is_err());
            }
            Err(e) => prop_assert_eq!(
                e,
                ccbft_crypto::CryptoError::NonCanonical { kind: "ML-DSA-65 public key" }
            ),
        }
    }

    /// Mutations confined to the ML-DSA half of a valid hybrid signature: decoded or refused
    /// by the ML-DSA decoder, never verifying.
    #[test]
    fn mutated_ml_dsa_half_never_verifies(
        flips in proptest::collection::btree_map(0usize..3309, 1u8..=255, 1..6),
    ) {
        let sk = HybridSecretKey::from_seed(&[6; 32]);
        let (_, _, pk) = hybrid_prefixes();
        let mut bytes = sk.sign(Tag::AuditTrail, b"a").to_bytes();
        for (pos, x) in flips {
            bytes[96 + pos] ^= x;
        }
        if let Ok(sig) = HybridSignature::from_bytes(&bytes) {
            prop_assert!(pk.verify(Tag::AuditTrail, b"a", &sig).is_err());
        }
    }
}
