//! The board's rules: which entries are admitted, in which order, with which effects.
//!
//! This is the deterministic part of the state machine. A node (or an auditor replaying
//! the board) gives it read access to the board state through [`BoardView`] and feeds
//! it the leaves of one Raft batch in order; for each leaf it gets an [`Outcome`] and
//! the state changes to persist. Nothing here does I/O, so every node that applies the
//! same leaves to the same state reaches the same decisions, and so does an auditor.
//!
//! Rules enforced here:
//! - leaf 0 is a `BoardGenesis` for the configured origin, signed by one of the
//!   authority keys it names; no other genesis is ever accepted;
//! - every other entry is signed by a key that is registered and not revoked (genesis
//!   authorities are registered by the genesis itself), whose role may post that kind
//!   of entry, in its election scope;
//! - `RegisterKey` / `RevokeKey` are signed by an authority; a revoked key never comes
//!   back; a key is registered once;
//! - an envelope whose content address is already on the board is a duplicate and
//!   does not get a second leaf.
//!
//! Election rules (phases, key ceremony order, ballot proofs, tracking-code chains,
//! precinct scope) live in [`crate::election`]; this module calls them for every entry
//! that names an election.

use std::collections::HashMap;

use crate::envelope::{EnvelopeId, PUBLIC_KEY_LEN};
use crate::leaf::{decode_leaf, LeafRecord};
use crate::pb::{self, entry_body::Kind, Role};

/// A 32-byte Ed25519 public key as stored in the registry.
pub type PublicKeyBytes = [u8; PUBLIC_KEY_LEN];

/// What a registered key may do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGrant {
    /// Role (`pb::Role` as i32).
    pub role: i32,
    /// Election the key is scoped to; empty = every election on the board.
    pub election_id: String,
    /// Precinct the key is scoped to (terminals, commissions); empty = none.
    pub precinct_id: String,
    /// Human label.
    pub label: String,
    /// Index of the leaf that registered the key.
    pub registered_at: u64,
    /// Index of the leaf that revoked it, if revoked.
    pub revoked_at: Option<u64>,
}

impl KeyGrant {
    /// A board-level grant of `role` made by the genesis (leaf 0).
    fn at_genesis(role: Role, label: &str) -> Self {
        KeyGrant {
            role: role as i32,
            election_id: String::new(),
            precinct_id: String::new(),
            label: label.to_owned(),
            registered_at: 0,
            revoked_at: None,
        }
    }

    /// The role as the protobuf enum (unknown values map to `Unspecified`).
    pub fn role(&self) -> Role {
        Role::try_from(self.role).unwrap_or(Role::Unspecified)
    }

    /// Whether the key is still allowed to sign.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Read access to the state of the board before the current batch.
pub trait BoardView {
    /// Error of the underlying store.
    type Error;
    /// Number of leaves on the board.
    fn size(&self) -> Result<u64, Self::Error>;
    /// The configured origin of this board.
    fn origin(&self) -> &str;
    /// The registry entry of a key, if it was ever registered.
    fn key(&self, key: &PublicKeyBytes) -> Result<Option<KeyGrant>, Self::Error>;
    /// Index of the leaf holding the envelope with this content address.
    fn find_envelope(&self, id: &EnvelopeId) -> Result<Option<u64>, Self::Error>;
    /// A value of the rules' own state ([`Effect::PutState`]), by key.
    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Merkle root of the first `size` leaves (`size` ≤ [`Self::size`]).
    fn root_at(&self, size: u64) -> Result<bboard_merkle::Hash, Self::Error>;
}

/// Why an entry was not admitted, as a gRPC-like code plus a message for people.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// Category of the problem.
    pub code: RejectCode,
    /// Precise explanation.
    pub message: String,
}

/// Category of a rejection; maps one-to-one onto gRPC status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RejectCode {
    /// The bytes are malformed or the signature is wrong (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// The signer is not allowed to post this (`PERMISSION_DENIED`).
    PermissionDenied,
    /// The entry does not fit the board's state (`FAILED_PRECONDITION`).
    FailedPrecondition,
}

impl RejectCode {
    /// The google.rpc.Code number.
    pub fn grpc_code(self) -> i32 {
        match self {
            RejectCode::InvalidArgument => 3,
            RejectCode::PermissionDenied => 7,
            RejectCode::FailedPrecondition => 9,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

pub(crate) fn reject(code: RejectCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// A state change to persist together with an admitted leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Record (or update) a key's registry entry.
    PutKey(PublicKeyBytes, KeyGrant),
    /// Record (or replace) a value of the rules' own state (elections, tracking-code
    /// chains); read back through [`BoardView::state`]. Keys are owned by
    /// [`crate::election`].
    PutState(Vec<u8>, Vec<u8>),
}

/// State key of the number of organisations the genesis names (big-endian u64): what
/// a membership authorisation needs a majority of.
pub const ORGANISATIONS_STATE: &[u8] = b"membership/organisations";

/// State key of the latest admitted membership authorisation: its `command` bytes
/// (an encoded `AdminCommand`). Only the latest one authorises a Raft membership
/// change, so each authorisation is used for one change and a later one supersedes it.
pub const LATEST_AUTHORISATION_STATE: &[u8] = b"membership/latest-authorisation";

/// The admin keys of the genesis `organisations` as `ROLE_ADMIN` grants labelled with
/// the organisation's name, and their count; `authorities` are the effects so far (a
/// key holds one role).
fn genesis_organisations(
    genesis: &pb::BoardGenesis,
    authorities: &[Effect],
) -> Result<Vec<Effect>, Rejection> {
    let mut effects: Vec<Effect> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for organisation in &genesis.organisations {
        let name = organisation.name.as_str();
        if name.is_empty() || names.contains(&name) {
            return Err(reject(
                RejectCode::InvalidArgument,
                format!("genesis organisation names must be distinct and non-empty ({name:?})"),
            ));
        }
        names.push(name);
        if organisation.admin_keys.is_empty() {
            return Err(reject(
                RejectCode::InvalidArgument,
                format!("genesis organisation {name:?} names no admin key"),
            ));
        }
        for key in &organisation.admin_keys {
            let parsed = crate::envelope::parse_public_key(key).map_err(|e| {
                reject(
                    RejectCode::InvalidArgument,
                    format!("admin key of {name:?}: {e}"),
                )
            })?;
            let bytes = *parsed.as_bytes();
            let taken = authorities
                .iter()
                .chain(&effects)
                .any(|effect| matches!(effect, Effect::PutKey(existing, _) if *existing == bytes));
            if taken {
                return Err(reject(
                    RejectCode::InvalidArgument,
                    format!(
                        "admin key {} of {name:?} is named twice in the genesis",
                        hex::encode(bytes)
                    ),
                ));
            }
            effects.push(Effect::PutKey(
                bytes,
                KeyGrant::at_genesis(Role::Admin, name),
            ));
        }
    }
    effects.push(Effect::PutState(
        ORGANISATIONS_STATE.to_vec(),
        (names.len() as u64).to_be_bytes().to_vec(),
    ));
    Ok(effects)
}

/// What happened to one leaf of a batch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// Added to the tree at `index`.
    Appended {
        /// Leaf index.
        index: u64,
    },
    /// The same envelope is already on the board at `index`; nothing was added.
    Duplicate {
        /// Index of the original leaf.
        index: u64,
    },
    /// Not added.
    Rejected(Rejection),
}

/// An admitted leaf with what to persist for it.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// Its index.
    pub index: u64,
    /// Its bytes, verbatim.
    pub leaf_data: Vec<u8>,
    /// Content address of its envelope.
    pub envelope_id: EnvelopeId,
    /// Registry changes.
    pub effects: Vec<Effect>,
}

/// Which roles may post which kinds of entries.
fn role_may_post(role: Role, kind: &Kind) -> bool {
    match kind {
        Kind::Genesis(_) => false,
        Kind::RegisterKey(_)
        | Kind::RevokeKey(_)
        | Kind::Manifest(_)
        | Kind::PhaseChange(_)
        | Kind::JointKey(_)
        | Kind::Result(_) => role == Role::Authority,
        Kind::DkgCommitment(_)
        | Kind::DkgPublicInfo(_)
        | Kind::DkgSecretShare(_)
        | Kind::DecryptionShare(_) => role == Role::Trustee,
        Kind::Ballot(_) | Kind::SpoiledBallot(_) => role == Role::Terminal,
        Kind::PrecinctProtocol(_) => role == Role::PrecinctCommission,
        Kind::CheckpointCosignatures(_) => role == Role::Node || role == Role::Authority,
        Kind::Note(_) => role != Role::Unspecified,
        Kind::MembershipAuthorisation(_) => role == Role::Admin,
    }
}

/// Name of an entry kind, as in `entry.proto`.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Genesis(_) => "BoardGenesis",
        Kind::RegisterKey(_) => "RegisterKey",
        Kind::RevokeKey(_) => "RevokeKey",
        Kind::Manifest(_) => "ElectionManifest",
        Kind::PhaseChange(_) => "PhaseChange",
        Kind::DkgCommitment(_) => "DkgCommitment",
        Kind::DkgPublicInfo(_) => "DkgPublicInfo",
        Kind::DkgSecretShare(_) => "DkgSecretShare",
        Kind::JointKey(_) => "JointKey",
        Kind::Ballot(_) => "Ballot",
        Kind::SpoiledBallot(_) => "SpoiledBallot",
        Kind::PrecinctProtocol(_) => "PrecinctProtocol",
        Kind::DecryptionShare(_) => "DecryptionShare",
        Kind::Result(_) => "ElectionResult",
        Kind::CheckpointCosignatures(_) => "CheckpointCosignatures",
        Kind::Note(_) => "Note",
        Kind::MembershipAuthorisation(_) => "MembershipAuthorisation",
    }
}

/// Applies the leaves of one batch, in order, on top of a [`BoardView`]; later leaves
/// of the batch see the effects of earlier ones.
pub struct BatchApplier<'v, V: BoardView> {
    base: &'v V,
    next_index: u64,
    keys: HashMap<PublicKeyBytes, KeyGrant>,
    envelopes: HashMap<EnvelopeId, u64>,
    state: HashMap<Vec<u8>, Vec<u8>>,
    admitted: Vec<Admitted>,
}

impl<V: BoardView> crate::election::StateRead for BatchApplier<'_, V> {
    type Error = V::Error;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, V::Error> {
        match self.state.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None => self.base.state(key),
        }
    }
}

impl<'v, V: BoardView> BatchApplier<'v, V> {
    /// Starts a batch on top of `base`.
    pub fn new(base: &'v V) -> Result<Self, V::Error> {
        Ok(BatchApplier {
            next_index: base.size()?,
            base,
            keys: HashMap::new(),
            envelopes: HashMap::new(),
            state: HashMap::new(),
            admitted: Vec::new(),
        })
    }

    /// Size of the board including the leaves admitted so far in this batch.
    pub fn size(&self) -> u64 {
        self.next_index
    }

    fn key(&self, key: &PublicKeyBytes) -> Result<Option<KeyGrant>, V::Error> {
        match self.keys.get(key) {
            Some(grant) => Ok(Some(grant.clone())),
            None => self.base.key(key),
        }
    }

    /// Index of an envelope admitted before (in this batch or earlier).
    pub fn find_envelope(&self, id: &EnvelopeId) -> Result<Option<u64>, V::Error> {
        match self.envelopes.get(id) {
            Some(index) => Ok(Some(*index)),
            None => self.base.find_envelope(id),
        }
    }

    /// Decides about one leaf. Decoding and signature checks happen here too; a node
    /// that already checked them in parallel may call [`Self::apply_checked`].
    pub fn apply(&mut self, leaf_data: &[u8]) -> Result<Outcome, V::Error> {
        match decode_leaf(leaf_data) {
            Ok(record) => self.apply_checked(leaf_data, &record),
            Err(e) => Ok(Outcome::Rejected(reject(
                RejectCode::InvalidArgument,
                e.to_string(),
            ))),
        }
    }

    /// Decides about one leaf whose bytes decode to `record` (signature verified).
    pub fn apply_checked(
        &mut self,
        leaf_data: &[u8],
        record: &LeafRecord,
    ) -> Result<Outcome, V::Error> {
        self.apply_with_proofs(leaf_data, record, None)
    }

    /// Decides about one leaf checked by [`crate::election::precheck`] (possibly in
    /// parallel with the other leaves of the batch).
    pub fn apply_prechecked(
        &mut self,
        leaf_data: &[u8],
        prechecked: &crate::election::Prechecked,
    ) -> Result<Outcome, V::Error> {
        match &prechecked.record {
            Ok(record) => self.apply_with_proofs(leaf_data, record, prechecked.proofs.as_ref()),
            Err(rejection) => Ok(Outcome::Rejected(rejection.clone())),
        }
    }

    fn apply_with_proofs(
        &mut self,
        leaf_data: &[u8],
        record: &LeafRecord,
        proofs: Option<&Result<(), Rejection>>,
    ) -> Result<Outcome, V::Error> {
        let envelope_id = record.envelope.id();
        if let Some(index) = self.find_envelope(&envelope_id)? {
            return Ok(Outcome::Duplicate { index });
        }
        let effects = match self.check_with_proofs(record, proofs)? {
            Ok(effects) => effects,
            Err(rejection) => return Ok(Outcome::Rejected(rejection)),
        };
        let index = self.next_index;
        self.next_index += 1;
        for effect in &effects {
            match effect {
                Effect::PutKey(key, grant) => {
                    self.keys.insert(*key, grant.clone());
                }
                Effect::PutState(key, value) => {
                    self.state.insert(key.clone(), value.clone());
                }
            }
        }
        self.envelopes.insert(envelope_id, index);
        self.admitted.push(Admitted {
            index,
            leaf_data: leaf_data.to_vec(),
            envelope_id,
            effects,
        });
        Ok(Outcome::Appended { index })
    }

    /// The admitted leaves, in index order, with their effects.
    pub fn finish(self) -> Vec<Admitted> {
        self.admitted
    }

    /// Checks an entry that is not a duplicate against the rules; returns its effects.
    /// Does not modify the batch, so the leader can use it to pre-check.
    pub fn check(&self, record: &LeafRecord) -> Result<Result<Vec<Effect>, Rejection>, V::Error> {
        self.check_with_proofs(record, None)
    }

    /// [`Self::check`], reusing the outcome of ballot-proof checks done beforehand by
    /// [`crate::election::precheck`] when there is one.
    fn check_with_proofs(
        &self,
        record: &LeafRecord,
        proofs: Option<&Result<(), Rejection>>,
    ) -> Result<Result<Vec<Effect>, Rejection>, V::Error> {
        let index = self.next_index;
        let body = match record.envelope.body() {
            Ok(body) => body,
            Err(e) => return Ok(Err(reject(RejectCode::InvalidArgument, e.to_string()))),
        };
        let signer: PublicKeyBytes = *record.envelope.signer().as_bytes();
        let Some(kind) = body.kind.as_ref() else {
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                "entry has no kind",
            )));
        };

        if index == 0 {
            return Ok(self.check_genesis(&body, kind, signer));
        }
        if let Kind::Genesis(_) = kind {
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                format!("the board already has a genesis (size {index})"),
            )));
        }

        let Some(grant) = self.key(&signer)? else {
            return Ok(Err(reject(
                RejectCode::PermissionDenied,
                format!(
                    "signer {} is not registered on this board",
                    hex::encode(signer)
                ),
            )));
        };
        if let Some(revoked_at) = grant.revoked_at {
            return Ok(Err(reject(
                RejectCode::PermissionDenied,
                format!(
                    "signer {} was revoked by entry {revoked_at}",
                    hex::encode(signer)
                ),
            )));
        }
        if !grant.election_id.is_empty() && grant.election_id != body.election_id {
            return Ok(Err(reject(
                RejectCode::PermissionDenied,
                format!(
                    "signer is registered for election {:?}, entry is for {:?}",
                    grant.election_id, body.election_id
                ),
            )));
        }
        if !role_may_post(grant.role(), kind) {
            return Ok(Err(reject(
                RejectCode::PermissionDenied,
                format!(
                    "role {} may not post {} entries",
                    grant.role().as_str_name(),
                    kind_name(kind)
                ),
            )));
        }

        let mut effects = match kind {
            Kind::RegisterKey(register) => match self.check_register(&body, register, index)? {
                Ok(effects) => effects,
                Err(rejection) => return Ok(Err(rejection)),
            },
            Kind::RevokeKey(revoke) => match self.check_revoke(revoke, index)? {
                Ok(effects) => effects,
                Err(rejection) => return Ok(Err(rejection)),
            },
            Kind::CheckpointCosignatures(record) => match self.check_checkpoint_record(record)? {
                Ok(()) => Vec::new(),
                Err(rejection) => return Ok(Err(rejection)),
            },
            Kind::MembershipAuthorisation(authorisation) => {
                match self.check_membership_authorisation(&body, authorisation)? {
                    Ok(()) => vec![Effect::PutState(
                        LATEST_AUTHORISATION_STATE.to_vec(),
                        authorisation.command.clone(),
                    )],
                    Err(rejection) => return Ok(Err(rejection)),
                }
            }
            _ => Vec::new(),
        };
        let entry = crate::election::EntryContext {
            body: &body,
            kind,
            grant: &grant,
            signer: &signer,
            envelope_id: &record.envelope.id(),
            index,
            proofs,
        };
        match crate::election::check_entry(self, &entry)? {
            Ok(more) => effects.extend(more),
            Err(rejection) => return Ok(Err(rejection)),
        }
        Ok(Ok(effects))
    }

    fn check_genesis(
        &self,
        body: &pb::EntryBody,
        kind: &Kind,
        signer: PublicKeyBytes,
    ) -> Result<Vec<Effect>, Rejection> {
        let Kind::Genesis(genesis) = kind else {
            return Err(reject(
                RejectCode::FailedPrecondition,
                format!(
                    "the board is empty: its first entry must be a BoardGenesis, not {}",
                    kind_name(kind)
                ),
            ));
        };
        if genesis.origin != self.base.origin() {
            return Err(reject(
                RejectCode::FailedPrecondition,
                format!(
                    "genesis origin {:?} is not this board's origin {:?}",
                    genesis.origin,
                    self.base.origin()
                ),
            ));
        }
        if !body.election_id.is_empty() {
            return Err(reject(
                RejectCode::InvalidArgument,
                "a genesis is board-level: election_id must be empty",
            ));
        }
        if genesis.authority_keys.is_empty() {
            return Err(reject(
                RejectCode::InvalidArgument,
                "genesis names no authority key",
            ));
        }
        let mut effects = Vec::new();
        for key in &genesis.authority_keys {
            let parsed = crate::envelope::parse_public_key(key)
                .map_err(|e| reject(RejectCode::InvalidArgument, format!("authority key: {e}")))?;
            let bytes = *parsed.as_bytes();
            if effects
                .iter()
                .any(|effect| matches!(effect, Effect::PutKey(existing, _) if *existing == bytes))
            {
                return Err(reject(
                    RejectCode::InvalidArgument,
                    "genesis names an authority key twice",
                ));
            }
            effects.push(Effect::PutKey(
                bytes,
                KeyGrant::at_genesis(Role::Authority, "genesis authority"),
            ));
        }
        let signed_by_authority = effects
            .iter()
            .any(|effect| matches!(effect, Effect::PutKey(key, _) if *key == signer));
        effects.extend(genesis_organisations(genesis, &effects)?);
        if !signed_by_authority {
            return Err(reject(
                RejectCode::PermissionDenied,
                "genesis must be signed by one of the authority keys it names",
            ));
        }
        Ok(effects)
    }

    fn check_register(
        &self,
        body: &pb::EntryBody,
        register: &pb::RegisterKey,
        index: u64,
    ) -> Result<Result<Vec<Effect>, Rejection>, V::Error> {
        let key = match crate::envelope::parse_public_key(&register.public_key) {
            Ok(key) => *key.as_bytes(),
            Err(e) => return Ok(Err(reject(RejectCode::InvalidArgument, e.to_string()))),
        };
        let role = match Role::try_from(register.role) {
            Ok(Role::Unspecified) | Err(_) => {
                return Ok(Err(reject(
                    RejectCode::InvalidArgument,
                    format!("invalid role {}", register.role),
                )))
            }
            Ok(role) => role,
        };
        let needs_precinct = matches!(role, Role::Terminal | Role::PrecinctCommission);
        if needs_precinct && register.precinct_id.is_empty() {
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                format!("a {} key must be scoped to a precinct", role.as_str_name()),
            )));
        }
        if let Some(existing) = self.key(&key)? {
            let message = match existing.revoked_at {
                Some(at) => format!("key was revoked by entry {at} and cannot be registered again"),
                None => format!(
                    "key is already registered (entry {})",
                    existing.registered_at
                ),
            };
            return Ok(Err(reject(RejectCode::FailedPrecondition, message)));
        }
        Ok(Ok(vec![Effect::PutKey(
            key,
            KeyGrant {
                role: role as i32,
                election_id: body.election_id.clone(),
                precinct_id: register.precinct_id.clone(),
                label: register.label.clone(),
                registered_at: index,
                revoked_at: None,
            },
        )]))
    }

    /// A membership authorisation must cover one membership change, be board-level,
    /// and carry valid signatures by active admin keys of a strict majority of the
    /// genesis organisations.
    fn check_membership_authorisation(
        &self,
        body: &pb::EntryBody,
        authorisation: &pb::MembershipAuthorisation,
    ) -> Result<Result<(), Rejection>, V::Error> {
        use crate::election::StateRead as _;
        if !body.election_id.is_empty() {
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                "a membership authorisation is board-level: election_id must be empty",
            )));
        }
        let invalid = |e: crate::membership::MembershipError| {
            Err(reject(RejectCode::InvalidArgument, e.to_string()))
        };
        match crate::membership::change_of(authorisation) {
            Err(e) => return Ok(invalid(e)),
            // The followers compare the member a Raft entry adds with this one, field by
            // field: a learner must be named with the identity it will be pinned by.
            Ok((_, crate::membership::MembershipChange::AddLearner(add)))
                if add.node_id == 0
                    || add.address.is_empty()
                    || add.peer_address.is_empty()
                    || add.tls_fingerprint.is_empty() =>
            {
                return Ok(Err(reject(
                    RejectCode::InvalidArgument,
                    "an AddLearner authorisation names the node id, its public address, its peer address and its TLS fingerprint",
                )));
            }
            Ok(_) => {}
        }
        let signers = match crate::membership::verified_signers(authorisation) {
            Ok(signers) => signers,
            Err(e) => return Ok(invalid(e)),
        };
        let organisations = self
            .get(ORGANISATIONS_STATE)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_be_bytes) as usize;
        if organisations == 0 {
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "the genesis names no organisations: no membership change can be authorised",
            )));
        }
        let mut signed_for: Vec<String> = Vec::new();
        for signer in &signers {
            match self.key(signer)? {
                Some(grant) if grant.role() == Role::Admin && grant.is_active() => {
                    if !signed_for.contains(&grant.label) {
                        signed_for.push(grant.label);
                    }
                }
                _ => {
                    return Ok(Err(reject(
                        RejectCode::PermissionDenied,
                        format!(
                            "{} is not an active admin key of an organisation",
                            hex::encode(signer)
                        ),
                    )))
                }
            }
        }
        let needed = crate::membership::majority(organisations);
        if signed_for.len() < needed {
            return Ok(Err(reject(
                RejectCode::PermissionDenied,
                format!(
                    "signed for {} of {organisations} organisations ({}); a membership change needs {needed}",
                    signed_for.len(),
                    signed_for.join(", ")
                ),
            )));
        }
        Ok(Ok(()))
    }

    /// A recorded checkpoint must be a well-formed signed note of this board, of a size
    /// the board had before this batch, with the root the board has at that size: the
    /// checkpoint history recorded on the board is consistent with the board itself.
    /// (Whose signatures it carries is for readers to judge with their policy.)
    fn check_checkpoint_record(
        &self,
        record: &pb::CheckpointCosignatures,
    ) -> Result<Result<(), Rejection>, V::Error> {
        let signed = match crate::checkpoint::SignedCheckpoint::parse(&record.signed_checkpoint) {
            Ok(signed) => signed,
            Err(e) => {
                return Ok(Err(reject(
                    RejectCode::InvalidArgument,
                    format!("recorded checkpoint: {e}"),
                )))
            }
        };
        let checkpoint = signed.checkpoint();
        if checkpoint.origin != self.base.origin() {
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                format!(
                    "recorded checkpoint is for origin {:?}, not this board's {:?}",
                    checkpoint.origin,
                    self.base.origin()
                ),
            )));
        }
        let size = checkpoint.size.0;
        let board_size = self.base.size()?;
        if size == 0 || size > board_size {
            return Ok(Err(reject(
                RejectCode::FailedPrecondition,
                format!("recorded checkpoint has size {size}; the board had {board_size} leaves"),
            )));
        }
        let root = self.base.root_at(size)?;
        if root != checkpoint.root {
            return Ok(Err(reject(
                RejectCode::InvalidArgument,
                format!(
                    "recorded checkpoint says root {} at size {size}, the board's root there is {root}",
                    checkpoint.root
                ),
            )));
        }
        Ok(Ok(()))
    }

    fn check_revoke(
        &self,
        revoke: &pb::RevokeKey,
        index: u64,
    ) -> Result<Result<Vec<Effect>, Rejection>, V::Error> {
        let key: PublicKeyBytes = match revoke.public_key.as_slice().try_into() {
            Ok(key) => key,
            Err(_) => {
                return Ok(Err(reject(
                    RejectCode::InvalidArgument,
                    "public key must be 32 bytes",
                )))
            }
        };
        match self.key(&key)? {
            None => Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "cannot revoke a key that is not registered",
            ))),
            Some(grant) if grant.revoked_at.is_some() => Ok(Err(reject(
                RejectCode::FailedPrecondition,
                "key is already revoked",
            ))),
            Some(mut grant) => {
                grant.revoked_at = Some(index);
                Ok(Ok(vec![Effect::PutKey(key, grant)]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::SignedEnvelope;
    use crate::leaf::encode_leaf;
    use crate::memory::MemoryBoard;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "test.board";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn leaf(signer: &SigningKey, election_id: &str, kind: Kind, ts: u64) -> Vec<u8> {
        let body = pb::EntryBody {
            election_id: election_id.into(),
            created_unix_ms: ts,
            kind: Some(kind),
        };
        encode_leaf(ts, &SignedEnvelope::sign_body(&body, signer))
    }

    fn genesis(authority: &SigningKey) -> Vec<u8> {
        genesis_with(authority, Vec::new())
    }

    /// A genesis naming `authority` and `organisations`.
    fn genesis_with(authority: &SigningKey, organisations: Vec<pb::Organisation>) -> Vec<u8> {
        leaf(
            authority,
            "",
            Kind::Genesis(pb::BoardGenesis {
                origin: ORIGIN.into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: String::new(),
                organisations,
            }),
            1,
        )
    }

    fn register(
        authority: &SigningKey,
        who: &SigningKey,
        role: Role,
        election: &str,
        ts: u64,
    ) -> Vec<u8> {
        leaf(
            authority,
            election,
            Kind::RegisterKey(pb::RegisterKey {
                public_key: who.verifying_key().as_bytes().to_vec(),
                role: role as i32,
                precinct_id: "p1".into(),
                label: String::new(),
            }),
            ts,
        )
    }

    fn note(signer: &SigningKey, election: &str, ts: u64) -> Vec<u8> {
        leaf(
            signer,
            election,
            Kind::Note(pb::Note { text: "hi".into() }),
            ts,
        )
    }

    /// The authority `key(1)`, the key `key(seed)` it registers for `role` in
    /// `election` (leaf 1), and the board after the genesis, that registration and
    /// `more`.
    fn with_registered(
        role: Role,
        election: &str,
        seed: u8,
        more: &[Vec<u8>],
    ) -> (SigningKey, SigningKey, MemoryBoard) {
        let (authority, registered) = (key(1), key(seed));
        let mut leaves = vec![
            genesis(&authority),
            register(&authority, &registered, role, election, 2),
        ];
        leaves.extend_from_slice(more);
        let board = board_after(&leaves);
        (authority, registered, board)
    }

    /// A board that applied `leaves` (one batch).
    fn board_after(leaves: &[Vec<u8>]) -> MemoryBoard {
        let mut board = MemoryBoard::new(ORIGIN);
        board.apply_batch(leaves);
        board
    }

    fn rejected_with(outcome: &Outcome, code: RejectCode) -> bool {
        matches!(outcome, Outcome::Rejected(r) if r.code == code)
    }

    #[test]
    fn first_entry_must_be_genesis_for_this_origin() {
        let mut board = MemoryBoard::new(ORIGIN);
        let authority = key(1);
        let out = board.apply_batch(&[note(&authority, "", 1)]);
        assert!(rejected_with(&out[0], RejectCode::FailedPrecondition));
        let wrong_origin = leaf(
            &authority,
            "",
            Kind::Genesis(pb::BoardGenesis {
                origin: "other".into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: String::new(),
                organisations: Vec::new(),
            }),
            1,
        );
        assert!(rejected_with(
            &board.apply_batch(&[wrong_origin])[0],
            RejectCode::FailedPrecondition
        ));
        assert_eq!(
            board.apply_batch(&[genesis(&authority)]),
            vec![Outcome::Appended { index: 0 }]
        );
        // No second genesis.
        let again = board.apply_batch(&[genesis(&key(2))]);
        assert!(rejected_with(&again[0], RejectCode::FailedPrecondition));
    }

    #[test]
    fn genesis_signed_by_outsider_is_rejected() {
        let mut board = MemoryBoard::new(ORIGIN);
        let leaf = leaf(
            &key(9),
            "",
            Kind::Genesis(pb::BoardGenesis {
                origin: ORIGIN.into(),
                authority_keys: vec![key(1).verifying_key().as_bytes().to_vec()],
                description: String::new(),
                organisations: Vec::new(),
            }),
            1,
        );
        assert!(rejected_with(
            &board.apply_batch(&[leaf])[0],
            RejectCode::PermissionDenied
        ));
        assert_eq!(board.leaves().len(), 0);
    }

    #[test]
    fn unregistered_and_revoked_signers_are_refused() {
        let authority = key(1);
        let terminal = key(2);
        let mut board = board_after(&[genesis(&authority)]);
        assert!(rejected_with(
            &board.apply_batch(&[note(&terminal, "e", 2)])[0],
            RejectCode::PermissionDenied
        ));

        // Registered and used within one batch: later entries see earlier effects.
        let out = board.apply_batch(&[
            register(&authority, &terminal, Role::Terminal, "e", 3),
            note(&terminal, "e", 4),
        ]);
        assert_eq!(
            out,
            vec![
                Outcome::Appended { index: 1 },
                Outcome::Appended { index: 2 }
            ]
        );

        let revoke = leaf(
            &authority,
            "e",
            Kind::RevokeKey(pb::RevokeKey {
                public_key: terminal.verifying_key().as_bytes().to_vec(),
                reason: "stolen".into(),
            }),
            5,
        );
        assert_eq!(
            board.apply_batch(&[revoke]),
            vec![Outcome::Appended { index: 3 }]
        );
        let out = board.apply_batch(&[note(&terminal, "e", 6)]);
        assert!(
            matches!(&out[0], Outcome::Rejected(r) if r.message.contains("revoked by entry 3"))
        );
        // A revoked key cannot be registered again.
        let out = board.apply_batch(&[register(&authority, &terminal, Role::Terminal, "e", 7)]);
        assert!(rejected_with(&out[0], RejectCode::FailedPrecondition));
    }

    #[test]
    fn roles_and_election_scope_are_enforced() {
        let (_, terminal, mut board) = with_registered(Role::Terminal, "e1", 2, &[]);
        // A terminal may not register keys.
        let out = board.apply_batch(&[register(&terminal, &key(3), Role::Terminal, "e1", 3)]);
        assert!(rejected_with(&out[0], RejectCode::PermissionDenied));
        // A terminal of e1 may not post into e2.
        let out = board.apply_batch(&[note(&terminal, "e2", 4)]);
        assert!(rejected_with(&out[0], RejectCode::PermissionDenied));
    }

    #[test]
    fn duplicates_return_the_original_index_and_add_nothing() {
        let authority = key(1);
        let mut board = board_after(&[genesis(&authority)]);
        let entry = note(&authority, "", 2);
        // Same envelope with another leaf timestamp is still the same entry.
        let mut same_envelope_later = decode_leaf(&entry).unwrap();
        same_envelope_later.timestamp_unix_ms += 1000;
        let out = board.apply_batch(&[entry.clone(), same_envelope_later.encode()]);
        assert_eq!(
            out,
            vec![
                Outcome::Appended { index: 1 },
                Outcome::Duplicate { index: 1 }
            ]
        );
        assert_eq!(
            board.apply_batch(&[entry]),
            vec![Outcome::Duplicate { index: 1 }]
        );
        assert_eq!(board.leaves().len(), 2);
    }

    #[test]
    fn garbage_leaves_are_rejected_not_panics() {
        let mut board = board_after(&[genesis(&key(1))]);
        let out = board.apply_batch(&[vec![], vec![0xff; 10], b"\x12\x00".to_vec()]);
        assert!(out
            .iter()
            .all(|o| rejected_with(o, RejectCode::InvalidArgument)));
        assert_eq!(board.leaves().len(), 1);
    }

    #[test]
    fn terminal_registration_needs_a_precinct() {
        let authority = key(1);
        let mut board = board_after(&[genesis(&authority)]);
        let no_precinct = leaf(
            &authority,
            "e",
            Kind::RegisterKey(pb::RegisterKey {
                public_key: key(5).verifying_key().as_bytes().to_vec(),
                role: Role::Terminal as i32,
                precinct_id: String::new(),
                label: String::new(),
            }),
            2,
        );
        assert!(rejected_with(
            &board.apply_batch(&[no_precinct])[0],
            RejectCode::InvalidArgument
        ));
    }

    #[test]
    fn replaying_the_same_leaves_gives_the_same_state() {
        let authority = key(1);
        let leaves = vec![
            genesis(&authority),
            register(&authority, &key(2), Role::Terminal, "e", 2),
            note(&key(2), "e", 3),
            note(&key(3), "e", 4),
            note(&key(2), "e", 3),
        ];
        let mut a = MemoryBoard::new(ORIGIN);
        let mut b = MemoryBoard::new(ORIGIN);
        let out_a = a.apply_batch(&leaves);
        let out_b: Vec<Outcome> = leaves
            .iter()
            .flat_map(|l| b.apply_batch(std::slice::from_ref(l)))
            .collect();
        assert_eq!(out_a, out_b);
        assert_eq!(a.leaves(), b.leaves());
    }

    #[test]
    fn recorded_checkpoints_must_match_the_board() {
        use crate::checkpoint::{Checkpoint, NoteSigner, SignedCheckpoint};
        use bboard_merkle::TreeSize;
        let (authority, node, mut board) =
            with_registered(Role::Node, "", 4, &[note(&key(1), "", 3)]);
        let signer = NoteSigner::new("node-1", node.clone()).unwrap();
        let record = |size: u64, root: bboard_merkle::Hash, origin: &str, ts: u64| {
            let signed = SignedCheckpoint::sign(
                Checkpoint {
                    origin: origin.into(),
                    size: TreeSize(size),
                    root,
                },
                &signer,
            )
            .unwrap();
            leaf(
                &node,
                "",
                Kind::CheckpointCosignatures(pb::CheckpointCosignatures {
                    signed_checkpoint: signed.to_note(),
                }),
                ts,
            )
        };
        let root2 = board.root_at(2).unwrap();
        let root3 = board.root_at(3).unwrap();
        // Wrong root, future size, other origin, garbage: all refused.
        let out = board.apply_batch(&[record(2, root3, ORIGIN, 10)]);
        assert!(
            matches!(&out[0], Outcome::Rejected(r) if r.message.contains("the board's root there"))
        );
        let out = board.apply_batch(&[record(4, root3, ORIGIN, 11)]);
        assert!(rejected_with(&out[0], RejectCode::FailedPrecondition));
        let out = board.apply_batch(&[record(2, root2, "elsewhere", 12)]);
        assert!(rejected_with(&out[0], RejectCode::InvalidArgument));
        let garbage = leaf(
            &node,
            "",
            Kind::CheckpointCosignatures(pb::CheckpointCosignatures {
                signed_checkpoint: "not a note".into(),
            }),
            13,
        );
        assert!(rejected_with(
            &board.apply_batch(&[garbage])[0],
            RejectCode::InvalidArgument
        ));
        // The true history is recorded.
        assert_eq!(
            board.apply_batch(&[record(2, root2, ORIGIN, 14), record(3, root3, ORIGIN, 15)]),
            vec![
                Outcome::Appended { index: 3 },
                Outcome::Appended { index: 4 }
            ]
        );
        // A terminal may not record checkpoints.
        let terminal = key(5);
        board.apply_batch(&[register(&authority, &terminal, Role::Terminal, "", 16)]);
        let forged = leaf(
            &terminal,
            "",
            Kind::CheckpointCosignatures(pb::CheckpointCosignatures {
                signed_checkpoint: String::new(),
            }),
            17,
        );
        assert!(rejected_with(
            &board.apply_batch(&[forged])[0],
            RejectCode::PermissionDenied
        ));
    }

    /// A board whose genesis names organisations A, B, C with admins 11, 12, 13 (and
    /// a second admin 21 for A).
    fn board_with_organisations(authority: &SigningKey) -> MemoryBoard {
        let organisation = |name: &str, seeds: &[u8]| pb::Organisation {
            name: name.into(),
            admin_keys: seeds
                .iter()
                .map(|s| key(*s).verifying_key().as_bytes().to_vec())
                .collect(),
        };
        let genesis = genesis_with(
            authority,
            vec![
                organisation("A", &[11, 21]),
                organisation("B", &[12]),
                organisation("C", &[13]),
            ],
        );
        let mut board = MemoryBoard::new(ORIGIN);
        assert_eq!(
            board.apply_batch(&[genesis]),
            vec![Outcome::Appended { index: 0 }]
        );
        board
    }

    fn authorisation(poster: &SigningKey, signers: &[u8], ts: u64) -> Vec<u8> {
        let command = pb::AdminCommand {
            issued_unix_ms: ts,
            node_id: 0,
            command: Some(pb::admin_command::Command::ChangeMembership(
                pb::ChangeMembershipCommand {
                    voter_ids: vec![1, 2],
                },
            )),
        };
        let mut signed = crate::membership::authorise(&command, &key(signers[0]));
        for seed in &signers[1..] {
            crate::membership::countersign(&mut signed, &key(*seed));
        }
        leaf(poster, "", Kind::MembershipAuthorisation(signed), ts)
    }

    /// Posts an authorisation by `poster` signed by `signers` and checks the board
    /// refuses it for lack of permission.
    fn assert_refused(board: &mut MemoryBoard, poster: &SigningKey, signers: &[u8], ts: u64) {
        let out = board.apply_batch(&[authorisation(poster, signers, ts)]);
        assert!(
            rejected_with(&out[0], RejectCode::PermissionDenied),
            "signed by {signers:?}: {out:?}"
        );
    }

    #[test]
    fn a_membership_change_needs_the_admins_of_a_majority_of_organisations() {
        let authority = key(1);
        let mut board = board_with_organisations(&authority);
        // One organisation, even with both its admins: refused.
        assert_refused(&mut board, &key(11), &[11], 2);
        assert_refused(&mut board, &key(11), &[11, 21], 3);
        // Two of three organisations: admitted.
        let out = board.apply_batch(&[authorisation(&key(12), &[11, 12], 4)]);
        assert_eq!(out, vec![Outcome::Appended { index: 1 }]);
        // Only an admin may post it, and an outsider's signature spoils it.
        assert_refused(&mut board, &authority, &[11, 12], 5);
        assert_refused(&mut board, &key(11), &[11, 12, 99], 6);
        // A revoked admin no longer counts.
        let revoke = leaf(
            &authority,
            "",
            Kind::RevokeKey(pb::RevokeKey {
                public_key: key(12).verifying_key().as_bytes().to_vec(),
                reason: "lost".into(),
            }),
            7,
        );
        assert_eq!(
            board.apply_batch(&[revoke]),
            vec![Outcome::Appended { index: 2 }]
        );
        assert_refused(&mut board, &key(11), &[11, 12], 8);
        let out = board.apply_batch(&[authorisation(&key(13), &[11, 13], 9)]);
        assert_eq!(out, vec![Outcome::Appended { index: 3 }]);
        // The latest admitted authorisation is the one that counts.
        let latest = board.state(LATEST_AUTHORISATION_STATE).unwrap().unwrap();
        let command = <pb::AdminCommand as prost::Message>::decode(latest.as_slice()).unwrap();
        assert_eq!(command.issued_unix_ms, 9);
    }

    #[test]
    fn an_add_learner_authorisation_names_the_whole_peer_identity() {
        let authority = key(1);
        let mut board = board_with_organisations(&authority);
        let add = |peer_address: &str, ts: u64| {
            let command = pb::AdminCommand {
                issued_unix_ms: ts,
                node_id: 0,
                command: Some(pb::admin_command::Command::AddLearner(
                    pb::AddLearnerCommand {
                        node_id: 4,
                        address: "127.0.0.1:7104".into(),
                        peer_address: peer_address.into(),
                        tls_fingerprint: format!("sha256:{}", "ab".repeat(32)),
                    },
                )),
            };
            let mut signed = crate::membership::authorise(&command, &key(11));
            crate::membership::countersign(&mut signed, &key(12));
            leaf(&key(11), "", Kind::MembershipAuthorisation(signed), ts)
        };
        let out = board.apply_batch(&[add("", 2)]);
        assert!(
            rejected_with(&out[0], RejectCode::InvalidArgument),
            "{out:?}"
        );
        assert_eq!(board.state(LATEST_AUTHORISATION_STATE).unwrap(), None);
        let out = board.apply_batch(&[add("127.0.0.1:7204", 3)]);
        assert_eq!(out, vec![Outcome::Appended { index: 1 }]);
    }

    #[test]
    fn without_organisations_no_membership_change_is_authorised() {
        let authority = key(1);
        let mut board = board_after(&[genesis(&authority)]);
        // Nobody holds ROLE_ADMIN: the poster is not even registered.
        let out = board.apply_batch(&[authorisation(&key(11), &[11, 12], 2)]);
        assert!(matches!(&out[0], Outcome::Rejected(_)), "{out:?}");
    }

    #[test]
    fn genesis_organisations_are_distinct_and_hold_one_role_per_key() {
        let authority = key(1);
        let organisation = |name: &str, seed: u8| pb::Organisation {
            name: name.into(),
            admin_keys: vec![key(seed).verifying_key().as_bytes().to_vec()],
        };
        for bad in [
            vec![organisation("A", 11), organisation("A", 12)],
            vec![organisation("", 11)],
            vec![organisation("A", 11), organisation("B", 11)],
            vec![organisation("A", 1)],
            vec![pb::Organisation {
                name: "A".into(),
                admin_keys: vec![],
            }],
        ] {
            let out =
                MemoryBoard::new(ORIGIN).apply_batch(&[genesis_with(&authority, bad.clone())]);
            assert!(
                rejected_with(&out[0], RejectCode::InvalidArgument),
                "{bad:?}: {out:?}"
            );
        }
    }
}
