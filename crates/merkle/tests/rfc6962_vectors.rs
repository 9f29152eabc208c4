//! Known-answer tests against the RFC 6962 / Certificate Transparency test
//! vectors, using [`Sha256Hasher`].
//!
//! All hex data below is copied from github.com/transparency-dev/merkle:
//! * leaves, node hashes and roots: `testonly/constants.go`
//!   (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1);
//! * inclusion / consistency proof vectors and the corruption probes:
//!   `proof/verify_test.go` (commit 02194e9afb6c1d95b5381350007963aa70fff472);
//! * further reference proofs: `testonly/reference_test.go`
//!   (commit 141d627eab770a7e9a2514f46a8b6338e6d90874).
#![allow(clippy::unwrap_used)]

use bboard_merkle::{
    consistency_proof_of_leaf_hashes, inclusion_proof_of_leaf_hashes, root_from_inclusion_proof,
    root_of_leaf_hashes, verify_consistency, verify_inclusion, Hash, LeafIndex, MemoryNodeStore,
    MerkleTree, NodeId, NodeStore, ProofError, Sha256Hasher, TreeHasher, TreeSize,
};

/// `testonly.LeafInputs()`.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `testonly.RootHashes()`: roots of the trees of sizes 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `testonly.NodeHashes()`: every complete subtree of the 8-leaf tree, by level.
const NODE_HASHES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// Inclusion proofs `(leaf index, tree size, proof)`. The first four are
/// `inclusionProofs` of verify_test.go, whose leaf numbers are 1-based
/// (`{1, 8}`, `{6, 8}`, `{3, 3}`, `{2, 5}`) and are converted to 0-based
/// indices here; the rest are `TestRefInclusionProof` of reference_test.go
/// (0-based already).
const INCLUSION: &[(u64, u64, &[&str])] = &[
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
];

/// Consistency proofs `(old size, new size, proof)`: `consistencyProofs` of
/// verify_test.go (which also contains all of `TestRefConsistencyProof`).
const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// `sha256SomeHash` of verify_test.go.
const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

fn h(s: &str) -> Hash {
    Hash::from_hex(s).unwrap()
}

fn hashes(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn leaf_hashes() -> Vec<Hash> {
    LEAF_INPUTS
        .iter()
        .map(|s| Sha256Hasher.hash_leaf(&hex::decode(s).unwrap()))
        .collect()
}

fn tree_of(n: usize) -> MerkleTree<Sha256Hasher, MemoryNodeStore> {
    let mut t = MerkleTree::new(Sha256Hasher, MemoryNodeStore::new());
    for leaf in &leaf_hashes()[..n] {
        t.append(*leaf).unwrap();
    }
    t
}

#[test]
fn empty_root_is_sha256_of_empty_string() {
    assert_eq!(Sha256Hasher.empty_root(), h(ROOTS[0]));
    assert_eq!(tree_of(0).root().unwrap(), h(ROOTS[0]));
}

#[test]
fn roots_of_every_size() {
    let leaves = leaf_hashes();
    let full = tree_of(8);
    assert_eq!(
        full.root().unwrap().to_hex(),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    for (size, root) in ROOTS.iter().enumerate() {
        let want = h(root);
        assert_eq!(
            root_of_leaf_hashes(&Sha256Hasher, &leaves[..size]),
            want,
            "reference, size {size}"
        );
        assert_eq!(tree_of(size).root().unwrap(), want, "tree, size {size}");
        assert_eq!(
            full.root_at(TreeSize(size as u64)).unwrap(),
            want,
            "root_at, size {size}"
        );
    }
}

#[test]
fn stored_nodes_match_vector_node_hashes() {
    let tree = tree_of(8);
    let store = tree.store();
    for (level, nodes) in NODE_HASHES.iter().enumerate() {
        for (index, want) in nodes.iter().enumerate() {
            let id = NodeId::new(level as u8, index as u64);
            assert_eq!(store.get(id).unwrap(), Some(h(want)), "{id}");
        }
        assert_eq!(store.level_len(level as u8), nodes.len() as u64);
    }
    assert_eq!(store.level_len(4), 0);
}

#[test]
fn inclusion_vectors() {
    let leaves = leaf_hashes();
    let tree = tree_of(8);
    for &(index, size, proof) in INCLUSION {
        let proof = hashes(proof);
        let (index, size) = (LeafIndex(index), TreeSize(size));
        let root = h(ROOTS[size.0 as usize]);
        let leaf = leaves[index.0 as usize];
        assert_eq!(
            tree.inclusion_proof(index, size).unwrap(),
            proof,
            "tree {index}/{size}"
        );
        assert_eq!(
            inclusion_proof_of_leaf_hashes(&Sha256Hasher, &leaves[..size.0 as usize], index)
                .unwrap(),
            proof,
            "reference {index}/{size}"
        );
        assert_eq!(
            root_from_inclusion_proof(&Sha256Hasher, &leaf, index, size, &proof).unwrap(),
            root
        );
        verify_inclusion(&Sha256Hasher, &leaf, index, size, &proof, &root).unwrap();
        for (desc, probe) in corrupt_inclusion(index, size, &proof, &root, &leaf) {
            assert!(
                verify_inclusion(
                    &Sha256Hasher,
                    &probe.leaf,
                    probe.index,
                    probe.size,
                    &probe.proof,
                    &probe.root
                )
                .is_err(),
                "probe {desc} verified for {index}/{size}"
            );
        }
    }
}

struct InclusionProbe {
    index: LeafIndex,
    size: TreeSize,
    root: Hash,
    leaf: Hash,
    proof: Vec<Hash>,
}

/// The probes of `corruptInclusionProof` in verify_test.go (minus the
/// wrong-length hash ones, which the `Hash` type makes unrepresentable).
fn corrupt_inclusion(
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
    leaf: &Hash,
) -> Vec<(String, InclusionProbe)> {
    let p = |i: u64, s: u64, root: Hash, leaf: Hash, proof: Vec<Hash>| InclusionProbe {
        index: LeafIndex(i),
        size: TreeSize(s),
        root,
        leaf,
        proof,
    };
    let (i, s, r, l) = (index.0, size.0, *root, *leaf);
    let v = proof.to_vec();
    let with = |front: bool, x: Hash| {
        let mut w = v.clone();
        if front {
            w.insert(0, x);
        } else {
            w.push(x);
        }
        w
    };
    let mut out = vec![
        ("index - 1", p(i.wrapping_sub(1), s, r, l, v.clone())),
        ("index + 1", p(i + 1, s, r, l, v.clone())),
        ("index ^ 2", p(i ^ 2, s, r, l, v.clone())),
        ("size * 2", p(i, s * 2, r, l, v.clone())),
        ("size / 2", p(i, s / 2, r, l, v.clone())),
        (
            "wrong leaf",
            p(i, s, r, Sha256Hasher.hash_leaf(b"WrongLeaf"), v.clone()),
        ),
        (
            "empty root",
            p(i, s, Sha256Hasher.empty_root(), l, v.clone()),
        ),
        ("random root", p(i, s, h(SOME_HASH), l, v.clone())),
        (
            "trailing garbage",
            p(i, s, r, l, with(false, Hash::default())),
        ),
        ("trailing root", p(i, s, r, l, with(false, r))),
        (
            "preceding garbage",
            p(i, s, r, l, with(true, Hash::default())),
        ),
        ("preceding root", p(i, s, r, l, with(true, r))),
    ]
    .into_iter()
    .map(|(d, p)| (d.to_string(), p))
    .collect::<Vec<_>>();
    for k in 0..v.len() {
        let mut w = v.clone();
        w[k].0[0] ^= 8;
        out.push((format!("modified proof[{k}] bit 3"), p(i, s, r, l, w)));
    }
    if !v.is_empty() {
        out.push((
            "removed component".into(),
            p(i, s, r, l, v[..v.len() - 1].to_vec()),
        ));
    }
    if v.len() > 1 {
        let mut w = vec![v[0], h(SOME_HASH)];
        w.extend_from_slice(&v[1..]);
        out.push(("inserted component".into(), p(i, s, r, l, w)));
    }
    out
}

#[test]
fn consistency_vectors() {
    let leaves = leaf_hashes();
    let tree = tree_of(8);
    for &(old, new, proof) in CONSISTENCY {
        let proof = hashes(proof);
        let (old, new) = (TreeSize(old), TreeSize(new));
        let (r1, r2) = (h(ROOTS[old.0 as usize]), h(ROOTS[new.0 as usize]));
        assert_eq!(
            tree.consistency_proof(old, new).unwrap(),
            proof,
            "tree {old}->{new}"
        );
        assert_eq!(
            consistency_proof_of_leaf_hashes(&Sha256Hasher, &leaves[..new.0 as usize], old)
                .unwrap(),
            proof,
            "reference {old}->{new}"
        );
        verify_consistency(&Sha256Hasher, old, new, &r1, &r2, &proof).unwrap();
        if proof.is_empty() {
            continue;
        }
        // The probes of `corruptConsistencyProof` in verify_test.go.
        let (m, n) = (old.0, new.0);
        let wrong_root = Sha256Hasher.hash_leaf(b"WrongRoot");
        let with = |front: bool, x: Hash| {
            let mut w = proof.clone();
            if front {
                w.insert(0, x);
            } else {
                w.push(x);
            }
            w
        };
        let mut probes: Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            ("size1 - 1".into(), m - 1, n, r1, r2, proof.clone()),
            ("size1 + 1".into(), m + 1, n, r1, r2, proof.clone()),
            ("size1 ^ 2".into(), m ^ 2, n, r1, r2, proof.clone()),
            ("size2 * 2".into(), m, n * 2, r1, r2, proof.clone()),
            ("size2 / 2".into(), m, n / 2, r1, r2, proof.clone()),
            ("wrong root1".into(), m, n, wrong_root, r2, proof.clone()),
            ("wrong root2".into(), m, n, r1, wrong_root, proof.clone()),
            ("swapped roots".into(), m, n, r2, r1, proof.clone()),
            ("empty proof".into(), m, n, r1, r2, vec![]),
            (
                "trailing garbage".into(),
                m,
                n,
                r1,
                r2,
                with(false, Hash::default()),
            ),
            ("trailing root1".into(), m, n, r1, r2, with(false, r1)),
            ("trailing root2".into(), m, n, r1, r2, with(false, r2)),
            (
                "preceding garbage".into(),
                m,
                n,
                r1,
                r2,
                with(true, Hash::default()),
            ),
            ("preceding root1".into(), m, n, r1, r2, with(true, r1)),
            ("preceding root2".into(), m, n, r1, r2, with(true, r2)),
            (
                "preceding proof[0]".into(),
                m,
                n,
                r1,
                r2,
                with(true, proof[0]),
            ),
            (
                "truncated proof".into(),
                m,
                n,
                r1,
                r2,
                proof[..proof.len() - 1].to_vec(),
            ),
        ];
        for k in 0..proof.len() {
            let mut w = proof.clone();
            w[k].0[0] ^= 16;
            probes.push((format!("modified proof[{k}] bit 4"), m, n, r1, r2, w));
        }
        for (desc, m, n, r1, r2, p) in probes {
            assert!(
                verify_consistency(&Sha256Hasher, TreeSize(m), TreeSize(n), &r1, &r2, &p).is_err(),
                "probe {desc} verified for {old}->{new}"
            );
        }
    }
}

/// `TestVerifyConsistency` table of verify_test.go, adapted: "don't care"
/// roots become arbitrary hashes, and for size 0 this crate additionally
/// requires the old root to be the empty root (documented decision).
#[test]
fn consistency_edge_table() {
    let root1 = Sha256Hasher.hash_leaf(b"don't care 1");
    let root2 = Sha256Hasher.hash_leaf(b"don't care 2");
    let empty = Sha256Hasher.empty_root();
    let v = |m, n, r1: &Hash, r2: &Hash, p: &[Hash]| {
        verify_consistency(&Sha256Hasher, TreeSize(m), TreeSize(n), r1, r2, p)
    };
    assert!(v(0, 0, &root1, &root2, &[]).is_err());
    assert!(v(1, 1, &root1, &root2, &[]).is_err());
    assert!(v(0, 0, &empty, &empty, &[]).is_ok());
    assert_eq!(
        v(0, 0, &root1, &root1, &[]),
        Err(ProofError::NotEmptyRoot { root: root1 })
    );
    assert!(v(0, 1, &empty, &root2, &[]).is_ok());
    assert!(v(1, 1, &root2, &root2, &[]).is_ok());
    assert!(v(1, 0, &root1, &root2, &[]).is_err());
    assert!(v(2, 1, &root1, &root2, &[]).is_err());
    assert!(v(1, 2, &root1, &root2, &[]).is_err());
    assert!(v(0, 0, &empty, &root2, &[]).is_err());
    assert!(v(1, 1, &empty, &root2, &[]).is_err());
    assert!(v(0, 0, &empty, &empty, &[empty]).is_err());
    assert!(v(0, 1, &empty, &empty, &[empty]).is_err());
    assert!(v(1, 1, &empty, &empty, &[empty]).is_err());
}

/// `TestVerifyInclusionSingleEntry` and `TestVerifyInclusion` of verify_test.go.
#[test]
fn inclusion_edge_table() {
    let hash = Sha256Hasher.hash_leaf(b"data");
    assert!(verify_inclusion(&Sha256Hasher, &hash, LeafIndex(0), TreeSize(1), &[], &hash).is_ok());
    let some = h(SOME_HASH);
    let empty = Sha256Hasher.empty_root();
    assert!(verify_inclusion(&Sha256Hasher, &hash, LeafIndex(0), TreeSize(1), &[], &some).is_err());
    for (i, s) in [(0, 0), (0, 1), (1, 0), (2, 1)] {
        let (i, s) = (LeafIndex(i), TreeSize(s));
        assert!(verify_inclusion(&Sha256Hasher, &some, i, s, &[], &empty).is_err());
        assert!(verify_inclusion(&Sha256Hasher, &empty, i, s, &[], &some).is_err());
    }
}
