//! Fixtures shared by the unit tests: the node keys of a 3-node test board, its
//! 2-of-3 policy, and in-memory trees and signed checkpoints over them.

use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, NoteSigner, SignedCheckpoint};
use bboard_merkle::{Blake3Hasher, MemoryNodeStore, MerkleTree, TreeHasher, TreeSize};
use ed25519_dalek::SigningKey;

/// An in-memory board tree.
pub(crate) type Tree = MerkleTree<Blake3Hasher, MemoryNodeStore>;

/// The signer of test node `i` (named `node-{i}`).
pub(crate) fn node(i: u8) -> NoteSigner {
    NoteSigner::new(&format!("node-{i}"), SigningKey::from_bytes(&[i; 32])).unwrap()
}

/// Nodes 1 to 3, 2 signatures required.
pub(crate) fn policy(origin: &str) -> CosignaturePolicy {
    CosignaturePolicy::new(origin, (1..=3).map(|i| node(i).verifier()).collect(), 2).unwrap()
}

/// `n` leaves; from `fork_at` on they differ from the honest board's.
pub(crate) fn tree(n: u64, fork_at: u64) -> Tree {
    let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
    for i in 0..n {
        let data = if i < fork_at {
            format!("entry {i}")
        } else {
            format!("forged {i}")
        };
        tree.append(Blake3Hasher.hash_leaf(data.as_bytes()))
            .unwrap();
    }
    tree
}

/// The honest board of `n` leaves.
pub(crate) fn honest(n: u64) -> Tree {
    tree(n, u64::MAX)
}

/// The signed note of `tree` at `size`, signed by the nodes `signers`.
pub(crate) fn checkpoint_note(origin: &str, tree: &Tree, size: u64, signers: &[u8]) -> String {
    let checkpoint = Checkpoint {
        origin: origin.into(),
        size: TreeSize(size),
        root: tree.root_at(TreeSize(size)).unwrap(),
    };
    let mut signed = SignedCheckpoint::sign(checkpoint, &node(signers[0])).unwrap();
    for &i in &signers[1..] {
        signed.add_signature(&node(i)).unwrap();
    }
    signed.to_note()
}
