//! The election, client side: plain async functions over [`bboard_client::BoardClient`]
//! that the `bboard` commands and `bboard demo` share.
//!
//! - [`board`]: reading an election off the board ([`board::ElectionView`]), posting
//!   entries.
//! - [`authority`]: manifest, registrations, phases, joint key, protocols, results.
//! - [`terminal`]: ballots, spoiled ballots, tracking codes.
//! - [`report`]: tally, results and the audit, for people.
//! - [`Error`]: every way these steps fail, with the entry, key or phase involved.
//!
//! *Architecture invariant:* client-side orchestration only. No server, no storage,
//! no clock beyond stamping entries; the board already enforced its rules, so this
//! crate only finds what it needs among admitted entries. It never decrypts a single
//! cast ballot: only aggregates are decrypted, by trustees, in `bboard-ballot`.
#![forbid(unsafe_code)]

pub mod authority;
pub mod board;
mod error;
pub mod report;
pub mod terminal;

pub use error::Error;

/// The result of this crate's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
