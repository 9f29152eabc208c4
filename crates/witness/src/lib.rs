//! An independent witness of bboard boards, in the spirit of
//! [C2SP tlog-witness](https://c2sp.org/tlog-witness).
//!
//! A witness cosigns a board's checkpoint only if it is signed by the board's k-of-n
//! nodes and consistently extends the last checkpoint the witness cosigned for that
//! board, so a forked or rewritten board cannot collect the cosignatures of the
//! witnesses that saw the original. The *decision* is pure and lives in
//! `bboard_core::witness`; this crate puts it on the network and on disk:
//!
//! - [`server`]: the HTTP service (`POST /add-checkpoint`) run by `bboard witness serve`;
//! - [`state`]: the witness's durable state file, written before any cosignature leaves;
//! - [`client`]: offering a checkpoint to a witness, as nodes (when feeding their final
//!   checkpoints) and `bboard witness feed` do.
//!
//! *Invariant:* a witness never answers `200` before the new state is durably on disk,
//! and it decides one request at a time, so not even a crash makes it cosign two roots
//! for one size.

#![forbid(unsafe_code)]

pub mod client;
pub mod server;
pub mod state;

pub use client::{offer_checkpoint, WitnessAnswer};
pub use server::{router, OpenError, WitnessService};
pub use state::WitnessStateFile;

/// Content type of a `409` answer whose body is the size the witness knows.
pub const TLOG_SIZE: &str = "text/x.tlog.size";
