//! Censorship with real `bboard` processes: a leader that silently drops every entry of
//! one terminal key is caught by the followers' signed alarms, shown by `bboard alarms`
//! and `bboard audit` (with evidence `bboard verify-evidence` accepts, and rejects once
//! altered), and replaced when the other organisations depose it; every dropped entry
//! then lands exactly once. An honest leader paused for less than the inclusion
//! deadline raises nothing.
//!
//! Needs the test-only cargo feature `fault-injection` (this test target requires it);
//! the tests take minutes, so they are `#[ignore]`d:
//!
//! ```text
//! cargo test -p bboard-cli --features fault-injection --test censorship -- --ignored --nocapture
//! ```
//!
//! Inclusion deadline 2 s, receipt
//! timeout 3 s (defaults 10 s and 10 s) to keep the run short.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bboard_client::audit::{check_censorship_evidence, CensorshipCheckError};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::alarm::verify_alarm;
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::evidence::Evidence;
use bboard_core::leaf::decode_leaf;
use bboard_core::pb;
use bboard_node::config::{NodeConfig, RaftTuning};
use bboard_testkit::process::*;
use bboard_testkit::{genesis_of_organisations, note, ORIGIN};
use ed25519_dalek::SigningKey;

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");
const DEADLINE_MS: u64 = 2_000;

/// Short inclusion deadline and receipt timeout in every node's configuration.
fn shorten_deadlines(cluster: &Cluster) {
    for node in &cluster.nodes {
        let mut config = NodeConfig::load(&node.config_path).unwrap();
        config.limits.inclusion_deadline_ms = DEADLINE_MS;
        config.limits.receipt_timeout_ms = 3_000;
        std::fs::write(&node.config_path, config.to_toml().unwrap()).unwrap();
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `--endpoint` for each address.
fn endpoint_args(endpoints: &[String]) -> Vec<String> {
    endpoints
        .iter()
        .flat_map(|e| ["--endpoint".to_string(), e.clone()])
        .collect()
}

async fn list_alarms(address: &str, include_cleared: bool) -> Vec<pb::AlarmRecord> {
    board(address)
        .list_alarms(pb::ListAlarmsRequest { include_cleared })
        .await
        .unwrap()
        .into_inner()
        .alarms
}

fn client_options(cluster: &Cluster) -> ClientOptions {
    ClientOptions {
        per_request_timeout: Duration::from_secs(4),
        total_timeout: Duration::from_secs(120),
        policy: Some(cluster.policy.clone()),
        ..ClientOptions::default()
    }
}

fn signal(node: &mut NodeProc, sig: &str) {
    let pid = node.child.as_ref().unwrap().id().to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Every leaf of every node is the same; returns (envelope id → index) of the board.
async fn same_board_everywhere(endpoints: &[String], size: u64) -> HashMap<EnvelopeId, u64> {
    let statuses = wait_for_size(endpoints, size, Duration::from_secs(30)).await;
    assert!(
        statuses.windows(2).all(|w| w[0].root == w[1].root),
        "roots differ: {statuses:?}"
    );
    let reference = all_leaves(&endpoints[0], size).await;
    for endpoint in &endpoints[1..] {
        assert_eq!(all_leaves(endpoint, size).await, reference, "{endpoint}");
    }
    let mut by_id = HashMap::new();
    for (index, leaf) in reference.iter().enumerate() {
        let id = decode_leaf(leaf).unwrap().envelope.id();
        assert!(
            by_id.insert(id, index as u64).is_none(),
            "envelope {id} is on the board twice"
        );
    }
    by_id
}

#[test]
#[ignore = "multi-process, minutes; run with: cargo test -p bboard-cli --features fault-injection --test censorship -- --ignored"]
fn a_censoring_leader_is_caught_proven_and_replaced() {
    serially(async {
        let started = Instant::now();
        let authority = SigningKey::from_bytes(&[1; 32]);
        let censored = SigningKey::from_bytes(&[2; 32]);
        let honest = SigningKey::from_bytes(&[3; 32]);
        // Node 1 is the only initial voter, so it leads; 2 and 3 join as learners and
        // are promoted. Node 1 drops every entry signed by `censored`.
        let mut cluster = Cluster::configure(BIN, 3, &[1], fast_raft());
        shorten_deadlines(&cluster);
        let fault = format!(
            "drop-signer:{}",
            hex::encode(censored.verifying_key().as_bytes())
        );
        let config = cluster.node(1).config_path.display().to_string();
        cluster.node(1).start_with(
            &["node", "run", "--config", &config],
            &[("BBOARD_FAULT", &fault)],
        );
        cluster.node(2).start();
        cluster.node(3).start();
        let all = cluster.endpoints(&[1, 2, 3]);
        find_leader(&all[..1], Duration::from_secs(30)).await;
        // The genesis names the organisations whose majority authorises the changes
        // below; alone, node 1 cannot give it a k-of-n receipt yet.
        append_many_unacknowledged(&all[0], &[genesis_of_organisations(&authority, 3)]).await;
        wait_for_size(&all[..1], 1, Duration::from_secs(30)).await;
        for id in [2u64, 3] {
            let address = cluster.endpoints(&[id])[0].clone();
            admin_on_leader(
                &cluster,
                &[1],
                &args(&[
                    "add-learner",
                    "--id",
                    &id.to_string(),
                    "--address",
                    &address,
                ]),
            )
            .await;
        }
        admin_on_leader(
            &cluster,
            &[1],
            &args(&["change-membership", "--voters", "1,2,3"]),
        )
        .await;
        assert_eq!(find_leader(&all, Duration::from_secs(10)).await, 0);
        let mut acked: HashMap<EnvelopeId, u64> = cluster
            .genesis_and_keys(&all, &authority, &[censored.clone(), honest.clone()])
            .await
            .into_iter()
            .collect();

        // (i) The honest terminal's entries go through; the censored terminal's client
        // gets no receipt from the leader and routes around it, still without receipt.
        let client = BoardClient::connect(all.clone(), client_options(&cluster))
            .await
            .unwrap();
        for seq in 100..103 {
            let envelope = note(&honest, seq);
            let result = client.append(&envelope).await.unwrap();
            acked.insert(envelope.id(), result.receipt.leaf_index);
        }
        let dropped: Vec<SignedEnvelope> = (200..203).map(|seq| note(&censored, seq)).collect();
        let mut pending = tokio::task::JoinSet::new();
        for envelope in dropped.clone() {
            let client = client.clone();
            pending.spawn(async move { (envelope.clone(), client.append(&envelope).await) });
        }
        let sent_at = Instant::now();
        // The followers raise signed alarms within two deadlines (plus a check tick).
        let followers = cluster.endpoints(&[2, 3]);
        let dropped_ids: Vec<EnvelopeId> = dropped.iter().map(SignedEnvelope::id).collect();
        loop {
            let mut complete = true;
            for follower in &followers {
                let alarms = list_alarms(follower, false).await;
                complete &= dropped_ids.iter().all(|id| {
                    alarms.iter().any(|r| {
                        verify_alarm(r.alarm.as_ref().unwrap(), &cluster.policy)
                            .is_ok_and(|c| c.envelope.id() == *id)
                    })
                });
            }
            if complete {
                break;
            }
            assert!(
                sent_at.elapsed() < Duration::from_secs(25),
                "the followers did not raise alarms for every dropped entry in time"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "alarms raised by both followers {:?} after the appends",
            sent_at.elapsed()
        );
        for follower in &followers {
            for record in list_alarms(follower, true).await {
                let check = verify_alarm(record.alarm.as_ref().unwrap(), &cluster.policy).unwrap();
                assert_eq!(check.statement.forwarded_to_node, 1, "blames the leader");
                assert!(dropped_ids.contains(&check.envelope.id()));
            }
        }
        assert!(
            list_alarms(&all[0], true).await.is_empty(),
            "the leader forwards nothing"
        );

        let dir = cluster.dir.path().to_path_buf();
        let keys = cluster.write_trusted_keys().display().to_string();
        let policy_args = args(&["--trusted-keys", &keys, "--origin", ORIGIN]);
        let mut alarms_cmd = args(&["alarms"]);
        alarms_cmd.extend(endpoint_args(&all));
        alarms_cmd.extend(policy_args.clone());
        let (code, output) = cluster
            .run_cli_code(alarms_cmd, Duration::from_secs(30))
            .await;
        println!("{output}");
        assert_eq!(code, Some(2), "active alarms: exit 2");
        assert!(output.contains("ACTIVE") && output.contains("signature OK"));
        assert!(output.contains("6 alarm(s): 6 active and valid, 0 invalid"));

        // (ii) The audit lists the dropped envelopes with evidence.
        let evidence_dir = dir.join("evidence");
        let mut audit_cmd = args(&["audit"]);
        audit_cmd.extend(endpoint_args(&all));
        audit_cmd.extend(policy_args.clone());
        audit_cmd.extend(args(&[
            "--state",
            &dir.join("audit-state.json").display().to_string(),
            "--evidence-dir",
            &evidence_dir.display().to_string(),
        ]));
        let (code, output) = cluster
            .run_cli_code(audit_cmd, Duration::from_secs(60))
            .await;
        println!("{output}");
        assert_eq!(code, Some(2), "findings: exit 2");
        for id in &dropped_ids {
            assert!(output.contains(&format!("CENSORED: envelope {id}")), "{id}");
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&evidence_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.display().to_string().contains("censorship"))
            .collect();
        files.sort();
        assert_eq!(
            files.len(),
            dropped.len(),
            "one evidence file per dropped entry"
        );
        for file in &files {
            let mut verify = args(&["verify-evidence", "--evidence", &file.display().to_string()]);
            verify.extend(policy_args.clone());
            let (ok, output) = cluster
                .run_cli(verify.clone(), Duration::from_secs(20))
                .await;
            assert!(ok && output.contains("CENSORSHIP"), "{output}");
            // Altered: the alarm claims another leader (a byte of the signed
            // statement changes); the file is rejected with a reason.
            let original = std::fs::read_to_string(file).unwrap();
            let mut json: serde_json::Value = serde_json::from_str(&original).unwrap();
            let alarm = json["alarm"].as_str().unwrap().to_string();
            let flipped = if alarm.starts_with('C') { "D" } else { "C" };
            json["alarm"] = format!("{flipped}{}", &alarm[1..]).into();
            let altered = dir.join("altered.json");
            std::fs::write(&altered, json.to_string()).unwrap();
            verify[2] = altered.display().to_string();
            let (ok, output) = cluster.run_cli(verify, Duration::from_secs(20)).await;
            assert!(!ok && output.contains("does NOT hold"), "{output}");
        }
        // Online, the evidence holds while the envelope is missing.
        let evidence = Evidence::from_json(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        let confirmed = check_censorship_evidence(&client, &evidence).await.unwrap();
        assert_eq!(confirmed.absent_on.len(), 3);

        // (iii) Both followers' organisations depose the censoring leader, one after
        // the other, naming it: a node that already follows the new leader keeps it.
        let admin_key = cluster.admin_key_file.display().to_string();
        let campaign = |endpoint: &String| {
            args(&[
                "node",
                "campaign",
                "--endpoint",
                endpoint,
                "--admin-key",
                &admin_key,
                "--depose",
                "--leader",
                "1",
            ])
        };
        let (ok2, out2) = cluster
            .run_cli(campaign(&followers[0]), Duration::from_secs(30))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ok3, out3) = cluster
            .run_cli(campaign(&followers[1]), Duration::from_secs(30))
            .await;
        println!("{out2}\n{out3}");
        assert!(ok2 && ok3, "campaign --depose on both followers");
        assert!(
            out2.contains("refuses to follow node 1") && out3.contains("refuses to follow node 1"),
            "both followers deposed node 1"
        );
        let leader = find_leader(&followers, Duration::from_secs(30)).await;
        println!("new leader: node {}", leader + 2);
        // Every dropped entry lands exactly once; the clients get their receipts.
        while let Some(joined) = pending.join_next().await {
            let (envelope, result) = joined.unwrap();
            let result = result.unwrap_or_else(|e| panic!("{}: {e}", envelope.id()));
            assert!(result.verified.is_some());
            acked.insert(envelope.id(), result.receipt.leaf_index);
        }
        let size = client
            .checkpoint(None)
            .await
            .unwrap()
            .signed
            .checkpoint()
            .size
            .0;
        let board = same_board_everywhere(&all, size).await;
        for (id, index) in &acked {
            assert_eq!(
                board.get(id),
                Some(index),
                "acknowledged entry {id} kept its index"
            );
        }
        // The alarms clear, saying where the entry landed.
        let cleared_by = Instant::now();
        loop {
            let mut active = 0;
            for follower in &followers {
                active += list_alarms(follower, false).await.len();
            }
            if active == 0 {
                break;
            }
            assert!(
                cleared_by.elapsed() < Duration::from_secs(15),
                "alarms did not clear"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let index_of = |id: &EnvelopeId| board.get(id).copied().unwrap();
        let leaves = all_leaves(&all[0], size).await;
        for endpoint in &all {
            for record in list_alarms(endpoint, true).await {
                let check = verify_alarm(record.alarm.as_ref().unwrap(), &cluster.policy).unwrap();
                let id = check.envelope.id();
                assert!(record.cleared);
                assert_eq!(record.cleared_leaf_index, index_of(&id));
                // (v) No alarm for an entry that was on the board: it landed after.
                let landed = decode_leaf(&leaves[index_of(&id) as usize]).unwrap();
                assert!(landed.timestamp_unix_ms > check.statement.raised_unix_ms);
            }
        }
        // Online, stale evidence is now rejected.
        match check_censorship_evidence(&client, &evidence).await {
            Err(e @ CensorshipCheckError::OnBoard { .. }) => {
                assert!(e.to_string().contains("is on the board at index"), "{e}");
            }
            other => panic!("expected OnBoard, got {other:?}"),
        }
        // The same through the command, as an auditor would run it.
        let mut verify = args(&[
            "verify-evidence",
            "--evidence",
            &files[0].display().to_string(),
        ]);
        verify.extend(policy_args.clone());
        verify.extend(args(&["--endpoint", &all[1]]));
        let (ok, output) = cluster.run_cli(verify, Duration::from_secs(20)).await;
        assert!(
            !ok && output.contains("is on the board at index"),
            "{output}"
        );
        cluster.assert_alive();
        println!("censorship test took {:?}", started.elapsed());
    });
}

#[test]
#[ignore = "multi-process, minutes; run with: cargo test -p bboard-cli --features fault-injection --test censorship -- --ignored"]
fn an_honest_slow_leader_raises_no_alarm() {
    serially(async {
        let authority = SigningKey::from_bytes(&[1; 32]);
        let terminal = SigningKey::from_bytes(&[2; 32]);
        let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], RaftTuning::default());
        shorten_deadlines(&cluster);
        for id in 1..=3 {
            cluster.node(id).start();
        }
        let all = cluster.endpoints(&[1, 2, 3]);
        let leader = find_leader(&all, Duration::from_secs(30)).await as u64 + 1;
        cluster
            .genesis_and_keys(&all, &authority, std::slice::from_ref(&terminal))
            .await;
        // The terminal writes through a follower, which forwards and tracks.
        let follower = if leader == 1 { 2 } else { 1 };
        let client = BoardClient::connect(cluster.endpoints(&[follower]), client_options(&cluster))
            .await
            .unwrap();
        let mut pending = tokio::task::JoinSet::new();
        for seq in 0..5 {
            let (client, envelope) = (client.clone(), note(&terminal, seq));
            pending.spawn(async move { client.append(&envelope).await });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        signal(cluster.node(leader), "-STOP");
        tokio::time::sleep(Duration::from_millis(DEADLINE_MS * 3 / 4)).await;
        signal(cluster.node(leader), "-CONT");
        while let Some(joined) = pending.join_next().await {
            joined.unwrap().unwrap();
        }
        // Two deadlines and a tick later, nobody has raised anything.
        tokio::time::sleep(Duration::from_millis(2 * DEADLINE_MS + 1_500)).await;
        for endpoint in &all {
            assert!(list_alarms(endpoint, true).await.is_empty(), "{endpoint}");
            assert_eq!(status(endpoint).await.unwrap().pending_forwards, 0);
        }
        cluster.assert_alive();
    });
}
