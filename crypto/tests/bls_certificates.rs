//! BLS keys, tags, proofs of possession, committees and certificates.

use blstrs::{G1Affine, G1Projective, Scalar};
use ccbft_crypto::bls::{ProofOfPossession, PublicKey, SecretKey, Signature, Tag};
use ccbft_crypto::certificate::{
    sign_vote, Certificate, Committee, SignerBitmap, COMMITTEE_SIZE_MAX,
};
use ccbft_crypto::CryptoError;
use ff::Field;
use group::{Curve, Group};

fn secret(i: usize) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[31] = 0xcc;
    SecretKey::from_seed(&seed)
}

fn committee(epoch: u64, n: usize) -> (Vec<SecretKey>, Committee) {
    let sks: Vec<SecretKey> = (0..n).map(secret).collect();
    let members = sks
        .iter()
        .map(|sk| (sk.public_key(), sk.proof_of_possession()))
        .collect();
    (sks, Committee::new(epoch, members).unwrap())
}

#[test]
fn keys_signatures_and_proofs_round_trip() {
    let sk = secret(1);
    let sk2 = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
    assert_eq!(sk2.to_bytes(), sk.to_bytes());
    let pk = sk.public_key();
    assert_eq!(PublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
    let sig = sk.sign(Tag::GlobalVote, b"block 7");
    assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
    let pop = sk.proof_of_possession();
    assert_eq!(ProofOfPossession::from_bytes(&pop.to_bytes()).unwrap(), pop);
    pop.verify(&pk).unwrap();
    pk.verify(Tag::GlobalVote, b"block 7", &sig).unwrap();
    // Determinism of from_seed, and generate() gives distinct keys.
    assert_eq!(secret(1).public_key(), pk);
    assert_ne!(
        SecretKey::generate().public_key(),
        SecretKey::generate().public_key()
    );
}

#[test]
fn signature_under_another_tag_or_message_or_key_fails() {
    let sk = secret(2);
    let pk = sk.public_key();
    for signed in Tag::ALL {
        let sig = sk.sign(signed, b"round 12");
        for checked in Tag::ALL {
            let r = pk.verify(checked, b"round 12", &sig);
            if signed == checked {
                r.unwrap();
            } else {
                assert_eq!(
                    r,
                    Err(CryptoError::InvalidSignature),
                    "{signed:?} as {checked:?}"
                );
            }
        }
        assert!(pk.verify(signed, b"round 13", &sig).is_err());
        assert!(secret(3)
            .public_key()
            .verify(signed, b"round 12", &sig)
            .is_err());
    }
}

#[test]
fn decoders_reject_infinity_wrong_length_and_bad_flags() {
    let mut inf_pk = [0u8; 48];
    inf_pk[0] = 0xc0;
    assert_eq!(
        PublicKey::from_bytes(&inf_pk),
        Err(CryptoError::Infinity { kind: "public key" })
    );
    let mut inf_sig = [0u8; 96];
    inf_sig[0] = 0xc0;
    assert!(matches!(
        Signature::from_bytes(&inf_sig),
        Err(CryptoError::Infinity { .. })
    ));
    let pk = secret(4).public_key().to_bytes();
    // Uncompressed form or truncation: wrong length.
    assert!(matches!(
        PublicKey::from_bytes(&pk[..47]),
        Err(CryptoError::WrongLength { .. })
    ));
    assert!(matches!(
        PublicKey::from_bytes(&[0u8; 96]),
        Err(CryptoError::WrongLength { .. })
    ));
    // Compression flag cleared: not a canonical compressed key.
    let mut bad = pk;
    bad[0] &= 0x7f;
    assert!(PublicKey::from_bytes(&bad).is_err());
    // Infinity flag with nonzero body.
    let mut bad = inf_pk;
    bad[47] = 1;
    assert!(PublicKey::from_bytes(&bad).is_err());
    // Zero and out-of-range secret keys.
    assert!(SecretKey::from_bytes(&[0u8; 32]).is_err());
    assert!(SecretKey::from_bytes(&[0xff; 32]).is_err());
}

#[test]
fn decoder_rejects_point_outside_subgroup() {
    // Find an x whose point is on the curve but not in the prime-order subgroup (G1 has a
    // large cofactor, so almost every curve point qualifies).
    let mut found = false;
    for x in 1u8..=255 {
        let mut bytes = [0u8; 48];
        bytes[0] = 0x80;
        bytes[47] = x;
        match PublicKey::from_bytes(&bytes) {
            Err(CryptoError::NotInSubgroup { .. }) => {
                found = true;
                break;
            }
            Err(_) => continue,
            Ok(_) => panic!("a small x gave a subgroup point"),
        }
    }
    assert!(found, "no off-subgroup point among small x");
}

#[test]
fn aggregates_of_4_7_21_49_signers_verify() {
    for n in [4usize, 7, 21, 49] {
        let (sks, committee) = committee(3, n);
        let msg = format!("global block for n={n}");
        let mut builder = committee.certificate_builder(Tag::GlobalVote, msg.as_bytes());
        for (i, sk) in sks.iter().enumerate() {
            builder
                .add_vote(i, sign_vote(sk, 3, Tag::GlobalVote, msg.as_bytes()))
                .unwrap();
        }
        let cert = builder.build(n).unwrap();
        assert_eq!(cert.signers.count(), n);
        committee
            .verify_certificate(Tag::GlobalVote, msg.as_bytes(), &cert, n)
            .unwrap();
        // Round trip of the certificate.
        let bytes = cert.to_bytes();
        assert_eq!(bytes.len(), cert.encoded_len());
        assert_eq!(bytes.len(), 8 + 2 + n.div_ceil(8) + 96);
        assert_eq!(Certificate::from_bytes(&bytes).unwrap(), cert);
        // Wrong tag and wrong message fail.
        assert_eq!(
            committee.verify_certificate(Tag::LocalVote, msg.as_bytes(), &cert, n),
            Err(CryptoError::InvalidSignature)
        );
        assert!(committee
            .verify_certificate(Tag::GlobalVote, b"other", &cert, n)
            .is_err());
        // Quorum subset (2f+1).
        let q = 2 * ((n - 1) / 3) + 1;
        let sigs: Vec<Signature> = sks[..q]
            .iter()
            .map(|sk| sign_vote(sk, 3, Tag::GlobalVote, msg.as_bytes()))
            .collect();
        let cert = Certificate {
            epoch: 3,
            signers: SignerBitmap::from_indices(n, &(0..q).collect::<Vec<_>>()).unwrap(),
            aggregate: Signature::aggregate(&sigs).unwrap(),
        };
        committee
            .verify_certificate(Tag::GlobalVote, msg.as_bytes(), &cert, q)
            .unwrap();
        // Claiming one more signer than signed fails.
        let mut more = cert.clone();
        more.signers.insert(q).unwrap();
        assert!(committee
            .verify_certificate(Tag::GlobalVote, msg.as_bytes(), &more, q)
            .is_err());
    }
}

#[test]
fn rogue_key_attack_is_stopped_by_proof_of_possession() {
    let honest = secret(10);
    let honest_pk = honest.public_key();
    // Attacker picks x and publishes rogue = g1*x - honest_pk, so honest_pk + rogue = g1*x.
    let x = Scalar::from(0x1234_5678_9abc_def0u64) * Scalar::from(0x0fed_cba9_8765_4321u64);
    let attacker_sk = SecretKey::from_bytes(&x.to_bytes_be()).unwrap();
    let honest_point =
        Option::<G1Affine>::from(G1Affine::from_compressed(&honest_pk.to_bytes())).unwrap();
    let rogue_point =
        (G1Projective::generator() * x - G1Projective::from(honest_point)).to_affine();
    let rogue_pk = PublicKey::from_bytes(&rogue_point.to_compressed()).unwrap();

    // The attack is real without proofs of possession: the attacker alone forges an
    // "aggregate of honest and rogue" on a message the honest key never signed.
    let msg = b"transfer everything";
    let forged = attacker_sk.sign(Tag::Checkpoint, msg);
    let naive = PublicKey::aggregate(&[&honest_pk, &rogue_pk]).unwrap();
    naive.verify(Tag::Checkpoint, msg, &forged).unwrap();

    // With proofs of possession the rogue key cannot join a committee: the attacker has no
    // secret key for it, and no proof it can make verifies.
    for pop in [
        attacker_sk.proof_of_possession(),
        honest.proof_of_possession(),
        ProofOfPossession::from_bytes(&forged.to_bytes()).unwrap(),
    ] {
        let r = Committee::new(
            1,
            vec![(honest_pk, honest.proof_of_possession()), (rogue_pk, pop)],
        );
        assert_eq!(r, Err(CryptoError::InvalidProofOfPossession { index: 1 }));
    }
    // The forged aggregate does not verify as a certificate of a properly registered committee
    // holding the honest key and the attacker's real key.
    let committee = Committee::new(
        1,
        vec![
            (honest_pk, honest.proof_of_possession()),
            (attacker_sk.public_key(), attacker_sk.proof_of_possession()),
        ],
    )
    .unwrap();
    let cert = Certificate {
        epoch: 1,
        signers: SignerBitmap::from_indices(2, &[0, 1]).unwrap(),
        aggregate: forged,
    };
    assert_eq!(
        committee.verify_certificate(Tag::Checkpoint, msg, &cert, 2),
        Err(CryptoError::InvalidSignature)
    );
}

#[test]
fn committee_rejects_bad_registration() {
    let a = secret(20);
    let b = secret(21);
    assert_eq!(Committee::new(0, vec![]), Err(CryptoError::EmptyCommittee));
    assert_eq!(
        Committee::new(
            0,
            vec![
                (a.public_key(), a.proof_of_possession()),
                (a.public_key(), a.proof_of_possession())
            ]
        ),
        Err(CryptoError::DuplicateKey { index: 1, first: 0 })
    );
    // A proof of possession of another key.
    assert_eq!(
        Committee::new(0, vec![(a.public_key(), b.proof_of_possession())]),
        Err(CryptoError::InvalidProofOfPossession { index: 0 })
    );
    let too_many = vec![(a.public_key(), a.proof_of_possession()); COMMITTEE_SIZE_MAX + 1];
    assert!(matches!(
        Committee::new(0, too_many),
        Err(CryptoError::TooMany { .. })
    ));
    let (_, c) = committee(9, 5);
    assert_eq!(Committee::from_bytes(&c.to_bytes()).unwrap(), c);
}

#[test]
fn bitmap_with_duplicate_unknown_or_wrong_length_signers_fails() {
    let (sks, committee) = committee(5, 7);
    let msg = b"local batch 42";
    let sigs: Vec<Signature> = sks
        .iter()
        .map(|sk| sign_vote(sk, 5, Tag::LocalVote, msg))
        .collect();

    // Duplicates: the bitmap constructor and the builder refuse them.
    assert_eq!(
        SignerBitmap::from_indices(7, &[0, 1, 1]),
        Err(CryptoError::DuplicateSigner { index: 1 })
    );
    let mut builder = committee.certificate_builder(Tag::LocalVote, msg);
    builder.add_vote(3, sigs[3]).unwrap();
    assert_eq!(
        builder.add_vote(3, sigs[3]),
        Err(CryptoError::DuplicateSigner { index: 3 })
    );
    assert_eq!(
        builder.add_vote(7, sigs[0]),
        Err(CryptoError::UnknownSigner {
            index: 7,
            committee: 7
        })
    );
    // A duplicate vote counted twice in the aggregate (signature added twice) fails.
    let doubled = Certificate {
        epoch: 5,
        signers: SignerBitmap::from_indices(7, &[0, 1, 2, 3, 4]).unwrap(),
        aggregate: Signature::aggregate(&[sigs[0], sigs[1], sigs[2], sigs[3], sigs[3]]).unwrap(),
    };
    assert_eq!(
        committee.verify_certificate(Tag::LocalVote, msg, &doubled, 5),
        Err(CryptoError::InvalidSignature)
    );

    // Unknown signer: a bit beyond the committee.
    let mut bitmap = SignerBitmap::from_indices(9, &[0, 1, 2, 3, 8]).unwrap();
    let agg = Signature::aggregate(&sigs[..5]).unwrap();
    let cert = Certificate {
        epoch: 5,
        signers: bitmap.clone(),
        aggregate: agg,
    };
    assert_eq!(
        committee.verify_certificate(Tag::LocalVote, msg, &cert, 5),
        Err(CryptoError::UnknownSigner {
            index: 8,
            committee: 7
        })
    );
    // Wrong bitmap length without a bit beyond the committee.
    bitmap = SignerBitmap::from_indices(9, &[0, 1, 2, 3, 4]).unwrap();
    let cert = Certificate {
        epoch: 5,
        signers: bitmap,
        aggregate: agg,
    };
    assert_eq!(
        committee.verify_certificate(Tag::LocalVote, msg, &cert, 5),
        Err(CryptoError::BitmapLength {
            expected: 7,
            got: 9
        })
    );
    // Right bitmap: passes; wrong epoch and too few signers fail.
    let good = Certificate {
        epoch: 5,
        signers: SignerBitmap::from_indices(7, &[0, 1, 2, 3, 4]).unwrap(),
        aggregate: agg,
    };
    committee
        .verify_certificate(Tag::LocalVote, msg, &good, 5)
        .unwrap();
    assert_eq!(
        committee.verify_certificate(Tag::LocalVote, msg, &good, 6),
        Err(CryptoError::TooFewSigners { got: 5, need: 6 })
    );
    let old = Certificate {
        epoch: 4,
        ..good.clone()
    };
    assert_eq!(
        committee.verify_certificate(Tag::LocalVote, msg, &old, 5),
        Err(CryptoError::WrongEpoch {
            expected: 5,
            got: 4
        })
    );
    // Encodings: padding bits set, truncation, trailing bytes.
    let mut bytes = good.to_bytes();
    bytes[10] |= 0x80; // bit 7 of a 7-bit bitmap is padding
    assert_eq!(
        Certificate::from_bytes(&bytes),
        Err(CryptoError::NonCanonical {
            kind: "signer bitmap"
        })
    );
    let bytes = good.to_bytes();
    assert!(matches!(
        Certificate::from_bytes(&bytes[..bytes.len() - 1]),
        Err(CryptoError::WrongLength { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        Certificate::from_bytes(&long),
        Err(CryptoError::WrongLength { .. })
    ));
}

#[test]
fn builder_finds_and_removes_bad_votes_then_recovers() {
    let (sks, committee) = committee(1, 21);
    let msg = b"qc for round 99";
    let mut builder = committee.certificate_builder(Tag::GlobalVote, msg);
    for (i, sk) in sks.iter().enumerate().take(15) {
        // Signer 4 votes for another message, signer 11 under another tag.
        let sig = match i {
            4 => sign_vote(sk, 1, Tag::GlobalVote, b"equivocation"),
            11 => sign_vote(sk, 1, Tag::Timeout, msg),
            _ => sign_vote(sk, 1, Tag::GlobalVote, msg),
        };
        builder.add_vote(i, sig).unwrap();
    }
    assert_eq!(
        builder.build(14),
        Err(CryptoError::InvalidVotes {
            signers: vec![4, 11]
        })
    );
    assert_eq!(builder.count(), 13);
    assert!(!builder.has_vote(4));
    assert_eq!(
        builder.build(14),
        Err(CryptoError::TooFewSigners { got: 13, need: 14 })
    );
    builder
        .add_vote(15, sign_vote(&sks[15], 1, Tag::GlobalVote, msg))
        .unwrap();
    let cert = builder.build(14).unwrap();
    assert_eq!(cert.signers.iter().collect::<Vec<_>>().len(), 14);
    committee
        .verify_certificate(Tag::GlobalVote, msg, &cert, 14)
        .unwrap();
}

#[test]
fn aggregate_of_nothing_is_an_error() {
    assert!(Signature::aggregate(&[]).is_err());
    assert!(PublicKey::aggregate(&[]).is_err());
    let _ = Scalar::ONE;
}

/// Issue 15 (f): the epoch is signed. Two committees of different epochs with the same keys
/// (the usual case across a reconfiguration that keeps the replicas): a certificate of epoch
/// 4 relabelled as epoch 5 does not verify against the epoch-5 committee, and a plain
/// signature of the message (no epoch) is not a vote.
#[test]
fn relabelled_certificate_epoch_does_not_verify() {
    let (sks, old) = committee(4, 7);
    let (_, new) = committee(5, 7);
    assert_eq!(old.public_keys(), new.public_keys());
    let msg = b"checkpoint 9000 root 77";
    let mut builder = old.certificate_builder(Tag::Checkpoint, msg);
    for (i, sk) in sks.iter().enumerate().take(5) {
        builder
            .add_vote(i, sign_vote(sk, 4, Tag::Checkpoint, msg))
            .unwrap();
    }
    let cert = builder.build(5).unwrap();
    assert_eq!(cert.epoch, 4);
    old.verify_certificate(Tag::Checkpoint, msg, &cert, 5)
        .unwrap();
    let relabelled = Certificate {
        epoch: 5,
        ..cert.clone()
    };
    assert_eq!(
        new.verify_certificate(Tag::Checkpoint, msg, &relabelled, 5),
        Err(CryptoError::InvalidSignature)
    );
    // Votes: a vote of epoch 4 is not a vote of epoch 5, nor is an epoch-less signature.
    let vote = sign_vote(&sks[0], 4, Tag::Checkpoint, msg);
    old.verify_vote(0, Tag::Checkpoint, msg, &vote).unwrap();
    assert!(new.verify_vote(0, Tag::Checkpoint, msg, &vote).is_err());
    let plain = sks[0].sign(Tag::Checkpoint, msg);
    assert!(old.verify_vote(0, Tag::Checkpoint, msg, &plain).is_err());
    let sigs: Vec<Signature> = sks[..5]
        .iter()
        .map(|sk| sk.sign(Tag::Checkpoint, msg))
        .collect();
    let epochless = Certificate {
        epoch: 4,
        signers: SignerBitmap::from_indices(7, &[0, 1, 2, 3, 4]).unwrap(),
        aggregate: Signature::aggregate(&sigs).unwrap(),
    };
    assert_eq!(
        old.verify_certificate(Tag::Checkpoint, msg, &epochless, 5),
        Err(CryptoError::InvalidSignature)
    );
}

/// Issue 15 (g): a key and its negation (both with valid proofs of possession: whoever knows
/// `x` knows `-x`) sum to the identity and would cancel in every aggregate; the committee
/// refuses the pair in either order and wherever it sits.
#[test]
fn committee_refuses_a_key_and_its_negation() {
    let a = secret(30);
    let neg = SecretKey::from_bytes(
        &(-Option::<Scalar>::from(Scalar::from_bytes_be(&a.to_bytes())).unwrap()).to_bytes_be(),
    )
    .unwrap();
    let sum = PublicKey::aggregate(&[&a.public_key(), &neg.public_key()]);
    assert!(sum.is_err(), "the pair sums to the identity");
    let others: Vec<SecretKey> = (31..34).map(secret).collect();
    let mut members: Vec<(PublicKey, ProofOfPossession)> = others
        .iter()
        .map(|s| (s.public_key(), s.proof_of_possession()))
        .collect();
    members.insert(1, (a.public_key(), a.proof_of_possession()));
    members.push((neg.public_key(), neg.proof_of_possession()));
    assert_eq!(
        Committee::new(0, members.clone()),
        Err(CryptoError::CancellingKeys { index: 4, other: 1 })
    );
    members.swap(1, 4);
    assert_eq!(
        Committee::new(0, members.clone()),
        Err(CryptoError::CancellingKeys { index: 4, other: 1 })
    );
    // Without the pair the same members register.
    members.remove(4);
    Committee::new(0, members).unwrap();
}
