//! The shared state of one running node: the handle every service and background
//! loop holds (configuration, Raft, the board's read side, this node's checkpoint key,
//! the cosignature policies, the applied and final checkpoints, the batcher's queue,
//! the inclusion tracker and the peer channels), plus the small queries over it
//! (current leader, a member's address, waiting for a final checkpoint).
//!
//! The work itself lives next door, one job per module:
//! [`crate::batcher`] (group commit), [`crate::cosign`] (gathering peers'
//! signatures), [`crate::forward`] (forwarding writes to the leader) and
//! [`crate::recorder`] (posting final checkpoints on the board).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, NoteSigner, SignedCheckpoint};
use tokio::sync::{mpsc, watch};

use crate::batcher::{PendingAppend, QUEUE_DEPTH};
use crate::board_store::BoardStore;
use crate::config::NodeConfig;
use crate::forward::Channels;
use crate::peer::PeerChannels;
use crate::state_machine::AppliedState;
use crate::types::BoardRaft;

/// The clock every node reading uses (re-exported for the modules of this crate).
pub use bboard_util::clock::now_unix_ms;

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
    /// Recently cosigned checkpoints by size (kept by [`crate::cosign`]).
    /// With whether it satisfies the full policy, once a read asked (so a read checks
    /// a cached checkpoint's signatures at most once).
    pub(crate) recent: Mutex<BTreeMap<u64, (SignedCheckpoint, Option<bool>)>>,
    /// Signatures peers pushed, per size, until it is final (kept by [`crate::cosign`]).
    pub(crate) collected: Mutex<crate::cosign::Collected>,
    /// Queue of the batcher.
    pub batcher: mpsc::Sender<PendingAppend>,
    /// Forwarded entries awaiting inclusion, and censorship alarms.
    pub inclusion: crate::inclusion::Inclusion,
    /// Connections to other nodes' public ports (forwarding).
    pub channels: Channels,
    /// Connections to peers' peer ports (cosigning; Raft shares them).
    pub peers: Arc<PeerChannels>,
    /// Envelopes the service verified in full, shared with the state machine.
    pub verified: Arc<crate::verified::VerifiedEnvelopes>,
    /// Latency and size histograms, rejections by reason (`/metrics`).
    pub metrics: crate::metrics::NodeMetrics,
}

/// What the services share with the state machine: the board's read side, the
/// applied state it publishes, and the envelopes verified before apply.
pub struct StateMachineHandles {
    /// The board (read side).
    pub board: BoardStore,
    /// Applied state published by the state machine.
    pub applied: watch::Receiver<AppliedState>,
    /// Envelopes the service verified in full ([`crate::verified`]).
    pub verified: Arc<crate::verified::VerifiedEnvelopes>,
}

impl Shared {
    /// Creates the shared state; returns it with the batcher's receiving end.
    pub fn new(
        config: NodeConfig,
        raft: BoardRaft,
        state: StateMachineHandles,
        signer: NoteSigner,
        inclusion: crate::inclusion::Inclusion,
        peers: Arc<PeerChannels>,
    ) -> Result<(Arc<Self>, mpsc::Receiver<PendingAppend>), crate::config::ConfigError> {
        let StateMachineHandles {
            board,
            applied,
            verified,
        } = state;
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
                collected: Mutex::default(),
                batcher,
                inclusion,
                channels: Channels::default(),
                peers,
                verified,
                metrics: crate::metrics::NodeMetrics::default(),
            }),
            queue,
        ))
    }

    /// The current leader, as this node knows it.
    pub fn current_leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
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
