//! Rust client of a bboard cluster (the public `Board` gRPC service of
//! `proto/bboard/v1/board.proto`).
//!
//! What it adds to the generated gRPC stub:
//!
//! - **Failover and retries.** A [`BoardClient`] knows several node addresses. A call
//!   that fails transiently (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `ABORTED`, a
//!   connection error, no answer within [`ClientOptions::per_request_timeout`]) is sent
//!   again, with exponential backoff, to the next node, until
//!   [`ClientOptions::total_timeout`] has passed. `Append` is idempotent on the board
//!   (the same envelope is one entry), so retrying the *same* envelope is safe: a
//!   retry of an envelope that was in fact appended returns the original receipt with
//!   `duplicate = true`. Errors where the board judged the request
//!   (`INVALID_ARGUMENT`, `PERMISSION_DENIED`, `FAILED_PRECONDITION`, …) are returned at
//!   once as [`ClientError::Rejected`].
//! - **Routing around a censoring leader.** A write that gets no receipt from the
//!   leader within its retry budget ([`ClientOptions::leader_attempts`] attempts) is
//!   sent, unchanged, to the other configured nodes in turn — other organisations'
//!   nodes, which forward it to the leader, remember it and raise a signed censorship
//!   alarm if it does not land by their inclusion deadline. One envelope is one leaf
//!   however many nodes it went through.
//! - **Leader discovery.** Writes go preferably to the Raft leader (found with
//!   `Status` on every configured node, see [`BoardClient::discover_leader`]); any
//!   node would do, since followers forward writes, but going to the leader saves a hop.
//! - **Verification.** With a [`CosignaturePolicy`] (the trusted node keys and k), every
//!   receipt, checkpoint and proof the board returns is checked before it is handed
//!   out: receipts with [`Receipt::verify`] (and that they carry the submitted
//!   envelope), checkpoints against the k-of-n policy (signatures are gathered from
//!   several nodes when one node does not hold k of them), inclusion and consistency
//!   proofs against policy-verified checkpoints. Something that does not verify is a
//!   [`ClientError::Verification`], never silently accepted. Entries read from the
//!   board are always checked (leaf hash, canonical leaf, envelope signature).
//!
//! ```no_run
//! # async fn example(envelope: bboard_core::envelope::SignedEnvelope,
//! #                  policy: bboard_core::checkpoint::CosignaturePolicy)
//! #                  -> Result<(), bboard_client::ClientError> {
//! use bboard_client::{BoardClient, ClientOptions};
//!
//! let options = ClientOptions { policy: Some(policy), ..ClientOptions::default() };
//! let client = BoardClient::connect(
//!     vec!["node-a.example:7000".into(), "node-b.example:7000".into()],
//!     options,
//! ).await?;
//! let appended = client.append(&envelope).await?;
//! println!("entry {} (duplicate: {})", appended.receipt.leaf_index, appended.duplicate);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod audit;
pub mod censorship;
mod error;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint, VerifiedCheckpoint};
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::leaf::{decode_leaf, leaf_hash, LeafRecord};
use bboard_core::pb;
use bboard_core::receipt::{Receipt, VerifiedReceipt, MAX_PROOF_HASHES};
use bboard_merkle::{
    verify_consistency, verify_inclusion, Blake3Hasher, Hash, LeafIndex, TreeHasher, TreeSize,
};
use tonic::transport::{Channel, Endpoint};

pub use error::ClientError;
pub use tokio_stream::{Stream, StreamExt};

use error::is_transient;

/// The generated gRPC stub over a tonic channel.
type Grpc = pb::board_client::BoardClient<Channel>;

/// Default largest gRPC message sent or received: 8 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// How a [`BoardClient`] talks to the board.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Longest wait for one call to one node (also the connect timeout).
    pub per_request_timeout: Duration,
    /// Longest time a call may take over all its retries on all nodes.
    pub total_timeout: Duration,
    /// Largest gRPC message sent or received.
    pub max_message_bytes: usize,
    /// Trusted node keys and threshold. When set, receipts, checkpoints and proofs
    /// are verified against it; proof methods require it.
    pub policy: Option<CosignaturePolicy>,
    /// First pause between two attempts; doubled after each failure.
    pub initial_backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
    /// Attempts a write makes on the node believed to be the leader before it sends
    /// the same envelope to the other configured nodes in turn (at least 1). A leader
    /// that gives no receipt in time may be slow — or may be censoring the entry:
    /// another organisation's node forwards the envelope and, if it still does not
    /// land, raises a signed censorship alarm. Appends are idempotent, so the detour
    /// never makes two leaves.
    pub leader_attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            per_request_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(30),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            policy: None,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            leader_attempts: 2,
        }
    }
}

/// Outcome of [`BoardClient::append`].
#[derive(Clone, Debug)]
pub struct AppendResult {
    /// The receipt, to keep (it serialises to the JSON receipt format).
    pub receipt: Receipt,
    /// True when the envelope was already on the board; `receipt` is the original.
    pub duplicate: bool,
    /// What the receipt proves, when the client has a policy (then always `Some`).
    pub verified: Option<VerifiedReceipt>,
    /// Address of the node that answered.
    pub endpoint: String,
}

/// One entry of the board, checked: the leaf hash matches the leaf bytes, the leaf is
/// canonical and its envelope signature verifies.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Index of the leaf.
    pub index: u64,
    /// `BLAKE3(0x00 || leaf_data)`.
    pub leaf_hash: Hash,
    /// The leaf bytes as stored.
    pub leaf_data: Vec<u8>,
    /// The decoded leaf (timestamp and verified envelope).
    pub leaf: LeafRecord,
}

/// A checkpoint as served by a node.
#[derive(Clone, Debug)]
pub struct CheckpointInfo {
    /// The signed note, parsed (signatures gathered from several nodes when needed).
    pub signed: SignedCheckpoint,
    /// The policy's verdict: `Some` when the client has a policy and it accepted the
    /// checkpoint.
    pub verified: Option<VerifiedCheckpoint>,
    /// Whether the node said it carries the configured k-of-n signatures.
    pub is_final: bool,
}

/// An inclusion proof that verified against a policy-verified checkpoint.
#[derive(Clone, Debug)]
pub struct VerifiedInclusion {
    /// Index of the leaf.
    pub leaf_index: u64,
    /// The leaf hash proven.
    pub leaf_hash: Hash,
    /// Size of the tree the leaf is proven in.
    pub tree_size: u64,
    /// Sibling hashes, leaf to root.
    pub proof: Vec<Hash>,
    /// The checkpoint of `tree_size` and the trusted keys that signed it.
    pub checkpoint: VerifiedCheckpoint,
    /// The signed note of that checkpoint.
    pub signed_checkpoint: SignedCheckpoint,
}

/// An envelope found on the board by its id, with a verified inclusion proof.
#[derive(Clone, Debug)]
pub struct EnvelopeOnBoard {
    /// The entry holding the envelope (checked: leaf hash, canonical leaf, signature,
    /// and the envelope id asked for).
    pub entry: Entry,
    /// Its inclusion proof, verified against a k-of-n checkpoint.
    pub inclusion: VerifiedInclusion,
    /// The node that answered.
    pub endpoint: String,
}

/// A consistency proof that verified between two policy-verified checkpoints.
#[derive(Clone, Debug)]
pub struct VerifiedConsistency {
    /// Old tree size.
    pub old_size: u64,
    /// Old root (the empty-tree root when `old_size` is 0).
    pub old_root: Hash,
    /// The old checkpoint; `None` when `old_size` is 0 (every tree extends the empty one).
    pub old_checkpoint: Option<VerifiedCheckpoint>,
    /// The new checkpoint.
    pub new_checkpoint: VerifiedCheckpoint,
    /// The proof hashes.
    pub proof: Vec<Hash>,
}

/// An event of [`BoardClient::watch`].
#[derive(Clone, Debug)]
pub enum BoardEvent {
    /// A new entry, checked like [`BoardClient::get_entry`].
    Entry(Entry),
    /// A new checkpoint. With a policy, a checkpoint the node calls final must verify
    /// (else the stream yields an error); a non-final one has `verified = None` until
    /// it has k signatures.
    Checkpoint(CheckpointInfo),
    /// A censorship alarm the node raised or cleared, as sent; check it with
    /// `bboard_core::alarm::verify_alarm`.
    Alarm(Box<pb::AlarmRecord>),
}

/// Stream of [`BoardEvent`]s; use [`StreamExt::next`] to read it.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<BoardEvent, ClientError>> + Send>>;

struct Node {
    address: String,
    client: Grpc,
}

struct State {
    nodes: Vec<Node>,
    /// Node tried first for reads (and writes when the leader is unknown).
    current: usize,
    /// Index of the node believed to be the leader.
    leader: Option<usize>,
    /// Whether leader discovery ran.
    leader_checked: bool,
}

/// A client of a bboard cluster. Cheap to clone (clones share connections and the
/// knowledge of which node is the leader).
#[derive(Clone)]
pub struct BoardClient {
    options: Arc<ClientOptions>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for BoardClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardClient")
            .field("endpoints", &self.endpoints())
            .field("leader", &self.leader())
            .finish_non_exhaustive()
    }
}

fn make_client(address: &str, options: &ClientOptions) -> Result<Grpc, ClientError> {
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| ClientError::InvalidEndpoint {
            endpoint: address.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(options.per_request_timeout)
        .tcp_nodelay(true);
    Ok(pb::board_client::BoardClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes))
}

/// A request carrying a gRPC deadline.
fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn invalid(endpoint: &str, reason: impl Into<String>) -> ClientError {
    ClientError::InvalidResponse {
        endpoint: endpoint.to_string(),
        reason: reason.into(),
    }
}

fn parse_hashes(endpoint: &str, what: &str, hashes: &[Vec<u8>]) -> Result<Vec<Hash>, ClientError> {
    if hashes.len() > MAX_PROOF_HASHES {
        return Err(invalid(
            endpoint,
            format!("{what} has {} hashes", hashes.len()),
        ));
    }
    hashes
        .iter()
        .map(|h| {
            Hash::from_slice(h)
                .map_err(|_| invalid(endpoint, format!("{what} hash of {} bytes", h.len())))
        })
        .collect()
}

/// Checks an entry read from a node.
fn entry_from_proto(endpoint: &str, entry: pb::EntryResponse) -> Result<Entry, ClientError> {
    let computed = leaf_hash(&entry.leaf_data);
    if entry.leaf_hash != computed.as_bytes() {
        return Err(ClientError::Verification(
            bboard_core::Error::InvalidReceipt(format!(
                "{endpoint} served entry {} with leaf hash {} but its leaf data hashes to {computed}",
                entry.index,
                hex::encode(&entry.leaf_hash)
            )),
        ));
    }
    let leaf = decode_leaf(&entry.leaf_data)?;
    Ok(Entry {
        index: entry.index,
        leaf_hash: computed,
        leaf_data: entry.leaf_data,
        leaf,
    })
}

/// Parses a checkpoint response and checks it says what the node claims.
fn checkpoint_from_proto(
    endpoint: &str,
    response: &pb::CheckpointResponse,
    requested_size: u64,
) -> Result<SignedCheckpoint, ClientError> {
    let signed = SignedCheckpoint::parse(&response.signed_checkpoint)?;
    let checkpoint = signed.checkpoint();
    if checkpoint.size.0 != response.size
        || (!response.root.is_empty() && response.root != checkpoint.root.as_bytes())
    {
        return Err(invalid(
            endpoint,
            format!(
                "checkpoint note (size {}, root {}) differs from the response fields (size {}, root {})",
                checkpoint.size.0,
                checkpoint.root,
                response.size,
                hex::encode(&response.root)
            ),
        ));
    }
    if requested_size != 0 && checkpoint.size.0 != requested_size {
        return Err(invalid(
            endpoint,
            format!(
                "asked for the checkpoint of size {requested_size}, got size {}",
                checkpoint.size.0
            ),
        ));
    }
    Ok(signed)
}

/// Checks that `receipt` is a receipt for `envelope`: with a policy, the full
/// [`Receipt::verify`]; without, at least that the leaf hash matches the leaf bytes
/// and the leaf is canonical and signed. In both cases the leaf must carry the same
/// envelope (same envelope id: signer and body).
pub fn check_receipt(
    receipt: &Receipt,
    envelope: &SignedEnvelope,
    policy: Option<&CosignaturePolicy>,
) -> Result<Option<VerifiedReceipt>, bboard_core::Error> {
    let (leaf, verified) = match policy {
        Some(policy) => {
            let verified = receipt.verify(policy)?;
            (verified.leaf.clone(), Some(verified))
        }
        None => {
            let data = hex::decode(&receipt.leaf_data)
                .map_err(|e| bboard_core::Error::InvalidReceipt(format!("leaf data: {e}")))?;
            let claimed = Hash::from_hex(&receipt.leaf_hash)
                .map_err(|e| bboard_core::Error::InvalidReceipt(format!("leaf hash: {e}")))?;
            if leaf_hash(&data) != claimed {
                return Err(bboard_core::Error::InvalidReceipt(
                    "leaf hash does not match the leaf data".into(),
                ));
            }
            (decode_leaf(&data)?, None)
        }
    };
    if leaf.envelope.id() != envelope.id() {
        return Err(bboard_core::Error::InvalidReceipt(format!(
            "receipt is for envelope {}, not for the submitted envelope {}",
            leaf.envelope.id(),
            envelope.id()
        )));
    }
    Ok(verified)
}

impl BoardClient {
    /// A client of the nodes at `endpoints` (`host:port`, or full `http(s)://` URIs).
    ///
    /// Connections are opened lazily, so nodes that are down now do not prevent
    /// connecting. Must be called inside a tokio runtime.
    pub async fn connect(
        endpoints: Vec<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoint);
        }
        let nodes = endpoints
            .into_iter()
            .map(|address| {
                let client = make_client(&address, &options)?;
                Ok(Node { address, client })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(BoardClient {
            options: Arc::new(options),
            state: Arc::new(Mutex::new(State {
                nodes,
                current: 0,
                leader: None,
                leader_checked: false,
            })),
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The configured node addresses.
    pub fn endpoints(&self) -> Vec<String> {
        self.lock()
            .nodes
            .iter()
            .map(|n| n.address.clone())
            .collect()
    }

    /// Address of the node believed to be the leader, if known.
    pub fn leader(&self) -> Option<String> {
        let state = self.lock();
        state
            .leader
            .and_then(|i| state.nodes.get(i))
            .map(|n| n.address.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn policy(&self) -> Result<&CosignaturePolicy, ClientError> {
        self.options.policy.as_ref().ok_or(ClientError::NoPolicy)
    }

    /// The node to try next: the leader for writes when known, else the current one.
    fn pick(&self, prefer_leader: bool) -> Result<(usize, String, Grpc), ClientError> {
        let state = self.lock();
        let index = match (prefer_leader, state.leader) {
            (true, Some(leader)) => leader,
            _ => state.current,
        };
        let node = state.nodes.get(index).ok_or(ClientError::NoEndpoint)?;
        Ok((index, node.address.clone(), node.client.clone()))
    }

    fn failed(&self, index: usize) {
        let mut state = self.lock();
        if state.leader == Some(index) {
            state.leader = None;
        }
        state.current = (index + 1) % state.nodes.len().max(1);
    }

    fn succeeded(&self, index: usize) {
        self.lock().current = index;
    }

    /// Sends a call built by `make_call` (given a stub and the time left for this
    /// attempt), retrying transient failures on the next node with backoff until
    /// the total timeout. Returns the address of the node that answered and its answer.
    async fn call<T, F, Fut>(
        &self,
        prefer_leader: bool,
        mut make_call: F,
    ) -> Result<(String, T), ClientError>
    where
        F: FnMut(Grpc, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let deadline = start + self.options.total_timeout;
        let mut backoff = self.options.initial_backoff;
        let mut attempts = 0u32;
        let mut leader_failures = 0u32;
        let mut tried: Vec<String> = Vec::new();
        loop {
            let (index, address, client) = self.pick(prefer_leader)?;
            let to_leader = prefer_leader && self.lock().leader == Some(index);
            if !tried.contains(&address) {
                tried.push(address.clone());
            }
            let budget = if attempts == 0 {
                self.options.per_request_timeout
            } else {
                self.options
                    .per_request_timeout
                    .min(deadline.saturating_duration_since(Instant::now()))
            };
            attempts += 1;
            let last = match tokio::time::timeout(budget, make_call(client, budget)).await {
                Ok(Ok(response)) => {
                    self.succeeded(index);
                    return Ok((address, response.into_inner()));
                }
                Ok(Err(status)) if is_transient(&status) => {
                    format!("{address}: {:?}: {}", status.code(), status.message())
                }
                Ok(Err(status)) => return Err(ClientError::from_status(&address, &status)),
                Err(_) => format!("{address}: no answer within {budget:?}"),
            };
            if to_leader {
                leader_failures += 1;
            }
            // The leader keeps its retry budget; after it, the same request goes to
            // the other nodes in turn (round robin from the node after the leader).
            if !to_leader || leader_failures >= self.options.leader_attempts.max(1) {
                self.failed(index);
            }
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(ClientError::Timeout {
                    attempts,
                    elapsed: now - start,
                    last,
                    tried,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// One call to one node, no retry.
    async fn call_once<T, Fut>(
        &self,
        address: &str,
        call: impl FnOnce(Grpc, Duration) -> Fut,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let existing = self
            .lock()
            .nodes
            .iter()
            .find(|n| n.address == address)
            .map(|n| n.client.clone());
        let client = match existing {
            Some(client) => client,
            None => make_client(address, &self.options)?,
        };
        let timeout = self.options.per_request_timeout;
        match tokio::time::timeout(timeout, call(client, timeout)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(ClientError::from_status(address, &status)),
            Err(_) => Err(ClientError::Rpc {
                endpoint: address.to_string(),
                code: tonic::Code::DeadlineExceeded,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// Status of one node (`endpoint` may be any address, configured or not). Not
    /// retried.
    pub async fn status(&self, endpoint: &str) -> Result<pb::StatusResponse, ClientError> {
        self.call_once(endpoint, |mut client, timeout| async move {
            client.status(request(pb::StatusRequest {}, timeout)).await
        })
        .await
    }

    /// Status of every configured node, in the configured order, queried concurrently.
    pub async fn status_all(&self) -> Vec<(String, Result<pb::StatusResponse, ClientError>)> {
        let endpoints = self.endpoints();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let client = self.clone();
            let endpoint = endpoint.clone();
            tasks.spawn(async move { (i, client.status(&endpoint).await) });
        }
        let mut results: Vec<Option<Result<pb::StatusResponse, ClientError>>> =
            endpoints.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, result)) = joined {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(result);
                }
            }
        }
        endpoints
            .into_iter()
            .zip(results)
            .map(|(endpoint, result)| {
                let result = result.unwrap_or_else(|| {
                    Err(ClientError::Rpc {
                        endpoint: endpoint.clone(),
                        code: tonic::Code::Internal,
                        message: "status task failed".into(),
                    })
                });
                (endpoint, result)
            })
            .collect()
    }

    /// Asks every configured node for its status and remembers which configured node
    /// is the leader: a node that says it is leader (highest term wins), else the
    /// configured node whose id or address the others name as leader. Returns its
    /// address, or `None` if no configured node is known to lead (writes then go to
    /// any node, which forwards them).
    pub async fn discover_leader(&self) -> Option<String> {
        let statuses: Vec<(usize, pb::StatusResponse)> = self
            .status_all()
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(i, (_, result))| result.ok().map(|s| (i, s)))
            .collect();
        let endpoints = self.endpoints();
        let self_declared = statuses
            .iter()
            .filter(|(_, s)| s.role == "leader")
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| *i);
        let named = || {
            let (_, newest) = statuses
                .iter()
                .filter(|(_, s)| s.leader_id != 0 || !s.leader_address.is_empty())
                .max_by_key(|(_, s)| s.term)?;
            statuses
                .iter()
                .find(|(_, s)| newest.leader_id != 0 && s.node_id == newest.leader_id)
                .map(|(i, _)| *i)
                .or_else(|| {
                    endpoints
                        .iter()
                        .position(|e| same_address(e, &newest.leader_address))
                })
        };
        let leader = self_declared.or_else(named);
        let mut state = self.lock();
        state.leader = leader;
        state.leader_checked = true;
        leader
            .and_then(|i| state.nodes.get(i))
            .map(|n| n.address.clone())
    }

    /// Appends `envelope`, retrying the same envelope on transient failures (see the
    /// crate docs), and checks the receipt: with a policy, fully
    /// ([`Receipt::verify`]); always, that the receipt's leaf carries this envelope.
    pub async fn append(&self, envelope: &SignedEnvelope) -> Result<AppendResult, ClientError> {
        let leader_checked = self.lock().leader_checked;
        if !leader_checked {
            self.discover_leader().await;
        }
        let message = pb::AppendRequest {
            envelope: Some(envelope.to_proto()),
        };
        let (endpoint, response) = self
            .call(true, |mut client, timeout| {
                let request = request(message.clone(), timeout);
                async move { client.append(request).await }
            })
            .await?;
        let proto = response
            .receipt
            .ok_or_else(|| invalid(&endpoint, "append answer without a receipt"))?;
        let receipt = Receipt::from_proto(&proto)?;
        let verified = check_receipt(&receipt, envelope, self.options.policy.as_ref())?;
        Ok(AppendResult {
            receipt,
            duplicate: response.duplicate,
            verified,
            endpoint,
        })
    }

    /// Entry `index`, checked (leaf hash, canonical leaf, envelope signature).
    pub async fn get_entry(&self, index: u64) -> Result<Entry, ClientError> {
        let (endpoint, response) = self
            .call(false, |mut client, timeout| async move {
                client
                    .get_entry(request(pb::GetEntryRequest { index }, timeout))
                    .await
            })
            .await?;
        if response.index != index {
            return Err(invalid(
                &endpoint,
                format!("asked for entry {index}, got entry {}", response.index),
            ));
        }
        entry_from_proto(&endpoint, response)
    }

    /// Up to `limit` consecutive entries from `start`, fetched page by page; fewer when
    /// the board ends first. Each entry is checked like [`Self::get_entry`].
    pub async fn get_entries(&self, start: u64, limit: u64) -> Result<Vec<Entry>, ClientError> {
        let mut entries = Vec::new();
        let mut next = start;
        while (entries.len() as u64) < limit {
            let remaining = limit - entries.len() as u64;
            let page_limit = u32::try_from(remaining).unwrap_or(u32::MAX);
            let (endpoint, page) = self
                .call(false, |mut client, timeout| async move {
                    let message = pb::GetEntriesRequest {
                        start: next,
                        limit: page_limit,
                    };
                    client.get_entries(request(message, timeout)).await
                })
                .await?;
            if page.entries.is_empty() {
                break;
            }
            for entry in page.entries {
                if (entries.len() as u64) == limit {
                    break;
                }
                if entry.index != next {
                    return Err(invalid(
                        &endpoint,
                        format!("expected entry {next}, got entry {}", entry.index),
                    ));
                }
                entries.push(entry_from_proto(&endpoint, entry)?);
                next += 1;
            }
        }
        Ok(entries)
    }

    /// The latest checkpoint (`size = None`) or the one of tree size `size`. With a
    /// policy it must verify; signatures are gathered from the other nodes when the
    /// first node does not hold k of them.
    pub async fn checkpoint(&self, size: Option<u64>) -> Result<CheckpointInfo, ClientError> {
        let requested = size.unwrap_or(0);
        let (endpoint, response) = self
            .call(false, |mut client, timeout| async move {
                let message = pb::GetCheckpointRequest { size: requested };
                client.get_checkpoint(request(message, timeout)).await
            })
            .await?;
        let mut signed = checkpoint_from_proto(&endpoint, &response, requested)?;
        let verified = match &self.options.policy {
            Some(policy) => Some(self.verify_gathering(policy, &mut signed).await?),
            None => None,
        };
        Ok(CheckpointInfo {
            signed,
            verified,
            is_final: response.r#final,
        })
    }

    /// Verifies `signed` with `policy`; when it lacks signatures, asks every
    /// configured node for its checkpoint of the same size and merges their
    /// signature lines until the policy is met.
    async fn verify_gathering(
        &self,
        policy: &CosignaturePolicy,
        signed: &mut SignedCheckpoint,
    ) -> Result<VerifiedCheckpoint, ClientError> {
        let mut result = policy.verify(signed);
        if !matches!(
            result,
            Err(bboard_core::Error::NotEnoughCosignatures { .. })
        ) {
            return Ok(result?);
        }
        let size = signed.checkpoint().size.0;
        if size == 0 {
            // The empty tree cannot be asked for by size (0 means "latest").
            return Ok(result?);
        }
        for endpoint in self.endpoints() {
            let response = self
                .call_once(&endpoint, |mut client, timeout| async move {
                    let message = pb::GetCheckpointRequest { size };
                    client.get_checkpoint(request(message, timeout)).await
                })
                .await;
            let Ok(other) = response.and_then(|r| checkpoint_from_proto(&endpoint, &r, size))
            else {
                continue;
            };
            if signed.merge(&other).is_err() {
                // A node signed a different root for the same size: not merged; the
                // policy decides on what the honest signatures say.
                continue;
            }
            result = policy.verify(signed);
            if result.is_ok() {
                break;
            }
        }
        Ok(result?)
    }

    /// The policy-verified checkpoint of `size`, starting from a note a node sent
    /// along with a proof (if any).
    async fn verified_checkpoint_of(
        &self,
        endpoint: &str,
        size: u64,
        note: &str,
    ) -> Result<(SignedCheckpoint, VerifiedCheckpoint), ClientError> {
        let policy = self.policy()?;
        if !note.is_empty() {
            let mut signed = SignedCheckpoint::parse(note)?;
            if signed.checkpoint().size.0 != size {
                return Err(invalid(
                    endpoint,
                    format!(
                        "proof for size {size} came with a checkpoint of size {}",
                        signed.checkpoint().size.0
                    ),
                ));
            }
            let verified = self.verify_gathering(policy, &mut signed).await?;
            return Ok((signed, verified));
        }
        let info = self.checkpoint(Some(size)).await?;
        let verified = info.verified.ok_or(ClientError::NoPolicy)?;
        Ok((info.signed, verified))
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` (`None`: the
    /// node's latest checkpoint), verified against a policy-verified checkpoint of
    /// that size. The leaf hash is taken from the entry itself (read and checked).
    /// Needs a policy.
    pub async fn inclusion_proof_by_index(
        &self,
        index: u64,
        tree_size: Option<u64>,
    ) -> Result<VerifiedInclusion, ClientError> {
        self.policy()?;
        let entry = self.get_entry(index).await?;
        self.inclusion(
            pb::get_inclusion_proof_request::Leaf::Index(index),
            entry.leaf_hash,
            Some(index),
            tree_size,
        )
        .await
    }

    /// Inclusion proof of the leaf with hash `leaf_hash`, like
    /// [`Self::inclusion_proof_by_index`].
    pub async fn inclusion_proof_by_leaf_hash(
        &self,
        leaf_hash: &Hash,
        tree_size: Option<u64>,
    ) -> Result<VerifiedInclusion, ClientError> {
        self.policy()?;
        self.inclusion(
            pb::get_inclusion_proof_request::Leaf::LeafHash(leaf_hash.as_bytes().to_vec()),
            *leaf_hash,
            None,
            tree_size,
        )
        .await
    }

    async fn inclusion(
        &self,
        leaf: pb::get_inclusion_proof_request::Leaf,
        leaf_hash: Hash,
        expected_index: Option<u64>,
        tree_size: Option<u64>,
    ) -> Result<VerifiedInclusion, ClientError> {
        let requested = tree_size.unwrap_or(0);
        let (endpoint, response) = self
            .call(false, |client, timeout| {
                inclusion_call(client, timeout, leaf.clone(), requested)
            })
            .await?;
        self.verify_inclusion_response(&endpoint, response, leaf_hash, expected_index, requested)
            .await
    }

    /// Checks a node's inclusion proof of `leaf_hash` against a policy-verified
    /// checkpoint of the proof's tree size.
    async fn verify_inclusion_response(
        &self,
        endpoint: &str,
        response: pb::InclusionProofResponse,
        leaf_hash: Hash,
        expected_index: Option<u64>,
        requested: u64,
    ) -> Result<VerifiedInclusion, ClientError> {
        if requested != 0 && response.tree_size != requested {
            return Err(invalid(
                endpoint,
                format!(
                    "asked for a proof in size {requested}, got size {}",
                    response.tree_size
                ),
            ));
        }
        if let Some(index) = expected_index {
            if response.leaf_index != index {
                return Err(invalid(
                    endpoint,
                    format!(
                        "asked for a proof of entry {index}, got entry {}",
                        response.leaf_index
                    ),
                ));
            }
        }
        let proof = parse_hashes(endpoint, "inclusion proof", &response.proof)?;
        let (signed, checkpoint) = self
            .verified_checkpoint_of(endpoint, response.tree_size, &response.signed_checkpoint)
            .await?;
        verify_inclusion(
            &Blake3Hasher,
            &leaf_hash,
            LeafIndex(response.leaf_index),
            checkpoint.checkpoint.size,
            &proof,
            &checkpoint.checkpoint.root,
        )
        .map_err(bboard_core::Error::from)?;
        Ok(VerifiedInclusion {
            leaf_index: response.leaf_index,
            leaf_hash,
            tree_size: response.tree_size,
            proof,
            checkpoint,
            signed_checkpoint: signed,
        })
    }

    /// Is this envelope on the board? Asks a node (with the usual failover) for the
    /// leaf holding envelope `id` and returns it with an inclusion proof in the tree of
    /// `tree_size` (`None`: the node's latest checkpoint), both verified: the entry's
    /// envelope has this id, and the proof verifies against a policy-verified (k-of-n)
    /// checkpoint. `Ok(None)` when the node answering says `NOT_FOUND` — a claim of
    /// that node about its applied board, not a proof of absence. Needs a policy.
    pub async fn inclusion_proof_by_envelope_id(
        &self,
        id: &EnvelopeId,
        tree_size: Option<u64>,
    ) -> Result<Option<EnvelopeOnBoard>, ClientError> {
        self.envelope_lookup(None, id, tree_size).await
    }

    /// Like [`Self::inclusion_proof_by_envelope_id`], asking only the node at
    /// `endpoint` (configured or not, no retry); signatures for the checkpoint are
    /// still gathered from every configured node. Used to ask each node in turn.
    pub async fn inclusion_proof_by_envelope_id_on(
        &self,
        endpoint: &str,
        id: &EnvelopeId,
        tree_size: Option<u64>,
    ) -> Result<Option<EnvelopeOnBoard>, ClientError> {
        self.envelope_lookup(Some(endpoint), id, tree_size).await
    }

    async fn envelope_lookup(
        &self,
        target: Option<&str>,
        id: &EnvelopeId,
        tree_size: Option<u64>,
    ) -> Result<Option<EnvelopeOnBoard>, ClientError> {
        self.policy()?;
        let requested = tree_size.unwrap_or(0);
        let leaf = pb::get_inclusion_proof_request::Leaf::EnvelopeId(id.0.to_vec());
        let answer = match target {
            Some(endpoint) => self
                .call_once(endpoint, |client, timeout| {
                    inclusion_call(client, timeout, leaf, requested)
                })
                .await
                .map(|response| (endpoint.to_string(), response)),
            None => {
                self.call(false, |client, timeout| {
                    inclusion_call(client, timeout, leaf.clone(), requested)
                })
                .await
            }
        };
        let (endpoint, response) = match answer {
            Ok(answer) => answer,
            Err(e) if e.code() == Some(tonic::Code::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let index = response.leaf_index;
        let entry = self
            .call_once(&endpoint, |mut client, timeout| async move {
                client
                    .get_entry(request(pb::GetEntryRequest { index }, timeout))
                    .await
            })
            .await?;
        if entry.index != index {
            return Err(invalid(
                &endpoint,
                format!("asked for entry {index}, got entry {}", entry.index),
            ));
        }
        let entry = entry_from_proto(&endpoint, entry)?;
        if entry.leaf.envelope.id() != *id {
            return Err(ClientError::Verification(
                bboard_core::Error::InvalidReceipt(format!(
                    "{endpoint} says envelope {id} is entry {index}, but entry {index} holds envelope {}",
                    entry.leaf.envelope.id()
                )),
            ));
        }
        let inclusion = self
            .verify_inclusion_response(&endpoint, response, entry.leaf_hash, Some(index), requested)
            .await?;
        Ok(Some(EnvelopeOnBoard {
            entry,
            inclusion,
            endpoint,
        }))
    }

    /// Consistency proof from tree size `old_size` to `new_size` (0: the latest
    /// checkpoint), verified between two policy-verified checkpoints (none is needed
    /// for `old_size = 0`). Needs a policy.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<VerifiedConsistency, ClientError> {
        self.policy()?;
        let new_info = self
            .checkpoint(if new_size == 0 { None } else { Some(new_size) })
            .await?;
        let new_checkpoint = new_info.verified.ok_or(ClientError::NoPolicy)?;
        let new_size = new_checkpoint.checkpoint.size.0;
        let (old_root, old_checkpoint) = if old_size == 0 {
            (Blake3Hasher.empty_root(), None)
        } else {
            let old = self.checkpoint(Some(old_size)).await?;
            let old = old.verified.ok_or(ClientError::NoPolicy)?;
            (old.checkpoint.root, Some(old))
        };
        let proof = if old_size == 0 || old_size == new_size {
            // Both cases have an empty proof by definition; nothing to fetch.
            Vec::new()
        } else {
            let (endpoint, response) = self
                .call(false, |mut client, timeout| async move {
                    let message = pb::GetConsistencyProofRequest { old_size, new_size };
                    client
                        .get_consistency_proof(request(message, timeout))
                        .await
                })
                .await?;
            if response.old_size != old_size || response.new_size != new_size {
                return Err(invalid(
                    &endpoint,
                    format!(
                        "asked for a proof from {old_size} to {new_size}, got {} to {}",
                        response.old_size, response.new_size
                    ),
                ));
            }
            parse_hashes(&endpoint, "consistency proof", &response.proof)?
        };
        verify_consistency(
            &Blake3Hasher,
            TreeSize(old_size),
            TreeSize(new_size),
            &old_root,
            &new_checkpoint.checkpoint.root,
            &proof,
        )
        .map_err(bboard_core::Error::from)?;
        Ok(VerifiedConsistency {
            old_size,
            old_root,
            old_checkpoint,
            new_checkpoint,
            proof,
        })
    }

    /// Entries from `from_index` on, then new entries and checkpoints as nodes apply
    /// them. The stream is opened with retries; once open it follows one node and
    /// ends (or yields an error) when that node goes away: call `watch` again from the
    /// next index to resume.
    pub async fn watch(&self, from_index: u64) -> Result<WatchStream, ClientError> {
        let (endpoint, stream) = self
            .call(false, |mut client, _timeout| async move {
                client.watch(pb::WatchRequest { from_index }).await
            })
            .await?;
        let policy = self.options.policy.clone();
        let events = stream.map(move |item| {
            let event = item.map_err(|status| ClientError::from_status(&endpoint, &status))?;
            event_from_proto(&endpoint, policy.as_ref(), event)
        });
        Ok(Box::pin(events))
    }
}

fn event_from_proto(
    endpoint: &str,
    policy: Option<&CosignaturePolicy>,
    event: pb::WatchEvent,
) -> Result<BoardEvent, ClientError> {
    use pb::watch_event::Event;
    match event.event {
        Some(Event::Entry(entry)) => Ok(BoardEvent::Entry(entry_from_proto(endpoint, entry)?)),
        Some(Event::Checkpoint(response)) => {
            let signed = checkpoint_from_proto(endpoint, &response, 0)?;
            let verified = match policy.map(|p| p.verify(&signed)) {
                None => None,
                Some(Ok(verified)) => Some(verified),
                Some(Err(bboard_core::Error::NotEnoughCosignatures { .. }))
                    if !response.r#final =>
                {
                    None
                }
                Some(Err(e)) => return Err(e.into()),
            };
            Ok(BoardEvent::Checkpoint(CheckpointInfo {
                signed,
                verified,
                is_final: response.r#final,
            }))
        }
        Some(Event::Alarm(alarm)) => Ok(BoardEvent::Alarm(Box::new(alarm))),
        None => Err(invalid(endpoint, "watch event without content")),
    }
}

/// One `GetInclusionProof` call.
async fn inclusion_call(
    mut client: Grpc,
    timeout: Duration,
    leaf: pb::get_inclusion_proof_request::Leaf,
    tree_size: u64,
) -> Result<tonic::Response<pb::InclusionProofResponse>, tonic::Status> {
    let message = pb::GetInclusionProofRequest {
        leaf: Some(leaf),
        tree_size,
    };
    client.get_inclusion_proof(request(message, timeout)).await
}

/// Whether two `host:port` / URI strings name the same address.
fn same_address(a: &str, b: &str) -> bool {
    fn strip(s: &str) -> &str {
        let s = s.trim();
        let s = s.split_once("://").map_or(s, |(_, rest)| rest);
        s.trim_end_matches('/')
    }
    !b.trim().is_empty() && strip(a) == strip(b)
}

#[cfg(test)]
mod tests;
