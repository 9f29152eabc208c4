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
    /// A trustee's X25519 encryption key (DKG share transport) is not 32 bytes.
    #[error("trustee #{index} has a {len}-byte encryption key; expected 32")]
    BadTrusteeEncryptionKey {
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
    /// A posted public info's index differs from its commitment's.
    #[error(
        "public info of trustee #{info} checked against the commitment of trustee #{commitment}"
    )]
    DkgIndexMismatch {
        /// `trustee_index` of the commitment.
        commitment: u32,
        /// `trustee_index` of the public info.
        info: u32,
    },

    // ----- DKG share transport -----
    /// A recipient's X25519 encryption key is not 32 bytes.
    #[error("encryption key of trustee #{to} is {len} bytes; expected 32")]
    BadEncryptionKey {
        /// Recipient.
        to: u32,
        /// Actual length.
        len: usize,
    },
    /// A transport secret key is not 32 bytes (or not hex).
    #[error("transport secret key is not 32 bytes")]
    BadTransportSecret,
    /// A sealed share cannot be opened with this trustee's transport key (wrong
    /// recipient, truncated or tampered).
    #[error("sealed secret share from trustee #{from} to #{to} cannot be opened")]
    ShareDecryption {
        /// Sender.
        from: u32,
        /// Recipient.
        to: u32,
    },
    /// A sealed share opens, but was sealed for another election, sender or recipient.
    #[error("sealed secret share from trustee #{from} to #{to} was sealed for another context")]
    ShareContextMismatch {
        /// Claimed sender.
        from: u32,
        /// Claimed recipient.
        to: u32,
    },

    // ----- ballots -----
    /// A ballot or tally names a precinct that is not in the manifest.
    #[error("unknown precinct {0:?}")]
    UnknownPrecinct(String),
    /// A ballot (or selections, opening, tally input) has the wrong number of contests.
    #[error("{what} has {got} contests; the manifest has {expected}")]
    ContestCount {
        /// Which object.
        what: &'static str,
        /// Number of contests of the manifest.
        expected: usize,
        /// Number given.
        got: usize,
    },
    /// Contests must appear exactly once each, in manifest order.
    #[error("{what}: contest #{position} is {got:?}; expected {expected:?}")]
    ContestOrder {
        /// Which object.
        what: &'static str,
        /// Position in the object.
        position: usize,
        /// Contest id of the manifest at that position.
        expected: String,
        /// Contest id found.
        got: String,
    },
    /// A selected option index is not an option of the contest.
    #[error("contest {contest:?}: selected option {option} is not within 0..{options}")]
    SelectionOutOfRange {
        /// Contest id.
        contest: String,
        /// Selected index.
        option: u32,
        /// Number of options.
        options: usize,
    },
    /// An option is selected twice.
    #[error("contest {contest:?}: option {option} selected twice")]
    DuplicateSelection {
        /// Contest id.
        contest: String,
        /// Option index.
        option: u32,
    },
    /// The number of selections is outside the contest's limits.
    #[error("contest {contest:?}: {count} selections, allowed {min}..={max}")]
    SelectionCount {
        /// Contest id.
        contest: String,
        /// Number of selections.
        count: usize,
        /// `min_selections`.
        min: u32,
        /// `max_selections`.
        max: u32,
    },
    /// A contest carries the wrong number of ciphertexts (or nonces).
    #[error("contest {contest:?}: {got} {what}; expected one per option ({expected})")]
    OptionCount {
        /// Contest id.
        contest: String,
        /// What was counted (ciphertexts, nonces, sums).
        what: &'static str,
        /// Number of options.
        expected: usize,
        /// Number given.
        got: usize,
    },
    /// A ciphertext is not two canonical Ristretto points, or has an identity random
    /// element (a zero nonce would publish the vote in clear).
    #[error("contest {contest:?}, option {option}: malformed ciphertext")]
    MalformedCiphertext {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },
    /// An option's 0-or-1 proof is not a valid encoding.
    #[error("contest {contest:?}, option {option}: malformed 0/1 proof")]
    MalformedOptionProof {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },
    /// An option's 0-or-1 proof does not verify.
    #[error("contest {contest:?}, option {option}: 0/1 proof does not verify")]
    InvalidOptionProof {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },
    /// A contest's selection-count proof is not a valid encoding.
    #[error("contest {0:?}: malformed selection-count proof")]
    MalformedSumProof(String),
    /// A contest's selection-count proof does not verify.
    #[error("contest {0:?}: selection-count proof does not verify")]
    InvalidSumProof(String),
    /// `previous_tracking_code` is not 32 bytes.
    #[error("previous tracking code is {0} bytes; expected 32")]
    BadTrackingCode(usize),
    /// A spoiled ballot has no ballot.
    #[error("spoiled ballot carries no ballot")]
    MissingBallot,
    /// A nonce of a spoiled ballot is not a canonical scalar.
    #[error("contest {contest:?}, option {option}: malformed nonce")]
    MalformedNonce {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },
    /// Re-encrypting a spoiled ballot's published selection with its published nonce does
    /// not give the published ciphertext: the device did not encrypt what it showed.
    #[error("contest {contest:?}, option {option}: opening does not match the ciphertext")]
    OpeningMismatch {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },

    // ----- tally and decryption -----
    /// A decryption share (or result) is for another precinct or contest than expected.
    #[error(
        "{what} is for precinct {got_precinct:?} contest {got_contest:?}; expected precinct          {precinct:?} contest {contest:?}"
    )]
    WrongScope {
        /// Which object.
        what: &'static str,
        /// Expected precinct id.
        precinct: String,
        /// Expected contest id.
        contest: String,
        /// Precinct id found.
        got_precinct: String,
        /// Contest id found.
        got_contest: String,
    },
    /// A decryption share does not have one share and one proof per option.
    #[error(
        "decryption share of trustee #{trustee} for contest {contest:?}: {shares} shares and          {proofs} proofs; expected {expected} of each"
    )]
    DecryptionShareCount {
        /// Trustee index.
        trustee: u32,
        /// Contest id.
        contest: String,
        /// Number of options.
        expected: usize,
        /// Shares given.
        shares: usize,
        /// Proofs given.
        proofs: usize,
    },
    /// A decryption share or its proof is not a valid encoding.
    #[error(
        "decryption share of trustee #{trustee}, contest {contest:?}, option {option}: malformed"
    )]
    MalformedDecryptionShare {
        /// Trustee index.
        trustee: u32,
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },
    /// A decryption share's proof of equal discrete logs does not verify.
    #[error("decryption share of trustee #{trustee}, contest {contest:?}, option {option}: invalid proof")]
    InvalidDecryptionShare {
        /// Trustee index.
        trustee: u32,
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
    },
    /// Two decryption shares from one trustee.
    #[error("two decryption shares from trustee #{0}")]
    DuplicateDecryptionShare(u32),
    /// Fewer valid shares from distinct trustees than the threshold.
    #[error("{have} decryption shares from distinct trustees; need {need}")]
    NotEnoughShares {
        /// Distinct trustees with a share.
        have: usize,
        /// The threshold `k`.
        need: usize,
    },
    /// The decrypted sum of an option is not within `0..=ballots_counted`.
    #[error("contest {contest:?}, option {option}: decrypted count is not within 0..={max}")]
    NoDiscreteLog {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
        /// `ballots_counted`.
        max: u64,
    },
    /// A posted result lacks its counts.
    #[error("result for precinct {0:?} has no counts")]
    MissingResultCount(String),
    /// A posted result's count of an option differs from the decrypted one.
    #[error(
        "result for contest {contest:?}, option {option}: posted {posted}, decrypted {computed}"
    )]
    ResultMismatch {
        /// Contest id.
        contest: String,
        /// Option index.
        option: usize,
        /// Posted count.
        posted: u64,
        /// Decrypted count.
        computed: u64,
    },
    /// A posted result has the wrong number of option counts.
    #[error("result for contest {contest:?} has {got} counts; expected {expected}")]
    ResultOptionCount {
        /// Contest id.
        contest: String,
        /// Number of decrypted counts.
        expected: usize,
        /// Number posted.
        got: usize,
    },
    /// A posted result's number of counted ballots differs from the tally's.
    #[error(
        "result for contest {contest:?}: posted {posted} ballots counted, tally has {computed}"
    )]
    ResultBallotsCounted {
        /// Contest id.
        contest: String,
        /// Posted number.
        posted: u64,
        /// The tally's number.
        computed: u64,
    },
    /// An internal invariant of the crate failed (a bug, reported instead of panicking).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
