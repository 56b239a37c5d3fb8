//! Post-quantum hybrid signatures for long-lived artefacts (checkpoints, the DORA audit
//! trail): a BLS signature and an ML-DSA-65 (FIPS 204) signature over the same tagged
//! message. A hybrid signature verifies only if both halves verify, so it stays unforgeable
//! as long as either scheme is unbroken.
//!
//! Crate: RustCrypto `ml-dsa` 0.1 (pure Rust, no C toolchain or system library, implements
//! the final FIPS 204 including the context string, maintained with the other RustCrypto
//! signature crates, builds here offline from crates.io, and its key and signature sizes
//! match FIPS 204: 1952-byte verifying keys and 3309-byte signatures for ML-DSA-65). The
//! ML-DSA half is signed with the deterministic variant of ML-DSA.Sign (FIPS 204 section
//! 3.4) so that simulations replay, with the message kind's domain separation tag as the
//! FIPS 204 context string.

use crate::bls::{
    PublicKey, SecretKey, Signature, Tag, PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, SIGNATURE_BYTES,
};
use crate::error::{check_len, CryptoError};
use ml_dsa::{
    EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, KeyExport, MlDsa65, VerifyingKey,
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

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
        HybridSecretKey { bls, pq_seed, pq }
    }

    /// Derives both halves from one seed (deterministic; tests and simulation). The halves
    /// use independent derivations (BLS KeyGen, SHA-256 with a distinct label).
    pub fn from_seed(seed: &[u8; 32]) -> HybridSecretKey {
        let bls = SecretKey::from_seed(seed);
        let pq_seed: [u8; 32] = Sha256::new()
            .chain_update(b"CCBFT-V1-ML-DSA-65-SEED")
            .chain_update(seed)
            .finalize()
            .into();
        HybridSecretKey::from_parts(bls, pq_seed)
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
            bls: self.bls.public_key(),
            pq: self.pq.verifying_key(),
        }
    }

    /// Signs `msg` of kind `tag` with both schemes.
    pub fn sign(&self, tag: Tag, msg: &[u8]) -> HybridSignature {
        let bls = self.bls.sign(tag, msg);
        // The context is the tag's DST (< 255 bytes), so sign_deterministic cannot fail on
        // it; ML-DSA's rejection loop failing has negligible probability.
        let pq = self
            .pq
            .sign_deterministic(msg, tag.dst())
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
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[SECRET_KEY_BYTES..]);
        Ok(HybridSecretKey::from_parts(bls, seed))
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

    /// Verifies both halves; both must pass.
    pub fn verify(&self, tag: Tag, msg: &[u8], sig: &HybridSignature) -> Result<(), CryptoError> {
        self.bls.verify(tag, msg, &sig.bls)?;
        if !self.pq.verify_with_context(msg, tag.dst(), &sig.pq) {
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
