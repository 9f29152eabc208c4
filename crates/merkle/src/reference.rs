//! Reference implementation of the RFC 9162 definitions over a slice of
//! leaf hashes: `MTH` (§2.1.1), `PATH` (§2.1.3.1) and `PROOF` / `SUBPROOF`
//! (§2.1.4.1), transcribed literally and recursively.
//!
//! These are O(n) per call and meant for tests and for auditors who
//! recompute a whole tree from its leaves; [`crate::MerkleTree`] is the fast
//! store-backed implementation and is tested against these.

use crate::hash::{Hash, LeafIndex, TreeSize};
use crate::hasher::TreeHasher;
use crate::verify::ProofError;

/// Largest power of two strictly smaller than `n` (RFC 9162's `k`); `n >= 2`.
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    // The largest power of two <= n - 1 (n - 1 >= 1 here).
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// `MTH(D[n])`: the Merkle Tree Hash of a list of leaf hashes (RFC 9162
/// §2.1.1). The input holds the leaf hashes `HASH(0x00 || d)`, not the raw
/// entries; the empty list hashes to [`TreeHasher::empty_root`].
pub fn root_of_leaf_hashes<H: TreeHasher>(hasher: &H, leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => hasher.empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split_point(leaf_hashes.len());
            let (left, right) = leaf_hashes.split_at(k);
            hasher.hash_children(
                &root_of_leaf_hashes(hasher, left),
                &root_of_leaf_hashes(hasher, right),
            )
        }
    }
}

/// `PATH(m, D[n])`: the inclusion proof of leaf `index` in the tree of all
/// `leaf_hashes` (RFC 9162 §2.1.3.1), ordered from the leaf up.
pub fn inclusion_proof_of_leaf_hashes<H: TreeHasher>(
    hasher: &H,
    leaf_hashes: &[Hash],
    index: LeafIndex,
) -> Result<Vec<Hash>, ProofError> {
    let size = TreeSize(leaf_hashes.len() as u64);
    if leaf_hashes.is_empty() {
        return Err(ProofError::EmptyTree);
    }
    let m = usize::try_from(index.0)
        .ok()
        .filter(|&m| m < leaf_hashes.len())
        .ok_or(ProofError::IndexOutOfRange { index, size })?;
    Ok(path(hasher, m, leaf_hashes))
}

fn path<H: TreeHasher>(hasher: &H, m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n);
    if m < k {
        let mut p = path(hasher, m, &d[..k]);
        p.push(root_of_leaf_hashes(hasher, &d[k..]));
        p
    } else {
        let mut p = path(hasher, m - k, &d[k..]);
        p.push(root_of_leaf_hashes(hasher, &d[..k]));
        p
    }
}

/// `PROOF(m, D[n])`: the consistency proof from the tree of the first
/// `old_size` leaves to the tree of all `leaf_hashes` (RFC 9162 §2.1.4.1).
///
/// Empty when `old_size` is 0 or equal to the number of leaves (the RFC
/// defines the proof only for `0 < m < n`; see [`crate::verify_consistency`]).
pub fn consistency_proof_of_leaf_hashes<H: TreeHasher>(
    hasher: &H,
    leaf_hashes: &[Hash],
    old_size: TreeSize,
) -> Result<Vec<Hash>, ProofError> {
    let new_size = TreeSize(leaf_hashes.len() as u64);
    let m = usize::try_from(old_size.0)
        .ok()
        .filter(|&m| m <= leaf_hashes.len())
        .ok_or(ProofError::OldSizeExceedsNewSize {
            old: old_size,
            new: new_size,
        })?;
    if m == 0 {
        return Ok(Vec::new());
    }
    Ok(subproof(hasher, m, leaf_hashes, true))
}

fn subproof<H: TreeHasher>(hasher: &H, m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b {
            Vec::new()
        } else {
            vec![root_of_leaf_hashes(hasher, d)]
        };
    }
    let k = split_point(n);
    if m <= k {
        let mut p = subproof(hasher, m, &d[..k], b);
        p.push(root_of_leaf_hashes(hasher, &d[k..]));
        p
    } else {
        let mut p = subproof(hasher, m - k, &d[k..], false);
        p.push(root_of_leaf_hashes(hasher, &d[..k]));
        p
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::split_point;

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (7, 4),
            (8, 4),
            (9, 8),
            (63, 32),
            (28937, 16384),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }
}
