//! Election cryptography of bboard: threshold exponential ElGamal on Ristretto255, via
//! [`elastic_elgamal`] 0.3.
//!
//! This crate owns:
//! - [`manifest`]: structural checks of an [`ElectionManifest`](pb::ElectionManifest);
//! - [`dkg`]: the k-of-n key ceremony (committed Pedersen DKG), its public outcome
//!   ([`dkg::KeySet`], [`pb::JointKey`]) and its re-derivation by anyone.
//!
//! **Status:** ballot encryption with proofs, Benaloh opening of spoiled ballots,
//! tallies and decryption shares are not implemented yet (issue #5); DKG secret shares
//! are not yet encrypted for transport (see [`dkg`]).
//!
//! # Invariants
//!
//! - **No I/O, no async, no clocks**: pure functions over bytes and protobuf messages;
//!   randomness is always passed in by the caller.
//! - **Never decrypts a single cast ballot.** Trustees only ever produce decryption
//!   shares of *aggregates* (homomorphic sums); spoiled ballots (Benaloh challenge) are
//!   opened with the encryption nonces the voting device publishes, never by trustees.
//! - Decoders of untrusted bytes return [`BallotError`] and never panic.

#![forbid(unsafe_code)]

pub use bboard_proto::v1 as pb;

#[allow(dead_code)] // Used step by step; see the module list.
mod codec;
pub mod dkg;
mod error;
pub mod manifest;

pub use error::BallotError;
pub use manifest::{validate_manifest, MAX_OPTIONS, MAX_TRUSTEES};
