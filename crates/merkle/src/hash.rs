//! The 32-byte hash value and the index / size newtypes.

use std::fmt;
use std::str::FromStr;

/// Length in bytes of every hash handled by this crate.
pub const HASH_LEN: usize = 32;

/// A 32-byte tree hash (leaf hash, interior node hash or root).
///
/// `Display` and `Debug` print it as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

/// Error parsing a [`Hash`](struct@Hash) from bytes or hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The input did not have exactly [`HASH_LEN`] bytes.
    #[error("hash must be {HASH_LEN} bytes, got {actual}")]
    WrongLength {
        /// Number of bytes actually supplied.
        actual: usize,
    },
    /// The input was not valid hexadecimal.
    #[error("invalid hex in hash: {0}")]
    InvalidHex(String),
}

impl Hash {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Parses a hash from a byte slice, which must be exactly [`HASH_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashError> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashError::WrongLength {
                actual: bytes.len(),
            })
    }

    /// Lowercase hex encoding (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Hash, HashError> {
        let bytes = hex::decode(s).map_err(|e| HashError::InvalidHex(e.to_string()))?;
        Hash::from_slice(&bytes)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(s)
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Hash(bytes)
    }
}

impl From<Hash> for [u8; HASH_LEN] {
    fn from(h: Hash) -> Self {
        h.0
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = HashError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Hash::from_slice(bytes)
    }
}

/// Zero-based position of a leaf in the log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LeafIndex(pub u64);

/// Number of leaves in a tree (a tree of size `n` holds leaves `0..n`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_display() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8 * 7;
        }
        let h = Hash(bytes);
        let s = h.to_hex();
        assert_eq!(s.len(), 64);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(format!("{h}"), s);
        assert_eq!(format!("{h:?}"), s);
        assert_eq!(Hash::from_hex(&s), Ok(h));
        assert_eq!(Hash::from_hex(&s.to_uppercase()), Ok(h));
        assert_eq!(s.parse::<Hash>(), Ok(h));
    }

    #[test]
    fn wrong_lengths_rejected() {
        assert_eq!(
            Hash::from_slice(&[0u8; 31]),
            Err(HashError::WrongLength { actual: 31 })
        );
        assert_eq!(
            Hash::from_slice(&[0u8; 33]),
            Err(HashError::WrongLength { actual: 33 })
        );
        assert_eq!(
            Hash::from_slice(&[]),
            Err(HashError::WrongLength { actual: 0 })
        );
        assert_eq!(Hash::from_slice(&[9u8; 32]), Ok(Hash([9u8; 32])));
        assert!(matches!(
            Hash::from_hex("abcd"),
            Err(HashError::WrongLength { actual: 2 })
        ));
        assert!(matches!(
            Hash::from_hex("zz"),
            Err(HashError::InvalidHex(_))
        ));
        assert!(matches!(
            Hash::from_hex("abc"),
            Err(HashError::InvalidHex(_))
        ));
    }

    #[test]
    fn newtype_display() {
        assert_eq!(LeafIndex(7).to_string(), "7");
        assert_eq!(TreeSize(u64::MAX).to_string(), u64::MAX.to_string());
    }
}
