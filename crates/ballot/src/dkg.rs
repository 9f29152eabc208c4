//! The threshold key ceremony: committed Pedersen DKG (elastic-elgamal's [`dkg`] module),
//! k-of-n among the trustees of the manifest.
//!
//! Rounds (each trustee `i` in `0..n`, 0-based as in the manifest's `trustees` list):
//!
//! 1. **Commit.** [`TrusteeCommitting::new`] draws the trustee's secret polynomial;
//!    [`TrusteeCommitting::commitment_message`] is a [`pb::DkgCommitment`] with a 32-byte
//!    hash commitment `SHA-256(P(0) || opening)` to its public key share. Every trustee
//!    posts it; every trustee reads all the others'.
//! 2. **Reveal.** [`TrusteePolynomials::public_info`] is the trustee's public polynomial
//!    (`k` points), a proof of possession of the secret coefficients, and the opening of
//!    its round-1 commitment ([`PublicInfo`], [`PublicInfo::to_bytes`]). Posting
//!    commitments first stops a late trustee from biasing the joint key.
//! 3. **Shares.** [`TrusteeSharing::secret_share_for`] is the secret share of the
//!    sender's polynomial for one other trustee; the recipient checks it against the
//!    sender's public polynomial ([`TrusteeSharing::insert_share`]).
//!    Shares are secret: on the board they travel sealed to the recipient's manifest
//!    `encryption_key` ([`crate::transport::share_message`],
//!    [`crate::transport::open_share_message`]). Never post [`SecretShare::to_bytes`].
//!
//! Finally [`TrusteeSharing::finish`] gives the trustee's [`Trustee`] (its secret key
//! share plus the public [`KeySet`]). The public part needs no secret: anyone re-runs
//! [`derive_key_set`] over the posted commitments and public infos and compares with the
//! posted [`pb::JointKey`] ([`KeySet::from_joint_key`], [`KeySet::to_joint_key`]).
//!
//! All state objects are `serde` (de)serialisable so a trustee tool can persist them
//! between rounds; they contain secrets and must be stored as such.
//!
//! **Wire format:** round 1 is [`pb::DkgCommitment`], round 2 [`pb::DkgPublicInfo`]
//! ([`PublicInfo::to_message`], [`PublicInfo::from_message`]; the board checks each
//! posted one with [`check_public_info`]), round 3 [`pb::DkgSecretShare`].
//!
//! [`dkg`]: elastic_elgamal::dkg

use elastic_elgamal::{
    dkg::{
        ParticipantCollectingCommitments, ParticipantCollectingPolynomials,
        ParticipantExchangingSecrets,
    },
    group::Ristretto,
    sharing::{ActiveParticipant, Params, PublicKeySet},
    PublicKey, SecretKey,
};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    codec::{self, ITEM},
    pb, BallotError,
};

/// `k` of `n` parameters of an election's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// `n`: number of trustees.
    pub trustees: usize,
    /// `k`: number of trustees needed to decrypt.
    pub threshold: usize,
}

impl Threshold {
    /// Checked constructor: `1 <= threshold <= trustees <= MAX_TRUSTEES`.
    ///
    /// # Errors
    ///
    /// [`BallotError::BadTrusteeCount`] or [`BallotError::BadThreshold`].
    pub fn new(trustees: usize, threshold: usize) -> Result<Self, BallotError> {
        if trustees == 0 || trustees > crate::MAX_TRUSTEES {
            return Err(BallotError::BadTrusteeCount {
                count: trustees,
                max: crate::MAX_TRUSTEES,
            });
        }
        if threshold == 0 || threshold > trustees {
            return Err(BallotError::BadThreshold {
                threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
                trustees,
            });
        }
        Ok(Self {
            trustees,
            threshold,
        })
    }

    /// The parameters of a (validated) manifest.
    ///
    /// # Errors
    ///
    /// As [`Threshold::new`].
    pub fn of_manifest(manifest: &pb::ElectionManifest) -> Result<Self, BallotError> {
        Self::new(manifest.trustees.len(), manifest.threshold as usize)
    }

    pub(crate) fn params(self) -> Params {
        Params {
            shares: self.trustees,
            threshold: self.threshold,
        }
    }

    fn check_index(self, index: u32) -> Result<usize, BallotError> {
        let i = index as usize;
        if i < self.trustees {
            Ok(i)
        } else {
            Err(BallotError::TrusteeIndex {
                index,
                trustees: self.trustees,
            })
        }
    }
}

fn index_u32(index: usize) -> u32 {
    // Indices are < MAX_TRUSTEES.
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn check_from(threshold: Threshold, me: usize, from: u32) -> Result<usize, BallotError> {
    let i = threshold.check_index(from)?;
    if i == me {
        return Err(BallotError::OwnMessage(from));
    }
    Ok(i)
}

/// Round 1 state of one trustee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrusteeCommitting {
    threshold: Threshold,
    inner: ParticipantCollectingCommitments<Ristretto>,
}

impl TrusteeCommitting {
    /// Starts the ceremony for trustee `index` (0-based).
    ///
    /// # Errors
    ///
    /// [`BallotError::TrusteeIndex`] if `index >= trustees`.
    pub fn new<R: CryptoRng + RngCore>(
        threshold: Threshold,
        index: u32,
        rng: &mut R,
    ) -> Result<Self, BallotError> {
        let i = threshold.check_index(index)?;
        Ok(Self {
            threshold,
            inner: ParticipantCollectingCommitments::new(threshold.params(), i, rng),
        })
    }

    /// This trustee's round-1 message.
    pub fn commitment_message(&self) -> pb::DkgCommitment {
        pb::DkgCommitment {
            trustee_index: index_u32(self.inner.index()),
            commitment: self.inner.commitment().to_vec(),
        }
    }

    /// Records another trustee's round-1 message.
    ///
    /// # Errors
    ///
    /// Bad sender index, own message, duplicate, or not 32 bytes.
    pub fn insert_commitment(&mut self, message: &pb::DkgCommitment) -> Result<(), BallotError> {
        let from = message.trustee_index;
        let i = check_from(self.threshold, self.inner.index(), from)?;
        let commitment: [u8; 32] = message.commitment.as_slice().try_into().map_err(|_| {
            BallotError::MalformedDkgMessage {
                what: "commitment",
                from,
            }
        })?;
        if !self.inner.missing_commitments().any(|m| m == i) {
            return Err(BallotError::DuplicateDkgMessage {
                round: "commitment",
                from,
            });
        }
        self.inner.insert_commitment(i, commitment);
        Ok(())
    }

    /// Moves to round 2 once every trustee's commitment is in.
    ///
    /// # Errors
    ///
    /// [`BallotError::MissingDkgMessages`] (the state is returned unchanged inside the
    /// error path only by cloning; keep a copy if you want to retry).
    pub fn finish(self) -> Result<TrusteePolynomials, BallotError> {
        let missing: Vec<usize> = self.inner.missing_commitments().collect();
        if !missing.is_empty() {
            return Err(BallotError::MissingDkgMessages {
                round: "commitment",
                missing,
            });
        }
        Ok(TrusteePolynomials {
            threshold: self.threshold,
            inner: self.inner.finish_commitment_phase(),
        })
    }
}

/// A trustee's round-2 public information: public polynomial, proof of possession of
/// its secret coefficients, opening of the round-1 commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicInfo {
    /// Sender.
    pub trustee_index: u32,
    /// `opening (32) || k points (32 each) || PoP challenge (32) || k PoP responses`.
    bytes: Vec<u8>,
}

impl PublicInfo {
    /// Parses the bytes posted by trustee `trustee_index` (length checked against `k`).
    ///
    /// # Errors
    ///
    /// [`BallotError::MalformedDkgMessage`] if the length is wrong.
    pub fn from_bytes(
        threshold: Threshold,
        trustee_index: u32,
        bytes: &[u8],
    ) -> Result<Self, BallotError> {
        threshold.check_index(trustee_index)?;
        if bytes.len() != ITEM * (2 + 2 * threshold.threshold) {
            return Err(BallotError::MalformedDkgMessage {
                what: "public info",
                from: trustee_index,
            });
        }
        Ok(Self {
            trustee_index,
            bytes: bytes.to_vec(),
        })
    }

    /// The canonical encoding, to post.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The round-2 board entry.
    pub fn to_message(&self) -> pb::DkgPublicInfo {
        pb::DkgPublicInfo {
            trustee_index: self.trustee_index,
            public_info: self.bytes.clone(),
        }
    }

    /// Parses a posted round-2 entry (length checked against `k`; the content is checked
    /// by [`check_public_info`] or when inserted).
    ///
    /// # Errors
    ///
    /// As [`PublicInfo::from_bytes`].
    pub fn from_message(
        threshold: Threshold,
        message: &pb::DkgPublicInfo,
    ) -> Result<Self, BallotError> {
        Self::from_bytes(threshold, message.trustee_index, &message.public_info)
    }

    fn opening(&self) -> &[u8] {
        &self.bytes[..ITEM]
    }

    fn polynomial_bytes(&self, k: usize) -> &[u8] {
        &self.bytes[ITEM..ITEM * (1 + k)]
    }

    /// Converts to the library's `PublicInfo` (as a JSON value, deserialised by callers).
    fn to_library(&self, k: usize) -> Result<serde_json::Value, BallotError> {
        let malformed = BallotError::MalformedDkgMessage {
            what: "public info",
            from: self.trustee_index,
        };
        let polynomial: Vec<serde_json::Value> = self
            .polynomial_bytes(k)
            .chunks(ITEM)
            .map(|p| codec::point(p).map(|_| codec::to_b64(p)))
            .collect::<Option<_>>()
            .ok_or(malformed.clone())?;
        let pop = codec::possession(&self.bytes[ITEM * (1 + k)..]).ok_or(malformed.clone())?;
        Ok(json!({
            "polynomial": polynomial,
            "proof_of_possession": codec::to_value(&pop).ok_or(malformed)?,
            "opening": codec::to_b64(self.opening()),
        }))
    }

    /// Checks the opening against `commitment` and the proof of possession, and returns
    /// the public key set of this single dealer.
    fn verify(
        &self,
        threshold: Threshold,
        commitment: &[u8],
    ) -> Result<PublicKeySet<Ristretto>, BallotError> {
        let k = threshold.threshold;
        let from = self.trustee_index;
        let mut hasher = Sha256::new();
        hasher.update(&self.bytes[ITEM..2 * ITEM]);
        hasher.update(self.opening());
        if hasher.finalize().as_slice() != commitment {
            return Err(BallotError::DkgCommitmentMismatch(from));
        }
        let value = self.to_library(k)?;
        let malformed = BallotError::MalformedDkgMessage {
            what: "public info",
            from,
        };
        let polynomial = value
            .get("polynomial")
            .and_then(|p| p.as_array())
            .ok_or(malformed.clone())?
            .iter()
            .map(|p| codec::from_b64(p).and_then(|b| codec::point(&b)))
            .collect::<Option<Vec<_>>>()
            .ok_or(malformed.clone())?;
        let pop = codec::possession(&self.bytes[ITEM * (1 + k)..]).ok_or(malformed)?;
        PublicKeySet::new(threshold.params(), polynomial, &pop)
            .map_err(|_| BallotError::DkgInvalidProof(from))
    }
}

/// Checks one posted round-2 entry against the same trustee's posted round-1 commitment:
/// well-formed, opens the commitment, valid proof of possession. Needs no secret; the
/// board rules call it when a [`pb::DkgPublicInfo`] is posted, so a bad one is refused
/// before other trustees waste a round on it.
///
/// # Errors
///
/// [`BallotError::DkgIndexMismatch`], [`BallotError::TrusteeIndex`],
/// [`BallotError::MalformedDkgMessage`], [`BallotError::DkgCommitmentMismatch`],
/// [`BallotError::DkgInvalidProof`].
pub fn check_public_info(
    threshold: Threshold,
    commitment: &pb::DkgCommitment,
    info: &pb::DkgPublicInfo,
) -> Result<(), BallotError> {
    if commitment.trustee_index != info.trustee_index {
        return Err(BallotError::DkgIndexMismatch {
            commitment: commitment.trustee_index,
            info: info.trustee_index,
        });
    }
    PublicInfo::from_message(threshold, info)?
        .verify(threshold, &commitment.commitment)
        .map(drop)
}

/// Round 2 state of one trustee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrusteePolynomials {
    threshold: Threshold,
    inner: ParticipantCollectingPolynomials<Ristretto>,
}

impl TrusteePolynomials {
    /// This trustee's round-2 message.
    ///
    /// # Errors
    ///
    /// [`BallotError::Internal`] if the library's encoding is not as expected.
    pub fn public_info(&self) -> Result<PublicInfo, BallotError> {
        let internal = BallotError::Internal("cannot encode DKG public info");
        let info = self.inner.public_info();
        let value = codec::to_value(&info).ok_or(internal.clone())?;
        let mut bytes = value
            .get("opening")
            .and_then(codec::from_b64)
            .ok_or(internal.clone())?;
        for point in &info.polynomial {
            bytes.extend_from_slice(point.compress().as_bytes());
        }
        bytes.extend(codec::encode_possession(&info.proof_of_possession).ok_or(internal)?);
        PublicInfo::from_bytes(self.threshold, index_u32(self.inner.index()), &bytes)
    }

    /// Records another trustee's round-2 message, checking it against its commitment
    /// and its proof of possession.
    ///
    /// # Errors
    ///
    /// Bad sender, duplicate, malformed, [`BallotError::DkgCommitmentMismatch`],
    /// [`BallotError::DkgInvalidProof`].
    pub fn insert_public_info(&mut self, info: &PublicInfo) -> Result<(), BallotError> {
        let from = info.trustee_index;
        let i = check_from(self.threshold, self.inner.index(), from)?;
        if !self.inner.missing_public_polynomials().any(|m| m == i) {
            return Err(BallotError::DuplicateDkgMessage {
                round: "public info",
                from,
            });
        }
        let value = info.to_library(self.threshold.threshold)?;
        let library_info =
            serde_json::from_value(value).map_err(|_| BallotError::MalformedDkgMessage {
                what: "public info",
                from,
            })?;
        self.inner
            .insert_public_polynomial(i, library_info)
            .map_err(|err| match err {
                elastic_elgamal::dkg::Error::InvalidCommitment => {
                    BallotError::DkgCommitmentMismatch(from)
                }
                _ => BallotError::DkgInvalidProof(from),
            })
    }

    /// Moves to round 3 once every trustee's public info is in.
    ///
    /// # Errors
    ///
    /// [`BallotError::MissingDkgMessages`].
    pub fn finish(self) -> Result<TrusteeSharing, BallotError> {
        let missing: Vec<usize> = self.inner.missing_public_polynomials().collect();
        if !missing.is_empty() {
            return Err(BallotError::MissingDkgMessages {
                round: "public info",
                missing,
            });
        }
        Ok(TrusteeSharing {
            threshold: self.threshold,
            inner: self.inner.finish_polynomials_phase(),
        })
    }
}

/// A secret share of one trustee's polynomial for another trustee. **Secret.**
#[derive(Clone)]
pub struct SecretShare {
    /// Sender.
    pub from: u32,
    /// Recipient.
    pub to: u32,
    share: SecretKey<Ristretto>,
}

impl std::fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretShare")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl SecretShare {
    /// The 32-byte plaintext scalar. **Secret**: encrypt before posting (see module docs).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.share.expose_scalar().to_bytes()
    }

    /// Parses a plaintext share (after transport decryption).
    ///
    /// # Errors
    ///
    /// [`BallotError::MalformedDkgMessage`] if not a canonical scalar.
    pub fn from_bytes(from: u32, to: u32, bytes: &[u8]) -> Result<Self, BallotError> {
        let share = SecretKey::from_bytes(bytes).ok_or(BallotError::MalformedDkgMessage {
            what: "secret share",
            from,
        })?;
        Ok(Self { from, to, share })
    }
}

/// Round 3 state of one trustee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrusteeSharing {
    threshold: Threshold,
    inner: ParticipantExchangingSecrets<Ristretto>,
}

impl TrusteeSharing {
    /// The secret share of this trustee's polynomial for trustee `to`.
    ///
    /// # Errors
    ///
    /// Bad or own index.
    pub fn secret_share_for(&self, to: u32) -> Result<SecretShare, BallotError> {
        let i = check_from(self.threshold, self.inner.index(), to)?;
        Ok(SecretShare {
            from: index_u32(self.inner.index()),
            to,
            share: self.inner.secret_share_for_participant(i),
        })
    }

    /// Records and checks a share from another trustee.
    ///
    /// # Errors
    ///
    /// Bad sender, not addressed to this trustee, duplicate,
    /// [`BallotError::DkgInvalidShare`].
    pub fn insert_share(&mut self, share: &SecretShare) -> Result<(), BallotError> {
        let me = index_u32(self.inner.index());
        if share.to != me {
            return Err(BallotError::NotAddressedToMe { to: share.to, me });
        }
        let i = check_from(self.threshold, self.inner.index(), share.from)?;
        if !self.inner.missing_shares().any(|m| m == i) {
            return Err(BallotError::DuplicateDkgMessage {
                round: "secret share",
                from: share.from,
            });
        }
        self.inner
            .insert_secret_share(i, share.share.clone())
            .map_err(|_| BallotError::DkgInvalidShare(share.from))
    }

    /// Completes the ceremony once every other trustee's share is in.
    ///
    /// # Errors
    ///
    /// [`BallotError::MissingDkgMessages`], [`BallotError::InconsistentKeyShares`].
    pub fn finish(self) -> Result<Trustee, BallotError> {
        let missing: Vec<usize> = self.inner.missing_shares().collect();
        if !missing.is_empty() {
            return Err(BallotError::MissingDkgMessages {
                round: "secret share",
                missing,
            });
        }
        let inner = self
            .inner
            .complete()
            .map_err(|_| BallotError::InconsistentKeyShares)?;
        Ok(Trustee {
            threshold: self.threshold,
            inner,
        })
    }
}

/// A trustee after the ceremony: its secret key share and the public key set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trustee {
    threshold: Threshold,
    pub(crate) inner: ActiveParticipant<Ristretto>,
}

impl Trustee {
    /// 0-based trustee index.
    pub fn index(&self) -> u32 {
        index_u32(self.inner.index())
    }

    /// The public key set (joint key and every trustee's public key share).
    pub fn key_set(&self) -> KeySet {
        KeySet {
            threshold: self.threshold,
            inner: self.inner.key_set().clone(),
        }
    }
}

/// The public outcome of the ceremony: joint election key and each trustee's public key
/// share (`share_i = s_i·G`, used to verify its decryption shares).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySet {
    threshold: Threshold,
    pub(crate) inner: PublicKeySet<Ristretto>,
}

impl KeySet {
    /// `k` of `n`.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// The joint public key ballots are encrypted to.
    pub fn joint_key(&self) -> &PublicKey<Ristretto> {
        self.inner.shared_key()
    }

    /// The board entry.
    pub fn to_joint_key(&self) -> pb::JointKey {
        pb::JointKey {
            public_key: self.inner.shared_key().as_bytes().to_vec(),
            trustee_public_shares: self
                .inner
                .participant_keys()
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
        }
    }

    /// Parses and checks a posted [`pb::JointKey`]: `n` canonical key shares that
    /// interpolate (degree `k-1`) to `public_key`.
    ///
    /// # Errors
    ///
    /// [`BallotError::MalformedKey`], [`BallotError::BadTrusteeCount`],
    /// [`BallotError::InconsistentKeyShares`], [`BallotError::JointKeyMismatch`].
    pub fn from_joint_key(threshold: Threshold, key: &pb::JointKey) -> Result<Self, BallotError> {
        if key.trustee_public_shares.len() != threshold.trustees {
            return Err(BallotError::BadTrusteeCount {
                count: key.trustee_public_shares.len(),
                max: threshold.trustees,
            });
        }
        let shares = key
            .trustee_public_shares
            .iter()
            .map(|b| parse_public_key(b))
            .collect::<Option<Vec<_>>>()
            .ok_or(BallotError::MalformedKey("trustee public share"))?;
        let joint = parse_public_key(&key.public_key).ok_or(BallotError::MalformedKey("joint"))?;
        let inner = PublicKeySet::from_participants(threshold.params(), shares)
            .map_err(|_| BallotError::InconsistentKeyShares)?;
        if inner.shared_key() != &joint {
            return Err(BallotError::JointKeyMismatch);
        }
        Ok(Self { threshold, inner })
    }
}

pub(crate) fn parse_public_key(bytes: &[u8]) -> Option<PublicKey<Ristretto>> {
    codec::point(bytes)?;
    PublicKey::from_bytes(bytes).ok()
}

/// Re-derives the public key set from the posted round-1 commitments and round-2 public
/// infos of all `n` trustees. Anyone can run it and compare with the posted
/// [`pb::JointKey`].
///
/// # Errors
///
/// Missing/duplicate/malformed messages, [`BallotError::DkgCommitmentMismatch`],
/// [`BallotError::DkgInvalidProof`], [`BallotError::InconsistentKeyShares`].
pub fn derive_key_set(
    threshold: Threshold,
    commitments: &[pb::DkgCommitment],
    infos: &[PublicInfo],
) -> Result<KeySet, BallotError> {
    let n = threshold.trustees;
    let mut by_index: Vec<Option<&[u8]>> = vec![None; n];
    for c in commitments {
        let i = threshold.check_index(c.trustee_index)?;
        if by_index[i].replace(&c.commitment).is_some() {
            return Err(BallotError::DuplicateDkgMessage {
                round: "commitment",
                from: c.trustee_index,
            });
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&i| by_index[i].is_none()).collect();
    if !missing.is_empty() {
        return Err(BallotError::MissingDkgMessages {
            round: "commitment",
            missing,
        });
    }
    let mut dealers: Vec<Option<PublicKeySet<Ristretto>>> = vec![None; n];
    for info in infos {
        let i = threshold.check_index(info.trustee_index)?;
        if dealers[i].is_some() {
            return Err(BallotError::DuplicateDkgMessage {
                round: "public info",
                from: info.trustee_index,
            });
        }
        let commitment = by_index[i].ok_or(BallotError::Internal("commitment index"))?;
        dealers[i] = Some(info.verify(threshold, commitment)?);
    }
    let missing: Vec<usize> = (0..n).filter(|&i| dealers[i].is_none()).collect();
    if !missing.is_empty() {
        return Err(BallotError::MissingDkgMessages {
            round: "public info",
            missing,
        });
    }
    // Key share of trustee i = Σ_j P_j(i+1): sum the dealers' evaluations.
    let mut shares: Vec<Option<PublicKey<Ristretto>>> = vec![None; n];
    for dealer in dealers.iter().flatten() {
        for (acc, key) in shares.iter_mut().zip(dealer.participant_keys()) {
            *acc = Some(match acc.take() {
                None => key.clone(),
                Some(sum) => sum + key.clone(),
            });
        }
    }
    let shares = shares
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(BallotError::Internal("key share sum"))?;
    let inner = PublicKeySet::from_participants(threshold.params(), shares)
        .map_err(|_| BallotError::InconsistentKeyShares)?;
    Ok(KeySet { threshold, inner })
}

/// Outcome of [`run_ceremony_in_memory`]: the trustees, the round-1 and round-2 messages.
pub type InMemoryCeremony = (Vec<Trustee>, Vec<pb::DkgCommitment>, Vec<PublicInfo>);

/// Runs a whole ceremony in memory (tests, demos, benchmarks): all `n` trustees on one
/// machine, shares handed over in plaintext. Returns the trustees, the round-1 and
/// round-2 messages.
///
/// # Errors
///
/// Only on internal failures.
pub fn run_ceremony_in_memory<R: CryptoRng + RngCore>(
    threshold: Threshold,
    rng: &mut R,
) -> Result<InMemoryCeremony, BallotError> {
    run_ceremony(threshold, rng, |share, _| Ok(share.clone()))
}

/// As [`run_ceremony_in_memory`], but every share goes through the board's transport:
/// each trustee gets a fresh [`TransportSecret`](crate::transport::TransportSecret), and
/// shares are sealed for `election_id` and opened by their recipient.
///
/// # Errors
///
/// Only on internal failures.
pub fn run_ceremony_with_transport<R: CryptoRng + RngCore>(
    threshold: Threshold,
    election_id: &str,
    rng: &mut R,
) -> Result<InMemoryCeremony, BallotError> {
    use crate::transport::{open_share_message, share_message, TransportSecret};
    let secrets: Vec<TransportSecret> = (0..threshold.trustees)
        .map(|_| TransportSecret::generate(rng))
        .collect();
    run_ceremony(threshold, rng, |share, rng| {
        let recipient = secrets
            .get(share.to as usize)
            .ok_or(BallotError::Internal("share recipient"))?;
        let message = share_message(&recipient.public_key_bytes(), election_id, share, rng)?;
        open_share_message(recipient, election_id, share.to, &message)
    })
}

/// The ceremony of all trustees, with `deliver` carrying each round-3 share from its
/// sender to its recipient.
fn run_ceremony<R, F>(
    threshold: Threshold,
    rng: &mut R,
    mut deliver: F,
) -> Result<InMemoryCeremony, BallotError>
where
    R: CryptoRng + RngCore,
    F: FnMut(&SecretShare, &mut R) -> Result<SecretShare, BallotError>,
{
    let n = threshold.trustees;
    let mut round1 = (0..n)
        .map(|i| TrusteeCommitting::new(threshold, index_u32(i), rng))
        .collect::<Result<Vec<_>, _>>()?;
    let commitments: Vec<_> = round1.iter().map(|t| t.commitment_message()).collect();
    for (i, t) in round1.iter_mut().enumerate() {
        for (j, c) in commitments.iter().enumerate() {
            if i != j {
                t.insert_commitment(c)?;
            }
        }
    }
    let mut round2 = round1
        .into_iter()
        .map(TrusteeCommitting::finish)
        .collect::<Result<Vec<_>, _>>()?;
    let infos = round2
        .iter()
        .map(TrusteePolynomials::public_info)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in round2.iter_mut().enumerate() {
        for (j, info) in infos.iter().enumerate() {
            if i != j {
                t.insert_public_info(info)?;
            }
        }
    }
    let mut round3 = round2
        .into_iter()
        .map(TrusteePolynomials::finish)
        .collect::<Result<Vec<_>, _>>()?;
    let mut shares = Vec::new();
    for (i, t) in round3.iter().enumerate() {
        for j in (0..n).filter(|&j| j != i) {
            shares.push(t.secret_share_for(index_u32(j))?);
        }
    }
    for share in &shares {
        let delivered = deliver(share, rng)?;
        round3
            .get_mut(share.to as usize)
            .ok_or(BallotError::Internal("share recipient"))?
            .insert_share(&delivered)?;
    }
    let trustees = round3
        .into_iter()
        .map(TrusteeSharing::finish)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((trustees, commitments, infos))
}

#[cfg(test)]
mod tests {
    use rand::thread_rng;

    use super::*;

    fn check_ceremony(n: usize, k: usize) {
        let threshold = Threshold::new(n, k).unwrap();
        let (trustees, commitments, infos) =
            run_ceremony_in_memory(threshold, &mut thread_rng()).unwrap();
        let public = derive_key_set(threshold, &commitments, &infos).unwrap();
        let posted = public.to_joint_key();
        for t in &trustees {
            assert_eq!(t.key_set().to_joint_key(), posted);
        }
        let reparsed = KeySet::from_joint_key(threshold, &posted).unwrap();
        assert_eq!(reparsed.to_joint_key(), posted);
        assert_eq!(posted.trustee_public_shares.len(), n);
    }

    #[test]
    fn ceremonies_agree_on_the_joint_key() {
        check_ceremony(1, 1);
        check_ceremony(3, 2);
        check_ceremony(5, 3);
        check_ceremony(4, 4);
    }

    #[test]
    fn ceremony_rejects_bad_messages() {
        let mut rng = thread_rng();
        let threshold = Threshold::new(3, 2).unwrap();
        assert!(TrusteeCommitting::new(threshold, 3, &mut rng).is_err());
        let mut r1: Vec<_> = (0..3)
            .map(|i| TrusteeCommitting::new(threshold, i, &mut rng).unwrap())
            .collect();
        let commitments: Vec<_> = r1.iter().map(|t| t.commitment_message()).collect();

        // Round 1 errors.
        assert_eq!(
            r1[0].insert_commitment(&commitments[0]),
            Err(BallotError::OwnMessage(0))
        );
        let mut short = commitments[2].clone();
        short.commitment.pop();
        assert!(matches!(
            r1[0].insert_commitment(&short),
            Err(BallotError::MalformedDkgMessage { from: 2, .. })
        ));
        r1[0].insert_commitment(&commitments[1]).unwrap();
        assert!(matches!(
            r1[0].insert_commitment(&commitments[1]),
            Err(BallotError::DuplicateDkgMessage { from: 1, .. })
        ));
        assert!(matches!(
            r1[0].clone().finish(),
            Err(BallotError::MissingDkgMessages { ref missing, .. }) if missing == &[2]
        ));
        for (i, t) in r1.iter_mut().enumerate() {
            for (j, c) in commitments.iter().enumerate() {
                if i != j && !(i == 0 && j == 1) {
                    t.insert_commitment(c).unwrap();
                }
            }
        }
        let mut r2: Vec<_> = r1.into_iter().map(|t| t.finish().unwrap()).collect();
        let infos: Vec<_> = r2.iter().map(|t| t.public_info().unwrap()).collect();

        // Round 2 errors: wrong opening, tampered proof, then the genuine one.
        let mut bytes = infos[1].to_bytes().to_vec();
        bytes[0] ^= 1;
        let bad_opening = PublicInfo::from_bytes(threshold, 1, &bytes).unwrap();
        assert_eq!(
            r2[0].insert_public_info(&bad_opening),
            Err(BallotError::DkgCommitmentMismatch(1))
        );
        let mut bytes = infos[1].to_bytes().to_vec();
        let last_response = bytes.len() - 32;
        bytes[last_response] ^= 1;
        let bad_proof = PublicInfo::from_bytes(threshold, 1, &bytes).unwrap();
        assert_eq!(
            r2[0].insert_public_info(&bad_proof),
            Err(BallotError::DkgInvalidProof(1))
        );
        assert!(matches!(
            derive_key_set(
                threshold,
                &commitments,
                &[infos[0].clone(), bad_proof.clone()]
            ),
            Err(BallotError::DkgInvalidProof(1))
        ));
        assert!(matches!(
            derive_key_set(threshold, &commitments, &infos[..2]),
            Err(BallotError::MissingDkgMessages { ref missing, .. }) if missing == &[2]
        ));
        assert!(PublicInfo::from_bytes(threshold, 1, &bytes[1..]).is_err());
        // The board-side check of one posted public info.
        check_public_info(threshold, &commitments[1], &infos[1].to_message()).unwrap();
        assert_eq!(
            PublicInfo::from_message(threshold, &infos[1].to_message()).unwrap(),
            infos[1]
        );
        assert_eq!(
            check_public_info(threshold, &commitments[1], &bad_proof.to_message()),
            Err(BallotError::DkgInvalidProof(1))
        );
        assert_eq!(
            check_public_info(threshold, &commitments[1], &bad_opening.to_message()),
            Err(BallotError::DkgCommitmentMismatch(1))
        );
        assert_eq!(
            check_public_info(threshold, &commitments[0], &infos[1].to_message()),
            Err(BallotError::DkgIndexMismatch {
                commitment: 0,
                info: 1
            })
        );
        let mut short = infos[1].to_message();
        short.public_info.pop();
        assert!(matches!(
            check_public_info(threshold, &commitments[1], &short),
            Err(BallotError::MalformedDkgMessage { from: 1, .. })
        ));
        for (i, t) in r2.iter_mut().enumerate() {
            for (j, info) in infos.iter().enumerate() {
                if i != j {
                    t.insert_public_info(info).unwrap();
                }
            }
        }
        let mut r3: Vec<_> = r2.into_iter().map(|t| t.finish().unwrap()).collect();

        // Round 3 errors: wrong addressee, a share that is not on the polynomial.
        let for_2 = r3[1].secret_share_for(2).unwrap();
        assert_eq!(
            r3[0].insert_share(&for_2),
            Err(BallotError::NotAddressedToMe { to: 2, me: 0 })
        );
        let forged = SecretShare::from_bytes(1, 0, &for_2.to_bytes()).unwrap();
        assert_eq!(
            r3[0].insert_share(&forged),
            Err(BallotError::DkgInvalidShare(1))
        );
        assert!(r3[0].secret_share_for(0).is_err());
        let mut shares = Vec::new();
        for (i, t) in r3.iter().enumerate() {
            for j in (0..3).filter(|&j| j != i) {
                shares.push(t.secret_share_for(j as u32).unwrap());
            }
        }
        for share in &shares {
            r3[share.to as usize].insert_share(share).unwrap();
        }
        assert!(matches!(
            r3[0].insert_share(&shares[2]),
            Err(BallotError::DuplicateDkgMessage { from: 1, .. })
        ));
        let trustees: Vec<_> = r3.into_iter().map(|t| t.finish().unwrap()).collect();
        let public = derive_key_set(threshold, &commitments, &infos).unwrap();
        for t in &trustees {
            assert_eq!(t.key_set().to_joint_key(), public.to_joint_key());
        }

        // A posted joint key that does not match its shares.
        let mut posted = public.to_joint_key();
        posted.public_key = posted.trustee_public_shares[0].clone();
        assert_eq!(
            KeySet::from_joint_key(threshold, &posted).err(),
            Some(BallotError::JointKeyMismatch)
        );
        let mut posted = public.to_joint_key();
        posted.trustee_public_shares.swap(0, 1);
        assert_eq!(
            KeySet::from_joint_key(threshold, &posted).err(),
            Some(BallotError::InconsistentKeyShares)
        );
    }
}
