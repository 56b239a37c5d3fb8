//! Threshold BLS from the DKG, and the post-quantum hybrid.

use ccbft_crypto::bls::{PublicKey, Signature, Tag};
use ccbft_crypto::dkg::{
    self, Cheat, Complaint, DealerCommitment, Dealing, Justification, Party, SecretShare,
};
use ccbft_crypto::hybrid::{HybridPublicKey, HybridSecretKey, HybridSignature};
use ccbft_crypto::threshold::{
    combine_unchecked, KeyShare, PartialSignature, ThresholdParams, ThresholdPublicKey,
};
use ccbft_crypto::CryptoError;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn quiet(_: &str) {}

/// All subsets of `1..=n` of size `k`.
fn subsets(n: u32, k: usize) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize == k {
            out.push((1..=n).filter(|i| mask & (1 << (i - 1)) != 0).collect());
        }
    }
    out
}

#[test]
fn any_t_of_n_shares_sign_and_t_minus_1_do_not() {
    let params = ThresholdParams::new(5, 7).unwrap();
    let report = dkg::run_local(params, [1; 32], &[], &mut quiet).unwrap();
    assert!(report.disqualified.is_empty());
    assert!(report.complaints.is_empty());
    let public = report.outputs[0].public.clone();
    for o in &report.outputs {
        assert_eq!(o.public, public, "every party derives the same public key");
        assert_eq!(o.qualified, (1..=7).collect::<Vec<_>>());
    }
    let msg = b"checkpoint 1000, state root ab12";
    let partials: Vec<PartialSignature> = report
        .outputs
        .iter()
        .map(|o| o.share.sign(Tag::Checkpoint, msg))
        .collect();
    for p in &partials {
        public.verify_partial(Tag::Checkpoint, msg, p).unwrap();
    }
    let mut first: Option<Signature> = None;
    for subset in subsets(7, 5) {
        let chosen: Vec<PartialSignature> =
            subset.iter().map(|&i| partials[i as usize - 1]).collect();
        let sig = combine_unchecked(params, &chosen).unwrap();
        // Plain BLS verification under the group key, the same code as any vote.
        public
            .group_key()
            .verify(Tag::Checkpoint, msg, &sig)
            .unwrap();
        assert!(public.group_key().verify(Tag::Timeout, msg, &sig).is_err());
        // BLS is unique: every subset yields the same signature.
        assert_eq!(*first.get_or_insert(sig), sig);
    }
    for subset in subsets(7, 4) {
        let chosen: Vec<PartialSignature> =
            subset.iter().map(|&i| partials[i as usize - 1]).collect();
        assert_eq!(
            combine_unchecked(params, &chosen),
            Err(CryptoError::TooFewSigners { got: 4, need: 5 })
        );
        // Interpolating 4 shares as if the threshold were 4 gives a wrong signature.
        let as_if_4 = ThresholdParams::new(4, 7).unwrap();
        let wrong = combine_unchecked(as_if_4, &chosen).unwrap();
        assert!(public
            .group_key()
            .verify(Tag::Checkpoint, msg, &wrong)
            .is_err());
    }
    // Duplicate partials do not count twice.
    let dup = vec![
        partials[0],
        partials[0],
        partials[1],
        partials[2],
        partials[3],
    ];
    assert_eq!(
        combine_unchecked(params, &dup),
        Err(CryptoError::DuplicateSigner { index: 1 })
    );
}

#[test]
fn checked_combine_skips_bad_partials() {
    let params = ThresholdParams::new(3, 5).unwrap();
    let report = dkg::run_local(params, [2; 32], &[], &mut quiet).unwrap();
    let public = &report.outputs[0].public;
    let msg = b"receipt 77";
    let mut partials: Vec<PartialSignature> = report
        .outputs
        .iter()
        .map(|o| o.share.sign(Tag::Receipt, msg))
        .collect();
    // Partial 2 signs something else; partial 4 claims another index.
    partials[1] = report.outputs[1].share.sign(Tag::Receipt, b"other");
    partials[3].index = 5;
    let sig = public.combine(Tag::Receipt, msg, &partials).unwrap();
    public.verify(Tag::Receipt, msg, &sig).unwrap();
    assert_eq!(
        public.combine(Tag::Receipt, msg, &partials[..3]),
        Err(CryptoError::TooFewSigners { got: 2, need: 3 })
    );
}

#[test]
fn cheating_dealer_is_disqualified_and_the_key_still_works() {
    let params = ThresholdParams::new(5, 7).unwrap();
    for cheat in [
        Cheat::WrongShare { victim: 2 },
        Cheat::WrongShareSilent { victim: 6 },
        Cheat::ShortCommitment,
    ] {
        let mut lines = Vec::new();
        let report = dkg::run_local(params, [3; 32], &[(4, cheat)], &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(report.disqualified, vec![4], "{cheat:?}");
        assert_eq!(lines.len(), 3);
        let public = report.outputs[0].public.clone();
        for o in &report.outputs {
            assert_eq!(o.qualified, vec![1, 2, 3, 5, 6, 7]);
            assert_eq!(o.public, public);
        }
        let msg = b"audit trail head";
        let partials: Vec<PartialSignature> = [7u32, 1, 4, 2, 6]
            .iter()
            .map(|&i| {
                report.outputs[i as usize - 1]
                    .share
                    .sign(Tag::AuditTrail, msg)
            })
            .collect();
        let sig = public.combine(Tag::AuditTrail, msg, &partials).unwrap();
        public
            .group_key()
            .verify(Tag::AuditTrail, msg, &sig)
            .unwrap();
    }
}

#[test]
fn false_complaint_does_not_disqualify_an_honest_dealer() {
    let params = ThresholdParams::new(3, 4).unwrap();
    let report = dkg::run_local(
        params,
        [4; 32],
        &[(1, Cheat::FalseComplaint { dealer: 3 })],
        &mut quiet,
    )
    .unwrap();
    assert_eq!(
        report.complaints,
        vec![Complaint {
            accuser: 1,
            dealer: 3
        }]
    );
    assert!(report.disqualified.is_empty());
}

#[test]
fn too_many_cheaters_abort_the_dkg() {
    let params = ThresholdParams::new(3, 4).unwrap();
    let cheats = [(1, Cheat::ShortCommitment), (2, Cheat::ShortCommitment)];
    let r = dkg::run_local(params, [5; 32], &cheats, &mut quiet);
    assert!(matches!(
        r,
        Err(CryptoError::TooFewQualifiedDealers {
            qualified: 2,
            need: 3
        })
    ));
}

#[test]
fn party_api_complains_about_a_bad_share_and_accepts_its_justification() {
    let params = ThresholdParams::new(2, 3).unwrap();
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let dealings: Vec<Dealing> = (1..=3)
        .map(|d| Dealing::generate(params, d, &mut rng).unwrap())
        .collect();
    let mut party = Party::new(params, 2).unwrap();
    // Dealer 1's share for party 2 is lost in transit: party 2 complains.
    assert_eq!(
        party.receive(dealings[0].commitment.clone(), None).unwrap(),
        Some(Complaint {
            accuser: 2,
            dealer: 1
        })
    );
    // Dealer 2 sends party 2 a share meant for party 3: complaint.
    assert_eq!(
        party
            .receive(
                dealings[1].commitment.clone(),
                Some(dealings[1].shares[2].clone())
            )
            .unwrap(),
        Some(Complaint {
            accuser: 2,
            dealer: 2
        })
    );
    assert_eq!(
        party
            .receive(
                dealings[2].commitment.clone(),
                Some(dealings[2].shares[1].clone())
            )
            .unwrap(),
        None
    );
    assert!(party.receive(dealings[2].commitment.clone(), None).is_err());
    let complaints = [
        Complaint {
            accuser: 2,
            dealer: 1,
        },
        Complaint {
            accuser: 2,
            dealer: 2,
        },
    ];
    // Dealer 1 justifies correctly; dealer 2 does not answer.
    let justifications = [Justification {
        share: dealings[0].shares[1].clone(),
    }];
    let out = party.finish(&complaints, &justifications).unwrap();
    assert_eq!(out.qualified, vec![1, 3]);
    dkg::verify_share(params, &dealings[0].commitment, &dealings[0].shares[1]).unwrap();
    assert_eq!(
        dkg::verify_share(
            params,
            &dealings[0].commitment,
            &dealings[0].shares[1].tampered()
        ),
        Err(CryptoError::InvalidShare {
            dealer: 1,
            recipient: 2
        })
    );
}

#[test]
fn threshold_and_dkg_types_round_trip() {
    let params = ThresholdParams::new(2, 3).unwrap();
    let report = dkg::run_local(params, [7; 32], &[], &mut quiet).unwrap();
    let out = &report.outputs[2];
    let share = KeyShare::from_bytes(&out.share.to_bytes()).unwrap();
    assert_eq!(share.index(), 3);
    assert_eq!(share.public_key(), out.share.public_key());
    assert_eq!(
        ThresholdPublicKey::from_bytes(&out.public.to_bytes()).unwrap(),
        out.public
    );
    let p = out.share.sign(Tag::Checkpoint, b"m");
    assert_eq!(PartialSignature::from_bytes(&p.to_bytes()).unwrap(), p);
    let mut rng = ChaCha20Rng::from_seed([8; 32]);
    let d = Dealing::generate(params, 1, &mut rng).unwrap();
    assert_eq!(
        DealerCommitment::from_bytes(&d.commitment.to_bytes()).unwrap(),
        d.commitment
    );
    assert_eq!(
        SecretShare::from_bytes(&d.shares[0].to_bytes()).unwrap(),
        d.shares[0]
    );
    let complaint = Complaint {
        accuser: 2,
        dealer: 3,
    };
    assert_eq!(
        Complaint::from_bytes(&complaint.to_bytes()).unwrap(),
        complaint
    );
    let justification = Justification {
        share: d.shares[1].clone(),
    };
    assert_eq!(
        Justification::from_bytes(&justification.to_bytes()).unwrap(),
        justification
    );
    assert!(ThresholdParams::new(0, 3).is_err());
    assert!(ThresholdParams::new(4, 3).is_err());
    assert!(ThresholdParams::new(2, 100_000).is_err());
}

#[test]
fn hybrid_verifies_only_if_both_halves_verify() {
    let sk = HybridSecretKey::from_seed(&[9; 32]);
    let pk = sk.public_key();
    let msg = b"checkpoint 5000 root 00ff";
    let sig = sk.sign(Tag::Checkpoint, msg);
    pk.verify(Tag::Checkpoint, msg, &sig).unwrap();
    assert!(pk.verify(Tag::AuditTrail, msg, &sig).is_err());
    assert!(pk.verify(Tag::Checkpoint, b"other", &sig).is_err());

    // Round trips.
    let sig_bytes = sig.to_bytes();
    assert_eq!(HybridSignature::from_bytes(&sig_bytes).unwrap(), sig);
    assert_eq!(HybridPublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
    assert_eq!(
        HybridSecretKey::from_bytes(&sk.to_bytes())
            .unwrap()
            .public_key(),
        pk
    );

    // Corrupt the BLS half: a valid BLS signature of another message.
    let other = HybridSecretKey::from_seed(&[9; 32]).sign(Tag::Checkpoint, b"other");
    let mut bad_bls = sig_bytes.clone();
    bad_bls[..96].copy_from_slice(&other.bls().to_bytes());
    let bad_bls = HybridSignature::from_bytes(&bad_bls).unwrap();
    assert_eq!(
        pk.verify(Tag::Checkpoint, msg, &bad_bls),
        Err(CryptoError::InvalidSignature)
    );

    // Corrupt the ML-DSA half: flip a bit of the challenge hash, and splice in the ML-DSA
    // half of another message's signature.
    let mut bad_pq = sig_bytes.clone();
    bad_pq[96] ^= 1;
    let bad_pq = HybridSignature::from_bytes(&bad_pq).unwrap();
    assert_eq!(
        pk.verify(Tag::Checkpoint, msg, &bad_pq),
        Err(CryptoError::InvalidPostQuantumSignature)
    );
    let mut spliced = sig_bytes.clone();
    spliced[96..].copy_from_slice(&other.to_bytes()[96..]);
    let spliced = HybridSignature::from_bytes(&spliced).unwrap();
    assert_eq!(
        pk.verify(Tag::Checkpoint, msg, &spliced),
        Err(CryptoError::InvalidPostQuantumSignature)
    );

    // A different key pair's ML-DSA half under the same BLS key fails.
    let other_key = HybridSecretKey::from_seed(&[10; 32]);
    let mut mixed_pk = pk.to_bytes();
    mixed_pk[48..].copy_from_slice(&other_key.public_key().to_bytes()[48..]);
    let mixed_pk = HybridPublicKey::from_bytes(&mixed_pk).unwrap();
    assert_eq!(
        mixed_pk.verify(Tag::Checkpoint, msg, &sig),
        Err(CryptoError::InvalidPostQuantumSignature)
    );
    assert_eq!(
        pk.bls(),
        &PublicKey::from_bytes(&pk.to_bytes()[..48]).unwrap()
    );
}
