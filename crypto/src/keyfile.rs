//! Secret key files: the one loader every secret goes through.
//!
//! [`read_secret_file`] opens the file without following a symbolic link, checks the opened
//! file itself (no race between the check and the read): a regular file, at most
//! [`SECRET_FILE_BYTES_MAX`] bytes, and no permission bit for group or others (mode 0600 or
//! 0400). Anything else is refused before a byte is read. The contents come back in a
//! [`Zeroizing`] buffer that was sized once, so no reallocation leaves a copy behind, and is
//! overwritten when dropped.
//!
//! [`write_secret_file`] creates a new file with mode 0600 (never replacing one), writes and
//! syncs it. [`secret_hex`] and [`decode_secret_hex`] keep hex-encoded secrets in zeroizing
//! buffers too.
//!
//! Not checked: the file's owner (reading the effective uid needs `unsafe` libc calls, which
//! this crate forbids); the directory's permissions are the operator's.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;
pub use zeroize::Zeroizing;

/// Mode of every secret file written.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Permission bits a secret file must not have (group and others, any access).
pub const SECRET_FILE_FORBIDDEN_BITS: u32 = 0o077;
/// Largest secret file read, in bytes.
pub const SECRET_FILE_BYTES_MAX: u64 = 1 << 20;

/// Why a secret file was not read or written.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Group or others have a permission bit.
    #[error(
        "{} has mode {mode:03o}: a secret key file must not be accessible by group or others (chmod 600)",
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    /// Not a regular file (a directory, device, FIFO, ...).
    #[error("{} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    /// Larger than [`SECRET_FILE_BYTES_MAX`] (or grew while read).
    #[error("{} is larger than {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a secret file after checking the opened file: regular, not larger than
/// [`SECRET_FILE_BYTES_MAX`], no group or other permission bit. A symbolic link is refused
/// (`O_NOFOLLOW`).
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path))?;
    let len = check_opened(path, &file)?;
    let capacity = usize::try_from(len).expect("bounded by SECRET_FILE_BYTES_MAX") + 1;
    let mut buf = Zeroizing::new(vec![0u8; capacity]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err(KeyFileError::TooLarge {
                path: path.to_path_buf(),
                max: len,
            });
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The size of an opened secret file that passes the checks.
fn check_opened(path: &Path, file: &File) -> Result<u64, KeyFileError> {
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(KeyFileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & SECRET_FILE_FORBIDDEN_BITS != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > SECRET_FILE_BYTES_MAX {
        return Err(KeyFileError::TooLarge {
            path: path.to_path_buf(),
            max: SECRET_FILE_BYTES_MAX,
        });
    }
    Ok(meta.len())
}

/// Creates `path` (which must not exist) with mode 0600, writes `contents` and syncs.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path))?;
    // The umask can only clear bits; set the mode explicitly anyway.
    file.set_permissions(std::fs::Permissions::from_mode(SECRET_FILE_MODE))
        .map_err(io_err(path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_err(path))
}

/// Mode of a public key file (committee, public keys, genesis): readable by everyone.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// Writes a public file (replacing `path` if it exists) with mode 0644 whatever the umask,
/// and syncs it: the keys and genesis a cluster starts from survive a crash after keygen.
pub fn write_public_file(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PUBLIC_FILE_MODE)
        .open(path)
        .map_err(io_err(path))?;
    // The umask may have cleared bits of a public file.
    file.set_permissions(std::fs::Permissions::from_mode(PUBLIC_FILE_MODE))
        .map_err(io_err(path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_err(path))
}

/// Lower-case hex of a secret, in a zeroizing string sized once.
pub fn secret_hex(bytes: &[u8]) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Decodes hex into a zeroizing buffer sized once.
pub fn decode_secret_hex(text: &str) -> Result<Zeroizing<Vec<u8>>, crate::CryptoError> {
    let mut out = Zeroizing::new(Vec::new());
    crate::hex::decode_into(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ccbft-keyfile-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn secret_files_readable_by_group_or_others_are_refused() {
        let dir = tmp("modes");
        let path = dir.join("k");
        write_secret_file(&path, b"secret bytes").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(&read_secret_file(&path).unwrap()[..], b"secret bytes");
        // Never replaces an existing file.
        assert!(matches!(
            write_secret_file(&path, b"other"),
            Err(KeyFileError::Io { .. })
        ));
        for mode in [0o400, 0o600, 0o700] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            read_secret_file(&path).unwrap();
        }
        for mode in [0o640, 0o604, 0o644, 0o660, 0o610, 0o601, 0o666] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            match read_secret_file(&path) {
                Err(KeyFileError::Permissions { mode: m, .. }) => assert_eq!(m, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // A symbolic link to a private file is refused, and so is a directory.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            read_secret_file(&link),
            Err(KeyFileError::Io { .. })
        ));
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            read_secret_file(&sub),
            Err(KeyFileError::NotRegular { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn secret_hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = secret_hex(&bytes);
        assert_eq!(&*text, &crate::hex::encode(&bytes));
        assert_eq!(&decode_secret_hex(&text).unwrap()[..], &bytes[..]);
        assert!(decode_secret_hex("0g").is_err());
    }
}
