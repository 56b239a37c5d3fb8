//! Share files and the group's public file.
//!
//! A share file (`ecdsa-share-<i>.key`) is JSON holding the whole cggmp21 key share (secret
//! share, Paillier secret key, everyone's public data), written with
//! [`crate::keyfile::write_secret_file`] (mode 0600, never replacing a file) and read only
//! through [`crate::keyfile::read_secret_file`] (refused if group or others may read it). The
//! encoding is built in a zeroizing buffer that is never reallocated. Reading validates the
//! share (its secret matches its public share, the public shares interpolate to the key).
//!
//! `ecdsa-group.json` is public: threshold, parties, the compressed group key, its Ethereum
//! address and each party's public share.

use super::{eth_address_hex, EcdsaError, GroupKey, KeyShare};
use crate::keyfile::{read_secret_file, write_secret_file, Zeroizing};
use cggmp21::key_share::AnyKeyShare as _;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Scheme name in the files and on the command line.
pub const SCHEME: &str = "ecdsa-secp256k1";
/// Name of the group's public file.
pub const GROUP_FILE: &str = "ecdsa-group.json";

/// Path of party i's share file in `dir`.
pub fn share_path(dir: &Path, i: u16) -> PathBuf {
    dir.join(format!("ecdsa-share-{i}.key"))
}

#[derive(Serialize, Deserialize)]
struct ShareFile<S> {
    scheme: String,
    share: S,
}

/// Writes a share file (mode 0600, refuses to replace an existing file).
pub fn write_share(path: &Path, share: &KeyShare) -> Result<(), EcdsaError> {
    let file = ShareFile {
        scheme: SCHEME.to_string(),
        share,
    };
    let mut capacity = 64 * 1024;
    loop {
        let mut buf = FixedBuf(Zeroizing::new(Vec::with_capacity(capacity)));
        match serde_json::to_writer(&mut buf, &file) {
            Ok(()) => return Ok(write_secret_file(path, &buf.0)?),
            Err(e) if e.is_io() => capacity *= 2,
            Err(e) => return Err(EcdsaError::Format(format!("encoding a share: {e}"))),
        }
    }
}

/// Reads and validates a share file written by [`write_share`].
pub fn read_share(path: &Path) -> Result<KeyShare, EcdsaError> {
    let bytes = read_secret_file(path)?;
    let file: ShareFile<KeyShare> = serde_json::from_slice(&bytes).map_err(|e| {
        EcdsaError::Format(format!(
            "{}: not a valid ECDSA share file: {e}",
            path.display()
        ))
    })?;
    if file.scheme != SCHEME {
        return Err(EcdsaError::Format(format!(
            "{}: scheme {:?}, expected {SCHEME:?}",
            path.display(),
            file.scheme
        )));
    }
    // Share files written before the CRT parameters were kept get them on read.
    super::protocol::with_crt(file.share)
}

/// A writer into a buffer that never grows, so no reallocation leaves a copy of a secret.
struct FixedBuf(Zeroizing<Vec<u8>>);

impl Write for FixedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.0.capacity() - self.0.len() < data.len() {
            return Err(std::io::Error::other("buffer full"));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The group's public file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFile {
    pub scheme: String,
    pub threshold: u16,
    pub parties: u16,
    /// Compressed SEC1 group key, hex.
    pub public_key: String,
    /// Ethereum address, `0x` hex.
    pub address: String,
    /// Each party's compressed public share, hex.
    pub public_shares: Vec<String>,
}

impl GroupFile {
    /// The public data of a share's key.
    pub fn of_share(share: &KeyShare) -> Self {
        let key = GroupKey::of_share(share);
        Self {
            scheme: SCHEME.to_string(),
            threshold: share.min_signers(),
            parties: share.n(),
            public_key: crate::hex::encode(&key.compressed()),
            address: eth_address_hex(&key.address()),
            public_shares: share
                .public_shares
                .iter()
                .map(|p| crate::hex::encode(p.to_bytes(true).as_ref()))
                .collect(),
        }
    }

    /// Writes `dir/ecdsa-group.json` (write, sync, rename).
    pub fn write(&self, dir: &Path) -> Result<(), EcdsaError> {
        let path = dir.join(GROUP_FILE);
        let tmp = dir.join(format!("{GROUP_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("plain data") + "\n";
        let io = |source| EcdsaError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io)
    }

    /// Reads and checks `dir/ecdsa-group.json` (the address must be the key's).
    pub fn read(path: &Path) -> Result<Self, EcdsaError> {
        let text = std::fs::read_to_string(path).map_err(|source| EcdsaError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let g: Self = serde_json::from_str(&text)
            .map_err(|e| EcdsaError::Format(format!("{}: {e}", path.display())))?;
        let key = g.group_key()?;
        if g.scheme != SCHEME || eth_address_hex(&key.address()) != g.address.to_ascii_lowercase() {
            return Err(EcdsaError::Format(format!(
                "{}: scheme or address does not match the public key",
                path.display()
            )));
        }
        Ok(g)
    }

    /// The decoded group key.
    pub fn group_key(&self) -> Result<GroupKey, EcdsaError> {
        let bytes = crate::hex::decode(&self.public_key)
            .map_err(|_| EcdsaError::Format("public_key is not hex".into()))?;
        GroupKey::from_sec1(&bytes)
    }
}
