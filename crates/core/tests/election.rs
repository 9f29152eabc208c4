//! A whole election through the board rules (in memory), then `verify_election`, and
//! every tampering the rules or the audit must catch.
#![allow(clippy::unwrap_used)]

use bboard_ballot::ballot::{encrypt_ballot, spoil};
use bboard_ballot::dkg::{Threshold, TrusteeCommitting};
use bboard_ballot::tally::{decryption_share, result_message};
use bboard_ballot::transport::{open_share_message, share_message, TransportSecret};
use bboard_core::audit::{verify_election, ElectionRecord};
use bboard_core::board::{Outcome, RejectCode};
use bboard_core::election::{load_election, tracking_code_of};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::{decode_leaf, encode_leaf};
use bboard_core::memory::MemoryBoard;
use bboard_core::pb::{self, entry_body::Kind, Phase, Role};
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::SeedableRng;

const ORIGIN: &str = "test.board/election";
const ELECTION: &str = "e1";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn pk(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().as_bytes().to_vec()
}

/// Everyone taking part, and the board.
struct World {
    board: MemoryBoard,
    clock: u64,
    authority: SigningKey,
    trustees: Vec<SigningKey>,
    transport: Vec<TransportSecret>,
    terminals: Vec<(SigningKey, &'static str)>,
    commissions: Vec<(SigningKey, &'static str)>,
    rng: StdRng,
}

impl World {
    fn leaf(&mut self, signer: &SigningKey, election_id: &str, kind: Kind) -> Vec<u8> {
        self.clock += 1;
        let body = pb::EntryBody {
            election_id: election_id.into(),
            created_unix_ms: self.clock,
            kind: Some(kind),
        };
        encode_leaf(self.clock, &SignedEnvelope::sign_body(&body, signer))
    }

    fn post_as(&mut self, signer: &SigningKey, election_id: &str, kind: Kind) -> Outcome {
        let leaf = self.leaf(signer, election_id, kind);
        self.board.apply_batch(&[leaf]).pop().unwrap()
    }

    fn post(&mut self, signer: &SigningKey, kind: Kind) -> Outcome {
        self.post_as(signer, ELECTION, kind)
    }

    fn ok(&mut self, signer: &SigningKey, kind: Kind) {
        let outcome = self.post(signer, kind);
        assert!(
            matches!(outcome, Outcome::Appended { .. }),
            "expected admission, got {outcome:?}"
        );
    }

    fn phase(&mut self, phase: Phase) {
        let authority = self.authority.clone();
        self.ok(
            &authority,
            Kind::PhaseChange(pb::PhaseChange {
                phase: phase as i32,
            }),
        );
    }

    fn manifest(&self) -> pb::ElectionManifest {
        pb::ElectionManifest {
            title: "Test election".into(),
            contests: vec![
                pb::Contest {
                    contest_id: "mayor".into(),
                    title: "Mayor".into(),
                    options: vec!["Ann".into(), "Bob".into(), "Cyd".into()],
                    min_selections: 1,
                    max_selections: 1,
                },
                pb::Contest {
                    contest_id: "council".into(),
                    title: "Council".into(),
                    options: vec!["X".into(), "Y".into(), "Z".into()],
                    min_selections: 0,
                    max_selections: 2,
                },
            ],
            precincts: vec![
                pb::Precinct {
                    precinct_id: "p1".into(),
                    name: "School 1".into(),
                },
                pb::Precinct {
                    precinct_id: "p2".into(),
                    name: "Library".into(),
                },
            ],
            trustees: self
                .trustees
                .iter()
                .zip(&self.transport)
                .enumerate()
                .map(|(i, (signing, transport))| pb::Trustee {
                    name: format!("trustee {i}"),
                    signing_key: pk(signing),
                    encryption_key: transport.public_key_bytes().to_vec(),
                })
                .collect(),
            threshold: 2,
            schedule: vec![],
        }
    }

    fn key_set(&self) -> bboard_ballot::dkg::KeySet {
        load_election(&self.board, ELECTION)
            .unwrap()
            .unwrap()
            .unwrap()
            .key_set
            .unwrap()
    }

    /// Casts (or spoils) one ballot from terminal `t`, continuing its chain.
    fn ballot(&mut self, t: usize, selections: &[Vec<u32>]) -> (pb::Ballot, pb::SpoiledBallot) {
        let manifest = self.manifest();
        let key_set = self.key_set();
        let (terminal, precinct) = self.terminals[t].clone();
        let head =
            bboard_core::election::tracking_head(&self.board, terminal.verifying_key().as_bytes())
                .unwrap();
        let selections: Vec<pb::ContestSelection> = manifest
            .contests
            .iter()
            .zip(selections)
            .map(|(c, s)| pb::ContestSelection {
                contest_id: c.contest_id.clone(),
                selected_options: s.clone(),
            })
            .collect();
        let (ballot, opening) = encrypt_ballot(
            &manifest,
            ELECTION,
            key_set.joint_key(),
            precinct,
            head,
            &selections,
            &mut self.rng,
        )
        .unwrap();
        let spoiled = spoil(ballot.clone(), &opening);
        (ballot, spoiled)
    }
}

fn setup() -> World {
    let mut rng = StdRng::seed_from_u64(7);
    let trustees: Vec<SigningKey> = (0..3).map(|i| key(10 + i)).collect();
    let transport = (0..3)
        .map(|_| TransportSecret::generate(&mut rng))
        .collect();
    let mut world = World {
        board: MemoryBoard::new(ORIGIN),
        clock: 0,
        authority: key(1),
        trustees,
        transport,
        terminals: vec![(key(20), "p1"), (key(21), "p1"), (key(22), "p2")],
        commissions: vec![(key(30), "p1"), (key(31), "p2")],
        rng,
    };
    let authority = world.authority.clone();
    let genesis = Kind::Genesis(pb::BoardGenesis {
        origin: ORIGIN.into(),
        authority_keys: vec![pk(&authority)],
        description: String::new(),
        organisations: Vec::new(),
    });
    assert!(matches!(
        world.post_as(&authority, "", genesis),
        Outcome::Appended { index: 0 }
    ));
    let manifest = world.manifest();
    world.ok(&authority, Kind::Manifest(manifest));
    let registrations: Vec<(Vec<u8>, Role, &str)> = world
        .trustees
        .iter()
        .map(|t| (pk(t), Role::Trustee, ""))
        .chain(
            world
                .terminals
                .iter()
                .map(|(t, p)| (pk(t), Role::Terminal, *p)),
        )
        .chain(
            world
                .commissions
                .iter()
                .map(|(c, p)| (pk(c), Role::PrecinctCommission, *p)),
        )
        .collect();
    for (public_key, role, precinct) in registrations {
        world.ok(
            &authority,
            Kind::RegisterKey(pb::RegisterKey {
                public_key,
                role: role as i32,
                precinct_id: precinct.into(),
                label: String::new(),
            }),
        );
    }
    world
}

/// Runs the key ceremony through board entries; returns the trustees' secret state.
fn ceremony(world: &mut World) -> Vec<bboard_ballot::dkg::Trustee> {
    world.phase(Phase::KeyCeremony);
    let threshold = Threshold::new(3, 2).unwrap();
    let mut round1: Vec<TrusteeCommitting> = (0..3)
        .map(|i| TrusteeCommitting::new(threshold, i, &mut world.rng).unwrap())
        .collect();
    let commitments: Vec<pb::DkgCommitment> =
        round1.iter().map(|t| t.commitment_message()).collect();
    for (i, c) in commitments.iter().enumerate() {
        let signer = world.trustees[i].clone();
        world.ok(&signer, Kind::DkgCommitment(c.clone()));
    }
    for (i, t) in round1.iter_mut().enumerate() {
        for (j, c) in commitments.iter().enumerate() {
            if i != j {
                t.insert_commitment(c).unwrap();
            }
        }
    }
    let mut round2: Vec<_> = round1.into_iter().map(|t| t.finish().unwrap()).collect();
    let infos: Vec<_> = round2.iter().map(|t| t.public_info().unwrap()).collect();
    for (i, info) in infos.iter().enumerate() {
        let signer = world.trustees[i].clone();
        world.ok(&signer, Kind::DkgPublicInfo(info.to_message()));
    }
    for (i, t) in round2.iter_mut().enumerate() {
        for (j, info) in infos.iter().enumerate() {
            if i != j {
                t.insert_public_info(info).unwrap();
            }
        }
    }
    let mut round3: Vec<_> = round2.into_iter().map(|t| t.finish().unwrap()).collect();
    let manifest = world.manifest();
    let mut posted = Vec::new();
    for from in 0..3u32 {
        for to in 0..3u32 {
            if from == to {
                continue;
            }
            let share = round3[from as usize].secret_share_for(to).unwrap();
            let message = share_message(
                &manifest.trustees[to as usize].encryption_key,
                ELECTION,
                &share,
                &mut world.rng,
            )
            .unwrap();
            let signer = world.trustees[from as usize].clone();
            world.ok(&signer, Kind::DkgSecretShare(message.clone()));
            posted.push(message);
        }
    }
    for message in &posted {
        let to = message.to_trustee as usize;
        let share = open_share_message(&world.transport[to], ELECTION, to as u32, message).unwrap();
        round3[to].insert_share(&share).unwrap();
    }
    let trustees: Vec<_> = round3.into_iter().map(|t| t.finish().unwrap()).collect();
    let joint = trustees[0].key_set().to_joint_key();
    let authority = world.authority.clone();
    world.ok(&authority, Kind::JointKey(joint));
    trustees
}

fn rejected(outcome: &Outcome, code: RejectCode, needle: &str) {
    match outcome {
        Outcome::Rejected(r) => {
            assert_eq!(r.code, code, "{r:?}");
            assert!(
                r.message.contains(needle),
                "{:?} lacks {needle:?}",
                r.message
            );
        }
        other => panic!("expected rejection containing {needle:?}, got {other:?}"),
    }
}

/// The votes cast in the main scenario: (terminal, selections).
fn votes() -> Vec<(usize, Vec<Vec<u32>>)> {
    vec![
        (0, vec![vec![0], vec![0, 1]]),
        (1, vec![vec![1], vec![]]),
        (0, vec![vec![0], vec![2]]),
        (2, vec![vec![2], vec![1, 2]]),
        (2, vec![vec![2], vec![1]]),
    ]
}

#[test]
fn whole_election_verifies_and_every_phase_rule_holds() {
    let mut world = setup();
    let terminal = world.terminals[0].0.clone();
    let authority = world.authority.clone();

    // No skipping phases, no ballots before OPEN.
    rejected(
        &world.post(
            &authority,
            Kind::PhaseChange(pb::PhaseChange {
                phase: Phase::Open as i32,
            }),
        ),
        RejectCode::FailedPrecondition,
        "next phase (KEY_CEREMONY)",
    );
    let trustees = ceremony(&mut world);
    world.phase(Phase::Open);

    let mut codes = Vec::new();
    for (t, selection) in votes() {
        let (ballot, _) = world.ballot(t, &selection);
        let signer = world.terminals[t].0.clone();
        let leaf = world.leaf(&signer, ELECTION, Kind::Ballot(ballot));
        assert!(matches!(
            world.board.apply_batch(std::slice::from_ref(&leaf))[0],
            Outcome::Appended { .. }
        ));
        codes.push(tracking_code_of(&decode_leaf(&leaf).unwrap()).unwrap());
    }
    assert_eq!(
        codes.iter().collect::<std::collections::HashSet<_>>().len(),
        codes.len()
    );

    // A spoiled ballot is published with its nonces and never counted.
    let (_, spoiled) = world.ballot(1, &[vec![2], vec![0]]);
    let signer = world.terminals[1].0.clone();
    world.ok(&signer, Kind::SpoiledBallot(spoiled));

    world.phase(Phase::Closed);
    // No ballot after CLOSED.
    let (ballot, _) = world.ballot(0, &[vec![1], vec![]]);
    rejected(
        &world.post(&terminal, Kind::Ballot(ballot)),
        RejectCode::FailedPrecondition,
        "accepted only in OPEN",
    );
    // Paper protocols: p1 matches, p2 is "falsified".
    let protocols = [
        ("p1", vec![vec![2, 1, 0], vec![1, 1, 1]]),
        ("p2", vec![vec![0, 0, 5], vec![0, 2, 1]]),
    ];
    for (c, (precinct, counts)) in protocols.iter().enumerate() {
        let signer = world.commissions[c].0.clone();
        world.ok(
            &signer,
            Kind::PrecinctProtocol(pb::PrecinctProtocol {
                precinct_id: (*precinct).into(),
                counts: ["mayor", "council"]
                    .iter()
                    .zip(counts)
                    .map(|(id, counts)| pb::ContestCount {
                        contest_id: (*id).into(),
                        option_counts: counts.clone(),
                    })
                    .collect(),
                // The falsified p2 protocol also claims 5 paper ballots for 2 cast.
                ballots_issued: counts[0].iter().sum(),
                ballots_cast: counts[0].iter().sum(),
                photo_hash: vec![],
            }),
        );
    }
    // A commission only speaks for its own precinct.
    let signer = world.commissions[0].0.clone();
    rejected(
        &world.post(
            &signer,
            Kind::PrecinctProtocol(pb::PrecinctProtocol {
                precinct_id: "p2".into(),
                ..Default::default()
            }),
        ),
        RejectCode::PermissionDenied,
        "registered for precinct \"p1\"",
    );

    world.phase(Phase::Tallying);
    let leaves = world.board.leaves().to_vec();
    let record = ElectionRecord::from_leaves(&leaves, ELECTION).unwrap();
    let tally = record.tally().unwrap();
    // Trustees 0 and 2 decrypt; trustee 1 stays offline.
    for trustee in [&trustees[0], &trustees[2]] {
        for precinct in ["p1", "p2"] {
            for contest in ["mayor", "council"] {
                let share = decryption_share(
                    trustee,
                    ELECTION,
                    precinct,
                    tally.contest(precinct, contest).unwrap(),
                    &mut world.rng,
                )
                .unwrap();
                let signer = world.trustees[trustee.index() as usize].clone();
                world.ok(&signer, Kind::DecryptionShare(share));
            }
        }
    }
    let expected = [
        ("p1", "mayor", vec![2, 1, 0]),
        ("p1", "council", vec![1, 1, 1]),
        ("p2", "mayor", vec![0, 0, 2]),
        ("p2", "council", vec![0, 2, 1]),
    ];
    for (precinct, contest, counts) in &expected {
        let ballots = if *precinct == "p1" { 3 } else { 2 };
        world.ok(
            &authority,
            Kind::Result(result_message(precinct, contest, counts, ballots)),
        );
    }
    world.phase(Phase::Published);

    let report = verify_election(world.board.leaves(), ELECTION).unwrap();
    assert!(report.is_ok(), "{report}");
    for (precinct, contest, counts) in &expected {
        let p = report
            .precincts
            .iter()
            .find(|p| p.precinct_id == *precinct)
            .unwrap();
        let c = p
            .contests
            .iter()
            .find(|c| c.contest_id == *contest)
            .unwrap();
        assert_eq!(c.decrypted.as_ref(), Some(counts));
        assert_eq!(c.published.as_ref(), Some(counts));
    }
    assert_eq!(report.precincts[1].ballots_spoiled, 0);
    assert_eq!(report.precincts[0].ballots_spoiled, 1);
    // p2's falsified protocol differs per option and in its total; p1's matches.
    assert_eq!(report.paper_mismatches.len(), 2, "{report}");
    assert!(report.paper_mismatches[0].starts_with("p2/mayor"));
    assert!(
        report.paper_mismatches[1].starts_with("p2: the paper protocol records 5 paper ballots")
            && report.paper_mismatches[1].contains("counts 2 ballots"),
        "{report}"
    );
    assert!(
        report.to_string().contains("WARNING: 2 difference(s)"),
        "{report}"
    );

    // Nothing more after PUBLISHED.
    rejected(
        &world.post(
            &authority,
            Kind::PhaseChange(pb::PhaseChange {
                phase: Phase::Published as i32 + 1,
            }),
        ),
        RejectCode::FailedPrecondition,
        "PUBLISHED",
    );

    // Tampering with any downloaded leaf is caught by the replay.
    let mut tampered = world.board.leaves().to_vec();
    let victim = tampered.len() - 3;
    let last = tampered[victim].len() - 1;
    tampered[victim][last] ^= 1;
    let report = verify_election(&tampered, ELECTION).unwrap();
    assert!(!report.is_ok());
    assert!(
        report.failures[0].leaf_index == Some(victim as u64),
        "{report}"
    );
}

#[test]
fn bad_ballots_are_rejected_on_apply_with_precise_reasons() {
    let mut world = setup();
    ceremony(&mut world);
    world.phase(Phase::Open);
    let terminal = world.terminals[0].0.clone();

    // A proof byte flipped.
    let (mut ballot, _) = world.ballot(0, &[vec![0], vec![]]);
    let proof = &mut ballot.contests[0].range_proof;
    let middle = proof.len() / 2;
    proof[middle] ^= 0x01;
    let outcome = world.post(&terminal, Kind::Ballot(ballot));
    assert!(
        matches!(&outcome, Outcome::Rejected(r) if r.code == RejectCode::InvalidArgument && r.message.contains("mayor")),
        "{outcome:?}"
    );

    // A ballot for another election (the terminal is scoped to e1).
    let (ballot, _) = world.ballot(0, &[vec![0], vec![]]);
    rejected(
        &world.post_as(&terminal, "e2", Kind::Ballot(ballot)),
        RejectCode::PermissionDenied,
        "registered for election",
    );

    // A ballot for another precinct than the terminal's.
    let (mut ballot, _) = world.ballot(0, &[vec![0], vec![]]);
    ballot.precinct_id = "p2".into();
    rejected(
        &world.post(&terminal, Kind::Ballot(ballot)),
        RejectCode::PermissionDenied,
        "registered for precinct",
    );

    // A ballot that does not continue the chain (replayed head).
    let (first, _) = world.ballot(0, &[vec![1], vec![]]);
    world.ok(&terminal, Kind::Ballot(first.clone()));
    let (mut stale, _) = world.ballot(0, &[vec![1], vec![]]);
    stale.previous_tracking_code = first.previous_tracking_code.clone();
    rejected(
        &world.post(&terminal, Kind::Ballot(stale)),
        RejectCode::FailedPrecondition,
        "tracking-code chain",
    );

    // A spoiled ballot whose nonces do not open it.
    let (_, mut spoiled) = world.ballot(0, &[vec![2], vec![0]]);
    spoiled.selections[0].selected_options = vec![1];
    let outcome = world.post(&terminal, Kind::SpoiledBallot(spoiled));
    assert!(
        matches!(&outcome, Outcome::Rejected(r) if r.code == RejectCode::InvalidArgument),
        "{outcome:?}"
    );

    // Shares before TALLYING.
    let trustee = world.trustees[0].clone();
    rejected(
        &world.post(
            &trustee,
            Kind::DecryptionShare(pb::DecryptionShare {
                trustee_index: 0,
                precinct_id: "p1".into(),
                contest_id: "mayor".into(),
                shares: vec![],
                proofs: vec![],
            }),
        ),
        RejectCode::FailedPrecondition,
        "accepted only in TALLYING",
    );
    // No key-ceremony message once the election is open.
    rejected(
        &world.post(
            &trustee,
            Kind::DkgCommitment(pb::DkgCommitment {
                trustee_index: 1,
                commitment: vec![0; 32],
            }),
        ),
        RejectCode::FailedPrecondition,
        "KEY_CEREMONY",
    );
}

#[test]
fn bad_shares_and_wrong_results_are_flagged_by_verify_election() {
    let mut world = setup();
    let trustees = ceremony(&mut world);
    world.phase(Phase::Open);
    for (t, selection) in votes() {
        let (ballot, _) = world.ballot(t, &selection);
        let signer = world.terminals[t].0.clone();
        world.ok(&signer, Kind::Ballot(ballot));
    }
    world.phase(Phase::Closed);
    world.phase(Phase::Tallying);
    let record = ElectionRecord::from_leaves(world.board.leaves(), ELECTION).unwrap();
    let tally = record.tally().unwrap();
    let contest = tally.contest("p1", "mayor").unwrap();
    // Trustee 0: a share with a corrupted proof; trustee 1 and 2: honest.
    let mut bad = decryption_share(&trustees[0], ELECTION, "p1", contest, &mut world.rng).unwrap();
    let last = bad.proofs[0].len() - 1;
    bad.proofs[0][last] ^= 1;
    let signer = world.trustees[0].clone();
    world.ok(&signer, Kind::DecryptionShare(bad));
    for t in [1, 2] {
        let share =
            decryption_share(&trustees[t], ELECTION, "p1", contest, &mut world.rng).unwrap();
        let signer = world.trustees[t].clone();
        world.ok(&signer, Kind::DecryptionShare(share));
    }
    // The authority publishes a result that is not the tally (Ann really has 2).
    let authority = world.authority.clone();
    world.ok(
        &authority,
        Kind::Result(result_message("p1", "mayor", &[1, 2, 0], 3)),
    );
    let report = verify_election(world.board.leaves(), ELECTION).unwrap();
    assert!(!report.is_ok());
    let text = report.to_string();
    assert!(text.contains("(#0) for p1/mayor is invalid"), "{text}");
    assert!(
        text.contains("published result for p1/mayor is not the tally"),
        "{text}"
    );
    // The two honest shares still decrypt the true tally.
    let p1 = &report.precincts[0];
    assert_eq!(p1.contests[0].decrypted, Some(vec![2, 1, 0]));
}

/// A node that verified a ballot before proposing it skips the proofs on apply; the
/// outcome is the same as verifying them, and an envelope that is not byte-identical
/// to the known one is verified in full.
#[test]
fn a_ballot_known_as_verified_prechecks_as_a_verified_one() {
    use bboard_core::election::{precheck, precheck_known, KnownEnvelope};
    use bboard_core::leaf::decode_leaf;

    let mut world = setup();
    ceremony(&mut world);
    world.phase(Phase::Open);
    let (ballot, _) = world.ballot(0, &[vec![0], vec![1]]);
    let signer = world.terminals[0].0.clone();
    let valid = world.leaf(&signer, ELECTION, Kind::Ballot(ballot.clone()));
    let mut corrupted_ballot = ballot;
    corrupted_ballot.contests[0].range_proof[5] ^= 1;
    let corrupted = world.leaf(&signer, ELECTION, Kind::Ballot(corrupted_ballot));
    let known = |leaf: &[u8]| KnownEnvelope {
        envelope: decode_leaf(leaf).unwrap().envelope,
        proofs_verified: true,
    };

    let verified = precheck(&world.board, &valid).unwrap();
    assert_eq!(verified.proofs, Some(Ok(())));
    let skipped = precheck_known(&world.board, &valid, |_| Some(known(&valid))).unwrap();
    assert_eq!(skipped.proofs, verified.proofs);
    assert_eq!(skipped.record, verified.record);

    // The corrupted ballot, offered the valid ballot's envelope as known: not the same
    // bytes, so its proofs are verified, and fail, exactly as without.
    let alone = precheck(&world.board, &corrupted).unwrap();
    assert!(matches!(alone.proofs, Some(Err(_))), "{:?}", alone.proofs);
    let offered = precheck_known(&world.board, &corrupted, |_| Some(known(&valid))).unwrap();
    assert_eq!(offered.proofs, alone.proofs);
    assert_eq!(offered.record, alone.record);
    // What is known is not verified again: the node must only mark what it verified.
    let trusted = precheck_known(&world.board, &corrupted, |_| Some(known(&corrupted))).unwrap();
    assert_eq!(trusted.proofs, Some(Ok(())));
}
