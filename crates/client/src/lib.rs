//! Rust client of a bboard cluster: leader discovery, retries with the same envelope,
//! receipt and proof checking.
//!
//! **Status:** not implemented yet; it arrives with the cluster (issue #4). Offline
//! receipt verification already exists in `bboard_core::receipt`.

#![forbid(unsafe_code)]
