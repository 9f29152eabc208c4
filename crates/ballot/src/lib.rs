//! Election cryptography of bboard: threshold exponential ElGamal on Ristretto255, via
//! [`elastic_elgamal`] 0.3.
//!
//! This crate owns:
//! - [`manifest`]: structural checks of an [`ElectionManifest`](pb::ElectionManifest);
//! - [`dkg`]: the k-of-n key ceremony (committed Pedersen DKG), its public outcome
//!   ([`dkg::KeySet`], [`pb::JointKey`]), its re-derivation by anyone, and the board-side
//!   check of each posted round-2 message ([`dkg::check_public_info`]);
//! - [`transport`]: sealed-box (X25519 + XSalsa20-Poly1305) encryption of DKG secret
//!   shares to each trustee's manifest `encryption_key`, bound to election and trustees;
//! - [`ballot`]: ballot encryption with 0/1 and selection-count proofs bound to election,
//!   precinct, terminal chain, contest and option; ballot verification; Benaloh opening
//!   of spoiled ballots;
//! - [`tally`]: homomorphic per-precinct sums, trustees' verifiable decryption shares,
//!   k-of-n combination with a `O(√n)` discrete log, result checks.
//!
//! **Status:** the whole election path is implemented (manifest → DKG → ballots →
//! spoiling → tally → decryption → result). Not done yet: batch verification of ballot
//! proofs (each proof is checked on its own), zeroization of nonces and shares.
//!
//! # Invariants
//!
//! - **No I/O, no async, no clocks**: pure functions over bytes and protobuf messages;
//!   randomness is always passed in by the caller.
//! - **Never decrypts a single cast ballot.** Trustees only ever produce decryption
//!   shares of *aggregates* (homomorphic sums); spoiled ballots (Benaloh challenge) are
//!   opened with the encryption nonces the voting device publishes, never by trustees.
//! - Decoders of untrusted bytes return [`BallotError`] and never panic; library calls
//!   that can panic (`RangeDecomposition::optimal` below 2, `combine_shares` with an
//!   index `>= n`) are guarded by prior checks.
//! - Every encoding is canonical (exact lengths, canonical scalars and points), so one
//!   object has exactly one encoding, and every proof transcript starts with a
//!   `bboard/v1/...` domain tag and binds what the proof is about.
//!
#![forbid(unsafe_code)]

pub use bboard_proto::v1 as pb;
/// The library this crate builds on, re-exported so callers can name its types without
/// depending on a possibly different version.
pub use elastic_elgamal;

/// An election's joint public key, as ballots are encrypted to and verified against
/// ([`ballot::election_key`], [`dkg::KeySet::joint_key`]).
pub type ElectionKey = elastic_elgamal::PublicKey<elastic_elgamal::group::Ristretto>;

pub mod ballot;
mod codec;
pub mod dkg;
mod error;
pub mod manifest;
pub mod tally;
#[cfg(test)]
mod test_util;
pub mod transport;

pub use ballot::{
    encrypt_ballot, spoil, verify_ballot, verify_spoiled, BallotOpening, ContestOpening,
};
pub use error::BallotError;
pub use manifest::{validate_manifest, MAX_OPTIONS, MAX_TRUSTEES};
pub use tally::{
    check_result, combine, decryption_share, result_message, verify_decryption_share, ContestTally,
    Tally,
};
pub use transport::{open_share, seal_share, TransportSecret};
