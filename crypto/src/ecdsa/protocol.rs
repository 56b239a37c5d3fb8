//! The CGGMP21 protocols run among parties in this process, with blame on abort.
//!
//! Each function builds one `cggmp21` state machine per party and drives them with
//! [`delivery::run`]; over the replica transport the same builders would be driven by each
//! replica for itself. Every run takes an execution id that must never repeat for the same
//! parties (it separates transcripts, so messages of one run cannot be replayed in another).

use super::delivery::{self, Fate, Tamper, Traffic};
use super::{check_params, EcdsaError, GroupKey, IncompleteKeyShare, KeyShare, Primes};
use super::{AuxInfo, RecoverableSignature, Secp256k1};
use cggmp21::generic_ec::Scalar;
use cggmp21::key_share::AnyKeyShare as _;
use cggmp21::{DataToSign, ExecutionId, PartialSignature, Presignature};
use rand_core::OsRng;
use std::fmt::Debug;

/// A signing-round message (what [`presign_tampered`] lets a test corrupt).
pub type SigningMsg = cggmp21::signing::msg::Msg<Secp256k1, sha2::Sha256>;

/// Dealerless t-of-n key generation among `parties` parties (party i gets `result[i]`).
pub fn keygen(
    eid: &[u8],
    threshold: u16,
    parties: u16,
) -> Result<(Vec<IncompleteKeyShare>, Traffic), EcdsaError> {
    check_params(threshold, parties)?;
    let eid = ExecutionId::new(eid);
    let mut rngs = vec![OsRng; usize::from(parties)];
    let machines = (0..parties)
        .zip(rngs.iter_mut())
        .map(|(i, rng)| {
            cggmp21::keygen::<Secp256k1>(eid, i, parties)
                .set_threshold(threshold)
                .into_state_machine(rng)
        })
        .collect();
    let (fates, traffic) = delivery::run(machines, &mut |_, _| {});
    Ok((outputs("keygen", fates, &|j| j)?, traffic))
}

/// Auxiliary info (Paillier keys, ring-Pedersen parameters and their proofs): party i uses
/// `primes[i]`, two safe primes it generated ([`Primes::generate`] takes a while).
pub fn aux_info(eid: &[u8], primes: Vec<Primes>) -> Result<(Vec<AuxInfo>, Traffic), EcdsaError> {
    let parties = u16::try_from(primes.len())
        .ok()
        .filter(|&n| n <= super::ECDSA_PARTIES_MAX)
        .ok_or_else(|| EcdsaError::Format("too many parties".into()))?;
    let eid = ExecutionId::new(eid);
    let mut rngs = vec![OsRng; primes.len()];
    let machines = primes
        .into_iter()
        .zip(rngs.iter_mut())
        .zip(0..parties)
        .map(|((p, rng), i)| cggmp21::aux_info_gen(eid, i, parties, p).into_state_machine(rng))
        .collect();
    let (fates, traffic) = delivery::run(machines, &mut |_, _| {});
    Ok((outputs("aux info", fates, &|j| j)?, traffic))
}

/// Attaches each party's aux info to its share (checking they belong together), with the
/// CRT parameters of its own Paillier key (see [`with_crt`]).
pub fn complete(
    incomplete: Vec<IncompleteKeyShare>,
    aux: Vec<AuxInfo>,
) -> Result<Vec<KeyShare>, EcdsaError> {
    if incomplete.len() != aux.len() {
        return Err(EcdsaError::InconsistentShares(format!(
            "{} shares but {} aux infos",
            incomplete.len(),
            aux.len()
        )));
    }
    incomplete
        .into_iter()
        .zip(aux)
        .map(|parts| {
            let share = KeyShare::from_parts(parts)
                .map_err(|e| EcdsaError::InconsistentShares(e.to_string()))?;
            with_crt(share)
        })
        .collect()
}

/// The share with CRT parameters for its own Paillier modulus (from its primes, which the
/// share holds anyway): the party checks the others' proofs with exponentiations modulo its
/// own modulus, and CRT makes them about 10% cheaper per presignature (measured on 5 signers).
/// Kept in the share file; as secret as the primes.
pub fn with_crt(share: KeyShare) -> Result<KeyShare, EcdsaError> {
    let i = usize::from(share.i);
    if share
        .aux
        .parties
        .get(i)
        .is_some_and(|own| own.crt.is_some())
    {
        return Ok(share);
    }
    let mut dirty = share.into_inner();
    dirty
        .precompute_crt()
        .map_err(|e| EcdsaError::InconsistentShares(e.to_string()))?;
    KeyShare::validate(dirty).map_err(|e| EcdsaError::InconsistentShares(e.to_string()))
}

/// The keygen indices of `shares`, checked: exactly the threshold, distinct, one key.
pub fn signer_indices(shares: &[&KeyShare]) -> Result<Vec<u16>, EcdsaError> {
    let first = shares
        .first()
        .ok_or_else(|| EcdsaError::InconsistentShares("no shares".into()))?;
    let (t, n) = (first.min_signers(), first.n());
    let signers: Vec<u16> = shares.iter().map(|s| s.i).collect();
    let mut sorted = signers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != signers.len() || signers.len() != usize::from(t) {
        return Err(EcdsaError::BadSigners {
            signers,
            threshold: t,
            parties: n,
        });
    }
    if shares
        .iter()
        .any(|s| s.shared_public_key != first.shared_public_key || s.n() != n)
    {
        return Err(EcdsaError::InconsistentShares(
            "the shares belong to different keys".into(),
        ));
    }
    Ok(signers)
}

/// The presigning rounds among exactly t signers (`shares[k]` is signer k's share). Each
/// presignature must be used for one digest only: two signatures from one presignature reveal
/// the key, so [`Presignature`] is consumed by signing.
pub fn presign(
    eid: &[u8],
    shares: &[&KeyShare],
) -> Result<(Vec<Presignature<Secp256k1>>, Traffic), EcdsaError> {
    presign_tampered(eid, shares, &mut |_, _| {})
}

/// [`presign`] with a hook that may change a message as it leaves a signer (signer k is the
/// k-th of `shares`); a corrupted message makes honest signers abort and name its sender.
pub fn presign_tampered(
    eid: &[u8],
    shares: &[&KeyShare],
    tamper: Tamper<'_, SigningMsg>,
) -> Result<(Vec<Presignature<Secp256k1>>, Traffic), EcdsaError> {
    let signers = signer_indices(shares)?;
    let eid = ExecutionId::new(eid);
    let mut rngs = vec![OsRng; shares.len()];
    let machines = shares
        .iter()
        .zip(rngs.iter_mut())
        .zip(0u16..)
        .map(|((share, rng), k)| {
            cggmp21::signing(eid, k, &signers, share).generate_presignature_sync(rng)
        })
        .collect();
    let (fates, traffic) = delivery::run(machines, tamper);
    Ok((
        outputs("presign", fates, &|k| signers[usize::from(k)])?,
        traffic,
    ))
}

/// The online step: each signer turns its presignature into a partial signature of `digest`.
pub fn partial_sign(
    presignature: Presignature<Secp256k1>,
    digest: &[u8; 32],
) -> PartialSignature<Secp256k1> {
    presignature.issue_partial_signature(data_to_sign(digest))
}

/// Combines t partial signatures into (r, s, v) with low s, verified under the group key with
/// `k256` (a bad partial signature is caught here, though not attributed).
pub fn combine(
    group: &GroupKey,
    digest: &[u8; 32],
    partials: &[PartialSignature<Secp256k1>],
) -> Result<RecoverableSignature, EcdsaError> {
    let sig = PartialSignature::combine(partials).ok_or(EcdsaError::InvalidSignature)?;
    let sig = sig.normalize_s();
    let r: [u8; 32] = sig.r.to_be_bytes().as_bytes().try_into().expect("32 bytes");
    let s: [u8; 32] = sig.s.to_be_bytes().as_bytes().try_into().expect("32 bytes");
    RecoverableSignature::from_verified(group, digest, r, s)
}

/// Presign, then sign `digest`: the whole protocol among exactly t signers.
pub fn sign(
    eid: &[u8],
    shares: &[&KeyShare],
    digest: &[u8; 32],
) -> Result<(RecoverableSignature, Traffic), EcdsaError> {
    let (presignatures, mut traffic) = presign(eid, shares)?;
    let partials: Vec<_> = presignatures
        .into_iter()
        .map(|p| partial_sign(p, digest))
        .collect();
    // The online round: each signer sends its partial signature to the others.
    let partial_bytes = serde_json::to_vec(&partials[0]).map_or(0, |v| v.len() as u64);
    let others = shares.len() as u64 - 1;
    for k in 0..shares.len() {
        traffic.messages[k] += 1;
        traffic.bytes[k] += partial_bytes * others;
    }
    let group = GroupKey::of_share(shares[0]);
    Ok((combine(&group, digest, &partials)?, traffic))
}

/// The digest as the scalar ECDSA signs: reduced modulo the group order, as every verifier
/// does with a 32-byte hash on secp256k1.
fn data_to_sign(digest: &[u8; 32]) -> DataToSign<Secp256k1> {
    DataToSign::from_scalar(Scalar::from_be_bytes_mod_order(digest))
}

/// Every party's output, or the abort with the parties the others blamed (`index` maps a
/// protocol index to a keygen index).
///
/// Each party that aborted names who it caught; the cheater itself may name others (it sees
/// its own unaltered messages, so it accuses everyone who saw the real ones). A party is
/// reported as blamed when more than half of the accusing parties name it: with fewer cheaters
/// than half the accusers, that is exactly the cheaters. Every accusation is in `detail`.
fn outputs<O, E: Debug + std::fmt::Display>(
    protocol: &'static str,
    fates: Vec<Fate<O, E>>,
    index: &dyn Fn(u16) -> u16,
) -> Result<Vec<O>, EcdsaError> {
    let mut out = Vec::with_capacity(fates.len());
    let mut accusations: Vec<Vec<u16>> = Vec::new();
    let mut detail = Vec::new();
    for (k, fate) in fates.into_iter().enumerate() {
        let me = index(k as u16);
        match fate {
            Fate::Output(o) => out.push(o),
            Fate::Failed(e) => {
                let debug = format!("{e:?}");
                let named: Vec<u16> = blamed_parties(&debug).into_iter().map(index).collect();
                detail.push(format!("party {me} names {named:?} ({e}: {debug})"));
                if !named.is_empty() {
                    accusations.push(named);
                }
            }
            Fate::Broken(e) => detail.push(format!("party {me}: {e}")),
            Fate::Stalled => detail.push(format!("party {me} stalled")),
        }
    }
    if detail.is_empty() {
        return Ok(out);
    }
    Err(EcdsaError::Aborted {
        protocol,
        blamed: majority_blamed(&accusations),
        detail: detail.join("; "),
    })
}

/// The parties named by more than half of the accusation lists.
fn majority_blamed(accusations: &[Vec<u16>]) -> Vec<u16> {
    let mut named: Vec<u16> = accusations.iter().flatten().copied().collect();
    named.sort_unstable();
    named.dedup();
    named
        .into_iter()
        .filter(|p| 2 * accusations.iter().filter(|a| a.contains(p)).count() > accusations.len())
        .collect()
}

/// The parties an error names. cggmp21 keeps its abort reasons private and shows the blamed
/// parties only in their `Debug` form: `AbortBlame { faulty_party: 3, .. }` for keygen and
/// aux info, `EncProofOfK([(3, id, id)])` and the like for signing. The version is pinned in
/// Cargo.lock and a test corrupts a message and checks the culprit is found, so a change of
/// form fails the test instead of silently blaming nobody.
pub fn blamed_parties(debug: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for (at, _) in debug.match_indices("faulty_party: ") {
        out.extend(leading_number(&debug[at + "faulty_party: ".len()..]));
    }
    for variant in [
        "EncProofOfK([",
        "InvalidPsi([",
        "InvalidPsiPrimePrime([",
        "Round1aNotReliable([",
    ] {
        for (at, _) in debug.match_indices(variant) {
            out.extend(tuple_heads(&debug[at + variant.len()..]));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The first element of each top-level tuple in `(a, ..), (b, ..)]`, up to the closing `]`.
fn tuple_heads(list: &str) -> Vec<u16> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    for (at, c) in list.char_indices() {
        match c {
            '(' | '[' | '{' => {
                if depth == 0 && c == '(' {
                    heads.extend(leading_number(&list[at + 1..]));
                }
                depth += 1;
            }
            ')' | '}' => depth = depth.saturating_sub(1),
            ']' if depth == 0 => break,
            ']' => depth -= 1,
            _ => {}
        }
    }
    heads
}

fn leading_number(text: &str) -> Option<u16> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_is_read_from_both_debug_forms() {
        let keygen = "KeygenError(Aborted(InvalidDecommitment([AbortBlame { faulty_party: 3, \
                      data_message: 10, proof_message: 17 }, AbortBlame { faulty_party: 5, \
                      data_message: 1, proof_message: 2 }])))";
        assert_eq!(blamed_parties(keygen), vec![3, 5]);
        let signing = "SigningError(Aborted(InvalidPsi([(2, 5, 7, (Some(InvalidProof(A)), None, \
                       None)), (4, 1, 1, (None, None, Some(X)))])))";
        assert_eq!(blamed_parties(signing), vec![2, 4]);
        assert_eq!(
            blamed_parties("SigningError(Aborted(EncProofOfK([(1, 0, 9)])))"),
            vec![1]
        );
        assert_eq!(
            blamed_parties("SigningError(Aborted(InvalidPsiPrimePrime([(0, 3, 4)])))"),
            vec![0]
        );
        assert!(blamed_parties("SigningError(Aborted(SignatureInvalid))").is_empty());
    }

    #[test]
    fn the_majority_of_accusers_decides_who_is_blamed() {
        // Four honest parties name 4; the cheater 4 names the four of them.
        let a = vec![vec![4], vec![4], vec![4], vec![4], vec![1, 2, 5, 6]];
        assert_eq!(majority_blamed(&a), vec![4]);
        assert!(majority_blamed(&[]).is_empty());
        assert!(majority_blamed(&[vec![1], vec![2]]).is_empty());
    }
}
