//! Structural checks of an election manifest.

use std::collections::HashSet;

use crate::{pb, BallotError};

/// Maximum number of options of one contest (bounds proof sizes and tally tables).
pub const MAX_OPTIONS: usize = 256;
/// Maximum number of trustees of one election.
pub const MAX_TRUSTEES: usize = 64;

/// Checks that `manifest` describes an election this crate can run.
///
/// Rules: at least one contest; contest ids non-empty and unique; every contest has
/// `1..=MAX_OPTIONS` options with non-empty, unique names, and selection limits
/// `min_selections <= max_selections`, `1 <= max_selections <= options`; precinct ids
/// non-empty and unique; `1..=MAX_TRUSTEES` trustees with distinct 32-byte signing keys
/// and 32-byte encryption keys;
/// `1 <= threshold <= trustees`.
///
/// # Errors
///
/// The first rule that fails, as a precise [`BallotError`] variant.
pub fn validate_manifest(manifest: &pb::ElectionManifest) -> Result<(), BallotError> {
    if manifest.contests.is_empty() {
        return Err(BallotError::NoContests);
    }
    let mut contest_ids = HashSet::new();
    for (index, contest) in manifest.contests.iter().enumerate() {
        if contest.contest_id.is_empty() {
            return Err(BallotError::EmptyContestId { index });
        }
        if !contest_ids.insert(contest.contest_id.as_str()) {
            return Err(BallotError::DuplicateContestId(contest.contest_id.clone()));
        }
        validate_contest(contest)?;
    }

    let mut precinct_ids = HashSet::new();
    for (index, precinct) in manifest.precincts.iter().enumerate() {
        if precinct.precinct_id.is_empty() {
            return Err(BallotError::EmptyPrecinctId { index });
        }
        if !precinct_ids.insert(precinct.precinct_id.as_str()) {
            return Err(BallotError::DuplicatePrecinctId(
                precinct.precinct_id.clone(),
            ));
        }
    }

    let trustees = manifest.trustees.len();
    if trustees == 0 || trustees > MAX_TRUSTEES {
        return Err(BallotError::BadTrusteeCount {
            count: trustees,
            max: MAX_TRUSTEES,
        });
    }
    for (index, trustee) in manifest.trustees.iter().enumerate() {
        if trustee.signing_key.len() != 32 {
            return Err(BallotError::BadTrusteeKey {
                index,
                len: trustee.signing_key.len(),
            });
        }
        // DKG shares are sealed to this X25519 key (see `transport`); a wrong length
        // would only surface mid-ceremony, so reject the manifest up front.
        if trustee.encryption_key.len() != 32 {
            return Err(BallotError::BadTrusteeEncryptionKey {
                index,
                len: trustee.encryption_key.len(),
            });
        }
        if let Some(first) = manifest.trustees[..index]
            .iter()
            .position(|t| t.signing_key == trustee.signing_key)
        {
            return Err(BallotError::DuplicateTrusteeKey {
                first,
                second: index,
            });
        }
    }
    let threshold = manifest.threshold;
    if threshold == 0 || threshold as usize > trustees {
        return Err(BallotError::BadThreshold {
            threshold,
            trustees,
        });
    }
    Ok(())
}

/// Checks one contest (options and selection limits), not its id's uniqueness.
///
/// # Errors
///
/// [`BallotError::NoOptions`], [`BallotError::TooManyOptions`],
/// [`BallotError::BadOptionName`] or [`BallotError::BadSelectionLimits`].
pub fn validate_contest(contest: &pb::Contest) -> Result<(), BallotError> {
    let id = &contest.contest_id;
    let options = contest.options.len();
    if options == 0 {
        return Err(BallotError::NoOptions(id.clone()));
    }
    if options > MAX_OPTIONS {
        return Err(BallotError::TooManyOptions {
            contest: id.clone(),
            count: options,
            max: MAX_OPTIONS,
        });
    }
    let mut names = HashSet::new();
    for option in &contest.options {
        if option.is_empty() || !names.insert(option.as_str()) {
            return Err(BallotError::BadOptionName {
                contest: id.clone(),
                option: option.clone(),
            });
        }
    }
    let (min, max) = (contest.min_selections, contest.max_selections);
    if min > max || max == 0 || max as usize > options {
        return Err(BallotError::BadSelectionLimits {
            contest: id.clone(),
            min,
            max,
            options,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(threshold: u32, trustees: usize) -> pb::ElectionManifest {
        crate::test_util::manifest_with(trustees, threshold)
    }

    #[test]
    fn valid_manifest_passes() {
        validate_manifest(&manifest(2, 3)).unwrap();
        validate_manifest(&manifest(1, 1)).unwrap();
        validate_manifest(&manifest(5, 5)).unwrap();
    }

    #[test]
    fn each_rule_has_its_error() {
        let mut m = manifest(2, 3);
        m.contests.clear();
        assert_eq!(validate_manifest(&m), Err(BallotError::NoContests));

        let mut m = manifest(2, 3);
        m.contests.push(m.contests[0].clone());
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::DuplicateContestId("mayor".into()))
        );

        let mut m = manifest(2, 3);
        m.contests[0].contest_id.clear();
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::EmptyContestId { index: 0 })
        );

        let mut m = manifest(2, 3);
        m.contests[0].options.clear();
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::NoOptions("mayor".into()))
        );

        let mut m = manifest(2, 3);
        m.contests[0].options = (0..=MAX_OPTIONS).map(|i| i.to_string()).collect();
        assert!(matches!(
            validate_manifest(&m),
            Err(BallotError::TooManyOptions { count, .. }) if count == MAX_OPTIONS + 1
        ));

        let mut m = manifest(2, 3);
        m.contests[0].options[2] = "a".into();
        assert!(matches!(
            validate_manifest(&m),
            Err(BallotError::BadOptionName { .. })
        ));

        for (min, max) in [(0, 0), (2, 1), (0, 4), (4, 4)] {
            let mut m = manifest(2, 3);
            m.contests[0].min_selections = min;
            m.contests[0].max_selections = max;
            assert!(
                matches!(
                    validate_manifest(&m),
                    Err(BallotError::BadSelectionLimits { .. })
                ),
                "{min}..{max}"
            );
        }
        let mut m = manifest(2, 3);
        m.contests[0].min_selections = 3;
        m.contests[0].max_selections = 3;
        validate_manifest(&m).unwrap();

        let mut m = manifest(2, 3);
        m.precincts.push(m.precincts[0].clone());
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::DuplicatePrecinctId("p1".into()))
        );
        let mut m = manifest(2, 3);
        m.precincts[0].precinct_id.clear();
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::EmptyPrecinctId { index: 0 })
        );

        let m = manifest(1, 0);
        assert!(matches!(
            validate_manifest(&m),
            Err(BallotError::BadTrusteeCount { count: 0, .. })
        ));
        let mut m = manifest(2, 3);
        m.trustees[1].signing_key.pop();
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::BadTrusteeKey { index: 1, len: 31 })
        );
        let mut m = manifest(2, 3);
        m.trustees[2].encryption_key = vec![1; 33];
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::BadTrusteeEncryptionKey { index: 2, len: 33 })
        );
        let mut m = manifest(2, 3);
        m.trustees[2].signing_key = m.trustees[0].signing_key.clone();
        assert_eq!(
            validate_manifest(&m),
            Err(BallotError::DuplicateTrusteeKey {
                first: 0,
                second: 2
            })
        );
        for threshold in [0, 4] {
            assert_eq!(
                validate_manifest(&manifest(threshold, 3)),
                Err(BallotError::BadThreshold {
                    threshold,
                    trustees: 3
                })
            );
        }
    }
}
