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

/// `kind` of a link secret key file.
pub const KIND_LINK_SECRET: &str = "ccbft-link-secret-key";
/// `kind` of a link public key file.
pub const KIND_LINK_PUBLIC: &str = "ccbft-link-public-key";

/// A link key file as `ccbft keygen` writes it (`replica-<i>.link.key` / `.link.pub`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LinkKeyFile {
    pub kind: String,
    pub replica: u32,
    /// Hex: the 32-byte seed in a secret file, the 32-byte public key in a public file.
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} has mode {mode:o}: a link secret key must not be readable or writable by group or others (chmod 600)")]
    Permissions { path: String, mode: u32 },
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
}

impl LinkKeyFile {
    pub fn secret(replica: u32, key: &LinkSecretKey) -> LinkKeyFile {
        LinkKeyFile {
            kind: KIND_LINK_SECRET.into(),
            replica,
            key: key.to_hex(),
        }
    }

    pub fn public(replica: u32, key: &LinkPublicKey) -> LinkKeyFile {
        LinkKeyFile {
            kind: KIND_LINK_PUBLIC.into(),
            replica,
            key: key.to_hex(),
        }
    }
}

fn read_key_file(path: &std::path::Path, kind: &str) -> Result<LinkKeyFile, KeyFileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: p.clone(),
        source,
    })?;
    let file: LinkKeyFile = serde_json::from_str(&text).map_err(|e| KeyFileError::Format {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    if file.kind != kind {
        return Err(KeyFileError::Format {
            path: p,
            reason: format!("kind is {:?}, expected {kind:?}", file.kind),
        });
    }
    Ok(file)
}

/// Reads a link secret key file, refusing one that group or others may read or write.
pub fn read_link_secret_key(path: &std::path::Path) -> Result<(u32, LinkSecretKey), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display().to_string();
    let mode = std::fs::metadata(path)
        .map_err(|source| KeyFileError::Io {
            path: p.clone(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: p, mode });
    }
    let file = read_key_file(path, KIND_LINK_SECRET)?;
    let key = LinkSecretKey::from_hex(&file.key).map_err(|e| KeyFileError::Format {
        path: p,
        reason: e.to_string(),
    })?;
    Ok((file.replica, key))
}

/// Reads a link public key file.
pub fn read_link_public_key(path: &std::path::Path) -> Result<(u32, LinkPublicKey), KeyFileError> {
    let file = read_key_file(path, KIND_LINK_PUBLIC)?;
    let key = LinkPublicKey::from_hex(&file.key).map_err(|e| KeyFileError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((file.replica, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_file_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica-3.link.key");
        let key = LinkSecretKey::from_seed(&[4u8; 32]);
        let text = serde_json::to_string(&LinkKeyFile::secret(3, &key)).unwrap();
        std::fs::write(&path, text).unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o620, false),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = read_link_secret_key(&path);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}");
            if let Ok((replica, k)) = r {
                assert_eq!((replica, k.public_key()), (3, key.public_key()));
            } else {
                assert!(matches!(r, Err(KeyFileError::Permissions { .. })));
            }
        }
        // A public key file is not a secret key file.
        let pub_path = dir.path().join("replica-3.link.pub");
        let text = serde_json::to_string(&LinkKeyFile::public(3, &key.public_key())).unwrap();
        std::fs::write(&pub_path, text).unwrap();
        std::fs::set_permissions(&pub_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_link_secret_key(&pub_path),
            Err(KeyFileError::Format { .. })
        ));
        assert_eq!(
            read_link_public_key(&pub_path).unwrap(),
            (3, key.public_key())
        );
    }

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
