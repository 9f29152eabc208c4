//! Evidence of misbehaviour, the witness's decisions and witness policies.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: any failure should abort the test loudly.

use bboard_core::alarm::sign_alarm;
use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::evidence::{
    canonical_note, verify_evidence, AcceptedSide, Evidence, EvidenceError, Verdict,
};
use bboard_core::pb;
use bboard_core::witness::{LogState, Witness, WitnessRefusal, WitnessState};
use bboard_core::Error;
use bboard_merkle::{Blake3Hasher, Hash, TreeHasher, TreeSize};
use bboard_testkit::{honest_tree, note_signer, signed_note, tree, Tree};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const ORIGIN: &str = "bboard.test/evidence";

fn node(i: u8) -> NoteSigner {
    note_signer(&format!("node-{i}"), i)
}

fn witness_signer(i: u8) -> NoteSigner {
    note_signer(&format!("witness-{i}"), 100 + i)
}

/// 2-of-3 over node-1..3.
fn policy() -> CosignaturePolicy {
    CosignaturePolicy::new(ORIGIN, (1..=3).map(|i| node(i).verifier()).collect(), 2).unwrap()
}

fn honest(n: u64) -> Tree {
    honest_tree(n)
}

fn note_of(tree: &Tree, size: u64, signers: &[NoteSigner]) -> String {
    signed_note(ORIGIN, tree, size, signers)
}

fn hexes(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(Hash::to_hex).collect()
}

fn equivocation() -> Evidence {
    Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(7), 7, &[node(1), node(2)]),
        b: note_of(&tree(7, 4), 7, &[node(3)]),
    }
}

fn not_a_prefix(m: u64, n: u64) -> Evidence {
    let good = honest(n);
    Evidence::NotAPrefix {
        origin: ORIGIN.into(),
        faulty: note_of(&tree(m, m / 2), m, &[node(3)]),
        honest: note_of(&good, n, &[node(1), node(2)]),
        root_at_m: good.root_at(TreeSize(m)).unwrap().to_hex(),
        proof: hexes(&good.consistency_proof(TreeSize(m), TreeSize(n)).unwrap()),
    }
}

// ---------------------------------------------------------------- equivocation

#[test]
fn equivocation_names_the_minority_signers() {
    let verdict = verify_evidence(&equivocation(), &policy()).unwrap();
    let Verdict::Equivocation {
        size,
        signers_a,
        signers_b,
        signed_both,
        accepted,
        culprits,
        ..
    } = &verdict
    else {
        panic!("wrong verdict {verdict:?}")
    };
    assert_eq!(*size, 7);
    assert_eq!(signers_a, &["node-1", "node-2"]);
    assert_eq!(signers_b, &["node-3"]);
    assert!(signed_both.is_empty());
    assert_eq!(*accepted, AcceptedSide::A);
    assert_eq!(culprits, &["node-3"]);
    assert_eq!(verdict.culprits(), ["node-3"]);
    let text = verdict.to_string();
    assert!(
        text.contains("EQUIVOCATION") && text.contains("culprits: node-3"),
        "{text}"
    );
}

#[test]
fn a_key_signing_both_roots_is_caught_even_without_a_majority() {
    let evidence = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(5), 5, &[node(1)]),
        b: note_of(&tree(5, 0), 5, &[node(1)]),
    };
    match verify_evidence(&evidence, &policy()).unwrap() {
        Verdict::Equivocation {
            accepted, culprits, ..
        } => {
            assert_eq!(accepted, AcceptedSide::Neither);
            assert_eq!(culprits, ["node-1"]);
        }
        other => panic!("wrong verdict {other:?}"),
    }
    // Both sides k-of-n thanks to node-2 signing both.
    let evidence = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(5), 5, &[node(1), node(2)]),
        b: note_of(&tree(5, 0), 5, &[node(2), node(3)]),
    };
    match verify_evidence(&evidence, &policy()).unwrap() {
        Verdict::Equivocation {
            accepted,
            culprits,
            signed_both,
            ..
        } => {
            assert_eq!(accepted, AcceptedSide::Both);
            assert_eq!(culprits, ["node-2"]);
            assert_eq!(signed_both, ["node-2"]);
        }
        other => panic!("wrong verdict {other:?}"),
    }
}

#[test]
fn equivocation_that_does_not_hold_says_why() {
    let p = policy();
    let same = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(5), 5, &[node(1)]),
        b: note_of(&honest(5), 5, &[node(2)]),
    };
    let err = verify_evidence(&same, &p).unwrap_err();
    assert!(
        matches!(err, EvidenceError::EqualRoots { size: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("roots are equal"));

    let sizes = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(5), 5, &[node(1)]),
        b: note_of(&tree(6, 0), 6, &[node(2)]),
    };
    assert!(matches!(
        verify_evidence(&sizes, &p),
        Err(EvidenceError::DifferentSizes { a: 5, b: 6 })
    ));

    let untrusted = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(5), 5, &[node(1)]),
        b: note_of(&tree(5, 0), 5, &[node(7)]),
    };
    let err = verify_evidence(&untrusted, &p).unwrap_err();
    assert!(
        err.to_string()
            .contains("checkpoint b carries a signature line by \"node-7\""),
        "{err}"
    );

    let mut other_origin = equivocation();
    if let Evidence::Equivocation { origin, .. } = &mut other_origin {
        *origin = "another.board".into();
    }
    let err = verify_evidence(&other_origin, &p).unwrap_err();
    assert!(err.to_string().contains("different origins"), "{err}");

    // A note of another board inside evidence about ours.
    let foreign = {
        let checkpoint = Checkpoint {
            origin: "another.board".into(),
            size: TreeSize(7),
            root: Hash([9; 32]),
        };
        SignedCheckpoint::sign(checkpoint, &node(3))
            .unwrap()
            .to_note()
    };
    let mixed = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: note_of(&honest(7), 7, &[node(1)]),
        b: foreign,
    };
    assert!(matches!(
        verify_evidence(&mixed, &p),
        Err(EvidenceError::NoteOrigin { .. })
    ));

    let garbage = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: "not a note".into(),
        b: note_of(&honest(7), 7, &[node(1)]),
    };
    let err = verify_evidence(&garbage, &p).unwrap_err();
    assert!(err
        .to_string()
        .contains("checkpoint a is not a valid signed checkpoint"));
}

#[test]
fn canonical_note_keeps_only_valid_trusted_lines() {
    let p = policy();
    let messy = note_of(&honest(4), 4, &[node(2), node(7), node(1)]);
    let clean = canonical_note(&messy, &p).unwrap();
    let parsed = SignedCheckpoint::parse(&clean).unwrap();
    assert_eq!(parsed.signer_names(), ["node-2", "node-1"]);
    // A duplicated line is kept once.
    let line = clean.lines().last().unwrap();
    let doubled = format!("{clean}{line}\n");
    assert_eq!(canonical_note(&doubled, &p).unwrap(), clean);
    // Nothing trusted left: an error.
    assert!(canonical_note(&note_of(&honest(4), 4, &[node(7)]), &p).is_err());
    // Evidence refuses the messy form but accepts the clean one.
    let b = note_of(&tree(4, 0), 4, &[node(3)]);
    let messy_evidence = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: messy,
        b: b.clone(),
    };
    assert!(matches!(
        verify_evidence(&messy_evidence, &p),
        Err(EvidenceError::UntrustedSignature { .. })
    ));
    let clean_evidence = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: clean,
        b,
    };
    assert!(verify_evidence(&clean_evidence, &p).is_ok());
}

// ---------------------------------------------------------------- not a prefix

#[test]
fn not_a_prefix_names_the_faulty_signers() {
    // m not a power of two, a power of two, m = n, m = 1.
    for (m, n) in [(6, 10), (8, 13), (4, 4), (1, 9), (7, 8)] {
        let verdict = verify_evidence(&not_a_prefix(m, n), &policy())
            .unwrap_or_else(|e| panic!("m={m} n={n}: {e}"));
        match &verdict {
            Verdict::NotAPrefix {
                faulty_size,
                honest_size,
                honest_signers,
                culprits,
                signed_both,
                ..
            } => {
                assert_eq!((*faulty_size, *honest_size), (m, n));
                assert_eq!(honest_signers, &["node-1", "node-2"]);
                assert_eq!(culprits, &["node-3"]);
                assert!(signed_both.is_empty());
            }
            other => panic!("wrong verdict {other:?}"),
        }
        assert!(verdict.to_string().contains("NOT A PREFIX"));
    }
}

#[test]
fn a_non_empty_root_for_size_zero_is_not_a_prefix() {
    let good = honest(3);
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        size: TreeSize(0),
        root: Hash([1; 32]),
    };
    let evidence = Evidence::NotAPrefix {
        origin: ORIGIN.into(),
        faulty: SignedCheckpoint::sign(forged, &node(2)).unwrap().to_note(),
        honest: note_of(&good, 3, &[node(1), node(3)]),
        root_at_m: Blake3Hasher.empty_root().to_hex(),
        proof: vec![],
    };
    let verdict = verify_evidence(&evidence, &policy()).unwrap();
    assert_eq!(verdict.culprits(), ["node-2"]);
}

#[test]
fn not_a_prefix_that_does_not_hold_says_why() {
    let p = policy();
    let good = honest(10);
    let proof = hexes(&good.consistency_proof(TreeSize(6), TreeSize(10)).unwrap());
    let root6 = good.root_at(TreeSize(6)).unwrap().to_hex();
    let make = |faulty: String, honest_note: String, root: String, proof: Vec<String>| {
        Evidence::NotAPrefix {
            origin: ORIGIN.into(),
            faulty,
            honest: honest_note,
            root_at_m: root,
            proof,
        }
    };
    let faulty = note_of(&tree(6, 2), 6, &[node(3)]);
    let cosigned = note_of(&good, 10, &[node(1), node(2)]);

    // The "honest" side is not k-of-n.
    let err = verify_evidence(
        &make(
            faulty.clone(),
            note_of(&good, 10, &[node(1)]),
            root6.clone(),
            proof.clone(),
        ),
        &p,
    )
    .unwrap_err();
    assert!(matches!(err, EvidenceError::HonestNotAccepted(_)), "{err}");

    // The faulty checkpoint is in fact a prefix.
    let err = verify_evidence(
        &make(
            note_of(&good, 6, &[node(3)]),
            cosigned.clone(),
            root6.clone(),
            proof.clone(),
        ),
        &p,
    )
    .unwrap_err();
    assert!(
        matches!(err, EvidenceError::IsAPrefix { size: 6, .. }),
        "{err}"
    );

    // A wrong root at m or a wrong proof.
    let err = verify_evidence(
        &make(
            faulty.clone(),
            cosigned.clone(),
            Hash([3; 32]).to_hex(),
            proof.clone(),
        ),
        &p,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("consistency proof does not verify"),
        "{err}"
    );
    let mut bad_proof = proof.clone();
    bad_proof.pop();
    assert!(matches!(
        verify_evidence(
            &make(faulty.clone(), cosigned.clone(), root6.clone(), bad_proof),
            &p
        ),
        Err(EvidenceError::ProofFails { .. })
    ));

    // Uppercase hex is refused (one spelling only).
    assert!(matches!(
        verify_evidence(
            &make(
                faulty.clone(),
                cosigned.clone(),
                root6.to_uppercase(),
                proof.clone()
            ),
            &p
        ),
        Err(EvidenceError::MalformedHash { .. })
    ));

    // The faulty checkpoint is the larger one.
    assert!(matches!(
        verify_evidence(
            &make(
                note_of(&tree(12, 2), 12, &[node(3)]),
                cosigned.clone(),
                root6.clone(),
                proof.clone()
            ),
            &p
        ),
        Err(EvidenceError::FaultyLarger {
            faulty: 12,
            honest: 10
        })
    ));

    // Absurdly long proof.
    assert!(matches!(
        verify_evidence(&make(faulty, cosigned, root6.clone(), vec![root6; 65]), &p),
        Err(EvidenceError::ProofTooLong(65))
    ));
}

// ---------------------------------------------------------------- JSON

#[test]
fn json_round_trips_with_kind_and_version() {
    for evidence in [equivocation(), not_a_prefix(6, 10)] {
        let json = evidence.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["kind"], evidence.kind());
        let back = Evidence::from_json(&json).unwrap();
        assert_eq!(back, evidence);
        assert_eq!(
            verify_evidence(&back, &policy()).unwrap(),
            verify_evidence(&evidence, &policy()).unwrap()
        );
    }
}

#[test]
fn json_of_other_versions_kinds_or_fields_is_refused() {
    let json = equivocation().to_json();
    let v2 = json.replace("\"version\": 1", "\"version\": 2");
    assert_ne!(v2, json);
    assert!(matches!(
        Evidence::from_json(&v2),
        Err(EvidenceError::Json(e)) if e.contains("version 2")
    ));
    let censorship = json.replace("\"equivocation\"", "\"censorship\"");
    assert!(Evidence::from_json(&censorship).is_err());
    let extra = json.replacen('{', "{\"extra\": 1,", 1);
    assert!(Evidence::from_json(&extra).is_err());
    assert!(Evidence::from_json("").is_err());
    assert!(Evidence::from_json("[]").is_err());
}

/// Flipping any byte of a valid evidence file makes it fail or changes its verdict.
fn assert_tamper_evident(evidence: &Evidence) {
    let p = policy();
    let original = verify_evidence(evidence, &p).unwrap();
    let json = evidence.to_json().into_bytes();
    let mut checked = 0;
    for position in 0..json.len() {
        for flip in [0x01u8, 0x20] {
            let mut altered = json.clone();
            altered[position] ^= flip;
            let Ok(text) = String::from_utf8(altered) else {
                continue;
            };
            let Ok(parsed) = Evidence::from_json(&text) else {
                continue;
            };
            checked += 1;
            if let Ok(verdict) = verify_evidence(&parsed, &p) {
                assert_ne!(
                    verdict, original,
                    "flipping byte {position} (^{flip:#x}) kept the verdict"
                );
            }
        }
    }
    assert!(checked > 100, "too few alterations parsed ({checked})");
}

#[test]
fn altered_equivocation_evidence_fails() {
    assert_tamper_evident(&equivocation());
}

#[test]
fn altered_not_a_prefix_evidence_fails() {
    assert_tamper_evident(&not_a_prefix(6, 10));
}

/// A terminal's note that node-2 forwarded to leader 1 and saw missing at size 5.
fn censored_envelope() -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: 7,
            kind: Some(pb::entry_body::Kind::Note(pb::Note {
                text: "dropped by the leader".into(),
            })),
        },
        &SigningKey::from_bytes(&[77; 32]),
    )
}

fn alarm_statement() -> pb::AlarmStatement {
    pb::AlarmStatement {
        origin: ORIGIN.into(),
        node_name: "node-2".into(),
        envelope: Some(censored_envelope().to_proto()),
        received_unix_ms: 1_000,
        deadline_unix_ms: 3_000,
        raised_unix_ms: 5_000,
        board_size: 5,
        board_root: honest(5).root_at(TreeSize(5)).unwrap().as_bytes().to_vec(),
        forwarded_to_node: 1,
        forwarded_to_address: "127.0.0.1:7101".into(),
    }
}

fn censorship_with(statement: &pb::AlarmStatement, by: &NoteSigner, size: u64) -> Evidence {
    let alarm = sign_alarm(statement, by);
    Evidence::censorship(
        ORIGIN,
        &alarm,
        note_of(&honest(size), size, &[node(2), node(3)]),
    )
}

fn censorship() -> Evidence {
    censorship_with(&alarm_statement(), &node(2), 7)
}

#[test]
fn censorship_evidence_names_the_node_the_envelope_and_the_leader() {
    let verdict = verify_evidence(&censorship(), &policy()).unwrap();
    let Verdict::Censorship {
        raised_by,
        envelope_id,
        signer,
        forwarded_to_node,
        forwarded_to_address,
        board_size,
        checkpoint_size,
        checkpoint_signers,
        ..
    } = &verdict
    else {
        panic!("expected a censorship verdict, got {verdict:?}");
    };
    assert_eq!(raised_by, "node-2");
    assert_eq!(*envelope_id, censored_envelope().id());
    assert_eq!(
        *signer,
        hex::encode(SigningKey::from_bytes(&[77; 32]).verifying_key().as_bytes())
    );
    assert_eq!(
        (*forwarded_to_node, forwarded_to_address.as_str()),
        (1, "127.0.0.1:7101")
    );
    assert_eq!((*board_size, *checkpoint_size), (5, 7));
    assert_eq!(checkpoint_signers, &["node-2", "node-3"]);
    assert!(verdict.culprits().is_empty());
    let text = verdict.to_string();
    assert!(
        text.contains("CENSORSHIP") && text.contains("node-2"),
        "{text}"
    );
    // JSON round trip, with its kind tag.
    let json = censorship().to_json();
    assert!(json.contains("\"kind\": \"censorship\""), "{json}");
    assert_eq!(Evidence::from_json(&json).unwrap(), censorship());
    assert_eq!(censorship().kind(), "censorship");
}

#[test]
fn forged_altered_or_stale_censorship_evidence_is_rejected_with_a_reason() {
    let p = policy();
    let reason = |e: &Evidence| verify_evidence(e, &p).unwrap_err().to_string();
    // Signed by a key that is not a node of the board.
    let stranger = note_signer("node-2", 55);
    let forged = censorship_with(&alarm_statement(), &stranger, 7);
    assert!(
        reason(&forged).contains("not a node of this board"),
        "{}",
        reason(&forged)
    );
    // Signed by node-3 but claiming to come from node-2.
    let lying = censorship_with(&alarm_statement(), &node(3), 7);
    assert!(reason(&lying).contains("names node"), "{}", reason(&lying));
    // The statement altered after signing (the alarm re-encoded around it).
    let Evidence::Censorship {
        alarm, checkpoint, ..
    } = censorship()
    else {
        unreachable!()
    };
    let mut decoded = pb::CensorshipAlarm::default();
    prost::Message::merge(
        &mut decoded,
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &alarm)
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mut statement: pb::AlarmStatement =
        prost::Message::decode(decoded.statement.as_slice()).unwrap();
    statement.forwarded_to_node = 3;
    decoded.statement = prost::Message::encode_to_vec(&statement);
    let altered = Evidence::censorship(ORIGIN, &decoded, checkpoint.clone());
    assert!(
        reason(&altered).contains("does not verify"),
        "{}",
        reason(&altered)
    );
    // Not canonical base64 (padding removed).
    let unpadded = Evidence::Censorship {
        origin: ORIGIN.into(),
        alarm: alarm.trim_end_matches('=').to_string(),
        checkpoint: checkpoint.clone(),
    };
    if unpadded != censorship() {
        assert!(matches!(
            verify_evidence(&unpadded, &p),
            Err(EvidenceError::MalformedAlarm(_))
        ));
    }
    let garbage = Evidence::Censorship {
        origin: ORIGIN.into(),
        alarm: "not base64!".into(),
        checkpoint: checkpoint.clone(),
    };
    assert!(matches!(
        verify_evidence(&garbage, &p),
        Err(EvidenceError::MalformedAlarm(_))
    ));
    // A checkpoint without k-of-n signatures.
    let weak = Evidence::Censorship {
        origin: ORIGIN.into(),
        alarm: alarm.clone(),
        checkpoint: note_of(&honest(7), 7, &[node(1)]),
    };
    assert!(matches!(
        verify_evidence(&weak, &p),
        Err(EvidenceError::CheckpointNotAccepted(_))
    ));
    // A checkpoint older than the board the alarm saw.
    let stale = censorship_with(&alarm_statement(), &node(2), 4);
    assert!(matches!(
        verify_evidence(&stale, &p),
        Err(EvidenceError::CheckpointTooOld {
            checkpoint: 4,
            alarm: 5
        })
    ));
    // An alarm of another board.
    let mut foreign = alarm_statement();
    foreign.origin = "other.board".into();
    let foreign = censorship_with(&foreign, &node(2), 7);
    assert!(reason(&foreign).contains("board"), "{}", reason(&foreign));
    // Evidence for another origin than the verifier's.
    let Evidence::Censorship {
        alarm, checkpoint, ..
    } = censorship()
    else {
        unreachable!()
    };
    let elsewhere = Evidence::Censorship {
        origin: "other.board".into(),
        alarm,
        checkpoint,
    };
    assert!(matches!(
        verify_evidence(&elsewhere, &p),
        Err(EvidenceError::WrongOrigin { .. })
    ));
}

#[test]
fn altered_censorship_evidence_fails() {
    assert_tamper_evident(&censorship());
}

proptest! {
    #[test]
    fn arbitrary_evidence_never_panics(
        a in ".{0,200}", b in ".{0,200}", root in "[0-9a-f]{0,70}",
        proof in proptest::collection::vec("[0-9a-f]{64}", 0..70),
    ) {
        let p = policy();
        let _ = verify_evidence(&Evidence::Equivocation { origin: ORIGIN.into(), a: a.clone(), b: b.clone() }, &p);
        let _ = verify_evidence(&Evidence::NotAPrefix { origin: ORIGIN.into(), faulty: a, honest: b, root_at_m: root, proof }, &p);
    }

    #[test]
    fn arbitrary_json_never_panics(json in ".{0,400}") {
        if let Ok(evidence) = Evidence::from_json(&json) {
            let _ = verify_evidence(&evidence, &policy());
        }
    }
}

// ---------------------------------------------------------------- witness

fn witness() -> Witness {
    Witness::new(witness_signer(1), [policy()])
}

fn proof(tree: &Tree, old: u64, new: u64) -> Vec<Hash> {
    tree.consistency_proof(TreeSize(old), TreeSize(new))
        .unwrap()
}

#[test]
fn witness_cosigns_honest_growth() {
    let w = witness();
    let good = honest(20);
    let state = WitnessState::default();
    let first = w
        .add_checkpoint(&state, 0, &[], &note_of(&good, 5, &[node(1), node(2)]))
        .unwrap();
    assert_eq!(
        first.state.logs[ORIGIN],
        LogState {
            size: 5,
            root: good.root_at(TreeSize(5)).unwrap()
        }
    );
    let second = w
        .add_checkpoint(
            &first.state,
            5,
            &proof(&good, 5, 16),
            &note_of(&good, 16, &[node(2), node(3)]),
        )
        .unwrap();
    assert_eq!(second.log.size, 16);
    assert!(second.cosignature.starts_with("— witness-1 "));
    assert!(second.note.ends_with(&second.cosignature));
    // Clients requiring the witness accept the cosigned note, not the bare one.
    let strict = policy()
        .with_witnesses(vec![witness_signer(1).verifier()], 1)
        .unwrap();
    let verified = strict.verify_note(&second.note).unwrap();
    assert_eq!(verified.witnesses, ["witness-1"]);
    assert!(matches!(
        strict.verify_note(&note_of(&good, 16, &[node(2), node(3)])),
        Err(Error::NotEnoughWitnessCosignatures {
            valid: 0,
            required: 1,
            ..
        })
    ));
    // The same checkpoint again is cosigned again (idempotent), state unchanged.
    let again = w
        .add_checkpoint(&second.state, 16, &[], &second.note)
        .unwrap();
    assert_eq!(again.state, second.state);
    assert_eq!(
        SignedCheckpoint::parse(&again.note)
            .unwrap()
            .signer_names()
            .iter()
            .filter(|n| **n == "witness-1")
            .count(),
        1
    );
    // State JSON round trip.
    let json = serde_json::to_string(&second.state).unwrap();
    assert!(json.contains("\"version\":1"));
    assert_eq!(
        serde_json::from_str::<WitnessState>(&json).unwrap(),
        second.state
    );
}

/// The state of a fresh witness `w` after it cosigned `good` at `size` (nodes 1 and 2).
fn first_cosigned(w: &Witness, good: &Tree, size: u64) -> WitnessState {
    w.add_checkpoint(
        &WitnessState::default(),
        0,
        &[],
        &note_of(good, size, &[node(1), node(2)]),
    )
    .unwrap()
    .state
}

#[test]
fn witness_refuses_a_fork_at_the_same_size() {
    let w = witness();
    let good = honest(8);
    let state = first_cosigned(&w, &good, 8);
    let forged = tree(8, 3);
    let refusal = w
        .add_checkpoint(&state, 8, &[], &note_of(&forged, 8, &[node(2), node(3)]))
        .unwrap_err();
    let message = refusal.to_string();
    assert!(
        matches!(refusal, WitnessRefusal::Fork { size: 8, .. }),
        "{message}"
    );
    assert!(
        message.contains(&good.root_at(TreeSize(8)).unwrap().to_string())
            && message.contains(&forged.root_at(TreeSize(8)).unwrap().to_string()),
        "{message}"
    );
    assert!(message.starts_with("fork: I cosigned root"));
    assert_eq!(refusal.http_status(), 409);
}

#[test]
fn witness_refuses_a_bigger_forked_checkpoint() {
    let w = witness();
    let good = honest(8);
    let state = first_cosigned(&w, &good, 8);
    // The forged history diverges at leaf 3; its own proof 8 → 12 cannot start from
    // the witnessed root.
    let forged = tree(12, 3);
    let refusal = w
        .add_checkpoint(
            &state,
            8,
            &proof(&forged, 8, 12),
            &note_of(&forged, 12, &[node(2), node(3)]),
        )
        .unwrap_err();
    assert!(
        matches!(
            refusal,
            WitnessRefusal::InconsistentProof {
                known_size: 8,
                size: 12,
                ..
            }
        ),
        "{refusal}"
    );
    assert_eq!(refusal.http_status(), 422);
    // Nor with the honest proof.
    assert!(w
        .add_checkpoint(
            &state,
            8,
            &proof(&honest(12), 8, 12),
            &note_of(&forged, 12, &[node(2), node(3)]),
        )
        .is_err());
}

#[test]
fn witness_refuses_replays_conflicts_and_unsigned_checkpoints() {
    let w = witness();
    let good = honest(10);
    let state = first_cosigned(&w, &good, 10);
    let old = note_of(&good, 4, &[node(1), node(2)]);
    // Replayed old checkpoint, proving from the witnessed size.
    let refusal = w.add_checkpoint(&state, 10, &[], &old).unwrap_err();
    assert!(matches!(
        refusal,
        WitnessRefusal::Rollback {
            known_size: 10,
            size: 4
        }
    ));
    // Replayed with its own old size: a conflict naming the size to prove from.
    let refusal = w.add_checkpoint(&state, 4, &[], &old).unwrap_err();
    assert!(matches!(
        refusal,
        WitnessRefusal::Conflict {
            known_size: 10,
            old_size: 4
        }
    ));
    assert_eq!(refusal.http_status(), 409);
    // One node signature is not the log's policy.
    let grown = honest(12);
    let refusal = w
        .add_checkpoint(
            &state,
            10,
            &proof(&grown, 10, 12),
            &note_of(&grown, 12, &[node(1)]),
        )
        .unwrap_err();
    assert!(
        matches!(refusal, WitnessRefusal::NotSignedByLog(_)),
        "{refusal}"
    );
    // Another board.
    let foreign = {
        let checkpoint = Checkpoint {
            origin: "other.board".into(),
            size: TreeSize(1),
            root: Hash([1; 32]),
        };
        SignedCheckpoint::sign(checkpoint, &node(1))
            .unwrap()
            .to_note()
    };
    assert!(matches!(
        w.add_checkpoint(&state, 0, &[], &foreign),
        Err(WitnessRefusal::UnknownLog(_))
    ));
    // A fresh witness starts at size 0.
    assert!(matches!(
        w.add_checkpoint(
            &WitnessState::default(),
            4,
            &proof(&good, 4, 10),
            &note_of(&good, 10, &[node(1), node(2)])
        ),
        Err(WitnessRefusal::Conflict { known_size: 0, .. })
    ));
}

proptest! {
    #[test]
    fn witness_never_panics_on_garbage(
        note in ".{0,300}",
        old_size in any::<u64>(),
        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
    ) {
        let proof: Vec<Hash> = proof.into_iter().map(Hash).collect();
        let _ = witness().add_checkpoint(&WitnessState::default(), old_size, &proof, &note);
    }

    #[test]
    fn witness_never_panics_on_signed_checkpoints_with_garbage_proofs(
        size in 0u64..40,
        old_size in 0u64..50,
        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..8),
    ) {
        let good = honest(40);
        let proof: Vec<Hash> = proof.into_iter().map(Hash).collect();
        let state = witness()
            .add_checkpoint(&WitnessState::default(), 0, &[], &note_of(&good, 20, &[node(1), node(2)]))
            .unwrap()
            .state;
        let result = witness().add_checkpoint(&state, old_size, &proof, &note_of(&good, size, &[node(1), node(3)]));
        // A random proof is never accepted for real growth.
        if size > 20 {
            prop_assert!(result.is_err());
        }
    }
}

// ---------------------------------------------------------------- witness policy

#[test]
fn witness_policies_are_validated() {
    let nodes = policy();
    let w = |i| witness_signer(i).verifier();
    assert!(nodes.clone().with_witnesses(vec![w(1)], 0).is_err());
    assert!(nodes.clone().with_witnesses(vec![w(1)], 2).is_err());
    assert!(nodes.clone().with_witnesses(vec![], 1).is_err());
    assert!(nodes.clone().with_witnesses(vec![w(1), w(1)], 1).is_err());
    // A node key cannot double as a witness key.
    assert!(nodes
        .clone()
        .with_witnesses(vec![node(1).verifier()], 1)
        .is_err());
    let strict = nodes.with_witnesses(vec![w(1), w(2), w(3)], 2).unwrap();
    assert_eq!(strict.witness_threshold(), 2);
    assert_eq!(strict.witnesses().len(), 3);
    assert_eq!(policy().witness_threshold(), 0);
}

#[test]
fn witness_policy_needs_m_witnesses_and_still_k_nodes() {
    let strict = policy()
        .with_witnesses(
            vec![witness_signer(1).verifier(), witness_signer(2).verifier()],
            2,
        )
        .unwrap();
    let good = honest(3);
    let one = note_of(&good, 3, &[node(1), node(2), witness_signer(1)]);
    assert!(matches!(
        strict.verify_note(&one),
        Err(Error::NotEnoughWitnessCosignatures {
            valid: 1,
            required: 2,
            ..
        })
    ));
    let both = note_of(
        &good,
        3,
        &[node(1), node(2), witness_signer(1), witness_signer(2)],
    );
    let verified = strict.verify_note(&both).unwrap();
    assert_eq!(verified.signers, ["node-1", "node-2"]);
    assert_eq!(verified.witnesses, ["witness-1", "witness-2"]);
    // Witnesses do not replace node signatures.
    let few_nodes = note_of(&good, 3, &[node(1), witness_signer(1), witness_signer(2)]);
    assert!(matches!(
        strict.verify_note(&few_nodes),
        Err(Error::NotEnoughCosignatures { valid: 1, .. })
    ));
    // Witness cosignatures are valid lines in evidence too.
    let evidence = Evidence::Equivocation {
        origin: ORIGIN.into(),
        a: both,
        b: note_of(&tree(3, 0), 3, &[node(3)]),
    };
    let verdict = verify_evidence(&evidence, &strict).unwrap();
    assert_eq!(verdict.culprits(), ["node-3"]);
}
