//! The store-backed, append-only Merkle tree.

use crate::hash::{Hash, LeafIndex, TreeSize};
use crate::hasher::TreeHasher;
use crate::store::{NodeId, NodeStore, MAX_LEVEL};

/// Errors of [`MerkleTree`] operations, generic over the store's error `E`.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError<E> {
    /// The leaf index is not below the (current or requested) tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: LeafIndex,
        /// The tree size it was checked against.
        size: TreeSize,
    },
    /// A historical tree size larger than the current tree was requested.
    #[error("tree size {requested} is out of range: the tree has {current} leaves")]
    SizeOutOfRange {
        /// The requested tree size.
        requested: TreeSize,
        /// The current tree size.
        current: TreeSize,
    },
    /// A consistency proof from a larger to a smaller tree was requested.
    #[error("old tree size {old} is greater than new tree size {new}")]
    OldSizeExceedsNewSize {
        /// Requested old size.
        old: TreeSize,
        /// Requested new size.
        new: TreeSize,
    },
    /// Appending would make the tree larger than `u64::MAX` leaves.
    #[error("tree cannot grow beyond u64::MAX leaves")]
    TreeFull,
    /// A node that must exist for the current size is not in the store
    /// (store corruption, or a wrong persisted size given to [`MerkleTree::open`]).
    #[error("node store is missing {0}")]
    MissingNode(NodeId),
    /// The node store failed.
    #[error("node store error: {0}")]
    Store(#[source] E),
}

/// Largest power of two strictly smaller than `n`; requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees covering leaves `[start, end)`, left to right,
/// greedily taking the largest aligned subtree that fits.
///
/// For a range that is a subtree of the RFC 9162 tree (`start` a multiple of
/// a power of two `>= end - start`), these are the subtrees of decreasing
/// size given by the bits of `end - start`, and `MTH` of the range is their
/// right fold with `hash_children`.
fn decompose(start: u64, end: u64) -> impl Iterator<Item = NodeId> {
    let mut pos = start;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        // floor(log2(end - pos)) <= 63, and the alignment of pos.
        let fits = 63 - (end - pos).leading_zeros();
        let aligned = if pos == 0 {
            u32::from(MAX_LEVEL)
        } else {
            pos.trailing_zeros()
        };
        let level = fits.min(aligned);
        let id = NodeId::new(level as u8, pos >> level);
        pos += 1 << level;
        Some(id)
    })
}

/// An append-only RFC 9162 Merkle tree over a [`NodeStore`] of complete
/// subtrees.
///
/// The struct holds only the hasher, the store and the size; the caller
/// persists the size alongside the store (see [`MerkleTree::open`]).
/// Every operation does O(log n) store reads (appends: amortized O(1) reads,
/// and one [`NodeStore::put_all`]).
#[derive(Debug, Clone)]
pub struct MerkleTree<H: TreeHasher, S: NodeStore> {
    hasher: H,
    store: S,
    size: u64,
}

impl<H: TreeHasher, S: NodeStore> MerkleTree<H, S> {
    /// A new empty tree writing into `store`, which should be empty.
    pub fn new(hasher: H, store: S) -> Self {
        MerkleTree {
            hasher,
            store,
            size: 0,
        }
    }

    /// Resumes a persisted tree of `size` leaves.
    ///
    /// Checks that every node needed for the root of that size is in the
    /// store and returns [`MerkleError::MissingNode`] otherwise. The store may
    /// hold nodes beyond `size` (e.g. a batch written without its size);
    /// appending identical leaves again rewrites identical nodes.
    pub fn open(hasher: H, store: S, size: TreeSize) -> Result<Self, MerkleError<S::Error>> {
        let tree = MerkleTree {
            hasher,
            store,
            size: size.0,
        };
        for id in decompose(0, size.0) {
            tree.node(id)?;
        }
        Ok(tree)
    }

    /// Number of leaves.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The hasher.
    pub fn hasher(&self) -> &H {
        &self.hasher
    }

    /// The node store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the node store back (the size is [`MerkleTree::size`]).
    pub fn into_store(self) -> S {
        self.store
    }

    fn node(&self, id: NodeId) -> Result<Hash, MerkleError<S::Error>> {
        self.store
            .get(id)
            .map_err(MerkleError::Store)?
            .ok_or(MerkleError::MissingNode(id))
    }

    /// `MTH` of leaves `[start, end)`, which must be a subtree of the RFC
    /// 9162 tree (see [`decompose`]); the empty range gives the empty root.
    fn range_root(&self, start: u64, end: u64) -> Result<Hash, MerkleError<S::Error>> {
        let mut acc: Option<Hash> = None;
        // Fold from the right; at most 64 nodes, collected to reverse.
        let ids: Vec<NodeId> = decompose(start, end).collect();
        for id in ids.into_iter().rev() {
            let h = self.node(id)?;
            acc = Some(match acc {
                None => h,
                Some(right) => self.hasher.hash_children(&h, &right),
            });
        }
        Ok(acc.unwrap_or_else(|| self.hasher.empty_root()))
    }

    fn check_size(&self, size: TreeSize) -> Result<(), MerkleError<S::Error>> {
        if size.0 > self.size {
            return Err(MerkleError::SizeOutOfRange {
                requested: size,
                current: self.size(),
            });
        }
        Ok(())
    }

    /// Appends one leaf hash (`hasher.hash_leaf(entry)`) and returns its index.
    ///
    /// Writes the leaf node and every parent it completes in one
    /// [`NodeStore::put_all`]; the size grows only if that succeeds.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<LeafIndex, MerkleError<S::Error>> {
        self.append_batch(std::slice::from_ref(&leaf_hash))
    }

    /// Appends several leaf hashes with a single [`NodeStore::put_all`] and
    /// returns the index of the first (the current size if `leaf_hashes` is
    /// empty, in which case nothing is written).
    pub fn append_batch(
        &mut self,
        leaf_hashes: &[Hash],
    ) -> Result<LeafIndex, MerkleError<S::Error>> {
        let first = self.size;
        if leaf_hashes.is_empty() {
            return Ok(LeafIndex(first));
        }
        let new_size = u64::try_from(leaf_hashes.len())
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or(MerkleError::TreeFull)?;
        let mut writes = Vec::with_capacity(leaf_hashes.len().saturating_mul(2));
        // The last left child (even index) completed at each level during this
        // batch: the left sibling a later right child needs, if not stored yet.
        let mut left_children: [Option<(u64, Hash)>; MAX_LEVEL as usize + 1] =
            [None; MAX_LEVEL as usize + 1];
        for (i, leaf) in (first..new_size).zip(leaf_hashes) {
            writes.push((NodeId::leaf(i), *leaf));
            let (mut index, mut hash, mut level) = (i, *leaf, 0u8);
            // A right child completes its parent. Since i < u64::MAX, i has
            // at most 63 trailing ones, so level stays <= MAX_LEVEL.
            while index & 1 == 1 {
                let left = match left_children[usize::from(level)] {
                    Some((j, h)) if j + 1 == index => h,
                    _ => self.node(NodeId::new(level, index - 1))?,
                };
                hash = self.hasher.hash_children(&left, &hash);
                index >>= 1;
                level += 1;
                writes.push((NodeId::new(level, index), hash));
            }
            left_children[usize::from(level)] = Some((index, hash));
        }
        self.store.put_all(&writes).map_err(MerkleError::Store)?;
        self.size = new_size;
        Ok(LeafIndex(first))
    }

    /// The root of the current tree.
    pub fn root(&self) -> Result<Hash, MerkleError<S::Error>> {
        self.range_root(0, self.size)
    }

    /// The root the tree had when it had `size` leaves (`size <=` current).
    pub fn root_at(&self, size: TreeSize) -> Result<Hash, MerkleError<S::Error>> {
        self.check_size(size)?;
        self.range_root(0, size.0)
    }

    /// The hash of leaf `index`.
    pub fn leaf_hash(&self, index: LeafIndex) -> Result<Hash, MerkleError<S::Error>> {
        if index.0 >= self.size {
            return Err(MerkleError::IndexOutOfRange {
                index,
                size: self.size(),
            });
        }
        self.node(NodeId::leaf(index.0))
    }

    /// The RFC 9162 inclusion proof (`PATH`) of leaf `index` in the tree of
    /// `size` leaves (`index < size <=` current size), ordered from the leaf up.
    pub fn inclusion_proof(
        &self,
        index: LeafIndex,
        size: TreeSize,
    ) -> Result<Vec<Hash>, MerkleError<S::Error>> {
        self.check_size(size)?;
        if index.0 >= size.0 {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        // Walk PATH top-down over the subtree [a, b) holding the leaf; only the
        // first right sibling taken can be ragged (it ends at `size`).
        let mut proof = Vec::with_capacity(64);
        let (mut a, mut b) = (0u64, size.0);
        while b - a > 1 {
            let k = split_point(b - a);
            if index.0 < a + k {
                proof.push(self.range_root(a + k, b)?);
                b = a + k;
            } else {
                proof.push(self.range_root(a, a + k)?);
                a += k;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    /// The RFC 9162 consistency proof (`PROOF`) from the tree of `old_size`
    /// leaves to the tree of `new_size` leaves (`old_size <= new_size <=`
    /// current size). Empty when `old_size` is 0 or equals `new_size`.
    pub fn consistency_proof(
        &self,
        old_size: TreeSize,
        new_size: TreeSize,
    ) -> Result<Vec<Hash>, MerkleError<S::Error>> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(MerkleError::OldSizeExceedsNewSize {
                old: old_size,
                new: new_size,
            });
        }
        let m = old_size.0;
        if m == 0 || m == new_size.0 {
            return Ok(Vec::new());
        }
        // SUBPROOF(m, D[a:b], have_root) unrolled, with m absolute: a < m <= b.
        let mut proof = Vec::with_capacity(64);
        let (mut a, mut b) = (0u64, new_size.0);
        let mut have_root = true;
        while m != b {
            let k = split_point(b - a);
            if m - a <= k {
                proof.push(self.range_root(a + k, b)?);
                b = a + k;
            } else {
                proof.push(self.range_root(a, a + k)?);
                a += k;
                have_root = false;
            }
        }
        if !have_root {
            proof.push(self.range_root(a, b)?);
        }
        proof.reverse();
        Ok(proof)
    }
}
