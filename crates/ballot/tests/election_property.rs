//! End-to-end property: for random manifests, trustees and ballots, any `k` trustees
//! decrypt exactly the plaintext counts of the cast (not spoiled) ballots, and `k - 1`
//! cannot.
#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use bboard_ballot::{
    ballot::{encrypt_ballot, spoil, verify_ballot, verify_spoiled},
    dkg::{derive_key_set, run_ceremony_with_transport, Threshold},
    pb,
    tally::{check_result, combine, decryption_share, result_message, Tally},
    validate_manifest, BallotError,
};
use proptest::prelude::*;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

const ELECTION: &str = "prop-election";

/// This test runs a whole election per case; CI's global `PROPTEST_CASES=1000` would
/// take far too long on 2 cores, so the environment may lower the count but not raise it
/// above this cap.
const MAX_CASES: u32 = 24;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(MAX_CASES, |n: u32| n.clamp(1, MAX_CASES))
}

#[derive(Debug, Clone)]
struct Shape {
    /// Per contest: (options, min, max).
    contests: Vec<(usize, u32, u32)>,
    precincts: usize,
    trustees: usize,
    threshold: usize,
    ballots: usize,
    seed: u64,
}

fn contest_shape() -> impl Strategy<Value = (usize, u32, u32)> {
    (2_usize..=5).prop_flat_map(|options| {
        (1..=options as u32).prop_flat_map(move |max| (Just(options), 0..=max, Just(max)))
    })
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        proptest::collection::vec(contest_shape(), 1..=3),
        1_usize..=2,
        (1_usize..=4).prop_flat_map(|n| (Just(n), 1..=n)),
        0_usize..=20,
        any::<u64>(),
    )
        .prop_map(
            |(contests, precincts, (trustees, threshold), ballots, seed)| Shape {
                contests,
                precincts,
                trustees,
                threshold,
                ballots,
                seed,
            },
        )
}

fn manifest(shape: &Shape) -> pb::ElectionManifest {
    pb::ElectionManifest {
        title: "property".into(),
        contests: shape
            .contests
            .iter()
            .enumerate()
            .map(|(c, &(options, min, max))| pb::Contest {
                contest_id: format!("contest-{c}"),
                title: format!("Contest {c}"),
                options: (0..options).map(|o| format!("option-{o}")).collect(),
                min_selections: min,
                max_selections: max,
            })
            .collect(),
        precincts: (0..shape.precincts)
            .map(|p| pb::Precinct {
                precinct_id: format!("precinct-{p}"),
                name: format!("Precinct {p}"),
            })
            .collect(),
        trustees: (0..shape.trustees)
            .map(|t| pb::Trustee {
                name: format!("trustee-{t}"),
                signing_key: vec![t as u8; 32],
                encryption_key: vec![0x80 | t as u8; 32],
            })
            .collect(),
        threshold: shape.threshold as u32,
        schedule: vec![],
    }
}

fn random_selections(m: &pb::ElectionManifest, rng: &mut StdRng) -> Vec<pb::ContestSelection> {
    m.contests
        .iter()
        .map(|c| {
            let count = rng.gen_range(c.min_selections..=c.max_selections) as usize;
            let mut options: Vec<u32> = (0..c.options.len() as u32).collect();
            options.shuffle(rng);
            options.truncate(count);
            pb::ContestSelection {
                contest_id: c.contest_id.clone(),
                selected_options: options,
            }
        })
        .collect()
}

/// All `k`-subsets of `0..n`.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0_u32..1 << n)
        .filter(|mask| mask.count_ones() as usize == k)
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}

fn run_election(shape: &Shape) -> Result<(), TestCaseError> {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let m = manifest(shape);
    validate_manifest(&m).unwrap();
    let threshold = Threshold::of_manifest(&m).unwrap();
    let (trustees, commitments, infos) =
        run_ceremony_with_transport(threshold, ELECTION, &mut rng).unwrap();
    let key_set = derive_key_set(threshold, &commitments, &infos).unwrap();
    prop_assert_eq!(key_set.to_joint_key(), trustees[0].key_set().to_joint_key());
    let key = key_set.joint_key();

    // Plain counts of cast ballots: [precinct][contest][option].
    let mut expected: Vec<Vec<Vec<u64>>> = (0..shape.precincts)
        .map(|_| {
            m.contests
                .iter()
                .map(|c| vec![0; c.options.len()])
                .collect()
        })
        .collect();
    let mut cast = vec![0_u64; shape.precincts];
    let mut tally = Tally::new(&m).unwrap();
    let mut code = [0_u8; 32];
    for _ in 0..shape.ballots {
        let p = rng.gen_range(0..shape.precincts);
        let precinct_id = &m.precincts[p].precinct_id;
        let selections = random_selections(&m, &mut rng);
        let (ballot, opening) =
            encrypt_ballot(&m, ELECTION, key, precinct_id, code, &selections, &mut rng).unwrap();
        verify_ballot(&m, ELECTION, key, &ballot).unwrap();
        code[0] = code[0].wrapping_add(1);
        if rng.gen_bool(0.25) {
            // Challenged: opened, checked, never counted.
            verify_spoiled(&m, ELECTION, key, &spoil(ballot, &opening)).unwrap();
            continue;
        }
        tally.add_ballot(&ballot).unwrap();
        cast[p] += 1;
        for (c, s) in selections.iter().enumerate() {
            for &o in &s.selected_options {
                expected[p][c][o as usize] += 1;
            }
        }
    }

    let k = shape.threshold;
    let all_subsets = subsets(shape.trustees, k);
    for (p, precinct) in m.precincts.iter().enumerate() {
        for (c, contest) in m.contests.iter().enumerate() {
            let t = tally
                .contest(&precinct.precinct_id, &contest.contest_id)
                .unwrap();
            prop_assert_eq!(t.ballots_counted, cast[p]);
            let shares: Vec<pb::DecryptionShare> = trustees
                .iter()
                .map(|tr| {
                    decryption_share(tr, ELECTION, &precinct.precinct_id, t, &mut rng).unwrap()
                })
                .collect();
            for subset in &all_subsets {
                let chosen: Vec<_> = subset.iter().map(|&i| shares[i].clone()).collect();
                let counts =
                    combine(&key_set, ELECTION, &precinct.precinct_id, t, &chosen).unwrap();
                prop_assert_eq!(&counts, &expected[p][c], "trustees {:?}", subset);
                let result = result_message(
                    &precinct.precinct_id,
                    &contest.contest_id,
                    &counts,
                    t.ballots_counted,
                );
                check_result(&result, &expected[p][c], cast[p]).unwrap();
            }
            let too_few: Vec<_> = shares[..k - 1].to_vec();
            prop_assert_eq!(
                combine(&key_set, ELECTION, &precinct.precinct_id, t, &too_few),
                Err(BallotError::NotEnoughShares {
                    have: k - 1,
                    need: k
                })
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_k_trustees_decrypt_exactly_the_cast_ballots(shape in shape()) {
        run_election(&shape)?;
    }
}
