//! Deliberate misbehaviour for tamper tests: a node that lies, so tests can show that
//! the others and the auditors catch it.
//!
//! Compiled only with the cargo feature `fault-injection`, which no release build
//! enables (`.ci/run` turns it on for the tamper tests only). Even then a fault is
//! active only when the process is started with `BBOARD_FAULT` set:
//!
//! - `forge-root`: the node signs every checkpoint over a root that is not its tree's
//!   (and skips its own consistency self-check, as a dishonest operator would);
//! - `reorder`: the node applies the first two leaves of every batch in swapped order,
//!   so its tree (and the root it signs) differs from the other nodes';
//! - `drop-signer:<hex key>`: as leader, the node silently never proposes entries
//!   signed by that key (censorship), answering like a slow leader;
//! - `ignore-membership-rule`: as leader, the node proposes membership changes that
//!   no majority authorisation on the board covers (its own check skipped), so tests
//!   can show that the followers refuse them.
//!
//! Without the feature, [`active`] is always `None` and the variable is ignored.

/// A fault a node can be started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Sign forged roots.
    ForgeRoot,
    /// Apply batches in a different order than committed.
    Reorder,
    /// As leader, drop every entry signed by this Ed25519 key.
    DropSigner([u8; 32]),
    /// As leader, propose membership changes without the board's authorisation.
    IgnoreMembershipRule,
}

/// The fault this process runs with, if any.
#[cfg(feature = "fault-injection")]
pub fn active() -> Option<Fault> {
    static FAULT: std::sync::OnceLock<Option<Fault>> = std::sync::OnceLock::new();
    *FAULT.get_or_init(|| {
        let spec = std::env::var("BBOARD_FAULT").ok()?;
        let fault = match spec.as_str() {
            "forge-root" => Some(Fault::ForgeRoot),
            "reorder" => Some(Fault::Reorder),
            "ignore-membership-rule" => Some(Fault::IgnoreMembershipRule),
            other => other
                .strip_prefix("drop-signer:")
                .and_then(|key| hex::decode(key).ok())
                .and_then(|key| <[u8; 32]>::try_from(key).ok())
                .map(Fault::DropSigner),
        };
        if let Some(fault) = fault {
            tracing::warn!(
                ?fault,
                "FAULT INJECTION ACTIVE: this node misbehaves on purpose"
            );
        }
        fault
    })
}

/// The fault this process runs with, if any (never, without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
pub fn active() -> Option<Fault> {
    None
}
