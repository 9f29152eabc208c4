//! The error type of the crate: one enum, each variant naming the entry, key, election,
//! phase, trustee (by its manifest name) or file involved, with the underlying client,
//! ballot or file error as its source (boxed: those errors are large and every
//! `Result` of the crate would carry their size).

use std::path::PathBuf;

use bboard_ballot::BallotError;
use bboard_client::ClientError;
use bboard_core::audit::AuditError;
use bboard_core::pb::Phase;
use bboard_util::key_file::KeyFileError;

use crate::trustee::Step;

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
    /// A ballot was accepted and IS on the board (and counts), but its receipt did not
    /// verify on this terminal: the voter is given its tracking code and must not
    /// vote again; the terminal's origin or trusted keys are wrong.
    #[error(
        "{what} IS on the board at index {index} and counts; tracking code {short_code} \
         (give it to the voter; do NOT cast again). This terminal could not verify the \
         receipt"
    )]
    BallotLandedUnverified {
        /// The entry, for people.
        what: String,
        /// Its leaf index.
        index: u64,
        /// The short tracking code, for the slip.
        short_code: String,
        /// What could not be verified.
        #[source]
        source: Box<ClientError>,
    },
    /// No node confirmed a ballot in time: it may or may not be on the board. The
    /// signed envelope (in `source`) must be re-sent as it is; casting again would
    /// encrypt the choice afresh and could count it twice.
    #[error(
        "the outcome of posting {what} is unknown: it may or may not be on the board. \
         If it is, its tracking code is {short_code}. Do NOT cast a new ballot for this \
         voter: re-send exactly this signed ballot"
    )]
    BallotOutcomeUnknown {
        /// The entry, for people.
        what: String,
        /// The short tracking code it has if it landed.
        short_code: String,
        /// The client's error, which carries the envelope.
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
    /// A key has no registration for this election (a key serves one role in one
    /// election per board).
    #[error(
        "key {key} is not registered for election {election_id:?}{}",
        if elsewhere.is_empty() {
            String::new()
        } else {
            format!(" (it is registered for {})", elsewhere.join(", "))
        }
    )]
    KeyNotRegistered {
        /// The key, hex.
        key: String,
        /// The election asked about.
        election_id: String,
        /// Where it is registered instead ("election \"e1\" as ROLE_TERMINAL").
        elsewhere: Vec<String>,
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

    // ----- the manifest file -----
    /// The manifest file could not be read.
    #[error("reading manifest {}", .path.display())]
    ManifestRead {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The manifest file is not TOML (`.toml`) or JSON of a manifest.
    #[error("parsing manifest {}", .path.display())]
    ManifestSyntax {
        /// The file.
        path: PathBuf,
        /// The TOML or JSON parser's reason.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A trustee's key in the manifest file is not 32 bytes of hex.
    #[error("trustee {trustee:?}: {field} must be 32 bytes of hex")]
    ManifestTrusteeKey {
        /// The trustee's name.
        trustee: String,
        /// `signing_key` or `encryption_key`.
        field: &'static str,
    },
    /// The manifest fails the validation the board applies.
    #[error("invalid manifest")]
    InvalidManifest(#[source] Box<BallotError>),

    // ----- trustees -----
    /// A trustee's key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// A trustee's directory could not be created.
    #[error("creating trustee directory {}", .dir.display())]
    TrusteeDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no trustee keys.
    #[error("{} has no signing.key: create it with `bboard trustee keygen`", .dir.display())]
    NoTrusteeKeys {
        /// The directory.
        dir: PathBuf,
    },
    /// A trustee's ceremony state file could not be read.
    #[error("reading trustee state {}", .path.display())]
    StateRead {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A trustee's ceremony state file is not the JSON of a ceremony state.
    #[error("trustee state {} is not a ceremony state", .path.display())]
    StateSyntax {
        /// The file.
        path: PathBuf,
        /// The JSON parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The state file is another election's: refused, never mixed.
    #[error("{} is the state of election {found:?}, not {expected:?}", .path.display())]
    StateOfAnotherElection {
        /// The file.
        path: PathBuf,
        /// The election it is of.
        found: String,
        /// The election of this step.
        expected: String,
    },
    /// The state file is another trustee's than the keys'.
    #[error("{} belongs to trustee {state}, these keys are trustee {keys}", .path.display())]
    StateOfAnotherTrustee {
        /// The file.
        path: PathBuf,
        /// The trustee of the state file.
        state: String,
        /// The trustee of the keys.
        keys: String,
    },
    /// A step after `commit` found no ceremony state.
    #[error(
        "trustee {trustee} has no ceremony state {}: run the commit step first",
        .path.display()
    )]
    NoCeremonyState {
        /// The trustee.
        trustee: String,
        /// Where the state should be.
        path: PathBuf,
    },
    /// The trustee's commitment is on the board but its state is lost: its secret
    /// polynomial is gone with it.
    #[error(
        "trustee {trustee} already has a commitment on the board but no state file {}: \
         the ceremony cannot continue without it",
        .path.display()
    )]
    StateLost {
        /// The trustee.
        trustee: String,
        /// Where the state should be.
        path: PathBuf,
    },
    /// A step was run before the one it builds on.
    #[error("trustee {trustee} cannot {step} yet: run the {needs} step first")]
    StepOrder {
        /// The trustee.
        trustee: String,
        /// The step attempted.
        step: Step,
        /// The step to run first.
        needs: Step,
    },
    /// A round of the key ceremony cannot finish: some trustees' messages are not on
    /// the board (yet).
    #[error(
        "the {round} round of the key ceremony is not complete: waiting for {}",
        .missing.join(", ")
    )]
    CeremonyIncomplete {
        /// The round.
        round: &'static str,
        /// The trustees it waits for, by name.
        missing: Vec<String>,
    },
    /// Another trustee's key-ceremony message on the board does not check.
    #[error("the {what} of trustee {from}")]
    CeremonyMessage {
        /// Which message.
        what: &'static str,
        /// Its sender, by name.
        from: String,
        /// The ballot crate's reason.
        #[source]
        source: Box<BallotError>,
    },
    /// The joint key derived from the board differs from the one this trustee's
    /// ceremony produced.
    #[error("the joint key derived from the board differs from trustee {trustee}'s key set")]
    JointKeyMismatch {
        /// The trustee.
        trustee: String,
    },
}
