//! The audit trail: every incident change, classification, report, test and register
//! version is appended to a hash-chained log, each entry signed.
//!
//! Layout of an audit directory:
//! - `audit.jsonl`: one [`Entry`] per line. `hash` = SHA-256 over the canonical JSON of
//!   (`seq`, `at`, `kind`, `subject`, `payload`, `prev_hash`); `prev_hash` is the previous
//!   entry's hash (64 zeros for the first); `signature` signs the hash; `algorithm` names
//!   the signature algorithm.
//! - `audit.head`: the signed latest (`seq`, `hash`), rewritten on each append, so that
//!   cutting entries off the end is detected too.
//! - `audit.pub`: the log header, `ALGORITHM PUBLIC-KEY-HEX`, written when the log is created.
//!   Every entry and the head must name the same algorithm; an algorithm this build does not
//!   know is refused with [`AuditError::UnknownAlgorithm`].
//!
//! [`verify_dir`] detects a changed, deleted, inserted or reordered entry and names the first
//! bad one. [`AuditLog::open`] refuses to append to a log whose chain or signed head is
//! broken (it checks the signatures of the last entry and the head only, see
//! [`Signatures::LastAndHead`]). Not detectable without an outside anchor: replacing the whole directory by an
//! older, consistent copy (publish the head elsewhere to close that).
//!
//! Signatures go through [`AuditSigner`] / [`AuditVerifier`]. The default is the
//! post-quantum hybrid of `ccbft-crypto` ([`HybridSigner`], algorithm [`ALG_HYBRID`]): a
//! BLS12-381 and an ML-DSA-65 signature over the entry hash, with the `AuditTrail` domain
//! tag; an entry is accepted only when both halves verify. Ed25519 ([`ALG_ED25519`]) is kept
//! so that logs created before the switch still verify and can be continued.

use crate::deadlines::rfc3339;
use ccbft_crypto::bls::Tag;
use ccbft_crypto::hybrid::{HybridPublicKey, HybridSecretKey, HybridSignature};
use ccbft_crypto::keyfile::{self, Zeroizing};
use ccbft_crypto::CryptoError;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroize;

pub const LOG_FILE: &str = "audit.jsonl";
pub const HEAD_FILE: &str = "audit.head";
pub const PUBKEY_FILE: &str = "audit.pub";
/// Hash that the first entry chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most entries verified in one log.
pub const ENTRIES_MAX: usize = 1_000_000;
/// Largest payload accepted in one entry (serialised bytes).
pub const PAYLOAD_BYTES_MAX: usize = 1024 * 1024;
/// Largest log file read by [`verify_dir`].
pub const LOG_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Largest `audit.pub`, `audit.head` or key file read.
pub const SMALL_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Algorithm name of the hybrid signature: BLS12-381 (min-pk, proof-of-possession scheme)
/// and ML-DSA-65 (FIPS 204), both over the entry hash with the `AuditTrail` tag.
pub const ALG_HYBRID: &str = "hybrid-bls12381-mldsa65";
/// Algorithm name of Ed25519 (logs created before the hybrid signer).
pub const ALG_ED25519: &str = "ed25519";
/// The algorithms [`verify_dir`] knows.
pub const ALGORITHMS: [&str; 2] = [ALG_HYBRID, ALG_ED25519];
/// `kind` of a hybrid secret key file (JSON, mode 0600).
pub const HYBRID_KEY_KIND: &str = "ccbft-hybrid-secret-key";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit I/O on {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("audit payload is {0} bytes, more than {PAYLOAD_BYTES_MAX}")]
    PayloadTooLarge(usize),
    #[error("audit key: {0}")]
    Key(String),
    #[error("unknown audit signature algorithm {algorithm:?} in {file} (this build verifies: {known})", known = ALGORITHMS.join(", "))]
    UnknownAlgorithm { algorithm: String, file: String },
    #[error("audit log is corrupt before appending: {0}")]
    Corrupt(String),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn read_small(path: &Path) -> Result<String, AuditError> {
    let size = std::fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    if size > SMALL_FILE_BYTES_MAX {
        return Err(io_err(
            path,
            format!("{size} bytes is more than {SMALL_FILE_BYTES_MAX}"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

/// Signs audit hashes.
pub trait AuditSigner {
    /// Algorithm name recorded in each entry, the head and `audit.pub`, e.g. [`ALG_HYBRID`].
    fn algorithm(&self) -> &'static str;
    /// Public key, hex, recorded in `audit.pub`.
    fn public_key_hex(&self) -> String;
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

impl<T: AuditSigner + ?Sized> AuditSigner for Box<T> {
    fn algorithm(&self) -> &'static str {
        (**self).algorithm()
    }
    fn public_key_hex(&self) -> String {
        (**self).public_key_hex()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        (**self).sign(message)
    }
}

/// Verifies audit signatures.
pub trait AuditVerifier {
    fn algorithm(&self) -> &'static str;
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.check(message, signature).is_ok()
    }
    /// Like [`AuditVerifier::verify`], with the reason of a rejection.
    fn check(&self, message: &[u8], signature: &[u8]) -> Result<(), String>;
}

/// The verifier for `algorithm` and a public key in hex (the two fields of `audit.pub`).
pub fn verifier_for(
    algorithm: &str,
    public_key_hex: &str,
) -> Result<Box<dyn AuditVerifier>, AuditError> {
    match algorithm {
        ALG_HYBRID => Ok(Box::new(HybridVerifier::from_hex(public_key_hex)?)),
        ALG_ED25519 => Ok(Box::new(Ed25519Verifier::from_hex(public_key_hex)?)),
        other => Err(AuditError::UnknownAlgorithm {
            algorithm: other.to_string(),
            file: PUBKEY_FILE.into(),
        }),
    }
}

/// Reads the header `audit.pub` of `dir`: (algorithm, public key hex).
pub fn read_header(dir: &Path) -> Result<(String, String), AuditError> {
    let path = dir.join(PUBKEY_FILE);
    let text = read_small(&path)?;
    let mut parts = text.split_whitespace();
    let algorithm = parts.next().unwrap_or("").to_string();
    let key = parts.next().unwrap_or("").to_string();
    if parts.next().is_some() {
        return Err(AuditError::Key(format!(
            "{PUBKEY_FILE} must hold two fields: algorithm and public key"
        )));
    }
    Ok((algorithm, key))
}

fn random_seed() -> Result<[u8; 32], AuditError> {
    let mut seed = [0u8; 32];
    let mut urandom =
        std::fs::File::open("/dev/urandom").map_err(|e| io_err(Path::new("/dev/urandom"), e))?;
    std::io::Read::read_exact(&mut urandom, &mut seed)
        .map_err(|e| io_err(Path::new("/dev/urandom"), e))?;
    Ok(seed)
}

/// Reads a secret key file through the crypto crate's one loader: no symbolic link, a regular
/// file, no permission bit for group or others (checked on the opened file), contents in a
/// zeroizing buffer.
fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    keyfile::read_secret_file(path).map_err(|e| AuditError::Key(e.to_string()))
}

/// The hybrid BLS12-381 + ML-DSA-65 signer of `ccbft-crypto` (the default).
pub struct HybridSigner {
    key: HybridSecretKey,
    public: HybridPublicKey,
}

#[derive(Serialize, Deserialize)]
struct HybridKeyFile {
    kind: String,
    /// `HybridSecretKey::to_bytes`, hex: BLS scalar then ML-DSA-65 seed.
    secret_key: String,
}

impl HybridSigner {
    pub fn new(key: HybridSecretKey) -> HybridSigner {
        let public = key.public_key();
        HybridSigner { key, public }
    }

    /// Deterministic key from a seed (tests and simulation only).
    pub fn from_seed(seed: [u8; 32]) -> HybridSigner {
        HybridSigner::new(HybridSecretKey::from_seed(&seed))
    }

    /// Load the key from `path` (JSON `{"kind": "ccbft-hybrid-secret-key", "secret_key":
    /// HEX}`, mode 0600), or create it from the OS random source (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<HybridSigner, AuditError> {
        if path.exists() {
            return HybridSigner::load(path);
        }
        let mut seed = random_seed()?;
        let key = HybridSecretKey::from_seed(&seed);
        seed.zeroize();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        let mut bytes = key.to_bytes();
        let mut text = serde_json::to_string_pretty(&HybridKeyFile {
            kind: HYBRID_KEY_KIND.into(),
            secret_key: to_hex(&bytes),
        })
        .expect("serialisable");
        bytes.zeroize();
        let written = write_private(path, &text);
        text.zeroize();
        written?;
        Ok(HybridSigner::new(key))
    }

    /// Load a key file written by [`HybridSigner::load_or_create`].
    pub fn load(path: &Path) -> Result<HybridSigner, AuditError> {
        let text = read_key_file(path)?;
        let parsed: Result<HybridKeyFile, _> = serde_json::from_slice(&text);
        drop(text);
        let mut file = parsed.map_err(|e| AuditError::Key(format!("{}: {e}", path.display())))?;
        if file.kind != HYBRID_KEY_KIND {
            file.secret_key.zeroize();
            return Err(AuditError::Key(format!(
                "{}: kind {:?}, expected {HYBRID_KEY_KIND:?}",
                path.display(),
                file.kind
            )));
        }
        let bytes = from_hex(&file.secret_key);
        file.secret_key.zeroize();
        let mut bytes = bytes
            .ok_or_else(|| AuditError::Key(format!("{}: secret_key is not hex", path.display())))?;
        let key = HybridSecretKey::from_bytes(&bytes);
        bytes.zeroize();
        let key = key.map_err(|e| AuditError::Key(format!("{}: {e}", path.display())))?;
        Ok(HybridSigner::new(key))
    }

    pub fn verifier(&self) -> HybridVerifier {
        HybridVerifier {
            key: self.public.clone(),
        }
    }
}

impl AuditSigner for HybridSigner {
    fn algorithm(&self) -> &'static str {
        ALG_HYBRID
    }
    fn public_key_hex(&self) -> String {
        to_hex(&self.public.to_bytes())
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(Tag::AuditTrail, message).to_bytes()
    }
}

/// Verifies hybrid signatures: both the BLS and the ML-DSA half must verify.
pub struct HybridVerifier {
    key: HybridPublicKey,
}

impl HybridVerifier {
    pub fn from_hex(text: &str) -> Result<HybridVerifier, AuditError> {
        let bytes =
            from_hex(text.trim()).ok_or_else(|| AuditError::Key("public key is not hex".into()))?;
        let key = HybridPublicKey::from_bytes(&bytes)
            .map_err(|e| AuditError::Key(format!("hybrid public key: {e}")))?;
        Ok(HybridVerifier { key })
    }
}

impl AuditVerifier for HybridVerifier {
    fn algorithm(&self) -> &'static str {
        ALG_HYBRID
    }
    fn check(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let sig = HybridSignature::from_bytes(signature)
            .map_err(|e| format!("malformed hybrid signature: {e}"))?;
        self.key
            .verify(Tag::AuditTrail, message, &sig)
            .map_err(|e| match e {
                CryptoError::InvalidPostQuantumSignature => {
                    "the ML-DSA-65 half does not verify".to_string()
                }
                CryptoError::InvalidSignature => "the BLS12-381 half does not verify".to_string(),
                other => other.to_string(),
            })
    }
}

/// Ed25519 signer: logs created before the hybrid signer; new logs use [`HybridSigner`].
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
}

impl Ed25519Signer {
    pub fn from_seed(seed: [u8; 32]) -> Ed25519Signer {
        Ed25519Signer {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Load the seed (64 hex characters) from `path`, or create it from the OS random
    /// source (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<Ed25519Signer, AuditError> {
        if path.exists() {
            let text = read_key_file(path)?;
            let hex = std::str::from_utf8(&text)
                .map_err(|_| AuditError::Key(format!("{}: not hex", path.display())))?;
            let bytes = keyfile::decode_secret_hex(hex.trim())
                .map_err(|_| AuditError::Key(format!("{}: not hex", path.display())))?;
            let mut seed: [u8; 32] = bytes[..]
                .try_into()
                .map_err(|_| AuditError::Key(format!("{}: must hold 32 bytes", path.display())))?;
            let signer = Ed25519Signer::from_seed(seed);
            seed.zeroize();
            return Ok(signer);
        }
        let seed = random_seed()?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        write_private(path, &to_hex(&seed))?;
        Ok(Ed25519Signer::from_seed(seed))
    }

    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier {
            key: self.key.verifying_key(),
        }
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), AuditError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_err(path, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, e))
}

impl AuditSigner for Ed25519Signer {
    fn algorithm(&self) -> &'static str {
        ALG_ED25519
    }
    fn public_key_hex(&self) -> String {
        to_hex(self.key.verifying_key().as_bytes())
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

pub struct Ed25519Verifier {
    key: ed25519_dalek::VerifyingKey,
}

impl Ed25519Verifier {
    pub fn from_hex(text: &str) -> Result<Ed25519Verifier, AuditError> {
        let bytes =
            from_hex(text.trim()).ok_or_else(|| AuditError::Key("public key is not hex".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| AuditError::Key("public key must be 32 bytes".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|e| AuditError::Key(e.to_string()))?;
        Ok(Ed25519Verifier { key })
    }
}

impl AuditVerifier for Ed25519Verifier {
    fn algorithm(&self) -> &'static str {
        ALG_ED25519
    }
    fn check(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let sig = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|e| format!("malformed Ed25519 signature: {e}"))?;
        self.key
            .verify(message, &sig)
            .map_err(|_| "the Ed25519 signature does not verify".to_string())
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at: String,
    /// What was recorded: `incident`, `classification`, `report`, `test`, `register`, ...
    pub kind: String,
    /// What it is about, e.g. an incident id.
    pub subject: String,
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
    pub algorithm: String,
    pub signature: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: &'a str,
    kind: &'a str,
    subject: &'a str,
    payload: &'a Value,
    prev_hash: &'a str,
}

fn entry_hash(
    seq: u64,
    at: &str,
    kind: &str,
    subject: &str,
    payload: &Value,
    prev: &str,
) -> String {
    let canonical = serde_json::to_vec(&Hashed {
        seq,
        at,
        kind,
        subject,
        payload,
        prev_hash: prev,
    })
    .expect("serialisable");
    to_hex(&Sha256::digest(&canonical))
}

/// The signed head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub algorithm: String,
    pub signature: String,
}

fn head_message(seq: u64, hash: &str) -> Vec<u8> {
    format!("ccbft-audit-head:{seq}:{hash}").into_bytes()
}

/// An open audit log for appending.
pub struct AuditLog<S: AuditSigner> {
    dir: PathBuf,
    signer: S,
    last: Option<(u64, String)>,
}

impl<S: AuditSigner> AuditLog<S> {
    /// Open (or create) the log in `dir`. The existing chain is verified first: appending to
    /// a tampered log is refused.
    pub fn open(dir: &Path, signer: S) -> Result<AuditLog<S>, AuditError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let pub_path = dir.join(PUBKEY_FILE);
        if pub_path.exists() {
            // Appending with another key or algorithm would make every new entry fail.
            let (algorithm, key) = read_header(dir)?;
            if algorithm != signer.algorithm() {
                return Err(AuditError::Key(format!(
                    "{} was created with algorithm {algorithm:?}; the signer uses {:?}",
                    pub_path.display(),
                    signer.algorithm()
                )));
            }
            if !key.eq_ignore_ascii_case(&signer.public_key_hex()) {
                return Err(AuditError::Key(format!(
                    "{} holds another public key than the signer's",
                    pub_path.display()
                )));
            }
        } else {
            let text = format!("{} {}\n", signer.algorithm(), signer.public_key_hex());
            std::fs::write(&pub_path, text).map_err(|e| io_err(&pub_path, e))?;
        }
        let verdict = verify_dir_with(dir, Signatures::LastAndHead)?;
        if let Some(bad) = verdict.first_bad {
            return Err(AuditError::Corrupt(bad.to_string()));
        }
        let last = verdict.last;
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            signer,
            last,
        })
    }

    /// Append one entry; returns its sequence number.
    pub fn append(
        &mut self,
        at: DateTime<Utc>,
        kind: &str,
        subject: &str,
        payload: Value,
    ) -> Result<u64, AuditError> {
        let size = serde_json::to_vec(&payload)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > PAYLOAD_BYTES_MAX {
            return Err(AuditError::PayloadTooLarge(size));
        }
        let (seq, prev) = match &self.last {
            Some((s, h)) => (s + 1, h.clone()),
            None => (0, GENESIS_HASH.to_string()),
        };
        let at = rfc3339(at);
        let hash = entry_hash(seq, &at, kind, subject, &payload, &prev);
        let signature = to_hex(&self.signer.sign(hash.as_bytes()));
        let entry = Entry {
            seq,
            at,
            kind: kind.into(),
            subject: subject.into(),
            payload,
            prev_hash: prev,
            hash: hash.clone(),
            algorithm: self.signer.algorithm().into(),
            signature,
        };
        let path = self.dir.join(LOG_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        let mut line = serde_json::to_string(&entry).expect("serialisable");
        line.push('\n');
        file.write_all(line.as_bytes())
            .map_err(|e| io_err(&path, e))?;
        file.sync_data().map_err(|e| io_err(&path, e))?;
        let head = Head {
            seq,
            hash: hash.clone(),
            algorithm: self.signer.algorithm().into(),
            signature: to_hex(&self.signer.sign(&head_message(seq, &hash))),
        };
        let head_path = self.dir.join(HEAD_FILE);
        let tmp = self.dir.join(format!("{HEAD_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string(&head).expect("serialisable"))
            .map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &head_path).map_err(|e| io_err(&head_path, e))?;
        self.last = Some((seq, hash));
        Ok(seq)
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEntry {
    /// 1-based line of `audit.jsonl` (0 when the problem is the head).
    pub line: usize,
    /// The sequence number expected at that position.
    pub expected_seq: u64,
    pub reason: String,
}

impl std::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "first bad entry: line {} (expected seq {}): {}",
            self.line, self.expected_seq, self.reason
        )
    }
}

/// Result of verifying a directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub entries: usize,
    pub ok: bool,
    pub first_bad: Option<BadEntry>,
    /// The last good (seq, hash).
    pub last: Option<(u64, String)>,
}

/// Which signatures a verification checks. The hash chain (sequence numbers, `prev_hash`,
/// each entry's hash) and the head are always checked in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signatures {
    /// Every entry's signature ([`verify_dir`], `ccbft dora audit verify`).
    Every,
    /// Only the last entry's and the head's. The chain links every entry to the last one,
    /// whose hash the signed head names, so a changed, deleted, inserted or moved entry is
    /// still caught; a replaced signature on an unchanged earlier entry is caught only by
    /// [`Signatures::Every`]. Used by [`AuditLog::open`] before appending, where checking
    /// every hybrid signature (about 1.5 ms each) on every open would grow without bound.
    LastAndHead,
}

/// Verify `audit.jsonl` in `dir` against `audit.pub` and `audit.head`, every signature.
pub fn verify_dir(dir: &Path) -> Result<Verdict, AuditError> {
    verify_dir_with(dir, Signatures::Every)
}

/// [`verify_dir`] with a choice of [`Signatures`].
pub fn verify_dir_with(dir: &Path, signatures: Signatures) -> Result<Verdict, AuditError> {
    let (algorithm, key) = read_header(dir)?;
    let verifier = verifier_for(&algorithm, &key)?;
    let log_path = dir.join(LOG_FILE);
    let text = if log_path.exists() {
        let size = std::fs::metadata(&log_path)
            .map_err(|e| io_err(&log_path, e))?
            .len();
        if size > LOG_BYTES_MAX {
            return Err(io_err(
                &log_path,
                format!("{size} bytes is more than {LOG_BYTES_MAX}"),
            ));
        }
        std::fs::read_to_string(&log_path).map_err(|e| io_err(&log_path, e))?
    } else {
        String::new()
    };
    let head_path = dir.join(HEAD_FILE);
    let head: Option<Head> = if head_path.exists() {
        let t = read_small(&head_path)?;
        Some(serde_json::from_str(&t).map_err(|e| io_err(&head_path, e))?)
    } else {
        None
    };
    Ok(verify_text_with(
        &text,
        head.as_ref(),
        verifier.as_ref(),
        signatures,
    ))
}

/// Checks one signature: the algorithm named next to it must be the header's, then the
/// signature must verify (for the hybrid, both halves).
fn check_signature(
    verifier: &dyn AuditVerifier,
    algorithm: &str,
    signature_hex: &str,
    message: &[u8],
) -> Result<(), String> {
    if algorithm != verifier.algorithm() {
        return Err(if ALGORITHMS.contains(&algorithm) {
            format!(
                "signed with {algorithm:?} but audit.pub holds a {:?} key",
                verifier.algorithm()
            )
        } else {
            format!("unknown signature algorithm {algorithm:?}")
        });
    }
    let signature = from_hex(signature_hex).ok_or_else(|| "signature is not hex".to_string())?;
    verifier.check(message, &signature)
}

/// Verify a log's text (see [`verify_dir`]), every signature.
pub fn verify_text(text: &str, head: Option<&Head>, verifier: &dyn AuditVerifier) -> Verdict {
    verify_text_with(text, head, verifier, Signatures::Every)
}

/// [`verify_text`] with a choice of [`Signatures`].
pub fn verify_text_with(
    text: &str,
    head: Option<&Head>,
    verifier: &dyn AuditVerifier,
    signatures: Signatures,
) -> Verdict {
    let lines: Vec<&str> = text.lines().collect();
    let mut prev = GENESIS_HASH.to_string();
    let mut last: Option<(u64, String)> = None;
    let mut count = 0usize;
    let bad = |line: usize, seq: u64, reason: String, count: usize, last: Option<(u64, String)>| {
        Verdict {
            entries: count,
            ok: false,
            first_bad: Some(BadEntry {
                line,
                expected_seq: seq,
                reason,
            }),
            last,
        }
    };
    for (i, line) in lines.iter().enumerate() {
        let expected = i as u64;
        if i >= ENTRIES_MAX {
            return bad(
                i + 1,
                expected,
                format!("more than {ENTRIES_MAX} entries"),
                count,
                last,
            );
        }
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                return bad(
                    i + 1,
                    expected,
                    format!("not a valid entry: {e}"),
                    count,
                    last,
                )
            }
        };
        if entry.seq != expected {
            return bad(i + 1, expected, format!("sequence number {} where {expected} was expected (an entry was deleted, inserted or moved)", entry.seq), count, last);
        }
        if entry.prev_hash != prev {
            return bad(i + 1, expected, "prev_hash does not match the previous entry's hash (an entry before it was changed, deleted or moved)".into(), count, last);
        }
        let recomputed = entry_hash(
            entry.seq,
            &entry.at,
            &entry.kind,
            &entry.subject,
            &entry.payload,
            &entry.prev_hash,
        );
        if recomputed != entry.hash {
            return bad(
                i + 1,
                expected,
                "content does not match its hash (the entry was altered)".into(),
                count,
                last,
            );
        }
        let check = signatures == Signatures::Every || i + 1 == lines.len();
        let verdict = if check {
            check_signature(
                verifier,
                &entry.algorithm,
                &entry.signature,
                entry.hash.as_bytes(),
            )
        } else {
            Ok(())
        };
        if let Err(why) = verdict {
            return bad(
                i + 1,
                expected,
                format!("signature does not verify with audit.pub: {why}"),
                count,
                last,
            );
        }
        prev = entry.hash.clone();
        last = Some((entry.seq, entry.hash));
        count += 1;
    }
    match (head, &last) {
        (None, None) => {}
        (None, Some((seq, _))) => {
            return bad(0, *seq, "audit.head is missing".into(), count, last.clone());
        }
        (Some(h), _) => {
            let head_check = check_signature(
                verifier,
                &h.algorithm,
                &h.signature,
                &head_message(h.seq, &h.hash),
            );
            if let Err(why) = head_check {
                return bad(
                    0,
                    h.seq,
                    format!("audit.head signature does not verify: {why}"),
                    count,
                    last.clone(),
                );
            }
            let matches = last
                .as_ref()
                .is_some_and(|(s, hash)| *s == h.seq && *hash == h.hash);
            if !matches {
                let have = last.as_ref().map_or(0, |(s, _)| s + 1);
                let line = count + 1;
                let reason = if have < h.seq + 1 {
                    format!("the signed head says {} entries but only {have} remain (entries at the end were deleted)", h.seq + 1)
                } else {
                    "the last entry does not match the signed head".into()
                };
                return bad(line, have, reason, count, last.clone());
            }
        }
    }
    Verdict {
        entries: count,
        ok: true,
        first_bad: None,
        last,
    }
}
