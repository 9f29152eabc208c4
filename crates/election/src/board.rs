//! Reading an election from the board and posting entries to it.
//!
//! Every step of the election reads the whole board once ([`ElectionView::fetch`]) and
//! derives what it needs from the admitted entries: the board already enforced the rules
//! (phase order, signers, duplicates), so the view only has to find things.

use std::time::Duration;

use bboard_ballot::dkg::{KeySet, Threshold};
use bboard_ballot::BallotError;
use bboard_client::{AppendResult, BoardClient};
use bboard_core::election::{tracking_code_of, TRACKING_CODE_LEN};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::LeafRecord;
use bboard_core::pb::{self, entry_body::Kind, Phase};
use ed25519_dalek::SigningKey;

use crate::{Error, Result};

/// How long a reader waits for a node to catch up with an entry it was told about.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Builds an entry body for `election_id`, stamped with the submitter's clock.
pub fn entry(election_id: &str, kind: Kind) -> pb::EntryBody {
    pb::EntryBody {
        election_id: election_id.to_string(),
        created_unix_ms: bboard_util::clock::now_unix_ms(),
        kind: Some(kind),
    }
}

/// Signs `kind` for `election_id` with `key`.
pub fn sign(key: &SigningKey, election_id: &str, kind: Kind) -> SignedEnvelope {
    SignedEnvelope::sign_body(&entry(election_id, kind), key)
}

/// Appends a signed envelope; `what` names the entry in errors.
pub async fn submit(
    client: &BoardClient,
    envelope: &SignedEnvelope,
    what: &str,
) -> Result<AppendResult> {
    client
        .append(envelope)
        .await
        .map_err(|source| Error::Append {
            what: what.to_string(),
            source: Box::new(source),
        })
}

/// Signs `kind` for `election_id` with `key` and appends it; `what` names the entry in
/// errors.
pub async fn post(
    client: &BoardClient,
    key: &SigningKey,
    election_id: &str,
    kind: Kind,
    what: &str,
) -> Result<AppendResult> {
    submit(client, &sign(key, election_id, kind), what).await
}

/// One admitted entry of the election (or a board-level key registration).
#[derive(Clone, Debug)]
pub struct Posted {
    /// The signer's public key.
    pub signer: [u8; 32],
    /// The decoded leaf.
    pub record: LeafRecord,
    /// Its decoded body.
    pub body: pb::EntryBody,
}

impl Posted {
    /// The entry kind (every admitted body has one).
    pub fn kind(&self) -> Option<&Kind> {
        self.body.kind.as_ref()
    }
}

/// A message that is the body of one entry kind, so that the entries of a kind can be
/// picked by type ([`ElectionView::of_kind`], [`ElectionView::messages`]).
pub trait EntryKind: 'static {
    /// The message, if `kind` is of this kind.
    fn of(kind: &Kind) -> Option<&Self>;
}

/// Implements [`EntryKind`] for the message type of each `Kind` variant named.
macro_rules! entry_kinds {
    ($($variant:ident => $message:ty),* $(,)?) => {$(
        impl EntryKind for $message {
            fn of(kind: &Kind) -> Option<&Self> {
                match kind {
                    Kind::$variant(message) => Some(message),
                    _ => None,
                }
            }
        }
    )*};
}

entry_kinds! {
    Genesis => pb::BoardGenesis,
    RegisterKey => pb::RegisterKey,
    RevokeKey => pb::RevokeKey,
    Manifest => pb::ElectionManifest,
    PhaseChange => pb::PhaseChange,
    DkgCommitment => pb::DkgCommitment,
    DkgPublicInfo => pb::DkgPublicInfo,
    DkgSecretShare => pb::DkgSecretShare,
    JointKey => pb::JointKey,
    Ballot => pb::Ballot,
    SpoiledBallot => pb::SpoiledBallot,
    PrecinctProtocol => pb::PrecinctProtocol,
    DecryptionShare => pb::DecryptionShare,
    Result => pb::ElectionResult,
    CheckpointCosignatures => pb::CheckpointCosignatures,
    Note => pb::Note,
}

/// An election as read from the board.
#[derive(Clone, Debug)]
pub struct ElectionView {
    /// The election id.
    pub election_id: String,
    /// Every leaf of the board, verbatim, for auditors.
    pub leaves: Vec<Vec<u8>>,
    /// The election's entries and all key registrations, in board order.
    pub entries: Vec<Posted>,
    /// The election's manifest.
    pub manifest: pb::ElectionManifest,
    /// Key registrations for other elections (election id, registration), so that a
    /// key registered elsewhere is named as such rather than as unknown.
    pub registered_elsewhere: Vec<(String, pb::RegisterKey)>,
}

impl ElectionView {
    /// Reads the whole board (at least `min_size` leaves: waits briefly for a lagging
    /// node) and keeps what concerns `election_id`.
    pub async fn fetch(client: &BoardClient, election_id: &str, min_size: u64) -> Result<Self> {
        let started = std::time::Instant::now();
        let entries = loop {
            let entries = client
                .get_entries(0, u64::MAX)
                .await
                .map_err(|e| Error::ReadBoard(Box::new(e)))?;
            if entries.len() as u64 >= min_size || started.elapsed() > CATCH_UP {
                break entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut leaves = Vec::with_capacity(entries.len());
        let mut mine = Vec::new();
        let mut registered_elsewhere = Vec::new();
        for entry in entries {
            let body = entry.leaf.envelope.body();
            leaves.push(entry.leaf_data);
            let Ok(body) = body else { continue };
            let registration = matches!(body.kind, Some(Kind::RegisterKey(_)));
            if let (false, Some(Kind::RegisterKey(r))) = (
                body.election_id == election_id || body.election_id.is_empty(),
                &body.kind,
            ) {
                registered_elsewhere.push((body.election_id.clone(), r.clone()));
            }
            if body.election_id == election_id || (registration && body.election_id.is_empty()) {
                mine.push(Posted {
                    signer: *entry.leaf.envelope.signer().as_bytes(),
                    record: entry.leaf,
                    body,
                });
            }
        }
        let manifest = mine
            .iter()
            .find_map(|p| p.kind().and_then(pb::ElectionManifest::of).cloned())
            .ok_or_else(|| Error::NoManifest {
                election_id: election_id.to_string(),
            })?;
        Ok(ElectionView {
            election_id: election_id.to_string(),
            leaves,
            entries: mine,
            manifest,
            registered_elsewhere,
        })
    }

    /// The entries of kind `T` posted so far, in board order, with their leaf and
    /// signer: `view.of_kind::<pb::DkgCommitment>()`.
    pub fn of_kind<T: EntryKind>(&self) -> impl Iterator<Item = (&Posted, &T)> {
        self.entries
            .iter()
            .filter_map(|p| p.kind().and_then(T::of).map(|t| (p, t)))
    }

    /// The messages of kind `T` posted so far, in board order:
    /// `view.messages::<pb::DkgPublicInfo>()`.
    pub fn messages<T: EntryKind>(&self) -> impl Iterator<Item = &T> {
        self.of_kind::<T>().map(|(_, t)| t)
    }

    /// The current phase (the last admitted phase change; `Setup` before any).
    pub fn phase(&self) -> Phase {
        self.messages::<pb::PhaseChange>()
            .last()
            .map_or(Phase::Setup, |c| {
                Phase::try_from(c.phase).unwrap_or(Phase::Unspecified)
            })
    }

    /// Fails unless the election is in `phase`.
    pub fn require_phase(&self, phase: Phase, doing: &str) -> Result<()> {
        let current = self.phase();
        if current != phase {
            return Err(Error::WrongPhase {
                election_id: self.election_id.clone(),
                doing: doing.to_string(),
                current,
                needed: phase,
            });
        }
        Ok(())
    }

    /// k of n of the manifest.
    pub fn threshold(&self) -> Result<Threshold> {
        Threshold::of_manifest(&self.manifest).map_err(|source| Error::Crypto {
            doing: "the manifest's threshold".to_string(),
            source: Box::new(source),
        })
    }

    /// The manifest index of the trustee whose signing key is `public_key`.
    pub fn trustee_index(&self, public_key: &[u8; 32]) -> Result<u32> {
        let position = self
            .manifest
            .trustees
            .iter()
            .position(|t| t.signing_key == public_key)
            .ok_or_else(|| Error::NotATrustee {
                key: hex::encode(public_key),
                election_id: self.election_id.clone(),
            })?;
        u32::try_from(position).map_err(|_| Error::IndexOverflow {
            what: "trustee",
            index: position,
        })
    }

    /// Trustee `index` for people: its manifest name and index (`CEC (#0)`).
    pub fn trustee_name(&self, index: u32) -> String {
        match self.manifest.trustees.get(index as usize) {
            Some(t) => format!("{} (#{index})", t.name),
            None => format!("#{index}"),
        }
    }

    /// `doing` failed in election cryptography: [`Error::CeremonyIncomplete`] naming
    /// the trustees by manifest name when a key-ceremony round misses their messages,
    /// [`Error::Crypto`] otherwise.
    pub fn crypto_error(&self, doing: impl Into<String>, source: BallotError) -> Error {
        match source {
            BallotError::MissingDkgMessages { round, missing } => Error::CeremonyIncomplete {
                round,
                missing: missing
                    .into_iter()
                    .map(|i| {
                        u32::try_from(i).map_or_else(|_| format!("#{i}"), |i| self.trustee_name(i))
                    })
                    .collect(),
            },
            source => Error::Crypto {
                doing: doing.into(),
                source: Box::new(source),
            },
        }
    }

    /// The posted joint key, checked against the manifest's threshold.
    pub fn key_set(&self) -> Result<Option<KeySet>> {
        let Some(joint) = self.messages::<pb::JointKey>().next() else {
            return Ok(None);
        };
        KeySet::from_joint_key(self.threshold()?, joint)
            .map(Some)
            .map_err(|source| Error::Crypto {
                doing: "the joint key on the board does not parse".to_string(),
                source: Box::new(source),
            })
    }

    /// The posted joint key; an error before the key ceremony is complete.
    pub fn require_key_set(&self) -> Result<KeySet> {
        self.key_set()?.ok_or_else(|| Error::NoJointKey {
            election_id: self.election_id.clone(),
        })
    }

    /// The latest registration of `public_key`: role and precinct.
    pub fn registration(&self, public_key: &[u8; 32]) -> Option<&pb::RegisterKey> {
        self.messages::<pb::RegisterKey>()
            .filter(|r| r.public_key == public_key)
            .last()
    }

    /// The precinct `public_key` is registered to with `role`.
    pub fn precinct_of(&self, public_key: &[u8; 32], role: pb::Role) -> Result<String> {
        match self.registration(public_key) {
            Some(r) if r.role == role as i32 && !r.precinct_id.is_empty() => {
                Ok(r.precinct_id.clone())
            }
            Some(r) => Err(Error::WrongRole {
                key: hex::encode(public_key),
                registered: pb::Role::try_from(r.role).map_or("?", |r| r.as_str_name()),
                precinct: r.precinct_id.clone(),
                wanted: role.as_str_name(),
            }),
            None => Err(Error::KeyNotRegistered {
                key: hex::encode(public_key),
                election_id: self.election_id.clone(),
                elsewhere: self
                    .registered_elsewhere
                    .iter()
                    .filter(|(_, r)| r.public_key == public_key)
                    .map(|(election, r)| {
                        format!(
                            "election {election:?} as {}",
                            pb::Role::try_from(r.role).map_or("?", |r| r.as_str_name())
                        )
                    })
                    .collect(),
            }),
        }
    }

    /// The tracking code of `terminal`'s last ballot or spoiled ballot (32 zero bytes
    /// before its first one): the chain head its next ballot must name.
    pub fn chain_head(&self, terminal: &[u8; 32]) -> [u8; TRACKING_CODE_LEN] {
        self.entries
            .iter()
            .rev()
            .filter(|p| &p.signer == terminal)
            .find_map(|p| tracking_code_of(&p.record))
            .unwrap_or([0; TRACKING_CODE_LEN])
    }

    /// Number of leaves read (for waiting on a lagging node next time).
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }
}
