//! Tests against an in-process fake `Board` server whose receipts, checkpoints and
//! proofs are real (in-memory Merkle tree, real node keys), with knobs to fail,
//! reject or forge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bboard_core::checkpoint::{Checkpoint, NoteSigner};
use bboard_core::envelope::{EnvelopeId, MAX_BODY_BYTES};
use bboard_core::leaf::encode_leaf;
use bboard_merkle::{MemoryNodeStore, MerkleTree};
use bboard_proto::v1::board_server::{Board, BoardServer};
use ed25519_dalek::SigningKey;
use tonic::{Request, Response, Status};

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::leaf_hash;
use bboard_core::pb;
use bboard_merkle::{Blake3Hasher, LeafIndex, TreeSize};

use super::*;

const ORIGIN: &str = "bboard.test/client";

fn node_signers() -> Vec<NoteSigner> {
    (1..=3u8)
        .map(|i| NoteSigner::new(&format!("node-{i}"), SigningKey::from_bytes(&[i; 32])).unwrap())
        .collect()
}

fn policy() -> CosignaturePolicy {
    CosignaturePolicy::new(
        ORIGIN,
        node_signers().iter().map(|s| s.verifier()).collect(),
        2,
    )
    .unwrap()
}

fn note(text: &str) -> SignedEnvelope {
    let body = pb::EntryBody {
        election_id: String::new(),
        created_unix_ms: 1,
        kind: Some(pb::entry_body::Kind::Note(pb::Note { text: text.into() })),
    };
    SignedEnvelope::sign_body(&body, &SigningKey::from_bytes(&[42; 32]))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Forgery {
    None,
    /// The inclusion proof has a wrong hash.
    WrongProof,
    /// The checkpoint is signed by 1 of the 3 node keys.
    OneSignature,
    /// The receipt is the one of another entry.
    OtherEntry,
}

struct FakeState {
    tree: MerkleTree<Blake3Hasher, MemoryNodeStore>,
    leaves: Vec<Vec<u8>>,
    by_id: HashMap<EnvelopeId, u64>,
    /// Append calls left to answer UNAVAILABLE.
    unavailable: usize,
    /// Answer INVALID_ARGUMENT to every append.
    reject: bool,
    forgery: Forgery,
    /// Envelopes received by Append, in order.
    received: Vec<pb::Envelope>,
    /// Status says "follower" with no known leader.
    follower: bool,
}

#[derive(Clone)]
struct FakeBoard {
    state: Arc<Mutex<FakeState>>,
    append_calls: Arc<AtomicUsize>,
    signers: Arc<Vec<NoteSigner>>,
    /// A censoring leader: every append is recorded, never appended, and answered
    /// UNAVAILABLE after this delay (longer than the client's per-request timeout:
    /// no answer in time at all).
    censor: Option<Duration>,
    /// This node says it is a follower (whatever the shared state says).
    says_follower: bool,
}

impl FakeBoard {
    fn new() -> Self {
        FakeBoard {
            state: Arc::new(Mutex::new(FakeState {
                tree: MerkleTree::new(Blake3Hasher, MemoryNodeStore::default()),
                leaves: Vec::new(),
                by_id: HashMap::new(),
                unavailable: 0,
                reject: false,
                forgery: Forgery::None,
                received: Vec::new(),
                follower: false,
            })),
            append_calls: Arc::new(AtomicUsize::new(0)),
            signers: Arc::new(node_signers()),
            censor: None,
            says_follower: false,
        }
    }

    /// Another node of the same board (shared state), a follower, with its own call
    /// counter.
    fn other_node(&self) -> Self {
        FakeBoard {
            state: self.state.clone(),
            append_calls: Arc::new(AtomicUsize::new(0)),
            signers: self.signers.clone(),
            censor: None,
            says_follower: true,
        }
    }

    fn with(self, f: impl FnOnce(&mut FakeState)) -> Self {
        f(&mut self.state.lock().unwrap());
        self
    }

    fn signed_checkpoint(&self, state: &FakeState, size: u64, signers: usize) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: TreeSize(size),
            root: state.tree.root_at(TreeSize(size)).unwrap(),
        };
        let mut signed = SignedCheckpoint::sign(checkpoint, &self.signers[0]).unwrap();
        for signer in &self.signers[1..signers] {
            signed.add_signature(signer).unwrap();
        }
        signed
    }

    fn receipt(&self, state: &FakeState, index: u64) -> pb::Receipt {
        let size = state.tree.size().0;
        let signers = if state.forgery == Forgery::OneSignature {
            1
        } else {
            3
        };
        let index = if state.forgery == Forgery::OtherEntry && index > 0 {
            index - 1
        } else {
            index
        };
        let mut proof: Vec<Vec<u8>> = state
            .tree
            .inclusion_proof(LeafIndex(index), TreeSize(size))
            .unwrap()
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        if state.forgery == Forgery::WrongProof {
            match proof.first_mut() {
                Some(first) => first[0] ^= 1,
                None => proof.push(vec![0; 32]),
            }
        }
        let data = state.leaves[index as usize].clone();
        pb::Receipt {
            leaf_index: index,
            leaf_hash: leaf_hash(&data).as_bytes().to_vec(),
            leaf_data: data,
            checkpoint: self.signed_checkpoint(state, size, signers).to_note(),
            inclusion_proof: proof,
            tracking_code: String::new(),
        }
    }

    fn entry(state: &FakeState, index: u64) -> Result<pb::EntryResponse, Status> {
        let data = state
            .leaves
            .get(index as usize)
            .ok_or_else(|| Status::not_found("no such entry"))?;
        Ok(pb::EntryResponse {
            index,
            leaf_data: data.clone(),
            leaf_hash: leaf_hash(data).as_bytes().to_vec(),
        })
    }

    fn checkpoint_response(
        &self,
        state: &FakeState,
        size: u64,
        signers: usize,
    ) -> pb::CheckpointResponse {
        let signed = self.signed_checkpoint(state, size, signers);
        pb::CheckpointResponse {
            signed_checkpoint: signed.to_note(),
            size,
            root: signed.checkpoint().root.as_bytes().to_vec(),
            r#final: signers >= 2,
        }
    }
}

#[tonic::async_trait]
impl Board for FakeBoard {
    async fn list_alarms(
        &self,
        _request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        Ok(Response::new(pb::ListAlarmsResponse::default()))
    }

    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        self.append_calls.fetch_add(1, Ordering::SeqCst);
        let envelope = request
            .into_inner()
            .envelope
            .ok_or_else(|| Status::invalid_argument("no envelope"))?;
        if let Some(delay) = self.censor {
            self.state.lock().unwrap().received.push(envelope.clone());
            tokio::time::sleep(delay).await;
            return Err(Status::unavailable("no receipt yet; retry"));
        }
        let mut state = self.state.lock().unwrap();
        state.received.push(envelope.clone());
        if state.unavailable > 0 {
            state.unavailable -= 1;
            return Err(Status::unavailable("no leader yet"));
        }
        if state.reject {
            return Err(Status::invalid_argument("signer is not registered"));
        }
        let envelope = SignedEnvelope::verify(&envelope, MAX_BODY_BYTES)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(&index) = state.by_id.get(&envelope.id()) {
            return Ok(Response::new(pb::AppendResponse {
                receipt: Some(self.receipt(&state, index)),
                duplicate: true,
            }));
        }
        let data = encode_leaf(1_767_225_600_000 + state.leaves.len() as u64, &envelope);
        let index = state.tree.append(leaf_hash(&data)).unwrap().0;
        state.leaves.push(data);
        state.by_id.insert(envelope.id(), index);
        Ok(Response::new(pb::AppendResponse {
            receipt: Some(self.receipt(&state, index)),
            duplicate: false,
        }))
    }

    async fn append_many(
        &self,
        _request: Request<pb::AppendManyRequest>,
    ) -> Result<Response<pb::AppendManyResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::EntryResponse>, Status> {
        let state = self.state.lock().unwrap();
        Ok(Response::new(Self::entry(
            &state,
            request.into_inner().index,
        )?))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        let size = state.leaves.len() as u64;
        // Pages of at most 2 entries, so the client has to page through.
        let end = size.min(request.start + u64::from(request.limit.min(2)));
        let entries = (request.start..end)
            .map(|i| Self::entry(&state, i))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::GetEntriesResponse {
            entries,
            tree_size: size,
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let state = self.state.lock().unwrap();
        let size = match request.into_inner().size {
            0 => state.tree.size().0,
            s if s <= state.tree.size().0 => s,
            _ => return Err(Status::not_found("no checkpoint of that size")),
        };
        let signers = if state.forgery == Forgery::OneSignature {
            1
        } else {
            3
        };
        Ok(Response::new(
            self.checkpoint_response(&state, size, signers),
        ))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        let size = match request.tree_size {
            0 => state.tree.size().0,
            s => s,
        };
        let index = match request.leaf {
            Some(pb::get_inclusion_proof_request::Leaf::Index(i)) => i,
            Some(pb::get_inclusion_proof_request::Leaf::LeafHash(h)) => state
                .leaves
                .iter()
                .position(|d| leaf_hash(d).as_bytes() == h.as_slice())
                .ok_or_else(|| Status::not_found("unknown leaf hash"))?
                as u64,
            Some(pb::get_inclusion_proof_request::Leaf::EnvelopeId(id)) => {
                let id = EnvelopeId(
                    id.try_into()
                        .map_err(|_| Status::invalid_argument("envelope id"))?,
                );
                *state
                    .by_id
                    .get(&id)
                    .ok_or_else(|| Status::not_found("envelope is not on the board"))?
            }
            None => return Err(Status::invalid_argument("no leaf")),
        };
        let mut proof: Vec<Vec<u8>> = state
            .tree
            .inclusion_proof(LeafIndex(index), TreeSize(size))
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        if state.forgery == Forgery::WrongProof {
            if let Some(first) = proof.first_mut() {
                first[0] ^= 1;
            }
        }
        Ok(Response::new(pb::InclusionProofResponse {
            leaf_index: index,
            tree_size: size,
            proof,
            // Only this node's signature: the client gathers the others.
            signed_checkpoint: self.signed_checkpoint(&state, size, 1).to_note(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        let new_size = match request.new_size {
            0 => state.tree.size().0,
            s => s,
        };
        let proof = state
            .tree
            .consistency_proof(TreeSize(request.old_size), TreeSize(new_size))
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: request.old_size,
            new_size,
            proof,
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let from = request.into_inner().from_index;
        let state = self.state.lock().unwrap();
        let mut events = Vec::new();
        for index in from..state.leaves.len() as u64 {
            events.push(Ok(pb::WatchEvent {
                event: Some(pb::watch_event::Event::Entry(Self::entry(&state, index)?)),
            }));
        }
        events.push(Ok(pb::WatchEvent {
            event: Some(pb::watch_event::Event::Checkpoint(
                self.checkpoint_response(&state, state.tree.size().0, 3),
            )),
        }));
        Ok(Response::new(Box::pin(tokio_stream::iter(events))))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let state = self.state.lock().unwrap();
        let follower = state.follower || self.says_follower;
        Ok(Response::new(pb::StatusResponse {
            node_id: 1,
            node_name: "fake".into(),
            role: if follower { "follower" } else { "leader" }.into(),
            term: 1,
            leader_id: u64::from(!follower),
            leader_address: String::new(),
            tree_size: state.tree.size().0,
            root: state.tree.root().unwrap().as_bytes().to_vec(),
            origin: ORIGIN.into(),
            last_log_index: 0,
            committed_index: 0,
            ..Default::default()
        }))
    }
}

/// Serves `board` on 127.0.0.1 (any free port); returns `host:port`.
async fn serve(board: FakeBoard) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BoardServer::new(board))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    address
}

/// An address where nothing listens.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

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

#[tokio::test]
async fn append_returns_a_verified_receipt() {
    let board = FakeBoard::new();
    let client = client(vec![serve(board.clone()).await], Some(policy())).await;
    client.append(&note("first")).await.unwrap();
    let envelope = note("second");
    let result = client.append(&envelope).await.unwrap();
    assert!(!result.duplicate);
    assert_eq!(result.receipt.leaf_index, 1);
    let verified = result.verified.unwrap();
    assert_eq!(verified.leaf.envelope, envelope);
    assert_eq!(verified.checkpoint.checkpoint.size, TreeSize(2));
    assert_eq!(verified.checkpoint.signers.len(), 3);
    // The receipt also verifies offline.
    result.receipt.verify(&policy()).unwrap();
}

#[tokio::test]
async fn duplicate_append_returns_the_original_receipt() {
    let board = FakeBoard::new();
    let client = client(vec![serve(board.clone()).await], Some(policy())).await;
    let envelope = note("once");
    let first = client.append(&envelope).await.unwrap();
    client.append(&note("other")).await.unwrap();
    let again = client.append(&envelope).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.receipt.leaf_index, first.receipt.leaf_index);
    assert_eq!(again.receipt.leaf_data, first.receipt.leaf_data);
    assert!(again.verified.is_some());
}

#[tokio::test]
async fn unavailable_is_retried_with_the_same_envelope() {
    let board = FakeBoard::new().with(|s| s.unavailable = 2);
    let client = client(vec![serve(board.clone()).await], Some(policy())).await;
    let envelope = note("retry me");
    let result = client.append(&envelope).await.unwrap();
    assert_eq!(board.append_calls.load(Ordering::SeqCst), 3);
    let received = board.state.lock().unwrap().received.clone();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|e| *e == envelope.to_proto()));
    assert_eq!(result.receipt.leaf_index, 0);
    assert!(!result.duplicate);
}

#[tokio::test]
async fn invalid_argument_is_not_retried() {
    let board = FakeBoard::new().with(|s| s.reject = true);
    let client = client(vec![serve(board.clone()).await], Some(policy())).await;
    let error = client.append(&note("no")).await.unwrap_err();
    assert_eq!(board.append_calls.load(Ordering::SeqCst), 1);
    match error {
        ClientError::Rejected { code, message, .. } => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert_eq!(message, "signer is not registered");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn forged_receipts_fail_verification() {
    for forgery in [
        Forgery::WrongProof,
        Forgery::OneSignature,
        Forgery::OtherEntry,
    ] {
        let board = FakeBoard::new();
        let client = client(vec![serve(board.clone()).await], Some(policy())).await;
        client.append(&note("honest")).await.unwrap();
        board.state.lock().unwrap().forgery = forgery;
        let error = client.append(&note("forged")).await.unwrap_err();
        assert!(
            matches!(error, ClientError::Verification(_)),
            "{forgery:?}: {error:?}"
        );
        if forgery == Forgery::OneSignature {
            assert!(matches!(
                error,
                ClientError::Verification(bboard_core::Error::NotEnoughCosignatures {
                    valid: 1,
                    required: 2,
                    ..
                })
            ));
        }
    }
}

#[tokio::test]
async fn receipt_for_another_envelope_fails_even_without_policy() {
    let board = FakeBoard::new();
    let client = client(vec![serve(board.clone()).await], None).await;
    client.append(&note("a")).await.unwrap();
    board.state.lock().unwrap().forgery = Forgery::OtherEntry;
    let error = client.append(&note("b")).await.unwrap_err();
    assert!(matches!(
        error,
        ClientError::Verification(bboard_core::Error::InvalidReceipt(_))
    ));
}

#[tokio::test]
async fn fails_over_to_the_next_endpoint_when_one_is_down() {
    // No leader is known, so the append goes to the first endpoint, then the next.
    let board = FakeBoard::new().with(|s| s.follower = true);
    let up = serve(board.clone()).await;
    let client = client(vec![closed_port().await, up.clone()], Some(policy())).await;
    let result = client.append(&note("failover")).await.unwrap();
    assert_eq!(client.leader(), None);
    assert_eq!(board.append_calls.load(Ordering::SeqCst), 1);
    assert_eq!(result.endpoint, up);
    assert!(result.verified.is_some());
    // Reads fail over too.
    let client = BoardClient::connect(vec![closed_port().await, up], options(Some(policy())))
        .await
        .unwrap();
    assert_eq!(client.get_entry(0).await.unwrap().index, 0);
}

#[tokio::test]
async fn gives_up_after_the_total_timeout() {
    let down = closed_port().await;
    let client = BoardClient::connect(
        vec![down],
        ClientOptions {
            total_timeout: Duration::from_millis(300),
            ..options(None)
        },
    )
    .await
    .unwrap();
    let error = client.append(&note("nobody")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Timeout { attempts, .. } if attempts > 1),
        "{error:?}"
    );
}

#[tokio::test]
async fn discovers_the_leader() {
    let up = serve(FakeBoard::new()).await;
    let client = client(vec![closed_port().await, up.clone()], None).await;
    assert_eq!(client.discover_leader().await, Some(up.clone()));
    assert_eq!(client.leader(), Some(up));
}

#[tokio::test]
async fn reads_and_proofs_verify() {
    let board = FakeBoard::new();
    let client = client(vec![serve(board.clone()).await], Some(policy())).await;
    for i in 0..5 {
        client.append(&note(&format!("entry {i}"))).await.unwrap();
    }
    let entries = client.get_entries(1, 10).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let entry = client.get_entry(2).await.unwrap();
    assert_eq!(entry.leaf.envelope, note("entry 2"));

    let latest = client.checkpoint(None).await.unwrap();
    assert_eq!(latest.verified.unwrap().checkpoint.size, TreeSize(5));
    let older = client.checkpoint(Some(3)).await.unwrap();
    assert_eq!(older.signed.checkpoint().size, TreeSize(3));

    // The proof comes with a 1-signature checkpoint: the client gathers the others.
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

    board.state.lock().unwrap().forgery = Forgery::WrongProof;
    assert!(matches!(
        client.inclusion_proof_by_index(2, Some(4)).await,
        Err(ClientError::Verification(_))
    ));
}

#[tokio::test]
async fn proofs_need_a_policy() {
    let client = client(vec![serve(FakeBoard::new()).await], None).await;
    client.append(&note("x")).await.unwrap();
    assert!(matches!(
        client.inclusion_proof_by_index(0, None).await,
        Err(ClientError::NoPolicy)
    ));
}

#[tokio::test]
async fn watch_streams_checked_entries_and_checkpoints() {
    let client = client(vec![serve(FakeBoard::new()).await], Some(policy())).await;
    for i in 0..3 {
        client.append(&note(&format!("w{i}"))).await.unwrap();
    }
    let events: Vec<_> = client.watch(1).await.unwrap().collect().await;
    assert_eq!(events.len(), 3);
    assert!(matches!(&events[0], Ok(BoardEvent::Entry(e)) if e.index == 1));
    assert!(matches!(&events[1], Ok(BoardEvent::Entry(e)) if e.index == 2));
    assert!(
        matches!(&events[2], Ok(BoardEvent::Checkpoint(c)) if c.verified.is_some() && c.is_final)
    );
}

#[tokio::test]
async fn a_censoring_leader_is_routed_around_with_the_same_envelope() {
    // Node A leads but never answers in time; node B (a follower of another
    // organisation) forwards. Both serve the same board.
    let mut leader = FakeBoard::new();
    leader.censor = Some(Duration::from_secs(5));
    let follower = leader.other_node();
    let a = serve(leader.clone()).await;
    let b = serve(follower.clone()).await;
    let client = BoardClient::connect(
        vec![a.clone(), b.clone()],
        ClientOptions {
            per_request_timeout: Duration::from_millis(300),
            leader_attempts: 2,
            ..options(Some(policy()))
        },
    )
    .await
    .unwrap();
    assert_eq!(client.discover_leader().await, Some(a.clone()));
    let envelope = note("censored by A");
    let result = client.append(&envelope).await.unwrap();
    assert_eq!(
        result.endpoint, b,
        "the receipt comes through the other node"
    );
    assert_eq!(
        leader.append_calls.load(Ordering::SeqCst),
        2,
        "the leader gets its retry budget, no more"
    );
    assert_eq!(follower.append_calls.load(Ordering::SeqCst), 1);
    let received = leader.state.lock().unwrap().received.clone();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|e| *e == envelope.to_proto()));
    // One leaf, one receipt: sending it again anywhere gives the same entry.
    let again = client.append(&envelope).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt.leaf_index, result.receipt.leaf_index);
    assert_eq!(leader.state.lock().unwrap().leaves.len(), 1);
}

#[tokio::test]
async fn a_leader_answering_unavailable_is_routed_around_after_its_budget() {
    let leader = FakeBoard::new().with(|s| s.unavailable = 100);
    let follower = FakeBoard::new().with(|s| s.follower = true);
    let a = serve(leader.clone()).await;
    let b = serve(follower.clone()).await;
    let client = BoardClient::connect(
        vec![a, b.clone()],
        ClientOptions {
            leader_attempts: 3,
            ..options(Some(policy()))
        },
    )
    .await
    .unwrap();
    let result = client.append(&note("route me")).await.unwrap();
    assert_eq!(result.endpoint, b);
    assert_eq!(leader.append_calls.load(Ordering::SeqCst), 3);
    assert_eq!(follower.append_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_timeout_names_every_node_tried() {
    let mut leader = FakeBoard::new();
    leader.censor = Some(Duration::from_secs(5));
    let mut other = leader.other_node();
    other.censor = Some(Duration::from_secs(5));
    let (a, b) = (serve(leader).await, serve(other).await);
    let client = BoardClient::connect(
        vec![a.clone(), b.clone()],
        ClientOptions {
            per_request_timeout: Duration::from_millis(200),
            total_timeout: Duration::from_millis(1500),
            ..options(None)
        },
    )
    .await
    .unwrap();
    match client.append(&note("nobody answers")).await.unwrap_err() {
        ClientError::Timeout { mut tried, .. } => {
            tried.sort();
            let mut both = vec![a, b];
            both.sort();
            assert_eq!(tried, both);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn an_envelope_is_found_by_its_id_with_a_verified_proof() {
    let board = FakeBoard::new();
    let address = serve(board.clone()).await;
    let client = client(vec![address.clone()], Some(policy())).await;
    for i in 0..4 {
        client.append(&note(&format!("e{i}"))).await.unwrap();
    }
    let wanted = note("e2");
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
        .inclusion_proof_by_envelope_id(&note("absent").id(), None)
        .await
        .unwrap()
        .is_none());
    // A node that serves a wrong proof is caught.
    board.state.lock().unwrap().forgery = Forgery::WrongProof;
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
