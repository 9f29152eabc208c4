//! A running node: opens the stores, starts Raft, serves gRPC, and runs the two
//! background loops that make the board useful to clients:
//!
//! - the **batcher** (leader only): gathers concurrent appends for at most
//!   `batch_max_delay_ms` or `batch_max_entries` / `batch_max_bytes`, stamps and encodes
//!   each leaf once, and proposes them as ONE Raft entry, so one fsync covers the batch;
//! - the **cosigner**: whenever this node applies a new size, it asks every peer for its
//!   signature over the same checkpoint and merges them; a checkpoint with k-of-n valid
//!   signatures becomes the node's latest *final* checkpoint, which receipts carry.
//!
//! Shutdown is one broadcast: the gRPC server stops accepting, the loops end, Raft shuts
//! down, and the store is flushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bboard_core::board::{BoardView, Outcome};
use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::encode_leaf;
use bboard_merkle::TreeSize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::board_store::BoardStore;
use crate::config::NodeConfig;
use crate::network::{request_cosignature, Cosigner};
use crate::state_machine::AppliedState;
use crate::types::{BoardRaft, BoardRequest, LeafBytes};

/// How many recently cosigned checkpoints a node keeps in memory for by-size queries.
const RECENT_CHECKPOINTS: usize = 4096;
/// How long a cosign request waits for a peer.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a node waits to have applied a size before it signs it for a peer.
const APPLY_WAIT: Duration = Duration::from_secs(2);
/// Proposals in flight at once (each is one Raft entry).
const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Pending appends queued for the batcher before callers wait.
const QUEUE_DEPTH: usize = 16_384;

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An append waiting for its batch.
pub struct PendingAppend {
    /// The checked envelope.
    pub envelope: SignedEnvelope,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Outcome, tonic::Status>>,
}

/// State shared by the services and loops of one node.
pub struct Shared {
    /// The configuration.
    pub config: NodeConfig,
    /// Raft.
    pub raft: BoardRaft,
    /// The board (read side).
    pub board: BoardStore,
    /// This node's checkpoint key.
    pub signer: NoteSigner,
    /// The cluster's cosignature policy (node signatures and, if configured, witness
    /// cosignatures): what makes a checkpoint final.
    pub policy: CosignaturePolicy,
    /// The node signatures alone: what the nodes' own cosigning must reach.
    pub node_policy: CosignaturePolicy,
    /// Sizes the configured witnesses last cosigned.
    pub witness_sizes: crate::witnessing::WitnessSizes,
    /// Applied state published by the state machine.
    pub applied: watch::Receiver<AppliedState>,
    /// Latest final (k-of-n) checkpoint.
    pub finals: watch::Sender<Option<SignedCheckpoint>>,
    /// Recently cosigned checkpoints by size.
    recent: Mutex<BTreeMap<u64, SignedCheckpoint>>,
    /// Queue of the batcher.
    pub batcher: mpsc::Sender<PendingAppend>,
    /// Forwarded entries awaiting inclusion, and censorship alarms.
    pub inclusion: crate::inclusion::Inclusion,
    /// Connections to peers (forwarding).
    pub channels: Channels,
}

impl Shared {
    /// Creates the shared state; returns it with the batcher's receiving end.
    pub fn new(
        config: NodeConfig,
        raft: BoardRaft,
        board: BoardStore,
        signer: NoteSigner,
        applied: watch::Receiver<AppliedState>,
        inclusion: crate::inclusion::Inclusion,
    ) -> Result<(Arc<Self>, mpsc::Receiver<PendingAppend>), crate::config::ConfigError> {
        let policy = config.policy()?;
        let node_policy = config.node_policy()?;
        let (batcher, queue) = mpsc::channel(QUEUE_DEPTH);
        let (finals, _) = watch::channel(None);
        Ok((
            Arc::new(Shared {
                config,
                raft,
                board,
                signer,
                policy,
                node_policy,
                witness_sizes: Default::default(),
                applied,
                finals,
                recent: Mutex::new(BTreeMap::new()),
                batcher,
                inclusion,
                channels: Channels::default(),
            }),
            queue,
        ))
    }

    /// The current leader, as this node knows it.
    pub fn current_leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Forwards an envelope to the current leader's Board service (one hop, marked so
    /// the leader never forwards again). Returns the answer, the leader and its address.
    pub async fn forward_to_leader(
        &self,
        envelope: bboard_core::pb::Envelope,
    ) -> Result<(bboard_core::pb::AppendResponse, u64, String), tonic::Status> {
        let leader = self
            .raft
            .current_leader()
            .await
            .ok_or_else(|| tonic::Status::unavailable("no leader elected; retry"))?;
        let address = self.address_of(leader).ok_or_else(|| {
            tonic::Status::unavailable(format!("leader {leader} has no known address"))
        })?;
        let channel = self
            .channels
            .get(&address)
            .map_err(tonic::Status::unavailable)?;
        let limit = self.config.limits.max_message_bytes.max(8 * 1024 * 1024);
        let mut client = bboard_proto::v1::board_client::BoardClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let mut request = tonic::Request::new(bboard_core::pb::AppendRequest {
            envelope: Some(envelope),
        });
        request.metadata_mut().insert(
            crate::service::FORWARDED,
            tonic::metadata::MetadataValue::from_static("1"),
        );
        let response = client.append(request).await.map_err(|status| {
            if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
                tonic::Status::unavailable(format!(
                    "forwarding to leader {leader} at {address}: {}",
                    status.message()
                ))
            } else {
                status
            }
        })?;
        Ok((response.into_inner(), leader, address))
    }

    /// Address of a cluster member, from the current membership.
    pub fn address_of(&self, id: u64) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.addr.clone())
            .or_else(|| {
                self.config
                    .peers
                    .iter()
                    .find(|p| p.id == id)
                    .map(|p| p.address.clone())
            })
    }

    /// This node's signed checkpoint of `size` (stored, or signed now from its own tree
    /// if it applied `size` without stopping there, e.g. inside a snapshot).
    pub fn own_checkpoint(&self, size: u64) -> Result<SignedCheckpoint, String> {
        if let Some(stored) = self.board.own_checkpoint(size).map_err(|e| e.to_string())? {
            return Ok(stored);
        }
        let applied = self.applied.borrow().size;
        if size > applied {
            return Err(format!(
                "size {size} is beyond this node's board ({applied})"
            ));
        }
        let root = self.board.root_at(size).map_err(|e| e.to_string())?;
        SignedCheckpoint::sign(
            Checkpoint {
                origin: self.config.origin.clone(),
                size: TreeSize(size),
                root,
            },
            &self.signer,
        )
        .map_err(|e| e.to_string())
    }

    /// Gathers peers' signatures over this node's checkpoint of `size`. Returns as soon
    /// as the checkpoint is final (k-of-n), so one slow or stopped peer does not delay
    /// receipts; otherwise waits for every peer (each bounded by a timeout).
    pub async fn cosign_round(&self, size: u64) -> Result<SignedCheckpoint, String> {
        use futures::StreamExt as _;
        let mut merged = self.own_checkpoint(size)?;
        let mut requests: futures::stream::FuturesUnordered<_> = self
            .config
            .peers
            .iter()
            .filter(|p| p.id != self.config.node_id)
            .map(|p| request_cosignature(&p.address, size, COSIGN_TIMEOUT))
            .collect();
        while self.node_policy.verify(&merged).is_err() {
            let Some(result) = requests.next().await else {
                break;
            };
            let Ok(note) = result else {
                continue;
            };
            match SignedCheckpoint::parse(&note) {
                Ok(theirs) => {
                    if let Err(e) = merged.merge(&theirs) {
                        // A peer signing another root for the same size is equivocation
                        // (or a fork): keep our history, log loudly.
                        tracing::error!(size, error = %e, "peer signed a different checkpoint");
                    }
                }
                Err(e) => tracing::warn!(size, error = %e, "malformed cosignature"),
            }
        }
        let mut recent = self.recent.lock().map_err(|_| "poisoned".to_string())?;
        recent.insert(size, merged.clone());
        while recent.len() > RECENT_CHECKPOINTS {
            recent.pop_first();
        }
        Ok(merged)
    }

    /// The best checkpoint known for `size`: cosigned if gathered, else gathered now.
    pub async fn checkpoint_at(&self, size: u64) -> Result<SignedCheckpoint, String> {
        let cached = self
            .recent
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .get(&size)
            .cloned();
        if let Some(cached) = cached {
            if self.policy.verify(&cached).is_ok() {
                return Ok(cached);
            }
        }
        self.cosign_round(size).await
    }

    /// Waits until a final checkpoint covers leaf `index`.
    pub async fn final_covering(&self, index: u64, timeout: Duration) -> Option<SignedCheckpoint> {
        let mut finals = self.finals.subscribe();
        let wait =
            finals.wait_for(|cp| cp.as_ref().is_some_and(|cp| cp.checkpoint().size.0 > index));
        let result = match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(cp)) => cp.clone(),
            _ => None,
        };
        result
    }
}

/// Answers peers' cosignature requests.
pub struct NodeCosigner(pub Arc<Shared>);

#[tonic::async_trait]
impl Cosigner for NodeCosigner {
    async fn cosign(&self, size: u64) -> Result<String, tonic::Status> {
        let mut applied = self.0.applied.clone();
        let reached = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|s| s.size >= size)).await;
        if !matches!(reached, Ok(Ok(_))) {
            return Err(tonic::Status::unavailable(format!(
                "this node has not applied size {size} yet"
            )));
        }
        self.0
            .own_checkpoint(size)
            .map(|cp| cp.to_note())
            .map_err(tonic::Status::failed_precondition)
    }
}

/// The cosigner loop: after every applied size change, gather cosignatures.
pub async fn run_cosigner(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut applied = shared.applied.clone();
    let mut done = 0u64;
    loop {
        let size = applied.borrow_and_update().size;
        if size > done || (size > 0 && shared.finals.borrow().is_none()) {
            match shared.cosign_round(size).await {
                Ok(checkpoint) => match shared.node_policy.verify(&checkpoint).map(|_| ()) {
                    Ok(()) if !shared.config.witnesses.is_empty() => {
                        let checkpoint = crate::witnessing::cosign(&shared, checkpoint).await;
                        match shared.policy.verify(&checkpoint) {
                            Ok(_) => {
                                done = size;
                                shared.finals.send_replace(Some(checkpoint));
                            }
                            Err(e) => {
                                tracing::warn!(size, error = %e, "not enough witness cosignatures yet");
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                                    _ = shutdown.changed() => return,
                                }
                            }
                        }
                    }
                    Ok(_) => {
                        done = size;
                        shared.finals.send_replace(Some(checkpoint));
                    }
                    Err(e) => {
                        tracing::debug!(size, error = %e, "checkpoint not final yet");
                        // Peers may still be applying: retry shortly.
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                            _ = shutdown.changed() => return,
                        }
                    }
                },
                Err(e) => tracing::warn!(size, error = %e, "cosign round failed"),
            }
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {},
            _ = shutdown.changed() => return,
        }
    }
}

/// The checkpoint recorder: every `checkpoint_record_interval_ms`, the leader posts its
/// latest final checkpoint as a `CheckpointCosignatures` entry signed with its node
/// key, so the history of checkpoints is itself covered by the tree (and checked
/// against it by the board rules). Skipped while the node's key is not registered
/// with `ROLE_NODE`, and when nothing but the previous record was appended since.
pub async fn run_checkpoint_recorder(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let interval = shared.config.limits.checkpoint_record_interval_ms;
    if interval == 0 {
        return;
    }
    let node_key = *shared.signer.verifier().public_key().as_bytes();
    let mut recorded_size = 0u64;
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval)) => {}
            _ = shutdown.changed() => return,
        }
        let is_leader = shared.raft.current_leader().await == Some(shared.config.node_id);
        let Some(checkpoint) = shared.finals.borrow().clone() else {
            continue;
        };
        let size = checkpoint.checkpoint().size.0;
        // `recorded_size + 1`: the board grew only by our own record.
        if !is_leader || size <= recorded_size + 1 {
            continue;
        }
        match shared.board.key(&node_key) {
            Ok(Some(grant)) if grant.role() == bboard_core::pb::Role::Node && grant.is_active() => {
            }
            _ => {
                if !warned {
                    tracing::info!(
                        "not recording checkpoints on the board: this node's key is not registered with ROLE_NODE"
                    );
                    warned = true;
                }
                continue;
            }
        }
        let body = bboard_core::pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: now_unix_ms(),
            kind: Some(bboard_core::pb::entry_body::Kind::CheckpointCosignatures(
                bboard_core::pb::CheckpointCosignatures {
                    signed_checkpoint: checkpoint.to_note(),
                },
            )),
        };
        let (reply, outcome) = oneshot::channel();
        let pending = PendingAppend {
            envelope: shared.signer.sign_entry(&body),
            reply,
        };
        if shared.batcher.send(pending).await.is_err() {
            return;
        }
        match outcome.await {
            Ok(Ok(Outcome::Appended { index })) => {
                tracing::debug!(size, index, "recorded checkpoint on the board");
                recorded_size = size;
            }
            Ok(Ok(other)) => tracing::warn!(size, ?other, "checkpoint record not appended"),
            Ok(Err(status)) => tracing::debug!(size, %status, "checkpoint record not appended"),
            Err(_) => return,
        }
    }
}

/// The batcher loop (group commit). Runs on every node; only a leader's proposals
/// succeed, others answer UNAVAILABLE so callers retry against the leader.
pub async fn run_batcher(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<PendingAppend>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = shared.config.limits.clone();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    let mut last_timestamp = 0u64;
    loop {
        let first = tokio::select! {
            item = queue.recv() => match item { Some(item) => item, None => return },
            _ = shutdown.changed() => return,
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].envelope.body_bytes().len();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(limits.batch_max_delay_ms);
        while batch.len() < limits.batch_max_entries && bytes < limits.batch_max_bytes {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(item)) => {
                    bytes += item.envelope.body_bytes().len();
                    batch.push(item);
                }
                _ => break,
            }
        }
        // Timestamps never go backwards, even if the clock does.
        last_timestamp = last_timestamp.max(now_unix_ms());
        let leaves = batch
            .iter()
            .map(|p| LeafBytes(encode_leaf(last_timestamp, &p.envelope)))
            .collect();
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let raft = shared.raft.clone();
        tokio::spawn(async move {
            let result = raft.client_write(BoardRequest::Batch { leaves }).await;
            drop(permit);
            match result {
                Ok(response) => {
                    let outcomes = response.data.outcomes;
                    for (pending, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = pending.reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let message = match e.forward_to_leader() {
                        Some(forward) => format!(
                            "this node is not the leader (leader: {:?}); retry",
                            forward.leader_id
                        ),
                        None => format!("proposal failed: {e}; retry"),
                    };
                    for pending in batch {
                        let _ = pending
                            .reply
                            .send(Err(tonic::Status::unavailable(message.clone())));
                    }
                }
            }
        });
    }
}

/// Keeps one lazily connected channel per peer address.
#[derive(Default)]
pub struct Channels {
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
}

impl Channels {
    /// The channel to `address`.
    pub fn get(&self, address: &str) -> Result<tonic::transport::Channel, String> {
        let mut channels = self.channels.lock().map_err(|_| "poisoned".to_string())?;
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("invalid address {address}: {e}"))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}
