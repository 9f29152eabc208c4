//! Pure logic of the bboard bulletin board: what is signed, what is stored, what is
//! proven. No I/O, no async, no clocks: callers pass time in.
//!
//! - [`envelope`]: signed entries (`Envelope`), their domain-separated Ed25519
//!   signatures checked with `verify_strict`, size limits and content addresses.
//! - [`leaf`]: the bytes of a Merkle leaf (`Leaf { timestamp, envelope }`) and its hash.
//! - [`checkpoint`]: C2SP tlog-checkpoint text, signed notes with one Ed25519
//!   signature per node, key ids, verifier-key strings and the k-of-n cosignature policy.
//! - [`board`]: the deterministic admission rules (genesis, registry, roles,
//!   duplicates) every node applies to every batch.
//! - [`tracking`]: ballots' tracking codes and their short human form.
//! - [`election`]: the election rules layered on the board (phases, key ceremony,
//!   ballot proofs, tracking-code chains, precinct scope).
//! - [`memory`]: an in-memory board to replay and audit a downloaded board.
//! - [`alarm`]: signed censorship alarms of nodes and their verification.
//! - [`audit`]: re-checking a whole election from the board alone.
//! - [`receipt`]: what a submitter keeps, checkable offline with only the trusted
//!   node keys.
//! - [`evidence`]: transferable proofs of misbehaviour (equivocation, a signed
//!   history that is not a prefix of the cosigned board), checkable with only the
//!   trusted keys.
//! - [`witness`]: the decision logic of an independent witness (cosign only
//!   consistent growth, never two roots for one size).
//!
//! Everything that parses bytes from outside the process returns [`Error`] and never
//! panics.

#![forbid(unsafe_code)]

pub mod admin;
pub mod alarm;
pub mod audit;
pub mod board;
pub mod checkpoint;
pub mod election;
pub mod envelope;
mod error;
pub mod evidence;
pub mod leaf;
pub mod membership;
pub mod memory;
pub mod receipt;
pub mod tracking;
pub mod witness;

pub use bboard_merkle as merkle;
pub use bboard_proto::v1 as pb;
pub use error::Error;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
