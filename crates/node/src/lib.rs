//! A bboard node: Raft ordering (openraft) over a sled store, the public gRPC
//! `bboard.v1.Board` service and the Raft transport (tonic), and the read-only HTTP
//! mirror (axum).
//!
//! Modules:
//! - [`types`]: the openraft type configuration; one Raft entry = one batch of leaves.
//! - [`log_store`]: the Raft log and vote in sled, fsync'd before every acknowledgement.
//! - [`board_store`]: the board state in sled (leaves, Merkle nodes, indexes, key
//!   registry, own signed checkpoints), one atomic batch per applied entry.
//! - [`state_machine`]: openraft's state machine over the board store: deterministic
//!   apply, streamed snapshots that are re-verified on install.
//! - [`network`]: the Raft transport over gRPC.
//!
//! **Status (issue #4, in progress):** storage, state machine and Raft transport exist
//! and pass openraft's conformance suite; the public `Board` service, group commit,
//! cosignature gathering and the `bboard node` commands do not exist yet.

#![forbid(unsafe_code)]
pub mod admin;
pub mod board_store;
pub mod config;
pub mod log_store;
pub mod network;
pub mod node;
pub mod runtime;
pub mod service;
pub mod state_machine;
pub mod types;
