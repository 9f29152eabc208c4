//! Cosigning. Every node signs its own checkpoint of each size it applies (in the state
//! machine) and **pushes** that note to every peer (`Raft.OfferCosignature`, one
//! message per peer per size, coalesced to the latest when a peer is slow: see
//! [`run_pushers`]). A node keeps the pushed signatures that verify over exactly its own
//! checkpoint of that size; with k-of-n valid node signatures the checkpoint becomes the
//! node's latest *final* checkpoint, which receipts carry. No round trip per append:
//! the leader's checkpoint is final as soon as a follower has applied the size and its
//! one-way push arrived, and each signature is verified once.
//!
//! The **cosigner loop** ([`run_cosigner`]) is the fallback and the witness path: when
//! pushes have not made the applied size final within [`PULL_AFTER`] (a peer restarted
//! and missed them, the cluster is idle after a restart), or when witnesses must
//! cosign too, it asks every peer (`Raft.CosignCheckpoint`) for its signature over the
//! same `(origin, size, root)` and merges them.
//!
//! The other side of the exchange is [`NodeCosigner`]: it answers a peer's request with
//! this node's own signature, but only over a size it has applied itself, so a node
//! never vouches for a tree it has not computed.
//!
//! The same exchange vouches for snapshots: before a node installs one, its
//! [`PeerVouchers`] gather the other nodes' signatures over the staged checkpoint
//! (see [`crate::state_machine`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, SignedCheckpoint};
use bboard_merkle::TreeSize;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::board_store::StoreError;
use crate::network::{offer_cosignature, request_cosignature, Cosigner};
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
/// How long pushed signatures may take to make an applied size final before the
/// cosigner loop asks the peers itself.
pub const PULL_AFTER: Duration = Duration::from_millis(300);
/// How long a push waits for the peer to take it.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest pause between two pushes to a peer that failed.
const PUSH_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Sizes for which pushed signatures are kept at once (the newest win): pushes come
/// from authenticated peers, but even they cannot grow a node's memory.
const MAX_COLLECTING: usize = 64;

/// Signatures peers pushed, per size, until the size is final here.
#[derive(Debug, Default)]
pub struct Collected {
    /// Sizes this node has applied: its own note plus the peers' signatures verified
    /// so far (each line verified once, when it was adopted).
    gathering: BTreeMap<u64, SignedCheckpoint>,
    /// Notes for sizes this node has not applied yet, unverified: judged once it has.
    early: BTreeMap<u64, Vec<SignedCheckpoint>>,
    /// Largest size made final by pushed signatures. Kept apart from
    /// [`Shared::final_size`] because that one also moves on the pull and witness
    /// paths; this one only says which pushed notes can no longer matter.
    final_size: u64,
}

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

/// The configured nodes other than this one.
fn other_nodes(config: &crate::config::NodeConfig) -> Vec<NodeId> {
    config
        .peers
        .iter()
        .filter(|p| p.id != config.node_id)
        .map(|p| p.id)
        .collect()
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

/// Why a pushed note was refused.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// Not a signed checkpoint note.
    #[error("malformed cosignature note: {0}")]
    Malformed(bboard_core::Error),
    /// A note for another board.
    #[error("cosignature note is for origin {0:?}, not this board's")]
    WrongOrigin(String),
    /// This node could not judge it.
    #[error(transparent)]
    Cosign(#[from] CosignError),
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

    /// Size of this node's latest final checkpoint (0: none yet).
    pub fn final_size(&self) -> u64 {
        self.finals
            .borrow()
            .as_ref()
            .map_or(0, |cp| cp.checkpoint().size.0)
    }

    /// Makes `checkpoint` (k-of-n) this node's latest final one, unless a larger size
    /// is final already; remembers it for by-size queries either way.
    fn publish_final(&self, checkpoint: SignedCheckpoint) -> Result<(), CosignError> {
        let size = checkpoint.checkpoint().size.0;
        self.remember(size, checkpoint.clone())?;
        let newer = self.finals.send_if_modified(|current| {
            let newer = current
                .as_ref()
                .is_none_or(|cp| cp.checkpoint().size.0 < size);
            if newer {
                *current = Some(checkpoint);
            }
            newer
        });
        if newer {
            self.metrics.finalised(size);
        }
        Ok(())
    }

    fn remember(&self, size: u64, checkpoint: SignedCheckpoint) -> Result<(), CosignError> {
        let mut recent = self.recent.lock().map_err(|_| CosignError::Poisoned)?;
        recent.insert(size, (checkpoint, None));
        while recent.len() > RECENT_CHECKPOINTS {
            recent.pop_first();
        }
        Ok(())
    }

    /// Takes a peer's pushed note (`Raft.OfferCosignature`). A note for a size not
    /// applied here yet is kept (bounded) until it is; one for a size already final is
    /// dropped unread.
    ///
    /// # Errors
    ///
    /// A note that does not parse or is for another board; store failures.
    pub fn take_offer(&self, note: &str) -> Result<(), OfferError> {
        let theirs = SignedCheckpoint::parse(note).map_err(OfferError::Malformed)?;
        if theirs.checkpoint().origin != self.config.origin {
            return Err(OfferError::WrongOrigin(theirs.checkpoint().origin.clone()));
        }
        let size = theirs.checkpoint().size.0;
        let mut collected = self.collected.lock().map_err(|_| CosignError::Poisoned)?;
        if size <= collected.final_size {
            return Ok(());
        }
        // Read under the lock: the cosigner loop takes it after every applied change
        // to judge the early notes, so a note stashed here is never overlooked.
        if size > self.applied.borrow().size {
            let per_size = self.node_policy.keys().len().max(1);
            let notes = collected.early.entry(size).or_default();
            if notes.len() < per_size {
                notes.push(theirs);
            }
            while collected.early.len() > MAX_COLLECTING {
                collected.early.pop_first();
            }
            return Ok(());
        }
        Ok(self.adopt(&mut collected, &theirs)?)
    }

    /// Judges the pushed notes kept for sizes up to `applied`, now applied here.
    pub fn take_early_offers(&self, applied: u64) -> Result<(), CosignError> {
        let mut collected = self.collected.lock().map_err(|_| CosignError::Poisoned)?;
        let later = collected.early.split_off(&(applied + 1));
        let ready = std::mem::replace(&mut collected.early, later);
        for (_, notes) in ready.into_iter().rev() {
            for theirs in notes {
                self.adopt(&mut collected, &theirs)?;
            }
        }
        Ok(())
    }

    /// Adds the valid signatures of `theirs` to this node's own checkpoint of the same
    /// size; publishes it when it reaches the node policy's threshold.
    fn adopt(
        &self,
        collected: &mut Collected,
        theirs: &SignedCheckpoint,
    ) -> Result<(), CosignError> {
        let size = theirs.checkpoint().size.0;
        if size <= collected.final_size {
            return Ok(());
        }
        let merged = match collected.gathering.entry(size) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(self.own_checkpoint(size)?)
            }
        };
        if merged.checkpoint() != theirs.checkpoint() {
            tracing::error!(
                size,
                ours = %merged.checkpoint().root,
                theirs = %theirs.checkpoint().root,
                "peer pushed a signature over a different checkpoint"
            );
            return Ok(());
        }
        for key in self.node_policy.keys() {
            if let Err(e) = merged.adopt_signature(theirs, key) {
                tracing::error!(size, error = %e, "adopting a peer's signature");
            }
        }
        let signed = self
            .node_policy
            .keys()
            .iter()
            .filter(|key| merged.has_line_of(key))
            .count();
        if signed >= self.node_policy.threshold() {
            let checkpoint = merged.clone();
            collected.final_size = size;
            collected.gathering = collected.gathering.split_off(&(size + 1));
            if self.config.witnesses.is_empty() {
                self.publish_final(checkpoint)?;
            } else {
                // Witnesses cosign in the cosigner loop; remember it for by-size reads.
                self.remember(size, checkpoint)?;
            }
        }
        while collected.gathering.len() > MAX_COLLECTING {
            collected.gathering.pop_first();
        }
        Ok(())
    }

    /// Gathers peers' signatures over this node's checkpoint of `size`. Returns as soon
    /// as the checkpoint is final (k-of-n), so one slow or stopped peer does not delay
    /// receipts; otherwise waits for every peer (each bounded by a timeout).
    pub async fn cosign_round(&self, size: u64) -> Result<SignedCheckpoint, CosignError> {
        let own = self.own_checkpoint(size)?;
        let target = own.checkpoint().clone();
        let others = other_nodes(&self.config);
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
        self.remember(size, merged.clone())?;
        Ok(merged)
    }

    /// The best checkpoint this node holds for `size`, without asking anyone: the
    /// cosigned one if it gathered one (recently), else its own signature alone. A read
    /// never starts a cosign round, so no client can make nodes talk to each other;
    /// a client that needs k-of-n for an old size gathers the nodes' own signatures
    /// itself. The flag says whether the checkpoint satisfies the full policy.
    pub fn checkpoint_at(&self, size: u64) -> Result<(SignedCheckpoint, bool), CosignError> {
        {
            let mut recent = self.recent.lock().map_err(|_| CosignError::Poisoned)?;
            if let Some((cached, verdict)) = recent.get_mut(&size) {
                let is_final = *verdict.get_or_insert_with(|| self.policy.verify(cached).is_ok());
                return Ok((cached.clone(), is_final));
            }
        }
        if let Some(latest) = self
            .finals
            .borrow()
            .as_ref()
            .filter(|cp| cp.checkpoint().size.0 == size)
        {
            return Ok((latest.clone(), true));
        }
        Ok((self.own_checkpoint(size)?, false))
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
            others: other_nodes(config),
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

    fn offer(&self, note: &str) -> Result<(), tonic::Status> {
        self.0.take_offer(note).map_err(|e| match e {
            OfferError::Malformed(_) | OfferError::WrongOrigin(_) => {
                tonic::Status::invalid_argument(e.to_string())
            }
            OfferError::Cosign(e) => tonic::Status::internal(e.to_string()),
        })
    }
}

/// Pushes this node's signed checkpoint of every size it applies to each peer (one
/// task per peer): at most one push in flight per peer, always of the latest size, so
/// a slow or stopped peer costs nothing but its own backoff.
pub async fn run_pushers(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let pushers = other_nodes(&shared.config)
        .into_iter()
        .map(|peer| tokio::spawn(push_to(shared.clone(), peer, shutdown.clone())));
    futures::future::join_all(pushers).await;
}

async fn push_to(shared: Arc<Shared>, peer: NodeId, mut shutdown: watch::Receiver<bool>) {
    let mut applied = shared.applied.clone();
    let mut pushed = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let latest = applied
            .borrow_and_update()
            .checkpoint
            .as_ref()
            .filter(|cp| cp.checkpoint().size.0 > pushed)
            .map(|cp| (cp.checkpoint().size.0, cp.to_note()));
        if let Some((size, note)) = latest {
            match offer_cosignature(&shared.peers, peer, note, PUSH_TIMEOUT).await {
                Ok(()) => {
                    pushed = size;
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::debug!(peer, size, error = %e, "pushing a cosignature failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(PUSH_MAX_BACKOFF);
                    continue;
                }
            }
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Asks the peers for their signatures over this node's checkpoint of `size` and
/// publishes it if that makes it final (no witnesses).
async fn pull_round(shared: &Shared, size: u64) {
    match shared.cosign_round(size).await {
        Ok(checkpoint) => match shared.node_policy.verify(&checkpoint) {
            Ok(_) => {
                if let Err(e) = shared.publish_final(checkpoint) {
                    tracing::warn!(size, error = %e, "publishing a final checkpoint failed");
                }
            }
            Err(e) => tracing::debug!(size, error = %e, "checkpoint not final yet"),
        },
        Err(e) => tracing::warn!(size, error = %e, "cosign round failed"),
    }
}

/// The cosigner loop: judges pushed signatures kept for sizes just applied; without
/// witnesses, asks the peers itself only when pushes have not made the applied size
/// final within [`PULL_AFTER`]; with witnesses, gathers node signatures and then the
/// witnesses' cosignatures after every applied size change.
pub async fn run_cosigner(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut applied = shared.applied.clone();
    let mut done = 0u64;
    // Since when (and for which applied size) pushes have left this node behind.
    let mut behind: Option<(tokio::time::Instant, u64)> = None;
    loop {
        let size = applied.borrow_and_update().size;
        // The cosign round time is measured from here: the moment this node applied.
        shared.metrics.applied(size);
        if let Err(e) = shared.take_early_offers(size) {
            tracing::warn!(size, error = %e, "judging pushed cosignatures failed");
        }
        if shared.config.witnesses.is_empty() {
            let final_size = shared.final_size();
            let mut wait = Duration::from_secs(5);
            if size > final_size {
                match behind {
                    Some((since, target)) if final_size < target => {
                        if since.elapsed() >= PULL_AFTER {
                            behind = None;
                            pull_round(&shared, size).await;
                        }
                    }
                    _ => behind = Some((tokio::time::Instant::now(), size)),
                }
                wait = PULL_AFTER;
            } else {
                behind = None;
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.changed() => return,
            }
            continue;
        }
        if size > done || (size > 0 && shared.finals.borrow().is_none()) {
            match shared.cosign_round(size).await {
                Ok(checkpoint) => match shared.node_policy.verify(&checkpoint).map(|_| ()) {
                    Ok(()) if !shared.config.witnesses.is_empty() => {
                        let checkpoint = crate::witnessing::cosign(&shared, checkpoint).await;
                        match shared.policy.verify(&checkpoint) {
                            Ok(_) => {
                                done = size;
                                shared.finals.send_replace(Some(checkpoint));
                                shared.metrics.finalised(size);
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
                        shared.metrics.finalised(size);
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
