//! The election, client side: plain async functions over [`bboard_client::BoardClient`]
//! that `bboard election|trustee|terminal|protocol|results|tally|verify-election` and
//! `bboard demo` share.
//!
//! Reading the board and posting entries live in [`bboard_election::board`].
//! - [`manifest`]: the manifest file and voters' selections.
//! - [`authority`]: manifest, registrations, phases, joint key, protocols, results.
//! - [`trustee`]: trustee keys, the key ceremony, decryption shares.
//! - [`terminal`]: ballots, spoiled ballots, tracking codes.
//! - [`report`]: tally, results and the audit, for people.
//! - [`cli`]: the clap commands.

pub mod authority;
pub mod cli;
pub mod manifest;
pub mod report;
pub mod terminal;
pub mod trustee;
