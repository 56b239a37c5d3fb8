//! Post-quantum hybrid signatures for long-lived artefacts (checkpoints, the DORA audit
//! trail): a BLS signature and an ML-DSA-65 (FIPS 204) signature, composed so that neither
//! half can be stripped, swapped or reused. A hybrid signature verifies only if both halves
//! verify, so it stays unforgeable as long as either scheme is unbroken.
//!
//! # Composition (non-separable)
//!
//! With `LABEL` = [`HYBRID_LABEL`] (fixed length) and the message kind's wire byte `tag`:
//!
//! - `M' = LABEL || tag || msg` (fixed-length prefix, so the encoding is injective);
//! - BLS half: `sig_bls = BLS.Sign(sk_bls, M')` under [`HYBRID_DST`], a hash-to-curve domain no
//!   plain [`Tag`] uses, so a stripped BLS half never verifies as a plain vote, checkpoint or
//!   audit signature;
//! - ML-DSA half: `sig_pq = ML-DSA.Sign(sk_pq, pk_bls || sig_bls || M', ctx = LABEL)`: it binds
//!   the BLS key and the BLS half (and ML-DSA binds its own key through `tr = H(pk)`), so an
//!   attacker's BLS half paired with a victim's ML-DSA half fails, and an ML-DSA signature
//!   made for another purpose never verifies as a hybrid half;
//! - the BLS key of [`HybridSecretKey::from_seed`] is derived under its own KeyGen label, so
//!   the seed of a plain BLS key never yields the hybrid's BLS key.
//!
//! The construction follows the shape of the IETF composite signatures (a domain label, the
//! message and context bound into both components), with the extra binding of the BLS
//! signature into the post-quantum input.
//!
//! Crate: RustCrypto `ml-dsa` 0.1 (pure Rust, no C toolchain or system library, implements
//! the final FIPS 204 including the context string, maintained with the other RustCrypto
//! signature crates, builds here offline from crates.io, and its key and signature sizes
//! match FIPS 204: 1952-byte verifying keys and 3309-byte signatures for ML-DSA-65). The
//! ML-DSA half is signed with the deterministic variant of ML-DSA.Sign (FIPS 204 section
//! 3.4) so that simulations replay.

use crate::bls::{
    PublicKey, SecretKey, Signature, Tag, HYBRID_DST, PUBLIC_KEY_BYTES, SECRET_KEY_BYTES,
    SIGNATURE_BYTES,
};
use crate::error::{check_len, CryptoError};
use ml_dsa::{
    EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, KeyExport, MlDsa65, VerifyingKey,
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// The composite label: prefix of every hybrid-signed message and the FIPS 204 context of
/// the ML-DSA half.
pub const HYBRID_LABEL: &[u8] = b"CCBFT-V1-HYBRID-BLS12381-MLDSA65";
/// KeyGen info of the hybrid's BLS half (distinct from a plain BLS key's).
const HYBRID_BLS_KEYGEN_INFO: &[u8] = b"CCBFT-V1-HYBRID-BLS-KEYGEN";
/// Label of the hybrid's ML-DSA seed derivation.
const HYBRID_PQ_SEED_LABEL: &[u8] = b"CCBFT-V1-ML-DSA-65-SEED";

/// `M' = LABEL || tag || msg`, what the BLS half signs.
fn composite_message(tag: Tag, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HYBRID_LABEL.len() + 1 + msg.len());
    out.extend_from_slice(HYBRID_LABEL);
    out.push(tag.to_u8());
    out.extend_from_slice(msg);
    out
}

/// `pk_bls || sig_bls || M'`, what the ML-DSA half signs.
fn post_quantum_input(bls_key: &PublicKey, bls_sig: &Signature, composite: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PUBLIC_KEY_BYTES + SIGNATURE_BYTES + composite.len());
    out.extend_from_slice(&bls_key.to_bytes());
    out.extend_from_slice(&bls_sig.to_bytes());
    out.extend_from_slice(composite);
    out
}

/// Bytes of an ML-DSA-65 verifying key.
pub const ML_DSA_65_PUBLIC_KEY_BYTES: usize = 1952;
/// Bytes of an ML-DSA-65 signature.
pub const ML_DSA_65_SIGNATURE_BYTES: usize = 3309;
/// Bytes of a hybrid secret key: BLS scalar then ML-DSA seed.
pub const HYBRID_SECRET_KEY_BYTES: usize = SECRET_KEY_BYTES + 32;
/// Bytes of a hybrid public key.
pub const HYBRID_PUBLIC_KEY_BYTES: usize = PUBLIC_KEY_BYTES + ML_DSA_65_PUBLIC_KEY_BYTES;
/// Bytes of a hybrid signature.
pub const HYBRID_SIGNATURE_BYTES: usize = SIGNATURE_BYTES + ML_DSA_65_SIGNATURE_BYTES;

/// A BLS secret key and an ML-DSA-65 signing key. `Debug` never prints them.
#[derive(Clone)]
pub struct HybridSecretKey {
    bls: SecretKey,
    /// The BLS public key, bound into every ML-DSA half (computed once).
    bls_public: PublicKey,
    pq_seed: [u8; 32],
    pq: ExpandedSigningKey<MlDsa65>,
}

impl std::fmt::Debug for HybridSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HybridSecretKey(<redacted>)")
    }
}

impl Drop for HybridSecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pq_seed);
    }
}

impl HybridSecretKey {
    fn from_parts(bls: SecretKey, pq_seed: [u8; 32]) -> HybridSecretKey {
        let pq = ExpandedSigningKey::<MlDsa65>::from_seed(&pq_seed.into());
        let bls_public = bls.public_key();
        HybridSecretKey {
            bls,
            bls_public,
            pq_seed,
            pq,
        }
    }

    /// Derives both halves from one seed (deterministic; tests and simulation). The halves
    /// use independent derivations (BLS KeyGen under the hybrid's own info string, SHA-256
    /// with a distinct label), and neither equals what the seed gives a plain BLS key.
    pub fn from_seed(seed: &[u8; 32]) -> HybridSecretKey {
        let bls = SecretKey::from_seed_with_info(seed, HYBRID_BLS_KEYGEN_INFO);
        let mut pq_seed: [u8; 32] = Sha256::new()
            .chain_update(HYBRID_PQ_SEED_LABEL)
            .chain_update(seed)
            .finalize()
            .into();
        let key = HybridSecretKey::from_parts(bls, pq_seed);
        zeroize::Zeroize::zeroize(&mut pq_seed);
        key
    }

    /// Both halves from operating-system randomness.
    pub fn generate() -> HybridSecretKey {
        let mut pq_seed = [0u8; 32];
        OsRng.fill_bytes(&mut pq_seed);
        let key = HybridSecretKey::from_parts(SecretKey::generate(), pq_seed);
        zeroize::Zeroize::zeroize(&mut pq_seed);
        key
    }

    /// The public key.
    pub fn public_key(&self) -> HybridPublicKey {
        HybridPublicKey {
            bls: self.bls_public,
            pq: self.pq.verifying_key(),
        }
    }

    /// Signs `msg` of kind `tag` with both schemes (see the module documentation).
    pub fn sign(&self, tag: Tag, msg: &[u8]) -> HybridSignature {
        let composite = composite_message(tag, msg);
        let bls = self.bls.sign_with_dst(HYBRID_DST, &composite);
        let input = post_quantum_input(&self.bls_public, &bls, &composite);
        // The context is the label (< 255 bytes), so sign_deterministic cannot fail on it;
        // ML-DSA's rejection loop failing has negligible probability.
        let pq = self
            .pq
            .sign_deterministic(&input, HYBRID_LABEL)
            .expect("context shorter than 255 bytes");
        HybridSignature { bls, pq }
    }

    /// Encoding: BLS scalar (32 bytes) then ML-DSA seed (32 bytes). Key material.
    pub fn to_bytes(&self) -> [u8; HYBRID_SECRET_KEY_BYTES] {
        let mut out = [0u8; HYBRID_SECRET_KEY_BYTES];
        out[..SECRET_KEY_BYTES].copy_from_slice(&self.bls.to_bytes());
        out[SECRET_KEY_BYTES..].copy_from_slice(&self.pq_seed);
        out
    }

    /// Decodes (BLS scalar validated; every ML-DSA seed is valid).
    pub fn from_bytes(bytes: &[u8]) -> Result<HybridSecretKey, CryptoError> {
        check_len("hybrid secret key", bytes, HYBRID_SECRET_KEY_BYTES)?;
        let bls = SecretKey::from_bytes(&bytes[..SECRET_KEY_BYTES])?;
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[SECRET_KEY_BYTES..]);
        Ok(HybridSecretKey::from_parts(bls, *seed))
    }
}

/// A BLS public key and an ML-DSA-65 verifying key.
#[derive(Clone, Debug, PartialEq)]
pub struct HybridPublicKey {
    bls: PublicKey,
    pq: VerifyingKey<MlDsa65>,
}

impl HybridPublicKey {
    /// The BLS half.
    pub fn bls(&self) -> &PublicKey {
        &self.bls
    }

    /// Verifies both halves; both must pass. The ML-DSA half is checked over this key's BLS
    /// half and the signature's BLS half, so halves of different keys never combine.
    pub fn verify(&self, tag: Tag, msg: &[u8], sig: &HybridSignature) -> Result<(), CryptoError> {
        let composite = composite_message(tag, msg);
        self.bls.verify_with_dst(HYBRID_DST, &composite, &sig.bls)?;
        let input = post_quantum_input(&self.bls, &sig.bls, &composite);
        if !self.pq.verify_with_context(&input, HYBRID_LABEL, &sig.pq) {
            return Err(CryptoError::InvalidPostQuantumSignature);
        }
        Ok(())
    }

    /// Encoding: BLS key (48 bytes) then ML-DSA-65 key (1952 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HYBRID_PUBLIC_KEY_BYTES);
        out.extend_from_slice(&self.bls.to_bytes());
        out.extend_from_slice(&self.pq.to_bytes());
        out
    }

    /// Decodes both halves; the ML-DSA key must re-encode to the same bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<HybridPublicKey, CryptoError> {
        const KIND: &str = "ML-DSA-65 public key";
        check_len("hybrid public key", bytes, HYBRID_PUBLIC_KEY_BYTES)?;
        let bls = PublicKey::from_bytes(&bytes[..PUBLIC_KEY_BYTES])?;
        let enc = EncodedVerifyingKey::<MlDsa65>::try_from(&bytes[PUBLIC_KEY_BYTES..])
            .map_err(|_| CryptoError::NonCanonical { kind: KIND })?;
        let pq = VerifyingKey::<MlDsa65>::decode(&enc);
        if pq.encode() != enc {
            return Err(CryptoError::NonCanonical { kind: KIND });
        }
        Ok(HybridPublicKey { bls, pq })
    }
}

/// A BLS signature and an ML-DSA-65 signature over the same tagged message.
#[derive(Clone, Debug, PartialEq)]
pub struct HybridSignature {
    bls: Signature,
    pq: ml_dsa::Signature<MlDsa65>,
}

impl HybridSignature {
    /// The BLS half.
    pub fn bls(&self) -> &Signature {
        &self.bls
    }

    /// Encoding: BLS signature (96 bytes) then ML-DSA-65 signature (3309 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HYBRID_SIGNATURE_BYTES);
        out.extend_from_slice(&self.bls.to_bytes());
        out.extend_from_slice(&self.pq.encode());
        out
    }

    /// Decodes both halves; the ML-DSA signature must be well-formed (hint encoding, norm
    /// bound) and re-encode to the same bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<HybridSignature, CryptoError> {
        const KIND: &str = "ML-DSA-65 signature";
        check_len("hybrid signature", bytes, HYBRID_SIGNATURE_BYTES)?;
        let bls = Signature::from_bytes(&bytes[..SIGNATURE_BYTES])?;
        let enc = EncodedSignature::<MlDsa65>::try_from(&bytes[SIGNATURE_BYTES..])
            .map_err(|_| CryptoError::NonCanonical { kind: KIND })?;
        let pq = ml_dsa::Signature::<MlDsa65>::decode(&enc)
            .ok_or(CryptoError::NonCanonical { kind: KIND })?;
        if pq.encode() != enc {
            return Err(CryptoError::NonCanonical { kind: KIND });
        }
        Ok(HybridSignature { bls, pq })
    }
}
