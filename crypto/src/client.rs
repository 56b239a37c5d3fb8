//! Client (transaction) signatures: Ed25519 with `ed25519-dalek` v2.
//!
//! Clients are payment switches; they need no aggregation, so plain Ed25519 with batch
//! verification is the cheapest fit. Checks are strict and malleability-free:
//! - public keys: canonical encoding, not small order, torsion-free (checked once per key);
//! - signatures: canonical `s < l`, canonical `R` that decompresses and is not small order;
//! - single verification is `verify_strict` (cofactorless, exact `R` comparison, so it also
//!   rejects an `R` with a torsion component).
//!
//! Batch verification first rejects every item whose `R` is not torsion-free (one
//! variable-time multiplication by the group order per item, spread over the pool), then runs
//! the cofactorless batch equation of `ed25519_dalek::verify_batch` on the rest. With `R` and
//! `A` in the prime-order subgroup the batch accepts exactly what `verify_strict` accepts (up
//! to the batch's 2^-128 soundness error), so replicas that batch and replicas that verify one
//! by one never disagree about a client's transaction. Without the torsion check, a client
//! could craft a signature that the batch accepts with probability 1/8 and `verify_strict`
//! always rejects.

use crate::batch::VerifyPool;
use crate::error::{check_len, CryptoError};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::OsRng;
use rayon::prelude::*;

/// Bytes of a client secret key (the RFC 8032 seed).
pub const CLIENT_SECRET_KEY_BYTES: usize = 32;
/// Bytes of a client public key.
pub const CLIENT_PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of a client signature.
pub const CLIENT_SIGNATURE_BYTES: usize = 64;
/// Items per `verify_batch` call of ed25519-dalek (bounds the temporary vectors).
pub const CLIENT_BATCH_WINDOW_ITEMS_MAX: usize = 4096;

/// Whether `[l]P` is the identity, computed as `[l - 1]P + P` with a variable-time
/// multiplication (`-1 mod l` is the integer `l - 1`). Same answer as
/// `EdwardsPoint::is_torsion_free`, about twice as fast; the points are public.
fn torsion_free_vartime(point: &EdwardsPoint) -> bool {
    let l_minus_one = EdwardsPoint::vartime_multiscalar_mul([-Scalar::ONE], [*point]);
    (l_minus_one + point).is_identity()
}

/// Decodes a point that must be canonical and not of small order, and, if asked, in the
/// prime-order subgroup.
fn strict_point(
    kind: &'static str,
    bytes: [u8; 32],
    torsion_free: bool,
) -> Result<EdwardsPoint, CryptoError> {
    let compressed = CompressedEdwardsY(bytes);
    let point = compressed
        .decompress()
        .ok_or(CryptoError::NonCanonical { kind })?;
    if point.compress() != compressed {
        return Err(CryptoError::NonCanonical { kind });
    }
    if point.is_small_order() {
        return Err(CryptoError::WeakPoint { kind });
    }
    if torsion_free && !torsion_free_vartime(&point) {
        return Err(CryptoError::NotInSubgroup { kind });
    }
    Ok(point)
}

/// A client signing key. `Debug` never prints the key.
#[derive(Clone)]
pub struct ClientSigningKey(SigningKey);

impl std::fmt::Debug for ClientSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientSigningKey(<redacted>)")
    }
}

impl ClientSigningKey {
    /// The key with this RFC 8032 seed (deterministic; tests and simulation).
    pub fn from_seed(seed: &[u8; 32]) -> ClientSigningKey {
        ClientSigningKey(SigningKey::from_bytes(seed))
    }

    /// A key from operating-system randomness.
    pub fn generate() -> ClientSigningKey {
        ClientSigningKey(SigningKey::generate(&mut OsRng))
    }

    /// The public key.
    pub fn public_key(&self) -> ClientPublicKey {
        ClientPublicKey(self.0.verifying_key())
    }

    /// Signs `msg` (pure Ed25519, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> ClientSignature {
        let sig = self.0.sign(msg);
        let r = CompressedEdwardsY(*sig.r_bytes())
            .decompress()
            .expect("R of an honest signature decompresses");
        ClientSignature { sig, r }
    }

    /// The 32-byte seed. Key material.
    pub fn to_bytes(&self) -> [u8; CLIENT_SECRET_KEY_BYTES] {
        self.0.to_bytes()
    }

    /// Decodes a 32-byte seed (every seed is a valid key).
    pub fn from_bytes(bytes: &[u8]) -> Result<ClientSigningKey, CryptoError> {
        check_len("client secret key", bytes, CLIENT_SECRET_KEY_BYTES)?;
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(bytes);
        Ok(ClientSigningKey::from_seed(&seed))
    }
}

/// A validated client public key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct ClientPublicKey(VerifyingKey);

impl ClientPublicKey {
    /// Decodes a key: 32 bytes, canonical, not small order, torsion-free.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClientPublicKey, CryptoError> {
        const KIND: &str = "client public key";
        check_len(KIND, bytes, CLIENT_PUBLIC_KEY_BYTES)?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(bytes);
        strict_point(KIND, raw, true)?;
        let key =
            VerifyingKey::from_bytes(&raw).map_err(|_| CryptoError::NonCanonical { kind: KIND })?;
        if key.is_weak() {
            return Err(CryptoError::WeakPoint { kind: KIND });
        }
        Ok(ClientPublicKey(key))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; CLIENT_PUBLIC_KEY_BYTES] {
        self.0.to_bytes()
    }

    /// Strict single verification (`verify_strict`).
    pub fn verify(&self, msg: &[u8], sig: &ClientSignature) -> Result<(), CryptoError> {
        self.0
            .verify_strict(msg, &sig.sig)
            .map_err(|_| CryptoError::InvalidSignature)
    }
}

/// A client signature whose encoding passed the strict checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientSignature {
    sig: ed25519_dalek::Signature,
    /// `R`, decompressed once.
    r: EdwardsPoint,
}

impl ClientSignature {
    /// Decodes 64 bytes `R || s`: canonical `s`, canonical `R` not of small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClientSignature, CryptoError> {
        const KIND: &str = "client signature";
        check_len(KIND, bytes, CLIENT_SIGNATURE_BYTES)?;
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
            return Err(CryptoError::NonCanonical { kind: KIND });
        }
        let point = strict_point(KIND, r, false)?;
        Ok(ClientSignature {
            r: point,
            sig: ed25519_dalek::Signature::from_components(r, s),
        })
    }

    /// The 64-byte encoding.
    pub fn to_bytes(&self) -> [u8; CLIENT_SIGNATURE_BYTES] {
        self.sig.to_bytes()
    }
}

/// One client item: message, signature, key.
pub type ClientBatchItem<'a> = (&'a [u8], &'a ClientSignature, &'a ClientPublicKey);

/// Verifies every item with Ed25519 batch verification spread over `pool`. `Ok(())` if all
/// are valid, otherwise the indices (increasing) of exactly the invalid ones: items whose `R`
/// has a torsion component, then the bad ones among the rest, found by bisection.
pub fn verify_batch(pool: &VerifyPool, items: &[ClientBatchItem<'_>]) -> Result<(), Vec<usize>> {
    let chunk = items
        .len()
        .div_ceil(pool.threads())
        .clamp(1, CLIENT_BATCH_WINDOW_ITEMS_MAX);
    let mut bad: Vec<usize> = pool.install(|| {
        items
            .par_chunks(chunk)
            .enumerate()
            .flat_map_iter(|(c, part)| verify_chunk(part, c * chunk))
            .collect()
    });
    if bad.is_empty() {
        Ok(())
    } else {
        bad.sort_unstable();
        Err(bad)
    }
}

/// The bad items of `part` (indices offset by `base`).
fn verify_chunk(part: &[ClientBatchItem<'_>], base: usize) -> Vec<usize> {
    let mut bad = Vec::new();
    let mut kept = Vec::with_capacity(part.len());
    let mut index = Vec::with_capacity(part.len());
    for (j, item) in part.iter().enumerate() {
        if torsion_free_vartime(&item.1.r) {
            kept.push(*item);
            index.push(base + j);
        } else {
            bad.push(base + j);
        }
    }
    if !batch_ok(&kept) {
        bisect(&kept, &index, &mut bad);
    }
    bad
}

fn batch_ok(items: &[ClientBatchItem<'_>]) -> bool {
    match items {
        [] => true,
        [(msg, sig, pk)] => pk.verify(msg, sig).is_ok(),
        _ => {
            let msgs: Vec<&[u8]> = items.iter().map(|i| i.0).collect();
            let sigs: Vec<ed25519_dalek::Signature> = items.iter().map(|i| i.1.sig).collect();
            let keys: Vec<VerifyingKey> = items.iter().map(|i| i.2 .0).collect();
            ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
        }
    }
}

/// Appends to `bad` the indices (from `index`) of the bad items of `items`, a set known to
/// fail.
fn bisect(items: &[ClientBatchItem<'_>], index: &[usize], bad: &mut Vec<usize>) {
    if items.len() == 1 {
        bad.push(index[0]);
        return;
    }
    let mid = items.len() / 2;
    let (left, right) = items.split_at(mid);
    let (left_index, right_index) = index.split_at(mid);
    if batch_ok(left) {
        bisect(right, right_index, bad);
    } else {
        bisect(left, left_index, bad);
        if !batch_ok(right) {
            bisect(right, right_index, bad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};

    #[test]
    fn vartime_torsion_check_matches_the_constant_time_one() {
        for k in 1u64..20 {
            let p = ED25519_BASEPOINT_POINT * Scalar::from(k * 7919);
            assert!(torsion_free_vartime(&p));
            assert_eq!(torsion_free_vartime(&p), p.is_torsion_free());
            for t in &EIGHT_TORSION[1..] {
                let q = p + t;
                assert!(!torsion_free_vartime(&q));
                assert_eq!(torsion_free_vartime(&q), q.is_torsion_free());
            }
        }
    }

    /// The RFC 8032 secret scalar `a` of a seed (clamped first half of SHA-512(seed)).
    fn secret_scalar(seed: &[u8; 32]) -> Scalar {
        use sha2::{Digest, Sha512};
        let h = Sha512::digest(seed);
        let mut lower = [0u8; 32];
        lower.copy_from_slice(&h[..32]);
        Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(lower))
    }

    /// `k = SHA-512(R || A || M) mod l`.
    fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
        use sha2::{Digest, Sha512};
        let h = Sha512::new()
            .chain_update(r)
            .chain_update(a)
            .chain_update(msg)
            .finalize();
        Scalar::from_bytes_mod_order_wide(&h.into())
    }

    /// A signature with `R = rB + T` for a torsion point `T` and `s = r + k a`, where `k` is
    /// computed over that `R`: it satisfies the cofactored equation `[8](sB - kA - R) = 0`
    /// (so some verifiers accept it) and not the cofactorless one `sB - kA = R`.
    fn torsion_signature(seed: &[u8; 32], msg: &[u8], nonce: u64, t: &EdwardsPoint) -> [u8; 64] {
        let a = secret_scalar(seed);
        let a_bytes = ClientSigningKey::from_seed(seed).public_key().to_bytes();
        let r = Scalar::from(nonce) * Scalar::from(0x9e37_79b9_7f4a_7c15u64) + Scalar::ONE;
        let big_r = (ED25519_BASEPOINT_POINT * r + t).compress().to_bytes();
        let s = r + challenge(&big_r, &a_bytes, msg) * a;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&big_r);
        out[32..].copy_from_slice(s.as_bytes());
        out
    }

    /// Issue 15 (j): the old test added `T` to an honest signature's `R`, which also changes
    /// the challenge, so its signatures were invalid under every rule and proved nothing.
    /// Here the signatures are crafted as `R = rB + T` with the challenge over that `R`:
    /// valid under cofactored verification (checked below, and raw `ed25519_dalek` batch
    /// verification accepts some of them), invalid under the crate's rule (cofactorless,
    /// `verify_strict`), and the crate's batch path agrees with the single path on every one.
    #[test]
    fn cofactored_only_signatures_are_rejected_alone_and_in_a_batch() {
        let seed = [5u8; 32];
        let sk = ClientSigningKey::from_seed(&seed);
        let pk = sk.public_key();
        let a_point = ED25519_BASEPOINT_POINT * secret_scalar(&seed);
        assert_eq!(a_point.compress().to_bytes(), pk.to_bytes());
        let msgs: Vec<Vec<u8>> = (0..8).map(|i| vec![i; 10]).collect();
        let good: Vec<ClientSignature> = msgs.iter().map(|m| sk.sign(m)).collect();
        let pool = VerifyPool::new(2).unwrap();
        let mut crafted = 0;
        let mut raw_batch_accepted = 0;
        for (n, t) in EIGHT_TORSION[1..].iter().cycle().take(7 * 24).enumerate() {
            let bytes = torsion_signature(&seed, &msgs[3], n as u64, t);
            let Ok(bad) = ClientSignature::from_bytes(&bytes) else {
                continue; // R happened to be small order (impossible: rB has order l)
            };
            crafted += 1;
            // Valid under the cofactored equation, invalid under the cofactorless one.
            let k = challenge(&bytes[..32].try_into().unwrap(), &pk.to_bytes(), &msgs[3]);
            let s = Scalar::from_canonical_bytes(bytes[32..].try_into().unwrap()).unwrap();
            let residue = ED25519_BASEPOINT_POINT * s - a_point * k - bad.r;
            assert!(residue.mul_by_cofactor().is_identity(), "cofactored-valid");
            assert!(!residue.is_identity(), "cofactorless-invalid");
            // The crate's rule: rejected alone and named exactly in a batch.
            assert_eq!(
                pk.verify(&msgs[3], &bad),
                Err(CryptoError::InvalidSignature)
            );
            let mut sigs = good.clone();
            sigs[3] = bad;
            let items: Vec<ClientBatchItem<'_>> = (0..8)
                .map(|i| (msgs[i].as_slice(), &sigs[i], &pk))
                .collect();
            assert_eq!(verify_batch(&pool, &items), Err(vec![3]));
            // Without the torsion filter, dalek's batch accepts such a signature whenever its
            // random coefficient is a multiple of T's order.
            if ed25519_dalek::verify_batch(&[&msgs[3][..]], &[bad.sig], &[pk.0]).is_ok() {
                raw_batch_accepted += 1;
            }
        }
        assert_eq!(crafted, 7 * 24);
        assert!(
            raw_batch_accepted > 0,
            "some crafted signatures pass a cofactor-blind batch, so the test is meaningful"
        );
    }
}
