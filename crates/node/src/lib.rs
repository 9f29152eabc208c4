//! A bboard node: Raft ordering (openraft) over a sled store, the public gRPC
//! `bboard.v1.Board` service, the Raft transport and the admin service (tonic).
//!
//! Modules:
//! - [`config`]: the TOML configuration and its defaults.
//! - [`types`]: the openraft type configuration; one Raft entry = one batch of leaves.
//! - [`log_store`]: the Raft log and vote in sled, fsync'd before every acknowledgement.
//! - [`board_store`]: the board state in sled (leaves, Merkle nodes, indexes, key
//!   registry, own signed checkpoints), one atomic batch per applied entry.
//! - [`state_machine`]: openraft's state machine over the board store: deterministic
//!   apply, streamed snapshots that are staged beside the live board, re-verified
//!   whole, vouched for by the other nodes and swapped in atomically.
//! - [`network`]: the Raft transport over gRPC, and checkpoint cosigning between peers.
//! - [`peer`]: the peer port those travel on: mutual TLS between configured nodes,
//!   pinned certificates, the authenticated sender of every request.
//! - [`node`]: the shared state of a running node, held by every service and loop.
//! - [`batcher`]: group commit: many appends, one Raft entry, one answer per waiter.
//! - [`cosign`]: the cosigner loop, gathering peers' signatures into final checkpoints.
//! - [`forward`]: forwarding a follower's writes to the leader (one hop).
//! - [`recorder`]: the leader posting final checkpoints on the board.
//! - [`service`]: the public `bboard.v1.Board` gRPC service.
//! - [`inclusion`]: inclusion deadlines of forwarded entries and censorship alarms.
//! - [`http`]: the read-only HTTP/JSON mirror, ballot tracker page, metrics, health
//!   (HTTP/1.1 on the gRPC port).
//! - [`witnessing`]: feeding final checkpoints to the configured witnesses and merging
//!   their cosignatures (the witness itself is the `bboard-witness` crate).
//! - [`fault`]: test-only misbehaviour (cargo feature `fault-injection`).
//! - [`admin`]: the signed operator service (membership, snapshot, campaign).
//! - [`distrust`]: the leaders this node was told to stop following, persisted.
//! - [`membership_rule`]: a Raft membership change needs the board's latest majority
//!   authorisation, on the leader and on every follower.
//! - [`runtime`]: starting (integrity check, Raft, the public port with gRPC, HTTP,
//!   health and reflection, the peer port with Raft and cosigning) and stopping a node.

#![forbid(unsafe_code)]
pub mod admin;
pub mod batcher;
pub mod board_store;
pub mod config;
pub mod cosign;
pub mod distrust;
pub mod fault;
pub mod forward;
pub mod http;
pub mod inclusion;
pub mod log_store;
pub mod membership_rule;
pub mod metrics;
pub mod network;
pub mod node;
pub mod peer;
pub mod recorder;
pub mod runtime;
pub mod service;
pub mod state_machine;
#[cfg(test)]
mod test_server;
pub mod types;
pub mod verified;
pub mod witnessing;
