//! BLS signatures on BLS12-381 with `blst`, min_pk variant: public keys in G1 (48 bytes
//! compressed), signatures in G2 (96 bytes compressed).
//!
//! Scheme: the proof-of-possession scheme of draft-irtf-cfrg-bls-signature-05 (section 3.3).
//! Every key is registered with a [`ProofOfPossession`] (a signature over the key's own bytes
//! under a separate domain separation tag), which is what makes same-message aggregation safe
//! against rogue-key attacks. Every signed message carries a [`Tag`]; each tag has its own
//! hash-to-curve domain separation tag, so a signature of one kind never verifies as another.
//!
//! Every value from `from_bytes` is validated once (canonical compressed encoding, on the
//! curve, in the prime-order subgroup, not the point at infinity); later verifications can
//! therefore skip the subgroup checks.

use crate::error::{check_len, CryptoError};
use blst::min_pk as raw;
use blst::{blst_p1_affine, blst_p2_affine, Pairing, BLST_ERROR};
use rand_core::{OsRng, RngCore};

/// Bytes of a secret key (big-endian scalar).
pub const SECRET_KEY_BYTES: usize = 32;
/// Bytes of a compressed public key (G1).
pub const PUBLIC_KEY_BYTES: usize = 48;
/// Bytes of a compressed signature, aggregate or proof of possession (G2).
pub const SIGNATURE_BYTES: usize = 96;

/// Domain separation tag of proofs of possession (never used for protocol messages).
pub const POP_DST: &[u8] = b"CCBFT-V1_BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Domain separation tag of the BLS half of a hybrid signature ([`crate::hybrid`]). No
/// [`Tag`] uses it, so a BLS half stripped from a hybrid never verifies as a plain signature.
pub const HYBRID_DST: &[u8] =
    b"CCBFT-V1-HYBRID-BLS12381-MLDSA65_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Key-generation info string for [`SecretKey::from_seed`] and [`SecretKey::generate`].
const KEYGEN_INFO: &[u8] = b"CCBFT-V1-BLS-KEYGEN";

/// The kind of a signed message. Each kind hashes to the curve under its own domain
/// separation tag, so a local vote can never be replayed as a global vote, a timeout or a
/// checkpoint signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tag {
    /// Commit vote of the local PBFT tier (aggregated into a local certificate, LC).
    LocalVote = 1,
    /// Vote of the global HotStuff tier (aggregated into a quorum certificate, QC).
    GlobalVote = 2,
    /// Timeout vote of the pacemaker (aggregated into a timeout certificate, TC).
    Timeout = 3,
    /// Checkpoint (state root) signature.
    Checkpoint = 4,
    /// Block or batch proposal by a leader or shard primary.
    Proposal = 5,
    /// Entry of the DORA audit trail.
    AuditTrail = 6,
    /// Receipt handed to a client or third party.
    Receipt = 7,
}

impl Tag {
    /// Every tag, in wire order.
    pub const ALL: [Tag; 7] = [
        Tag::LocalVote,
        Tag::GlobalVote,
        Tag::Timeout,
        Tag::Checkpoint,
        Tag::Proposal,
        Tag::AuditTrail,
        Tag::Receipt,
    ];

    /// The hash-to-curve domain separation tag of this message kind.
    pub const fn dst(self) -> &'static [u8] {
        match self {
            Tag::LocalVote => b"CCBFT-V1-LOCAL-VOTE_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
            Tag::GlobalVote => b"CCBFT-V1-GLOBAL-VOTE_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
            Tag::Timeout => b"CCBFT-V1-TIMEOUT_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
            Tag::Checkpoint => b"CCBFT-V1-CHECKPOINT_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
            Tag::Proposal => b"CCBFT-V1-PROPOSAL_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
            Tag::AuditTrail => b"CCBFT-V1-AUDIT-TRAIL_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
            Tag::Receipt => b"CCBFT-V1-RECEIPT_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_",
        }
    }

    /// Position of the tag in [`Tag::ALL`] (0-based).
    pub const fn position(self) -> usize {
        self as usize - 1
    }

    /// The wire byte of the tag.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// Decodes a wire byte.
    pub fn from_u8(byte: u8) -> Result<Tag, CryptoError> {
        Tag::ALL
            .iter()
            .copied()
            .find(|tag| tag.to_u8() == byte)
            .ok_or(CryptoError::NonCanonical { kind: "tag" })
    }
}

pub(crate) fn map_blst(kind: &'static str, err: BLST_ERROR) -> CryptoError {
    match err {
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => CryptoError::NotInSubgroup { kind },
        BLST_ERROR::BLST_PK_IS_INFINITY => CryptoError::Infinity { kind },
        BLST_ERROR::BLST_VERIFY_FAIL => CryptoError::InvalidSignature,
        _ => CryptoError::NonCanonical { kind },
    }
}

/// One signature check `e(g1, sig) == e(pk, H(msg))` on the calling thread. (blst's own
/// `Signature::verify` hands the work to blst's internal thread pool; the replica decides
/// where verification runs, so this crate never uses that pool.) Points must be validated.
fn verify_raw(pk: &raw::PublicKey, sig: &raw::Signature, dst: &[u8], msg: &[u8]) -> bool {
    let pk_aff: blst_p1_affine = (*pk).into();
    let sig_aff: blst_p2_affine = (*sig).into();
    let mut ctx = Pairing::new(true, dst);
    if ctx.aggregate(&pk_aff, false, &sig_aff, false, msg, &[]) != BLST_ERROR::BLST_SUCCESS {
        return false;
    }
    ctx.commit();
    ctx.finalverify(None)
}

/// A BLS secret key. `Debug` never prints the key.
#[derive(Clone)]
pub struct SecretKey(raw::SecretKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(<redacted>, pk={:?})", self.public_key())
    }
}

impl SecretKey {
    /// Derives a key deterministically from a 32-byte seed (KeyGen of the BLS draft, HKDF
    /// based). Meant for tests and the simulator; production keys come from [`Self::generate`].
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey::from_seed_with_info(seed, KEYGEN_INFO)
    }

    /// KeyGen under another info string: keys of other schemes (the hybrid's BLS half) are
    /// derived under their own label, so one seed never yields the same key for both.
    pub(crate) fn from_seed_with_info(seed: &[u8; 32], info: &[u8]) -> SecretKey {
        let sk = raw::SecretKey::key_gen(seed, info);
        // key_gen fails only for input keying material shorter than 32 bytes.
        SecretKey(sk.expect("32 bytes of input keying material"))
    }

    /// Generates a key from operating-system randomness.
    ///
    /// # Panics
    /// If the operating system's random number generator fails (a local fault, not input).
    pub fn generate() -> SecretKey {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let sk = SecretKey::from_seed(&seed);
        zeroize::Zeroize::zeroize(&mut seed);
        sk
    }

    /// Wraps an already validated scalar (threshold shares).
    pub(crate) fn from_raw(sk: raw::SecretKey) -> SecretKey {
        SecretKey(sk)
    }

    /// The public key of this secret key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    /// Signs `msg` as a message of kind `tag`.
    pub fn sign(&self, tag: Tag, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg, tag.dst(), &[]))
    }

    /// Signs under a domain separation tag that is not a [`Tag`] (the hybrid's own).
    pub(crate) fn sign_with_dst(&self, dst: &[u8], msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg, dst, &[]))
    }

    /// The proof of possession of this key: a signature over the compressed public key under
    /// [`POP_DST`].
    pub fn proof_of_possession(&self) -> ProofOfPossession {
        let pk = self.public_key().to_bytes();
        ProofOfPossession(Signature(self.0.sign(&pk, POP_DST, &[])))
    }

    /// The big-endian scalar. Key material: store it with care (mode 0600).
    pub fn to_bytes(&self) -> [u8; SECRET_KEY_BYTES] {
        self.0.to_bytes()
    }

    /// Decodes a big-endian scalar; rejects zero and values not below the group order.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, CryptoError> {
        check_len("secret key", bytes, SECRET_KEY_BYTES)?;
        raw::SecretKey::from_bytes(bytes)
            .map(SecretKey)
            .map_err(|e| map_blst("secret key", e))
    }
}

/// A validated BLS public key (G1, not infinity, in the subgroup).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(raw::PublicKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.to_bytes();
        write!(f, "PublicKey({}..)", crate::hex::encode(&bytes[..8]))
    }
}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

impl PublicKey {
    /// Decodes a 48-byte compressed key: canonical, on the curve, in the subgroup, not infinity.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, CryptoError> {
        const KIND: &str = "public key";
        check_len(KIND, bytes, PUBLIC_KEY_BYTES)?;
        let pk = raw::PublicKey::uncompress(bytes).map_err(|e| map_blst(KIND, e))?;
        pk.validate().map_err(|e| map_blst(KIND, e))?;
        if pk.compress()[..] != bytes[..] {
            return Err(CryptoError::NonCanonical { kind: KIND });
        }
        Ok(PublicKey(pk))
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_BYTES] {
        self.0.compress()
    }

    /// Verifies a signature of kind `tag` over `msg`.
    pub fn verify(&self, tag: Tag, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        // Both points were validated when built or decoded: skip the subgroup checks.
        if verify_raw(&self.0, &sig.0, tag.dst(), msg) {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature)
        }
    }

    /// Verifies under a domain separation tag that is not a [`Tag`] (the hybrid's own).
    pub(crate) fn verify_with_dst(
        &self,
        dst: &[u8],
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        if verify_raw(&self.0, &sig.0, dst, msg) {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature)
        }
    }

    /// Sum of public keys. Only meaningful for keys whose proofs of possession were checked
    /// (a [`crate::certificate::Committee`] does that); otherwise rogue keys can cancel others.
    pub fn aggregate(keys: &[&PublicKey]) -> Result<PublicKey, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::TooFewSigners { got: 0, need: 1 });
        }
        let raws: Vec<&raw::PublicKey> = keys.iter().map(|k| &k.0).collect();
        let agg = raw::AggregatePublicKey::aggregate(&raws, false)
            .map_err(|e| map_blst("aggregate public key", e))?;
        let pk = agg.to_public_key();
        pk.validate()
            .map_err(|e| map_blst("aggregate public key", e))?;
        Ok(PublicKey(pk))
    }

    pub(crate) fn raw(&self) -> &raw::PublicKey {
        &self.0
    }

    pub(crate) fn from_raw_validated(pk: raw::PublicKey) -> Result<PublicKey, CryptoError> {
        pk.validate().map_err(|e| map_blst("public key", e))?;
        Ok(PublicKey(pk))
    }
}

/// A validated BLS signature or aggregate signature (G2, not infinity, in the subgroup).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(raw::Signature);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.to_bytes();
        write!(f, "Signature({}..)", crate::hex::encode(&bytes[..8]))
    }
}

impl Signature {
    /// Decodes a 96-byte compressed signature: canonical, on the curve, in the subgroup, not
    /// infinity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signature, CryptoError> {
        Self::decode("signature", bytes)
    }

    fn decode(kind: &'static str, bytes: &[u8]) -> Result<Signature, CryptoError> {
        check_len(kind, bytes, SIGNATURE_BYTES)?;
        let sig = raw::Signature::uncompress(bytes).map_err(|e| map_blst(kind, e))?;
        sig.validate(true).map_err(|e| map_blst(kind, e))?;
        if sig.compress()[..] != bytes[..] {
            return Err(CryptoError::NonCanonical { kind });
        }
        Ok(Signature(sig))
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        self.0.compress()
    }

    /// Sum of signatures (all over the same message, or distinct messages for aggregate
    /// verification). Fails on an empty slice or if the sum is the point at infinity.
    pub fn aggregate(sigs: &[Signature]) -> Result<Signature, CryptoError> {
        let refs: Vec<&Signature> = sigs.iter().collect();
        Self::aggregate_refs(&refs)
    }

    pub(crate) fn aggregate_refs(sigs: &[&Signature]) -> Result<Signature, CryptoError> {
        if sigs.is_empty() {
            return Err(CryptoError::TooFewSigners { got: 0, need: 1 });
        }
        let raws: Vec<&raw::Signature> = sigs.iter().map(|s| &s.0).collect();
        let agg = raw::AggregateSignature::aggregate(&raws, false)
            .map_err(|e| map_blst("aggregate signature", e))?;
        let sig = agg.to_signature();
        sig.validate(true)
            .map_err(|e| map_blst("aggregate signature", e))?;
        Ok(Signature(sig))
    }

    pub(crate) fn raw(&self) -> &raw::Signature {
        &self.0
    }

    pub(crate) fn from_raw_validated(sig: raw::Signature) -> Result<Signature, CryptoError> {
        sig.validate(true).map_err(|e| map_blst("signature", e))?;
        Ok(Signature(sig))
    }
}

/// Proof that the holder of a public key knows its secret key (a signature over the key's
/// compressed bytes under [`POP_DST`]). Checked once, when the key joins a committee.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProofOfPossession(Signature);

impl ProofOfPossession {
    /// Verifies the proof for `pk`.
    pub fn verify(&self, pk: &PublicKey) -> Result<(), CryptoError> {
        let msg = pk.to_bytes();
        if verify_raw(&pk.0, &self.0 .0, POP_DST, &msg) {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature)
        }
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        self.0.to_bytes()
    }

    /// Decodes and validates the point (the proof itself is checked by [`Self::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<ProofOfPossession, CryptoError> {
        Signature::decode("proof of possession", bytes).map(ProofOfPossession)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_have_distinct_dsts_and_round_trip() {
        for (i, a) in Tag::ALL.iter().enumerate() {
            assert_eq!(a.position(), i);
            assert_eq!(Tag::from_u8(a.to_u8()), Ok(*a));
            for b in &Tag::ALL[i + 1..] {
                assert_ne!(a.dst(), b.dst());
            }
            assert_ne!(a.dst(), POP_DST);
            assert_ne!(a.dst(), HYBRID_DST);
        }
        assert_ne!(POP_DST, HYBRID_DST);
        assert!(Tag::from_u8(0).is_err());
        assert!(Tag::from_u8(8).is_err());
    }

    #[test]
    fn pop_does_not_verify_as_message_signature() {
        let sk = SecretKey::from_seed(&[7; 32]);
        let pk = sk.public_key();
        let pop = sk.proof_of_possession();
        pop.verify(&pk).unwrap();
        let as_sig = Signature::from_bytes(&pop.to_bytes()).unwrap();
        for tag in Tag::ALL {
            assert!(pk.verify(tag, &pk.to_bytes(), &as_sig).is_err());
        }
    }
}
