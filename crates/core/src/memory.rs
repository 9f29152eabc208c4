//! An in-memory board: the rules of [`crate::board`] over a `Vec` of leaves and hash
//! maps. Auditors replay a downloaded board through it (`bboard verify-election`), and
//! tests use it as a node's store.

use std::collections::HashMap;

use bboard_merkle::{Blake3Hasher, Hash, MemoryNodeStore, MerkleTree, TreeHasher, TreeSize};

use crate::board::{BatchApplier, BoardView, Effect, KeyGrant, Outcome, PublicKeyBytes};
use crate::envelope::EnvelopeId;
use crate::leaf::leaf_hash;

/// A whole board state in memory.
pub struct MemoryBoard {
    origin: String,
    leaves: Vec<Vec<u8>>,
    tree: MerkleTree<Blake3Hasher, MemoryNodeStore>,
    keys: HashMap<PublicKeyBytes, KeyGrant>,
    envelopes: HashMap<EnvelopeId, u64>,
    state: HashMap<Vec<u8>, Vec<u8>>,
}

impl MemoryBoard {
    /// An empty board with this checkpoint origin.
    pub fn new(origin: impl Into<String>) -> Self {
        MemoryBoard {
            origin: origin.into(),
            leaves: Vec::new(),
            tree: MerkleTree::new(Blake3Hasher, MemoryNodeStore::new()),
            keys: HashMap::new(),
            envelopes: HashMap::new(),
            state: HashMap::new(),
        }
    }

    /// Root of the whole board.
    pub fn root(&self) -> Hash {
        self.root_at(self.leaves.len() as u64)
            .unwrap_or_else(|never| match never {})
    }

    /// The admitted leaves, in index order.
    pub fn leaves(&self) -> &[Vec<u8>] {
        &self.leaves
    }

    /// Applies one batch of leaves through the board rules and keeps what is admitted.
    pub fn apply_batch(&mut self, leaves: &[Vec<u8>]) -> Vec<Outcome> {
        let (outcomes, admitted) = {
            let mut applier = match BatchApplier::new(&*self) {
                Ok(applier) => applier,
                Err(never) => match never {},
            };
            let outcomes = leaves
                .iter()
                .map(|leaf| match applier.apply(leaf) {
                    Ok(outcome) => outcome,
                    Err(never) => match never {},
                })
                .collect();
            (outcomes, applier.finish())
        };
        for leaf in admitted {
            for effect in leaf.effects {
                match effect {
                    Effect::PutKey(key, grant) => {
                        self.keys.insert(key, grant);
                    }
                    Effect::PutState(key, value) => {
                        self.state.insert(key, value);
                    }
                }
            }
            self.envelopes.insert(leaf.envelope_id, leaf.index);
            // An in-memory store cannot fail to take a node.
            let _ = self.tree.append(leaf_hash(&leaf.leaf_data));
            self.leaves.push(leaf.leaf_data);
        }
        outcomes
    }
}

impl BoardView for MemoryBoard {
    type Error = std::convert::Infallible;
    fn size(&self) -> Result<u64, Self::Error> {
        Ok(self.leaves.len() as u64)
    }
    fn origin(&self) -> &str {
        &self.origin
    }
    fn key(&self, key: &PublicKeyBytes) -> Result<Option<KeyGrant>, Self::Error> {
        Ok(self.keys.get(key).cloned())
    }
    fn find_envelope(&self, id: &EnvelopeId) -> Result<Option<u64>, Self::Error> {
        Ok(self.envelopes.get(id).copied())
    }
    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.state.get(key).cloned())
    }
    fn root_at(&self, size: u64) -> Result<Hash, Self::Error> {
        // Sizes come from the rules, which only ask for sizes up to the board's; the
        // empty root stands in for an impossible out-of-range request.
        Ok(self
            .tree
            .root_at(TreeSize(size))
            .unwrap_or_else(|_| Blake3Hasher.empty_root()))
    }
}
