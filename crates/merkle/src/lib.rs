//! # bboard-merkle
//!
//! Merkle tree math for the bboard election bulletin board, following
//! [RFC 9162 §2.1](https://www.rfc-editor.org/rfc/rfc9162#section-2.1)
//! (the Certificate Transparency v2 tree, identical in shape to RFC 6962).
//!
//! This crate owns:
//!
//! * the 32-byte [`Hash`](struct@Hash) value type and the [`LeafIndex`] / [`TreeSize`]
//!   newtypes (so an index and a size cannot be swapped by accident);
//! * the [`TreeHasher`] abstraction with the board's hash,
//!   [`Blake3Hasher`] (`BLAKE3(0x00 || leaf)`, `BLAKE3(0x01 || l || r)`), and
//!   [`Sha256Hasher`] (RFC 6962 SHA-256, used to check the tree against the
//!   Certificate Transparency test vectors);
//! * store-free proof verification: [`verify_inclusion`],
//!   [`root_from_inclusion_proof`] and [`verify_consistency`], literally the
//!   algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, with a precise
//!   [`ProofError`];
//! * a slow, obviously-correct reference implementation of the RFC
//!   definitions (`MTH`, `PATH`, `PROOF`) over a slice of leaf hashes, in
//!   [`reference`](mod@reference), for tests and for auditors recomputing a tree;
//! * an append-only, write-once [`NodeStore`] abstraction of complete
//!   subtrees with an in-memory implementation, [`MemoryNodeStore`];
//! * [`MerkleTree`], the store-backed tree: O(log n) append, historical
//!   roots and proofs for any size up to the current one;
//! * [`Frontier`], the root of a stream of leaf hashes in O(log n) memory, for
//!   checking a whole stored tree without holding it.
//!
//! The crate does no I/O and no async, and never panics on untrusted input
//! (proofs, indices and sizes received from peers): every problem is a typed
//! error.
//!
//! ```
//! use bboard_merkle::{verify_inclusion, Blake3Hasher, LeafIndex, MemoryNodeStore, MerkleTree, TreeHasher, TreeSize};
//!
//! let hasher = Blake3Hasher;
//! let mut tree = MerkleTree::new(hasher, MemoryNodeStore::new());
//! for entry in [&b"ballot 1"[..], b"ballot 2", b"ballot 3"] {
//!     tree.append(hasher.hash_leaf(entry))?;
//! }
//! let root = tree.root()?;
//! let proof = tree.inclusion_proof(LeafIndex(1), TreeSize(3))?;
//! verify_inclusion(&hasher, &hasher.hash_leaf(b"ballot 2"), LeafIndex(1), TreeSize(3), &proof, &root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod frontier;
mod hash;
mod hasher;
pub mod reference;
mod store;
mod tree;
mod verify;

pub use frontier::Frontier;
pub use hash::{Hash, HashError, LeafIndex, TreeSize, HASH_LEN};
pub use hasher::{Blake3Hasher, Sha256Hasher, TreeHasher};
pub use reference::{
    consistency_proof_of_leaf_hashes, inclusion_proof_of_leaf_hashes, root_of_leaf_hashes,
};
pub use store::{MemoryNodeStore, MemoryStoreError, NodeId, NodeStore, MAX_LEVEL};
pub use tree::{MerkleError, MerkleTree};
pub use verify::{
    consistency_proof_len, inclusion_proof_len, root_from_inclusion_proof, verify_consistency,
    verify_inclusion, ProofError,
};
