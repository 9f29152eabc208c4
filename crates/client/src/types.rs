//! The client's public data: its options, and what its calls hand back — each
//! value already checked as its doc says (a [`BoardClient`](crate::BoardClient) never
//! hands out an unverified receipt, entry, checkpoint or proof when it has a policy).

use std::pin::Pin;
use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint, VerifiedCheckpoint};
use bboard_core::leaf::LeafRecord;
use bboard_core::pb;
use bboard_core::receipt::{Receipt, VerifiedReceipt};
use bboard_merkle::Hash;
use tokio_stream::Stream;

use crate::ClientError;
#[cfg(doc)]
use crate::{BoardClient, StreamExt};

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
    /// Checkpoint notes already verified under `policy`, shared by every client built
    /// from clones of these options: receipts that carry the same cosigned checkpoint
    /// have its signatures checked once per memo, not once per receipt.
    pub checkpoint_memo: crate::CheckpointMemo,
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
            checkpoint_memo: crate::CheckpointMemo::new(),
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
