//! The bearer token that authorises state-changing dashboard requests (RFC 6750).
//!
//! `dora init` writes a fresh token to [`TOKEN_FILE`] in the state directory (mode 0600);
//! an operator may give another file. Either way it is read through
//! [`ccbft_crypto::keyfile::read_secret_file`], which refuses a symbolic link, a file the
//! group or others may access, and anything but a small regular file. Only the token's
//! SHA-256 digest is kept, and a presented token is compared by digest in constant time, so
//! neither its bytes nor its length leak through timing.

use ccbft_crypto::keyfile::{self, KeyFileError};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// The token file of a state directory, relative to it.
pub const TOKEN_FILE: &str = "keys/dashboard.token";
/// Random bytes in a token written by [`create`] (hex-encoded in the file).
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// Shortest token accepted from a file an operator wrote (characters).
pub const TOKEN_CHARS_MIN: usize = 32;
/// Longest token accepted (characters).
pub const TOKEN_CHARS_MAX: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("dashboard token: {0}")]
    File(#[from] KeyFileError),
    #[error("dashboard token {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("dashboard token: reading the OS random source: {0}")]
    Random(std::io::Error),
}

/// A loaded token (its digest only).
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Token {
    /// A token from its text (printable ASCII without spaces, [`TOKEN_CHARS_MIN`] to
    /// [`TOKEN_CHARS_MAX`] characters); `origin` names it in errors.
    pub fn from_text(text: &str, origin: &str) -> Result<Token, TokenError> {
        let invalid = |reason: String| TokenError::Invalid {
            path: origin.into(),
            reason,
        };
        let len = text.chars().count();
        if !(TOKEN_CHARS_MIN..=TOKEN_CHARS_MAX).contains(&len) {
            return Err(invalid(format!(
                "a token has {TOKEN_CHARS_MIN} to {TOKEN_CHARS_MAX} characters, this one {len}"
            )));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "a token is printable ASCII without spaces or control characters".into(),
            ));
        }
        Ok(Token {
            digest: digest(text.as_bytes()),
        })
    }

    /// Load the token file at `path` (one line; a final newline is allowed).
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        let bytes = keyfile::read_secret_file(path)?;
        let origin = path.display().to_string();
        let text = std::str::from_utf8(&bytes).map_err(|_| TokenError::Invalid {
            path: origin.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        let line = text.strip_suffix('\n').unwrap_or(text);
        Token::from_text(line.strip_suffix('\r').unwrap_or(line), &origin)
    }

    /// Does `presented` equal the token? Constant time in the presented bytes.
    pub fn verifies(&self, presented: &[u8]) -> bool {
        digest(presented).ct_eq(&self.digest).into()
    }
}

/// Write a new random token to `path` (which must not exist), mode 0600, creating its
/// directory (mode 0700) when missing.
pub fn create(path: &Path) -> Result<(), TokenError> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(|e| TokenError::Invalid {
            path: parent.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .map_err(TokenError::Random)?;
    let mut text = keyfile::secret_hex(&random);
    zeroize::Zeroize::zeroize(&mut random);
    text.push('\n');
    keyfile::write_secret_file(path, text.as_bytes())?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
