//! Cosigning: whenever this node applies a new size, the **cosigner loop**
//! ([`run_cosigner`]) asks every peer (`Raft.CosignCheckpoint`) for its signature over
//! the same `(origin, size, root)` and merges them. A checkpoint with k-of-n valid node
//! signatures (and, if configured, enough witness cosignatures) becomes the node's
//! latest *final* checkpoint, which receipts carry.
//!
//! The other side of the exchange is [`NodeCosigner`]: it answers a peer's request with
//! this node's own signature, but only over a size it has applied itself, so a node
//! never vouches for a tree it has not computed.
//!
//! The same exchange vouches for snapshots: before a node installs one, its
//! [`PeerVouchers`] gather the other nodes' signatures over the staged checkpoint
//! (see [`crate::state_machine`]).

use std::sync::Arc;
use std::time::Duration;

use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, SignedCheckpoint};
use bboard_merkle::TreeSize;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::board_store::StoreError;
use crate::network::{request_cosignature, Cosigner};
use crate::node::Shared;
use crate::peer::PeerChannels;
use crate::state_machine::{SnapshotVouchers, VouchError};
use crate::types::NodeId;

/// How many recently cosigned checkpoints a node keeps in memory for by-size queries.
const RECENT_CHECKPOINTS: usize = 4096;
/// How long a cosign request waits for a peer.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a node waits to have applied a size before it signs it for a peer.
const APPLY_WAIT: Duration = Duration::from_secs(2);
/// How long a node installing a snapshot keeps asking its peers to vouch for it.
/// Refusing a snapshot stops the node's Raft (a storage error), so it waits out a
/// peer that is restarting or still applying rather than give up at the first round.
const VOUCH_PATIENCE: Duration = Duration::from_secs(30);
/// Pause between two rounds of vouching requests.
const VOUCH_RETRY: Duration = Duration::from_millis(500);

/// Asks each of `others` for its signature over `target` and merges the notes that
/// sign exactly it into `merged` (started empty when this node has no signature to
/// give), until `policy` accepts the result or every peer answered (each bounded by
/// `timeout`). A peer that signs another root for the same size is equivocating (or
/// on a fork): logged loudly, never merged.
pub(crate) async fn gather_signatures(
    peers: &PeerChannels,
    others: &[NodeId],
    target: &Checkpoint,
    mut merged: Option<SignedCheckpoint>,
    policy: &CosignaturePolicy,
    timeout: Duration,
) -> Option<SignedCheckpoint> {
    use futures::StreamExt as _;
    let size = target.size.0;
    let mut requests: futures::stream::FuturesUnordered<_> = others
        .iter()
        .map(|&id| request_cosignature(peers, id, size, timeout))
        .collect();
    while merged.as_ref().is_none_or(|m| policy.verify(m).is_err()) {
        let Some(result) = requests.next().await else {
            break;
        };
        let Ok(note) = result else {
            continue;
        };
        match SignedCheckpoint::parse(&note) {
            Ok(theirs) if theirs.checkpoint() != target => {
                tracing::error!(
                    size,
                    ours = %target.root,
                    theirs = %theirs.checkpoint().root,
                    "peer signed a different checkpoint"
                );
            }
            Ok(theirs) => match merged.as_mut() {
                None => merged = Some(theirs),
                Some(merged) => {
                    if let Err(e) = merged.merge(&theirs) {
                        tracing::error!(size, error = %e, "merging a peer's signature");
                    }
                }
            },
            Err(e) => tracing::warn!(size, error = %e, "malformed cosignature"),
        }
    }
    merged
}

/// Why this node could not produce (or gather signatures over) a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// The board store failed (or is corrupt).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The size asked for is beyond what this node has applied.
    #[error("size {size} is beyond this node's board ({applied})")]
    BeyondBoard {
        /// The requested size.
        size: u64,
        /// The size this node has applied.
        applied: u64,
    },
    /// Signing the checkpoint failed.
    #[error("signing checkpoint: {0}")]
    Sign(#[from] bboard_core::Error),
    /// The cache of recent checkpoints was poisoned by a panicking thread.
    #[error("the recent-checkpoint cache is poisoned")]
    Poisoned,
}

impl Shared {
    /// This node's signed checkpoint of `size` (stored, or signed now from its own tree
    /// if it applied `size` without stopping there, e.g. inside a snapshot).
    pub fn own_checkpoint(&self, size: u64) -> Result<SignedCheckpoint, CosignError> {
        if let Some(stored) = self.board.own_checkpoint(size)? {
            return Ok(stored);
        }
        let applied = self.applied.borrow().size;
        if size > applied {
            return Err(CosignError::BeyondBoard { size, applied });
        }
        let root = self.board.root_at(size)?;
        Ok(SignedCheckpoint::sign(
            Checkpoint {
                origin: self.config.origin.clone(),
                size: TreeSize(size),
                root,
            },
            &self.signer,
        )?)
    }

    /// Gathers peers' signatures over this node's checkpoint of `size`. Returns as soon
    /// as the checkpoint is final (k-of-n), so one slow or stopped peer does not delay
    /// receipts; otherwise waits for every peer (each bounded by a timeout).
    pub async fn cosign_round(&self, size: u64) -> Result<SignedCheckpoint, CosignError> {
        let own = self.own_checkpoint(size)?;
        let target = own.checkpoint().clone();
        let others: Vec<NodeId> = self
            .config
            .peers
            .iter()
            .filter(|p| p.id != self.config.node_id)
            .map(|p| p.id)
            .collect();
        let merged = gather_signatures(
            &self.peers,
            &others,
            &target,
            Some(own.clone()),
            &self.node_policy,
            COSIGN_TIMEOUT,
        )
        .await
        .unwrap_or(own);
        let mut recent = self.recent.lock().map_err(|_| CosignError::Poisoned)?;
        recent.insert(size, merged.clone());
        while recent.len() > RECENT_CHECKPOINTS {
            recent.pop_first();
        }
        Ok(merged)
    }

    /// The best checkpoint known for `size`: cosigned if gathered, else gathered now.
    pub async fn checkpoint_at(&self, size: u64) -> Result<SignedCheckpoint, CosignError> {
        let cached = self
            .recent
            .lock()
            .map_err(|_| CosignError::Poisoned)?
            .get(&size)
            .cloned();
        if let Some(cached) = cached {
            if self.policy.verify(&cached).is_ok() {
                return Ok(cached);
            }
        }
        self.cosign_round(size).await
    }
}

/// The other nodes vouching for a snapshot's checkpoint: asks each configured peer
/// but this node for its signature, in rounds, until the node policy is met or
/// [`VOUCH_PATIENCE`] runs out. The state machine judges the result itself (without
/// this node's key): this only gathers.
pub struct PeerVouchers {
    peers: Arc<PeerChannels>,
    others: Vec<NodeId>,
    node_policy: CosignaturePolicy,
}

impl PeerVouchers {
    /// Vouchers over `peers` for the node `node_id` of `config`.
    pub fn new(
        peers: Arc<PeerChannels>,
        config: &crate::config::NodeConfig,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(PeerVouchers {
            peers,
            others: config
                .peers
                .iter()
                .filter(|p| p.id != config.node_id)
                .map(|p| p.id)
                .collect(),
            node_policy: config.node_policy()?,
        })
    }
}

impl SnapshotVouchers for PeerVouchers {
    fn cosigned_checkpoint(
        &self,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'_, Result<SignedCheckpoint, VouchError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + VOUCH_PATIENCE;
            loop {
                let merged = gather_signatures(
                    &self.peers,
                    &self.others,
                    &checkpoint,
                    None,
                    &self.node_policy,
                    COSIGN_TIMEOUT,
                )
                .await;
                let enough = merged
                    .as_ref()
                    .is_some_and(|m| self.node_policy.verify(m).is_ok());
                if enough || tokio::time::Instant::now() + VOUCH_RETRY >= deadline {
                    return merged.ok_or(VouchError::NoSignature {
                        size: checkpoint.size.0,
                        root: checkpoint.root,
                    });
                }
                tracing::info!(
                    size = checkpoint.size.0,
                    "peers have not vouched for the snapshot yet; asking again"
                );
                tokio::time::sleep(VOUCH_RETRY).await;
            }
        })
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
            .map_err(|e| tonic::Status::failed_precondition(e.to_string()))
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
