//! Store-free proof verification, RFC 9162 §2.1.3.2 and §2.1.4.2.
//!
//! Every input here may come from an untrusted peer: sizes and indices up to
//! `u64::MAX` and proofs of any length are handled without panicking or
//! overflowing, and a proof of the wrong length is rejected before any
//! hashing is done.

use crate::hash::{Hash, LeafIndex, TreeSize};
use crate::hasher::TreeHasher;

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// An inclusion proof was requested for a tree with no leaves.
    #[error("the empty tree has no leaves, so no inclusion proof exists")]
    EmptyTree,
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: LeafIndex,
        /// The claimed tree size.
        size: TreeSize,
    },
    /// The proof does not have the number of hashes the sizes (and index) imply.
    #[error("wrong proof length: expected {expected} hashes, got {actual}")]
    WrongProofLength {
        /// Length implied by the index and size(s).
        expected: usize,
        /// Length of the supplied proof.
        actual: usize,
    },
    /// The root recomputed from the proof differs from the expected root.
    #[error("root mismatch: proof yields {computed}, expected {expected}")]
    RootMismatch {
        /// Root recomputed from the proof.
        computed: Hash,
        /// Root the caller expected.
        expected: Hash,
    },
    /// Consistency proof: the old tree is larger than the new tree.
    #[error("old tree size {old} is greater than new tree size {new}")]
    OldSizeExceedsNewSize {
        /// Claimed old size.
        old: TreeSize,
        /// Claimed new size.
        new: TreeSize,
    },
    /// Consistency proof: the old root recomputed from the proof differs from the old root.
    #[error("old root mismatch: proof yields {computed}, expected {expected}")]
    OldRootMismatch {
        /// Old root recomputed from the proof.
        computed: Hash,
        /// Old root the caller supplied.
        expected: Hash,
    },
    /// Consistency proof: the new root recomputed from the proof differs from the new root.
    #[error("new root mismatch: proof yields {computed}, expected {expected}")]
    NewRootMismatch {
        /// New root recomputed from the proof.
        computed: Hash,
        /// New root the caller supplied.
        expected: Hash,
    },
    /// Consistency proof between equal sizes, but the two roots differ.
    #[error("equal tree sizes {size} but different roots {old_root} and {new_root}")]
    EqualSizesDifferentRoots {
        /// The common size.
        size: TreeSize,
        /// Old root supplied.
        old_root: Hash,
        /// New root supplied.
        new_root: Hash,
    },
    /// A root claimed for the empty tree (size 0) is not the hasher's empty root.
    #[error("root {root} claimed for the empty tree is not the empty-tree root")]
    NotEmptyRoot {
        /// The root claimed for size 0.
        root: Hash,
    },
    /// The proof ran out of tree before it ran out of hashes, or the
    /// reverse (RFC 9162 "stop and fail"). Cannot happen once the length has
    /// been checked; kept as defence in depth.
    #[error("malformed proof for the given sizes")]
    Malformed,
}

/// `(inner, border)` decomposition of the inclusion path of `index` in a tree
/// of `size` leaves: `inner` siblings below the point where the path of
/// `index` and the path of the last leaf `size - 1` meet, then `border`
/// left siblings above it. Requires `index < size`.
fn decompose_inclusion(index: u64, size: u64) -> (u32, u32) {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    // inner <= 64; shifting a u64 by 64 would overflow, and then nothing is left.
    let above = index.checked_shr(inner).unwrap_or(0);
    (inner, above.count_ones())
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size`
/// leaves, or an error when `index` is not a leaf of that tree.
pub fn inclusion_proof_len(index: LeafIndex, size: TreeSize) -> Result<usize, ProofError> {
    if size.0 == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index.0 >= size.0 {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose_inclusion(index.0, size.0);
    Ok((inner + border) as usize)
}

/// Number of hashes in the consistency proof from `old_size` to `new_size`
/// (0 when `old_size` is 0 or equal to `new_size`).
pub fn consistency_proof_len(old_size: TreeSize, new_size: TreeSize) -> Result<usize, ProofError> {
    let (m, n) = (old_size.0, new_size.0);
    if m > n {
        return Err(ProofError::OldSizeExceedsNewSize {
            old: old_size,
            new: new_size,
        });
    }
    if m == 0 || m == n {
        return Ok(0);
    }
    // The old root sits on the path of leaf m-1, `shift` levels up; below it
    // the path is shared with the old tree and needs no hashes.
    let shift = m.trailing_zeros();
    let (inner, border) = decompose_inclusion(m - 1, n);
    let seed = if m.is_power_of_two() { 0 } else { 1 };
    Ok((inner - shift + border) as usize + seed)
}

/// Recomputes the root of a tree of `size` leaves from the hash of leaf
/// `index` and its inclusion proof (RFC 9162 §2.1.3.2, steps 1–5 without
/// the final comparison).
pub fn root_from_inclusion_proof<H: TreeHasher>(
    hasher: &H,
    leaf_hash: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    let expected = inclusion_proof_len(index, size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    // Step 2: fn = leaf_index, sn = tree_size - 1 (size > 0 checked above).
    let mut f = index.0;
    let mut s = size.0 - 1;
    // Step 3.
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if s == 0 {
            return Err(ProofError::Malformed);
        }
        if f & 1 == 1 || f == s {
            r = hasher.hash_children(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = hasher.hash_children(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    // Step 5 (first half): sn must be 0.
    if s != 0 {
        return Err(ProofError::Malformed);
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// whose root is `root`, given the inclusion proof (RFC 9162 §2.1.3.2).
///
/// Note that, as in RFC 9162, the root is what binds the size: a verifier
/// must take `size` and `root` from the same signed tree head.
pub fn verify_inclusion<H: TreeHasher>(
    hasher: &H,
    leaf_hash: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(hasher, leaf_hash, index, size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`, given the
/// consistency proof (RFC 9162 §2.1.4.2).
///
/// Edge cases (decided here, since RFC 9162 only defines `0 < old < new`):
/// * `old_size > new_size`: [`ProofError::OldSizeExceedsNewSize`].
/// * `old_size == new_size`: the proof must be empty and the roots equal
///   (and, if the size is 0, equal to the empty root).
/// * `old_size == 0`: every tree extends the empty tree; the proof must be
///   empty, `old_root` must be the hasher's empty root, and any `new_root`
///   is accepted.
pub fn verify_consistency<H: TreeHasher>(
    hasher: &H,
    old_size: TreeSize,
    new_size: TreeSize,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let expected = consistency_proof_len(old_size, new_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (first, second) = (old_size.0, new_size.0);
    if first == 0 {
        if *old_root != hasher.empty_root() {
            return Err(ProofError::NotEmptyRoot { root: *old_root });
        }
        if second == 0 && *new_root != *old_root {
            return Err(ProofError::NotEmptyRoot { root: *new_root });
        }
        return Ok(());
    }
    if first == second {
        if old_root != new_root {
            return Err(ProofError::EqualSizesDifferentRoots {
                size: old_size,
                old_root: *old_root,
                new_root: *new_root,
            });
        }
        return Ok(());
    }
    // Here 0 < first < second and the proof has the expected length.
    // Step 1: an empty path fails.
    if proof.is_empty() {
        return Err(ProofError::Malformed);
    }
    // Step 2: if first is an exact power of 2, prepend first_hash.
    let path: Vec<&Hash> = if first.is_power_of_two() {
        std::iter::once(old_root).chain(proof.iter()).collect()
    } else {
        proof.iter().collect()
    };
    // Step 3.
    let mut f = first - 1;
    let mut s = second - 1;
    // Step 4.
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // Step 5.
    let Some((seed, rest)) = path.split_first() else {
        return Err(ProofError::Malformed);
    };
    let mut fr = **seed;
    let mut sr = **seed;
    // Step 6.
    for c in rest {
        if s == 0 {
            return Err(ProofError::Malformed);
        }
        if f & 1 == 1 || f == s {
            fr = hasher.hash_children(c, &fr);
            sr = hasher.hash_children(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = hasher.hash_children(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    // Step 7.
    if s != 0 {
        return Err(ProofError::Malformed);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}
