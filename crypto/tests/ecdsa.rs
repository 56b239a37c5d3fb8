//! Threshold ECDSA end to end: 5-of-7 keygen, signing by many subsets checked with `k256`,
//! attestations, too few signers, identifiable abort, key refresh, share files.
//!
//! Safe-prime generation takes minutes, so the tests load primes and the aux info generated
//! from them (`tests/data/`, written by `cargo run --release -p ccbft-crypto --example
//! ecdsa_figures -- --write-fixtures crypto/tests/data`); the aux-info protocol itself runs
//! from those primes in the CLI test (tools/ccbft/tests/ecdsa_cli.rs, 2 parties). Key
//! generation and signing run for real in every test.
//!
//! Cost: one presignature among 5 signers is seconds of CPU (Paillier range proofs, each
//! signer with each other signer), among 3 signers about a third of that. So the five
//! 5-signer presignatures the subset sample needs also carry the attestation checks, and the
//! properties that do not depend on the committee's size (blame, refresh) use a 3-of-4 key,
//! whose aux info is the fixture's first four parties.

use ccbft_crypto::ecdsa::attest::{verify_attestation, Checkpoint};
use ccbft_crypto::ecdsa::protocol::{self, SigningMsg};
use ccbft_crypto::ecdsa::{
    files, refresh, verify_against_address, AuxInfo, EcdsaError, GroupKey, KeyShare, Primes,
    RecoverableSignature,
};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use std::os::unix::fs::PermissionsExt;

const PRIMES: &str = include_str!("data/ecdsa-primes-7.json");
const AUX: &str = include_str!("data/ecdsa-aux-7.json");

fn fixture_aux() -> Vec<AuxInfo> {
    serde_json::from_str(AUX).expect("aux fixture")
}

/// The aux info of the fixture's first `n` parties: each keeps its own Paillier key and the
/// public data (already proven in the 7-party run) of the others among the first n.
fn fixture_aux_of_first(n: usize) -> Vec<AuxInfo> {
    fixture_aux()
        .into_iter()
        .take(n)
        .map(|aux| {
            let mut dirty = aux.into_inner();
            dirty.parties.truncate(n);
            AuxInfo::validate(dirty).expect("a prefix of valid aux info")
        })
        .collect()
}

/// A fresh t-of-n key (keygen runs for real) completed with the fixture aux info.
fn key(eid: &[u8], threshold: u16, parties: u16) -> Vec<KeyShare> {
    let (incomplete, traffic) = protocol::keygen(eid, threshold, parties).expect("keygen");
    assert_eq!(incomplete.len(), usize::from(parties));
    assert!(traffic.bytes.iter().all(|&b| b > 0));
    protocol::complete(incomplete, fixture_aux_of_first(usize::from(parties))).expect("shares")
}

fn five_of_seven(eid: &[u8]) -> Vec<KeyShare> {
    key(eid, 5, 7)
}

fn secret(share: &KeyShare) -> cggmp21::generic_ec::Scalar<ccbft_crypto::ecdsa::Secp256k1> {
    *AsRef::<cggmp21::generic_ec::Scalar<_>>::as_ref(&share.x)
}

fn pick<'a>(shares: &'a [KeyShare], signers: &[u16]) -> Vec<&'a KeyShare> {
    signers.iter().map(|&i| &shares[usize::from(i)]).collect()
}

fn digest(n: u8) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[0] = n;
    d[31] = 0xee;
    d
}

/// Checks `sig` with k256's standard verifier and by recovering the Ethereum address.
fn assert_standard_signature(group: &GroupKey, digest: &[u8; 32], sig: &RecoverableSignature) {
    let k256_sig = k256::ecdsa::Signature::from_scalars(sig.r, sig.s).unwrap();
    assert!(k256_sig.normalize_s().is_none(), "low s");
    group
        .verifying_key()
        .verify_prehash(digest, &k256_sig)
        .expect("k256 verifies");
    let recovered = k256::ecdsa::VerifyingKey::recover_from_prehash(
        digest,
        &k256_sig,
        k256::ecdsa::RecoveryId::from_byte(sig.recovery_id).unwrap(),
    )
    .unwrap();
    assert_eq!(&recovered, group.verifying_key());
    assert_eq!(
        verify_against_address(&group.address(), digest, sig).unwrap(),
        *group
    );
    assert!(sig.v() == 27 || sig.v() == 28);
}

/// The checkpoint the last sampled subset attests.
const CHECKPOINT: Checkpoint = Checkpoint {
    chain_id: 1,
    height: 4096,
    block_digest: [0x11; 32],
    state_root: [0x22; 32],
};

#[test]
fn every_sampled_five_signer_subset_signs_and_tampered_attestations_fail() {
    let shares = five_of_seven(b"test subsets keygen");
    let group = GroupKey::of_share(&shares[0]);
    assert_eq!(group.compressed().len(), 33);
    // Five different subsets (each presign costs seconds of CPU); together they include every
    // party, and one lists its signers out of order. The last signs a checkpoint attestation.
    let subsets: [[u16; 5]; 5] = [
        [0, 1, 2, 3, 4],
        [2, 3, 4, 5, 6],
        [0, 2, 4, 5, 6],
        [6, 5, 0, 1, 3],
        [1, 3, 4, 5, 6],
    ];
    for (k, subset) in subsets.iter().enumerate() {
        let d = if k == 4 {
            CHECKPOINT.digest()
        } else {
            digest(k as u8)
        };
        let eid = format!("test subsets sign {k}");
        let (sig, traffic) = protocol::sign(eid.as_bytes(), &pick(&shares, subset), &d)
            .unwrap_or_else(|e| panic!("subset {subset:?}: {e}"));
        assert_standard_signature(&group, &d, &sig);
        assert_eq!(traffic.bytes.len(), 5);
        // The signature is of this digest only.
        assert!(verify_against_address(&group.address(), &digest(200), &sig).is_err());
        if k == 4 {
            assert_tampered_attestations_fail(&group, &sig);
        }
    }
}

/// `sig` attests [`CHECKPOINT`] for `group`; every tampered field, r, s, v, the high-s form
/// and another address fail verification.
fn assert_tampered_attestations_fail(group: &GroupKey, sig: &RecoverableSignature) {
    let (checkpoint, sig) = (CHECKPOINT, *sig);
    let address = group.address();
    assert_eq!(
        verify_attestation(&address, &checkpoint, &sig).unwrap(),
        *group
    );
    let mut tampered = Vec::new();
    for f in 0..4 {
        let mut c = checkpoint;
        match f {
            0 => c.chain_id += 1,
            1 => c.height -= 1,
            2 => c.block_digest[31] ^= 1,
            _ => c.state_root[0] ^= 0x80,
        }
        tampered.push((c, sig));
    }
    let mut s = sig;
    s.r[5] ^= 1;
    tampered.push((checkpoint, s));
    let mut s = sig;
    s.s[31] ^= 1;
    tampered.push((checkpoint, s));
    let mut s = sig;
    s.recovery_id ^= 1;
    tampered.push((checkpoint, s));
    for (k, (c, s)) in tampered.iter().enumerate() {
        assert!(
            verify_attestation(&address, c, s).is_err(),
            "tampering {k} accepted"
        );
    }
    // High s (the other valid form of the same signature) is refused, as EIP-2 requires.
    let k256_sig = k256::ecdsa::Signature::from_scalars(sig.r, sig.s).unwrap();
    let high_s: [u8; 32] = (-*k256_sig.s()).to_bytes().into();
    let high = RecoverableSignature {
        s: high_s,
        recovery_id: sig.recovery_id ^ 1,
        ..sig
    };
    assert!(verify_attestation(&address, &checkpoint, &high).is_err());
    // Another committee's address.
    let mut other = address;
    other[0] ^= 1;
    assert!(verify_attestation(&other, &checkpoint, &sig).is_err());
}

#[test]
fn four_parties_cannot_sign() {
    let shares = five_of_seven(b"test four keygen");
    match protocol::sign(b"test four sign", &pick(&shares, &[0, 1, 2, 3]), &digest(1)) {
        Err(EcdsaError::BadSigners {
            signers,
            threshold: 5,
            parties: 7,
        }) => {
            assert_eq!(signers, vec![0, 1, 2, 3])
        }
        other => panic!("four signers: {other:?}"),
    }
    // Below our check, the protocol itself: four parties running a five-party signing session
    // (the fifth never shows up) never produce a presignature.
    let signers = [0u16, 1, 2, 3, 4];
    let mut rngs = [rand_core::OsRng; 4];
    let eid = cggmp21::ExecutionId::new(b"test four raw");
    let machines: Vec<_> = rngs
        .iter_mut()
        .zip(0u16..)
        .map(|(rng, k)| {
            cggmp21::signing(eid, k, &signers, &shares[usize::from(k)])
                .generate_presignature_sync(rng)
        })
        .collect();
    let (fates, _) = ccbft_crypto::ecdsa::delivery::run(machines, &mut |_, _| {});
    assert!(fates
        .iter()
        .all(|f| matches!(f, ccbft_crypto::ecdsa::delivery::Fate::Stalled)));
}

/// Runs presigning with signer `k`'s messages of one kind corrupted; returns the blamed parties.
fn blamed_when_corrupted(
    shares: &[KeyShare],
    signers: &[u16],
    cheat: u16,
    corrupt: fn(&mut SigningMsg) -> bool,
) -> Vec<u16> {
    let cheater_position = signers.iter().position(|&s| s == cheat).unwrap() as u16;
    let mut corrupted = 0;
    let result = protocol::presign_tampered(
        format!("test blame {cheat}").as_bytes(),
        &pick(shares, signers),
        &mut |sender, msg| {
            if sender == cheater_position && corrupt(msg) {
                corrupted += 1;
            }
        },
    );
    assert!(corrupted > 0, "the corruption hook never matched");
    match result {
        Err(EcdsaError::Aborted {
            protocol: "presign",
            blamed,
            detail,
        }) => {
            assert!(detail.contains("names"), "{detail}");
            blamed
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("presigning succeeded with a corrupted message"),
    }
}

#[test]
fn a_party_sending_a_corrupted_round_message_is_named() {
    // Three signers of a 3-of-4 key: the two honest ones outvote the cheater's accusations.
    let shares = key(b"test blame keygen", 3, 4);
    let signers = [1u16, 2, 3];
    // Round 1: the Paillier ciphertexts K and G swapped, so the proof about K fails.
    let swap_k = |m: &mut SigningMsg| match m {
        SigningMsg::Round1a(r) => {
            std::mem::swap(&mut r.K, &mut r.G);
            true
        }
        _ => false,
    };
    assert_eq!(blamed_when_corrupted(&shares, &signers, 2, swap_k), vec![2]);
    // Round 2: the Gamma point replaced, so the log* proof about it fails.
    let bad_gamma = |m: &mut SigningMsg| match m {
        SigningMsg::Round2(r) => {
            r.Gamma += cggmp21::generic_ec::Point::generator();
            true
        }
        _ => false,
    };
    assert_eq!(
        blamed_when_corrupted(&shares, &signers, 3, bad_gamma),
        vec![3]
    );
}

#[test]
fn refresh_keeps_the_address_and_old_shares_no_longer_combine_with_new_ones() {
    // 3-of-4: the property does not depend on the committee's size.
    let old = key(b"test refresh keygen", 3, 4);
    let group = GroupKey::of_share(&old[0]);
    let new = refresh::refresh(&old).expect("refresh");
    assert_eq!(GroupKey::of_share(&new[0]), group);
    for (o, n) in old.iter().zip(&new) {
        assert_ne!(secret(o), secret(n), "party {} has a new secret share", o.i);
        assert_ne!(o.public_shares, n.public_shares);
        assert_eq!(o.shared_public_key, n.shared_public_key);
    }
    let d = digest(9);
    let (sig, _) = protocol::sign(b"test refresh new", &pick(&new, &[0, 2, 3]), &d).unwrap();
    assert_standard_signature(&group, &d, &sig);
    // Two new shares with an old one: refused or aborted, never a signature.
    let mixed = vec![&new[0], &new[1], &old[2]];
    assert!(protocol::sign(b"test refresh mixed", &mixed, &d).is_err());
    // Even with matching public data, the old secrets interpolate to another key: sign with
    // new shares whose secret is replaced by the old one.
    let mut forged = new[3].clone().into_inner();
    forged.core.x = old[3].x.clone();
    assert!(
        KeyShare::validate(forged).is_err(),
        "an old secret does not fit the new shares"
    );
    // A dealer whose value for one party does not match its commitments is named.
    let Err(err) = refresh::refresh_tampered(&old, &mut |d| {
        if d.dealer == 3 {
            let mut v = *d.values[1].as_ref() + cggmp21::generic_ec::Scalar::one();
            d.values[1] = cggmp21::generic_ec::SecretScalar::new(&mut v);
        }
    }) else {
        panic!("a bad dealing was accepted");
    };
    assert!(
        matches!(err, EcdsaError::Aborted { protocol: "refresh", ref blamed, .. } if blamed == &[3])
    );
}

/// The fixture is what the tests rely on: each party's aux info is made from its own pair of
/// primes, and aux info must match the key's party count. (The aux-info protocol itself runs
/// in the suite once, from these primes, in tools/ccbft/tests/ecdsa_cli.rs: its cost grows
/// with the square of the parties, about 27 s of CPU per party for 7, perf/results/crypto.md.)
#[test]
fn fixture_aux_info_matches_its_primes_and_the_party_count() {
    let primes: Vec<Primes> = serde_json::from_str(PRIMES).expect("primes fixture");
    let primes = serde_json::to_value(primes).unwrap();
    let aux = fixture_aux();
    assert_eq!((primes.as_array().unwrap().len(), aux.len()), (7, 7));
    for (i, a) in aux.iter().enumerate() {
        let dirty = serde_json::to_value(&**a).unwrap();
        assert_eq!(dirty["p"], primes[i]["p"], "party {i}");
        assert_eq!(dirty["q"], primes[i]["q"], "party {i}");
    }
    // Aux info made for another number of parties does not complete these shares.
    let (other, _) = protocol::keygen(b"test aux keygen 2", 2, 2).unwrap();
    assert!(protocol::complete(other, fixture_aux().into_iter().take(2).collect()).is_err());
}

#[test]
fn share_files_are_secrets_and_round_trip() {
    let shares = five_of_seven(b"test files keygen");
    let dir = tempfile::tempdir().unwrap();
    let path = files::share_path(dir.path(), 3);
    files::write_share(&path, &shares[3]).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let back = files::read_share(&path).unwrap();
    assert_eq!(back.i, 3);
    assert_eq!(secret(&back), secret(&shares[3]));
    // The CRT parameters of its own Paillier key, and only of its own, are kept.
    let crt: Vec<bool> = back.aux.parties.iter().map(|p| p.crt.is_some()).collect();
    assert_eq!(crt, [false, false, false, true, false, false, false]);
    assert!(
        files::write_share(&path, &shares[3]).is_err(),
        "never replaces a share"
    );
    for bad in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        assert!(matches!(
            files::read_share(&path),
            Err(EcdsaError::KeyFile(
                ccbft_crypto::keyfile::KeyFileError::Permissions { .. }
            ))
        ));
    }
    // A share file whose secret was changed fails validation on read.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let x = serde_json::to_value(&*shares[3]).unwrap()["core"]["x"]
        .as_str()
        .unwrap()
        .to_string();
    let other_x = serde_json::to_value(&*shares[4]).unwrap()["core"]["x"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&x));
    let forged = files::share_path(dir.path(), 9);
    ccbft_crypto::keyfile::write_secret_file(&forged, text.replace(&x, &other_x).as_bytes())
        .unwrap();
    assert!(matches!(
        files::read_share(&forged),
        Err(EcdsaError::Format(_))
    ));
    // The group file carries the key and the address and is checked on read.
    files::GroupFile::of_share(&shares[0])
        .write(dir.path())
        .unwrap();
    let g = files::GroupFile::read(&dir.path().join(files::GROUP_FILE)).unwrap();
    assert_eq!(g.group_key().unwrap(), GroupKey::of_share(&shares[0]));
    assert_eq!((g.threshold, g.parties, g.public_shares.len()), (5, 7, 7));
}
