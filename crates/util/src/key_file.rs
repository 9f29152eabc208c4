//! Private key and secret files.
//!
//! A private key file holds a 32-byte Ed25519 seed in hex on one line. Node keys,
//! admin keys, terminal, trustee and commission keys all use this one format, so one
//! reader serves them all. Secret files are created readable only by their owner
//! (mode 0600 on Unix), are never overwritten by accident, and are fsync'd before the
//! call returns.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::state_file::{write_atomically, Access};

/// Why a key or secret file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("reading key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not one hex line.
    #[error("key file {path} is not hex: {source}")]
    NotHex {
        /// The file.
        path: PathBuf,
        /// Where the hex broke.
        #[source]
        source: hex::FromHexError,
    },
    /// The seed has the wrong length.
    #[error("key file {path} holds {len} bytes, expected 32")]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Bytes found.
        len: usize,
    },
    /// The secret file already exists (they are never overwritten by accident).
    #[error("secret file {path} already exists; refusing to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Creating, writing, syncing or renaming failed.
    #[error("writing secret file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a private key file (hex Ed25519 seed on one line).
///
/// # Errors
///
/// As [`read_key_bytes`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    read_key_bytes(path).map(|seed| SigningKey::from_bytes(&seed))
}

/// Writes a private key file that only the owner can read; refuses to overwrite.
///
/// # Errors
///
/// As [`write_key_bytes`].
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    write_key_bytes(path, &key.to_bytes())
}

/// Reads the 32 secret bytes of a key file in this module's format (hex on one line):
/// an Ed25519 seed, or another 32-byte secret such as a trustee's X25519 transport key.
///
/// # Errors
///
/// [`KeyFileError::Read`], [`KeyFileError::NotHex`] or [`KeyFileError::WrongLength`].
pub fn read_key_bytes(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = hex::decode(text.trim()).map_err(|source| KeyFileError::NotHex {
        path: path.to_path_buf(),
        source,
    })?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyFileError::WrongLength {
            path: path.to_path_buf(),
            len: bytes.len(),
        })
}

/// Writes 32 secret bytes as a key file (hex on one line) that only the owner can
/// read; refuses to overwrite. [`read_key_bytes`] reads it back.
///
/// # Errors
///
/// [`KeyFileError::Exists`] or [`KeyFileError::Write`].
pub fn write_key_bytes(path: &Path, bytes: &[u8; 32]) -> Result<(), KeyFileError> {
    write_secret_file(path, format!("{}\n", hex::encode(bytes)).as_bytes())
}

/// Creates a file only the owner can read (mode 0600 on Unix) holding `contents`,
/// synced to disk; refuses to overwrite.
///
/// # Errors
///
/// [`KeyFileError::Exists`] or [`KeyFileError::Write`].
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let write_error = |source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            write_error(source)
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}

/// Replaces (or creates) a secret file atomically and durably, readable only by its
/// owner: a crash leaves either the old or the new contents.
///
/// # Errors
///
/// [`KeyFileError::Write`].
pub fn replace_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    write_atomically(path, contents, Access::OwnerOnly).map_err(|source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand_core::OsRng)
    }

    #[test]
    fn key_file_round_trips_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let first = key();
        write_signing_key(&path, &first).unwrap();
        assert_eq!(
            read_signing_key(&path).unwrap().to_bytes(),
            first.to_bytes()
        );
        assert!(matches!(
            write_signing_key(&path, &key()),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(
            read_signing_key(&path).unwrap().to_bytes(),
            first.to_bytes()
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_readable_only_by_their_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write_secret_file(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn malformed_key_files_name_their_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        std::fs::write(&path, "abcd\n").unwrap();
        assert!(matches!(
            read_signing_key(&path),
            Err(KeyFileError::WrongLength { len: 2, .. })
        ));
        std::fs::write(&path, "zz\n").unwrap();
        assert!(matches!(
            read_signing_key(&path),
            Err(KeyFileError::NotHex { .. })
        ));
        assert!(matches!(
            read_signing_key(&dir.path().join("missing")),
            Err(KeyFileError::Read { .. })
        ));
    }

    #[test]
    fn key_bytes_round_trip_in_the_key_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transport.key");
        write_key_bytes(&path, &[7; 32]).unwrap();
        assert_eq!(read_key_bytes(&path).unwrap(), [7; 32]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", "07".repeat(32))
        );
        assert!(matches!(
            write_key_bytes(&path, &[8; 32]),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[test]
    fn replacing_a_secret_file_swaps_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace_secret_file(&path, b"one").unwrap();
        replace_secret_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
