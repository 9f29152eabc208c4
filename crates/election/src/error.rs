//! The error type of the crate: one enum, each variant naming the entry, key, election
//! or phase involved, with the underlying client or ballot error as its source (boxed:
//! those errors are large and every `Result` of the crate would carry their size).

use bboard_ballot::BallotError;
use bboard_client::ClientError;
use bboard_core::audit::AuditError;
use bboard_core::pb::Phase;

/// Everything that can go wrong reading an election or posting to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the board's entries failed.
    #[error("reading the board")]
    ReadBoard(#[source] Box<ClientError>),
    /// Appending an entry failed: the board refused it, or no node answered in time.
    #[error("posting {what}")]
    Append {
        /// The entry, for people.
        what: String,
        /// The client's reason.
        #[source]
        source: Box<ClientError>,
    },
    /// The election has no manifest on the board read.
    #[error("election {election_id:?} has no manifest on this board")]
    NoManifest {
        /// The election.
        election_id: String,
    },
    /// The election is not in the phase this step needs.
    #[error(
        "cannot {doing}: election {election_id:?} is in phase {}, this needs {}",
        .current.as_str_name(),
        .needed.as_str_name()
    )]
    WrongPhase {
        /// The election.
        election_id: String,
        /// The step attempted.
        doing: String,
        /// Its phase on the board.
        current: Phase,
        /// The phase the step needs.
        needed: Phase,
    },
    /// The key ceremony has not posted a joint key yet.
    #[error("election {election_id:?} has no joint key on the board yet")]
    NoJointKey {
        /// The election.
        election_id: String,
    },
    /// A key is not one of the manifest's trustees.
    #[error("key {key} is not a trustee of election {election_id:?}")]
    NotATrustee {
        /// The key, hex.
        key: String,
        /// The election.
        election_id: String,
    },
    /// A key has no registration on the board.
    #[error("key {key} is not registered on this board")]
    KeyNotRegistered {
        /// The key, hex.
        key: String,
    },
    /// A key is registered, but with another role or without a precinct.
    #[error("key {key} is registered as {registered} for precinct {precinct:?}, not as {wanted}")]
    WrongRole {
        /// The key, hex.
        key: String,
        /// Its registered role.
        registered: &'static str,
        /// Its registered precinct.
        precinct: String,
        /// The role this step needs.
        wanted: &'static str,
    },
    /// Election cryptography refused an object (manifest threshold, joint key, …).
    #[error("{doing}")]
    Crypto {
        /// What was being done.
        doing: String,
        /// The ballot crate's reason.
        #[source]
        source: Box<BallotError>,
    },
    /// A registration's precinct does not fit its role: terminals and commissions
    /// need one, the other roles take none.
    #[error("a {role} key {} a precinct", if *.needs_precinct { "needs" } else { "takes no" })]
    RegistrationPrecinct {
        /// The role registered.
        role: &'static str,
        /// Whether that role needs a precinct.
        needs_precinct: bool,
    },
    /// The board's leaves could not be replayed into an election record.
    #[error("replaying the board")]
    Replay(#[source] AuditError),
    /// A precinct × contest cannot be decrypted from the valid shares posted.
    #[error("cannot decrypt {precinct_id}/{contest_id} (valid shares from trustees {trustees:?})")]
    Undecryptable {
        /// Precinct.
        precinct_id: String,
        /// Contest.
        contest_id: String,
        /// The trustees with a valid share, by name.
        trustees: Vec<String>,
        /// Why combining failed (too few shares, …).
        #[source]
        source: Box<BallotError>,
    },
    /// The board computed another tracking code than the terminal: one of them
    /// does not chain the ballots as the other does.
    #[error("the board's tracking code {board} differs from the terminal's {terminal}")]
    TrackingCodeMismatch {
        /// The receipt's code, hex.
        board: String,
        /// The terminal's code, hex.
        terminal: String,
    },
    /// Fetching the cosigned checkpoint of the leaves read failed.
    #[error("fetching the cosigned checkpoint of the {size} leaves read")]
    Checkpoint {
        /// Leaves read.
        size: u64,
        /// The client's reason.
        #[source]
        source: Box<ClientError>,
    },
    /// An index does not fit the 32 bits the board messages carry.
    #[error("{what} index {index} does not fit in 32 bits")]
    IndexOverflow {
        /// Which index.
        what: &'static str,
        /// Its value.
        index: usize,
    },
}
