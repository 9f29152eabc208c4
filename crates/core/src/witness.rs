//! The decision logic of an independent witness, in the spirit of
//! [C2SP tlog-witness](https://c2sp.org/tlog-witness).
//!
//! A witness remembers, per board origin, the last checkpoint it cosigned (size and
//! root). It cosigns a new checkpoint only if
//!
//! 1. the board's nodes signed it with their k-of-n policy (a witness never vouches
//!    for something the log itself did not sign);
//! 2. the caller's `old_size` is the size the witness last cosigned (else
//!    [`WitnessRefusal::Conflict`], tlog-witness's `409`, telling the caller which
//!    size to prove from);
//! 3. a consistency proof leads from the witnessed `(size, root)` to the new
//!    checkpoint, so the new history extends the old one;
//! 4. it never goes back (a smaller size) and never cosigns two roots for one size.
//!
//! Together these make a witness a fork detector: if a cluster (or a k-of-n
//! coalition of its nodes) ever shows two histories, at most one of them gets this
//! witness's cosignature, and clients requiring witness cosignatures
//! ([`CosignaturePolicy::with_witnesses`]) accept only that one.
//!
//! This module is pure: [`Witness::add_checkpoint`] takes the current
//! [`WitnessState`] and returns the new one. **The caller must persist the new state
//! durably (write, fsync, rename) before it hands out the cosigned note**, and must
//! serialise calls (read state → `add_checkpoint` → persist) so two requests cannot
//! both start from the same old state: otherwise a crash or a race could let the
//! witness cosign two roots for one size. The cosignature is an ordinary signed-note
//! Ed25519 line by the witness's [`NoteSigner`].

use std::collections::BTreeMap;

use bboard_merkle::{verify_consistency, Blake3Hasher, Hash, ProofError, TreeHasher, TreeSize};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CosignaturePolicy, NoteSigner, SignedCheckpoint, MAX_NOTE_SIGNATURES};
use crate::receipt::MAX_PROOF_HASHES;

/// An `add-checkpoint` request of C2SP tlog-witness: the size the caller proves from,
/// the consistency proof, and the signed checkpoint. Its body is
/// `old <size>\n` + one standard-base64 proof hash per line + `\n` + the note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// Size the witness is believed to have cosigned last.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        use base64::Engine as _;
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&base64::engine::general_purpose::STANDARD.encode(hash.as_bytes()));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }

    /// Parses a request body; the error says what is wrong.
    ///
    /// # Errors
    ///
    /// A message naming the malformed part.
    pub fn parse(body: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let (head, note) = body
            .split_once("\n\n")
            .ok_or("missing the blank line between the proof and the checkpoint")?;
        let mut lines = head.split('\n');
        let old_size = lines
            .next()
            .and_then(|line| line.strip_prefix("old "))
            .ok_or("the first line must be `old <size>`")?;
        let old_size = old_size
            .parse::<u64>()
            .map_err(|e| format!("old size {old_size:?}: {e}"))?;
        let proof = lines
            .enumerate()
            .map(|(i, line)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .map_err(|e| format!("proof hash {}: {e}", i + 1))?;
                Hash::from_slice(&bytes).map_err(|e| format!("proof hash {}: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if proof.len() > MAX_PROOF_HASHES {
            return Err(format!(
                "proof has {} hashes, at most {MAX_PROOF_HASHES}",
                proof.len()
            ));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: note.to_string(),
        })
    }
}

/// Version of the witness state JSON written by this code.
pub const WITNESS_STATE_VERSION: u32 = 1;

/// What a witness remembers about one board: the last checkpoint it cosigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Tree size of the last cosigned checkpoint.
    pub size: u64,
    /// Its root, lowercase hex in JSON.
    #[serde(with = "hex_hash")]
    pub root: Hash,
}

/// Everything a witness persists: one [`LogState`] per origin it has cosigned.
///
/// JSON: `{"version":1,"logs":{"<origin>":{"size":N,"root":"<hex>"}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessState {
    /// Format version, [`WITNESS_STATE_VERSION`].
    pub version: u32,
    /// Per origin, the last cosigned checkpoint. Absent: nothing cosigned yet (the
    /// witness then starts from the empty tree, size 0).
    pub logs: BTreeMap<String, LogState>,
}

impl Default for WitnessState {
    fn default() -> Self {
        WitnessState {
            version: WITNESS_STATE_VERSION,
            logs: BTreeMap::new(),
        }
    }
}

mod hex_hash {
    use bboard_merkle::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Why the witness did not cosign. [`WitnessRefusal::http_status`] gives the
/// tlog-witness status code for an HTTP front end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessRefusal {
    /// The note does not parse as a signed checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(crate::Error),
    /// The witness does not witness this origin.
    #[error("unknown log {0:?}: this witness does not witness it")]
    UnknownLog(String),
    /// The checkpoint does not carry the log's k-of-n node signatures.
    #[error("the log's nodes did not sign this checkpoint as their policy requires: {0}")]
    NotSignedByLog(crate::Error),
    /// The caller proved from another size than the one the witness knows.
    #[error("conflict: the last checkpoint I cosigned has size {known_size}, the proof is from size {old_size}")]
    Conflict {
        /// Size of the last cosigned checkpoint: prove from this one.
        known_size: u64,
        /// The caller's `old_size`.
        old_size: u64,
    },
    /// The checkpoint is older than what the witness cosigned (replay or rollback).
    #[error("refusing to go back: I cosigned size {known_size}, this checkpoint has size {size}")]
    Rollback {
        /// Size of the last cosigned checkpoint.
        known_size: u64,
        /// Size of the offered checkpoint.
        size: u64,
    },
    /// A different root for a size the witness already cosigned.
    #[error(
        "fork: I cosigned root {cosigned_root} at size {size}, this checkpoint says {claimed_root}"
    )]
    Fork {
        /// The size.
        size: u64,
        /// The root the witness cosigned.
        cosigned_root: Hash,
        /// The root of the offered checkpoint.
        claimed_root: Hash,
    },
    /// The consistency proof does not lead from the witnessed checkpoint to this one.
    #[error("fork: the consistency proof from the root I cosigned ({known_root} at size {known_size}) to {root} at size {size} does not verify: {reason}")]
    InconsistentProof {
        /// Size of the last cosigned checkpoint.
        known_size: u64,
        /// Its root.
        known_root: Hash,
        /// Size of the offered checkpoint.
        size: u64,
        /// Its root.
        root: Hash,
        /// Why the proof fails (boxed: keeps the refusal small).
        reason: Box<ProofError>,
    },
    /// The proof is longer than any consistency proof can be.
    #[error("consistency proof has {0} hashes, at most {MAX_PROOF_HASHES} are possible")]
    ProofTooLong(usize),
    /// The note already has as many signature lines as a note may have.
    #[error(
        "the note already carries {MAX_NOTE_SIGNATURES} signatures, no room for a cosignature"
    )]
    TooManySignatures,
    /// Signing failed (should not happen with a valid key).
    #[error("cannot sign: {0}")]
    Signing(crate::Error),
}

impl WitnessRefusal {
    /// The HTTP status a tlog-witness front end answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            WitnessRefusal::Malformed(_)
            | WitnessRefusal::Rollback { .. }
            | WitnessRefusal::ProofTooLong(_)
            | WitnessRefusal::TooManySignatures => 400,
            WitnessRefusal::NotSignedByLog(_) => 403,
            WitnessRefusal::UnknownLog(_) => 404,
            WitnessRefusal::Conflict { .. } | WitnessRefusal::Fork { .. } => 409,
            WitnessRefusal::InconsistentProof { .. } => 422,
            WitnessRefusal::Signing(_) => 500,
        }
    }
}

/// A successful cosignature: the state to persist first, then the note to return.
#[derive(Clone, Debug)]
pub struct Cosigned {
    /// The new state. Persist it durably **before** returning `note`.
    pub state: WitnessState,
    /// The board origin.
    pub origin: String,
    /// The new [`LogState`] of that origin (also in `state`).
    pub log: LogState,
    /// The checkpoint note with the witness's signature line added.
    pub note: String,
    /// Just the witness's signature line (with its `\n`), as tlog-witness returns it.
    pub cosignature: String,
}

/// A witness: its signing key and, per origin it witnesses, the log's node policy.
#[derive(Clone, Debug)]
pub struct Witness {
    signer: NoteSigner,
    logs: BTreeMap<String, CosignaturePolicy>,
}

impl Witness {
    /// A witness signing as `signer` (its key name is the witness's name) for the
    /// boards of `logs` (one node policy per origin; a later policy for the same
    /// origin replaces an earlier one).
    pub fn new(signer: NoteSigner, logs: impl IntoIterator<Item = CosignaturePolicy>) -> Self {
        Witness {
            signer,
            logs: logs
                .into_iter()
                .map(|policy| (policy.origin().to_string(), policy))
                .collect(),
        }
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The witness's signing key.
    pub fn signer(&self) -> &NoteSigner {
        &self.signer
    }

    /// The node policy of `origin`, if witnessed.
    pub fn log_policy(&self, origin: &str) -> Option<&CosignaturePolicy> {
        self.logs.get(origin)
    }

    /// Decides whether to cosign `signed_checkpoint` given the current `state`, a
    /// claimed `old_size` and the consistency proof from `old_size` to the
    /// checkpoint's size. See the module documentation for the rules and for what
    /// the caller must do with the result (persist, then answer).
    pub fn add_checkpoint(
        &self,
        state: &WitnessState,
        old_size: u64,
        proof: &[Hash],
        signed_checkpoint: &str,
    ) -> Result<Cosigned, WitnessRefusal> {
        let mut signed =
            SignedCheckpoint::parse(signed_checkpoint).map_err(WitnessRefusal::Malformed)?;
        let checkpoint = signed.checkpoint().clone();
        let policy = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| WitnessRefusal::UnknownLog(checkpoint.origin.clone()))?;
        policy
            .verify(&signed)
            .map_err(WitnessRefusal::NotSignedByLog)?;
        // Nothing cosigned yet: the witness starts from the empty tree.
        let known = state
            .logs
            .get(&checkpoint.origin)
            .copied()
            .unwrap_or(LogState {
                size: 0,
                root: Blake3Hasher.empty_root(),
            });
        if old_size != known.size {
            return Err(WitnessRefusal::Conflict {
                known_size: known.size,
                old_size,
            });
        }
        let size = checkpoint.size.0;
        if size < known.size {
            return Err(WitnessRefusal::Rollback {
                known_size: known.size,
                size,
            });
        }
        if size == known.size && checkpoint.root != known.root {
            return Err(WitnessRefusal::Fork {
                size,
                cosigned_root: known.root,
                claimed_root: checkpoint.root,
            });
        }
        if proof.len() > MAX_PROOF_HASHES {
            return Err(WitnessRefusal::ProofTooLong(proof.len()));
        }
        verify_consistency(
            &Blake3Hasher,
            TreeSize(known.size),
            checkpoint.size,
            &known.root,
            &checkpoint.root,
            proof,
        )
        .map_err(|reason| WitnessRefusal::InconsistentProof {
            known_size: known.size,
            known_root: known.root,
            size,
            root: checkpoint.root,
            reason: Box::new(reason),
        })?;
        // add_signature replaces an earlier line of ours, so only a note without one
        // at the limit has no room.
        let ours = signed.signer_names().contains(&self.signer.name());
        if !ours && signed.signer_names().len() >= MAX_NOTE_SIGNATURES {
            return Err(WitnessRefusal::TooManySignatures);
        }
        signed
            .add_signature(&self.signer)
            .map_err(WitnessRefusal::Signing)?;
        let note = signed.to_note();
        // add_signature appends our line last.
        let cosignature = note
            .trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .map(|line| format!("{line}\n"))
            .unwrap_or_default();
        let log = LogState {
            size,
            root: checkpoint.root,
        };
        let mut new_state = state.clone();
        new_state.version = WITNESS_STATE_VERSION;
        new_state.logs.insert(checkpoint.origin.clone(), log);
        Ok(Cosigned {
            state: new_state,
            origin: checkpoint.origin,
            log,
            note,
            cosignature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_checkpoint_body_round_trips() {
        let proof = vec![
            Hash::from_slice(&[1; 32]).unwrap(),
            Hash::from_slice(&[2; 32]).unwrap(),
        ];
        let note = "o\n5\nroot\n\n— n sig\n";
        let request = AddCheckpoint {
            old_size: 3,
            proof,
            note: note.into(),
        };
        let body = request.to_body();
        assert!(body.starts_with("old 3\nAQEB"), "{body}");
        assert_eq!(AddCheckpoint::parse(&body).unwrap(), request);
        let empty = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            note: note.into(),
        };
        assert_eq!(AddCheckpoint::parse(&empty.to_body()).unwrap(), empty);
    }

    #[test]
    fn malformed_add_checkpoint_bodies_are_refused_with_a_reason() {
        for (body, reason) in [
            ("old 1\n", "blank line"),
            ("new 1\n\nnote", "old <size>"),
            ("old x\n\nnote", "old size"),
            ("old 1\n!!!\n\nnote", "proof hash 1"),
            ("old 1\nAQEB\n\nnote", "proof hash 1"),
        ] {
            let error = AddCheckpoint::parse(body).unwrap_err();
            assert!(error.contains(reason), "{body:?}: {error}");
        }
    }
}
