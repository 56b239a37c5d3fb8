//! Threshold BLS from the DKG, and the post-quantum hybrid.

use ccbft_crypto::bls::{PublicKey, Signature, Tag};
use ccbft_crypto::dkg::{
    self, Broadcast, Cheat, Complaint, DealerCommitment, Dealing, Disqualified, Ignored,
    Justification, Party, SecretShare,
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
    // Duplicate partials do not count twice: a replay is removed before counting.
    let dup = vec![
        partials[0],
        partials[0],
        partials[1],
        partials[2],
        partials[3],
    ];
    assert_eq!(
        combine_unchecked(params, &dup),
        Err(CryptoError::TooFewSigners { got: 4, need: 5 })
    );
    // Two different partials under one index are refused (unchecked: no telling which).
    let mut conflicting = partials[4];
    conflicting.index = 1;
    assert_eq!(
        combine_unchecked(params, &[partials[0], conflicting, partials[1]]),
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
        vec![Broadcast::new(
            1,
            Complaint {
                accuser: 1,
                dealer: 3
            }
        )]
    );
    assert!(report.disqualified.is_empty());
}

#[test]
fn too_many_cheaters_abort_the_dkg() {
    let params = ThresholdParams::new(3, 4).unwrap();
    let cheats = [(1, Cheat::ShortCommitment), (2, Cheat::ShortCommitment)];
    let r = dkg::run_local(params, [5; 32], &cheats, &mut quiet);
    assert_eq!(
        r.unwrap_err(),
        CryptoError::TooFewQualifiedDealers {
            qualified: 2,
            need: 3,
            disqualified: vec![1, 2]
        }
    );
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
        Broadcast::new(
            2,
            Complaint {
                accuser: 2,
                dealer: 1,
            },
        ),
        Broadcast::new(
            2,
            Complaint {
                accuser: 2,
                dealer: 2,
            },
        ),
    ];
    // Dealer 1 justifies correctly; dealer 2 does not answer.
    let justifications = [Broadcast::new(
        1,
        Justification {
            share: dealings[0].shares[1].clone(),
        },
    )];
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

/// Issue 15 (e): a replayed partial no longer blocks the combination when enough distinct
/// valid partials exist (before: the first `t` were taken, then `DuplicateSigner`).
#[test]
fn replayed_partial_does_not_block_combine() {
    let params = ThresholdParams::new(5, 7).unwrap();
    let report = dkg::run_local(params, [11; 32], &[], &mut quiet).unwrap();
    let public = &report.outputs[0].public;
    let msg = b"checkpoint 42";
    let p: Vec<PartialSignature> = report
        .outputs
        .iter()
        .map(|o| o.share.sign(Tag::Checkpoint, msg))
        .collect();
    let replayed = [p[0], p[0], p[0], p[1], p[2], p[3], p[4]];
    let sig = public.combine(Tag::Checkpoint, msg, &replayed).unwrap();
    public.verify(Tag::Checkpoint, msg, &sig).unwrap();
    assert_eq!(
        combine_unchecked(params, &replayed).unwrap(),
        sig,
        "unchecked combine also removes the replay"
    );
    // A bogus partial under an index that has a valid one later is skipped too.
    let mut bogus = p[5];
    bogus.index = 1;
    let sig2 = public
        .combine(Tag::Checkpoint, msg, &[bogus, p[0], p[1], p[2], p[3], p[4]])
        .unwrap();
    assert_eq!(sig2, sig);
    // Replays never count twice.
    assert_eq!(
        public.combine(Tag::Checkpoint, msg, &[p[0], p[0], p[1], p[1], p[2], p[3]]),
        Err(CryptoError::TooFewSigners { got: 4, need: 5 })
    );
}

/// The outputs of every party except `cheaters` agree: same qualified set, same public key.
fn honest_agree(report: &dkg::LocalDkgReport, cheaters: &[u32]) -> Vec<u32> {
    let honest: Vec<&dkg::DkgOutput> = report
        .outputs
        .iter()
        .filter(|o| !cheaters.contains(&o.share.index()))
        .collect();
    for o in &honest {
        assert_eq!(o.qualified, honest[0].qualified);
        assert_eq!(o.public, honest[0].public);
    }
    honest[0].qualified.clone()
}

/// Issue 15 (a): a dealer that answers a complaint with a bad justification before a good
/// one used to stay qualified while its victim failed (honest parties split). Now two
/// different answers disqualify it at every party.
#[test]
fn bad_then_good_justification_disqualifies_everywhere() {
    let params = ThresholdParams::new(5, 7).unwrap();
    let report = dkg::run_local(
        params,
        [12; 32],
        &[(4, Cheat::BadThenGoodJustification { victim: 2 })],
        &mut quiet,
    )
    .unwrap();
    assert_eq!(report.disqualified, vec![4]);
    assert_eq!(honest_agree(&report, &[4]), vec![1, 2, 3, 5, 6, 7]);
    assert_eq!(
        report.outputs[1].disqualified,
        vec![(4, Disqualified::ConflictingJustifications { accuser: 2 })]
    );
}

/// Issue 15 (a): a participant inserting a wrong "justification" for another dealer (ahead
/// of the dealer's answer) is ignored: the victim uses the dealer's own answer.
#[test]
fn justification_not_from_its_dealer_is_ignored() {
    let params = ThresholdParams::new(3, 5).unwrap();
    let report = dkg::run_local(
        params,
        [13; 32],
        &[
            (2, Cheat::FalseComplaint { dealer: 1 }),
            (
                5,
                Cheat::ForgedJustification {
                    dealer: 1,
                    victim: 2,
                },
            ),
        ],
        &mut quiet,
    )
    .unwrap();
    assert!(report.disqualified.is_empty());
    assert_eq!(honest_agree(&report, &[]), vec![1, 2, 3, 4, 5]);
}

/// Issue 15 (b): complaints with an accuser 0 or above n, or naming an accuser other than
/// their sender, can never be answered; they used to disqualify the honest dealer at every
/// party (or `TooFewQualifiedDealers`). Now they are ignored and named.
#[test]
fn out_of_range_or_foreign_complaints_are_ignored() {
    let params = ThresholdParams::new(5, 7).unwrap();
    for (accuser, dealer) in [(0, 3), (8, 3), (u32::MAX, 1), (2, 3), (1, 0), (1, 9)] {
        let report = dkg::run_local(
            params,
            [14; 32],
            &[(6, Cheat::ComplaintAs { accuser, dealer })],
            &mut quiet,
        )
        .unwrap();
        assert!(report.disqualified.is_empty(), "{accuser}->{dealer}");
        assert_eq!(honest_agree(&report, &[]), (1..=7).collect::<Vec<_>>());
    }
    // The same complaints through qualify directly: ignored with the sender named.
    let mut rng = ChaCha20Rng::from_seed([15; 32]);
    let dealings: Vec<Dealing> = (1..=7)
        .map(|d| Dealing::generate(params, d, &mut rng).unwrap())
        .collect();
    let commitments: Vec<Option<DealerCommitment>> = dealings
        .iter()
        .map(|d| Some(d.commitment.clone()))
        .collect();
    let c = |accuser, dealer| Complaint { accuser, dealer };
    let complaints = [
        Broadcast::new(6, c(0, 3)),
        Broadcast::new(6, c(8, 3)),
        Broadcast::new(6, c(2, 3)),
        Broadcast::new(0, c(0, 3)),
        Broadcast::new(6, c(6, 3)),
        Broadcast::new(6, c(6, 3)),
    ];
    let justifications = [Broadcast::new(
        3,
        Justification {
            share: dealings[2].shares[5].clone(),
        },
    )];
    let q = dkg::qualify(params, &commitments, &complaints, &justifications);
    assert_eq!(q.qualified, (1..=7).collect::<Vec<_>>());
    assert_eq!(
        q.ignored,
        vec![
            (6, Ignored::ComplaintIndexOutOfRange),
            (6, Ignored::ComplaintIndexOutOfRange),
            (6, Ignored::ComplaintNotFromAccuser),
            (0, Ignored::SenderOutOfRange),
            (6, Ignored::DuplicateComplaint),
        ]
    );
    assert_eq!(q.revealed(3, 6), Some(&dealings[2].shares[5]));
}

/// The "must show" DKG test: with the Party API (each party holds only its own shares and
/// sees the same broadcast), a malicious dealer and a malicious complainer of each kind;
/// every honest party ends with the same qualified set and group key, or all abort with the
/// same named culprits.
#[test]
fn honest_parties_agree_under_malicious_dealers_and_complainers() {
    let params = ThresholdParams::new(3, 7).unwrap();
    let mut rng = ChaCha20Rng::from_seed([16; 32]);
    let mut dealings: Vec<Dealing> = (1..=7)
        .map(|d| Dealing::generate(params, d, &mut rng).unwrap())
        .collect();
    // Dealer 4 sends party 2 a bad share; dealer 5 sends party 3 a bad share.
    let good_4_2 = dealings[3].shares[1].clone();
    dealings[3].shares[1] = good_4_2.tampered();
    dealings[4].shares[2] = dealings[4].shares[2].tampered();
    let honest = [1u32, 2, 3, 7];
    let mut parties: Vec<Party> = honest
        .iter()
        .map(|&i| Party::new(params, i).unwrap())
        .collect();
    let mut complaints = Vec::new();
    for p in &mut parties {
        for d in &dealings {
            let share = d.shares[p.index() as usize - 1].clone();
            if let Some(c) = p.receive(d.commitment.clone(), Some(share)).unwrap() {
                complaints.push(Broadcast::new(p.index(), c));
            }
        }
    }
    assert_eq!(complaints.len(), 2);
    let c = |accuser, dealer| Complaint { accuser, dealer };
    // Malicious complainers 5 and 6: out of range, foreign, duplicate, false.
    complaints.extend([
        Broadcast::new(6, c(0, 1)),
        Broadcast::new(6, c(8, 2)),
        Broadcast::new(6, c(1, 7)),
        Broadcast::new(5, c(5, 9)),
        Broadcast::new(6, c(6, 1)),
        Broadcast::new(6, c(6, 1)),
    ]);
    let j = |sender, share: &SecretShare| {
        Broadcast::new(
            sender,
            Justification {
                share: share.clone(),
            },
        )
    };
    let base = vec![
        // Party 6 forges an answer for dealer 4 to party 2 (ahead of dealer 4's own).
        j(6, &good_4_2.tampered()),
        // Dealer 1 answers 6's false complaint, twice identically (a replay).
        j(1, &dealings[0].shares[5]),
        j(1, &dealings[0].shares[5]),
        // Dealer 5 answers party 3 with the bad share it sent.
        j(5, &dealings[4].shares[2]),
    ];
    let finish_all = |justifications: &[Broadcast<Justification>]| {
        parties
            .iter()
            .map(|p| p.finish(&complaints, justifications))
            .collect::<Vec<_>>()
    };
    // Case 1: dealer 4 answers bad then good: disqualified, like dealer 5, at every party.
    let mut js = base.clone();
    js.push(j(4, &good_4_2.tampered()));
    js.push(j(4, &good_4_2));
    let outs = finish_all(&js);
    let first = outs[0].as_ref().unwrap();
    assert_eq!(first.qualified, vec![1, 2, 3, 6, 7]);
    assert_eq!(
        first.disqualified,
        vec![
            (4, Disqualified::ConflictingJustifications { accuser: 2 }),
            (5, Disqualified::BadJustification { accuser: 3 }),
        ]
    );
    for o in &outs {
        let o = o.as_ref().unwrap();
        assert_eq!(o.qualified, first.qualified);
        assert_eq!(o.public, first.public);
    }
    // Case 2: dealer 4 answers only with the good share: it stays qualified everywhere and
    // party 2 uses the revealed share.
    let mut js = base.clone();
    js.push(j(4, &good_4_2));
    let outs = finish_all(&js);
    let first = outs[0].as_ref().unwrap();
    assert_eq!(first.qualified, vec![1, 2, 3, 4, 6, 7]);
    for o in &outs {
        let o = o.as_ref().unwrap();
        assert_eq!(o.qualified, first.qualified);
        assert_eq!(o.public, first.public);
    }
    let msg = b"group works";
    let sig = first
        .public
        .combine(
            Tag::Checkpoint,
            msg,
            &outs
                .iter()
                .map(|o| o.as_ref().unwrap().share.sign(Tag::Checkpoint, msg))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    first.public.verify(Tag::Checkpoint, msg, &sig).unwrap();
    // Case 3: dealers 1, 2, 3, 6 and 7 lose their commitments' answers (no justifications
    // at all): 4 and 5 and 1 are out; with threshold 3 the rest still qualify... so raise the
    // stakes: a 6-of-7 key, where two bad dealers abort the DKG at every party alike.
    let params6 = ThresholdParams::new(6, 7).unwrap();
    let mut rng = ChaCha20Rng::from_seed([17; 32]);
    let mut dealings: Vec<Dealing> = (1..=7)
        .map(|d| Dealing::generate(params6, d, &mut rng).unwrap())
        .collect();
    dealings[3].shares[1] = dealings[3].shares[1].tampered();
    dealings[4].commitment = Dealing::generate(params6, 5, &mut rng).unwrap().commitment;
    let mut errors = Vec::new();
    for &i in &honest {
        let mut p = Party::new(params6, i).unwrap();
        let mut complaints = Vec::new();
        for d in &dealings {
            let share = d.shares[i as usize - 1].clone();
            if let Some(c) = p.receive(d.commitment.clone(), Some(share)).unwrap() {
                complaints.push(Broadcast::new(i, c));
            }
        }
        // Everyone sees the full broadcast: all honest complaints.
        let all: Vec<Broadcast<Complaint>> = honest
            .iter()
            .map(|&a| Broadcast::new(a, c(a, 5)))
            .chain([Broadcast::new(2, c(2, 4))])
            .collect();
        errors.push(p.finish(&all, &[]).unwrap_err());
    }
    for e in &errors {
        assert_eq!(
            e,
            &CryptoError::TooFewQualifiedDealers {
                qualified: 5,
                need: 6,
                disqualified: vec![4, 5]
            }
        );
    }
}

/// Issue 15 (d): the BLS half of a hybrid is not a plain BLS signature under any tag.
#[test]
fn stripped_hybrid_bls_half_is_not_a_plain_signature() {
    let sk = HybridSecretKey::from_seed(&[20; 32]);
    let pk = sk.public_key();
    let msg = b"checkpoint 10000 root 42";
    let sig = sk.sign(Tag::Checkpoint, msg);
    pk.verify(Tag::Checkpoint, msg, &sig).unwrap();
    for tag in Tag::ALL {
        assert_eq!(
            pk.bls().verify(tag, msg, sig.bls()),
            Err(CryptoError::InvalidSignature),
            "{tag:?}"
        );
    }
    // The hybrid's BLS key is derived under its own label: not the plain key of the seed.
    assert_ne!(
        pk.bls(),
        &ccbft_crypto::bls::SecretKey::from_seed(&[20; 32]).public_key()
    );
    // A plain signature by the hybrid's BLS key does not stand in for the BLS half.
    let plain_key = ccbft_crypto::bls::SecretKey::from_bytes(&sk.to_bytes()[..32]).unwrap();
    let mut bytes = sig.to_bytes();
    bytes[..96].copy_from_slice(&plain_key.sign(Tag::Checkpoint, msg).to_bytes());
    let swapped = HybridSignature::from_bytes(&bytes).unwrap();
    assert_eq!(
        pk.verify(Tag::Checkpoint, msg, &swapped),
        Err(CryptoError::InvalidSignature)
    );
}

/// Issue 15 (d): an attacker's BLS half paired with the victim's ML-DSA half, under the
/// mixed public key, used to verify. The ML-DSA input now binds the BLS key and signature.
#[test]
fn hybrid_halves_of_different_keys_do_not_mix() {
    let victim = HybridSecretKey::from_seed(&[21; 32]);
    let attacker = HybridSecretKey::from_seed(&[22; 32]);
    let msg = b"audit head 77";
    let v = victim.sign(Tag::AuditTrail, msg).to_bytes();
    let a = attacker.sign(Tag::AuditTrail, msg).to_bytes();
    let mut mixed_pk = attacker.public_key().to_bytes();
    mixed_pk[48..].copy_from_slice(&victim.public_key().to_bytes()[48..]);
    let mixed_pk = HybridPublicKey::from_bytes(&mixed_pk).unwrap();
    let mut mixed_sig = a.clone();
    mixed_sig[96..].copy_from_slice(&v[96..]);
    let mixed_sig = HybridSignature::from_bytes(&mixed_sig).unwrap();
    assert_eq!(
        mixed_pk.verify(Tag::AuditTrail, msg, &mixed_sig),
        Err(CryptoError::InvalidPostQuantumSignature)
    );
    // The other way round too: victim's BLS half, attacker's ML-DSA half.
    let mut mixed_pk = victim.public_key().to_bytes();
    mixed_pk[48..].copy_from_slice(&attacker.public_key().to_bytes()[48..]);
    let mixed_pk = HybridPublicKey::from_bytes(&mixed_pk).unwrap();
    let mut mixed_sig = v.clone();
    mixed_sig[96..].copy_from_slice(&a[96..]);
    let mixed_sig = HybridSignature::from_bytes(&mixed_sig).unwrap();
    assert_eq!(
        mixed_pk.verify(Tag::AuditTrail, msg, &mixed_sig),
        Err(CryptoError::InvalidPostQuantumSignature)
    );
}

/// Issue 15 (d): a plain ML-DSA-65 signature by the hybrid's ML-DSA key over the message
/// (with the tag's DST as context, the old construction) is not an ML-DSA half.
#[test]
fn plain_ml_dsa_signature_is_not_a_hybrid_half() {
    use ml_dsa::{ExpandedSigningKey, MlDsa65};
    let seed = [23u8; 32];
    let sk = HybridSecretKey::from_seed(&seed);
    let pk = sk.public_key();
    let msg = b"checkpoint 11000";
    let sig = sk.sign(Tag::Checkpoint, msg);
    let pq_seed = &sk.to_bytes()[32..];
    let pq =
        ExpandedSigningKey::<MlDsa65>::from_seed(&<[u8; 32]>::try_from(pq_seed).unwrap().into());
    let plain = pq
        .sign_deterministic(msg, Tag::Checkpoint.dst())
        .unwrap()
        .encode();
    let mut bytes = sig.to_bytes();
    bytes[96..].copy_from_slice(&plain);
    let forged = HybridSignature::from_bytes(&bytes).unwrap();
    assert_eq!(
        pk.verify(Tag::Checkpoint, msg, &forged),
        Err(CryptoError::InvalidPostQuantumSignature)
    );
}
