//! Edge cases: empty and single-leaf trees, powers of two, exhaustive small
//! trees, size limits up to `u64::MAX`, malformed proofs and store corruption.
#![allow(clippy::unwrap_used)]

use bboard_merkle::{
    consistency_proof_len, consistency_proof_of_leaf_hashes, inclusion_proof_len,
    inclusion_proof_of_leaf_hashes, root_from_inclusion_proof, root_of_leaf_hashes,
    verify_consistency, verify_inclusion, Blake3Hasher, Hash, LeafIndex, MemoryNodeStore,
    MemoryStoreError, MerkleError, MerkleTree, NodeId, NodeStore, ProofError, TreeHasher, TreeSize,
};

const H: Blake3Hasher = Blake3Hasher;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| H.hash_leaf(&i.to_be_bytes())).collect()
}

fn tree(leaves: &[Hash]) -> MerkleTree<Blake3Hasher, MemoryNodeStore> {
    let mut t = MerkleTree::new(H, MemoryNodeStore::new());
    t.append_batch(leaves).unwrap();
    t
}

#[test]
fn empty_tree() {
    let mut t = tree(&[]);
    assert!(t.is_empty());
    assert_eq!(t.size(), TreeSize(0));
    // BLAKE3 of the empty string.
    assert_eq!(
        t.root().unwrap().to_hex(),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    assert_eq!(t.root_at(TreeSize(0)).unwrap(), H.empty_root());
    assert_eq!(root_of_leaf_hashes(&H, &[]), H.empty_root());
    assert!(matches!(
        t.inclusion_proof(LeafIndex(0), TreeSize(0)),
        Err(MerkleError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        t.leaf_hash(LeafIndex(0)),
        Err(MerkleError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        t.root_at(TreeSize(1)),
        Err(MerkleError::SizeOutOfRange {
            requested: TreeSize(1),
            current: TreeSize(0)
        })
    ));
    assert_eq!(
        t.consistency_proof(TreeSize(0), TreeSize(0)).unwrap(),
        vec![]
    );
    assert_eq!(
        inclusion_proof_of_leaf_hashes(&H, &[], LeafIndex(0)),
        Err(ProofError::EmptyTree)
    );
    assert_eq!(
        verify_inclusion(
            &H,
            &H.empty_root(),
            LeafIndex(0),
            TreeSize(0),
            &[],
            &H.empty_root()
        ),
        Err(ProofError::EmptyTree)
    );
    // An empty batch writes nothing and returns the current size.
    assert_eq!(t.append_batch(&[]).unwrap(), LeafIndex(0));
    assert_eq!(t.store().node_count(), 0);
    assert_eq!(
        MerkleTree::open(H, MemoryNodeStore::new(), TreeSize(0))
            .unwrap()
            .root()
            .unwrap(),
        H.empty_root()
    );
}

#[test]
fn single_leaf() {
    let l = leaves(1);
    let t = tree(&l);
    assert_eq!(t.root().unwrap(), l[0]);
    let proof = t.inclusion_proof(LeafIndex(0), TreeSize(1)).unwrap();
    assert!(proof.is_empty());
    verify_inclusion(&H, &l[0], LeafIndex(0), TreeSize(1), &proof, &l[0]).unwrap();
    assert_eq!(
        verify_inclusion(&H, &l[0], LeafIndex(1), TreeSize(1), &proof, &l[0]),
        Err(ProofError::IndexOutOfRange {
            index: LeafIndex(1),
            size: TreeSize(1)
        })
    );
    assert_eq!(
        t.consistency_proof(TreeSize(0), TreeSize(1)).unwrap(),
        vec![]
    );
    assert_eq!(
        t.consistency_proof(TreeSize(1), TreeSize(1)).unwrap(),
        vec![]
    );
    verify_consistency(&H, TreeSize(0), TreeSize(1), &H.empty_root(), &l[0], &[]).unwrap();
    verify_consistency(&H, TreeSize(1), TreeSize(1), &l[0], &l[0], &[]).unwrap();
}

/// Every (index, size) and (old, new) of every tree up to 40 leaves, against
/// the reference implementation.
#[test]
fn exhaustive_small_trees() {
    let all = leaves(40);
    let t = tree(&all);
    for size in 0..=40u64 {
        let d = &all[..size as usize];
        let root = root_of_leaf_hashes(&H, d);
        assert_eq!(t.root_at(TreeSize(size)).unwrap(), root);
        for index in 0..size {
            let proof = t.inclusion_proof(LeafIndex(index), TreeSize(size)).unwrap();
            assert_eq!(
                proof,
                inclusion_proof_of_leaf_hashes(&H, d, LeafIndex(index)).unwrap()
            );
            assert_eq!(
                proof.len(),
                inclusion_proof_len(LeafIndex(index), TreeSize(size)).unwrap()
            );
            verify_inclusion(
                &H,
                &all[index as usize],
                LeafIndex(index),
                TreeSize(size),
                &proof,
                &root,
            )
            .unwrap();
        }
        for old in 0..=size {
            let proof = t.consistency_proof(TreeSize(old), TreeSize(size)).unwrap();
            assert_eq!(
                proof,
                consistency_proof_of_leaf_hashes(&H, d, TreeSize(old)).unwrap()
            );
            assert_eq!(
                proof.len(),
                consistency_proof_len(TreeSize(old), TreeSize(size)).unwrap()
            );
            let old_root = root_of_leaf_hashes(&H, &all[..old as usize]);
            verify_consistency(&H, TreeSize(old), TreeSize(size), &old_root, &root, &proof)
                .unwrap();
        }
    }
}

#[test]
fn powers_of_two_and_last_index() {
    let all = leaves(1025);
    let t = tree(&all);
    for k in 0..=10 {
        let size = 1u64 << k;
        for s in [size - 1, size, size + 1] {
            if s == 0 {
                continue;
            }
            let root = root_of_leaf_hashes(&H, &all[..s as usize]);
            assert_eq!(t.root_at(TreeSize(s)).unwrap(), root);
            for index in [0, s / 2, s - 1] {
                let proof = t.inclusion_proof(LeafIndex(index), TreeSize(s)).unwrap();
                verify_inclusion(
                    &H,
                    &all[index as usize],
                    LeafIndex(index),
                    TreeSize(s),
                    &proof,
                    &root,
                )
                .unwrap();
            }
            // Consistency from every power of two below, and from s - 1.
            for old in (0..k).map(|j| 1u64 << j).chain([s - 1]) {
                if old > s {
                    continue;
                }
                let proof = t.consistency_proof(TreeSize(old), TreeSize(s)).unwrap();
                let old_root = t.root_at(TreeSize(old)).unwrap();
                verify_consistency(&H, TreeSize(old), TreeSize(s), &old_root, &root, &proof)
                    .unwrap();
            }
        }
        // A perfect tree's root is its single top node.
        assert_eq!(
            t.store().get(NodeId::new(k as u8, 0)).unwrap(),
            Some(t.root_at(TreeSize(size)).unwrap())
        );
    }
}

#[test]
fn consistency_edge_cases() {
    let all = leaves(10);
    let t = tree(&all);
    let r = |s| t.root_at(TreeSize(s)).unwrap();
    // old == new: empty proof, equal roots.
    verify_consistency(&H, TreeSize(7), TreeSize(7), &r(7), &r(7), &[]).unwrap();
    assert!(matches!(
        verify_consistency(&H, TreeSize(7), TreeSize(7), &r(7), &r(6), &[]),
        Err(ProofError::EqualSizesDifferentRoots { .. })
    ));
    assert_eq!(
        verify_consistency(&H, TreeSize(7), TreeSize(7), &r(7), &r(7), &[r(7)]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            actual: 1
        })
    );
    // old == 0: empty proof, old root is the empty root, any new root.
    verify_consistency(&H, TreeSize(0), TreeSize(10), &H.empty_root(), &r(10), &[]).unwrap();
    verify_consistency(&H, TreeSize(0), TreeSize(10), &H.empty_root(), &all[3], &[]).unwrap();
    assert_eq!(
        verify_consistency(&H, TreeSize(0), TreeSize(10), &r(3), &r(10), &[]),
        Err(ProofError::NotEmptyRoot { root: r(3) })
    );
    assert!(matches!(
        verify_consistency(
            &H,
            TreeSize(0),
            TreeSize(10),
            &H.empty_root(),
            &r(10),
            &[r(10)]
        ),
        Err(ProofError::WrongProofLength {
            expected: 0,
            actual: 1
        })
    ));
    // old > new.
    assert_eq!(
        verify_consistency(&H, TreeSize(5), TreeSize(4), &r(5), &r(4), &[]),
        Err(ProofError::OldSizeExceedsNewSize {
            old: TreeSize(5),
            new: TreeSize(4)
        })
    );
    assert!(matches!(
        t.consistency_proof(TreeSize(5), TreeSize(4)),
        Err(MerkleError::OldSizeExceedsNewSize { .. })
    ));
    assert!(matches!(
        t.consistency_proof(TreeSize(5), TreeSize(11)),
        Err(MerkleError::SizeOutOfRange { .. })
    ));
    assert!(consistency_proof_of_leaf_hashes(&H, &all[..4], TreeSize(5)).is_err());
    // Precise errors for a tampered proof.
    let proof = t.consistency_proof(TreeSize(3), TreeSize(10)).unwrap();
    assert!(matches!(
        verify_consistency(&H, TreeSize(3), TreeSize(10), &r(4), &r(10), &proof),
        Err(ProofError::OldRootMismatch { .. })
    ));
    assert!(matches!(
        verify_consistency(&H, TreeSize(3), TreeSize(10), &r(3), &r(9), &proof),
        Err(ProofError::NewRootMismatch { .. })
    ));
}

#[test]
fn excessive_and_short_proofs_rejected_by_length() {
    let all = leaves(9);
    let t = tree(&all);
    let root = t.root().unwrap();
    let proof = t.inclusion_proof(LeafIndex(3), TreeSize(9)).unwrap();
    let mut long = proof.clone();
    long.resize(100_000, root);
    assert_eq!(
        verify_inclusion(&H, &all[3], LeafIndex(3), TreeSize(9), &long, &root),
        Err(ProofError::WrongProofLength {
            expected: proof.len(),
            actual: 100_000
        })
    );
    assert_eq!(
        verify_inclusion(&H, &all[3], LeafIndex(3), TreeSize(9), &proof[1..], &root),
        Err(ProofError::WrongProofLength {
            expected: proof.len(),
            actual: proof.len() - 1
        })
    );
    assert!(matches!(
        verify_inclusion(&H, &all[3], LeafIndex(4), TreeSize(9), &proof, &root),
        Err(ProofError::RootMismatch { .. })
    ));
    let cproof = t.consistency_proof(TreeSize(5), TreeSize(9)).unwrap();
    let mut long = cproof.clone();
    long.resize(65, root);
    assert!(matches!(
        verify_consistency(
            &H,
            TreeSize(5),
            TreeSize(9),
            &t.root_at(TreeSize(5)).unwrap(),
            &root,
            &long
        ),
        Err(ProofError::WrongProofLength { actual: 65, .. })
    ));
}

#[test]
fn huge_sizes_do_not_panic() {
    let x = H.hash_leaf(b"x");
    let max = u64::MAX;
    assert_eq!(
        inclusion_proof_len(LeafIndex(max - 1), TreeSize(max)),
        Ok(63)
    );
    assert_eq!(inclusion_proof_len(LeafIndex(0), TreeSize(max)), Ok(64));
    assert_eq!(
        inclusion_proof_len(LeafIndex(1 << 63), TreeSize(max)),
        Ok(63 + 1)
    );
    assert_eq!(
        inclusion_proof_len(LeafIndex(max), TreeSize(max)),
        Err(ProofError::IndexOutOfRange {
            index: LeafIndex(max),
            size: TreeSize(max)
        })
    );
    assert_eq!(consistency_proof_len(TreeSize(max), TreeSize(max)), Ok(0));
    assert!(consistency_proof_len(TreeSize(max - 1), TreeSize(max)).is_ok());
    assert!(consistency_proof_len(TreeSize(1), TreeSize(max)).is_ok());
    for (index, size) in [
        (max - 1, max),
        (0, max),
        (1 << 63, max),
        (max, max),
        (0, 1 << 63),
        (max - 2, max - 1),
    ] {
        for len in [0, 1, 63, 64, 65, 128] {
            let proof = vec![x; len];
            let _ = verify_inclusion(&H, &x, LeafIndex(index), TreeSize(size), &proof, &x);
            let _ = root_from_inclusion_proof(&H, &x, LeafIndex(index), TreeSize(size), &proof);
            let _ = verify_consistency(&H, TreeSize(index), TreeSize(size), &x, &x, &proof);
        }
    }
}

/// A store that "holds" a tree of `u64::MAX` identical leaves: every complete
/// subtree at level `l` has the same hash. Lets the tree compute real proofs
/// at the largest possible sizes.
#[derive(Clone)]
struct UniformStore {
    by_level: Vec<Hash>,
}

impl UniformStore {
    fn new(leaf: Hash) -> Self {
        let mut by_level = vec![leaf];
        for l in 0..63 {
            let h = by_level[l];
            by_level.push(H.hash_children(&h, &h));
        }
        UniformStore { by_level }
    }
}

impl NodeStore for UniformStore {
    type Error = MemoryStoreError;
    fn get(&self, id: NodeId) -> Result<Option<Hash>, Self::Error> {
        let end = (u128::from(id.index) + 1) << id.level;
        Ok(if id.level <= 63 && end <= u128::from(u64::MAX) {
            Some(self.by_level[usize::from(id.level)])
        } else {
            None
        })
    }
    fn put_all(&mut self, _nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn real_proofs_at_u64_max() {
    let leaf = H.hash_leaf(b"same");
    let mut t = MerkleTree::open(H, UniformStore::new(leaf), TreeSize(u64::MAX)).unwrap();
    let max = u64::MAX;
    let root = t.root().unwrap();
    for (index, size) in [
        (max - 1, max),
        (0, max),
        (1 << 63, max),
        ((1 << 63) - 1, 1 << 63),
        (12345, max - 7),
    ] {
        let size_root = t.root_at(TreeSize(size)).unwrap();
        let proof = t.inclusion_proof(LeafIndex(index), TreeSize(size)).unwrap();
        verify_inclusion(
            &H,
            &leaf,
            LeafIndex(index),
            TreeSize(size),
            &proof,
            &size_root,
        )
        .unwrap();
        let mut bad = proof.clone();
        bad[0].0[0] ^= 1;
        assert!(verify_inclusion(
            &H,
            &leaf,
            LeafIndex(index),
            TreeSize(size),
            &bad,
            &size_root
        )
        .is_err());
    }
    for (old, new) in [
        (max - 1, max),
        (1, max),
        (1 << 63, max),
        (max / 3, max),
        (3, 1 << 40),
        (max - 2, max - 1),
    ] {
        let proof = t.consistency_proof(TreeSize(old), TreeSize(new)).unwrap();
        let (r1, r2) = (
            t.root_at(TreeSize(old)).unwrap(),
            t.root_at(TreeSize(new)).unwrap(),
        );
        verify_consistency(&H, TreeSize(old), TreeSize(new), &r1, &r2, &proof).unwrap();
        assert!(verify_consistency(&H, TreeSize(old), TreeSize(new), &r2, &r1, &proof).is_err());
    }
    assert_eq!(t.root_at(TreeSize(max)).unwrap(), root);
    assert!(matches!(t.append(leaf), Err(MerkleError::TreeFull)));
    assert_eq!(t.size(), TreeSize(max));
}

#[test]
fn memory_store_missing_node_is_an_error_not_a_panic() {
    // A store holding the four leaves but none of their parents.
    let l = leaves(4);
    let mut store = MemoryNodeStore::new();
    store
        .put_all(
            &l.iter()
                .enumerate()
                .map(|(i, h)| (NodeId::leaf(i as u64), *h))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert!(matches!(
        MerkleTree::open(H, store.clone(), TreeSize(4)),
        Err(MerkleError::MissingNode(NodeId { level: 2, index: 0 }))
    ));
    assert!(matches!(
        MerkleTree::open(H, store.clone(), TreeSize(2)),
        Err(MerkleError::MissingNode(NodeId { level: 1, index: 0 }))
    ));
    // Size 3 needs node (1, 0) too.
    assert!(matches!(
        MerkleTree::open(H, store.clone(), TreeSize(3)),
        Err(MerkleError::MissingNode(NodeId { level: 1, index: 0 }))
    ));
    // Size 1 is fine; appending leaf 1 then completes (1, 0) from stored leaf 0
    // and rewrites leaf 1 identically.
    let mut t = MerkleTree::open(H, store, TreeSize(1)).unwrap();
    t.append(l[1]).unwrap();
    assert_eq!(t.root().unwrap(), root_of_leaf_hashes(&H, &l[..2]));

    // A persisted size larger than the store.
    let store = tree(&leaves(8)).into_store();
    let err = MerkleTree::open(H, store, TreeSize(9)).unwrap_err();
    assert!(matches!(
        err,
        MerkleError::MissingNode(NodeId { level: 0, index: 8 })
    ));
    assert_eq!(
        err.to_string(),
        "node store is missing node(level 0, index 8)"
    );
}

/// A store that hides one node and can be told to fail writes.
struct Faulty {
    inner: MemoryNodeStore,
    hidden: Option<NodeId>,
    fail_writes: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct DiskError;

impl NodeStore for Faulty {
    type Error = DiskError;
    fn get(&self, id: NodeId) -> Result<Option<Hash>, DiskError> {
        if Some(id) == self.hidden {
            return Ok(None);
        }
        Ok(self.inner.get(id).unwrap())
    }
    fn put_all(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), DiskError> {
        if self.fail_writes {
            return Err(DiskError);
        }
        self.inner.put_all(nodes).map_err(|_| DiskError)
    }
}

#[test]
fn corrupt_or_failing_store_yields_errors() {
    let all = leaves(12);
    let inner = tree(&all[..11]).into_store();
    // Size 11 = 8 + 2 + 1: open() checks (3, 0), (1, 4) and (0, 10).
    let hide = |id| Faulty {
        inner: inner.clone(),
        hidden: Some(id),
        fail_writes: false,
    };
    for id in [NodeId::new(3, 0), NodeId::new(1, 4), NodeId::leaf(10)] {
        assert!(
            matches!(MerkleTree::open(H, hide(id), TreeSize(11)), Err(MerkleError::MissingNode(m)) if m == id)
        );
    }
    // Leaf 9 is not needed for the root, but it is for these proofs.
    let t =
        MerkleTree::open(H, hide(NodeId::leaf(9)), TreeSize(11)).unwrap_or_else(|_| panic!("open"));
    assert!(matches!(
        t.inclusion_proof(LeafIndex(8), TreeSize(11)),
        Err(MerkleError::MissingNode(NodeId { level: 0, index: 9 }))
    ));
    assert!(matches!(
        t.consistency_proof(TreeSize(9), TreeSize(11)),
        Err(MerkleError::MissingNode(NodeId { level: 0, index: 9 }))
    ));
    assert!(matches!(
        t.leaf_hash(LeafIndex(9)),
        Err(MerkleError::MissingNode(NodeId { level: 0, index: 9 }))
    ));
    assert!(t.inclusion_proof(LeafIndex(1), TreeSize(11)).is_ok());
    // Appending leaf 11 needs its left sibling, leaf 10, from the store.
    let mut t = MerkleTree::open(H, hide(NodeId::leaf(10)), TreeSize(10))
        .unwrap_or_else(|_| panic!("open"));
    t.append(all[10]).unwrap_or_else(|_| panic!("append 10"));
    assert!(matches!(
        t.append(all[11]),
        Err(MerkleError::MissingNode(NodeId {
            level: 0,
            index: 10
        }))
    ));
    assert_eq!(
        t.size(),
        TreeSize(11),
        "a failed append does not grow the tree"
    );
    // A failing store.
    let mut store = t.into_store();
    store.hidden = None;
    store.fail_writes = true;
    let mut t = MerkleTree::open(H, store, TreeSize(11)).unwrap_or_else(|_| panic!("open"));
    let err = t.append(all[11]).unwrap_err();
    assert!(matches!(err, MerkleError::Store(DiskError)));
    assert_eq!(
        std::error::Error::source(&err).map(|e| e.to_string()),
        Some("disk on fire".into())
    );
    assert_eq!(t.size(), TreeSize(11));
}

#[test]
fn batch_and_single_appends_agree() {
    let all = leaves(777);
    let mut single = MerkleTree::new(H, MemoryNodeStore::with_capacity(777));
    for (i, l) in all.iter().enumerate() {
        assert_eq!(single.append(*l).unwrap(), LeafIndex(i as u64));
    }
    let mut batched = MerkleTree::new(H, MemoryNodeStore::new());
    assert_eq!(batched.append_batch(&all[..100]).unwrap(), LeafIndex(0));
    assert_eq!(
        batched.append_batch(&all[100..101]).unwrap(),
        LeafIndex(100)
    );
    assert_eq!(batched.append_batch(&all[101..]).unwrap(), LeafIndex(101));
    assert_eq!(single.store(), batched.store());
    assert_eq!(single.root().unwrap(), root_of_leaf_hashes(&H, &all));
    // 777 leaves: 777 + 388 + 194 + 97 + 48 + 24 + 12 + 6 + 3 + 1 complete subtrees.
    assert_eq!(
        single.store().node_count(),
        777 + 388 + 194 + 97 + 48 + 24 + 12 + 6 + 3 + 1
    );
}
