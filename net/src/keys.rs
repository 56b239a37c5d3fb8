//! Ed25519 link keys: one per replica, pinned in the cluster file, separate from the BLS
//! consensus keys. The key pair is the RFC 8032 seed; the public key is checked strictly
//! (canonical, not of small order) by `ccbft_crypto::client`.

use ccbft_crypto::client::{ClientPublicKey, ClientSigningKey};
use ccbft_crypto::hex;

/// Bytes of a link public key.
pub const LINK_PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of a link secret key (the Ed25519 seed).
pub const LINK_SECRET_KEY_BYTES: usize = 32;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (32 bytes) }.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410): version 0, the algorithm, and
/// the seed as an OCTET STRING inside the privateKey OCTET STRING.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("link key is not valid hex or has the wrong length")]
    Encoding,
    #[error("link public key rejected: {0}")]
    Invalid(String),
}

/// A link public key, validated.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkPublicKey([u8; LINK_PUBLIC_KEY_BYTES]);

impl std::fmt::Debug for LinkPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkPublicKey({})", &self.to_hex()[..16])
    }
}

impl LinkPublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<LinkPublicKey, KeyError> {
        let key =
            ClientPublicKey::from_bytes(bytes).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(LinkPublicKey(key.to_bytes()))
    }

    pub fn from_hex(text: &str) -> Result<LinkPublicKey, KeyError> {
        let bytes = hex::decode(text).map_err(|_| KeyError::Encoding)?;
        LinkPublicKey::from_bytes(&bytes)
    }

    pub fn to_bytes(&self) -> [u8; LINK_PUBLIC_KEY_BYTES] {
        self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The key as an RFC 7250 raw public key (SubjectPublicKeyInfo DER).
    pub fn to_spki_der(&self) -> [u8; 44] {
        let mut out = [0u8; 44];
        out[..12].copy_from_slice(&SPKI_PREFIX);
        out[12..].copy_from_slice(&self.0);
        out
    }

    /// Parses a SubjectPublicKeyInfo that must be exactly an Ed25519 key.
    pub fn from_spki_der(der: &[u8]) -> Option<LinkPublicKey> {
        if der.len() != 44 || der[..12] != SPKI_PREFIX {
            return None;
        }
        LinkPublicKey::from_bytes(&der[12..]).ok()
    }
}

/// A link secret key. `Debug` never prints it.
#[derive(Clone)]
pub struct LinkSecretKey {
    seed: ClientSigningKey,
    public: LinkPublicKey,
}

impl std::fmt::Debug for LinkSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkSecretKey(<redacted>, {:?})", self.public)
    }
}

impl LinkSecretKey {
    pub fn generate() -> LinkSecretKey {
        LinkSecretKey::from_signing_key(ClientSigningKey::generate())
    }

    /// Deterministic key from a seed (tests and simulation).
    pub fn from_seed(seed: &[u8; LINK_SECRET_KEY_BYTES]) -> LinkSecretKey {
        LinkSecretKey::from_signing_key(ClientSigningKey::from_seed(seed))
    }

    fn from_signing_key(seed: ClientSigningKey) -> LinkSecretKey {
        let public = LinkPublicKey(seed.public_key().to_bytes());
        LinkSecretKey { seed, public }
    }

    pub fn from_hex(text: &str) -> Result<LinkSecretKey, KeyError> {
        let bytes = hex::decode(text).map_err(|_| KeyError::Encoding)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Encoding)?;
        Ok(LinkSecretKey::from_seed(&seed))
    }

    /// The seed as hex. Key material.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.seed.to_bytes())
    }

    pub fn public_key(&self) -> LinkPublicKey {
        self.public
    }

    /// PKCS#8 v1 DER of the key, as rustls loads it.
    pub(crate) fn to_pkcs8_der(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..16].copy_from_slice(&PKCS8_PREFIX);
        out[16..].copy_from_slice(&self.seed.to_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trip_and_rejects() {
        let k = LinkSecretKey::from_seed(&[9u8; 32]).public_key();
        assert_eq!(LinkPublicKey::from_spki_der(&k.to_spki_der()), Some(k));
        let mut bad = k.to_spki_der();
        bad[8] ^= 1; // another algorithm OID
        assert_eq!(LinkPublicKey::from_spki_der(&bad), None);
        assert_eq!(LinkPublicKey::from_spki_der(&bad[..43]), None);
        // The identity point is a small-order key: refused.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(LinkPublicKey::from_bytes(&ident).is_err());
        let s = LinkSecretKey::from_seed(&[9u8; 32]);
        assert_eq!(
            LinkSecretKey::from_hex(&s.to_hex()).unwrap().public_key(),
            k
        );
        assert!(!format!("{s:?}").contains(&s.to_hex()));
    }
}
