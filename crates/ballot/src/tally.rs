//! Homomorphic tally and verifiable threshold decryption.
//!
//! 1. Everyone adds the admitted ballots of each precinct ([`Tally::add_ballot`]): per
//!    precinct and contest, the component-wise sum of the option ciphertexts
//!    ([`ContestTally`]). Spoiled ballots are never added; individual ballots are never
//!    decrypted.
//! 2. Each trustee posts, per (precinct, contest), a [`pb::DecryptionShare`]
//!    ([`decryption_share`]): for every option `D_i = s·R_i` (its key share `s` times the
//!    sum's random element) with a Chaum–Pedersen proof that `log_G(S) = log_{R_i}(D_i)`
//!    (`S = s·G` its public key share). Encodings: `shares[i]` is `D_i` (32-byte
//!    compressed Ristretto), `proofs[i]` is elastic-elgamal's [`LogEqualityProof`]
//!    `challenge || response` (64 bytes). The proof transcript starts with
//!    `bboard/v1/decryption-share` and binds election, precinct, contest, trustee index
//!    and option index, so a share cannot be replayed for another aggregate.
//! 3. Anyone checks shares ([`verify_decryption_share`]) and combines `k` of them by
//!    Lagrange interpolation ([`combine`]) into `x_i·G`, then recovers `x_i` in
//!    `0..=ballots_counted` by baby-step giant-step ([`discrete_log`]): `O(√n)` time and
//!    memory (about 1,000 table entries for a million ballots), where a full lookup
//!    table would need one entry per possible count.
//! 4. The result ([`result_message`]) is checkable against the decryption by anyone
//!    ([`check_result`]).

use std::collections::{BTreeMap, HashMap};

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, RistrettoPoint, Scalar};
use elastic_elgamal::{
    group::Ristretto, CandidateDecryption, Ciphertext, Keypair, LogEqualityProof,
    VerifiableDecryption,
};
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};

use crate::{
    ballot::parse_ballot,
    codec,
    dkg::{KeySet, Trustee},
    pb, BallotError,
};

/// Domain tag of every decryption-share proof transcript.
const SHARE_DOMAIN: &[u8] = b"bboard/v1/decryption-share";

/// The encrypted sums of one contest in one precinct.
#[derive(Debug, Clone)]
pub struct ContestTally {
    /// Contest id.
    pub contest_id: String,
    /// Per option, the sum of the ballots' ciphertexts (encrypts the option's count).
    pub sums: Vec<Ciphertext<Ristretto>>,
    /// Number of ballots added.
    pub ballots_counted: u64,
}

impl ContestTally {
    /// An empty tally of a contest with `options` options.
    pub fn new(contest_id: &str, options: usize) -> Self {
        Self {
            contest_id: contest_id.to_owned(),
            sums: vec![Ciphertext::zero(); options],
            ballots_counted: 0,
        }
    }

    /// The sums as 64-byte ciphertexts (random element, then blinded element), for
    /// auditors to print and compare.
    pub fn to_bytes(&self) -> Vec<Vec<u8>> {
        self.sums.iter().map(|ct| ct.to_bytes()).collect()
    }

    /// Rebuilds a contest tally from encoded sums (e.g. published by an auditor).
    ///
    /// # Errors
    ///
    /// [`BallotError::MalformedCiphertext`] naming the option.
    pub fn from_bytes(
        contest_id: &str,
        sums: &[Vec<u8>],
        ballots_counted: u64,
    ) -> Result<Self, BallotError> {
        let sums = sums
            .iter()
            .enumerate()
            .map(|(option, bytes)| {
                codec::ciphertext(bytes).ok_or_else(|| BallotError::MalformedCiphertext {
                    contest: contest_id.to_owned(),
                    option,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            contest_id: contest_id.to_owned(),
            sums,
            ballots_counted,
        })
    }
}

/// The encrypted tally of an election, keyed by `(precinct_id, contest_id)`.
#[derive(Debug, Clone)]
pub struct Tally {
    manifest: pb::ElectionManifest,
    contests: BTreeMap<(String, String), ContestTally>,
}

impl Tally {
    /// An empty tally: every contest of every precinct of `manifest`, zero ballots.
    ///
    /// # Errors
    ///
    /// [`BallotError::NoContests`] if the manifest has no contest.
    pub fn new(manifest: &pb::ElectionManifest) -> Result<Self, BallotError> {
        if manifest.contests.is_empty() {
            return Err(BallotError::NoContests);
        }
        let mut contests = BTreeMap::new();
        for precinct in &manifest.precincts {
            for contest in &manifest.contests {
                contests.insert(
                    (precinct.precinct_id.clone(), contest.contest_id.clone()),
                    ContestTally::new(&contest.contest_id, contest.options.len()),
                );
            }
        }
        Ok(Self {
            manifest: manifest.clone(),
            contests,
        })
    }

    /// Adds one admitted ballot to its precinct's sums. All or nothing: a ballot that
    /// does not fit the manifest changes nothing.
    ///
    /// Only add ballots that passed [`crate::ballot::verify_ballot`]; this checks the
    /// structure and encodings, not the proofs (the board already did).
    ///
    /// # Errors
    ///
    /// The structural errors of [`crate::ballot::verify_ballot`].
    pub fn add_ballot(&mut self, ballot: &pb::Ballot) -> Result<(), BallotError> {
        let ciphertexts = parse_ballot(&self.manifest, ballot)?;
        for (contest, cts) in self.manifest.contests.iter().zip(ciphertexts) {
            let tally = self
                .contests
                .get_mut(&(ballot.precinct_id.clone(), contest.contest_id.clone()))
                .ok_or(BallotError::Internal("tally entry"))?;
            for (sum, ct) in tally.sums.iter_mut().zip(cts) {
                *sum += ct;
            }
            tally.ballots_counted += 1;
        }
        Ok(())
    }

    /// The sums of one contest in one precinct.
    pub fn contest(&self, precinct_id: &str, contest_id: &str) -> Option<&ContestTally> {
        self.contests
            .get(&(precinct_id.to_owned(), contest_id.to_owned()))
    }

    /// Every `(precinct_id, contest tally)`, ordered by precinct id then contest id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContestTally)> {
        self.contests.iter().map(|((p, _), t)| (p.as_str(), t))
    }
}

fn share_transcript(
    election_id: &str,
    precinct_id: &str,
    contest_id: &str,
    trustee: u32,
    option: usize,
) -> Transcript {
    let mut t = Transcript::new(SHARE_DOMAIN);
    t.append_message(b"election", election_id.as_bytes());
    t.append_message(b"precinct", precinct_id.as_bytes());
    t.append_message(b"contest", contest_id.as_bytes());
    t.append_u64(b"trustee", u64::from(trustee));
    t.append_u64(b"option", option as u64);
    t
}

/// A trustee's decryption share of one contest tally, with one proof per option.
///
/// # Errors
///
/// None today; the `Result` leaves room for checks of the trustee's state.
pub fn decryption_share<R: CryptoRng + RngCore>(
    trustee: &Trustee,
    election_id: &str,
    precinct_id: &str,
    contest: &ContestTally,
    rng: &mut R,
) -> Result<pb::DecryptionShare, BallotError> {
    let keys = Keypair::from(trustee.inner.secret_share().clone());
    let index = trustee.index();
    let mut shares = Vec::with_capacity(contest.sums.len());
    let mut proofs = Vec::with_capacity(contest.sums.len());
    for (option, sum) in contest.sums.iter().enumerate() {
        let (share, proof) = VerifiableDecryption::new(
            *sum,
            &keys,
            &mut share_transcript(election_id, precinct_id, &contest.contest_id, index, option),
            rng,
        );
        shares.push(share.to_bytes());
        proofs.push(proof.to_bytes());
    }
    Ok(pb::DecryptionShare {
        trustee_index: index,
        precinct_id: precinct_id.to_owned(),
        contest_id: contest.contest_id.clone(),
        shares,
        proofs,
    })
}

/// Checks a posted decryption share against the tally everyone computed and returns the
/// checked per-option shares.
fn check_share(
    key_set: &KeySet,
    election_id: &str,
    precinct_id: &str,
    contest: &ContestTally,
    share: &pb::DecryptionShare,
) -> Result<Vec<VerifiableDecryption<Ristretto>>, BallotError> {
    if share.precinct_id != precinct_id || share.contest_id != contest.contest_id {
        return Err(BallotError::WrongScope {
            what: "decryption share",
            precinct: precinct_id.to_owned(),
            contest: contest.contest_id.clone(),
            got_precinct: share.precinct_id.clone(),
            got_contest: share.contest_id.clone(),
        });
    }
    let trustee = share.trustee_index;
    let trustees = key_set.threshold().trustees;
    let key = key_set
        .inner
        .participant_key(trustee as usize)
        .ok_or(BallotError::TrusteeIndex {
            index: trustee,
            trustees,
        })?;
    let options = contest.sums.len();
    if share.shares.len() != options || share.proofs.len() != options {
        return Err(BallotError::DecryptionShareCount {
            trustee,
            contest: contest.contest_id.clone(),
            expected: options,
            shares: share.shares.len(),
            proofs: share.proofs.len(),
        });
    }
    contest
        .sums
        .iter()
        .zip(share.shares.iter().zip(&share.proofs))
        .enumerate()
        .map(|(option, (sum, (d, proof)))| {
            let malformed = || BallotError::MalformedDecryptionShare {
                trustee,
                contest: contest.contest_id.clone(),
                option,
            };
            // `codec::point` first: the library's parser alone would accept the same
            // points, but we want one code path deciding canonicity.
            codec::point(d).ok_or_else(malformed)?;
            let candidate =
                CandidateDecryption::<Ristretto>::from_bytes(d).ok_or_else(malformed)?;
            let proof = LogEqualityProof::<Ristretto>::from_bytes(proof).ok_or_else(malformed)?;
            candidate
                .verify(
                    *sum,
                    key,
                    &proof,
                    &mut share_transcript(
                        election_id,
                        precinct_id,
                        &contest.contest_id,
                        trustee,
                        option,
                    ),
                )
                .map_err(|_| BallotError::InvalidDecryptionShare {
                    trustee,
                    contest: contest.contest_id.clone(),
                    option,
                })
        })
        .collect()
}

/// Verifies a posted decryption share: right precinct and contest, trustee index in
/// range, one share and one proof per option, every proof valid.
///
/// # Errors
///
/// [`BallotError::WrongScope`], [`BallotError::TrusteeIndex`],
/// [`BallotError::DecryptionShareCount`], [`BallotError::MalformedDecryptionShare`],
/// [`BallotError::InvalidDecryptionShare`].
pub fn verify_decryption_share(
    key_set: &KeySet,
    election_id: &str,
    precinct_id: &str,
    contest: &ContestTally,
    share: &pb::DecryptionShare,
) -> Result<(), BallotError> {
    check_share(key_set, election_id, precinct_id, contest, share).map(drop)
}

/// Verifies the shares, combines those of the first `k` distinct trustees, and returns
/// the count of every option.
///
/// # Errors
///
/// Any error of [`verify_decryption_share`] (every given share must be valid),
/// [`BallotError::DuplicateDecryptionShare`], [`BallotError::NotEnoughShares`],
/// [`BallotError::NoDiscreteLog`] (a count outside `0..=ballots_counted`: the shares or
/// the tally are not what the ballots say).
pub fn combine(
    key_set: &KeySet,
    election_id: &str,
    precinct_id: &str,
    contest: &ContestTally,
    shares: &[pb::DecryptionShare],
) -> Result<Vec<u64>, BallotError> {
    let threshold = key_set.threshold();
    let mut checked: Vec<(usize, Vec<VerifiableDecryption<Ristretto>>)> = Vec::new();
    for share in shares {
        let options = check_share(key_set, election_id, precinct_id, contest, share)?;
        let index = share.trustee_index as usize;
        if checked.iter().any(|(i, _)| *i == index) {
            return Err(BallotError::DuplicateDecryptionShare(share.trustee_index));
        }
        checked.push((index, options));
    }
    if checked.len() < threshold.threshold {
        return Err(BallotError::NotEnoughShares {
            have: checked.len(),
            need: threshold.threshold,
        });
    }
    // `combine_shares` panics on an index >= n; `check_share` already mapped every index
    // to a participant key, so all are < n. Re-check anyway: cheap, and keeps the
    // guard next to the call.
    if checked.iter().any(|(i, _)| *i >= threshold.trustees) {
        return Err(BallotError::Internal("share index out of range"));
    }
    let params = threshold.params();
    contest
        .sums
        .iter()
        .enumerate()
        .map(|(option, sum)| {
            let combined = params
                .combine_shares(checked.iter().map(|(i, d)| (*i, d[option])))
                .ok_or(BallotError::Internal("share combination"))?;
            let element = combined.decrypt_to_element(*sum);
            discrete_log(&element, contest.ballots_counted).ok_or_else(|| {
                BallotError::NoDiscreteLog {
                    contest: contest.contest_id.clone(),
                    option,
                    max: contest.ballots_counted,
                }
            })
        })
        .collect()
}

/// Finds `x` in `0..=max` with `x·G = element` by baby-step giant-step: a table of
/// `m = ⌈√(max+1)⌉` baby steps `j·G`, then giant steps `element − i·m·G`. Time and
/// memory `O(√max)`; returns `None` if there is no such `x`.
pub fn discrete_log(element: &RistrettoPoint, max: u64) -> Option<u64> {
    let m = max.saturating_add(1).isqrt().saturating_add(1);
    let mut baby = HashMap::with_capacity(usize::try_from(m).ok()?);
    let mut point = RistrettoPoint::default(); // identity
    for j in 0..m {
        baby.entry(point.compress().to_bytes()).or_insert(j);
        point += RISTRETTO_BASEPOINT_POINT;
    }
    let giant = Scalar::from(m) * RISTRETTO_BASEPOINT_POINT;
    let mut current = *element;
    for i in 0..=m {
        let base = i.checked_mul(m)?;
        if base > max {
            break;
        }
        if let Some(&j) = baby.get(&current.compress().to_bytes()) {
            let x = base + j;
            return (x <= max).then_some(x);
        }
        current -= giant;
    }
    None
}

/// The board entry publishing one contest's result in one precinct.
pub fn result_message(
    precinct_id: &str,
    contest_id: &str,
    counts: &[u64],
    ballots_counted: u64,
) -> pb::ElectionResult {
    pb::ElectionResult {
        precinct_id: precinct_id.to_owned(),
        count: Some(pb::ContestCount {
            contest_id: contest_id.to_owned(),
            option_counts: counts.to_vec(),
        }),
        ballots_counted,
    }
}

/// Checks a posted result against the counts decrypted by [`combine`] and the tally's
/// number of ballots.
///
/// # Errors
///
/// [`BallotError::MissingResultCount`], [`BallotError::ResultOptionCount`],
/// [`BallotError::ResultMismatch`] naming the first wrong option,
/// [`BallotError::ResultBallotsCounted`].
pub fn check_result(
    result: &pb::ElectionResult,
    counts: &[u64],
    ballots_counted: u64,
) -> Result<(), BallotError> {
    let posted = result
        .count
        .as_ref()
        .ok_or_else(|| BallotError::MissingResultCount(result.precinct_id.clone()))?;
    let contest = &posted.contest_id;
    if posted.option_counts.len() != counts.len() {
        return Err(BallotError::ResultOptionCount {
            contest: contest.clone(),
            expected: counts.len(),
            got: posted.option_counts.len(),
        });
    }
    if let Some((option, (&posted, &computed))) = posted
        .option_counts
        .iter()
        .zip(counts)
        .enumerate()
        .find(|(_, (p, c))| p != c)
    {
        return Err(BallotError::ResultMismatch {
            contest: contest.clone(),
            option,
            posted,
            computed,
        });
    }
    if result.ballots_counted != ballots_counted {
        return Err(BallotError::ResultBallotsCounted {
            contest: contest.clone(),
            posted: result.ballots_counted,
            computed: ballots_counted,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::thread_rng;

    use super::*;
    use crate::{
        ballot::{encrypt_ballot, spoil, verify_ballot},
        dkg::{run_ceremony_in_memory, Threshold},
        test_util::{manifest_with, selections},
    };

    const E: &str = "election-1";

    #[test]
    fn discrete_log_finds_every_small_value_and_rejects_others() {
        for max in [0_u64, 1, 2, 3, 10, 99, 100, 101] {
            for x in 0..=max + 3 {
                let element = Scalar::from(x) * RISTRETTO_BASEPOINT_POINT;
                let expected = (x <= max).then_some(x);
                assert_eq!(discrete_log(&element, max), expected, "x={x} max={max}");
            }
        }
        let x = 999_999_u64;
        let element = Scalar::from(x) * RISTRETTO_BASEPOINT_POINT;
        assert_eq!(discrete_log(&element, 1_000_000), Some(x));
        assert_eq!(discrete_log(&element, 999_998), None);
        assert_eq!(discrete_log(&-element, 1_000_000), None);
    }

    struct Fixture {
        m: pb::ElectionManifest,
        trustees: Vec<Trustee>,
        key_set: KeySet,
        tally: Tally,
    }

    /// 3 trustees, k = 2; two ballots cast, one spoiled (not added).
    fn fixture() -> Fixture {
        let mut rng = thread_rng();
        let m = manifest_with(3, 2);
        let (trustees, _, _) =
            run_ceremony_in_memory(Threshold::new(3, 2).unwrap(), &mut rng).unwrap();
        let key_set = trustees[0].key_set();
        let mut tally = Tally::new(&m).unwrap();
        let mut s2 = selections();
        s2[0].selected_options = vec![0];
        s2[1].selected_options = vec![3];
        for s in [selections(), s2, selections()].iter().take(2) {
            let (ballot, _) =
                encrypt_ballot(&m, E, key_set.joint_key(), "p1", [0; 32], s, &mut rng).unwrap();
            verify_ballot(&m, E, key_set.joint_key(), &ballot).unwrap();
            tally.add_ballot(&ballot).unwrap();
        }
        let (spoiled, opening) = encrypt_ballot(
            &m,
            E,
            key_set.joint_key(),
            "p1",
            [0; 32],
            &selections(),
            &mut rng,
        )
        .unwrap();
        let _never_counted = spoil(spoiled, &opening);
        Fixture {
            m,
            trustees,
            key_set,
            tally,
        }
    }

    fn shares(f: &Fixture, contest: &ContestTally, who: &[usize]) -> Vec<pb::DecryptionShare> {
        who.iter()
            .map(|&i| {
                decryption_share(&f.trustees[i], E, "p1", contest, &mut thread_rng()).unwrap()
            })
            .collect()
    }

    #[test]
    fn any_k_trustees_decrypt_the_sums() {
        let f = fixture();
        let expected = [vec![1, 0, 1], vec![1, 0, 0, 2], vec![0, 2]];
        for (contest, expected) in f.m.contests.iter().zip(&expected) {
            let t = f.tally.contest("p1", &contest.contest_id).unwrap();
            assert_eq!(t.ballots_counted, 2);
            for who in [[0, 1], [1, 2], [2, 0]] {
                let s = shares(&f, t, &who);
                for share in &s {
                    verify_decryption_share(&f.key_set, E, "p1", t, share).unwrap();
                }
                let counts = combine(&f.key_set, E, "p1", t, &s).unwrap();
                assert_eq!(&counts, expected);
                let result = result_message("p1", &contest.contest_id, &counts, 2);
                check_result(&result, &counts, 2).unwrap();
            }
            // All three is fine too.
            assert_eq!(
                &combine(&f.key_set, E, "p1", t, &shares(&f, t, &[2, 1, 0])).unwrap(),
                expected
            );
        }
        // A tally survives its byte encoding.
        let t = f.tally.contest("p1", "mayor").unwrap();
        let again = ContestTally::from_bytes("mayor", &t.to_bytes(), 2).unwrap();
        assert_eq!(again.to_bytes(), t.to_bytes());
        assert_eq!(f.tally.iter().count(), 3);
    }

    #[test]
    fn bad_shares_are_rejected_precisely() {
        let f = fixture();
        let t = f.tally.contest("p1", "council").unwrap();
        let good = shares(&f, t, &[0, 1]);
        let verify = |s: &pb::DecryptionShare| verify_decryption_share(&f.key_set, E, "p1", t, s);

        let mut bad = good[1].clone();
        bad.proofs[2][3] ^= 1;
        assert_eq!(
            verify(&bad),
            Err(BallotError::InvalidDecryptionShare {
                trustee: 1,
                contest: "council".into(),
                option: 2
            })
        );
        let mut bad = good[1].clone();
        bad.shares[1] = good[0].shares[1].clone();
        assert!(matches!(
            verify(&bad),
            Err(BallotError::InvalidDecryptionShare { option: 1, .. })
        ));
        let mut bad = good[1].clone();
        bad.shares[0] = vec![0xff; 32];
        assert!(matches!(
            verify(&bad),
            Err(BallotError::MalformedDecryptionShare { option: 0, .. })
        ));
        let mut bad = good[1].clone();
        bad.proofs.pop();
        assert!(matches!(
            verify(&bad),
            Err(BallotError::DecryptionShareCount { proofs: 3, .. })
        ));
        // Claimed by another trustee.
        let mut bad = good[1].clone();
        bad.trustee_index = 2;
        assert!(matches!(
            verify(&bad),
            Err(BallotError::InvalidDecryptionShare { trustee: 2, .. })
        ));
        // Index >= n must be an error, never the library's panic.
        let mut bad = good[1].clone();
        bad.trustee_index = 3;
        assert_eq!(
            verify(&bad),
            Err(BallotError::TrusteeIndex {
                index: 3,
                trustees: 3
            })
        );
        assert_eq!(
            combine(&f.key_set, E, "p1", t, &[good[0].clone(), bad]),
            Err(BallotError::TrusteeIndex {
                index: 3,
                trustees: 3
            })
        );
        // Another election, precinct or contest.
        assert!(matches!(
            verify_decryption_share(&f.key_set, "election-2", "p1", t, &good[0]),
            Err(BallotError::InvalidDecryptionShare { option: 0, .. })
        ));
        assert!(matches!(
            verify_decryption_share(&f.key_set, E, "p2", t, &good[0]),
            Err(BallotError::WrongScope { .. })
        ));
        let mayor = f.tally.contest("p1", "mayor").unwrap();
        let mut moved = good[0].clone();
        moved.contest_id = "mayor".into();
        assert!(verify_decryption_share(&f.key_set, E, "p1", mayor, &moved).is_err());
        // Too few, duplicates.
        assert_eq!(
            combine(&f.key_set, E, "p1", t, &good[..1]),
            Err(BallotError::NotEnoughShares { have: 1, need: 2 })
        );
        assert_eq!(
            combine(&f.key_set, E, "p1", t, &[good[0].clone(), good[0].clone()]),
            Err(BallotError::DuplicateDecryptionShare(0))
        );
        // A tally that claims fewer ballots than were counted has no discrete log.
        let mut short = t.clone();
        short.ballots_counted = 1;
        assert_eq!(
            combine(&f.key_set, E, "p1", &short, &good),
            Err(BallotError::NoDiscreteLog {
                contest: "council".into(),
                option: 3,
                max: 1
            })
        );
    }

    #[test]
    fn results_are_checked_per_option() {
        let r = result_message("p1", "mayor", &[1, 0, 1], 2);
        check_result(&r, &[1, 0, 1], 2).unwrap();
        assert_eq!(
            check_result(&r, &[1, 1, 1], 2),
            Err(BallotError::ResultMismatch {
                contest: "mayor".into(),
                option: 1,
                posted: 0,
                computed: 1
            })
        );
        assert!(matches!(
            check_result(&r, &[1, 0], 2),
            Err(BallotError::ResultOptionCount { .. })
        ));
        assert!(matches!(
            check_result(&r, &[1, 0, 1], 3),
            Err(BallotError::ResultBallotsCounted { .. })
        ));
        let mut r = r;
        r.count = None;
        assert!(matches!(
            check_result(&r, &[1, 0, 1], 2),
            Err(BallotError::MissingResultCount(_))
        ));
    }

    #[test]
    fn empty_tally_decrypts_to_zero_and_bad_ballots_change_nothing() {
        let f = fixture();
        let mut m = f.m.clone();
        m.precincts.push(pb::Precinct {
            precinct_id: "p2".into(),
            name: "P2".into(),
        });
        let mut tally = Tally::new(&m).unwrap();
        let t = tally.contest("p2", "mayor").unwrap().clone();
        let s: Vec<_> = [0, 2]
            .iter()
            .map(|&i| decryption_share(&f.trustees[i], E, "p2", &t, &mut thread_rng()).unwrap())
            .collect();
        assert_eq!(combine(&f.key_set, E, "p2", &t, &s).unwrap(), vec![0, 0, 0]);

        let (mut ballot, _) = encrypt_ballot(
            &m,
            E,
            f.key_set.joint_key(),
            "p2",
            [0; 32],
            &selections(),
            &mut thread_rng(),
        )
        .unwrap();
        ballot.contests[2].ciphertexts[1] = vec![0xff; 64];
        let before: Vec<_> = tally.iter().map(|(_, t)| t.to_bytes()).collect();
        assert!(matches!(
            tally.add_ballot(&ballot),
            Err(BallotError::MalformedCiphertext { option: 1, .. })
        ));
        let after: Vec<_> = tally.iter().map(|(_, t)| t.to_bytes()).collect();
        assert_eq!(before, after);
    }
}
