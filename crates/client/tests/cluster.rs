//! The client against real nodes (`bboard_testkit::cluster`: sled stores, gRPC on
//! 127.0.0.1, leaf 0 the genesis), some of them behind a [`proxy::Proxy`] for what an
//! honest node never does: answer `UNAVAILABLE` on purpose, censor, forge.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

mod proxy;

use std::time::Duration;

use bboard_client::{BoardClient, BoardEvent, ClientError, ClientOptions, StreamExt};
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_merkle::TreeSize;
use bboard_testkit::cluster::TestCluster;
use ed25519_dalek::SigningKey;
use tonic::Code;

use proxy::{Forgery, Proxy};

fn options(policy: Option<CosignaturePolicy>) -> ClientOptions {
    ClientOptions {
        per_request_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(10),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        policy,
        ..ClientOptions::default()
    }
}

async fn client(endpoints: Vec<String>, policy: Option<CosignaturePolicy>) -> BoardClient {
    BoardClient::connect(endpoints, options(policy))
        .await
        .unwrap()
}

/// An address where nothing listens.
fn closed_port() -> String {
    format!("127.0.0.1:{}", bboard_testkit::free_port())
}

/// A running board whose leaf 0 is the genesis of `authority`, which may post notes.
struct Board {
    cluster: TestCluster,
    authority: SigningKey,
}

impl Board {
    /// `n` nodes (checkpoints final with a majority of their signatures).
    async fn start(n: u64) -> Board {
        let (cluster, authority) = TestCluster::with_genesis(n).await;
        Board { cluster, authority }
    }

    fn policy(&self) -> CosignaturePolicy {
        self.cluster.policy.clone()
    }

    /// The authority's note number `seq` (distinct numbers, distinct envelopes).
    fn note(&self, seq: u64) -> SignedEnvelope {
        bboard_testkit::note(&self.authority, seq)
    }

    /// The index of the node that leads and of one that follows, once every node
    /// names that leader (a follower that knows its leader forwards at once).
    async fn leader_and_follower(&self) -> (usize, usize) {
        let endpoints = &self.cluster.endpoints;
        for _ in 0..100 {
            let mut statuses = Vec::new();
            for endpoint in endpoints {
                let mut node = bboard_testkit::cluster::client(endpoint).await;
                statuses.push(
                    node.status(pb::StatusRequest {})
                        .await
                        .unwrap()
                        .into_inner(),
                );
            }
            let leader = statuses.iter().position(|s| s.role == "leader");
            if let Some(leader) = leader {
                let id = statuses[leader].node_id;
                if statuses.iter().all(|s| s.leader_id == id) {
                    return (leader, (leader + 1) % endpoints.len());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the nodes do not agree on a leader");
    }

    /// A proxy of node `i`, and its address.
    async fn proxy(&self, i: usize) -> (Proxy, String) {
        Proxy::serve(&self.cluster.endpoints[i]).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_returns_a_verified_receipt() {
    let board = Board::start(3).await;
    let client = client(
        vec![board.cluster.endpoints[0].clone()],
        Some(board.policy()),
    )
    .await;
    client.append(&board.note(1)).await.unwrap();
    let envelope = board.note(2);
    let result = client.append(&envelope).await.unwrap();
    assert!(!result.duplicate);
    assert_eq!(result.receipt.leaf_index, 2);
    let verified = result.verified.unwrap();
    assert_eq!(verified.leaf.envelope, envelope);
    assert_eq!(verified.checkpoint.checkpoint.size, TreeSize(3));
    assert!(verified.checkpoint.signers.len() >= 2);
    // The receipt also verifies offline.
    result.receipt.verify(&board.policy()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_append_returns_the_original_receipt() {
    let board = Board::start(1).await;
    let client = client(board.cluster.endpoints.clone(), Some(board.policy())).await;
    let envelope = board.note(1);
    let first = client.append(&envelope).await.unwrap();
    client.append(&board.note(2)).await.unwrap();
    let again = client.append(&envelope).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.receipt.leaf_index, first.receipt.leaf_index);
    assert_eq!(again.receipt.leaf_data, first.receipt.leaf_data);
    assert!(again.verified.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_with_the_same_envelope() {
    let board = Board::start(1).await;
    let (proxy, address) = board.proxy(0).await;
    proxy.set(|k| k.unavailable = 2);
    let client = client(vec![address], Some(board.policy())).await;
    let envelope = board.note(1);
    let result = client.append(&envelope).await.unwrap();
    assert_eq!(proxy.append_calls(), 3);
    assert!(proxy.received().iter().all(|e| *e == envelope.to_proto()));
    assert_eq!(result.receipt.leaf_index, 1);
    assert!(!result.duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_not_retried() {
    let board = Board::start(1).await;
    let (proxy, address) = board.proxy(0).await;
    let client = client(vec![address], Some(board.policy())).await;
    let stranger = bboard_testkit::note(&SigningKey::from_bytes(&[77; 32]), 1);
    let oversized = SignedEnvelope::sign(vec![1; 20 * 1024], &board.authority);
    for (calls, envelope, expected) in [
        (1, stranger, Code::PermissionDenied),
        (2, oversized, Code::InvalidArgument),
    ] {
        let said = bboard_testkit::cluster::append(&board.cluster.endpoints[0], &envelope)
            .await
            .unwrap_err();
        match client.append(&envelope).await.unwrap_err() {
            ClientError::Rejected { code, message, .. } => {
                assert_eq!(code, expected);
                assert_eq!(message, said.message(), "the node's reason is passed on");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(proxy.append_calls(), calls, "{expected:?} is not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_receipts_fail_verification() {
    let board = Board::start(3).await;
    let (proxy, address) = board.proxy(0).await;
    let client = client(vec![address], Some(board.policy())).await;
    let mut seq = 0;
    for forgery in [
        Forgery::WrongProof,
        Forgery::OneSignature,
        Forgery::OtherEntry,
    ] {
        proxy.set(|k| k.forgery = Forgery::None);
        seq += 2;
        client.append(&board.note(seq)).await.unwrap();
        proxy.set(|k| k.forgery = forgery);
        let error = client.append(&board.note(seq + 1)).await.unwrap_err();
        // The node accepted the entry: the error says it is on the board.
        let ClientError::LandedUnverified { index, reason, .. } = &error else {
            panic!("{forgery:?}: {error:?}");
        };
        assert!(
            error.to_string().contains("IS on the board"),
            "{forgery:?}: {error}"
        );
        let landed = client.get_entry(*index).await;
        if forgery != Forgery::OtherEntry {
            assert_eq!(landed.unwrap().leaf.envelope.id(), board.note(seq + 1).id());
        }
        if forgery == Forgery::OneSignature {
            assert!(matches!(
                **reason,
                bboard_core::Error::NotEnoughCosignatures {
                    valid: 1,
                    required: 2,
                    ..
                }
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_for_another_envelope_fails_even_without_policy() {
    let board = Board::start(1).await;
    let (proxy, address) = board.proxy(0).await;
    let client = client(vec![address], None).await;
    client.append(&board.note(1)).await.unwrap();
    proxy.set(|k| k.forgery = Forgery::OtherEntry);
    let error = client.append(&board.note(2)).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::LandedUnverified { reason, .. }
                if matches!(**reason, bboard_core::Error::InvalidReceipt(_))
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_origin_or_wrong_keys_post_nothing_and_say_which() {
    let board = Board::start(3).await;
    let endpoints = board.cluster.endpoints.clone();
    let honest = client(endpoints.clone(), Some(board.policy())).await;
    honest.append(&board.note(1)).await.unwrap();
    let size = honest
        .checkpoint(None)
        .await
        .unwrap()
        .signed
        .checkpoint()
        .size
        .0;

    let wrong_origin =
        CosignaturePolicy::majority("another.example/board", board.policy().keys().to_vec())
            .unwrap();
    let strangers: Vec<_> = (0..3)
        .map(|i| {
            bboard_core::checkpoint::NoteSigner::new(
                &format!("stranger-{i}"),
                SigningKey::from_bytes(&[200 + i; 32]),
            )
            .unwrap()
            .verifier()
        })
        .collect();
    let wrong_keys = CosignaturePolicy::majority(board.policy().origin(), strangers).unwrap();
    for (what, policy) in [("origin", wrong_origin), ("keys", wrong_keys)] {
        let misconfigured = client(endpoints.clone(), Some(policy)).await;
        let error = misconfigured.append(&board.note(2)).await.unwrap_err();
        assert!(
            matches!(error, ClientError::TrustConfiguration { .. }),
            "wrong {what}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("nothing was posted") && message.contains(what),
            "wrong {what}: {message}"
        );
    }
    // Nothing landed: the board still ends with note 1.
    let after = honest
        .checkpoint(None)
        .await
        .unwrap()
        .signed
        .checkpoint()
        .size
        .0;
    assert_eq!(after, size);
    let last = honest.get_entry(size - 1).await.unwrap();
    assert_eq!(last.leaf.envelope.id(), board.note(1).id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_endpoint_when_one_is_down() {
    // Only a follower is configured, so no leader is known: the append goes to the
    // first endpoint, then the next, which forwards it to the leader.
    let board = Board::start(3).await;
    let (_, follower) = board.leader_and_follower().await;
    let (proxy, up) = board.proxy(follower).await;
    let client = client(vec![closed_port(), up.clone()], Some(board.policy())).await;
    let result = client.append(&board.note(1)).await.unwrap();
    assert_eq!(client.leader(), None);
    assert_eq!(proxy.append_calls(), 1);
    assert_eq!(result.endpoint, up);
    assert!(result.verified.is_some());
    // Reads fail over too.
    let client = self::client(vec![closed_port(), up], Some(board.policy())).await;
    assert_eq!(client.get_entry(0).await.unwrap().index, 0);
}

#[tokio::test]
async fn gives_up_after_the_total_timeout() {
    let client = BoardClient::connect(
        vec![closed_port()],
        ClientOptions {
            total_timeout: Duration::from_millis(300),
            ..options(None)
        },
    )
    .await
    .unwrap();
    let envelope = bboard_testkit::note(&bboard_testkit::key(1), 1);
    let error = client.append(&envelope).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::OutcomeUnknown { attempts, envelope: kept, .. }
            if *attempts > 1 && **kept == envelope),
        "{error:?}"
    );
    assert!(error.to_string().contains("may or may not be on the board"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_the_leader() {
    let board = Board::start(3).await;
    let (leader, _) = board.leader_and_follower().await;
    let leader = board.cluster.endpoints[leader].clone();
    let mut endpoints = vec![closed_port()];
    endpoints.extend(board.cluster.endpoints.iter().cloned());
    let client = client(endpoints, None).await;
    assert_eq!(client.discover_leader().await, Some(leader.clone()));
    assert_eq!(client.leader(), Some(leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_proofs_verify() {
    let board = Board::start(3).await;
    // Pages of at most 2 entries, so the client has to page through.
    let (proxy, address) = board.proxy(0).await;
    proxy.set(|k| k.page_limit = Some(2));
    let client = client(vec![address], Some(board.policy())).await;
    for i in 1..=4 {
        client.append(&board.note(i)).await.unwrap();
    }
    let entries = client.get_entries(1, 10).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let entry = client.get_entry(2).await.unwrap();
    assert_eq!(entry.leaf.envelope, board.note(2));

    let latest = client.checkpoint(None).await.unwrap();
    assert_eq!(latest.verified.unwrap().checkpoint.size, TreeSize(5));
    let older = client.checkpoint(Some(3)).await.unwrap();
    assert_eq!(older.signed.checkpoint().size, TreeSize(3));

    let by_index = client.inclusion_proof_by_index(2, Some(4)).await.unwrap();
    assert_eq!(by_index.tree_size, 4);
    assert_eq!(by_index.leaf_hash, entry.leaf_hash);
    assert!(by_index.checkpoint.signers.len() >= 2);
    let by_hash = client
        .inclusion_proof_by_leaf_hash(&entry.leaf_hash, None)
        .await
        .unwrap();
    assert_eq!((by_hash.leaf_index, by_hash.tree_size), (2, 5));

    let consistency = client.consistency_proof(2, 5).await.unwrap();
    assert_eq!(consistency.new_checkpoint.checkpoint.size, TreeSize(5));
    client.consistency_proof(0, 0).await.unwrap();
    client.consistency_proof(5, 5).await.unwrap();

    proxy.set(|k| k.forgery = Forgery::WrongProof);
    assert!(matches!(
        client.inclusion_proof_by_index(2, Some(4)).await,
        Err(ClientError::Verification(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_need_a_policy() {
    let board = Board::start(1).await;
    let client = client(board.cluster.endpoints.clone(), None).await;
    assert!(matches!(
        client.inclusion_proof_by_index(0, None).await,
        Err(ClientError::NoPolicy)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_checked_entries_and_checkpoints() {
    let board = Board::start(1).await;
    let client = client(board.cluster.endpoints.clone(), Some(board.policy())).await;
    for i in 1..=3 {
        client.append(&board.note(i)).await.unwrap();
    }
    let mut events = client.watch(2).await.unwrap();
    let (mut entries, mut checkpoint) = (Vec::new(), None);
    while entries.len() < 3 || checkpoint.is_none() {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .unwrap();
        match event {
            BoardEvent::Entry(entry) => {
                if entries.is_empty() {
                    // The node streams now: a new entry makes a new final checkpoint.
                    client.append(&board.note(4)).await.unwrap();
                }
                entries.push(entry.index);
            }
            BoardEvent::Checkpoint(info) => checkpoint = Some(info),
            BoardEvent::Alarm(alarm) => panic!("unexpected alarm {alarm:?}"),
        }
    }
    assert_eq!(entries, [2, 3, 4]);
    let checkpoint = checkpoint.unwrap();
    assert!(checkpoint.verified.is_some() && checkpoint.is_final);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_censoring_leader_is_routed_around_with_the_same_envelope() {
    // The leader's node answers nothing in time; a follower (another organisation's
    // node) forwards to the real leader.
    let board = Board::start(3).await;
    let (leader, follower) = board.leader_and_follower().await;
    let (censor, a) = board.proxy(leader).await;
    censor.set(|k| k.censor = Some(Duration::from_secs(5)));
    let (other, b) = board.proxy(follower).await;
    let client = BoardClient::connect(
        vec![a.clone(), b.clone()],
        ClientOptions {
            per_request_timeout: Duration::from_millis(300),
            leader_attempts: 2,
            ..options(Some(board.policy()))
        },
    )
    .await
    .unwrap();
    assert_eq!(client.discover_leader().await, Some(a.clone()));
    let envelope = board.note(1);
    let result = client.append(&envelope).await.unwrap();
    assert_eq!(
        result.endpoint, b,
        "the receipt comes through the other node"
    );
    assert_eq!(
        censor.append_calls(),
        2,
        "the leader gets its retry budget, no more"
    );
    assert_eq!(other.append_calls(), 1);
    let mut received = censor.received();
    received.extend(other.received());
    assert!(received.iter().all(|e| *e == envelope.to_proto()));
    // One leaf, one receipt: sending it again gives the same entry.
    let again = client.append(&envelope).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt.leaf_index, result.receipt.leaf_index);
    let copies = client
        .get_entries(0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.leaf.envelope == envelope)
        .count();
    assert_eq!(copies, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_answering_unavailable_is_routed_around_after_its_budget() {
    let board = Board::start(3).await;
    let (leader, follower) = board.leader_and_follower().await;
    let (unavailable, a) = board.proxy(leader).await;
    unavailable.set(|k| k.unavailable = 100);
    let (other, b) = board.proxy(follower).await;
    let client = BoardClient::connect(
        vec![a, b.clone()],
        ClientOptions {
            leader_attempts: 3,
            ..options(Some(board.policy()))
        },
    )
    .await
    .unwrap();
    let result = client.append(&board.note(1)).await.unwrap();
    assert_eq!(result.endpoint, b);
    assert_eq!(unavailable.append_calls(), 3);
    assert_eq!(other.append_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_names_every_node_tried() {
    let board = Board::start(3).await;
    let (leader, follower) = board.leader_and_follower().await;
    let mut tried_by_us = Vec::new();
    for i in [leader, follower] {
        let (proxy, address) = board.proxy(i).await;
        proxy.set(|k| k.censor = Some(Duration::from_secs(5)));
        tried_by_us.push(address);
    }
    let client = BoardClient::connect(
        tried_by_us.clone(),
        ClientOptions {
            per_request_timeout: Duration::from_millis(200),
            total_timeout: Duration::from_millis(1500),
            ..options(None)
        },
    )
    .await
    .unwrap();
    let kept = match client.append(&board.note(1)).await.unwrap_err() {
        ClientError::OutcomeUnknown {
            mut tried,
            envelope,
            ..
        } => {
            tried.sort();
            tried_by_us.sort();
            assert_eq!(tried, tried_by_us);
            envelope
        }
        other => panic!("expected an unknown outcome, got {other:?}"),
    };
    // The kept envelope, re-sent as it is once a node answers, lands once.
    let client = self::client(board.cluster.endpoints.clone(), Some(board.policy())).await;
    let first = client.append(&kept).await.unwrap();
    assert_eq!(first.verified.unwrap().leaf.envelope, *kept);
    let again = client.append(&kept).await.unwrap();
    assert!(
        again.duplicate,
        "a re-send is answered with the original receipt"
    );
    assert_eq!(again.receipt.leaf_index, first.receipt.leaf_index);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_is_found_by_its_id_with_a_verified_proof() {
    let board = Board::start(3).await;
    let (proxy, address) = board.proxy(0).await;
    let client = client(vec![address.clone()], Some(board.policy())).await;
    for i in 1..=3 {
        client.append(&board.note(i)).await.unwrap();
    }
    let wanted = board.note(2);
    let found = client
        .inclusion_proof_by_envelope_id(&wanted.id(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.entry.index, 2);
    assert_eq!(found.entry.leaf.envelope, wanted);
    assert_eq!(
        (found.inclusion.leaf_index, found.inclusion.tree_size),
        (2, 4)
    );
    assert_eq!(found.endpoint, address);
    let on = client
        .inclusion_proof_by_envelope_id_on(&address, &wanted.id(), Some(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on.inclusion.tree_size, 3);
    // Not on the board: None, not an error.
    assert!(client
        .inclusion_proof_by_envelope_id(&board.note(99).id(), None)
        .await
        .unwrap()
        .is_none());
    // A node that serves a wrong proof is caught.
    proxy.set(|k| k.forgery = Forgery::WrongProof);
    assert!(matches!(
        client
            .inclusion_proof_by_envelope_id(&wanted.id(), None)
            .await,
        Err(ClientError::Verification(_))
    ));
    // Without a policy there is nothing to verify against.
    let unverified = self::client(vec![address], None).await;
    assert!(matches!(
        unverified
            .inclusion_proof_by_envelope_id(&wanted.id(), None)
            .await,
        Err(ClientError::NoPolicy)
    ));
}
