//! The node's openraft type configuration and the application data carried in Raft
//! entries.
//!
//! One Raft entry carries one *batch* of leaves (group commit): the leader gathers
//! envelopes for a couple of milliseconds, stamps each with its clock, encodes each leaf
//! once, and proposes them together, so one fsync covers the batch. The leaf bytes are
//! carried verbatim: every node applies exactly the bytes the leader encoded.

use bboard_core::board::Outcome;
use serde::{Deserialize, Serialize};

/// Identifier of a node; never reused.
pub type NodeId = u64;

/// A board command proposed through Raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoardRequest {
    /// Leaves to apply in order (each an encoded `Leaf`, verbatim).
    Batch {
        /// Encoded leaves.
        leaves: Vec<LeafBytes>,
    },
}

/// Encoded leaf bytes, serialised as a byte string (not a list of numbers).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeafBytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Debug for LeafBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeafBytes({} bytes)", self.0.len())
    }
}

/// What applying one Raft entry did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardResponse {
    /// One outcome per leaf of the batch, in order (empty for blank and membership
    /// entries).
    pub outcomes: Vec<Outcome>,
    /// Board size after the entry was applied.
    pub tree_size: u64,
}

/// A member of the cluster as Raft's membership records it: where clients reach it,
/// and where peers reach it and which certificate it must present there.
///
/// Carrying the peer identity in the (admin-signed, replicated) membership lets a node
/// that joins later, or one rebuilt under a new id, be dialled and authenticated by
/// every member without editing every organisation's config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardNode {
    /// Public address (`host:port`): Board API, HTTP, Admin; leader hints for clients.
    pub addr: String,
    /// Peer-port address (`host:port`): Raft and cosigning.
    pub peer_addr: String,
    /// The pinned peer-port certificate (`sha256:<hex>`).
    pub tls_fingerprint: String,
}

impl std::fmt::Display for BoardNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (peer port {})", self.addr, self.peer_addr)
    }
}

openraft::declare_raft_types!(
    /// openraft types of a bboard cluster.
    pub TypeConfig:
        D = BoardRequest,
        R = BoardResponse,
        NodeId = NodeId,
        Node = BoardNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

/// The Raft handle of a bboard node.
pub type BoardRaft = openraft::Raft<TypeConfig>;
