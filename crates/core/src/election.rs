//! Election rules on the board: phases, the key ceremony's order, ballot proofs,
//! tracking-code chains and precinct scope.
//!
//! [`crate::board`] checks signature, registration, role and election scope of every
//! entry, then calls [`check_entry`] here. The rules, all deterministic:
//!
//! - An `ElectionManifest` creates an election (a non-empty, unused `election_id`, a
//!   manifest the `ballot` crate validates) in phase `Setup`.
//! - `PhaseChange` moves exactly one phase forward:
//!   `Setup → KeyCeremony → Open → Closed → Tallying → Published`. `Open` needs the
//!   election's `JointKey`; `Published` needs a result for every precinct and contest.
//! - Key ceremony (`KeyCeremony` only), signed by the trustee the entry names (its
//!   manifest signing key): round 1 `DkgCommitment`; round 2 `DkgPublicInfo` once every
//!   commitment is posted, and it must open its own commitment; round 3
//!   `DkgSecretShare` once every public info is posted, one per ordered pair of
//!   trustees. `JointKey` is admitted only when everything is posted and it equals the
//!   key anyone re-derives from the posted messages.
//! - `Ballot` and `SpoiledBallot` (`Open` only) come from a terminal of the ballot's
//!   precinct, carry valid proofs under the joint key, and continue the terminal's
//!   tracking-code chain: `previous_tracking_code` must be the terminal's last code
//!   (32 zero bytes for its first ballot). A spoiled ballot must also open to the
//!   selections it publishes.
//! - `PrecinctProtocol` (`Closed` or `Tallying`) comes from that precinct's
//!   commission, one per precinct, shaped like the manifest's contests.
//! - `DecryptionShare` (`Tallying` only) comes from the trustee it names, one per
//!   trustee, precinct and contest. Its proofs are checked by `verify-election`
//!   ([`crate::audit`]), which has the tally at hand.
//! - `ElectionResult` (`Tallying` only), one per precinct and contest, shaped like the
//!   manifest. That it equals the decrypted tally is checked by `verify-election`.
//!
//! The rules keep their state in the board's key-value state ([`Effect::PutState`]);
//! the keys are defined here. Tracking codes themselves are [`crate::tracking`].
//!
//! This file is longer than the codebase's ~800-line guide because the rules are one
//! `match` over entry kinds sharing one phase and scope context (`Rules`); split
//! across files, a reader could no longer see every phase rule side by side.

use std::collections::BTreeSet;

use bboard_ballot::dkg::{KeySet, Threshold};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::board::{reject, BoardView, Effect, KeyGrant, PublicKeyBytes, RejectCode, Rejection};
use crate::envelope::{EnvelopeId, SignedEnvelope};
use crate::leaf::{decode_leaf_known, LeafRecord};
use crate::pb::{self, entry_body::Kind, Phase};
pub use crate::tracking::{
    envelope_tracking_code, parse_short_tracking_code, short_tracking_code, tracking_code,
    tracking_code_of, TRACKING_CODE_LEN,
};

/// Read access to the rules' key-value state (the batch overlay, then the store).
pub trait StateRead {
    /// Error of the underlying store.
    type Error;
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
}

struct ViewState<'v, V>(&'v V);

impl<V: BoardView> StateRead for ViewState<'_, V> {
    type Error = V::Error;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, V::Error> {
        self.0.state(key)
    }
}

fn state_key(kind: &str, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + 1 + id.len());
    key.extend_from_slice(kind.as_bytes());
    key.push(b'/');
    key.extend_from_slice(id);
    key
}

fn status_key(election_id: &str) -> Vec<u8> {
    state_key("election", election_id.as_bytes())
}

fn manifest_key(election_id: &str) -> Vec<u8> {
    state_key("manifest", election_id.as_bytes())
}

fn joint_key_key(election_id: &str) -> Vec<u8> {
    state_key("joint-key", election_id.as_bytes())
}

fn head_key(terminal: &PublicKeyBytes) -> Vec<u8> {
    state_key("tracking-head", terminal)
}

/// Key of the rules' state under which the leaf index of the ballot with this
/// tracking code is kept (the ballot tracker looks codes up by it). A prefix of it
/// (the first bytes of the code) finds the ballots of a short code.
pub fn tracking_index_key(code_prefix: &[u8]) -> Vec<u8> {
    state_key("tracking", code_prefix)
}

/// Where an election stands: its phase and what has been posted for it. Stored as
/// JSON under `election/<election_id>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionStatus {
    /// Current phase (`pb::Phase` as i32).
    pub phase: i32,
    /// Leaf index of the manifest.
    pub manifest_index: u64,
    /// Round-1 commitments, by trustee index (`pb::DkgCommitment` encoded).
    pub commitments: Vec<Option<Vec<u8>>>,
    /// Round-2 public infos, by trustee index (`pb::DkgPublicInfo` encoded).
    pub public_infos: Vec<Option<Vec<u8>>>,
    /// Round-3 shares posted, as (from, to).
    pub shares_posted: BTreeSet<(u32, u32)>,
    /// Leaf index of the joint key, once posted.
    pub joint_key_index: Option<u64>,
    /// Precincts with a paper protocol.
    pub protocols: BTreeSet<String>,
    /// Decryption shares posted, as (trustee, precinct, contest).
    pub decryption_shares: BTreeSet<(u32, String, String)>,
    /// Results posted, as (precinct, contest).
    pub results: BTreeSet<(String, String)>,
}

impl ElectionStatus {
    /// The phase as the protobuf enum.
    pub fn phase(&self) -> Phase {
        Phase::try_from(self.phase).unwrap_or(Phase::Unspecified)
    }
}

/// An election as the rules see it.
#[derive(Clone, Debug)]
pub struct Election {
    /// Its manifest.
    pub manifest: pb::ElectionManifest,
    /// Its status.
    pub status: ElectionStatus,
    /// Its key set, once the joint key is posted.
    pub key_set: Option<KeySet>,
}

fn corrupt_state(what: &str) -> Rejection {
    // Only reachable if the store was edited; the node's integrity check at start
    // catches that too. Rejecting (instead of panicking) keeps every node alive.
    reject(
        RejectCode::FailedPrecondition,
        format!("board state for {what} does not decode"),
    )
}

/// Loads an election from the rules' state. `Ok(Ok(None))` if there is none.
fn load<S: StateRead>(
    state: &S,
    election_id: &str,
) -> Result<Result<Option<Election>, Rejection>, S::Error> {
    let Some(status) = state.get(&status_key(election_id))? else {
        return Ok(Ok(None));
    };
    let Ok(status) = serde_json::from_slice::<ElectionStatus>(&status) else {
        return Ok(Err(corrupt_state("election status")));
    };
    let Some(manifest) = state.get(&manifest_key(election_id))? else {
        return Ok(Err(corrupt_state("manifest")));
    };
    let Ok(manifest) = pb::ElectionManifest::decode(manifest.as_slice()) else {
        return Ok(Err(corrupt_state("manifest")));
    };
    let key_set = match state.get(&joint_key_key(election_id))? {
        None => None,
        Some(bytes) => {
            let parsed = pb::JointKey::decode(bytes.as_slice())
                .ok()
                .and_then(|joint| {
                    let threshold = Threshold::of_manifest(&manifest).ok()?;
                    KeySet::from_joint_key(threshold, &joint).ok()
                });
            match parsed {
                Some(key_set) => Some(key_set),
                None => return Ok(Err(corrupt_state("joint key"))),
            }
        }
    };
    Ok(Ok(Some(Election {
        manifest,
        status,
        key_set,
    })))
}

/// Loads an election from a board view (for servers and auditors).
///
/// # Errors
///
/// Store errors; a rejection-style message if the stored state does not decode.
pub fn load_election<V: BoardView>(
    view: &V,
    election_id: &str,
) -> Result<Result<Option<Election>, Rejection>, V::Error> {
    load(&ViewState(view), election_id)
}

/// The last tracking code of a terminal (32 zero bytes before its first ballot).
///
/// # Errors
///
/// Store errors.
pub fn tracking_head<V: BoardView>(
    view: &V,
    terminal: &PublicKeyBytes,
) -> Result<[u8; TRACKING_CODE_LEN], V::Error> {
    head(&ViewState(view), terminal)
}

fn head<S: StateRead>(
    state: &S,
    terminal: &PublicKeyBytes,
) -> Result<[u8; TRACKING_CODE_LEN], S::Error> {
    Ok(state
        .get(&head_key(terminal))?
        .and_then(|bytes| bytes.try_into().ok())
        .unwrap_or([0; TRACKING_CODE_LEN]))
}

/// A leaf decoded and, for ballots, proof-checked ahead of the ordered rules, so a
/// node can do this expensive part for a whole batch in parallel.
#[derive(Clone, Debug)]
pub struct Prechecked {
    /// The decoded leaf with a verified signature, or why it is not one.
    pub record: Result<LeafRecord, Rejection>,
    /// For a ballot or spoiled ballot of an election whose joint key was already on
    /// the board: the outcome of its proof checks. `None` = check in order.
    pub proofs: Option<Result<(), Rejection>>,
}

/// Decodes a leaf and, if it is a ballot of an election whose key is already fixed in
/// `view`, verifies its proofs. Pure and independent of the other leaves of the batch
/// (the manifest and the joint key never change once posted), so nodes run it in
/// parallel; the outcome is the same as checking in order.
///
/// # Errors
///
/// Store errors.
pub fn precheck<V: BoardView>(view: &V, leaf: &[u8]) -> Result<Prechecked, V::Error> {
    precheck_known(view, leaf, |_| None)
}

/// An envelope a node verified itself before proposing it: its signature, and (with
/// `proofs_verified`) everything [`precheck`] would check about it, found valid against
/// the same immutable manifest and joint key.
#[derive(Clone, Debug)]
pub struct KnownEnvelope {
    /// The verified envelope.
    pub envelope: SignedEnvelope,
    /// Its ballot proofs (if it is a ballot) were verified and hold.
    pub proofs_verified: bool,
}

/// [`precheck`] that skips what this node already verified: a leaf whose envelope is
/// byte-identical to a [`KnownEnvelope`] (`known` looks it up) is not verified again.
/// The outcome is [`precheck`]'s, since the same bytes verify the same way against the
/// same manifest and joint key; this only saves the work (every signature and ballot
/// proof verified once per node).
///
/// # Errors
///
/// Store errors.
pub fn precheck_known<V: BoardView>(
    view: &V,
    leaf: &[u8],
    known: impl FnOnce(&pb::Envelope) -> Option<KnownEnvelope>,
) -> Result<Prechecked, V::Error> {
    let mut proofs_known = false;
    let decoded = decode_leaf_known(leaf, |proto| {
        let found = known(proto)?;
        proofs_known = found.proofs_verified && found.envelope.is_encoded_as(proto);
        Some(found.envelope)
    });
    let record = match decoded {
        Ok(record) => record,
        Err(e) => {
            return Ok(Prechecked {
                record: Err(reject(RejectCode::InvalidArgument, e.to_string())),
                proofs: None,
            })
        }
    };
    let proofs = match record.envelope.body() {
        Ok(body)
            if proofs_known
                && matches!(body.kind, Some(Kind::Ballot(_) | Kind::SpoiledBallot(_))) =>
        {
            Some(Ok(()))
        }
        Ok(body) if matches!(body.kind, Some(Kind::Ballot(_) | Kind::SpoiledBallot(_))) => {
            match load_election(view, &body.election_id)? {
                Ok(Some(Election {
                    manifest,
                    key_set: Some(key_set),
                    ..
                })) => body
                    .kind
                    .as_ref()
                    .and_then(|kind| verify_ballot_proofs(&manifest, &key_set, &body, kind)),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(Prechecked {
        record: Ok(record),
        proofs,
    })
}

/// Verifies the proofs of a ballot or spoiled ballot; `None` for other kinds.
fn verify_ballot_proofs(
    manifest: &pb::ElectionManifest,
    key_set: &KeySet,
    body: &pb::EntryBody,
    kind: &Kind,
) -> Option<Result<(), Rejection>> {
    let outcome = match kind {
        Kind::Ballot(ballot) => bboard_ballot::ballot::verify_ballot(
            manifest,
            &body.election_id,
            key_set.joint_key(),
            ballot,
        ),
        Kind::SpoiledBallot(spoiled) => bboard_ballot::ballot::verify_spoiled(
            manifest,
            &body.election_id,
            key_set.joint_key(),
            spoiled,
        ),
        _ => return None,
    };
    Some(outcome.map_err(|e| reject(RejectCode::InvalidArgument, e.to_string())))
}

/// One entry as the election rules see it, after the board's generic checks.
pub(crate) struct EntryContext<'a> {
    pub body: &'a pb::EntryBody,
    pub kind: &'a Kind,
    pub grant: &'a KeyGrant,
    pub signer: &'a PublicKeyBytes,
    pub envelope_id: &'a EnvelopeId,
    pub index: u64,
    pub proofs: Option<&'a Result<(), Rejection>>,
}

type Checked = Result<Vec<Effect>, Rejection>;

fn failed(message: impl Into<String>) -> Rejection {
    reject(RejectCode::FailedPrecondition, message)
}

fn denied(message: impl Into<String>) -> Rejection {
    reject(RejectCode::PermissionDenied, message)
}

fn invalid(message: impl Into<String>) -> Rejection {
    reject(RejectCode::InvalidArgument, message)
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Unspecified => "UNSPECIFIED",
        Phase::Setup => "SETUP",
        Phase::KeyCeremony => "KEY_CEREMONY",
        Phase::Open => "OPEN",
        Phase::Closed => "CLOSED",
        Phase::Tallying => "TALLYING",
        Phase::Published => "PUBLISHED",
    }
}

fn save_status(election_id: &str, status: &ElectionStatus) -> Result<Effect, Rejection> {
    serde_json::to_vec(status)
        .map(|bytes| Effect::PutState(status_key(election_id), bytes))
        .map_err(|e| failed(format!("cannot encode election status: {e}")))
}

/// Applies the election rules to one entry. Returns the state effects to persist.
pub(crate) fn check_entry<S: StateRead>(
    state: &S,
    entry: &EntryContext<'_>,
) -> Result<Checked, S::Error> {
    let election_id = entry.body.election_id.as_str();
    if let Kind::Manifest(manifest) = entry.kind {
        return check_manifest(state, entry, manifest);
    }
    let is_election_kind = !matches!(
        entry.kind,
        Kind::Genesis(_)
            | Kind::RegisterKey(_)
            | Kind::RevokeKey(_)
            | Kind::CheckpointCosignatures(_)
            | Kind::Note(_)
            | Kind::MembershipAuthorisation(_)
    );
    let election = match load(state, election_id)? {
        Ok(election) => election,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let Some(election) = election else {
        if is_election_kind {
            return Ok(Err(failed(format!(
                "election {election_id:?} does not exist on this board (no manifest)"
            ))));
        }
        // Keys may be registered for an election before its manifest; the rules of
        // each entry kind check precinct and trustee membership when it is used.
        return Ok(Ok(Vec::new()));
    };
    let mut rules = Rules {
        entry,
        election_id,
        election,
    };
    Ok(match entry.kind {
        Kind::RegisterKey(register) => rules.register(register),
        Kind::PhaseChange(change) => rules.phase_change(change),
        Kind::DkgCommitment(commitment) => rules.dkg_commitment(commitment),
        Kind::DkgPublicInfo(info) => rules.dkg_public_info(info),
        Kind::DkgSecretShare(share) => rules.dkg_secret_share(share),
        Kind::JointKey(joint) => rules.joint_key(joint),
        Kind::Ballot(ballot) => rules.ballot(state, ballot)?,
        Kind::SpoiledBallot(spoiled) => match &spoiled.ballot {
            Some(ballot) => rules.ballot(state, ballot)?,
            None => Err(invalid("spoiled ballot has no ballot")),
        },
        Kind::PrecinctProtocol(protocol) => rules.protocol(protocol),
        Kind::DecryptionShare(share) => rules.decryption_share(share),
        Kind::Result(result) => rules.result(result),
        Kind::Manifest(_)
        | Kind::Genesis(_)
        | Kind::RevokeKey(_)
        | Kind::CheckpointCosignatures(_)
        | Kind::Note(_)
        | Kind::MembershipAuthorisation(_) => Ok(Vec::new()),
    })
}

fn check_manifest<S: StateRead>(
    state: &S,
    entry: &EntryContext<'_>,
    manifest: &pb::ElectionManifest,
) -> Result<Checked, S::Error> {
    let election_id = entry.body.election_id.as_str();
    if election_id.is_empty() {
        return Ok(Err(invalid("a manifest needs a non-empty election_id")));
    }
    if state.get(&status_key(election_id))?.is_some() {
        return Ok(Err(failed(format!(
            "election {election_id:?} already has a manifest"
        ))));
    }
    if let Err(e) = bboard_ballot::validate_manifest(manifest) {
        return Ok(Err(invalid(format!("manifest: {e}"))));
    }
    let n = manifest.trustees.len();
    let status = ElectionStatus {
        phase: Phase::Setup as i32,
        manifest_index: entry.index,
        commitments: vec![None; n],
        public_infos: vec![None; n],
        ..ElectionStatus::default()
    };
    Ok(save_status(election_id, &status).map(|effect| {
        vec![
            Effect::PutState(manifest_key(election_id), manifest.encode_to_vec()),
            effect,
        ]
    }))
}

struct Rules<'a, 'e> {
    entry: &'a EntryContext<'e>,
    election_id: &'a str,
    election: Election,
}

impl Rules<'_, '_> {
    fn phase(&self) -> Phase {
        self.election.status.phase()
    }

    fn require_phase(&self, allowed: &[Phase]) -> Result<(), Rejection> {
        let phase = self.phase();
        if allowed.contains(&phase) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|p| phase_name(*p)).collect();
        Err(failed(format!(
            "election {:?} is in phase {}; {} entries are accepted only in {}",
            self.election_id,
            phase_name(phase),
            crate::board::kind_name(self.entry.kind),
            names.join(" or ")
        )))
    }

    fn save(&self) -> Result<Effect, Rejection> {
        save_status(self.election_id, &self.election.status)
    }

    fn threshold(&self) -> Result<Threshold, Rejection> {
        Threshold::of_manifest(&self.election.manifest)
            .map_err(|e| failed(format!("manifest: {e}")))
    }

    /// The trustee index `index`, checked to be the signer's.
    fn trustee(&self, index: u32) -> Result<usize, Rejection> {
        let trustees = &self.election.manifest.trustees;
        let i = index as usize;
        let Some(trustee) = trustees.get(i) else {
            return Err(invalid(format!(
                "trustee index {index} out of range: the manifest names {} trustees",
                trustees.len()
            )));
        };
        if trustee.signing_key.as_slice() != self.entry.signer.as_slice() {
            return Err(denied(format!(
                "entry names trustee {index} ({:?}) but is signed by another key",
                trustee.name
            )));
        }
        Ok(i)
    }

    fn contest(&self, contest_id: &str) -> Result<&pb::Contest, Rejection> {
        self.election
            .manifest
            .contests
            .iter()
            .find(|c| c.contest_id == contest_id)
            .ok_or_else(|| {
                invalid(format!(
                    "contest {contest_id:?} is not in the manifest of election {:?}",
                    self.election_id
                ))
            })
    }

    fn precinct(&self, precinct_id: &str) -> Result<(), Rejection> {
        if self
            .election
            .manifest
            .precincts
            .iter()
            .any(|p| p.precinct_id == precinct_id)
        {
            Ok(())
        } else {
            Err(invalid(format!(
                "precinct {precinct_id:?} is not in the manifest of election {:?}",
                self.election_id
            )))
        }
    }

    /// Terminals and commissions act only for the precinct they are registered to.
    fn own_precinct(&self, precinct_id: &str) -> Result<(), Rejection> {
        self.precinct(precinct_id)?;
        if self.entry.grant.precinct_id != precinct_id {
            return Err(denied(format!(
                "signer is registered for precinct {:?}, entry is for precinct {precinct_id:?}",
                self.entry.grant.precinct_id
            )));
        }
        Ok(())
    }

    fn register(&mut self, register: &pb::RegisterKey) -> Checked {
        match pb::Role::try_from(register.role) {
            Ok(pb::Role::Terminal | pb::Role::PrecinctCommission) => {
                self.precinct(&register.precinct_id)?;
            }
            Ok(pb::Role::Trustee)
                if !self
                    .election
                    .manifest
                    .trustees
                    .iter()
                    .any(|t| t.signing_key == register.public_key) =>
            {
                return Err(invalid(format!(
                    "key is not a trustee signing key of election {:?}'s manifest",
                    self.election_id
                )));
            }
            _ => {}
        }
        Ok(Vec::new())
    }

    fn phase_change(&mut self, change: &pb::PhaseChange) -> Checked {
        let current = self.phase();
        let next = Phase::try_from(current as i32 + 1).unwrap_or(Phase::Unspecified);
        let wanted = Phase::try_from(change.phase).unwrap_or(Phase::Unspecified);
        if current == Phase::Published || wanted != next {
            return Err(failed(format!(
                "election {:?} is in phase {}; it can only move to the next phase{}, not to {}",
                self.election_id,
                phase_name(current),
                if current == Phase::Published {
                    String::new()
                } else {
                    format!(" ({})", phase_name(next))
                },
                phase_name(wanted)
            )));
        }
        match wanted {
            Phase::Open if self.election.key_set.is_none() => {
                return Err(failed(
                    "cannot open the election before its joint key is on the board",
                ))
            }
            Phase::Published => {
                let mut missing = Vec::new();
                for precinct in &self.election.manifest.precincts {
                    for contest in &self.election.manifest.contests {
                        let key = (precinct.precinct_id.clone(), contest.contest_id.clone());
                        if !self.election.status.results.contains(&key) {
                            missing.push(format!("{}/{}", key.0, key.1));
                        }
                    }
                }
                if !missing.is_empty() {
                    return Err(failed(format!(
                        "cannot publish: no result yet for {}",
                        missing.join(", ")
                    )));
                }
            }
            _ => {}
        }
        self.election.status.phase = wanted as i32;
        Ok(vec![self.save()?])
    }

    fn dkg_commitment(&mut self, commitment: &pb::DkgCommitment) -> Checked {
        self.require_phase(&[Phase::KeyCeremony])?;
        let i = self.trustee(commitment.trustee_index)?;
        let slot = &mut self.election.status.commitments[i];
        if slot.is_some() {
            return Err(failed(format!("trustee {i} already posted its commitment")));
        }
        *slot = Some(commitment.encode_to_vec());
        Ok(vec![self.save()?])
    }

    fn dkg_public_info(&mut self, info: &pb::DkgPublicInfo) -> Checked {
        self.require_phase(&[Phase::KeyCeremony])?;
        let i = self.trustee(info.trustee_index)?;
        let missing = missing(&self.election.status.commitments);
        if !missing.is_empty() {
            return Err(failed(format!(
                "round 2 starts when every trustee has committed; waiting for trustees {missing:?}"
            )));
        }
        if self.election.status.public_infos[i].is_some() {
            return Err(failed(format!(
                "trustee {i} already posted its public info"
            )));
        }
        let commitment = self.election.status.commitments[i]
            .as_deref()
            .and_then(|bytes| pb::DkgCommitment::decode(bytes).ok())
            .ok_or_else(|| corrupt_state("DKG commitment"))?;
        bboard_ballot::dkg::check_public_info(self.threshold()?, &commitment, info)
            .map_err(|e| invalid(format!("trustee {i}'s public info: {e}")))?;
        self.election.status.public_infos[i] = Some(info.encode_to_vec());
        Ok(vec![self.save()?])
    }

    fn dkg_secret_share(&mut self, share: &pb::DkgSecretShare) -> Checked {
        self.require_phase(&[Phase::KeyCeremony])?;
        let from = self.trustee(share.from_trustee)?;
        let n = self.election.manifest.trustees.len();
        if share.to_trustee as usize >= n || share.to_trustee as usize == from {
            return Err(invalid(format!(
                "share recipient {} must be another trustee (0..{n}, not {from})",
                share.to_trustee
            )));
        }
        let missing = missing(&self.election.status.public_infos);
        if !missing.is_empty() {
            return Err(failed(format!(
                "round 3 starts when every trustee has posted its public info; waiting for \
                 trustees {missing:?}"
            )));
        }
        let sealed_len = bboard_ballot::transport::sealed_share_len(self.election_id);
        if share.encrypted_share.len() != sealed_len {
            return Err(invalid(format!(
                "encrypted share must be a sealed box of {sealed_len} bytes, got {}",
                share.encrypted_share.len()
            )));
        }
        if !self
            .election
            .status
            .shares_posted
            .insert((share.from_trustee, share.to_trustee))
        {
            return Err(failed(format!(
                "trustee {} already posted its share for trustee {}",
                share.from_trustee, share.to_trustee
            )));
        }
        Ok(vec![self.save()?])
    }

    fn joint_key(&mut self, joint: &pb::JointKey) -> Checked {
        self.require_phase(&[Phase::KeyCeremony])?;
        if self.election.key_set.is_some() {
            return Err(failed("the election already has a joint key"));
        }
        let status = &self.election.status;
        let n = self.election.manifest.trustees.len();
        let expected_shares = n * (n - 1);
        if status.shares_posted.len() != expected_shares {
            return Err(failed(format!(
                "the key ceremony is not complete: {} of {expected_shares} secret shares posted",
                status.shares_posted.len()
            )));
        }
        let decode_all = |slots: &[Option<Vec<u8>>]| -> Option<Vec<Vec<u8>>> {
            slots.iter().map(Clone::clone).collect()
        };
        let (Some(commitments), Some(infos)) = (
            decode_all(&status.commitments),
            decode_all(&status.public_infos),
        ) else {
            return Err(failed("the key ceremony is not complete"));
        };
        let commitments: Option<Vec<pb::DkgCommitment>> = commitments
            .iter()
            .map(|b| pb::DkgCommitment::decode(b.as_slice()).ok())
            .collect();
        let infos: Option<Vec<pb::DkgPublicInfo>> = infos
            .iter()
            .map(|b| pb::DkgPublicInfo::decode(b.as_slice()).ok())
            .collect();
        let (Some(commitments), Some(infos)) = (commitments, infos) else {
            return Err(corrupt_state("DKG messages"));
        };
        let threshold = self.threshold()?;
        let derived = infos
            .iter()
            .map(|info| bboard_ballot::dkg::PublicInfo::from_message(threshold, info))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|infos| bboard_ballot::dkg::derive_key_set(threshold, &commitments, &infos))
            .map_err(|e| failed(format!("cannot derive the joint key: {e}")))?;
        if derived.to_joint_key() != *joint {
            return Err(invalid(
                "posted joint key differs from the key derived from the ceremony's messages",
            ));
        }
        self.election.status.joint_key_index = Some(self.entry.index);
        Ok(vec![
            Effect::PutState(joint_key_key(self.election_id), joint.encode_to_vec()),
            self.save()?,
        ])
    }

    fn ballot<S: StateRead>(
        &mut self,
        state: &S,
        ballot: &pb::Ballot,
    ) -> Result<Checked, S::Error> {
        if let Err(rejection) = self
            .require_phase(&[Phase::Open])
            .and_then(|()| self.own_precinct(&ballot.precinct_id))
        {
            return Ok(Err(rejection));
        }
        let Ok(previous) =
            <[u8; TRACKING_CODE_LEN]>::try_from(ballot.previous_tracking_code.as_slice())
        else {
            return Ok(Err(invalid(format!(
                "previous_tracking_code must be {TRACKING_CODE_LEN} bytes"
            ))));
        };
        let head = head(state, self.entry.signer)?;
        if previous != head {
            return Ok(Err(failed(format!(
                "ballot does not continue this terminal's tracking-code chain: it names \
                 previous code {}, the terminal's last code is {}",
                hex::encode(previous),
                hex::encode(head)
            ))));
        }
        let proofs = match self.entry.proofs {
            Some(outcome) => outcome.clone(),
            None => match &self.election.key_set {
                Some(key_set) => verify_ballot_proofs(
                    &self.election.manifest,
                    key_set,
                    self.entry.body,
                    self.entry.kind,
                )
                .unwrap_or(Ok(())),
                None => Err(failed("the election has no joint key")),
            },
        };
        if let Err(rejection) = proofs {
            return Ok(Err(rejection));
        }
        let code = tracking_code(&previous, self.entry.envelope_id);
        Ok(Ok(vec![
            Effect::PutState(head_key(self.entry.signer), code.to_vec()),
            Effect::PutState(
                tracking_index_key(&code),
                self.entry.index.to_be_bytes().to_vec(),
            ),
        ]))
    }

    /// Checks that `counts` has one entry per contest of the manifest, in order, each
    /// with one count per option.
    fn check_counts_shape(&self, counts: &[pb::ContestCount]) -> Result<(), Rejection> {
        let contests = &self.election.manifest.contests;
        if counts.len() != contests.len() {
            return Err(invalid(format!(
                "protocol has {} contest counts, the manifest {} contests",
                counts.len(),
                contests.len()
            )));
        }
        for (count, contest) in counts.iter().zip(contests) {
            self.check_count_shape(count, contest)?;
        }
        Ok(())
    }

    fn check_count_shape(
        &self,
        count: &pb::ContestCount,
        contest: &pb::Contest,
    ) -> Result<(), Rejection> {
        if count.contest_id != contest.contest_id {
            return Err(invalid(format!(
                "expected counts of contest {:?}, found {:?}",
                contest.contest_id, count.contest_id
            )));
        }
        if count.option_counts.len() != contest.options.len() {
            return Err(invalid(format!(
                "contest {:?} has {} options, {} counts given",
                contest.contest_id,
                contest.options.len(),
                count.option_counts.len()
            )));
        }
        Ok(())
    }

    fn protocol(&mut self, protocol: &pb::PrecinctProtocol) -> Checked {
        self.require_phase(&[Phase::Closed, Phase::Tallying])?;
        self.own_precinct(&protocol.precinct_id)?;
        self.check_counts_shape(&protocol.counts)?;
        if protocol.photo_hash.len() > 64 {
            return Err(invalid("photo_hash is longer than 64 bytes"));
        }
        if !self
            .election
            .status
            .protocols
            .insert(protocol.precinct_id.clone())
        {
            return Err(failed(format!(
                "precinct {:?} already has a paper protocol",
                protocol.precinct_id
            )));
        }
        Ok(vec![self.save()?])
    }

    fn decryption_share(&mut self, share: &pb::DecryptionShare) -> Checked {
        self.require_phase(&[Phase::Tallying])?;
        self.trustee(share.trustee_index)?;
        self.precinct(&share.precinct_id)?;
        let options = self.contest(&share.contest_id)?.options.len();
        if share.shares.len() != options || share.proofs.len() != options {
            return Err(invalid(format!(
                "contest {:?} has {options} options: need as many shares and proofs, got {} and {}",
                share.contest_id,
                share.shares.len(),
                share.proofs.len()
            )));
        }
        let key = (
            share.trustee_index,
            share.precinct_id.clone(),
            share.contest_id.clone(),
        );
        if !self.election.status.decryption_shares.insert(key) {
            return Err(failed(format!(
                "trustee {} already posted its share for {}/{}",
                share.trustee_index, share.precinct_id, share.contest_id
            )));
        }
        Ok(vec![self.save()?])
    }

    fn result(&mut self, result: &pb::ElectionResult) -> Checked {
        self.require_phase(&[Phase::Tallying])?;
        self.precinct(&result.precinct_id)?;
        let Some(count) = &result.count else {
            return Err(invalid("result has no count"));
        };
        let contest = self.contest(&count.contest_id)?;
        self.check_count_shape(count, contest)?;
        if let Some(too_many) = count
            .option_counts
            .iter()
            .position(|c| *c > result.ballots_counted)
        {
            return Err(invalid(format!(
                "option {too_many} has more votes than ballots counted ({})",
                result.ballots_counted
            )));
        }
        let key = (result.precinct_id.clone(), count.contest_id.clone());
        if !self.election.status.results.insert(key) {
            return Err(failed(format!(
                "{}/{} already has a result",
                result.precinct_id, count.contest_id
            )));
        }
        Ok(vec![self.save()?])
    }
}

fn missing(slots: &[Option<Vec<u8>>]) -> Vec<usize> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.is_none())
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_codes_round_trip_and_reject_garbage() {
        for seed in 0u8..50 {
            let code = *blake3::hash(&[seed]).as_bytes();
            let short = short_tracking_code(&code);
            assert_eq!(
                parse_short_tracking_code(&short),
                Some(<[u8; 5]>::try_from(&code[..5]).unwrap())
            );
            assert_eq!(
                parse_short_tracking_code(&short.to_lowercase()),
                parse_short_tracking_code(&short)
            );
        }
        assert_eq!(parse_short_tracking_code("0000-000"), None);
        assert_eq!(parse_short_tracking_code("0000-0000-0"), None);
        assert_eq!(parse_short_tracking_code("UUUU-UUUU"), None);
        assert_eq!(
            parse_short_tracking_code("OOOO-IIII"),
            parse_short_tracking_code("0000-1111")
        );
    }
}
