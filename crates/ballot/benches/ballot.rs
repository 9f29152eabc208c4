//! Criterion benchmarks of the election cryptography: encrypting and verifying a
//! ballot, adding it to the tally, and a trustee's decryption share, each against a
//! baseline measured in the same run: one variable-base Ristretto scalar
//! multiplication, the unit every proof is made of.
//!
//! Run with `cargo bench -p bboard-ballot --bench ballot` (or `-- --quick`).
#![allow(clippy::unwrap_used)]
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bboard_ballot::ballot::{encrypt_ballot, verify_ballot};
use bboard_ballot::dkg::{run_ceremony_in_memory, Threshold};
use bboard_ballot::pb;
use bboard_ballot::tally::{decryption_share, Tally};
use criterion::{criterion_group, criterion_main, Criterion};
use curve25519_dalek::{RistrettoPoint, Scalar};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The ballot of the design document's figure: one contest, 5 options, choose 0 to 2.
fn manifest() -> pb::ElectionManifest {
    pb::ElectionManifest {
        title: "bench".into(),
        contests: vec![pb::Contest {
            contest_id: "council".into(),
            title: "Council".into(),
            options: (0..5).map(|i| format!("option {i}")).collect(),
            min_selections: 0,
            max_selections: 2,
        }],
        precincts: vec![pb::Precinct {
            precinct_id: "p1".into(),
            name: "P1".into(),
        }],
        trustees: (0..3u8)
            .map(|i| pb::Trustee {
                name: format!("t{i}"),
                signing_key: vec![i + 1; 32],
                encryption_key: vec![0x80 | i; 32],
            })
            .collect(),
        threshold: 2,
        schedule: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let manifest = manifest();
    let (trustees, _, _) = run_ceremony_in_memory(Threshold::new(3, 2).unwrap(), &mut rng).unwrap();
    let key_set = trustees[0].key_set();
    let key = key_set.joint_key();
    let selections = vec![pb::ContestSelection {
        contest_id: "council".into(),
        selected_options: vec![1, 3],
    }];
    let (ballot, _) =
        encrypt_ballot(&manifest, "e", key, "p1", [0; 32], &selections, &mut rng).unwrap();

    let point = RistrettoPoint::mul_base(&Scalar::from(7u64));
    let scalar = Scalar::from(123_456_789u64);
    c.bench_function("baseline: one Ristretto scalar multiplication", |b| {
        b.iter(|| black_box(black_box(point) * black_box(scalar)))
    });
    c.bench_function(
        "encrypt a 5-option ballot (0..=2 selections) with proofs",
        |b| {
            b.iter(|| {
                encrypt_ballot(&manifest, "e", key, "p1", [0; 32], &selections, &mut rng).unwrap()
            })
        },
    );
    c.bench_function("verify a 5-option ballot", |b| {
        b.iter(|| verify_ballot(&manifest, "e", key, black_box(&ballot)).unwrap())
    });
    let mut tally = Tally::new(&manifest).unwrap();
    c.bench_function("add a ballot to the tally", |b| {
        b.iter(|| tally.add_ballot(black_box(&ballot)).unwrap())
    });
    let contest = tally.contest("p1", "council").unwrap().clone();
    c.bench_function("one trustee's decryption share of a 5-option tally", |b| {
        b.iter(|| decryption_share(&trustees[0], "e", "p1", &contest, &mut rng).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
