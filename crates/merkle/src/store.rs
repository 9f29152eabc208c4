//! Append-only storage of complete subtrees.
//!
//! Node `(level, index)` is the hash of the complete (perfect) subtree that
//! covers leaves `[index · 2^level, (index + 1) · 2^level)`; level 0 holds the
//! leaf hashes. Only complete subtrees are stored, so every node is written
//! exactly once, when its last leaf is appended, and never changes (the
//! Certificate Transparency / Trillian-Tessera "complete subtree" model).
//! Roots and proofs for ragged (incomplete) right edges are folded from
//! these at read time.

use std::fmt;

use crate::hash::Hash;

/// Highest level a node can have: a tree has at most `u64::MAX` leaves, so its
/// largest complete subtree has `2^63` leaves.
pub const MAX_LEVEL: u8 = 63;

/// Address of a stored complete subtree.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId {
    /// Height above the leaves (0 = leaf).
    pub level: u8,
    /// Position among the nodes of that level, counted from the left.
    pub index: u64,
}

impl NodeId {
    /// Node `(level, index)`.
    pub const fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    /// The leaf node of leaf `index`.
    pub const fn leaf(index: u64) -> NodeId {
        NodeId { level: 0, index }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node(level {}, index {})", self.level, self.index)
    }
}

/// Storage for the complete-subtree hashes of one append-only tree.
///
/// The tree only ever writes nodes that did not exist before, in leaf order,
/// and reads nodes it has written. A store backed by a database should make
/// [`NodeStore::put_all`] one atomic batch (ideally together with the new
/// tree size, which the caller persists).
pub trait NodeStore {
    /// Error of the backing storage.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The hash of node `id`, or `None` if it was never written.
    fn get(&self, id: NodeId) -> Result<Option<Hash>, Self::Error>;

    /// Writes the nodes created by one append (or batch of appends), all at
    /// once. Nodes of the same level are given in increasing index order.
    fn put_all(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error>;
}

impl<S: NodeStore + ?Sized> NodeStore for &mut S {
    type Error = S::Error;
    fn get(&self, id: NodeId) -> Result<Option<Hash>, Self::Error> {
        (**self).get(id)
    }
    fn put_all(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error> {
        (**self).put_all(nodes)
    }
}

impl<S: NodeStore + ?Sized> NodeStore for Box<S> {
    type Error = S::Error;
    fn get(&self, id: NodeId) -> Result<Option<Hash>, Self::Error> {
        (**self).get(id)
    }
    fn put_all(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error> {
        (**self).put_all(nodes)
    }
}

/// Errors of [`MemoryNodeStore::put_all`]. On error nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryStoreError {
    /// The node's level is above [`MAX_LEVEL`].
    #[error("{0}: level above {MAX_LEVEL}")]
    LevelTooHigh(NodeId),
    /// The node would leave a gap in its level (nodes are appended in order).
    #[error("{id}: out of order, next index at this level is {next}")]
    OutOfOrder {
        /// The offending node.
        id: NodeId,
        /// The next index the level expects.
        next: u64,
    },
    /// The node already exists with a different hash (nodes are write-once).
    #[error("{0}: already stored with a different hash")]
    Conflict(NodeId),
}

/// In-memory [`NodeStore`]: one `Vec<Hash>` per level, so a tree of `n`
/// leaves takes about `2n · 32` bytes and every access is O(1).
///
/// Rewriting an existing node with the same hash is accepted (idempotent);
/// with a different hash it is rejected with [`MemoryStoreError::Conflict`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryNodeStore {
    levels: Vec<Vec<Hash>>,
}

impl MemoryNodeStore {
    /// An empty store.
    pub fn new() -> MemoryNodeStore {
        MemoryNodeStore::default()
    }

    /// An empty store with room for the nodes of `leaves` leaves.
    pub fn with_capacity(leaves: usize) -> MemoryNodeStore {
        let mut levels = Vec::new();
        let mut n = leaves;
        while n > 0 {
            levels.push(Vec::with_capacity(n));
            n /= 2;
        }
        MemoryNodeStore { levels }
    }

    /// Number of nodes stored at `level`.
    pub fn level_len(&self, level: u8) -> u64 {
        self.levels
            .get(usize::from(level))
            .map_or(0, |l| l.len() as u64)
    }

    /// Number of leaf hashes stored (nodes at level 0).
    pub fn leaf_count(&self) -> u64 {
        self.level_len(0)
    }

    /// Total number of nodes stored.
    pub fn node_count(&self) -> u64 {
        self.levels.iter().map(|l| l.len() as u64).sum()
    }
}

impl NodeStore for MemoryNodeStore {
    type Error = MemoryStoreError;

    fn get(&self, id: NodeId) -> Result<Option<Hash>, Self::Error> {
        Ok(self
            .levels
            .get(usize::from(id.level))
            .and_then(|level| usize::try_from(id.index).ok().and_then(|i| level.get(i)))
            .copied())
    }

    fn put_all(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error> {
        // Validate everything first so that a failed batch writes nothing.
        let mut next = [0u64; MAX_LEVEL as usize + 1];
        for (slot, level) in next.iter_mut().zip(&self.levels) {
            *slot = level.len() as u64;
        }
        for &(id, hash) in nodes {
            let slot = next
                .get_mut(usize::from(id.level))
                .ok_or(MemoryStoreError::LevelTooHigh(id))?;
            if id.index == *slot {
                *slot += 1;
            } else if id.index < self.level_len(id.level) {
                if self.get(id)? != Some(hash) {
                    return Err(MemoryStoreError::Conflict(id));
                }
            } else {
                return Err(MemoryStoreError::OutOfOrder { id, next: *slot });
            }
        }
        for &(id, hash) in nodes {
            let level = usize::from(id.level);
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            let l = &mut self.levels[level];
            if id.index == l.len() as u64 {
                l.push(hash);
            }
            // Otherwise an identical existing node: nothing to do.
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_atomicity() {
        let mut s = MemoryNodeStore::new();
        let h = |b| Hash([b; 32]);
        s.put_all(&[
            (NodeId::leaf(0), h(1)),
            (NodeId::leaf(1), h(2)),
            (NodeId::new(1, 0), h(3)),
        ])
        .unwrap();
        assert_eq!(s.get(NodeId::leaf(1)).unwrap(), Some(h(2)));
        assert_eq!(s.get(NodeId::new(1, 0)).unwrap(), Some(h(3)));
        assert_eq!(s.get(NodeId::new(1, 1)).unwrap(), None);
        assert_eq!(s.get(NodeId::new(63, 0)).unwrap(), None);
        assert_eq!(s.get(NodeId::new(255, u64::MAX)).unwrap(), None);
        // Idempotent rewrite.
        s.put_all(&[(NodeId::leaf(1), h(2))]).unwrap();
        // Conflict: nothing written, not even the valid first node.
        assert_eq!(
            s.put_all(&[(NodeId::leaf(2), h(4)), (NodeId::leaf(0), h(9))]),
            Err(MemoryStoreError::Conflict(NodeId::leaf(0)))
        );
        assert_eq!(s.leaf_count(), 2);
        assert_eq!(
            s.put_all(&[(NodeId::leaf(3), h(4))]),
            Err(MemoryStoreError::OutOfOrder {
                id: NodeId::leaf(3),
                next: 2
            })
        );
        assert_eq!(
            s.put_all(&[(NodeId::new(64, 0), h(4))]),
            Err(MemoryStoreError::LevelTooHigh(NodeId::new(64, 0)))
        );
        assert_eq!(s.node_count(), 3);
    }
}
