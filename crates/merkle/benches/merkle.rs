//! Criterion benchmarks of the in-memory tree with the board's BLAKE3 hasher
//! at one million leaves: appends, roots, inclusion and consistency proofs.
//!
//! Run with `cargo bench -p bboard-merkle` (or `-- --quick` for a fast pass).
#![allow(clippy::unwrap_used)]
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bboard_merkle::{
    verify_consistency, verify_inclusion, Blake3Hasher, Hash, LeafIndex, MemoryNodeStore,
    MerkleTree, TreeHasher, TreeSize,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const N: u64 = 1_000_000;
const H: Blake3Hasher = Blake3Hasher;

fn leaf_hashes(n: u64) -> Vec<Hash> {
    (0..n).map(|i| H.hash_leaf(&i.to_le_bytes())).collect()
}

fn tree_of(leaves: &[Hash]) -> MerkleTree<Blake3Hasher, MemoryNodeStore> {
    let mut t = MerkleTree::new(H, MemoryNodeStore::new());
    t.append_batch(leaves).unwrap();
    t
}

/// Deterministic pseudo-random sequence (SplitMix64) for proof indices.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn bench_append(c: &mut Criterion) {
    let leaves = leaf_hashes(N);
    let mut g = c.benchmark_group("append_1M");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(N));
    g.bench_function("append_one_by_one", |b| {
        b.iter_with_large_drop(|| {
            let mut t = MerkleTree::new(H, MemoryNodeStore::new());
            for l in &leaves {
                t.append(*l).unwrap();
            }
            t
        })
    });
    // Baseline measured in the same run: the N-1 interior-node hashes that any
    // append-only tree of N leaves must compute, with nothing stored. BENCHMARKS.md
    // reports append cost as a ratio to this.
    g.bench_function("baseline_node_hashes_only", |b| {
        b.iter(|| {
            let mut acc = Hash([0; 32]);
            for l in &leaves[1..] {
                acc = H.hash_children(&acc, l);
            }
            acc
        })
    });
    g.bench_function("append_batch", |b| {
        b.iter_with_large_drop(|| {
            let mut t = MerkleTree::new(H, MemoryNodeStore::new());
            t.append_batch(&leaves).unwrap();
            t
        })
    });
    g.finish();

    // One append onto a tree that already holds 1M leaves (it grows by the
    // number of iterations criterion runs, a few million at most).
    let mut g = c.benchmark_group("at_1M");
    g.throughput(Throughput::Elements(1));
    let mut tree = tree_of(&leaves);
    let extra = H.hash_leaf(b"extra");
    g.bench_function("append_one", |b| {
        b.iter(|| tree.append(black_box(extra)).unwrap())
    });
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let leaves = leaf_hashes(N);
    let tree = tree_of(&leaves);
    let size = TreeSize(N);
    let root = tree.root().unwrap();
    let mut g = c.benchmark_group("at_1M");

    g.bench_function("root", |b| b.iter(|| black_box(&tree).root().unwrap()));
    g.bench_function("root_at_999_999", |b| {
        b.iter(|| tree.root_at(black_box(TreeSize(N - 1))).unwrap())
    });

    let mut rng = 1u64;
    g.bench_function("inclusion_proof_generate", |b| {
        b.iter(|| {
            let i = LeafIndex(splitmix(&mut rng) % N);
            tree.inclusion_proof(i, size).unwrap()
        })
    });
    let index = LeafIndex(777_777);
    let proof = tree.inclusion_proof(index, size).unwrap();
    let leaf = leaves[index.0 as usize];
    g.bench_function("inclusion_proof_verify", |b| {
        b.iter(|| {
            verify_inclusion(&H, black_box(&leaf), index, size, black_box(&proof), &root).unwrap()
        })
    });
    g.bench_function("inclusion_proof_generate_and_verify", |b| {
        b.iter(|| {
            let i = LeafIndex(splitmix(&mut rng) % N);
            let p = tree.inclusion_proof(i, size).unwrap();
            verify_inclusion(&H, &leaves[i.0 as usize], i, size, &p, &root).unwrap()
        })
    });

    let old = TreeSize(500_000);
    let old_root = tree.root_at(old).unwrap();
    g.bench_function("consistency_proof_generate_500k_to_1M", |b| {
        b.iter(|| tree.consistency_proof(black_box(old), size).unwrap())
    });
    let cproof = tree.consistency_proof(old, size).unwrap();
    g.bench_function("consistency_proof_verify_500k_to_1M", |b| {
        b.iter(|| verify_consistency(&H, old, size, &old_root, &root, black_box(&cproof)).unwrap())
    });
    g.bench_function("consistency_proof_generate_and_verify_random_old", |b| {
        b.iter(|| {
            let m = TreeSize(1 + splitmix(&mut rng) % (N - 1));
            let r1 = tree.root_at(m).unwrap();
            let p = tree.consistency_proof(m, size).unwrap();
            verify_consistency(&H, m, size, &r1, &root, &p).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
