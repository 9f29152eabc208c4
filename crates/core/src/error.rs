//! The one error type of `bboard-core`. Each variant names the precise problem so a
//! server can map it to a gRPC status and a user can act on the message.

use bboard_merkle::ProofError;

/// Everything that can be wrong with bytes, signatures, checkpoints or receipts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that should hold a protobuf message do not.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which structure was being decoded.
        what: &'static str,
        /// What the decoder found wrong.
        reason: String,
    },
    /// A field or message is larger than the protocol allows.
    #[error("{what} is {actual} bytes, the limit is {limit}")]
    TooLarge {
        /// Which field or message.
        what: &'static str,
        /// Its size.
        actual: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// A public key is not 32 bytes or not a valid Ed25519 point.
    #[error("invalid Ed25519 public key: {0}")]
    InvalidPublicKey(String),
    /// An Ed25519 signature does not verify (strictly) for the message and key.
    #[error("signature does not verify for signer {signer}")]
    BadSignature {
        /// Hex of the signer's public key.
        signer: String,
    },
    /// Checkpoint text is not a well-formed C2SP tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// A checkpoint's signed note is not well formed.
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    /// A verifier key string (`name+keyid+base64`) is not valid.
    #[error("invalid verifier key: {0}")]
    InvalidVerifierKey(String),
    /// A key name is empty or contains whitespace or '+'.
    #[error("invalid key name {0:?}: must be non-empty without whitespace or '+'")]
    InvalidKeyName(String),
    /// A checkpoint's origin is not the one the verifier expects.
    #[error("checkpoint origin is {actual:?}, expected {expected:?}")]
    WrongOrigin {
        /// Origin the verifier trusts.
        expected: String,
        /// Origin found in the checkpoint.
        actual: String,
    },
    /// Fewer valid signatures from trusted keys than the policy requires.
    #[error(
        "checkpoint has {valid} valid signature(s) from trusted node keys, policy needs {required}{}",
        if invalid.is_empty() { String::new() } else { format!(" (invalid: {})", invalid.join(", ")) }
    )]
    NotEnoughCosignatures {
        /// Distinct trusted keys whose signature verified.
        valid: usize,
        /// Threshold k of the policy.
        required: usize,
        /// Names of trusted keys whose signature did not verify.
        invalid: Vec<String>,
    },
    /// The node signatures meet the policy but fewer witnesses than required
    /// cosigned the checkpoint (see `CosignaturePolicy::with_witnesses`).
    #[error(
        "checkpoint has {valid} valid witness cosignature(s), policy needs {required}{}",
        if invalid.is_empty() { String::new() } else { format!(" (invalid: {})", invalid.join(", ")) }
    )]
    NotEnoughWitnessCosignatures {
        /// Distinct trusted witness keys whose signature verified.
        valid: usize,
        /// Witness threshold of the policy.
        required: usize,
        /// Names of trusted witness keys whose signature did not verify.
        invalid: Vec<String>,
    },
    /// A cosignature policy that can never be met or is trivially met.
    #[error("invalid cosignature policy: {0}")]
    InvalidPolicy(String),
    /// Two checkpoints were expected to describe the same tree state and do not.
    #[error("checkpoint mismatch: {0}")]
    CheckpointMismatch(String),
    /// A Merkle proof does not verify.
    #[error("proof does not verify: {0}")]
    Proof(#[from] ProofError),
    /// A receipt is internally inconsistent.
    #[error("invalid receipt: {0}")]
    InvalidReceipt(String),
    /// A censorship alarm is malformed, forged or not for this board.
    #[error("invalid alarm: {0}")]
    InvalidAlarm(String),
    /// An admin request is not signed by any trusted admin key (or not signed at all).
    #[error("admin request not authenticated: {0}")]
    UntrustedAdminRequest(String),
    /// An admin command's `issued_unix_ms` is further from now than the allowed skew
    /// (stale, replayed later, or a wrong clock).
    #[error(
        "admin command issued at {issued_unix_ms} ms is {} ms from now ({now_unix_ms} ms), allowed skew is {max_skew_ms} ms",
        issued_unix_ms.abs_diff(*now_unix_ms)
    )]
    StaleAdminCommand {
        /// `issued_unix_ms` of the command.
        issued_unix_ms: u64,
        /// The verifier's clock.
        now_unix_ms: u64,
        /// The allowed difference either way.
        max_skew_ms: u64,
    },
}

impl Error {
    pub(crate) fn malformed(what: &'static str, reason: impl ToString) -> Self {
        Error::Malformed {
            what,
            reason: reason.to_string(),
        }
    }
}
