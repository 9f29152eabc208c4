//! The command-line flags that name contests and options of a manifest: a voter's
//! `--choice CONTEST=OPTION[,OPTION…]` and a commission's `--count CONTEST=N,N,…`.

use anyhow::{anyhow, ensure, Context, Result};
use bboard_core::pb;

/// Parses `--choice CONTEST=OPTION[,OPTION…]` flags (options by name or 0-based index)
/// into one selection per contest of the manifest, in manifest order; contests without
/// a flag get no selection.
pub fn parse_choices(
    manifest: &pb::ElectionManifest,
    choices: &[String],
) -> Result<Vec<pb::ContestSelection>> {
    let mut selections: Vec<pb::ContestSelection> = manifest
        .contests
        .iter()
        .map(|c| pb::ContestSelection {
            contest_id: c.contest_id.clone(),
            selected_options: Vec::new(),
        })
        .collect();
    for choice in choices {
        let (contest_id, options) = choice
            .split_once('=')
            .ok_or_else(|| anyhow!("--choice {choice:?}: expected CONTEST=OPTION[,OPTION]"))?;
        let position = manifest
            .contests
            .iter()
            .position(|c| c.contest_id == contest_id.trim())
            .ok_or_else(|| anyhow!("--choice {choice:?}: no contest {contest_id:?}"))?;
        let contest = &manifest.contests[position];
        for option in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let index = contest
                .options
                .iter()
                .position(|o| o == option)
                .or_else(|| option.parse::<usize>().ok())
                .filter(|i| *i < contest.options.len())
                .ok_or_else(|| {
                    anyhow!(
                        "--choice {choice:?}: contest {contest_id:?} has no option {option:?} \
                         (options: {})",
                        contest.options.join(", ")
                    )
                })?;
            selections[position]
                .selected_options
                .push(u32::try_from(index).context("option index")?);
        }
    }
    bboard_ballot::ballot::validate_selections(manifest, &selections)
        .context("these selections are not a valid ballot")?;
    Ok(selections)
}

/// Parses `--count CONTEST=N,N,…` flags (one count per option, in manifest order)
/// into one count per contest of the manifest; every contest needs one.
pub fn parse_counts(
    manifest: &pb::ElectionManifest,
    flags: &[String],
) -> Result<Vec<pb::ContestCount>> {
    manifest
        .contests
        .iter()
        .map(|contest| {
            let flag = flags
                .iter()
                .find_map(|f| {
                    f.split_once('=')
                        .filter(|(id, _)| id.trim() == contest.contest_id)
                })
                .ok_or_else(|| anyhow!("no --count for contest {:?}", contest.contest_id))?;
            let counts = flag
                .1
                .split(',')
                .map(|n| n.trim().parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("--count {}={}", flag.0, flag.1))?;
            ensure!(
                counts.len() == contest.options.len(),
                "contest {:?} has {} options, --count gives {}",
                contest.contest_id,
                contest.options.len(),
                counts.len()
            );
            Ok(pb::ContestCount {
                contest_id: contest.contest_id.clone(),
                option_counts: counts,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contest(id: &str, options: &[&str], min: u32, max: u32) -> pb::Contest {
        pb::Contest {
            contest_id: id.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            min_selections: min,
            max_selections: max,
            ..Default::default()
        }
    }

    /// A single-choice mayor and a council of up to two.
    fn manifest() -> pb::ElectionManifest {
        pb::ElectionManifest {
            contests: vec![
                contest("mayor", &["A", "B", "C"], 1, 1),
                contest("council", &["X", "Y", "Z"], 0, 2),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn choices_by_name_and_index() {
        let m = manifest();
        let s = parse_choices(&m, &["mayor=B".into(), "council=0,Z".into()]).unwrap();
        assert_eq!(s[0].selected_options, vec![1]);
        assert_eq!(s[1].selected_options, vec![0, 2]);
        assert!(parse_choices(&m, &["mayor=Q".into()]).is_err());
        assert!(parse_choices(&m, &["nope=A".into()]).is_err());
        assert!(
            parse_choices(&m, &["council=X".into()]).is_err(),
            "mayor needs one"
        );
        assert!(parse_choices(&m, &["mayor=A,B".into()]).is_err());
    }

    #[test]
    fn counts_need_one_number_per_option_of_every_contest() {
        let m = manifest();
        let counts = parse_counts(&m, &["council=4, 5,6".into(), "mayor=1,2,3".into()]).unwrap();
        assert_eq!(counts[0].contest_id, "mayor");
        assert_eq!(counts[0].option_counts, vec![1, 2, 3]);
        assert_eq!(counts[1].option_counts, vec![4, 5, 6]);
        assert!(
            parse_counts(&m, &["mayor=1,2,3".into()]).is_err(),
            "no council"
        );
        assert!(parse_counts(&m, &["mayor=1,2".into(), "council=1,2,3".into()]).is_err());
        assert!(parse_counts(&m, &["mayor=1,x,3".into(), "council=1,2,3".into()]).is_err());
    }
}
