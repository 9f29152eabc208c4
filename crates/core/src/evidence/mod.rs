//! Transferable proof of misbehaviour: evidence files anyone re-checks with only the
//! board's origin and the trusted verifier keys (`name+keyid+base64`).
//!
//! A node that lies signs its lie. Two kinds of lie are provable from signed
//! checkpoints and Merkle proofs alone:
//!
//! - [`Evidence::Equivocation`]: two signed checkpoints of one origin and one size with
//!   different roots. A key that signed both is caught outright; if one side carries
//!   the policy's k-of-n signatures (the accepted history), the other side's signers
//!   are the culprits.
//! - [`Evidence::NotAPrefix`]: a checkpoint of size `m` whose root is not the root at
//!   `m` of a k-of-n cosigned checkpoint of size `n ≥ m`, shown by the root at `m` and
//!   a consistency proof `m → n` that verifies against the cosigned root. Its signers
//!   signed a history that is not a prefix of the board.
//!
//! A third kind is not about a lie but about an omission:
//!
//! - [`Evidence::Censorship`]: a node's signed censorship alarm (see
//!   [`crate::alarm`]) naming an envelope it forwarded to the leader that did not reach
//!   the board by the inclusion deadline, with a k-of-n cosigned checkpoint at least as
//!   large as the board the alarm was raised on. Offline it proves that an
//!   organisation stands behind the accusation and that the envelope is validly signed;
//!   that the envelope is *still* absent is a question about the board, which an online
//!   check answers (`bboard_client::audit::check_censorship_evidence`).
//!
//! Evidence is strict so that it is *tamper-evident*: every signature line of every
//! note must be a valid signature by a trusted key (node or witness), notes must be in
//! canonical form, hashes lowercase hex. Altering any byte of valid evidence therefore
//! makes it fail or changes its verdict, so a published evidence file cannot be quietly
//! edited to blame someone else. Use [`canonical_note`] to bring a note served by a
//! node into that form before building evidence.
//!
//! The JSON form (a `kind` tag and a `version` field) is what `bboard audit` writes
//! and `bboard verify-evidence` reads:
//!
//! ```json
//! {"kind":"equivocation","version":1,"origin":"…","a":"<signed note>","b":"<signed note>"}
//! {"kind":"not_a_prefix","version":1,"origin":"…","faulty":"<note>","honest":"<note>",
//!  "root_at_m":"<hex>","proof":["<hex>",…]}
//! {"kind":"censorship","version":1,"origin":"…","alarm":"<base64 CensorshipAlarm>",
//!  "checkpoint":"<signed note, k-of-n>"}
//! ```

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use bboard_merkle::{verify_consistency, Blake3Hasher, Hash, TreeSize};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::alarm::verify_alarm;
use crate::checkpoint::{CosignaturePolicy, NoteVerifier, SignedCheckpoint};
use crate::envelope::EnvelopeId;
use crate::pb;
use crate::receipt::MAX_PROOF_HASHES;

mod error;
pub use error::{EvidenceError, NoteRole};

/// Base64 (standard alphabet, padded) of the alarm protobuf in censorship evidence.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Version of the evidence JSON format written by this code.
pub const EVIDENCE_VERSION: u32 = 1;

/// A proof that some trusted keys signed contradictory or forked board states.
///
/// Serialises to JSON with a `kind` tag (`equivocation`, `not_a_prefix`,
/// `censorship`) and a `version` field; see the module documentation. Future kinds are
/// new variants and new tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// `remote = "Self"` makes the derive write inherent `serialize`/`deserialize`
// functions instead of the trait impls; the impls below wrap them to add and check the
// `version` field, so the format is written once, here.
#[serde(
    remote = "Self",
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum Evidence {
    /// Two checkpoints of the same origin and size with different roots.
    Equivocation {
        /// The board origin both notes must name.
        origin: String,
        /// One signed note.
        a: String,
        /// The other signed note.
        b: String,
    },
    /// A checkpoint (`faulty`, size `m`) that is not a prefix of a k-of-n cosigned
    /// checkpoint (`honest`, size `n ≥ m`).
    NotAPrefix {
        /// The board origin both notes must name.
        origin: String,
        /// Signed note of size `m` and root `r'`.
        faulty: String,
        /// Signed note of size `n ≥ m` carrying the policy's k-of-n signatures.
        honest: String,
        /// Lowercase hex of the honest tree's root at size `m` (≠ `r'`).
        root_at_m: String,
        /// Lowercase hex of each hash of the consistency proof `m → n`.
        proof: Vec<String>,
    },
    /// A node's signed alarm that an entry it forwarded did not reach the board, with a
    /// k-of-n checkpoint of the board at audit time (at least the alarm's board size).
    Censorship {
        /// The board origin.
        origin: String,
        /// Base64 (standard, padded) of the `CensorshipAlarm` protobuf, as the node
        /// served it.
        alarm: String,
        /// Signed note carrying the policy's k-of-n signatures.
        checkpoint: String,
    },
}

impl Serialize for Evidence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut value =
            Evidence::serialize(self, serde_json::value::Serializer).map_err(S::Error::custom)?;
        if let serde_json::Value::Object(fields) = &mut value {
            fields.insert("version".into(), EVIDENCE_VERSION.into());
        }
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Evidence {
    /// Old readers refuse files of a version they do not understand instead of
    /// misreading them.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut value = serde_json::Value::deserialize(deserializer)?;
        let version = value
            .as_object_mut()
            .and_then(|fields| fields.remove("version"))
            .ok_or_else(|| D::Error::missing_field("version"))?;
        let version = version
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| D::Error::custom("version is not a 32-bit unsigned number"))?;
        if version != EVIDENCE_VERSION {
            return Err(D::Error::custom(EvidenceError::UnsupportedVersion(version)));
        }
        Evidence::deserialize(value).map_err(D::Error::custom)
    }
}

impl Evidence {
    /// The JSON evidence file (pretty-printed).
    pub fn to_json(&self) -> String {
        // Serialising strings and vectors of strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses an evidence file. Does not verify it: see [`verify_evidence`].
    pub fn from_json(json: &str) -> Result<Self, EvidenceError> {
        serde_json::from_str(json).map_err(|e| EvidenceError::Json(e.to_string()))
    }

    /// The `kind` tag of this evidence.
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::Equivocation { .. } => "equivocation",
            Evidence::NotAPrefix { .. } => "not_a_prefix",
            Evidence::Censorship { .. } => "censorship",
        }
    }

    /// The origin the evidence is about.
    pub fn origin(&self) -> &str {
        match self {
            Evidence::Equivocation { origin, .. }
            | Evidence::NotAPrefix { origin, .. }
            | Evidence::Censorship { origin, .. } => origin,
        }
    }

    /// Censorship evidence from an alarm as a node served it and a k-of-n cosigned
    /// checkpoint (bring it into canonical form with [`canonical_note`] first).
    pub fn censorship(origin: &str, alarm: &pb::CensorshipAlarm, checkpoint: String) -> Self {
        Evidence::Censorship {
            origin: origin.to_string(),
            alarm: BASE64.encode(alarm.encode_to_vec()),
            checkpoint,
        }
    }
}

/// The alarm inside censorship evidence: canonical base64 of a canonically encoded
/// `CensorshipAlarm`, so that no edit of the file leaves the evidence intact.
fn decode_alarm(alarm: &str) -> Result<pb::CensorshipAlarm, EvidenceError> {
    let bytes = BASE64
        .decode(alarm)
        .map_err(|e| EvidenceError::MalformedAlarm(format!("not base64: {e}")))?;
    if BASE64.encode(&bytes) != alarm {
        return Err(EvidenceError::MalformedAlarm(
            "base64 is not in canonical form".into(),
        ));
    }
    let decoded = pb::CensorshipAlarm::decode(bytes.as_slice())
        .map_err(|e| EvidenceError::MalformedAlarm(format!("not a CensorshipAlarm: {e}")))?;
    if decoded.encode_to_vec() != bytes {
        return Err(EvidenceError::MalformedAlarm(
            "the CensorshipAlarm is not canonically encoded".into(),
        ));
    }
    Ok(decoded)
}

/// Which side of an equivocation carries the policy's k-of-n signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptedSide {
    /// Only `a` satisfies the policy: `b`'s signers are the culprits.
    A,
    /// Only `b` satisfies the policy: `a`'s signers are the culprits.
    B,
    /// Neither satisfies the policy: only keys that signed both are provably faulty.
    Neither,
    /// Both satisfy the policy (only possible when keys signed both sides or k ≤ n/2).
    Both,
}

/// What valid evidence proves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Two roots were signed for one size.
    Equivocation {
        /// The board.
        origin: String,
        /// The size both checkpoints claim.
        size: u64,
        /// Root of `a`.
        root_a: Hash,
        /// Root of `b`.
        root_b: Hash,
        /// Trusted keys with a valid signature on `a` (nodes, then witnesses).
        signers_a: Vec<String>,
        /// Trusted keys with a valid signature on `b`.
        signers_b: Vec<String>,
        /// Keys that signed both roots: faulty whatever else is true.
        signed_both: Vec<String>,
        /// Which side (if any) the policy accepts.
        accepted: AcceptedSide,
        /// Keys proven faulty: the non-accepted side's signers when exactly one side
        /// is accepted, else the keys that signed both.
        culprits: Vec<String>,
    },
    /// A checkpoint was signed that is not a prefix of the cosigned board.
    NotAPrefix {
        /// The board.
        origin: String,
        /// Size of the faulty checkpoint.
        faulty_size: u64,
        /// Root of the faulty checkpoint.
        faulty_root: Hash,
        /// The cosigned tree's root at `faulty_size`.
        root_at_m: Hash,
        /// Size of the cosigned checkpoint.
        honest_size: u64,
        /// Root of the cosigned checkpoint.
        honest_root: Hash,
        /// Trusted keys that signed the cosigned checkpoint.
        honest_signers: Vec<String>,
        /// Keys that signed the faulty checkpoint: all of them are faulty.
        culprits: Vec<String>,
        /// Culprits that also signed the cosigned checkpoint (signed two histories).
        signed_both: Vec<String>,
    },
    /// A node states, under its signature, that an entry it forwarded to the leader did
    /// not reach the board by the inclusion deadline.
    Censorship {
        /// The board.
        origin: String,
        /// Checkpoint key name of the node that raised the alarm.
        raised_by: String,
        /// The missing envelope.
        envelope_id: EnvelopeId,
        /// Its signer (hex Ed25519 key): the censored submitter.
        signer: String,
        /// Raft id of the leader the entry was (last) forwarded to.
        forwarded_to_node: u64,
        /// That leader's address.
        forwarded_to_address: String,
        /// When the raising node received the entry (Unix ms, its clock).
        received_unix_ms: u64,
        /// The deadline that passed.
        deadline_unix_ms: u64,
        /// When the alarm was raised.
        raised_unix_ms: u64,
        /// Board size the raising node had applied then.
        board_size: u64,
        /// Size of the k-of-n checkpoint in the evidence.
        checkpoint_size: u64,
        /// Trusted keys that signed that checkpoint.
        checkpoint_signers: Vec<String>,
    },
}

impl Verdict {
    /// The keys this evidence proves faulty.
    pub fn culprits(&self) -> &[String] {
        match self {
            Verdict::Equivocation { culprits, .. } | Verdict::NotAPrefix { culprits, .. } => {
                culprits
            }
            // An alarm accuses a leader (a Raft node), it does not prove a key faulty.
            Verdict::Censorship { .. } => &[],
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |names: &[String]| {
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        };
        match self {
            Verdict::Equivocation {
                origin,
                size,
                root_a,
                root_b,
                signers_a,
                signers_b,
                signed_both,
                accepted,
                culprits,
            } => {
                writeln!(f, "EQUIVOCATION on {origin} at size {size}:")?;
                writeln!(f, "  root a {root_a} signed by {}", list(signers_a))?;
                writeln!(f, "  root b {root_b} signed by {}", list(signers_b))?;
                if !signed_both.is_empty() {
                    writeln!(f, "  signed both roots: {}", list(signed_both))?;
                }
                let accepted = match accepted {
                    AcceptedSide::A => "a carries k-of-n (the accepted history)",
                    AcceptedSide::B => "b carries k-of-n (the accepted history)",
                    AcceptedSide::Neither => "neither side carries k-of-n",
                    AcceptedSide::Both => "both sides carry k-of-n",
                };
                writeln!(f, "  {accepted}")?;
                write!(f, "  culprits: {}", list(culprits))
            }
            Verdict::NotAPrefix {
                origin,
                faulty_size,
                faulty_root,
                root_at_m,
                honest_size,
                honest_root,
                honest_signers,
                culprits,
                signed_both,
            } => {
                writeln!(f, "NOT A PREFIX on {origin}:")?;
                writeln!(
                    f,
                    "  checkpoint of size {faulty_size} says root {faulty_root}, signed by {}",
                    list(culprits)
                )?;
                writeln!(
                    f,
                    "  the cosigned board (size {honest_size}, root {honest_root}, signed by {}) has root {root_at_m} at size {faulty_size}",
                    list(honest_signers)
                )?;
                if !signed_both.is_empty() {
                    writeln!(f, "  signed both histories: {}", list(signed_both))?;
                }
                write!(f, "  culprits: {}", list(culprits))
            }
            Verdict::Censorship {
                origin,
                raised_by,
                envelope_id,
                signer,
                forwarded_to_node,
                forwarded_to_address,
                received_unix_ms,
                deadline_unix_ms,
                raised_unix_ms,
                board_size,
                checkpoint_size,
                checkpoint_signers,
            } => {
                writeln!(f, "CENSORSHIP ALARM on {origin}, raised by {raised_by}:")?;
                writeln!(f, "  envelope {envelope_id} signed by {signer}")?;
                writeln!(
                    f,
                    "  forwarded to leader {forwarded_to_node} ({forwarded_to_address}); received {received_unix_ms}, deadline {deadline_unix_ms}, alarm raised {raised_unix_ms} (Unix ms)"
                )?;
                writeln!(f, "  board size when raised: {board_size}")?;
                write!(
                    f,
                    "  cosigned checkpoint of size {checkpoint_size} signed by {} (absence on the board is checked online)",
                    list(checkpoint_signers)
                )
            }
        }
    }
}

/// Every key whose signature lines may appear in evidence: nodes, then witnesses.
fn trusted_keys(policy: &CosignaturePolicy) -> impl Iterator<Item = &NoteVerifier> {
    policy.keys().iter().chain(policy.witnesses())
}

/// Splits a parsed note into its text and its signature lines (each with its `\n`).
fn signature_lines(note: &str) -> Option<(&str, Vec<&str>)> {
    let (text, block) = note.rsplit_once("\n\n")?;
    Some((text, block.split_inclusive('\n').collect()))
}

/// `note` reduced to its valid signature lines by trusted keys (nodes or witnesses),
/// each key once, in the note's order: the form evidence requires. Fails if the note
/// does not parse, or no line is a valid trusted signature.
pub fn canonical_note(note: &str, policy: &CosignaturePolicy) -> Result<String, crate::Error> {
    let signed = SignedCheckpoint::parse(note)?;
    let reencoded = signed.to_note();
    let Some((text, lines)) = signature_lines(&reencoded) else {
        return Err(crate::Error::MalformedNote("no signature block".into()));
    };
    let mut kept = String::new();
    let mut seen = BTreeSet::new();
    for line in lines {
        // A note of one line: parse and check it alone.
        let Ok(single) = SignedCheckpoint::parse(&format!("{text}\n\n{line}")) else {
            continue;
        };
        let Some(key) = trusted_keys(policy).find(|k| single.is_signed_by(k)) else {
            continue;
        };
        if seen.insert(key.name().to_string()) {
            kept.push_str(line);
        }
    }
    if kept.is_empty() {
        return Err(crate::Error::NotEnoughCosignatures {
            valid: 0,
            required: 1,
            invalid: Vec::new(),
        });
    }
    Ok(format!("{text}\n\n{kept}"))
}

/// A note of the evidence, parsed strictly, with the names of its (all valid,
/// all trusted) signers.
struct StrictNote {
    signed: SignedCheckpoint,
    signers: Vec<String>,
}

fn parse_strict(
    which: NoteRole,
    note: &str,
    origin: &str,
    policy: &CosignaturePolicy,
) -> Result<StrictNote, EvidenceError> {
    let signed = SignedCheckpoint::parse(note)
        .map_err(|source| EvidenceError::MalformedNote { which, source })?;
    if signed.to_note() != note {
        return Err(EvidenceError::NonCanonicalNote { which });
    }
    if signed.checkpoint().origin != origin {
        return Err(EvidenceError::NoteOrigin {
            which,
            expected: origin.to_string(),
            actual: signed.checkpoint().origin.clone(),
        });
    }
    let Some((text, lines)) = signature_lines(note) else {
        return Err(EvidenceError::NonCanonicalNote { which });
    };
    let mut signers: Vec<String> = Vec::new();
    for (line, name) in lines.iter().zip(signed.signer_names()) {
        let valid_key = SignedCheckpoint::parse(&format!("{text}\n\n{line}"))
            .ok()
            .and_then(|single| trusted_keys(policy).find(|k| single.is_signed_by(k)));
        let Some(key) = valid_key else {
            return Err(EvidenceError::UntrustedSignature {
                which,
                name: name.to_string(),
            });
        };
        if signers.iter().any(|s| s == key.name()) {
            return Err(EvidenceError::DuplicateSignature {
                which,
                name: name.to_string(),
            });
        }
        signers.push(key.name().to_string());
    }
    // List signers in policy order (nodes, then witnesses) for stable verdicts.
    let signers = trusted_keys(policy)
        .filter(|k| signers.iter().any(|s| s == k.name()))
        .map(|k| k.name().to_string())
        .collect();
    Ok(StrictNote { signed, signers })
}

fn parse_hash(what: &'static str, value: &str) -> Result<Hash, EvidenceError> {
    let bad = || EvidenceError::MalformedHash {
        what,
        value: value.chars().take(80).collect(),
    };
    let hash = Hash::from_hex(value).map_err(|_| bad())?;
    // Only the canonical (lowercase) spelling, so no edit leaves the evidence intact.
    if hash.to_hex() != value {
        return Err(bad());
    }
    Ok(hash)
}

fn intersection(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|name| b.contains(name)).cloned().collect()
}

/// Checks `evidence` with nothing but `policy` (the board's origin and trusted keys)
/// and says what it proves, or precisely why it does not hold.
pub fn verify_evidence(
    evidence: &Evidence,
    policy: &CosignaturePolicy,
) -> Result<Verdict, EvidenceError> {
    if evidence.origin() != policy.origin() {
        return Err(EvidenceError::WrongOrigin {
            evidence: evidence.origin().to_string(),
            policy: policy.origin().to_string(),
        });
    }
    match evidence {
        Evidence::Equivocation { origin, a, b } => {
            let a = parse_strict(NoteRole::A, a, origin, policy)?;
            let b = parse_strict(NoteRole::B, b, origin, policy)?;
            let (cp_a, cp_b) = (a.signed.checkpoint(), b.signed.checkpoint());
            if cp_a.size != cp_b.size {
                return Err(EvidenceError::DifferentSizes {
                    a: cp_a.size.0,
                    b: cp_b.size.0,
                });
            }
            if cp_a.root == cp_b.root {
                return Err(EvidenceError::EqualRoots {
                    size: cp_a.size.0,
                    root: cp_a.root,
                });
            }
            let signed_both = intersection(&a.signers, &b.signers);
            let accepted = match (
                policy.verify(&a.signed).is_ok(),
                policy.verify(&b.signed).is_ok(),
            ) {
                (true, false) => AcceptedSide::A,
                (false, true) => AcceptedSide::B,
                (false, false) => AcceptedSide::Neither,
                (true, true) => AcceptedSide::Both,
            };
            let culprits = match accepted {
                AcceptedSide::A => b.signers.clone(),
                AcceptedSide::B => a.signers.clone(),
                AcceptedSide::Neither | AcceptedSide::Both => signed_both.clone(),
            };
            Ok(Verdict::Equivocation {
                origin: origin.clone(),
                size: cp_a.size.0,
                root_a: cp_a.root,
                root_b: cp_b.root,
                signers_a: a.signers,
                signers_b: b.signers,
                signed_both,
                accepted,
                culprits,
            })
        }
        Evidence::NotAPrefix {
            origin,
            faulty,
            honest,
            root_at_m,
            proof,
        } => {
            let faulty = parse_strict(NoteRole::Faulty, faulty, origin, policy)?;
            let honest = parse_strict(NoteRole::Honest, honest, origin, policy)?;
            policy
                .verify(&honest.signed)
                .map_err(EvidenceError::HonestNotAccepted)?;
            let (m_cp, n_cp) = (faulty.signed.checkpoint(), honest.signed.checkpoint());
            let (m, n) = (m_cp.size.0, n_cp.size.0);
            if m > n {
                return Err(EvidenceError::FaultyLarger {
                    faulty: m,
                    honest: n,
                });
            }
            let root_at_m = parse_hash("root_at_m", root_at_m)?;
            if proof.len() > MAX_PROOF_HASHES {
                return Err(EvidenceError::ProofTooLong(proof.len()));
            }
            let proof = proof
                .iter()
                .map(|h| parse_hash("a consistency proof hash", h))
                .collect::<Result<Vec<_>, _>>()?;
            verify_consistency(
                &Blake3Hasher,
                TreeSize(m),
                TreeSize(n),
                &root_at_m,
                &n_cp.root,
                &proof,
            )
            .map_err(|source| EvidenceError::ProofFails { m, n, source })?;
            if root_at_m == m_cp.root {
                return Err(EvidenceError::IsAPrefix {
                    size: m,
                    root: root_at_m,
                });
            }
            let signed_both = intersection(&faulty.signers, &honest.signers);
            Ok(Verdict::NotAPrefix {
                origin: origin.clone(),
                faulty_size: m,
                faulty_root: m_cp.root,
                root_at_m,
                honest_size: n,
                honest_root: n_cp.root,
                honest_signers: honest.signers,
                culprits: faulty.signers,
                signed_both,
            })
        }
        Evidence::Censorship {
            origin,
            alarm,
            checkpoint,
        } => {
            let alarm = decode_alarm(alarm)?;
            let check = verify_alarm(&alarm, policy).map_err(EvidenceError::AlarmRejected)?;
            let checkpoint = parse_strict(NoteRole::Checkpoint, checkpoint, origin, policy)?;
            policy
                .verify(&checkpoint.signed)
                .map_err(EvidenceError::CheckpointNotAccepted)?;
            let size = checkpoint.signed.checkpoint().size.0;
            let statement = check.statement;
            if size < statement.board_size {
                return Err(EvidenceError::CheckpointTooOld {
                    checkpoint: size,
                    alarm: statement.board_size,
                });
            }
            Ok(Verdict::Censorship {
                origin: origin.clone(),
                raised_by: check.raised_by.name().to_string(),
                envelope_id: check.envelope.id(),
                signer: hex::encode(check.envelope.signer().as_bytes()),
                forwarded_to_node: statement.forwarded_to_node,
                forwarded_to_address: statement.forwarded_to_address,
                received_unix_ms: statement.received_unix_ms,
                deadline_unix_ms: statement.deadline_unix_ms,
                raised_unix_ms: statement.raised_unix_ms,
                board_size: statement.board_size,
                checkpoint_size: size,
                checkpoint_signers: checkpoint.signers,
            })
        }
    }
}
