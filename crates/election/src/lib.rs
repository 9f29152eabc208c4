//! The election, client side: plain async functions over [`bboard_client::BoardClient`]
//! that the `bboard` commands and `bboard demo` share.
//!
//! - [`board`]: reading an election off the board ([`board::ElectionView`], entries of
//!   one kind picked by type), posting entries.
//! - [`manifest`]: the manifest file people write ([`manifest::ManifestFile`], TOML or
//!   JSON) and voters' selections (random ones, for simulations; described for people).
//! - [`authority`]: manifest, registrations, phases, joint key, protocols, results.
//! - [`trustee`]: a trustee's key files and its steps: the three rounds of the key
//!   ceremony, finishing it, decryption shares. Its secret ceremony state is saved
//!   before anything is posted, so a re-run resumes, and a step that is done posts
//!   nothing.
//! - [`terminal`]: ballots, spoiled ballots, tracking codes.
//! - [`report`]: tally, results and the audit, for people.
//! - [`Error`]: every way these steps fail, with the entry, key, phase, file or trustee
//!   (by its manifest name) involved.
//!
//! *Architecture invariant:* client-side orchestration only. No server, no board
//! storage, no clock beyond stamping entries; the only files it touches are the ones a
//! participant owns (the manifest file it reads, a trustee's key files and ceremony
//! state, through `bboard_util::key_file`). The board already enforced its rules, so
//! this crate only finds what it needs among admitted entries. It never decrypts a
//! single cast ballot: only aggregates are decrypted, by trustees, in `bboard-ballot`.
#![forbid(unsafe_code)]

pub mod authority;
pub mod board;
mod error;
pub mod manifest;
pub mod report;
pub mod terminal;
pub mod trustee;

pub use error::Error;

/// The result of this crate's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
