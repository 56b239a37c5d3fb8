//! Threshold ECDSA on secp256k1 (CGGMP21, with the audited `cggmp21` crate).
//!
//! The committee signs as one secp256k1 key that no replica ever holds: a dealerless t-of-n
//! key generation ([`protocol::keygen`]) gives each party a share of the key, auxiliary info
//! ([`protocol::aux_info`]) gives each a Paillier key with the zero-knowledge setup the signing
//! proofs need, and any t parties run the presigning rounds ([`protocol::presign`]); the online
//! step is then one round: each signer issues a partial signature of the digest and anyone
//! combines them ([`protocol::combine`]). A signature is an ordinary (r, s, v) that any
//! Ethereum or Bitcoin tool verifies ([`RecoverableSignature`], checked here with `k256`, not
//! with the MPC crate).
//!
//! - [`delivery`]: drives the parties' state machines in one process.
//! - [`protocol`]: keygen, aux info, presign, sign, and who to blame when a run aborts.
//! - [`refresh`]: new shares of the same key (the crate has no threshold key refresh).
//! - [`attest`]: checkpoint attestations in the EIP-191 form a contract checks with `ecrecover`.
//! - [`files`]: share files (secrets, mode 0600) and the group's public file.

pub mod attest;
pub mod delivery;
pub mod files;
pub mod protocol;
pub mod refresh;

use cggmp21::generic_ec::Point;
use k256::ecdsa::{RecoveryId, Signature as K256Signature, VerifyingKey};
use sha3::{Digest as _, Keccak256};
use thiserror::Error;

pub use cggmp21::supported_curves::Secp256k1;

/// A party's complete key share: its secret share, every party's public share and the
/// Paillier keys (own secret, others' public).
pub type KeyShare = cggmp21::KeyShare<Secp256k1>;
/// A party's share before the auxiliary info is attached.
pub type IncompleteKeyShare = cggmp21::IncompleteKeyShare<Secp256k1>;
/// A party's Paillier secret key and every party's public Paillier key and ring-Pedersen setup.
pub type AuxInfo = cggmp21::key_share::AuxInfo;
/// Two safe primes for one party's Paillier key (1536 bits each at the 128-bit level).
pub type Primes = cggmp21::PregeneratedPrimes;

/// Most parties a threshold ECDSA key is shared among (each signer runs a Paillier proof per
/// other signer, so costs grow with the square of the count).
pub const ECDSA_PARTIES_MAX: u16 = 64;

/// Why a threshold ECDSA operation failed.
#[derive(Debug, Error)]
pub enum EcdsaError {
    /// Threshold and party count are not 2 <= t <= n <= [`ECDSA_PARTIES_MAX`].
    #[error("threshold {threshold} of {parties} parties: need 2 <= threshold <= parties <= {max}")]
    BadParams {
        threshold: u16,
        parties: u16,
        max: u16,
    },
    /// Not exactly `threshold` distinct, known signers.
    #[error(
        "signing needs exactly {threshold} distinct signers out of {parties}, got {signers:?}"
    )]
    BadSigners {
        signers: Vec<u16>,
        threshold: u16,
        parties: u16,
    },
    /// The shares given do not belong to one key or do not match the signer list.
    #[error("inconsistent key shares: {0}")]
    InconsistentShares(String),
    /// A protocol run did not complete.
    #[error("{protocol} aborted; blamed parties (keygen indices): {blamed:?}; {detail}")]
    Aborted {
        protocol: &'static str,
        /// Parties named by most of the aborting parties as having sent a message that failed
        /// a proof or a broadcast check (empty when none was named).
        blamed: Vec<u16>,
        detail: String,
    },
    /// The combined signature does not verify under the group key.
    #[error("the combined signature does not verify under the group key")]
    InvalidSignature,
    /// A signature, key or address does not decode or does not match.
    #[error("verification failed: {0}")]
    Verify(String),
    /// A file's contents are malformed.
    #[error("{0}")]
    Format(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    KeyFile(#[from] crate::keyfile::KeyFileError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Two fresh safe primes for one party's Paillier key, from the operating system's random
/// number generator. Slow: tens of seconds to minutes per pair (see perf/results/crypto.md).
pub fn generate_primes() -> Primes {
    Primes::generate(&mut rand_core::OsRng)
}

/// Checks 2 <= t <= n <= [`ECDSA_PARTIES_MAX`] (cggmp21 needs t >= 2).
pub fn check_params(threshold: u16, parties: u16) -> Result<(), EcdsaError> {
    if threshold < 2 || threshold > parties || parties > ECDSA_PARTIES_MAX {
        return Err(EcdsaError::BadParams {
            threshold,
            parties,
            max: ECDSA_PARTIES_MAX,
        });
    }
    Ok(())
}

/// The global quorum q = ceil((n + f + 1) / 2) with f = floor((n - 1) / 3): the default
/// threshold, so that a signature means a quorum of replicas agreed.
pub fn default_threshold(parties: u16) -> u16 {
    let n = u32::from(parties);
    let f = n.saturating_sub(1) / 3;
    u16::try_from((n + f + 2) / 2).expect("at most n")
}

/// The committee's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupKey(VerifyingKey);

impl GroupKey {
    /// The group key of a share.
    pub fn of_share(share: &KeyShare) -> Self {
        Self::from_point(&share.shared_public_key)
    }

    fn from_point(point: &Point<Secp256k1>) -> Self {
        let bytes = point.to_bytes(true);
        Self(VerifyingKey::from_sec1_bytes(bytes.as_ref()).expect("a non-zero curve point"))
    }

    /// Decodes a compressed (33 bytes) or uncompressed (65 bytes) SEC1 key.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, EcdsaError> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|_| EcdsaError::Verify("not a secp256k1 public key".into()))
    }

    /// Compressed SEC1 encoding (33 bytes).
    pub fn compressed(&self) -> [u8; 33] {
        let point = self.0.to_encoded_point(true);
        point.as_bytes().try_into().expect("33 bytes compressed")
    }

    /// The Ethereum address: the last 20 bytes of keccak256 of the uncompressed point's x || y.
    pub fn address(&self) -> [u8; 20] {
        let point = self.0.to_encoded_point(false);
        let hash = Keccak256::digest(&point.as_bytes()[1..]);
        hash[12..].try_into().expect("20 bytes")
    }

    /// The `k256` verifying key (an implementation independent of the MPC crate).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

/// An ECDSA signature with its recovery id: what `ecrecover` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverableSignature {
    /// Big-endian r.
    pub r: [u8; 32],
    /// Big-endian s, in the lower half of the group order.
    pub s: [u8; 32],
    /// Recovery id, 0 or 1 (Ethereum's v is 27 + this).
    pub recovery_id: u8,
}

impl RecoverableSignature {
    /// Ethereum's v (27 or 28).
    pub fn v(&self) -> u8 {
        27 + self.recovery_id
    }

    /// r || s || v: the 65-byte form Ethereum tools print.
    pub fn to_rsv(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = self.v();
        out
    }

    /// Checks the signature of `digest` under `key` with `k256`, requires low s, and finds the
    /// recovery id by recovering `key` from (r, s).
    pub fn from_verified(
        key: &GroupKey,
        digest: &[u8; 32],
        r: [u8; 32],
        s: [u8; 32],
    ) -> Result<Self, EcdsaError> {
        let sig = k256_signature(&r, &s)?;
        key.0
            .verify_prehash_checked(digest, &sig)
            .map_err(|_| EcdsaError::InvalidSignature)?;
        let id = RecoveryId::trial_recovery_from_prehash(&key.0, digest, &sig)
            .map_err(|_| EcdsaError::InvalidSignature)?;
        Ok(Self {
            r,
            s,
            recovery_id: id.to_byte(),
        })
    }

    /// Recovers the signer's key from the digest and (r, s, v), the way `ecrecover` does, and
    /// checks it with `k256`'s verifier. High s is refused (EIP-2).
    pub fn recover(&self, digest: &[u8; 32]) -> Result<GroupKey, EcdsaError> {
        let sig = k256_signature(&self.r, &self.s)?;
        let id = RecoveryId::from_byte(self.recovery_id)
            .filter(|id| !id.is_x_reduced())
            .ok_or_else(|| EcdsaError::Verify("recovery id must be 0 or 1 (v 27 or 28)".into()))?;
        let key = VerifyingKey::recover_from_prehash(digest, &sig, id)
            .map_err(|_| EcdsaError::Verify("no key recovers from this signature".into()))?;
        key.verify_prehash_checked(digest, &sig)
            .map_err(|_| EcdsaError::InvalidSignature)?;
        Ok(GroupKey(key))
    }
}

trait VerifyPrehashChecked {
    fn verify_prehash_checked(&self, digest: &[u8; 32], sig: &K256Signature) -> Result<(), ()>;
}

impl VerifyPrehashChecked for VerifyingKey {
    fn verify_prehash_checked(&self, digest: &[u8; 32], sig: &K256Signature) -> Result<(), ()> {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        self.verify_prehash(digest, sig).map_err(|_| ())
    }
}

fn k256_signature(r: &[u8; 32], s: &[u8; 32]) -> Result<K256Signature, EcdsaError> {
    let sig = K256Signature::from_scalars(*r, *s)
        .map_err(|_| EcdsaError::Verify("r or s is zero or not below the group order".into()))?;
    if sig.normalize_s().is_some() {
        return Err(EcdsaError::Verify(
            "s is not in the lower half (EIP-2)".into(),
        ));
    }
    Ok(sig)
}

/// Checks a signature of `digest` against an Ethereum address (the only trust anchor a chain
/// has) and returns the recovered group key.
pub fn verify_against_address(
    address: &[u8; 20],
    digest: &[u8; 32],
    sig: &RecoverableSignature,
) -> Result<GroupKey, EcdsaError> {
    let key = sig.recover(digest)?;
    if &key.address() != address {
        return Err(EcdsaError::Verify(format!(
            "signed by {}, not by {}",
            eth_address_hex(&key.address()),
            eth_address_hex(address)
        )));
    }
    Ok(key)
}

/// `0x` and 40 lower-case hex digits.
pub fn eth_address_hex(address: &[u8; 20]) -> String {
    format!("0x{}", crate::hex::encode(address))
}

/// Parses an address with or without `0x` (case is ignored: no EIP-55 checksum check).
pub fn parse_eth_address(text: &str) -> Result<[u8; 20], EcdsaError> {
    let hex = text.strip_prefix("0x").unwrap_or(text).to_ascii_lowercase();
    crate::hex::decode(&hex)
        .ok()
        .and_then(|b| <[u8; 20]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| EcdsaError::Format(format!("{text:?} is not a 20-byte hex address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threshold_is_the_global_quorum() {
        for (n, q) in [(4, 3), (5, 4), (6, 4), (7, 5), (10, 7), (13, 9), (21, 14)] {
            assert_eq!(default_threshold(n), q, "n = {n}");
        }
    }

    #[test]
    fn address_of_a_known_key() {
        // Private key 1: its address is well known.
        let sk = k256::ecdsa::SigningKey::from_slice(&{
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        })
        .unwrap();
        let key = GroupKey(*sk.verifying_key());
        assert_eq!(
            eth_address_hex(&key.address()),
            "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
        assert_eq!(
            parse_eth_address("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf").unwrap(),
            key.address()
        );
        assert!(parse_eth_address("0x7e5f").is_err());
    }

    #[test]
    fn params_are_checked() {
        assert!(check_params(5, 7).is_ok());
        assert!(check_params(1, 7).is_err());
        assert!(check_params(8, 7).is_err());
        assert!(check_params(2, ECDSA_PARTIES_MAX + 1).is_err());
    }
}
