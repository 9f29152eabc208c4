//! Encrypted ballots: exponential ElGamal on Ristretto255 under the election's joint key,
//! with zero-knowledge proofs, and their Benaloh opening (spoiling).
//!
//! # Construction
//!
//! For each contest of the manifest, in order, a ballot has one ciphertext per option,
//! `(r·G, v·G + r·K)` with `v ∈ {0, 1}` (1 = selected), `K` the joint key, `r` a fresh
//! nonce. Proofs (elastic-elgamal's ring-based [`RangeProof`] and [`LogEqualityProof`]):
//!
//! - **`range_proof`** — one 0-or-1 proof per option, concatenated: option `i` is bytes
//!   `96·i .. 96·(i+1)`, each a range proof over `0..2` (a single ring, so exactly
//!   `challenge || response_0 || response_1`, 32-byte canonical scalars).
//! - **`sum_proof`** — the number of selections `s = Σ v_i` lies in
//!   `[min_selections, max_selections]`, proven on the homomorphic sum minus `min`,
//!   `Σ c_i − (0, min·G)`, which encrypts `s − min` under the nonce `Σ r_i`:
//!   - if `max > min`: a range proof over `0..(max − min + 1)` (elastic-elgamal's optimal
//!     decomposition of that bound), encoded `count:u8 || count partial ciphertexts (64 B)
//!     || challenge || responses`;
//!   - if `max == min`: a [`LogEqualityProof`] (`challenge || response`, 64 bytes) that
//!     it encrypts 0, i.e. `log_G(R) = log_K(B − min·G)`.
//!
//! Every proof's Merlin transcript starts with the domain tag `bboard/v1/ballot` and
//! binds the election id, the precinct id, the ballot's `previous_tracking_code`, the
//! contest id and its position, the proof kind, and the option index (option proofs) or
//! the limits (sum proofs). A ballot, a contest or an option therefore cannot be moved
//! into another election, precinct, contest, option position or terminal chain position
//! without invalidating its proofs. (elastic-elgamal's proofs additionally bind the
//! joint key and the ciphertexts.)
//!
//! # Spoiling (Benaloh challenge)
//!
//! [`encrypt_ballot`] returns the nonces in a [`BallotOpening`]. A challenged ballot is
//! published with them ([`spoil`]); anyone re-encrypts the shown selections with the
//! published nonces and compares with the published ciphertexts ([`verify_spoiled`]).
//! elastic-elgamal does not expose the nonce of a ciphertext it creates, so we draw each
//! nonce ourselves and hand it to the library through a one-shot RNG that returns exactly
//! its bytes; the resulting ciphertext is then checked against our own computation
//! `(r·G, v·G + r·K)`, so a library change cannot silently produce a wrong opening
//! (it becomes [`BallotError::Internal`]).

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_TABLE, RistrettoPoint, Scalar};
use elastic_elgamal::{
    group::Ristretto, Ciphertext, CiphertextWithValue, LogEqualityProof, PreparedRange, PublicKey,
    RangeDecomposition, RangeProof, SecretKey,
};
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, OPTION_PROOF},
    dkg::parse_public_key,
    manifest::MAX_OPTIONS,
    pb, BallotError,
};

/// Length of a tracking code (`previous_tracking_code`).
pub const TRACKING_CODE_LEN: usize = 32;

/// Domain tag of every ballot proof transcript.
const BALLOT_DOMAIN: &[u8] = b"bboard/v1/ballot";

/// Parses the election's joint public key from its posted [`pb::JointKey`].
///
/// This only parses the joint key; [`crate::dkg::KeySet::from_joint_key`] also checks it
/// against the trustees' key shares (callers holding a `KeySet` pass
/// [`crate::dkg::KeySet::joint_key`]).
///
/// # Errors
///
/// [`BallotError::MalformedKey`] if not a canonical, non-identity Ristretto point.
pub fn election_key(joint: &pb::JointKey) -> Result<PublicKey<Ristretto>, BallotError> {
    parse_public_key(&joint.public_key).ok_or(BallotError::MalformedKey("joint"))
}

/// What a proof transcript binds besides the contest.
#[derive(Clone, Copy)]
struct Context<'a> {
    election_id: &'a str,
    precinct_id: &'a str,
    previous_tracking_code: &'a [u8],
}

impl Context<'_> {
    fn transcript(&self, position: usize, contest_id: &str, kind: &'static [u8]) -> Transcript {
        let mut t = Transcript::new(BALLOT_DOMAIN);
        t.append_message(b"election", self.election_id.as_bytes());
        t.append_message(b"precinct", self.precinct_id.as_bytes());
        t.append_message(b"previous", self.previous_tracking_code);
        t.append_u64(b"contest-position", position as u64);
        t.append_message(b"contest", contest_id.as_bytes());
        t.append_message(b"proof", kind);
        t
    }

    fn option_transcript(&self, position: usize, contest_id: &str, option: usize) -> Transcript {
        let mut t = self.transcript(position, contest_id, b"option-0-or-1");
        t.append_u64(b"option", option as u64);
        t
    }

    fn sum_transcript(&self, position: usize, rules: &Rules<'_>) -> Transcript {
        let mut t = self.transcript(position, &rules.contest.contest_id, b"selection-count");
        t.append_u64(b"options", rules.options as u64);
        t.append_u64(b"min", rules.min);
        t.append_u64(b"max", rules.max);
        t
    }
}

/// A contest's parameters, checked so that no library call below can panic on them.
struct Rules<'a> {
    contest: &'a pb::Contest,
    options: usize,
    min: u64,
    max: u64,
}

impl<'a> Rules<'a> {
    fn of(contest: &'a pb::Contest) -> Result<Self, BallotError> {
        let options = contest.options.len();
        let (min, max) = (contest.min_selections, contest.max_selections);
        // `RangeDecomposition::optimal` panics below 2 and the sum range is
        // `max - min + 1`, so these are preconditions, not style.
        if options == 0 || options > MAX_OPTIONS || min > max || max == 0 || max as usize > options
        {
            return Err(BallotError::BadSelectionLimits {
                contest: contest.contest_id.clone(),
                min,
                max,
                options,
            });
        }
        Ok(Self {
            contest,
            options,
            min: u64::from(min),
            max: u64::from(max),
        })
    }

    fn id(&self) -> &str {
        &self.contest.contest_id
    }

    /// Range of the sum proof when `max > min`.
    fn sum_range(&self) -> Option<PreparedRange<Ristretto>> {
        (self.max > self.min).then(|| RangeDecomposition::optimal(self.max - self.min + 1).into())
    }
}

fn rules(manifest: &pb::ElectionManifest) -> Result<Vec<Rules<'_>>, BallotError> {
    manifest.contests.iter().map(Rules::of).collect()
}

fn option_range() -> PreparedRange<Ristretto> {
    RangeDecomposition::optimal(2).into()
}

fn check_precinct(manifest: &pb::ElectionManifest, precinct_id: &str) -> Result<(), BallotError> {
    if manifest
        .precincts
        .iter()
        .any(|p| p.precinct_id == precinct_id)
    {
        Ok(())
    } else {
        Err(BallotError::UnknownPrecinct(precinct_id.to_owned()))
    }
}

fn check_contest_ids<'m>(
    what: &'static str,
    manifest: &'m pb::ElectionManifest,
    ids: impl ExactSizeIterator<Item = &'m str>,
) -> Result<(), BallotError> {
    if ids.len() != manifest.contests.len() {
        return Err(BallotError::ContestCount {
            what,
            expected: manifest.contests.len(),
            got: ids.len(),
        });
    }
    for (position, (contest, id)) in manifest.contests.iter().zip(ids).enumerate() {
        if contest.contest_id != id {
            return Err(BallotError::ContestOrder {
                what,
                position,
                expected: contest.contest_id.clone(),
                got: id.to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks plain selections against the manifest and returns, per contest, one flag per
/// option.
///
/// Rules: every contest exactly once, in manifest order; option indices in range and
/// distinct; the number of selections within `[min_selections, max_selections]`.
///
/// # Errors
///
/// [`BallotError::ContestCount`], [`BallotError::ContestOrder`],
/// [`BallotError::SelectionOutOfRange`], [`BallotError::DuplicateSelection`],
/// [`BallotError::SelectionCount`], [`BallotError::BadSelectionLimits`].
pub fn validate_selections(
    manifest: &pb::ElectionManifest,
    selections: &[pb::ContestSelection],
) -> Result<Vec<Vec<bool>>, BallotError> {
    let rules = rules(manifest)?;
    check_contest_ids(
        "selections",
        manifest,
        selections.iter().map(|s| s.contest_id.as_str()),
    )?;
    rules
        .iter()
        .zip(selections)
        .map(|(rules, selection)| {
            let mut flags = vec![false; rules.options];
            for &option in &selection.selected_options {
                let flag = flags.get_mut(option as usize).ok_or_else(|| {
                    BallotError::SelectionOutOfRange {
                        contest: rules.id().to_owned(),
                        option,
                        options: rules.options,
                    }
                })?;
                if *flag {
                    return Err(BallotError::DuplicateSelection {
                        contest: rules.id().to_owned(),
                        option,
                    });
                }
                *flag = true;
            }
            let count = selection.selected_options.len();
            if (count as u64) < rules.min || count as u64 > rules.max {
                return Err(BallotError::SelectionCount {
                    contest: rules.id().to_owned(),
                    count,
                    min: rules.contest.min_selections,
                    max: rules.contest.max_selections,
                });
            }
            Ok(flags)
        })
        .collect()
}

/// What the voting device keeps to open a ballot if the voter challenges it: the
/// selections and every encryption nonce. **Secret** while the ballot may be cast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallotOpening {
    /// One entry per contest, in manifest order.
    pub contests: Vec<ContestOpening>,
}

/// The opening of one contest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContestOpening {
    /// Contest id.
    pub contest_id: String,
    /// Selected option indices, as given to [`encrypt_ballot`].
    pub selected_options: Vec<u32>,
    /// Per option, the nonce `r` (canonical 32-byte scalar) of its ciphertext.
    pub nonces: Vec<[u8; 32]>,
}

impl BallotOpening {
    /// The selections, as published in a [`pb::SpoiledBallot`].
    pub fn selections(&self) -> Vec<pb::ContestSelection> {
        self.contests
            .iter()
            .map(|c| pb::ContestSelection {
                contest_id: c.contest_id.clone(),
                selected_options: c.selected_options.clone(),
            })
            .collect()
    }

    /// The nonces, as published in a [`pb::SpoiledBallot`].
    pub fn nonces(&self) -> Vec<pb::ContestNonces> {
        self.contests
            .iter()
            .map(|c| pb::ContestNonces {
                contest_id: c.contest_id.clone(),
                nonces: c.nonces.iter().map(|n| n.to_vec()).collect(),
            })
            .collect()
    }
}

/// An RNG that returns fixed bytes, then zeros; used only to hand a chosen nonce to
/// elastic-elgamal (see the module docs). Not random: never used for anything else.
struct FixedBytes {
    bytes: [u8; 64],
    used: usize,
    overrun: bool,
}

impl FixedBytes {
    /// Bytes that elastic-elgamal's Ristretto `generate_scalar` (64 bytes reduced mod ℓ)
    /// turns into exactly `scalar`.
    fn for_scalar(scalar: &Scalar) -> Self {
        let mut bytes = [0_u8; 64];
        bytes[..32].copy_from_slice(scalar.as_bytes());
        Self {
            bytes,
            used: 0,
            overrun: false,
        }
    }
}

impl RngCore for FixedBytes {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            match self.bytes.get(self.used) {
                Some(&b) => *byte = b,
                None => {
                    // Recorded and turned into an error by the caller: more draws than
                    // one scalar means the library changed how it makes nonces.
                    self.overrun = true;
                    *byte = 0;
                }
            }
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Only ever fed to `CiphertextWithValue::new` to transfer a nonce drawn from a real
// CSPRNG; see `encrypt_with_nonce`.
impl CryptoRng for FixedBytes {}

fn g_mul(scalar: &Scalar) -> RistrettoPoint {
    scalar * RISTRETTO_BASEPOINT_TABLE
}

/// `(r·G, v·G + r·K)`, computed by us.
fn expected_ciphertext(
    key: &PublicKey<Ristretto>,
    value: u64,
    nonce: &Scalar,
) -> (RistrettoPoint, RistrettoPoint) {
    (
        g_mul(nonce),
        g_mul(&Scalar::from(value)) + key.as_element() * nonce,
    )
}

fn same(ct: &Ciphertext<Ristretto>, expected: &(RistrettoPoint, RistrettoPoint)) -> bool {
    ct.random_element() == &expected.0 && ct.blinded_element() == &expected.1
}

/// Encrypts `value` with the nonce `nonce`, as a library object usable for proofs.
fn encrypt_with_nonce(
    key: &PublicKey<Ristretto>,
    value: u64,
    nonce: &Scalar,
) -> Result<CiphertextWithValue<Ristretto, u64>, BallotError> {
    let mut fixed = FixedBytes::for_scalar(nonce);
    let ct = CiphertextWithValue::new(value, key, &mut fixed);
    if fixed.overrun || !same(ct.inner(), &expected_ciphertext(key, value, nonce)) {
        return Err(BallotError::Internal("nonce transfer to elastic-elgamal"));
    }
    Ok(ct)
}

fn random_nonce<R: CryptoRng + RngCore>(rng: &mut R) -> Scalar {
    *SecretKey::<Ristretto>::generate(rng).expose_scalar()
}

/// Encrypts a voter's selections into a [`pb::Ballot`] for `precinct_id`, with all
/// proofs, and returns the opening the device keeps for a Benaloh challenge.
///
/// `previous_tracking_code` is the terminal's chain link; it is bound into every proof.
///
/// # Errors
///
/// [`BallotError::UnknownPrecinct`], the errors of [`validate_selections`], and
/// [`BallotError::Internal`] if the library misbehaves.
pub fn encrypt_ballot<R: CryptoRng + RngCore>(
    manifest: &pb::ElectionManifest,
    election_id: &str,
    key: &PublicKey<Ristretto>,
    precinct_id: &str,
    previous_tracking_code: [u8; TRACKING_CODE_LEN],
    selections: &[pb::ContestSelection],
    rng: &mut R,
) -> Result<(pb::Ballot, BallotOpening), BallotError> {
    check_precinct(manifest, precinct_id)?;
    let flags = validate_selections(manifest, selections)?;
    let rules = rules(manifest)?;
    let context = Context {
        election_id,
        precinct_id,
        previous_tracking_code: &previous_tracking_code,
    };
    let option_range = option_range();
    let mut contests = Vec::with_capacity(rules.len());
    let mut openings = Vec::with_capacity(rules.len());
    for (position, ((rules, flags), selection)) in
        rules.iter().zip(&flags).zip(selections).enumerate()
    {
        let mut ciphertexts = Vec::with_capacity(rules.options);
        let mut range_proof = Vec::with_capacity(rules.options * OPTION_PROOF);
        let mut nonces = Vec::with_capacity(rules.options);
        let mut nonce_sum = Scalar::ZERO;
        let mut sum = Ciphertext::<Ristretto>::zero();
        for (option, &flag) in flags.iter().enumerate() {
            let nonce = random_nonce(rng);
            let ct = encrypt_with_nonce(key, u64::from(flag), &nonce)?;
            let proof = RangeProof::from_ciphertext(
                key,
                &option_range,
                &ct,
                &mut context.option_transcript(position, rules.id(), option),
                rng,
            );
            range_proof.extend(
                codec::encode_option_proof(&proof)
                    .ok_or(BallotError::Internal("option proof encoding"))?,
            );
            let ct = *ct.inner();
            sum += ct;
            nonce_sum += nonce;
            ciphertexts.push(ct.to_bytes());
            nonces.push(nonce.to_bytes());
        }
        let count = flags.iter().filter(|&&f| f).count() as u64;
        // The sum minus min encrypts `count - min` under `nonce_sum`.
        let shifted = sum - Ciphertext::non_blinded(rules.min);
        let mut transcript = context.sum_transcript(position, rules);
        let sum_proof = match rules.sum_range() {
            Some(range) => {
                let ct = encrypt_with_nonce(key, count - rules.min, &nonce_sum)?;
                if ct.inner().to_bytes() != shifted.to_bytes() {
                    return Err(BallotError::Internal("homomorphic sum"));
                }
                let proof = RangeProof::from_ciphertext(key, &range, &ct, &mut transcript, rng);
                codec::encode_range_proof(&proof)
                    .ok_or(BallotError::Internal("sum proof encoding"))?
            }
            None => {
                let secret = SecretKey::<Ristretto>::from_bytes(nonce_sum.as_bytes())
                    .ok_or(BallotError::Internal("nonce sum"))?;
                LogEqualityProof::new(
                    key,
                    &secret,
                    (*shifted.random_element(), *shifted.blinded_element()),
                    &mut transcript,
                    rng,
                )
                .to_bytes()
            }
        };
        contests.push(pb::EncryptedContest {
            contest_id: rules.id().to_owned(),
            ciphertexts,
            range_proof,
            sum_proof,
        });
        openings.push(ContestOpening {
            contest_id: rules.id().to_owned(),
            selected_options: selection.selected_options.clone(),
            nonces,
        });
    }
    Ok((
        pb::Ballot {
            precinct_id: precinct_id.to_owned(),
            contests,
            previous_tracking_code: previous_tracking_code.to_vec(),
        },
        BallotOpening { contests: openings },
    ))
}

/// Parses a contest's ciphertexts: one per option, canonical points, non-identity
/// random element.
pub(crate) fn parse_ciphertexts(
    contest_id: &str,
    options: usize,
    encoded: &[Vec<u8>],
) -> Result<Vec<Ciphertext<Ristretto>>, BallotError> {
    if encoded.len() != options {
        return Err(BallotError::OptionCount {
            contest: contest_id.to_owned(),
            what: "ciphertexts",
            expected: options,
            got: encoded.len(),
        });
    }
    encoded
        .iter()
        .enumerate()
        .map(|(option, bytes)| {
            codec::ciphertext(bytes)
                .filter(|ct| {
                    use curve25519_dalek::traits::IsIdentity;
                    !ct.random_element().is_identity()
                })
                .ok_or_else(|| BallotError::MalformedCiphertext {
                    contest: contest_id.to_owned(),
                    option,
                })
        })
        .collect()
}

/// Checks the ballot's structure against the manifest (precinct, contests in order,
/// one ciphertext per option, tracking code length) and parses its ciphertexts.
pub(crate) fn parse_ballot(
    manifest: &pb::ElectionManifest,
    ballot: &pb::Ballot,
) -> Result<Vec<Vec<Ciphertext<Ristretto>>>, BallotError> {
    check_precinct(manifest, &ballot.precinct_id)?;
    if ballot.previous_tracking_code.len() != TRACKING_CODE_LEN {
        return Err(BallotError::BadTrackingCode(
            ballot.previous_tracking_code.len(),
        ));
    }
    check_contest_ids(
        "ballot",
        manifest,
        ballot.contests.iter().map(|c| c.contest_id.as_str()),
    )?;
    manifest
        .contests
        .iter()
        .zip(&ballot.contests)
        .map(|(contest, encrypted)| {
            parse_ciphertexts(
                &contest.contest_id,
                contest.options.len(),
                &encrypted.ciphertexts,
            )
        })
        .collect()
}

/// Verifies an encrypted ballot: structure, canonical encodings, and every proof.
///
/// Deterministic, and never panics on arbitrary bytes in any field. Cost is about one
/// 2-ring proof per option plus one range proof per contest.
///
/// # Errors
///
/// The first failure, naming contest and option: [`BallotError::UnknownPrecinct`],
/// [`BallotError::BadTrackingCode`], [`BallotError::ContestCount`],
/// [`BallotError::ContestOrder`], [`BallotError::OptionCount`],
/// [`BallotError::MalformedCiphertext`], [`BallotError::MalformedOptionProof`],
/// [`BallotError::InvalidOptionProof`], [`BallotError::MalformedSumProof`],
/// [`BallotError::InvalidSumProof`], [`BallotError::BadSelectionLimits`].
pub fn verify_ballot(
    manifest: &pb::ElectionManifest,
    election_id: &str,
    key: &PublicKey<Ristretto>,
    ballot: &pb::Ballot,
) -> Result<(), BallotError> {
    let rules = rules(manifest)?;
    let ciphertexts = parse_ballot(manifest, ballot)?;
    let context = Context {
        election_id,
        precinct_id: &ballot.precinct_id,
        previous_tracking_code: &ballot.previous_tracking_code,
    };
    let option_range = option_range();
    for (position, ((rules, encrypted), cts)) in rules
        .iter()
        .zip(&ballot.contests)
        .zip(&ciphertexts)
        .enumerate()
    {
        let id = rules.id();
        if encrypted.range_proof.len() != rules.options * OPTION_PROOF {
            return Err(BallotError::MalformedOptionProof {
                contest: id.to_owned(),
                // The length is wrong for the contest as a whole; name the first option
                // whose proof is incomplete.
                option: (encrypted.range_proof.len() / OPTION_PROOF).min(rules.options - 1),
            });
        }
        for (option, (ct, proof)) in cts
            .iter()
            .zip(encrypted.range_proof.chunks(OPTION_PROOF))
            .enumerate()
        {
            let proof =
                codec::option_proof(proof).ok_or_else(|| BallotError::MalformedOptionProof {
                    contest: id.to_owned(),
                    option,
                })?;
            proof
                .verify(
                    key,
                    &option_range,
                    *ct,
                    &mut context.option_transcript(position, id, option),
                )
                .map_err(|_| BallotError::InvalidOptionProof {
                    contest: id.to_owned(),
                    option,
                })?;
        }
        let sum = cts.iter().fold(Ciphertext::zero(), |acc, ct| acc + *ct);
        let shifted = sum - Ciphertext::non_blinded(rules.min);
        let mut transcript = context.sum_transcript(position, rules);
        let malformed = || BallotError::MalformedSumProof(id.to_owned());
        let invalid = |_| BallotError::InvalidSumProof(id.to_owned());
        match rules.sum_range() {
            Some(range) => codec::range_proof(&encrypted.sum_proof)
                .ok_or_else(malformed)?
                .verify(key, &range, shifted, &mut transcript)
                .map_err(invalid)?,
            None => LogEqualityProof::<Ristretto>::from_bytes(&encrypted.sum_proof)
                .ok_or_else(malformed)?
                .verify(
                    key,
                    (*shifted.random_element(), *shifted.blinded_element()),
                    &mut transcript,
                )
                .map_err(invalid)?,
        }
    }
    Ok(())
}

/// Publishes a challenged ballot with its opening. The result is never counted.
pub fn spoil(ballot: pb::Ballot, opening: &BallotOpening) -> pb::SpoiledBallot {
    pb::SpoiledBallot {
        ballot: Some(ballot),
        nonces: opening.nonces(),
        selections: opening.selections(),
    }
}

/// Verifies a spoiled ballot: the ballot's proofs ([`verify_ballot`]), the published
/// selections against the manifest, and that encrypting them with the published nonces
/// gives exactly the published ciphertexts — i.e. the device encrypted what it showed.
///
/// # Errors
///
/// [`BallotError::MissingBallot`], the errors of [`verify_ballot`] and
/// [`validate_selections`], [`BallotError::ContestCount`] / [`BallotError::ContestOrder`] /
/// [`BallotError::OptionCount`] for the nonces, [`BallotError::MalformedNonce`],
/// [`BallotError::OpeningMismatch`].
pub fn verify_spoiled(
    manifest: &pb::ElectionManifest,
    election_id: &str,
    key: &PublicKey<Ristretto>,
    spoiled: &pb::SpoiledBallot,
) -> Result<(), BallotError> {
    let ballot = spoiled.ballot.as_ref().ok_or(BallotError::MissingBallot)?;
    verify_ballot(manifest, election_id, key, ballot)?;
    let flags = validate_selections(manifest, &spoiled.selections)?;
    check_contest_ids(
        "nonces",
        manifest,
        spoiled.nonces.iter().map(|n| n.contest_id.as_str()),
    )?;
    let ciphertexts = parse_ballot(manifest, ballot)?;
    for (((contest, flags), nonces), cts) in manifest
        .contests
        .iter()
        .zip(&flags)
        .zip(&spoiled.nonces)
        .zip(&ciphertexts)
    {
        let id = &contest.contest_id;
        if nonces.nonces.len() != flags.len() {
            return Err(BallotError::OptionCount {
                contest: id.clone(),
                what: "nonces",
                expected: flags.len(),
                got: nonces.nonces.len(),
            });
        }
        for (option, ((&flag, nonce), ct)) in flags.iter().zip(&nonces.nonces).zip(cts).enumerate()
        {
            let nonce = codec::scalar(nonce).ok_or_else(|| BallotError::MalformedNonce {
                contest: id.clone(),
                option,
            })?;
            if !same(ct, &expected_ciphertext(key, u64::from(flag), &nonce)) {
                return Err(BallotError::OpeningMismatch {
                    contest: id.clone(),
                    option,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use elastic_elgamal::Keypair;
    use proptest::prelude::*;
    use rand::thread_rng;

    use super::*;
    use crate::test_util::manifest;

    const E: &str = "election-1";

    fn sel(contest: &str, options: &[u32]) -> pb::ContestSelection {
        pb::ContestSelection {
            contest_id: contest.into(),
            selected_options: options.to_vec(),
        }
    }

    /// Contests: "mayor" (3 options, 0..=1), "council" (4 options, 1..=2),
    /// "measure" (2 options, exactly 1).
    fn selections() -> Vec<pb::ContestSelection> {
        vec![
            sel("mayor", &[2]),
            sel("council", &[0, 3]),
            sel("measure", &[1]),
        ]
    }

    fn setup() -> (pb::ElectionManifest, Keypair<Ristretto>) {
        (manifest(), Keypair::generate(&mut thread_rng()))
    }

    fn encrypt(
        m: &pb::ElectionManifest,
        keys: &Keypair<Ristretto>,
        s: &[pb::ContestSelection],
    ) -> (pb::Ballot, BallotOpening) {
        encrypt_ballot(m, E, keys.public(), "p1", [9; 32], s, &mut thread_rng()).unwrap()
    }

    #[test]
    fn valid_ballot_verifies_and_decrypts_to_selections() {
        let (m, keys) = setup();
        let (ballot, opening) = encrypt(&m, &keys, &selections());
        verify_ballot(&m, E, keys.public(), &ballot).unwrap();
        assert_eq!(opening.selections(), selections());
        let table = elastic_elgamal::DiscreteLogTable::new(0..=1);
        let decrypted: Vec<Vec<u64>> = ballot
            .contests
            .iter()
            .map(|c| {
                c.ciphertexts
                    .iter()
                    .map(|ct| {
                        keys.secret()
                            .decrypt(codec::ciphertext(ct).unwrap(), &table)
                    })
                    .map(Option::unwrap)
                    .collect()
            })
            .collect();
        assert_eq!(decrypted, vec![vec![0, 0, 1], vec![1, 0, 0, 1], vec![0, 1]]);
        // Empty selection is allowed where min = 0.
        let mut s = selections();
        s[0].selected_options.clear();
        let (ballot, _) = encrypt(&m, &keys, &s);
        verify_ballot(&m, E, keys.public(), &ballot).unwrap();
    }

    #[test]
    fn selections_are_validated_precisely() {
        let (m, keys) = setup();
        let err = |s: &[pb::ContestSelection]| {
            encrypt_ballot(&m, E, keys.public(), "p1", [0; 32], s, &mut thread_rng()).unwrap_err()
        };
        let mut s = selections();
        s[1].selected_options = vec![0, 1, 2];
        assert_eq!(
            err(&s),
            BallotError::SelectionCount {
                contest: "council".into(),
                count: 3,
                min: 1,
                max: 2
            }
        );
        s[1].selected_options.clear();
        assert!(matches!(
            err(&s),
            BallotError::SelectionCount { count: 0, .. }
        ));
        let mut s = selections();
        s[1].selected_options = vec![3, 3];
        assert_eq!(
            err(&s),
            BallotError::DuplicateSelection {
                contest: "council".into(),
                option: 3
            }
        );
        s[1].selected_options = vec![4];
        assert_eq!(
            err(&s),
            BallotError::SelectionOutOfRange {
                contest: "council".into(),
                option: 4,
                options: 4
            }
        );
        let mut s = selections();
        s.swap(0, 1);
        assert!(matches!(
            err(&s),
            BallotError::ContestOrder { position: 0, .. }
        ));
        s.pop();
        assert!(matches!(
            err(&s),
            BallotError::ContestCount {
                expected: 3,
                got: 2,
                ..
            }
        ));
        assert_eq!(
            encrypt_ballot(
                &m,
                E,
                keys.public(),
                "nowhere",
                [0; 32],
                &selections(),
                &mut thread_rng()
            )
            .unwrap_err(),
            BallotError::UnknownPrecinct("nowhere".into())
        );
    }

    #[test]
    fn proofs_are_bound_to_election_precinct_contest_and_chain() {
        let (mut m, keys) = setup();
        m.precincts.push(pb::Precinct {
            precinct_id: "p2".into(),
            name: "P2".into(),
        });
        let (ballot, _) = encrypt(&m, &keys, &selections());
        assert_eq!(
            verify_ballot(&m, "election-2", keys.public(), &ballot),
            Err(BallotError::InvalidOptionProof {
                contest: "mayor".into(),
                option: 0
            })
        );
        let mut moved = ballot.clone();
        moved.precinct_id = "p2".into();
        assert!(matches!(
            verify_ballot(&m, E, keys.public(), &moved),
            Err(BallotError::InvalidOptionProof { option: 0, .. })
        ));
        let mut moved = ballot.clone();
        moved.previous_tracking_code[0] ^= 1;
        assert!(matches!(
            verify_ballot(&m, E, keys.public(), &moved),
            Err(BallotError::InvalidOptionProof { option: 0, .. })
        ));
        // Same shape, other contest id: rename the contest in manifest and ballot.
        let mut renamed = m.clone();
        renamed.contests[0].contest_id = "governor".into();
        let mut moved = ballot.clone();
        moved.contests[0].contest_id = "governor".into();
        assert_eq!(
            verify_ballot(&renamed, E, keys.public(), &moved),
            Err(BallotError::InvalidOptionProof {
                contest: "governor".into(),
                option: 0
            })
        );
        // Swapping two options (ciphertexts and proofs together) breaks the option binding.
        let mut swapped = ballot.clone();
        let c = &mut swapped.contests[1];
        c.ciphertexts.swap(0, 1);
        let (a, b) = c.range_proof.split_at_mut(OPTION_PROOF);
        a.swap_with_slice(&mut b[..OPTION_PROOF]);
        assert_eq!(
            verify_ballot(&m, E, keys.public(), &swapped),
            Err(BallotError::InvalidOptionProof {
                contest: "council".into(),
                option: 0
            })
        );
        // Another key.
        let other = Keypair::<Ristretto>::generate(&mut thread_rng());
        assert!(verify_ballot(&m, E, other.public(), &ballot).is_err());
    }

    #[test]
    fn tampered_ballots_are_rejected_with_precise_errors() {
        let (m, keys) = setup();
        let (ballot, _) = encrypt(&m, &keys, &selections());
        let check = |b: &pb::Ballot| verify_ballot(&m, E, keys.public(), b);

        let mut b = ballot.clone();
        b.contests[1].range_proof[OPTION_PROOF * 2 + 5] ^= 1;
        assert_eq!(
            check(&b),
            Err(BallotError::InvalidOptionProof {
                contest: "council".into(),
                option: 2
            })
        );
        let mut b = ballot.clone();
        b.contests[1].range_proof[OPTION_PROOF * 3 + 31] = 0xff; // non-canonical scalar
        assert_eq!(
            check(&b),
            Err(BallotError::MalformedOptionProof {
                contest: "council".into(),
                option: 3
            })
        );
        let mut b = ballot.clone();
        b.contests[1].range_proof.truncate(OPTION_PROOF * 2);
        assert!(matches!(
            check(&b),
            Err(BallotError::MalformedOptionProof { option: 2, .. })
        ));
        let mut b = ballot.clone();
        let last = b.contests[1].sum_proof.len() - 1;
        b.contests[1].sum_proof[last - 3] ^= 1;
        assert_eq!(
            check(&b),
            Err(BallotError::InvalidSumProof("council".into()))
        );
        let mut b = ballot.clone();
        b.contests[2].sum_proof[3] ^= 1;
        assert_eq!(
            check(&b),
            Err(BallotError::InvalidSumProof("measure".into()))
        );
        let mut b = ballot.clone();
        b.contests[2].sum_proof.push(0);
        assert_eq!(
            check(&b),
            Err(BallotError::MalformedSumProof("measure".into()))
        );
        let mut b = ballot.clone();
        b.contests[0].ciphertexts[1][0] ^= 1;
        assert!(matches!(
            check(&b),
            Err(BallotError::MalformedCiphertext { option: 1, .. })
                | Err(BallotError::InvalidOptionProof { option: 1, .. })
        ));
        let mut b = ballot.clone();
        b.contests[0].ciphertexts[1][..32].fill(0); // identity random element
        assert_eq!(
            check(&b),
            Err(BallotError::MalformedCiphertext {
                contest: "mayor".into(),
                option: 1
            })
        );
        let mut b = ballot.clone();
        b.contests[0].ciphertexts.pop();
        assert!(matches!(
            check(&b),
            Err(BallotError::OptionCount {
                expected: 3,
                got: 2,
                ..
            })
        ));
        let mut b = ballot.clone();
        b.previous_tracking_code.pop();
        assert_eq!(check(&b), Err(BallotError::BadTrackingCode(31)));
        let mut b = ballot.clone();
        b.contests.pop();
        assert!(matches!(check(&b), Err(BallotError::ContestCount { .. })));
        let mut b = ballot.clone();
        b.precinct_id = "x".into();
        assert_eq!(check(&b), Err(BallotError::UnknownPrecinct("x".into())));
    }

    /// A cheating device encrypts 2 in one option; it cannot make a valid 0/1 proof.
    #[test]
    fn ciphertext_of_two_is_rejected() {
        let (m, keys) = setup();
        let (mut ballot, _) = encrypt(&m, &keys, &selections());
        let mut rng = thread_rng();
        let nonce = random_nonce(&mut rng);
        let two = encrypt_with_nonce(keys.public(), 2, &nonce).unwrap();
        // The best it can do: a proof for 2 over the range 0..3 (a different statement).
        let proof = RangeProof::from_ciphertext(
            keys.public(),
            &RangeDecomposition::optimal(3).into(),
            &two,
            &mut Transcript::new(b"x"),
            &mut rng,
        );
        let encoded = codec::encode_range_proof(&proof).unwrap();
        ballot.contests[1].ciphertexts[1] = two.inner().to_bytes();
        ballot.contests[1].range_proof[OPTION_PROOF..2 * OPTION_PROOF]
            .copy_from_slice(&encoded[encoded.len() - OPTION_PROOF..]);
        assert_eq!(
            verify_ballot(&m, E, keys.public(), &ballot),
            Err(BallotError::InvalidOptionProof {
                contest: "council".into(),
                option: 1
            })
        );
    }

    /// Over-voting: every option proof is honest, but the count exceeds the limit.
    #[test]
    fn selections_over_the_limit_fail_the_sum_proof() {
        let (m, keys) = setup();
        let mut loose = m.clone();
        loose.contests[1].max_selections = 4;
        let mut s = selections();
        s[1].selected_options = vec![0, 1, 2];
        let (ballot, _) = encrypt(&loose, &keys, &s);
        verify_ballot(&loose, E, keys.public(), &ballot).unwrap();
        assert!(matches!(
            verify_ballot(&m, E, keys.public(), &ballot),
            Err(BallotError::MalformedSumProof(c)) | Err(BallotError::InvalidSumProof(c))
                if c == "council"
        ));
        // Exactly-one contest given two selections with a looser manifest.
        let mut loose = m.clone();
        loose.contests[2].max_selections = 2;
        let mut s = selections();
        s[2].selected_options = vec![0, 1];
        let (ballot, _) = encrypt(&loose, &keys, &s);
        assert!(matches!(
            verify_ballot(&m, E, keys.public(), &ballot),
            Err(BallotError::MalformedSumProof(c)) | Err(BallotError::InvalidSumProof(c))
                if c == "measure"
        ));
    }

    #[test]
    fn spoiled_ballot_opens_and_lies_are_caught() {
        let (m, keys) = setup();
        let (ballot, opening) = encrypt(&m, &keys, &selections());
        let spoiled = spoil(ballot.clone(), &opening);
        verify_spoiled(&m, E, keys.public(), &spoiled).unwrap();

        // The device shows one selection but encrypted another.
        let mut lie = spoiled.clone();
        lie.selections[0].selected_options = vec![1];
        assert_eq!(
            verify_spoiled(&m, E, keys.public(), &lie),
            Err(BallotError::OpeningMismatch {
                contest: "mayor".into(),
                option: 1
            })
        );
        let mut bad = spoiled.clone();
        bad.nonces[1].nonces[2][0] ^= 1;
        assert_eq!(
            verify_spoiled(&m, E, keys.public(), &bad),
            Err(BallotError::OpeningMismatch {
                contest: "council".into(),
                option: 2
            })
        );
        let mut bad = spoiled.clone();
        bad.nonces[1].nonces[2] = vec![0xff; 32];
        assert_eq!(
            verify_spoiled(&m, E, keys.public(), &bad),
            Err(BallotError::MalformedNonce {
                contest: "council".into(),
                option: 2
            })
        );
        let mut bad = spoiled.clone();
        bad.nonces[1].nonces.pop();
        assert!(matches!(
            verify_spoiled(&m, E, keys.public(), &bad),
            Err(BallotError::OptionCount { what: "nonces", .. })
        ));
        let mut bad = spoiled.clone();
        bad.nonces.swap(0, 1);
        assert!(matches!(
            verify_spoiled(&m, E, keys.public(), &bad),
            Err(BallotError::ContestOrder { what: "nonces", .. })
        ));
        let mut bad = spoiled.clone();
        bad.ballot = None;
        assert_eq!(
            verify_spoiled(&m, E, keys.public(), &bad),
            Err(BallotError::MissingBallot)
        );
        // Opening of another ballot.
        let (_, other) = encrypt(&m, &keys, &selections());
        assert!(matches!(
            verify_spoiled(&m, E, keys.public(), &spoil(ballot, &other)),
            Err(BallotError::OpeningMismatch { option: 0, .. })
        ));
        // The opening survives a serde round trip.
        let json = serde_json::to_string(&opening).unwrap();
        assert_eq!(
            serde_json::from_str::<BallotOpening>(&json).unwrap(),
            opening
        );
    }

    #[test]
    fn election_key_parses_the_joint_key() {
        let keys = Keypair::<Ristretto>::generate(&mut thread_rng());
        let joint = pb::JointKey {
            public_key: keys.public().as_bytes().to_vec(),
            trustee_public_shares: vec![],
        };
        assert_eq!(election_key(&joint).unwrap(), *keys.public());
        let bad = pb::JointKey {
            public_key: vec![0xff; 32],
            trustee_public_shares: vec![],
        };
        assert_eq!(election_key(&bad), Err(BallotError::MalformedKey("joint")));
    }

    /// Rough throughput figure: `cargo test -p bboard-ballot --lib -- --ignored
    /// --nocapture verify_timing` (nearly all time is in curve25519-dalek, which the
    /// workspace's dev profile already builds at opt-level 2).
    #[test]
    #[ignore = "timing, not a check"]
    fn verify_timing() {
        let keys = Keypair::<Ristretto>::generate(&mut thread_rng());
        let mut m = manifest();
        m.contests = vec![pb::Contest {
            contest_id: "five".into(),
            title: "Five".into(),
            options: (0..5).map(|i| i.to_string()).collect(),
            min_selections: 0,
            max_selections: 2,
        }];
        let s = [sel("five", &[1, 4])];
        let started = std::time::Instant::now();
        let ballots: Vec<_> = (0..200).map(|_| encrypt(&m, &keys, &s).0).collect();
        let encrypt_time = started.elapsed() / 200;
        let started = std::time::Instant::now();
        for b in &ballots {
            verify_ballot(&m, E, keys.public(), b).unwrap();
        }
        println!(
            "5-option contest (0..=2): encrypt {encrypt_time:?}, verify {:?} per ballot",
            started.elapsed() / 200
        );
    }

    fn mutate(bytes: &mut Vec<u8>, how: &(usize, u8, u8)) {
        let (pos, byte, mode) = *how;
        match mode % 4 {
            0 if !bytes.is_empty() => {
                let i = pos % bytes.len();
                bytes[i] ^= byte | 1;
            }
            1 => bytes.truncate(pos % (bytes.len() + 1)),
            2 => bytes.push(byte),
            _ => *bytes = vec![byte; pos % 200],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random bytes in any field never make verification panic, and a mutated ballot
        /// is never accepted.
        #[test]
        fn verify_never_panics_on_mutated_ballots(
            edits in proptest::collection::vec((0_usize..8, any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
            random_bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let (m, keys) = setup();
            let (mut ballot, opening) = encrypt(&m, &keys, &selections());
            let original = ballot.clone();
            for (field, pos, byte, mode) in &edits {
                let how = (*pos, *byte, *mode);
                let c = pos % ballot.contests.len().max(1);
                match field {
                    0 => mutate(&mut ballot.previous_tracking_code, &how),
                    1 => ballot.precinct_id = String::from_utf8_lossy(&random_bytes).into_owned(),
                    2 if !ballot.contests.is_empty() => {
                        let cts = &mut ballot.contests[c].ciphertexts;
                        if cts.is_empty() { cts.push(random_bytes.clone()) } else {
                            let i = *byte as usize % cts.len();
                            mutate(&mut cts[i], &how);
                        }
                    }
                    3 if !ballot.contests.is_empty() => mutate(&mut ballot.contests[c].range_proof, &how),
                    4 if !ballot.contests.is_empty() => mutate(&mut ballot.contests[c].sum_proof, &how),
                    5 if !ballot.contests.is_empty() => {
                        ballot.contests[c].sum_proof = random_bytes.clone();
                        ballot.contests[c].range_proof = random_bytes.clone();
                    }
                    6 if !ballot.contests.is_empty() => {
                        ballot.contests[c].ciphertexts = random_bytes.chunks(64).map(<[u8]>::to_vec).collect();
                    }
                    _ => { ballot.contests.truncate(pos % 4); }
                }
            }
            let result = verify_ballot(&m, E, keys.public(), &ballot);
            if ballot != original {
                prop_assert!(result.is_err());
            }
            let spoiled = spoil(ballot.clone(), &opening);
            let _ = verify_spoiled(&m, E, keys.public(), &spoiled);
            let mut tally = crate::tally::Tally::new(&m).unwrap();
            let _ = tally.add_ballot(&ballot);
        }
    }
}
