//! The manifest file (`bboard election create --manifest FILE`) and voters' selections.
//!
//! A manifest file is JSON, or TOML when its name ends in `.toml`:
//!
//! ```toml
//! title = "Municipal election 2026"
//! threshold = 2
//! [[contests]]
//! id = "mayor"
//! title = "Mayor"
//! options = ["Alice", "Bob"]
//! min_selections = 1
//! max_selections = 1
//! [[precincts]]
//! id = "p-001"
//! name = "Town hall"
//! [[trustees]]
//! name = "CEC"
//! signing_key = "<hex, from bboard trustee keygen>"
//! encryption_key = "<hex, from bboard trustee keygen>"
//! ```

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use bboard_core::pb;
use rand::seq::index::sample;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// An election manifest as people write it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Election title.
    pub title: String,
    /// k of the k-of-n key (n = number of trustees).
    pub threshold: u32,
    /// Contests, in ballot order.
    pub contests: Vec<ContestSpec>,
    /// Polling stations.
    pub precincts: Vec<PrecinctSpec>,
    /// Key holders.
    pub trustees: Vec<TrusteeSpec>,
}

/// One contest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContestSpec {
    /// Contest id.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Option names, in ballot order.
    pub options: Vec<String>,
    /// Fewest options a voter selects.
    #[serde(default)]
    pub min_selections: u32,
    /// Most options a voter selects.
    pub max_selections: u32,
}

/// One polling station.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrecinctSpec {
    /// Precinct id.
    pub id: String,
    /// Human name.
    pub name: String,
}

/// One trustee: what `bboard trustee keygen` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrusteeSpec {
    /// Name (organisation).
    pub name: String,
    /// Ed25519 public key, hex.
    pub signing_key: String,
    /// X25519 public key for DKG share transport, hex.
    pub encryption_key: String,
}

impl ManifestFile {
    /// Reads a manifest file (TOML if the name ends in `.toml`, else JSON).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(anyhow::Error::from)
        } else {
            serde_json::from_str(&text).map_err(anyhow::Error::from)
        };
        parsed.with_context(|| format!("parsing manifest {}", path.display()))
    }

    /// The board entry, checked by the same validation the board applies.
    pub fn to_proto(&self) -> Result<pb::ElectionManifest> {
        let key = |what: &str, name: &str, text: &str| -> Result<Vec<u8>> {
            let bytes = hex::decode(text.trim())
                .with_context(|| format!("trustee {name:?}: {what} is not hex"))?;
            if bytes.len() != 32 {
                bail!(
                    "trustee {name:?}: {what} must be 32 bytes, not {}",
                    bytes.len()
                );
            }
            Ok(bytes)
        };
        let manifest = pb::ElectionManifest {
            title: self.title.clone(),
            contests: self
                .contests
                .iter()
                .map(|c| pb::Contest {
                    contest_id: c.id.clone(),
                    title: c.title.clone(),
                    options: c.options.clone(),
                    min_selections: c.min_selections,
                    max_selections: c.max_selections,
                })
                .collect(),
            precincts: self
                .precincts
                .iter()
                .map(|p| pb::Precinct {
                    precinct_id: p.id.clone(),
                    name: p.name.clone(),
                })
                .collect(),
            trustees: self
                .trustees
                .iter()
                .map(|t| {
                    Ok(pb::Trustee {
                        name: t.name.clone(),
                        signing_key: key("signing_key", &t.name, &t.signing_key)?,
                        encryption_key: key("encryption_key", &t.name, &t.encryption_key)?,
                    })
                })
                .collect::<Result<_>>()?,
            threshold: self.threshold,
            schedule: Vec::new(),
        };
        bboard_ballot::validate_manifest(&manifest).context("invalid manifest")?;
        Ok(manifest)
    }
}

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

/// A random valid ballot: per contest, a uniform number of selections within the
/// contest's limits, of distinct uniform options.
pub fn random_selections<R: Rng>(
    manifest: &pb::ElectionManifest,
    rng: &mut R,
) -> Vec<pb::ContestSelection> {
    manifest
        .contests
        .iter()
        .map(|c| {
            let options = c.options.len();
            let max = (c.max_selections as usize).min(options);
            let min = (c.min_selections as usize).min(max);
            let count = rng.gen_range(min..=max);
            let mut selected: Vec<u32> = sample(rng, options, count)
                .into_iter()
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
            selected.sort_unstable();
            pb::ContestSelection {
                contest_id: c.contest_id.clone(),
                selected_options: selected,
            }
        })
        .collect()
}

/// `Option, Option` names of a selection, for people.
pub fn describe_selection(contest: &pb::Contest, selected: &[u32]) -> String {
    if selected.is_empty() {
        return "(none)".to_string();
    }
    selected
        .iter()
        .map(|&i| {
            contest
                .options
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{i}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> pb::ElectionManifest {
        pb::ElectionManifest {
            contests: vec![
                pb::Contest {
                    contest_id: "mayor".into(),
                    options: vec!["A".into(), "B".into(), "C".into()],
                    min_selections: 1,
                    max_selections: 1,
                    ..Default::default()
                },
                pb::Contest {
                    contest_id: "council".into(),
                    options: vec!["X".into(), "Y".into(), "Z".into()],
                    min_selections: 0,
                    max_selections: 2,
                    ..Default::default()
                },
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
    fn random_selections_are_valid() {
        use rand::SeedableRng;
        let m = manifest();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let s = random_selections(&m, &mut rng);
            bboard_ballot::ballot::validate_selections(&m, &s).unwrap();
        }
    }
}
