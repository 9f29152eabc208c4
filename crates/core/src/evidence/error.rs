//! Why a piece of evidence does not hold or cannot be read, naming the note involved.

use std::fmt;

use serde::{Deserialize, Serialize};

use bboard_merkle::{Hash, ProofError};

use super::EVIDENCE_VERSION;
use crate::receipt::MAX_PROOF_HASHES;

/// Names one of the notes inside a piece of evidence, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteRole {
    /// `a` of an equivocation.
    A,
    /// `b` of an equivocation.
    B,
    /// `faulty` of a not-a-prefix.
    Faulty,
    /// `honest` of a not-a-prefix.
    Honest,
    /// `checkpoint` of a censorship.
    Checkpoint,
}

impl fmt::Display for NoteRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoteRole::A => "a",
            NoteRole::B => "b",
            NoteRole::Faulty => "faulty",
            NoteRole::Honest => "honest",
            NoteRole::Checkpoint => "checkpoint",
        })
    }
}

/// Why a piece of evidence does not hold (or cannot be read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The file is not evidence JSON.
    #[error("not an evidence file: {0}")]
    Json(String),
    /// The file's format version is not one this code reads.
    #[error("evidence format version {0} is not supported (expected {EVIDENCE_VERSION})")]
    UnsupportedVersion(u32),
    /// The evidence is about another board than the verifier's policy.
    #[error("different origins: the evidence is about {evidence:?}, the trusted keys are for {policy:?}")]
    WrongOrigin {
        /// Origin named in the evidence.
        evidence: String,
        /// Origin of the policy.
        policy: String,
    },
    /// A note names another origin than the evidence.
    #[error("different origins: checkpoint {which} is of {actual:?}, the evidence is about {expected:?}")]
    NoteOrigin {
        /// Which note.
        which: NoteRole,
        /// Origin of the evidence.
        expected: String,
        /// Origin in the note.
        actual: String,
    },
    /// A note does not parse as a signed checkpoint.
    #[error("checkpoint {which} is not a valid signed checkpoint: {source}")]
    MalformedNote {
        /// Which note.
        which: NoteRole,
        /// The parse error.
        source: crate::Error,
    },
    /// A note parses but is not in the canonical form (as re-encoded).
    #[error("checkpoint {which} is not in canonical form (re-encoding it changes its bytes)")]
    NonCanonicalNote {
        /// Which note.
        which: NoteRole,
    },
    /// A note carries a signature line that is not a valid signature by a trusted key.
    #[error("checkpoint {which} carries a signature line by {name:?} that is not a valid signature by a trusted key")]
    UntrustedSignature {
        /// Which note.
        which: NoteRole,
        /// Key name on the offending line.
        name: String,
    },
    /// A note carries two signature lines of the same key.
    #[error("checkpoint {which} carries more than one signature line by {name:?}")]
    DuplicateSignature {
        /// Which note.
        which: NoteRole,
        /// The key name.
        name: String,
    },
    /// An equivocation's notes have different sizes.
    #[error("checkpoints a and b have different sizes ({a} and {b}): not an equivocation")]
    DifferentSizes {
        /// Size of a.
        a: u64,
        /// Size of b.
        b: u64,
    },
    /// An equivocation's notes agree.
    #[error("roots are equal: checkpoints a and b both say root {root} at size {size}")]
    EqualRoots {
        /// The common size.
        size: u64,
        /// The common root.
        root: Hash,
    },
    /// The honest side of a not-a-prefix does not satisfy the policy.
    #[error("the honest checkpoint is not accepted by the policy: {0}")]
    HonestNotAccepted(crate::Error),
    /// The faulty checkpoint is larger than the honest one.
    #[error("the faulty checkpoint (size {faulty}) is larger than the honest one (size {honest})")]
    FaultyLarger {
        /// Size of the faulty checkpoint.
        faulty: u64,
        /// Size of the honest checkpoint.
        honest: u64,
    },
    /// A hash field is not 32 bytes of lowercase hex.
    #[error("{what} is not 32 bytes of lowercase hex: {value:?}")]
    MalformedHash {
        /// Which field.
        what: &'static str,
        /// The value found (truncated).
        value: String,
    },
    /// The proof has more hashes than any consistency proof can have.
    #[error("consistency proof has {0} hashes, at most {MAX_PROOF_HASHES} are possible")]
    ProofTooLong(usize),
    /// The consistency proof does not verify from `root_at_m` to the honest root.
    #[error("consistency proof does not verify from the claimed root at size {m} to the honest checkpoint of size {n}: {source}")]
    ProofFails {
        /// Old size.
        m: u64,
        /// New size.
        n: u64,
        /// Why it fails.
        source: ProofError,
    },
    /// The alarm in censorship evidence is not canonical base64 of a canonically
    /// encoded `CensorshipAlarm`.
    #[error("the alarm is malformed: {0}")]
    MalformedAlarm(String),
    /// The alarm does not verify: forged, altered, by a key that is not a node of the
    /// board, for another board, or about an envelope that is not validly signed.
    #[error("the censorship alarm is rejected: {0}")]
    AlarmRejected(crate::Error),
    /// The checkpoint of censorship evidence does not satisfy the policy.
    #[error("the checkpoint is not accepted by the policy: {0}")]
    CheckpointNotAccepted(crate::Error),
    /// The checkpoint of censorship evidence is older than the board the alarm saw.
    #[error("the checkpoint (size {checkpoint}) is smaller than the board the alarm was raised on (size {alarm}): it cannot show the entry is still missing")]
    CheckpointTooOld {
        /// Size of the checkpoint.
        checkpoint: u64,
        /// Board size stated in the alarm.
        alarm: u64,
    },
    /// The honest tree's root at `m` is the faulty checkpoint's root: no fork.
    #[error("the faulty checkpoint's root {root} is the honest tree's root at size {size}: it is a prefix")]
    IsAPrefix {
        /// Size m.
        size: u64,
        /// The common root.
        root: Hash,
    },
}
