//! A bboard node: Raft ordering (openraft) over a sled store, the public gRPC
//! `bboard.v1.Board` service and the Raft transport (tonic), and the read-only HTTP
//! mirror (axum).
//!
//! **Status:** not implemented yet; the replicated cluster is issue #4. Nothing here
//! pretends to work.

#![forbid(unsafe_code)]
pub mod log_store;
