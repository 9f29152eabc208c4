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
//! - **Verification.** With a
//!   [`CosignaturePolicy`](bboard_core::checkpoint::CosignaturePolicy) (the trusted node keys and k), every
//!   receipt, checkpoint and proof the board returns is checked before it is handed
//!   out: receipts with [`Receipt::verify`](bboard_core::receipt::Receipt::verify) (and that they carry the submitted
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
mod checks;
mod error;
mod memo;
mod retry;
mod rpc;
mod types;

pub use checks::{check_receipt, check_receipt_memo};
pub use error::ClientError;
pub use memo::CheckpointMemo;
pub use retry::BoardClient;
pub use tokio_stream::{Stream, StreamExt};
pub use types::{
    AppendResult, BoardEvent, CheckpointInfo, ClientOptions, Entry, EnvelopeOnBoard,
    VerifiedConsistency, VerifiedInclusion, WatchStream, DEFAULT_MAX_MESSAGE_BYTES,
};
