//! Shared fixtures of the unit tests.

use crate::pb;

/// Contests: "mayor" (3 options, 0..=1), "council" (4 options, 1..=2), "measure"
/// (2 options, exactly 1); precinct "p1"; `trustees` trustees, threshold `threshold`.
pub(crate) fn manifest_with(trustees: usize, threshold: u32) -> pb::ElectionManifest {
    let contest = |id: &str, options: &[&str], min, max| pb::Contest {
        contest_id: id.into(),
        title: id.into(),
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        min_selections: min,
        max_selections: max,
    };
    pb::ElectionManifest {
        title: "test".into(),
        contests: vec![
            contest("mayor", &["a", "b", "c"], 0, 1),
            contest("council", &["d", "e", "f", "g"], 1, 2),
            contest("measure", &["yes", "no"], 1, 1),
        ],
        precincts: vec![pb::Precinct {
            precinct_id: "p1".into(),
            name: "P1".into(),
        }],
        trustees: (0..trustees)
            .map(|i| pb::Trustee {
                name: format!("t{i}"),
                signing_key: vec![i as u8; 32],
                encryption_key: vec![0x80 | i as u8; 32],
            })
            .collect(),
        threshold,
        schedule: vec![],
    }
}

/// [`manifest_with`] 3 trustees, k = 2.
pub(crate) fn manifest() -> pb::ElectionManifest {
    manifest_with(3, 2)
}

/// Valid selections for [`manifest`]: mayor c; council d, g; measure no.
pub(crate) fn selections() -> Vec<pb::ContestSelection> {
    [("mayor", &[2][..]), ("council", &[0, 3]), ("measure", &[1])]
        .iter()
        .map(|(id, options)| pb::ContestSelection {
            contest_id: (*id).into(),
            selected_options: options.to_vec(),
        })
        .collect()
}
