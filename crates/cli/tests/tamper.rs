//! Tamper tests with real `bboard` processes: a node whose store was edited, a node
//! that signs forged roots, a leader that reorders entries, and a witness fed a forked
//! history. Each scenario asserts that the lie is detected, with evidence that
//! `bboard verify-evidence` accepts (and rejects once altered), while the honest nodes
//! keep serving the honest history.
//!
//! The misbehaving nodes need the test-only cargo feature `fault-injection` (this test
//! target requires it), and the tests take minutes, so they are `#[ignore]`d; `.ci/run`
//! runs them with:
//!
//! ```text
//! cargo test -p bboard-cli --features fault-injection --test tamper -- --ignored --nocapture
//! ```

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bboard_core::checkpoint::{Checkpoint, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_merkle::{Hash, TreeSize};
use bboard_testkit::process::*;
use bboard_testkit::{
    edit_leaf, free_port, genesis_of_organisations, key, note, register_terminal, ORIGIN,
};
use ed25519_dalek::SigningKey;

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");

/// Longest time one `bboard` command of these tests may take.
const CLI_LIMIT: Duration = Duration::from_secs(120);

/// Runs `bboard <args>`; returns its exit code and output (printed).
async fn bboard(cluster: &Cluster, args: &[&str]) -> (Option<i32>, String) {
    let args = args.iter().map(|a| a.to_string()).collect();
    let (code, output) = cluster.run_cli_code(args, CLI_LIMIT).await;
    println!("{output}(exit {code:?})\n");
    (code, output)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `bboard audit` over `endpoints` must exit 2 (findings) and write evidence; every
/// evidence file must name exactly `culprit`, pass `bboard verify-evidence`, and fail
/// it once one byte is altered.
async fn audit_catches(cluster: &Cluster, endpoints: &[String], culprit: &str) {
    let keys = cluster.write_trusted_keys();
    let evidence_dir = cluster.dir.path().join("evidence");
    let state = cluster.dir.path().join("audit-state.json");
    let mut args = vec!["audit"];
    for endpoint in endpoints {
        args.extend(["--endpoint", endpoint]);
    }
    args.extend([
        "--trusted-keys",
        path_str(&keys),
        "--origin",
        ORIGIN,
        "--state",
        path_str(&state),
        "--evidence-dir",
        path_str(&evidence_dir),
    ]);
    let (code, output) = bboard(cluster, &args).await;
    assert_eq!(code, Some(2), "audit must report findings:\n{output}");
    assert!(output.contains(culprit), "audit names {culprit}:\n{output}");
    assert!(state.exists(), "audit state saved");
    let files: Vec<PathBuf> = std::fs::read_dir(&evidence_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "no evidence file written:\n{output}");
    for file in files {
        let verify = [
            "verify-evidence",
            "--evidence",
            path_str(&file),
            "--trusted-keys",
            path_str(&keys),
            "--origin",
            ORIGIN,
        ];
        let (code, output) = bboard(cluster, &verify).await;
        assert_eq!(code, Some(0), "evidence must hold:\n{output}");
        assert!(
            output.contains(&format!("culprits: {culprit}\n")),
            "the culprit is {culprit}:\n{output}"
        );
        // Alter one character of a signature: the evidence must no longer hold.
        let text = std::fs::read_to_string(&file).unwrap();
        let line = text.find("— ").unwrap() + "— ".len();
        let space = line + text[line..].find(' ').unwrap();
        let at = space + 6;
        let replacement = if &text[at..at + 1] == "A" { "B" } else { "A" };
        let mut altered = text.clone();
        altered.replace_range(at..at + 1, replacement);
        let altered_file = file.with_extension("altered.json");
        std::fs::write(&altered_file, altered).unwrap();
        let mut verify = verify;
        verify[2] = path_str(&altered_file);
        let (code, output) = bboard(cluster, &verify).await;
        assert_eq!(code, Some(2), "altered evidence must not hold:\n{output}");
        assert!(output.contains("does NOT hold"), "{output}");
    }
}

/// `bboard prove` of entry `index` against `endpoint` alone: whether it succeeded.
async fn prove_ok(cluster: &Cluster, endpoint: &str, index: u64) -> bool {
    let keys = cluster.write_trusted_keys();
    let index = index.to_string();
    let args = [
        "prove",
        "--endpoint",
        endpoint,
        "--index",
        &index,
        "--trusted-keys",
        path_str(&keys),
        "--origin",
        ORIGIN,
        "--timeout",
        "10",
    ];
    bboard(cluster, &args).await.0 == Some(0)
}

/// The latest checkpoint note a node serves, and whether it says it is final.
async fn served_note(address: &str) -> (String, bool) {
    let response = board(address)
        .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
        .await
        .unwrap()
        .into_inner();
    (response.signed_checkpoint, response.r#final)
}

/// Waits until node `address` serves a latest checkpoint of `size` (bounded).
async fn wait_served_size(address: &str, size: u64) -> String {
    let started = Instant::now();
    loop {
        if let Ok(response) = board(address)
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await
        {
            let response = response.into_inner();
            if response.size == size {
                return response.signed_checkpoint;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{address} serves no checkpoint of size {size}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Appends a note signed by `key` through `endpoints` and verifies its receipt with
/// the k-of-n policy; returns its index.
async fn append_verified(
    cluster: &Cluster,
    endpoints: &[String],
    key: &SigningKey,
    seq: u64,
) -> u64 {
    let response = append_one(endpoints, &note(key, seq)).await;
    let receipt = Receipt::from_proto(response.receipt.as_ref().unwrap()).unwrap();
    receipt.verify(&cluster.policy).unwrap().leaf_index.0
}

#[test]
#[ignore = "multi-process, minutes; run with: cargo test -p bboard-cli --features fault-injection --test tamper -- --ignored"]
fn an_edited_store_is_refused_and_the_node_rebuilt_under_a_new_id() {
    serially(edited_store());
}

async fn edited_store() {
    let started = Instant::now();
    let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
    for node in &mut cluster.nodes {
        node.start();
    }
    let all = cluster.endpoints(&[1, 2, 3]);
    let authority = SigningKey::from_bytes(&[1; 32]);
    let terminal = SigningKey::from_bytes(&[100; 32]);
    cluster
        .genesis_and_keys(&all, &authority, std::slice::from_ref(&terminal))
        .await;
    for seq in 0..3 {
        append_verified(&cluster, &all, &terminal, seq).await;
    }
    let size = 5;
    wait_for_size(&all, size, Duration::from_secs(60)).await;

    // Stop a follower and flip one byte of leaf 2 in its sled store.
    let leader = find_leader(&all, Duration::from_secs(30)).await as u64 + 1;
    let victim = if leader == 3 { 2 } else { 3 };
    let honest: Vec<u64> = (1..=3).filter(|id| *id != victim).collect();
    let honest_endpoints = cluster.endpoints(&honest);
    cluster.node(victim).kill();
    let config_path = cluster.node(victim).config_path.clone();
    let data_dir = cluster.node(victim).dir.join("data");
    edit_leaf(&data_dir, 2);
    cluster.node(victim).start();
    let exit = cluster
        .node(victim)
        .wait_exit(Duration::from_secs(60))
        .expect("a node with an edited store kept running");
    assert!(!exit.success());
    let log = cluster.node(victim).log_tail(20);
    assert!(
        log.contains("leaves were edited") && log.contains("Refusing to serve"),
        "the node names the problem:\n{log}"
    );
    println!("node {victim} refused to start: {exit}");

    // The honest nodes keep serving: appends with k-of-n receipts.
    let index = append_verified(&cluster, &honest_endpoints, &terminal, 10).await;
    assert_eq!(index, size);
    let size = size + 1;

    // Rebuild under a new id; the process becomes the node (--run).
    let leader_address = cluster.endpoints(&[leader])[0].clone();
    let admin_key = cluster.admin_key_file.display().to_string();
    let countersigner = cluster.org_admin_key_files[1].display().to_string();
    let config = config_path.display().to_string();
    cluster.node(victim).start_with(
        &[
            "node",
            "rebuild",
            "--config",
            &config,
            "--new-node-id",
            "4",
            "--endpoint",
            &leader_address,
            "--admin-key",
            &admin_key,
            // Organisation 2 countersigns: two of three organisations authorise.
            "--countersign-key",
            &countersigner,
            "--run",
            "--timeout-secs",
            "120",
        ],
        &[],
    );
    // The rebuild posts one membership authorisation per change: three.
    let size = size + 3;
    let statuses = wait_for_size(&all, size, Duration::from_secs(150)).await;
    assert!(
        statuses.iter().all(|s| s.root == statuses[0].root),
        "the rebuilt node reaches the honest root: {statuses:?}"
    );
    let rebuilt = status(&cluster.endpoints(&[victim])[0]).await.unwrap();
    assert_eq!(rebuilt.node_id, 4, "the node runs under its new id");
    let broken = std::fs::read_dir(cluster.node(victim).dir.clone())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("data.broken-"));
    assert!(broken, "the edited store is kept aside for forensics");
    // Wait for the rebuild to finish its membership steps, then check it is a voter
    // that signs: a new append gets a receipt and node 4 serves it as final.
    let started_wait = Instant::now();
    loop {
        let log = cluster.node(victim).log_tail(40);
        if log.contains("is a voter again") {
            break;
        }
        assert!(
            started_wait.elapsed() < Duration::from_secs(150),
            "rebuild did not finish:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let index = append_verified(&cluster, &all, &terminal, 11).await;
    assert_eq!(index, size);
    final_checkpoint(&cluster.endpoints(&[victim])[0], size + 1, &cluster.policy).await;
    cluster.assert_alive();
    println!(
        "edited store: detected, rebuilt as node 4; test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "multi-process, minutes; run with: cargo test -p bboard-cli --features fault-injection --test tamper -- --ignored"]
fn a_node_signing_forged_roots_is_caught_and_a_witness_refuses_a_fork() {
    serially(forged_roots());
}

async fn forged_roots() {
    let started = Instant::now();
    let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
    cluster.node(1).start();
    cluster.node(2).start();
    let honest = cluster.endpoints(&[1, 2]);
    find_leader(&honest, Duration::from_secs(30)).await;
    let config = cluster.nodes[2].config_path.display().to_string();
    cluster.node(3).start_with(
        &["node", "run", "--config", &config],
        &[("BBOARD_FAULT", "forge-root")],
    );
    let all = cluster.endpoints(&[1, 2, 3]);
    let authority = SigningKey::from_bytes(&[1; 32]);
    let terminal = SigningKey::from_bytes(&[100; 32]);
    cluster
        .genesis_and_keys(&honest, &authority, std::slice::from_ref(&terminal))
        .await;
    for seq in 0..2 {
        append_verified(&cluster, &honest, &terminal, seq).await;
    }
    let size = 4;
    wait_for_size(&all, size, Duration::from_secs(60)).await;
    let forged = wait_served_size(&all[2], size).await;
    let (honest_note, is_final) = served_note(&all[0]).await;
    assert!(is_final);
    assert!(
        cluster.policy.verify_note(&forged).is_err(),
        "the k-of-n policy never accepts the forged checkpoint"
    );

    audit_catches(&cluster, &all, "node-3").await;
    assert!(
        !prove_ok(&cluster, &all[2], 1).await,
        "a client with the k-of-n policy refuses the forged checkpoint"
    );
    assert!(
        prove_ok(&cluster, &all[0], 1).await,
        "honest nodes serve proofs"
    );

    witness_refuses_forks(&mut cluster, &all[0], &forged, &honest_note).await;
    cluster.assert_alive();
    println!(
        "forged roots: detected; test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs `bboard witness serve`, feeds it the honest checkpoint (cosigned), then the
/// forged one (refused: not signed by the log), then a fork signed by a colluding
/// majority (refused: fork at a cosigned size).
async fn witness_refuses_forks(cluster: &mut Cluster, endpoint: &str, forged: &str, honest: &str) {
    let dir = cluster.dir.path().to_path_buf();
    let key_file = dir.join("witness.key");
    std::fs::write(&key_file, hex::encode([77u8; 32])).unwrap();
    let keys = cluster.write_trusted_keys();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = dir.join("witness-state.json");
    // The witness runs as an extra process of the cluster (killed on drop).
    let witness_dir = dir.join("witness");
    std::fs::create_dir_all(&witness_dir).unwrap();
    cluster.nodes.push(NodeProc {
        id: 99,
        address: listen.clone(),
        peer_address: String::new(),
        dir: witness_dir.clone(),
        config_path: PathBuf::new(),
        log_path: witness_dir.join("witness.log"),
        bin: cluster.bin.clone(),
        child: None,
    });
    let witness = cluster.nodes.last_mut().unwrap();
    witness.start_with(
        &[
            "witness",
            "serve",
            "--listen",
            &listen,
            "--key",
            path_str(&key_file),
            "--name",
            "witness-1",
            "--state",
            path_str(&state),
            "--log-keys",
            path_str(&keys),
            "--origin",
            ORIGIN,
        ],
        &[],
    );
    let url = format!("http://{listen}");
    let feed = |checkpoint: Option<PathBuf>| {
        let mut args: Vec<String> = [
            "witness",
            "feed",
            "--witness",
            &url,
            "--endpoint",
            endpoint,
            "--trusted-keys",
            path_str(&keys),
            "--origin",
            ORIGIN,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if let Some(file) = checkpoint {
            args.push("--checkpoint".into());
            args.push(file.display().to_string());
        }
        args
    };
    // The service may take a moment to listen: retry the first feed briefly.
    let mut fed = None;
    for _ in 0..50 {
        let (code, output) = cluster.run_cli_code(feed(None), CLI_LIMIT).await;
        if code == Some(0) {
            fed = Some(output);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = fed.expect("the witness cosigns the honest checkpoint");
    println!("{output}");
    assert!(output.contains("— witness-1 "), "{output}");
    assert!(state.exists(), "witness state persisted");

    let forged_file = dir.join("forged.note");
    std::fs::write(&forged_file, forged).unwrap();
    let (code, output) = cluster
        .run_cli_code(feed(Some(forged_file)), CLI_LIMIT)
        .await;
    println!("{output}");
    assert_ne!(code, Some(0));
    assert!(
        output.contains("HTTP 403") && output.contains("did not sign"),
        "{output}"
    );

    // A colluding majority (nodes 2 and 3) signs another root at the witnessed size.
    let checkpoint = SignedCheckpoint::parse(honest)
        .unwrap()
        .checkpoint()
        .clone();
    let fork = Checkpoint {
        origin: checkpoint.origin.clone(),
        size: TreeSize(checkpoint.size.0),
        root: Hash::from_slice(&[0xee; 32]).unwrap(),
    };
    let mut fork = SignedCheckpoint::sign(fork, &node_signer(2)).unwrap();
    fork.add_signature(&node_signer(3)).unwrap();
    let fork_file = dir.join("fork.note");
    std::fs::write(&fork_file, fork.to_note()).unwrap();
    let (code, output) = cluster.run_cli_code(feed(Some(fork_file)), CLI_LIMIT).await;
    println!("{output}");
    assert_ne!(code, Some(0));
    assert!(
        output.contains("HTTP 409") && output.contains("fork: I cosigned root"),
        "{output}"
    );
}

#[test]
#[ignore = "multi-process, minutes; run with: cargo test -p bboard-cli --features fault-injection --test tamper -- --ignored"]
fn a_leader_that_reorders_entries_is_caught() {
    serially(reordering_leader());
}

/// Two RegisterKey entries (valid in either order) by `authority`.
fn two_registrations(authority: &SigningKey) -> Vec<SignedEnvelope> {
    (0..2u8)
        .map(|i| register_terminal(authority, &key(120 + i), 50 + u64::from(i)))
        .collect()
}

async fn reordering_leader() {
    let started = Instant::now();
    // Node 1 is the single initial voter: the leader, deterministically.
    let mut cluster = Cluster::configure(BIN, 3, &[1], fast_raft());
    let config = cluster.nodes[0].config_path.display().to_string();
    cluster.node(1).start_with(
        &["node", "run", "--config", &config],
        &[("BBOARD_FAULT", "reorder")],
    );
    let leader = cluster.endpoints(&[1]);
    find_leader(&leader, Duration::from_secs(30)).await;
    // Alone, node 1 cannot make any checkpoint final: it never serves an honest final
    // one. The genesis (a batch of one), then a batch of two that it applies swapped.
    let authority = SigningKey::from_bytes(&[1; 32]);
    let genesis = genesis_of_organisations(&authority, 3);
    append_many_unacknowledged(&leader[0], &[genesis]).await;
    wait_for_size(&leader, 1, Duration::from_secs(30)).await;
    append_many_unacknowledged(&leader[0], &two_registrations(&authority)).await;
    wait_for_size(&leader, 3, Duration::from_secs(30)).await;

    // The others join as learners and are promoted; node 1 stays leader.
    for id in [2, 3] {
        cluster.node(id).start();
        let address = cluster.endpoints(&[id])[0].clone();
        admin_on_leader(
            &cluster,
            &[1],
            &[
                "add-learner".into(),
                "--id".into(),
                id.to_string(),
                "--address".into(),
                address,
            ],
        )
        .await;
    }
    admin_on_leader(
        &cluster,
        &[1],
        &[
            "change-membership".into(),
            "--voters".into(),
            "1,2,3".into(),
        ],
    )
    .await;
    let all = cluster.endpoints(&[1, 2, 3]);
    // The genesis, the two registrations and the three membership authorisations.
    let size = 6;
    let statuses = wait_for_size(&all, size, Duration::from_secs(60)).await;
    assert_ne!(
        statuses[0].root, statuses[1].root,
        "the leader's tree differs"
    );
    assert_eq!(statuses[1].root, statuses[2].root, "the followers agree");
    // The followers cosign each other's honest checkpoint. No checkpoint of the
    // leader's past the swapped batch ever becomes final: at most the genesis (size 1,
    // applied alike everywhere) does, from the signatures the followers pushed while
    // catching up; otherwise the leader serves its own, which the policy refuses.
    final_checkpoint(&all[1], size, &cluster.policy).await;
    let (served, is_final) = served_note(&all[0]).await;
    let served_size = SignedCheckpoint::parse(&served)
        .unwrap()
        .checkpoint()
        .size
        .0;
    if is_final {
        assert_eq!(served_size, 1, "the leader made a reordered size final");
        assert!(cluster.policy.verify_note(&served).is_ok());
    } else {
        assert_eq!(served_size, size);
        assert!(cluster.policy.verify_note(&served).is_err());
    }

    audit_catches(&cluster, &all, "node-1").await;
    assert!(
        !prove_ok(&cluster, &all[0], 1).await,
        "the leader's checkpoint is refused"
    );
    assert!(
        prove_ok(&cluster, &all[1], 1).await,
        "the followers serve the honest history"
    );
    cluster.assert_alive();
    println!(
        "reordering leader: detected; test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "multi-process; run with: cargo test -p bboard-cli --features fault-injection --test tamper -- --ignored"]
fn followers_refuse_a_membership_change_the_leader_proposes_without_a_majority() {
    serially(leader_ignoring_the_membership_rule());
}

/// Every node runs with a fault that skips the *leader's* membership check, so
/// whichever leads proposes an unauthorised change; the followers' own check must
/// refuse to append it.
async fn leader_ignoring_the_membership_rule() {
    let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
    for id in 1..=3 {
        let config = cluster.node(id).config_path.display().to_string();
        cluster.node(id).start_with(
            &["node", "run", "--config", &config],
            &[("BBOARD_FAULT", "ignore-membership-rule")],
        );
    }
    let all = cluster.endpoints(&[1, 2, 3]);
    let leader = find_leader(&all, Duration::from_secs(30)).await;
    cluster.genesis_and_keys(&all, &key(1), &[]).await;
    let leader_id = leader as u64 + 1;

    // Organisation 1 alone asks the leader to cut the voters down to the leader.
    let (ok, output) = cluster
        .run_cli(
            vec![
                "admin".into(),
                "--endpoint".into(),
                all[leader].clone(),
                "--key".into(),
                cluster.admin_key_file.display().to_string(),
                "--timeout-secs".into(),
                "5".into(),
                "change-membership".into(),
                "--voters".into(),
                leader_id.to_string(),
            ],
            Duration::from_secs(60),
        )
        .await;
    assert!(!ok, "the change must not complete: {output}");
    // The followers refuse the entry (and with it the rogue leader's heartbeats), elect
    // a leader among themselves, and the uncommitted entry is discarded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    find_leader(&all, Duration::from_secs(30)).await;
    let metric = |body: &str, name: &str| {
        body.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let mut refusals = 0;
    for (i, endpoint) in all.iter().enumerate() {
        let metrics = bboard_util::http::request(
            tonic::codegen::http::Method::GET,
            &format!("http://{endpoint}/metrics"),
            String::new(),
        )
        .await
        .unwrap();
        if i != leader {
            refusals += metric(&metrics.body, "bboard_membership_changes_refused_total");
            assert_eq!(
                metric(&metrics.body, "bboard_raft_voters"),
                3,
                "node {} still has three voters:\n{}",
                i + 1,
                metrics.body
            );
        }
    }
    assert!(refusals >= 1, "the followers counted no refusal");
    // The board still takes appends with k-of-n receipts from the three voters.
    let terminal = key(7);
    let envelopes = [register_terminal(&key(1), &terminal, 1), note(&terminal, 2)];
    for envelope in &envelopes {
        let response = append_one(&all, envelope).await;
        let receipt = Receipt::from_proto(response.receipt.as_ref().unwrap()).unwrap();
        receipt.verify(&cluster.policy).unwrap();
    }
    cluster.assert_alive();
    println!(
        "an unauthorised membership change proposed by the leader was refused by every follower"
    );
}
