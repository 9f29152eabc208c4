//! The election, client side: plain async functions over [`bboard_client::BoardClient`]
//! that `bboard election|trustee|terminal|protocol|results|tally|verify-election` and
//! `bboard demo` share.
//!
//! The board view, the authority's and terminals' steps and the reports live in the
//! `bboard-election` library; here remain:
//! - [`manifest`]: the manifest file and voters' selections.
//! - [`trustee`]: trustee keys, the key ceremony, decryption shares.
//! - [`cli`]: the clap commands.

pub mod cli;
pub mod manifest;
pub mod trustee;
