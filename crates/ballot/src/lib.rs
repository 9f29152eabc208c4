//! Election cryptography of bboard (threshold ElGamal on Ristretto255, via
//! `elastic-elgamal`): manifests, the DKG key ceremony, encrypted ballots with
//! proofs, homomorphic tallies, verifiable decryption shares and results.
//!
//! **Status:** not implemented yet; this crate is reserved so the workspace has its
//! final shape. The election protocol is issue #5. Nothing here pretends to work.

#![forbid(unsafe_code)]
