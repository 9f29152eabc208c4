//! Runs `bboard demo` (a whole election on a local 3-node cluster) and checks its
//! output and what the nodes stored.

use std::path::{Path, PathBuf};
use std::process::Command;

use bboard_core::leaf::decode_leaf;
use bboard_core::pb::entry_body::Kind;
use bboard_node::board_store::BoardStore;

const ORIGIN: &str = "test.bboard.local/election";

fn sled_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "db") {
                found.push(path);
            } else {
                sled_dirs(&path, found);
            }
        }
    }
}

#[test]
fn demo_runs_a_verifiable_election() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_bboard"))
        .args(["demo", "--ballots", "40", "--origin", ORIGIN, "--dir"])
        .arg(&out)
        .output()
        .expect("running bboard demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "3. key ceremony",
        "40 ballots cast by 4 terminals",
        "spoiled ballot (entry",
        "Party A stayed offline",
        "FINDING: p-002/mayor",
        "<- paper differs",
        // The falsified protocol is flagged: the board verifies, the counts disagree.
        "VERIFIED (WITH WARNINGS):",
        "All checks passed.",
        "bboard verify-election --endpoint",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("p-001/mayor: paper"), "{stdout}");

    // What the nodes stored: the same leaves everywhere; the only plaintext selections
    // are those of the one spoiled ballot; no cast ballot carries voter data.
    let mut dbs = Vec::new();
    sled_dirs(&out.join("cluster"), &mut dbs);
    assert_eq!(dbs.len(), 3, "one store per node: {dbs:?}");
    let mut sizes = Vec::new();
    for db_path in dbs {
        let db = bboard_node::log_store::open_db(&db_path).expect("open sled");
        let store = BoardStore::open(&db, ORIGIN).expect("open board");
        let (mut ballots, mut spoiled, mut index) = (0, 0, 0);
        while let Some(leaf) = store.leaf(index).expect("read leaf") {
            let record = decode_leaf(&leaf).expect("leaf decodes");
            let body = record.envelope.body().expect("body decodes");
            match body.kind {
                Some(Kind::Ballot(ballot)) => {
                    ballots += 1;
                    // A cast ballot is ciphertexts and proofs only.
                    assert_eq!(ballot.contests.len(), 2);
                    for contest in &ballot.contests {
                        assert!(contest.ciphertexts.iter().all(|c| c.len() == 64));
                    }
                }
                Some(Kind::SpoiledBallot(s)) => {
                    spoiled += 1;
                    assert_eq!(
                        s.selections.len(),
                        2,
                        "a spoiled ballot shows its selections"
                    );
                }
                Some(Kind::Note(note)) => panic!("unexpected note {:?}", note.text),
                _ => {}
            }
            index += 1;
        }
        assert_eq!((ballots, spoiled), (40, 1));
        sizes.push(index);
    }
    assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
    // The demo writes keys and trustee state, and no voter data.
    let mut files = Vec::new();
    for sub in ["keys", "trustees"] {
        let mut stack = vec![out.join(sub)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else {
                    files.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    assert!(
        files
            .iter()
            .all(|f| f.ends_with(".key") || f.starts_with("state-")),
        "{files:?}"
    );
}
