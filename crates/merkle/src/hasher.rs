//! Tree hashing strategies (RFC 9162 §2.1.1 domain separation).

use sha2::{Digest, Sha256};

use crate::hash::{Hash, HASH_LEN};

/// Hashing strategy of a Merkle tree: how the empty tree, leaves and
/// interior nodes are hashed.
///
/// Implementations must domain-separate leaves from interior nodes (RFC 9162
/// prefixes `0x00` and `0x01`), otherwise second-preimage attacks on proofs
/// become possible.
pub trait TreeHasher: Clone + Send + Sync + 'static {
    /// Root of the tree with no leaves.
    fn empty_root(&self) -> Hash;
    /// Hash of one leaf's data: `HASH(0x00 || leaf_data)`.
    fn hash_leaf(&self, leaf_data: &[u8]) -> Hash;
    /// Hash of an interior node: `HASH(0x01 || left || right)`.
    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash;
}

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

fn node_preimage(left: &Hash, right: &Hash) -> [u8; 1 + 2 * HASH_LEN] {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = NODE_PREFIX;
    buf[1..1 + HASH_LEN].copy_from_slice(&left.0);
    buf[1 + HASH_LEN..].copy_from_slice(&right.0);
    buf
}

/// The bulletin board's hash: BLAKE3-256 with RFC 9162 domain separation.
///
/// `leaf = BLAKE3(0x00 || data)`, `node = BLAKE3(0x01 || left || right)`,
/// empty root `= BLAKE3("")`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blake3Hasher;

impl TreeHasher for Blake3Hasher {
    fn empty_root(&self) -> Hash {
        Hash(*blake3::hash(b"").as_bytes())
    }

    fn hash_leaf(&self, leaf_data: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(leaf_data);
        Hash(*h.finalize().as_bytes())
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        Hash(*blake3::hash(&node_preimage(left, right)).as_bytes())
    }
}

/// RFC 6962 hashing: SHA-256 with the same `0x00` / `0x01` prefixes, empty
/// root `= SHA-256("")`. Used to check the tree against the Certificate
/// Transparency test vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sha256Hasher;

impl TreeHasher for Sha256Hasher {
    fn empty_root(&self) -> Hash {
        Hash(Sha256::digest(b"").into())
    }

    fn hash_leaf(&self, leaf_data: &[u8]) -> Hash {
        let mut h = Sha256::new();
        h.update([LEAF_PREFIX]);
        h.update(leaf_data);
        Hash(h.finalize().into())
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        Hash(Sha256::digest(node_preimage(left, right)).into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blake3_domain_separation() {
        let h = Blake3Hasher;
        // BLAKE3("") from the BLAKE3 reference test vectors.
        assert_eq!(
            h.empty_root().to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(h.hash_leaf(b"abc").0, *blake3::hash(b"\x00abc").as_bytes());
        let (l, r) = (Hash([1; 32]), Hash([2; 32]));
        let mut pre = vec![1u8];
        pre.extend_from_slice(&[1; 32]);
        pre.extend_from_slice(&[2; 32]);
        assert_eq!(h.hash_children(&l, &r).0, *blake3::hash(&pre).as_bytes());
        assert_ne!(h.hash_children(&l, &r), h.hash_children(&r, &l));
    }

    #[test]
    fn sha256_matches_rfc6962() {
        let h = Sha256Hasher;
        assert_eq!(
            h.empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Leaf hash of the empty leaf, from transparency-dev/merkle testonly/constants.go.
        assert_eq!(
            h.hash_leaf(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
