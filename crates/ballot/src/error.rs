//! Typed errors of the crate.

/// Every way an election object can be rejected by this crate.
///
/// Variants name the object (contest, option, trustee) by id or index so that a board
/// operator or auditor can tell exactly what was wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BallotError {
    // ----- manifest -----
    /// The manifest has no contest.
    #[error("manifest has no contest")]
    NoContests,
    /// A contest id is empty.
    #[error("contest #{index} has an empty id")]
    EmptyContestId {
        /// Position of the contest in the manifest.
        index: usize,
    },
    /// Two contests share one id.
    #[error("duplicate contest id {0:?}")]
    DuplicateContestId(String),
    /// A contest has no option.
    #[error("contest {0:?} has no option")]
    NoOptions(String),
    /// A contest has more options than this crate supports.
    #[error("contest {contest:?} has {count} options, more than the maximum {max}")]
    TooManyOptions {
        /// Contest id.
        contest: String,
        /// Number of options.
        count: usize,
        /// Supported maximum ([`crate::MAX_OPTIONS`]).
        max: usize,
    },
    /// Two options of one contest have the same (or an empty) name.
    #[error("contest {contest:?}: option {option:?} is empty or duplicated")]
    BadOptionName {
        /// Contest id.
        contest: String,
        /// The offending option name.
        option: String,
    },
    /// Selection limits are not `min <= max`, `1 <= max <= options`.
    #[error(
        "contest {contest:?}: selection limits min={min} max={max} invalid for {options} options \
         (need min <= max and 1 <= max <= options)"
    )]
    BadSelectionLimits {
        /// Contest id.
        contest: String,
        /// `min_selections`.
        min: u32,
        /// `max_selections`.
        max: u32,
        /// Number of options.
        options: usize,
    },
    /// A precinct id is empty.
    #[error("precinct #{index} has an empty id")]
    EmptyPrecinctId {
        /// Position of the precinct in the manifest.
        index: usize,
    },
    /// Two precincts share one id.
    #[error("duplicate precinct id {0:?}")]
    DuplicatePrecinctId(String),
    /// The manifest names no trustee, or more than this crate supports.
    #[error("manifest names {count} trustees; need 1..={max}")]
    BadTrusteeCount {
        /// Number of trustees.
        count: usize,
        /// Supported maximum ([`crate::MAX_TRUSTEES`]).
        max: usize,
    },
    /// A trustee's signing key is not 32 bytes.
    #[error("trustee #{index} has a {len}-byte signing key; expected 32")]
    BadTrusteeKey {
        /// Trustee index.
        index: usize,
        /// Actual length.
        len: usize,
    },
    /// Two trustees have the same signing key.
    #[error("trustees #{first} and #{second} have the same signing key")]
    DuplicateTrusteeKey {
        /// First trustee index.
        first: usize,
        /// Second trustee index.
        second: usize,
    },
    /// The threshold is not within `1..=trustees`.
    #[error("threshold {threshold} is not within 1..={trustees}")]
    BadThreshold {
        /// `threshold` of the manifest.
        threshold: u32,
        /// Number of trustees.
        trustees: usize,
    },

    // ----- key ceremony -----
    /// A trustee index is outside `0..trustees`.
    #[error("trustee index {index} is outside 0..{trustees}")]
    TrusteeIndex {
        /// The index.
        index: u32,
        /// Number of trustees.
        trustees: usize,
    },
    /// A trustee was given its own message as if it came from another trustee.
    #[error("message from trustee #{0} given to itself")]
    OwnMessage(u32),
    /// A message addressed to another trustee.
    #[error("secret share for trustee #{to} given to trustee #{me}")]
    NotAddressedToMe {
        /// Addressee.
        to: u32,
        /// The trustee that received it.
        me: u32,
    },
    /// A second message of the same round from one trustee.
    #[error("duplicate {round} message from trustee #{from}")]
    DuplicateDkgMessage {
        /// Round name.
        round: &'static str,
        /// Sender.
        from: u32,
    },
    /// A round cannot finish: messages of some trustees are missing.
    #[error("{round} round incomplete: missing trustees {missing:?}")]
    MissingDkgMessages {
        /// Round name.
        round: &'static str,
        /// Indices of the trustees whose messages are missing.
        missing: Vec<usize>,
    },
    /// A key-ceremony message is not a valid encoding.
    #[error("malformed {what} from trustee #{from}")]
    MalformedDkgMessage {
        /// Which message.
        what: &'static str,
        /// Sender.
        from: u32,
    },
    /// A trustee's public polynomial does not open its round-1 commitment.
    #[error("public polynomial of trustee #{0} does not match its commitment")]
    DkgCommitmentMismatch(u32),
    /// A trustee's proof of possession of its polynomial is invalid.
    #[error("invalid proof of possession from trustee #{0}")]
    DkgInvalidProof(u32),
    /// A secret share does not lie on the sender's public polynomial.
    #[error("secret share from trustee #{0} does not match its public polynomial")]
    DkgInvalidShare(u32),
    /// The trustees' public key shares do not interpolate to one joint key.
    #[error("public key shares are inconsistent")]
    InconsistentKeyShares,
    /// A posted joint key differs from the one derived from the ceremony messages.
    #[error("posted joint key does not match the key derived from the ceremony")]
    JointKeyMismatch,
    /// A public key (joint key or key share) is not a canonical Ristretto point.
    #[error("malformed public key: {0}")]
    MalformedKey(&'static str),
    /// An internal invariant of the crate failed (a bug, reported instead of panicking).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
