//! The manifest file people write (`bboard election create --manifest FILE`), and
//! voters' selections over a manifest.
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
//!
//! [`ManifestFile::to_proto`] turns it into the board entry and checks it with the
//! validation the board applies, so a manifest the board would refuse is refused here,
//! before anything is posted.

use std::path::Path;

use bboard_core::pb;
use rand::seq::index::sample;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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

/// One trustee: what [`crate::trustee::keygen`] returns (and `bboard trustee keygen`
/// prints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrusteeSpec {
    /// Name (organisation).
    pub name: String,
    /// Ed25519 public key, hex.
    pub signing_key: String,
    /// X25519 public key for DKG share transport, hex.
    pub encryption_key: String,
}

impl TrusteeSpec {
    /// The trustee as a TOML `[[trustees]]` table, ready to append to a TOML
    /// manifest.
    pub fn to_manifest_toml(&self) -> String {
        #[derive(Serialize)]
        struct Trustees<'a> {
            trustees: [&'a TrusteeSpec; 1],
        }
        // Three string fields always serialise; an error here would be a bug of the
        // toml crate, and the fields are printed by hand rather than panicking.
        toml::to_string(&Trustees { trustees: [self] }).unwrap_or_else(|_| {
            format!(
                "[[trustees]]\nname = {:?}\nsigning_key = {:?}\nencryption_key = {:?}\n",
                self.name, self.signing_key, self.encryption_key
            )
        })
    }
}

impl ManifestFile {
    /// Reads a manifest file (TOML if the name ends in `.toml`, else JSON).
    ///
    /// # Errors
    ///
    /// [`Error::ManifestRead`] or [`Error::ManifestSyntax`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ManifestRead {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed: Result<Self, Box<dyn std::error::Error + Send + Sync>> =
            if path.extension().is_some_and(|e| e == "toml") {
                toml::from_str(&text).map_err(Into::into)
            } else {
                serde_json::from_str(&text).map_err(Into::into)
            };
        parsed.map_err(|source| Error::ManifestSyntax {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The board entry, checked by the same validation the board applies.
    ///
    /// # Errors
    ///
    /// [`Error::ManifestTrusteeKey`] or [`Error::InvalidManifest`].
    pub fn to_proto(&self) -> Result<pb::ElectionManifest> {
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
                .map(TrusteeSpec::to_proto)
                .collect::<Result<_>>()?,
            threshold: self.threshold,
            schedule: Vec::new(),
        };
        bboard_ballot::validate_manifest(&manifest)
            .map_err(|source| Error::InvalidManifest(Box::new(source)))?;
        Ok(manifest)
    }
}

impl TrusteeSpec {
    /// The manifest's trustee entry, its keys decoded.
    ///
    /// # Errors
    ///
    /// [`Error::ManifestTrusteeKey`] when a key is not 32 bytes of hex.
    pub fn to_proto(&self) -> Result<pb::Trustee> {
        let key = |field: &'static str, text: &str| {
            hex::decode(text.trim())
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .ok_or_else(|| Error::ManifestTrusteeKey {
                    trustee: self.name.clone(),
                    field,
                })
        };
        Ok(pb::Trustee {
            name: self.name.clone(),
            signing_key: key("signing_key", &self.signing_key)?,
            encryption_key: key("encryption_key", &self.encryption_key)?,
        })
    }
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

/// `Option, Option` names of a selection, for people (`(none)` when empty; an index
/// the contest does not have shows as `#index`).
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
pub(crate) mod tests {
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

    /// A one-contest, one-precinct manifest file with `trustees`, `threshold` of them
    /// needed.
    pub(crate) fn file(threshold: u32, trustees: Vec<TrusteeSpec>) -> ManifestFile {
        ManifestFile {
            title: "test".into(),
            threshold,
            contests: vec![ContestSpec {
                id: "mayor".into(),
                title: "Mayor".into(),
                options: vec!["A".into(), "B".into()],
                min_selections: 1,
                max_selections: 1,
            }],
            precincts: vec![PrecinctSpec {
                id: "p-001".into(),
                name: "Town hall".into(),
            }],
            trustees,
        }
    }

    /// [`file`] with one trustee, CEC, of this signing key (text as people write it).
    fn one_trustee(signing_key: &str) -> ManifestFile {
        let cec = TrusteeSpec {
            name: "CEC".into(),
            signing_key: signing_key.into(),
            encryption_key: hex::encode([2; 32]),
        };
        file(1, vec![cec])
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

    #[test]
    fn selections_are_described_by_option_name() {
        let m = manifest();
        assert_eq!(describe_selection(&m.contests[1], &[0, 2]), "X, Z");
        assert_eq!(describe_selection(&m.contests[1], &[]), "(none)");
        assert_eq!(describe_selection(&m.contests[1], &[7]), "#7");
    }

    #[test]
    fn trustee_snippets_append_to_a_toml_manifest() {
        let head =
            "title = \"t\"\nthreshold = 2\n[[contests]]\nid = \"mayor\"\ntitle = \"Mayor\"\n\
                    options = [\"A\", \"B\"]\nmin_selections = 1\nmax_selections = 1\n\
                    [[precincts]]\nid = \"p1\"\nname = \"Hall\"\n";
        let trustees: Vec<TrusteeSpec> = ["CEC", "Observers \"Q\""]
            .iter()
            .enumerate()
            .map(|(i, name)| TrusteeSpec {
                name: (*name).into(),
                signing_key: hex::encode([i as u8 + 1; 32]),
                encryption_key: hex::encode([i as u8 + 9; 32]),
            })
            .collect();
        let mut text = head.to_string();
        for trustee in &trustees {
            text.push_str(&trustee.to_manifest_toml());
        }
        let parsed: ManifestFile = toml::from_str(&text).unwrap();
        assert_eq!(parsed.trustees, trustees);
        assert_eq!(parsed.precincts[0].id, "p1");
        parsed.to_proto().unwrap();
    }

    #[test]
    fn a_manifest_file_becomes_the_board_entry() {
        let manifest = one_trustee(&hex::encode([1; 32])).to_proto().unwrap();
        assert_eq!(manifest.contests[0].contest_id, "mayor");
        assert_eq!(manifest.precincts[0].precinct_id, "p-001");
        assert_eq!(manifest.trustees[0].signing_key, vec![1; 32]);
        assert_eq!(manifest.trustees[0].encryption_key, vec![2; 32]);
    }

    #[test]
    fn a_bad_trustee_key_names_the_trustee_and_the_field() {
        for bad in ["not hex", "abcd"] {
            match one_trustee(bad).to_proto() {
                Err(Error::ManifestTrusteeKey { trustee, field }) => {
                    assert_eq!((trustee.as_str(), field), ("CEC", "signing_key"));
                }
                other => panic!("expected ManifestTrusteeKey, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_manifest_the_board_would_refuse_is_refused() {
        let mut bad = one_trustee(&hex::encode([1; 32]));
        bad.threshold = 2;
        assert!(matches!(bad.to_proto(), Err(Error::InvalidManifest(_))));
    }

    #[test]
    fn manifest_files_load_from_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let written = one_trustee(&hex::encode([1; 32]));
        let json = dir.path().join("m.json");
        std::fs::write(&json, serde_json::to_string(&written).unwrap()).unwrap();
        let toml_path = dir.path().join("m.toml");
        std::fs::write(&toml_path, toml::to_string(&written).unwrap()).unwrap();
        for path in [&json, &toml_path] {
            let loaded = ManifestFile::load(path).unwrap();
            assert_eq!(loaded.trustees, written.trustees, "{}", path.display());
        }
        std::fs::write(&json, "{").unwrap();
        assert!(matches!(
            ManifestFile::load(&json),
            Err(Error::ManifestSyntax { .. })
        ));
        assert!(matches!(
            ManifestFile::load(&dir.path().join("absent.json")),
            Err(Error::ManifestRead { .. })
        ));
    }
}
