//! The election commands: `bboard election|trustee|terminal|protocol|results|tally|
//! verify-election`, thin wrappers over the `bboard-election` library (board view,
//! manifest file, authority, trustee ceremony, terminals, reports).
//!
//! - [`cli`]: the clap commands.
//! - [`flags`]: the flags that name contests and options (`--choice`, `--count`).

pub mod cli;
pub mod flags;
