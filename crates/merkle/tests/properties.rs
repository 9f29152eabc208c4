//! Property tests: the store-backed [`MerkleTree`] against the literal RFC
//! 9162 reference implementation, and proof verification against tampering.
//!
//! The number of cases comes from the `PROPTEST_CASES` environment variable
//! (proptest's default configuration reads it; 256 when unset).
#![allow(clippy::unwrap_used)]

use bboard_merkle::{
    consistency_proof_of_leaf_hashes, inclusion_proof_of_leaf_hashes, root_from_inclusion_proof,
    root_of_leaf_hashes, verify_consistency, verify_inclusion, Blake3Hasher, Frontier, Hash,
    LeafIndex, MemoryNodeStore, MerkleError, MerkleTree, Sha256Hasher, TreeHasher, TreeSize,
};
use proptest::prelude::*;

const MAX_LEAVES: usize = 300;

fn make_leaves<H: TreeHasher>(hasher: &H, n: usize, seed: u64) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| {
            let mut data = seed.to_le_bytes().to_vec();
            data.extend_from_slice(&i.to_le_bytes());
            hasher.hash_leaf(&data)
        })
        .collect()
}

/// Builds a tree appending in chunks of `chunk` leaves (1 = `append`).
fn build<H: TreeHasher>(
    hasher: &H,
    leaves: &[Hash],
    chunk: usize,
) -> MerkleTree<H, MemoryNodeStore> {
    let mut tree = MerkleTree::new(hasher.clone(), MemoryNodeStore::new());
    for c in leaves.chunks(chunk.max(1)) {
        let before = tree.size().0;
        let first = if c.len() == 1 {
            tree.append(c[0]).unwrap()
        } else {
            tree.append_batch(c).unwrap()
        };
        assert_eq!(first, LeafIndex(before));
        assert_eq!(tree.size().0, before + c.len() as u64);
    }
    tree
}

fn flip(mut h: Hash, bit: usize) -> Hash {
    h.0[(bit / 8) % 32] ^= 1 << (bit % 8);
    h
}

fn check_roots<H: TreeHasher>(hasher: H, n: usize, seed: u64, chunk: usize, pick: u64) {
    let leaves = make_leaves(&hasher, n, seed);
    let tree = build(&hasher, &leaves, chunk);
    assert_eq!(tree.size(), TreeSize(n as u64));
    assert_eq!(tree.root().unwrap(), root_of_leaf_hashes(&hasher, &leaves));
    // The streaming frontier agrees with the store-backed tree.
    let mut frontier = Frontier::new(hasher.clone());
    leaves.iter().for_each(|leaf| frontier.append(*leaf));
    assert_eq!(frontier.size(), tree.size());
    assert_eq!(frontier.root(), tree.root().unwrap());
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(tree.leaf_hash(LeafIndex(i as u64)).unwrap(), *leaf);
    }
    assert!(matches!(
        tree.leaf_hash(LeafIndex(n as u64)),
        Err(MerkleError::IndexOutOfRange { .. })
    ));

    // A historical root equals the root of a tree built with only m leaves.
    let m = (pick % (n as u64 + 1)) as usize;
    let want = root_of_leaf_hashes(&hasher, &leaves[..m]);
    assert_eq!(tree.root_at(TreeSize(m as u64)).unwrap(), want);
    assert_eq!(build(&hasher, &leaves[..m], 1).root().unwrap(), want);
    assert!(matches!(
        tree.root_at(TreeSize(n as u64 + 1)),
        Err(MerkleError::SizeOutOfRange { .. })
    ));

    // open() resumes at the full size and at an older size.
    let store = tree.into_store();
    let reopened = MerkleTree::open(hasher.clone(), store.clone(), TreeSize(n as u64)).unwrap();
    assert_eq!(
        reopened.root().unwrap(),
        root_of_leaf_hashes(&hasher, &leaves)
    );
    let mut resumed = MerkleTree::open(hasher.clone(), store.clone(), TreeSize(m as u64)).unwrap();
    assert_eq!(resumed.root().unwrap(), want);
    resumed.append_batch(&leaves[m..]).unwrap();
    assert_eq!(
        resumed.root().unwrap(),
        root_of_leaf_hashes(&hasher, &leaves)
    );
    assert_eq!(
        resumed.store(),
        &store,
        "re-appending identical leaves rewrites identical nodes"
    );
    // Continue appending after open.
    let mut more = MerkleTree::open(hasher.clone(), store.clone(), TreeSize(n as u64)).unwrap();
    let extra = make_leaves(&hasher, n + 3, seed ^ 0x5555);
    let all: Vec<Hash> = leaves.iter().chain(&extra[n..]).copied().collect();
    for leaf in &extra[n..] {
        more.append(*leaf).unwrap();
    }
    assert_eq!(more.root().unwrap(), root_of_leaf_hashes(&hasher, &all));
    // Opening beyond what the store holds names a missing node.
    assert!(matches!(
        MerkleTree::open(hasher.clone(), store, TreeSize(n as u64 + 1)),
        Err(MerkleError::MissingNode(_))
    ));
}

#[allow(clippy::too_many_arguments)]
fn check_inclusion<H: TreeHasher>(
    hasher: H,
    tree: &MerkleTree<H, MemoryNodeStore>,
    leaves: &[Hash],
    size: u64,
    index: u64,
    r: &[u64; 4],
) {
    let n = leaves.len() as u64;
    let (li, ts) = (LeafIndex(index), TreeSize(size));
    let proof = tree.inclusion_proof(li, ts).unwrap();
    let reference = inclusion_proof_of_leaf_hashes(&hasher, &leaves[..size as usize], li).unwrap();
    assert_eq!(proof, reference, "index {index} size {size}");
    let root = tree.root_at(ts).unwrap();
    let leaf = leaves[index as usize];
    let v = |leaf: &Hash, i: u64, s: u64, p: &[Hash], root: &Hash| {
        verify_inclusion(&hasher, leaf, LeafIndex(i), TreeSize(s), p, root)
    };
    v(&leaf, index, size, &proof, &root).unwrap();
    assert_eq!(
        root_from_inclusion_proof(&hasher, &leaf, li, ts, &proof).unwrap(),
        root
    );

    // Flip a (random) bit of every proof hash.
    for k in 0..proof.len() {
        let mut p = proof.clone();
        p[k] = flip(p[k], (r[0] as usize).wrapping_add(k * 37));
        assert!(
            v(&leaf, index, size, &p, &root).is_err(),
            "flipped proof[{k}]"
        );
    }
    // Drop / add elements.
    if !proof.is_empty() {
        assert!(v(&leaf, index, size, &proof[1..], &root).is_err());
        assert!(v(&leaf, index, size, &proof[..proof.len() - 1], &root).is_err());
    }
    let junk = hasher.hash_leaf(&r[1].to_le_bytes());
    let mut p = proof.clone();
    p.insert((r[1] % (proof.len() as u64 + 1)) as usize, junk);
    assert!(v(&leaf, index, size, &p, &root).is_err());
    let mut p = proof.clone();
    p.push(root);
    assert!(v(&leaf, index, size, &p, &root).is_err());
    // Wrong leaf.
    let other_leaf = leaves[((index + 1 + r[2] % n) % n) as usize];
    if other_leaf != leaf {
        assert!(v(&other_leaf, index, size, &proof, &root).is_err());
    }
    // Wrong index, inside and outside the tree.
    if size > 1 {
        let j = (index + 1 + r[2] % (size - 1)) % size;
        assert_ne!(j, index);
        assert!(
            v(&leaf, j, size, &proof, &root).is_err(),
            "index {j} instead of {index}"
        );
    }
    assert!(v(&leaf, size + r[2] % 3, size, &proof, &root).is_err());
    assert!(v(&leaf, u64::MAX, size, &proof, &root).is_err());
    // Wrong size: the proof does not prove inclusion in another tree...
    let s2 = 1 + r[3] % n;
    if s2 != size && index < s2 {
        let root2 = tree.root_at(TreeSize(s2)).unwrap();
        assert!(
            v(&leaf, index, s2, &proof, &root2).is_err(),
            "size {s2} instead of {size}"
        );
    }
    // ...nor verifies with the right root but a doubled or halved size.
    assert!(v(&leaf, index, size * 2, &proof, &root).is_err());
    if size / 2 != size {
        assert!(v(&leaf, index, size / 2, &proof, &root).is_err());
    }
    // Wrong root.
    assert!(v(&leaf, index, size, &proof, &flip(root, r[3] as usize)).is_err());
    assert!(v(&leaf, index, size, &proof, &hasher.empty_root()).is_err());
    if size < n {
        assert!(v(
            &leaf,
            index,
            size,
            &proof,
            &tree.root_at(TreeSize(size + 1)).unwrap()
        )
        .is_err());
    }
}

/// A random proof request: `(size pick, index or old-size pick, tampering picks)`.
type Pick = (u64, u64, [u64; 4]);

/// Random proof requests.
type Picks = [Pick];

/// Checks inclusion proofs for `picks` in a tree of `n` leaves; half the picks take
/// the right edge (index = size - 1), where proofs are shortest and bugs hide.
fn inclusion_picks<H: TreeHasher>(hasher: H, n: usize, seed: u64, chunk: usize, picks: &Picks) {
    let leaves = make_leaves(&hasher, n, seed);
    let tree = build(&hasher, &leaves, chunk);
    for (a, b, r) in picks {
        let size = 1 + a % n as u64;
        let index = if b & 1 == 0 {
            size - 1
        } else {
            (b >> 1) % size
        };
        check_inclusion(hasher.clone(), &tree, &leaves, size, index, r);
    }
}

/// Checks consistency proofs for `picks` in a tree of `n` leaves.
fn consistency_picks<H: TreeHasher>(hasher: H, n: usize, seed: u64, chunk: usize, picks: &Picks) {
    let leaves = make_leaves(&hasher, n, seed);
    let tree = build(&hasher, &leaves, chunk);
    for (a, b, r) in picks {
        let new = a % (n as u64 + 1);
        check_consistency(hasher.clone(), &tree, &leaves, b % (new + 1), new, r);
    }
}

fn check_consistency<H: TreeHasher>(
    hasher: H,
    tree: &MerkleTree<H, MemoryNodeStore>,
    leaves: &[Hash],
    old: u64,
    new: u64,
    r: &[u64; 4],
) {
    let (m, n) = (TreeSize(old), TreeSize(new));
    let proof = tree.consistency_proof(m, n).unwrap();
    let reference = consistency_proof_of_leaf_hashes(&hasher, &leaves[..new as usize], m).unwrap();
    assert_eq!(proof, reference, "{old} -> {new}");
    let r1 = tree.root_at(m).unwrap();
    let r2 = tree.root_at(n).unwrap();
    let v = |a: u64, b: u64, r1: &Hash, r2: &Hash, p: &[Hash]| {
        verify_consistency(&hasher, TreeSize(a), TreeSize(b), r1, r2, p)
    };
    v(old, new, &r1, &r2, &proof).unwrap();
    let junk = hasher.hash_leaf(&r[1].to_le_bytes());

    if proof.is_empty() {
        // old == 0 or old == new.
        assert!(old == 0 || old == new);
        assert!(v(old, new, &r1, &r2, &[junk]).is_err());
        assert!(v(old, new, &r1, &r2, &[r1]).is_err());
        if old == 0 {
            // Any new root is consistent with the empty tree...
            assert!(new == 0 || v(old, new, &r1, &junk, &[]).is_ok());
            // ...but the old root must be the empty root.
            assert!(v(old, new, &junk, &r2, &[]).is_err());
        } else {
            assert!(v(old, new, &r1, &junk, &[]).is_err());
            assert!(v(old, new, &junk, &r2, &[]).is_err());
        }
        if new > 1 {
            assert!(v(old, new + 1, &r1, &r2, &[]).is_err() || old == 0);
        }
        return;
    }
    assert!(0 < old && old < new);

    for k in 0..proof.len() {
        let mut p = proof.clone();
        p[k] = flip(p[k], (r[0] as usize).wrapping_add(k * 41));
        assert!(v(old, new, &r1, &r2, &p).is_err(), "flipped proof[{k}]");
    }
    assert!(v(old, new, &r1, &r2, &proof[1..]).is_err());
    assert!(v(old, new, &r1, &r2, &proof[..proof.len() - 1]).is_err());
    assert!(v(old, new, &r1, &r2, &[]).is_err());
    let mut p = proof.clone();
    p.insert((r[1] % (proof.len() as u64 + 1)) as usize, junk);
    assert!(v(old, new, &r1, &r2, &p).is_err());
    for extra in [r1, r2, proof[0]] {
        let mut front = vec![extra];
        front.extend_from_slice(&proof);
        assert!(v(old, new, &r1, &r2, &front).is_err());
        let mut back = proof.clone();
        back.push(extra);
        assert!(v(old, new, &r1, &r2, &back).is_err());
    }
    // Wrong roots.
    assert!(v(old, new, &r2, &r1, &proof).is_err());
    assert!(v(old, new, &flip(r1, r[2] as usize), &r2, &proof).is_err());
    assert!(v(old, new, &r1, &flip(r2, r[2] as usize), &proof).is_err());
    assert!(v(old, new, &junk, &r2, &proof).is_err());
    assert!(v(old, new, &r1, &junk, &proof).is_err());
    // Wrong sizes with the right roots (the probes of transparency-dev's verify_test.go).
    for (a, b) in [
        (old - 1, new),
        (old + 1, new),
        (old ^ 2, new),
        (old, new * 2),
        (old, new / 2),
    ] {
        if (a, b) != (old, new) {
            assert!(
                v(a, b, &r1, &r2, &proof).is_err(),
                "sizes {a} -> {b} instead of {old} -> {new}"
            );
        }
    }
    // Wrong sizes with the true roots of those sizes.
    let leaves_n = leaves.len() as u64;
    let a = 1 + r[3] % (new - 1);
    if a != old {
        let ra = tree.root_at(TreeSize(a)).unwrap();
        assert!(
            v(a, new, &ra, &r2, &proof).is_err(),
            "old size {a} instead of {old}"
        );
    }
    let b = old + 1 + r[3] % (leaves_n - old);
    if b != new {
        let rb = tree.root_at(TreeSize(b)).unwrap();
        assert!(
            v(old, b, &r1, &rb, &proof).is_err(),
            "new size {b} instead of {new}"
        );
    }
}

/// A tree (`n` leaves from `seed`, appended in chunks of `chunk`), proof requests in
/// it, and which hasher builds it.
fn proof_case() -> impl Strategy<Value = (usize, u64, usize, Vec<Pick>, bool)> {
    (
        1..=MAX_LEAVES,
        any::<u64>(),
        1usize..=20,
        proptest::collection::vec((any::<u64>(), any::<u64>(), any::<[u64; 4]>()), 1..=4),
        any::<bool>(),
    )
}

proptest! {
    #[test]
    fn roots_match_reference_blake3(n in 0..=MAX_LEAVES, seed in any::<u64>(), chunk in 1usize..=20, pick in any::<u64>()) {
        check_roots(Blake3Hasher, n, seed, chunk, pick);
    }

    #[test]
    fn roots_match_reference_sha256(n in 0..=MAX_LEAVES, seed in any::<u64>(), chunk in 1usize..=20, pick in any::<u64>()) {
        check_roots(Sha256Hasher, n, seed, chunk, pick);
    }

    #[test]
    fn inclusion_proofs_match_reference_and_resist_tampering(
        (n, seed, chunk, picks, sha) in proof_case(),
    ) {
        if sha {
            inclusion_picks(Sha256Hasher, n, seed, chunk, &picks);
        } else {
            inclusion_picks(Blake3Hasher, n, seed, chunk, &picks);
        }
    }

    #[test]
    fn consistency_proofs_match_reference_and_resist_tampering(
        (n, seed, chunk, picks, sha) in proof_case(),
    ) {
        if sha {
            consistency_picks(Sha256Hasher, n, seed, chunk, &picks);
        } else {
            consistency_picks(Blake3Hasher, n, seed, chunk, &picks);
        }
    }

    /// Verification never panics, whatever the sizes, index and proof.
    #[test]
    fn verification_never_panics(
        index in any::<u64>(),
        size in prop_oneof![any::<u64>(), Just(u64::MAX), Just(u64::MAX - 1), 0u64..16],
        old in prop_oneof![any::<u64>(), Just(u64::MAX - 1), 0u64..16],
        proof in proptest::collection::vec(any::<[u8; 32]>().prop_map(Hash), 0..130),
        root in any::<[u8; 32]>().prop_map(Hash),
    ) {
        let h = Blake3Hasher;
        let _ = verify_inclusion(&h, &root, LeafIndex(index), TreeSize(size), &proof, &root);
        let _ = verify_consistency(&h, TreeSize(old), TreeSize(size), &root, &root, &proof);
        let _ = verify_consistency(&h, TreeSize(size), TreeSize(old), &root, &root, &proof);
    }
}
