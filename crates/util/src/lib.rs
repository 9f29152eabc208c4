//! Small I/O helpers that the node, the client, the witness and the CLI all need, kept
//! here so that none of them reaches into another's internals.
//!
//! - [`clock`]: wall-clock time in Unix milliseconds, the one clock reading of bboard.
//! - [`key_file`]: private key and secret files (hex Ed25519 seeds, mode 0600, never
//!   overwritten by accident, replaced atomically).
//! - [`state_file`]: versioned JSON state files replaced atomically and durably.
//! - [`http`]: a small HTTP/1.1 client for the plain-HTTP services bboard talks to
//!   (witnesses, the nodes' JSON mirror).
//!
//! *Invariant:* no bboard logic here: nothing in this crate knows what an entry, a
//! checkpoint or a ballot is.

#![forbid(unsafe_code)]

pub mod clock;
pub mod http;
pub mod key_file;
pub mod state_file;
