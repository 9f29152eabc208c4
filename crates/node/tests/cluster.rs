//! In-process cluster tests: three real nodes (sled stores in temp dirs, gRPC on
//! 127.0.0.1), driven through the public Board service; the harness is
//! `bboard_testkit::cluster`.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::time::Duration;

use bboard_core::board::BoardView;
use bboard_core::checkpoint::{CosignaturePolicy, NoteSigner};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_node::runtime::start;
use bboard_testkit::cluster::{append, client, verify, TestCluster};
use bboard_testkit::process::node_signer;
use bboard_testkit::{body, edit_leaf, genesis, key, note, register, register_terminal, ORIGIN};
use ed25519_dalek::SigningKey;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_append_prove_and_agree() {
    let cluster = TestCluster::start(3).await;
    let authority = SigningKey::from_bytes(&[1; 32]);
    let genesis = genesis(ORIGIN, &authority);
    // Before the genesis, nothing else is accepted.
    let early = append(&cluster.endpoints[0], &note(&authority, 1))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    let response = append(&cluster.endpoints[1], &genesis).await.unwrap();
    assert_eq!(verify(&cluster.policy, &response), 0);

    // Register a terminal key, then append from every node concurrently (followers forward).
    let terminal = SigningKey::from_bytes(&[2; 32]);
    let register = register_terminal(&authority, &terminal, 1);
    assert_eq!(
        verify(
            &cluster.policy,
            &append(&cluster.endpoints[2], &register).await.unwrap()
        ),
        1
    );

    let mut tasks = Vec::new();
    for worker in 0..6u64 {
        let endpoint = cluster.endpoints[(worker % 3) as usize].clone();
        let terminal = terminal.clone();
        let policy = cluster.policy.clone();
        tasks.push(tokio::spawn(async move {
            let mut indexes = Vec::new();
            for i in 0..20 {
                let envelope = note(&terminal, 1000 + worker * 100 + i);
                let response = append(&endpoint, &envelope).await.unwrap();
                assert!(!response.duplicate);
                indexes.push(verify(&policy, &response));
            }
            indexes
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(
        all,
        (2..122).collect::<Vec<u64>>(),
        "every entry exactly once"
    );

    // A retry of an acknowledged envelope is a duplicate with the original index.
    let again = append(&cluster.endpoints[1], &note(&terminal, 1000))
        .await
        .unwrap();
    assert!(again.duplicate);
    let original_index = verify(&cluster.policy, &again);
    assert!((2..122).contains(&original_index));

    // Bad input: precise codes, nothing appended.
    let mut tampered = note(&terminal, 5000).to_proto();
    tampered.body[2] ^= 1;
    let mut c = client(&cluster.endpoints[0]).await;
    let status = c
        .append(pb::AppendRequest {
            envelope: Some(tampered),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let stranger = SigningKey::from_bytes(&[77; 32]);
    let status = append(&cluster.endpoints[0], &note(&stranger, 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let huge = SignedEnvelope::sign(vec![1; 20 * 1024], &terminal);
    let status = append(&cluster.endpoints[0], &huge).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = c
        .append(pb::AppendRequest { envelope: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // All nodes converge on the same size and root.
    let mut seen = Vec::new();
    for endpoint in &cluster.endpoints {
        let mut c = client(endpoint).await;
        let mut status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
        for _ in 0..50 {
            if status.tree_size == 122 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
        }
        seen.push((status.tree_size, status.root));
    }
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    assert_eq!(seen[0].0, 122);

    // Consistency proof between two cosigned checkpoints verifies. A read of an old
    // size starts no cosign round: each node serves what it holds (at least its own
    // signature), and the reader gathers k of them, as clients do.
    let mut old_cp: Option<bboard_core::checkpoint::SignedCheckpoint> = None;
    for endpoint in &cluster.endpoints {
        let old = client(endpoint)
            .await
            .get_checkpoint(pb::GetCheckpointRequest { size: 50 })
            .await
            .unwrap()
            .into_inner();
        let note =
            bboard_core::checkpoint::SignedCheckpoint::parse(&old.signed_checkpoint).unwrap();
        match old_cp.as_mut() {
            None => old_cp = Some(note),
            Some(gathered) => gathered.merge(&note).unwrap(),
        }
    }
    let old_cp = cluster.policy.verify(&old_cp.unwrap()).unwrap();
    let mut c = client(&cluster.endpoints[2]).await;
    let new = c
        .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
        .await
        .unwrap()
        .into_inner();
    let new_cp = cluster.policy.verify_note(&new.signed_checkpoint).unwrap();
    let proof = c
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: 50,
            new_size: new.size,
        })
        .await
        .unwrap()
        .into_inner();
    let proof: Vec<_> = proof
        .proof
        .iter()
        .map(|h| bboard_merkle::Hash::from_slice(h).unwrap())
        .collect();
    bboard_merkle::verify_consistency(
        &bboard_merkle::Blake3Hasher,
        old_cp.checkpoint.size,
        new_cp.checkpoint.size,
        &old_cp.checkpoint.root,
        &new_cp.checkpoint.root,
        &proof,
    )
    .unwrap();

    cluster.shutdown().await;
}

/// The index of the next entry event on a Watch stream (checkpoint events skipped).
async fn next_entry_index(stream: &mut tonic::Streaming<pb::WatchEvent>) -> u64 {
    use tokio_stream::StreamExt as _;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(pb::watch_event::Event::Entry(entry)) = event.event {
            return entry.index;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_health_and_reflection_are_served() {
    let (cluster, authority) = TestCluster::with_genesis(3).await;
    for i in 1..=5 {
        append(&cluster.endpoints[0], &note(&authority, i))
            .await
            .unwrap();
    }
    // Watch from a follower's point of view: all entries from index 2, in order.
    let mut c = client(&cluster.endpoints[2]).await;
    let mut stream = c
        .watch(pb::WatchRequest { from_index: 2 })
        .await
        .unwrap()
        .into_inner();
    let mut indexes = Vec::new();
    while indexes.len() < 4 {
        indexes.push(next_entry_index(&mut stream).await);
    }
    assert_eq!(indexes, vec![2, 3, 4, 5]);
    // A new entry shows up on the open stream.
    append(&cluster.endpoints[1], &note(&authority, 6))
        .await
        .unwrap();
    assert_eq!(next_entry_index(&mut stream).await, 6);

    // gRPC health reports the Board service as serving.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.endpoints[0]))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "bboard.v1.Board".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Unknown entries and sizes get precise codes.
    let status = c
        .get_entry(pb::GetEntryRequest { index: 999 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = c
        .get_checkpoint(pb::GetCheckpointRequest { size: 999 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_store_was_edited_refuses_to_start() {
    let (mut cluster, authority) = TestCluster::with_genesis(3).await;
    for i in 1..=3 {
        append(&cluster.endpoints[0], &note(&authority, i))
            .await
            .unwrap();
    }
    // Let node 3 apply everything (bounded wait: the machine may be busy), then stop it.
    let leader_size = cluster.nodes[..2]
        .iter()
        .map(|n| n.shared.board.size().unwrap())
        .max()
        .unwrap();
    for _ in 0..200 {
        if cluster.nodes[2].shared.board.size().unwrap() >= leader_size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let node = cluster.nodes.pop().unwrap();
    let config = node.shared.config.clone();
    node.shutdown().await;

    // Restarting an untouched store works (and it rejoins).
    let node = start(config.clone()).await.unwrap();
    node.shutdown().await;

    // Edit one byte of leaf 2 inside the stopped node's sled store (its last store
    // handles may be released a moment after shutdown returns: edit_leaf waits).
    edit_leaf(&config.data_dir, 2);
    let error = match start(config).await {
        Ok(_) => panic!("a node with an edited store started"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("leaves were edited") && error.contains("Refusing to serve"),
        "{error}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_signers_and_oversized_messages_are_refused() {
    let (cluster, authority) = TestCluster::with_genesis(3).await;
    let terminal = SigningKey::from_bytes(&[3; 32]);
    let register = register_terminal(&authority, &terminal, 1);
    append(&cluster.endpoints[0], &register).await.unwrap();
    append(&cluster.endpoints[0], &note(&terminal, 10))
        .await
        .unwrap();
    let revoke = SignedEnvelope::sign_body(
        &body(
            pb::entry_body::Kind::RevokeKey(pb::RevokeKey {
                public_key: terminal.verifying_key().as_bytes().to_vec(),
                reason: "stolen".into(),
            }),
            2,
        ),
        &authority,
    );
    let revoked_at = verify(
        &cluster.policy,
        &append(&cluster.endpoints[1], &revoke).await.unwrap(),
    );
    let status = append(&cluster.endpoints[2], &note(&terminal, 11))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains(&format!("revoked by entry {revoked_at}")),
        "{status:?}"
    );

    // A gRPC message above the configured 4 MiB limit is refused before decoding.
    let mut c = client(&cluster.endpoints[0]).await;
    let huge = pb::Envelope {
        body: vec![0; 5 * 1024 * 1024],
        signer: terminal.verifying_key().as_bytes().to_vec(),
        signature: vec![0; 64],
    };
    let status = c
        .append(pb::AppendRequest {
            envelope: Some(huge),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    // Nothing of the refused entries reached the board.
    let size = c
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .tree_size;
    assert_eq!(size, revoked_at + 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_records_final_checkpoints_on_the_board() {
    let (cluster, authority) = TestCluster::with_genesis(3).await;
    // Register every node's checkpoint key with ROLE_NODE.
    for i in 0..3u8 {
        let register = register(
            &authority,
            &key(10 + i),
            pb::Role::Node,
            "",
            u64::from(i) + 1,
        );
        append(&cluster.endpoints[0], &register).await.unwrap();
    }
    for seq in 10..15 {
        append(&cluster.endpoints[1], &note(&authority, seq))
            .await
            .unwrap();
    }
    // Within a few record intervals a CheckpointCosignatures entry appears, holding a
    // k-of-n checkpoint that matches the board at its size.
    let board = &cluster.nodes[2].shared.board;
    let mut found = None;
    for _ in 0..100 {
        let size = board.size().unwrap();
        for index in 0..size {
            let leaf = board.leaf(index).unwrap().unwrap();
            let record = bboard_core::leaf::decode_leaf(&leaf).unwrap();
            if let Some(pb::entry_body::Kind::CheckpointCosignatures(c)) =
                record.envelope.body().unwrap().kind
            {
                found = Some(c.signed_checkpoint);
            }
        }
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let note = found.expect("no checkpoint was recorded on the board");
    let signed = bboard_core::checkpoint::SignedCheckpoint::parse(&note).unwrap();
    let verified = cluster.policy.verify(&signed).unwrap();
    let size = verified.checkpoint.size.0;
    // At the earliest, once the leader's own key is registered (genesis + 1).
    assert!(size >= 2, "recorded size {size}");
    assert_eq!(board.root_at(size).unwrap(), verified.checkpoint.root);
    cluster.shutdown().await;
}

/// A plain HTTP/1.1 GET on the node's port; returns (status, body).
async fn http_get(endpoint: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(endpoint).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_side_mirrors_the_board_and_serves_metrics() {
    let (cluster, authority) = TestCluster::with_genesis(3).await;
    append(&cluster.endpoints[0], &note(&authority, 1))
        .await
        .unwrap();
    let endpoint = &cluster.endpoints[1];
    // gRPC and HTTP share the port.
    let (code, body) = http_get(endpoint, "/healthz").await;
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = http_get(endpoint, "/v1/entries/1").await;
    assert_eq!(code, 200, "{body}");
    let entry: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(entry["kind"], "Note");
    assert_eq!(entry["index"], 1);
    let (code, body) = http_get(endpoint, "/v1/checkpoint").await;
    assert_eq!(code, 200, "{body}");
    let checkpoint: serde_json::Value = serde_json::from_str(&body).unwrap();
    let note = checkpoint["signed_checkpoint"].as_str().unwrap();
    cluster
        .policy
        .verify(&bboard_core::checkpoint::SignedCheckpoint::parse(note).unwrap())
        .unwrap();
    let (code, body) = http_get(endpoint, "/v1/proof/inclusion?index=1").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(endpoint, "/v1/status").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"tree_size\":2"), "{body}");
    let (code, body) = http_get(endpoint, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("bboard_tree_size 2"), "{body}");
    assert!(body.contains("bboard_censorship_alarms_active 0"), "{body}");
    // Errors are JSON with the matching status.
    let (code, body) = http_get(endpoint, "/v1/entries/99").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_get(endpoint, "/v1/tracking/UUUU-UUUU").await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = http_get(endpoint, "/v1/tracking/0000-0000").await;
    assert_eq!(code, 404);
    let (code, body) = http_get(endpoint, "/").await;
    assert_eq!(code, 200);
    assert!(body.contains("ballot tracker"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receipts_carry_the_cosignature_of_a_required_witness() {
    use bboard_core::checkpoint::NoteVerifier;
    use bboard_core::witness::Witness;
    use bboard_witness::{router, WitnessService};
    // The log's policy, as the cluster's nodes sign (same keys as start_cluster_with).
    let node_keys: Vec<NoteVerifier> = (1..=3).map(|id| node_signer(id).verifier()).collect();
    let log_policy = CosignaturePolicy::majority(ORIGIN, node_keys).unwrap();
    let witness_signer = NoteSigner::new("witness-1", SigningKey::from_bytes(&[77; 32])).unwrap();
    let witness_key = witness_signer.verifier();
    let state_dir = tempfile::tempdir().unwrap();
    let state_file = bboard_witness::WitnessStateFile::new(state_dir.path().join("w.json"));
    let service =
        WitnessService::open(Witness::new(witness_signer, [log_policy]), state_file).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(service)).await });

    let cluster = TestCluster::start_with(
        3,
        vec![bboard_node::config::WitnessPeer {
            url,
            verifier_key: witness_key.to_string(),
        }],
        Some(1),
    )
    .await;
    let authority = SigningKey::from_bytes(&[1; 32]);
    cluster.post_genesis(&authority).await;
    let response = append(&cluster.endpoints[1], &note(&authority, 1))
        .await
        .unwrap();
    // The receipt satisfies a client that requires the witness on top of 2-of-3 nodes.
    let with_witness = cluster
        .policy
        .clone()
        .with_witnesses(vec![witness_key], 1)
        .unwrap();
    let receipt = Receipt::from_proto(response.receipt.as_ref().unwrap()).unwrap();
    let verified = receipt.verify(&with_witness).unwrap();
    assert_eq!(verified.checkpoint.witnesses, vec!["witness-1".to_string()]);
    cluster.shutdown().await;
}
