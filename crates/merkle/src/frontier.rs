//! The root of a tree computed by streaming its leaf hashes once, in O(log n) memory:
//! for checking a whole board against its stored nodes or a signed root without
//! holding the tree (10 million leaves would need 640 MB of node hashes).

use crate::hash::{Hash, TreeSize};
use crate::hasher::TreeHasher;

/// The roots of the complete subtrees that make up the leaves seen so far (the
/// "frontier", or compact range from 0): one per set bit of the leaf count, largest
/// (leftmost) first. Appending a leaf merges equal-sized subtrees, as a binary
/// counter carries.
#[derive(Clone, Debug)]
pub struct Frontier<H: TreeHasher> {
    hasher: H,
    /// (subtree height, subtree root), heights strictly decreasing.
    subtrees: Vec<(u8, Hash)>,
    size: u64,
}

impl<H: TreeHasher> Frontier<H> {
    /// The frontier of the empty tree.
    pub fn new(hasher: H) -> Self {
        Frontier {
            hasher,
            subtrees: Vec::new(),
            size: 0,
        }
    }

    /// Leaves appended so far.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Appends the next leaf's hash (`HASH(0x00 || data)`, not the data).
    pub fn append(&mut self, leaf_hash: Hash) {
        let mut carry = (0u8, leaf_hash);
        while let Some(&(height, left)) = self.subtrees.last() {
            if height != carry.0 {
                break;
            }
            self.subtrees.pop();
            carry = (height + 1, self.hasher.hash_children(&left, &carry.1));
        }
        self.subtrees.push(carry);
        self.size += 1;
    }

    /// `MTH` of the leaves appended so far (RFC 9162 §2.1.1): the subtrees folded
    /// from the right, as the recursive definition splits at the largest power of
    /// two below the size.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(&(_, smallest)) = subtrees.next() else {
            return self.hasher.empty_root();
        };
        subtrees.fold(smallest, |right, (_, left)| {
            self.hasher.hash_children(left, &right)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hasher::Blake3Hasher;
    use crate::reference::root_of_leaf_hashes;

    #[test]
    fn every_prefix_has_the_reference_root() {
        let hasher = Blake3Hasher;
        let leaves: Vec<Hash> = (0u32..70)
            .map(|i| hasher.hash_leaf(&i.to_be_bytes()))
            .collect();
        let mut frontier = Frontier::new(hasher);
        assert_eq!(frontier.root(), root_of_leaf_hashes(&hasher, &[]));
        for (n, leaf) in leaves.iter().enumerate() {
            frontier.append(*leaf);
            assert_eq!(frontier.size(), TreeSize(n as u64 + 1));
            assert_eq!(frontier.root(), root_of_leaf_hashes(&hasher, &leaves[..=n]));
            // One subtree per set bit of the size: memory is logarithmic.
            assert_eq!(frontier.subtrees.len(), (n + 1).count_ones() as usize);
        }
    }
}
