//! The error type of the client.

use std::time::Duration;

use bboard_core::envelope::SignedEnvelope;
use tonic::Code;

/// Everything that can go wrong talking to a board.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client was built without any endpoint.
    #[error("no board endpoint configured")]
    NoEndpoint,
    /// An endpoint address is not a valid URI.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The address as given.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The board judged the request and refused it (`INVALID_ARGUMENT`,
    /// `PERMISSION_DENIED`, `FAILED_PRECONDITION`, `NOT_FOUND`, …). Retrying the same
    /// request cannot help, so it is never retried.
    #[error("{endpoint} rejected the request: {code:?}: {message}")]
    Rejected {
        /// Node that answered.
        endpoint: String,
        /// gRPC status code.
        code: Code,
        /// Status message of the node.
        message: String,
    },
    /// A transient gRPC failure (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, connection
    /// error, …) from a call that is not retried, e.g. `status` of one node.
    #[error("{endpoint}: {code:?}: {message}")]
    Rpc {
        /// Node that was called.
        endpoint: String,
        /// gRPC status code.
        code: Code,
        /// Status message.
        message: String,
    },
    /// Every attempt failed with a transient error until the time budget ran out.
    #[error("gave up after {attempts} attempt(s) in {elapsed:?} (tried {}); last error: {last}", tried.join(", "))]
    Timeout {
        /// Calls made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// Description of the last failure.
        last: String,
        /// The nodes tried, in the order first tried.
        tried: Vec<String>,
    },
    /// A receipt, checkpoint, entry or proof from the board does not verify. Never
    /// retried nor ignored: a node served something its signatures do not back.
    // Not a `#[source]`: the text is already in the message, and error chains would
    // print it twice.
    #[error("verification failed: {0}")]
    Verification(bboard_core::Error),
    /// Before posting, the board's current checkpoint did not verify under the
    /// client's origin and trusted keys: the client's own configuration is wrong (or
    /// the nodes are not the ones it trusts). Nothing was posted.
    #[error(
        "nothing was posted: the board's current checkpoint does not verify with the \
         configured origin {origin:?} and {keys} trusted node key(s): {reason}; check the \
         origin and the trusted keys given to this command"
    )]
    TrustConfiguration {
        /// The origin the client expects.
        origin: String,
        /// How many node keys it trusts.
        keys: usize,
        /// Why the checkpoint did not verify.
        reason: Box<bboard_core::Error>,
    },
    /// The entry was accepted and IS on the board, but the receipt did not verify under
    /// the client's policy. Posting the entry again would add nothing for an
    /// identical envelope, but a freshly signed one (e.g. a new encryption of the
    /// same vote) would count twice: it must not be posted again.
    #[error(
        "the entry IS on the board at index {index} (envelope {envelope_id}, accepted by \
         {endpoint}), but its receipt did not verify: {reason}. Do not post it again; fix \
         the origin or trusted keys and check it with `bboard prove --index {index}`"
    )]
    LandedUnverified {
        /// The node that accepted it.
        endpoint: String,
        /// Its leaf index, as the receipt says.
        index: u64,
        /// Its envelope id.
        envelope_id: String,
        /// Why the receipt did not verify.
        reason: Box<bboard_core::Error>,
    },
    /// No node confirmed an append within the time budget (a timeout, a lost
    /// connection, no leader): the entry may or may not be on the board. Re-sending
    /// exactly `envelope` is safe — the board keeps one copy and answers a re-send
    /// with the original receipt — while signing a new one for the same content (a
    /// fresh encryption of the same vote) could post it twice.
    #[error(
        "the outcome is unknown: no node confirmed envelope {} within {elapsed:?} after \
         {attempts} attempt(s) (tried {}; last error: {last}); it may or may not be on the \
         board. Re-send exactly this signed envelope (safe: the board keeps one copy); do \
         not sign a new one for the same content",
        envelope.id(),
        tried.join(", ")
    )]
    OutcomeUnknown {
        /// The signed envelope, to re-send as it is.
        envelope: Box<SignedEnvelope>,
        /// Calls made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// Description of the last failure.
        last: String,
        /// The nodes tried, in the order first tried.
        tried: Vec<String>,
    },
    /// A node answered with a response that is inconsistent with the request.
    #[error("invalid response from {endpoint}: {reason}")]
    InvalidResponse {
        /// Node that answered.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The operation checks signatures but the client has no cosignature policy.
    #[error("this operation needs trusted node keys (a cosignature policy)")]
    NoPolicy,
}

impl From<bboard_core::Error> for ClientError {
    fn from(error: bboard_core::Error) -> Self {
        ClientError::Verification(error)
    }
}

impl ClientError {
    /// The gRPC status code, for errors that carry one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Rejected { code, .. } | ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Builds the error of a failed call to `endpoint`.
    pub(crate) fn from_status(endpoint: &str, status: &tonic::Status) -> Self {
        if is_transient(status) {
            ClientError::Rpc {
                endpoint: endpoint.to_string(),
                code: status.code(),
                message: status.message().to_string(),
            }
        } else {
            ClientError::Rejected {
                endpoint: endpoint.to_string(),
                code: status.code(),
                message: status.message().to_string(),
            }
        }
    }
}

/// Whether a failed call may succeed if the same request is sent again (possibly to
/// another node): the node was unreachable, overloaded, between leaders or too slow.
pub(crate) fn is_transient(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled => true,
        // A status with a source was made locally from a transport error (the remote
        // end never answered), not sent by a node.
        Code::Unknown => std::error::Error::source(status).is_some(),
        _ => false,
    }
}
