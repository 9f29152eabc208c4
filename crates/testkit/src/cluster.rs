//! In-process cluster harness: real nodes (`bboard_node::runtime::start`, sled stores
//! in a temporary directory, gRPC on 127.0.0.1) in the test's own process, driven
//! through the public Board service.

use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, NoteVerifier};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_node::config::{Limits, RaftTuning, WitnessPeer};
use bboard_node::runtime::{start, RunningNode};
use bboard_proto::v1::board_client::BoardClient;
use ed25519_dalek::SigningKey;
use tonic::Code;

use crate::{genesis, ORIGIN};

/// Running in-process nodes; [`TestCluster::shutdown`] stops them.
pub struct TestCluster {
    /// The nodes, node `id` at index `id - 1`.
    pub nodes: Vec<RunningNode>,
    /// Their gRPC addresses, in the same order.
    pub endpoints: Vec<String>,
    /// The majority policy over every node's checkpoint key.
    pub policy: CosignaturePolicy,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` voters (fast Raft timing, 16 KiB bodies, checkpoints recorded every
    /// 300 ms); node keys as in [`crate::process::Cluster`].
    pub async fn start(n: u64) -> TestCluster {
        TestCluster::start_with(n, Vec::new(), None).await
    }

    /// [`TestCluster::start`] with `witnesses` configured on every node.
    pub async fn start_with(
        n: u64,
        witnesses: Vec<WitnessPeer>,
        witness_threshold: Option<usize>,
    ) -> TestCluster {
        let dir = crate::temp_dir();
        let peers = crate::peers(n);
        let mut nodes = Vec::new();
        for peer in &peers {
            let node_dir = dir.path().join(format!("n{}", peer.id));
            let raft = RaftTuning {
                heartbeat_ms: 100,
                election_timeout_min_ms: 400,
                election_timeout_max_ms: 800,
                ..Default::default()
            };
            let limits = Limits {
                max_body_bytes: 16 * 1024,
                checkpoint_record_interval_ms: 300,
                ..Default::default()
            };
            let mut config =
                crate::node_config(&node_dir, peer, &peers, (1..=n).collect(), raft, limits);
            config.witnesses = witnesses.clone();
            config.witness_threshold = witness_threshold;
            nodes.push(start(config).await.expect("node starts"));
        }
        let verifiers = peers
            .iter()
            .map(|p| NoteVerifier::parse(&p.verifier_key).expect("verifier key"))
            .collect();
        TestCluster {
            endpoints: peers.iter().map(|p| p.address.clone()).collect(),
            nodes,
            policy: CosignaturePolicy::majority(ORIGIN, verifiers).expect("policy"),
            _dir: dir,
        }
    }

    /// Appends the genesis of [`ORIGIN`] by `authority` through node 1.
    pub async fn post_genesis(&self, authority: &SigningKey) {
        append(&self.endpoints[0], &genesis(ORIGIN, authority))
            .await
            .expect("genesis appended");
    }

    /// A started cluster of `n` nodes whose board holds the genesis of the fixture
    /// authority (key seed 1), with that authority's key.
    pub async fn with_genesis(n: u64) -> (TestCluster, SigningKey) {
        let cluster = TestCluster::start(n).await;
        let authority = crate::key(1);
        cluster.post_genesis(&authority).await;
        (cluster, authority)
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

/// A Board client of `endpoint`, retrying the connection for up to 5 s.
pub async fn client(endpoint: &str) -> BoardClient<tonic::transport::Channel> {
    for _ in 0..50 {
        if let Ok(client) = BoardClient::connect(format!("http://{endpoint}")).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {endpoint}");
}

/// Appends through `endpoint`, retrying while the cluster elects a leader.
pub async fn append(
    endpoint: &str,
    envelope: &SignedEnvelope,
) -> Result<pb::AppendResponse, tonic::Status> {
    let mut client = client(endpoint).await;
    for _ in 0..100 {
        match client
            .append(pb::AppendRequest {
                envelope: Some(envelope.to_proto()),
            })
            .await
        {
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(|r| r.into_inner()),
        }
    }
    Err(tonic::Status::unavailable("gave up"))
}

/// Verifies the receipt of `response` with `policy`; its leaf index.
pub fn verify(policy: &CosignaturePolicy, response: &pb::AppendResponse) -> u64 {
    let receipt = Receipt::from_proto(response.receipt.as_ref().expect("a receipt"))
        .expect("receipt decodes");
    receipt
        .verify(policy)
        .expect("receipt verifies")
        .leaf_index
        .0
}
