//! A trustee's side of the election: its keys, the three rounds of the key ceremony
//! and its decryption shares.
//!
//! Every step reads the board, does its round, persists its secret state **before**
//! posting (a crash between the two leaves a state the re-run resumes from) and posts.
//! Re-running a step that is done posts nothing and says so.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bboard_ballot::dkg::{
    PublicInfo, Trustee, TrusteeCommitting, TrusteePolynomials, TrusteeSharing,
};
use bboard_ballot::tally;
use bboard_ballot::transport::{open_share_message, share_message, TransportSecret};
use bboard_client::BoardClient;
use bboard_core::audit::ElectionRecord;
use bboard_core::pb::{entry_body::Kind, Phase};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::keys::{read_private_key, replace_secret_file, write_private_key, write_secret_file};
use bboard_election::authority::derive_from_board;
use bboard_election::board::{post, ElectionView};

/// Where a trustee's files live: `signing.key`, `transport.key` and one state file per
/// election (`state-<election>.json`).
#[derive(Clone, Debug)]
pub struct TrusteeFiles {
    /// The directory.
    pub dir: PathBuf,
}

impl TrusteeFiles {
    /// The Ed25519 key file.
    pub fn signing_key(&self) -> PathBuf {
        self.dir.join("signing.key")
    }

    /// The X25519 transport secret file.
    pub fn transport_key(&self) -> PathBuf {
        self.dir.join("transport.key")
    }

    /// The ceremony state file of `election_id`.
    pub fn state(&self, election_id: &str) -> PathBuf {
        let safe: String = election_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("state-{safe}.json"))
    }
}

/// The public parts of a trustee's keys, as the manifest names them.
#[derive(Clone, Debug, Serialize)]
pub struct TrusteePublic {
    /// Trustee name.
    pub name: String,
    /// Ed25519 public key, hex.
    pub signing_key: String,
    /// X25519 public key, hex.
    pub encryption_key: String,
}

/// Creates `files.dir` with a new signing key and transport secret (refuses to
/// overwrite) and returns the public parts.
pub fn keygen(files: &TrusteeFiles, name: &str) -> Result<TrusteePublic> {
    std::fs::create_dir_all(&files.dir)
        .with_context(|| format!("creating {}", files.dir.display()))?;
    let signing = crate::keys::generate_key();
    let transport = TransportSecret::generate(&mut OsRng);
    write_private_key(&files.signing_key(), &signing)?;
    write_secret_file(
        &files.transport_key(),
        format!("{}\n", hex::encode(transport.to_bytes())).as_bytes(),
    )?;
    Ok(TrusteePublic {
        name: name.to_string(),
        signing_key: hex::encode(signing.verifying_key().as_bytes()),
        encryption_key: hex::encode(transport.public_key_bytes()),
    })
}

/// A trustee's secret keys, loaded.
pub struct TrusteeKeys {
    /// Signs its board entries.
    pub signing: SigningKey,
    /// Opens the DKG shares sealed to it.
    pub transport: TransportSecret,
}

impl TrusteeKeys {
    /// Reads both key files.
    pub fn load(files: &TrusteeFiles) -> Result<Self> {
        let path = files.transport_key();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading transport key {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .with_context(|| format!("transport key {} is not hex", path.display()))?;
        let transport = TransportSecret::from_bytes(&bytes)
            .with_context(|| format!("transport key {}", path.display()))?;
        Ok(TrusteeKeys {
            signing: read_private_key(&files.signing_key())?,
            transport,
        })
    }

    fn public_key(&self) -> [u8; 32] {
        *self.signing.verifying_key().as_bytes()
    }
}

/// The ceremony state of one trustee in one election. **Secret.**
#[derive(Serialize, Deserialize)]
#[serde(tag = "stage", content = "state", rename_all = "snake_case")]
enum Stage {
    Committed(TrusteeCommitting),
    Revealed(TrusteePolynomials),
    Shared(TrusteeSharing),
    Finished(Trustee),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Committed(_) => "commit",
            Stage::Revealed(_) => "reveal",
            Stage::Shared(_) => "share",
            Stage::Finished(_) => "finish",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    election_id: String,
    trustee_index: u32,
    stage: Stage,
}

fn load_state(path: &Path, election_id: &str) -> Result<Option<StateFile>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let state: StateFile = serde_json::from_slice(&text)
        .with_context(|| format!("parsing trustee state {}", path.display()))?;
    if state.election_id != election_id {
        bail!(
            "{} is the state of election {:?}, not {election_id:?}",
            path.display(),
            state.election_id
        );
    }
    Ok(Some(state))
}

fn save_state(path: &Path, state: &StateFile) -> Result<()> {
    let json = serde_json::to_vec_pretty(state).context("encoding the trustee state")?;
    replace_secret_file(path, &json)
}

/// What a ceremony or decryption step did.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Leaf index of the last entry posted, if any.
    pub last_index: Option<u64>,
    /// For people.
    pub message: String,
}

/// A trustee's context for one step: keys, files, the board as read now.
pub struct TrusteeStep<'a> {
    /// The board.
    pub client: &'a BoardClient,
    /// The election.
    pub election_id: &'a str,
    /// The trustee's files.
    pub files: &'a TrusteeFiles,
    /// Leaves to wait for before reading (0: none).
    pub min_size: u64,
}

struct Loaded {
    keys: TrusteeKeys,
    view: ElectionView,
    index: u32,
    state_path: PathBuf,
    state: Option<StateFile>,
}

impl TrusteeStep<'_> {
    async fn load(&self) -> Result<Loaded> {
        let keys = TrusteeKeys::load(self.files)?;
        let view = ElectionView::fetch(self.client, self.election_id, self.min_size).await?;
        let index = view.trustee_index(&keys.public_key())?;
        let state_path = self.files.state(self.election_id);
        let state = load_state(&state_path, self.election_id)?;
        if let Some(state) = &state {
            if state.trustee_index != index {
                bail!(
                    "{} belongs to trustee {}, these keys are trustee {index}",
                    state_path.display(),
                    state.trustee_index
                );
            }
        }
        Ok(Loaded {
            keys,
            view,
            index,
            state_path,
            state,
        })
    }

    fn report(posted: &[u64], message: String) -> StepReport {
        StepReport {
            last_index: posted.last().copied(),
            message,
        }
    }

    async fn post_all(&self, key: &SigningKey, kinds: Vec<(Kind, String)>) -> Result<Vec<u64>> {
        let mut indexes = Vec::new();
        for (kind, what) in kinds {
            let posted = post(self.client, key, self.election_id, kind, &what).await?;
            indexes.push(posted.receipt.leaf_index);
        }
        Ok(indexes)
    }

    /// Runs the step named `round` (`commit`, `reveal`, `share`, `finish`, `decrypt`).
    pub async fn run(&self, round: &str) -> Result<StepReport> {
        match round {
            "commit" => self.commit().await,
            "reveal" => self.reveal().await,
            "share" => self.share().await,
            "finish" => self.finish().await,
            "decrypt" => self.decrypt().await,
            other => bail!("unknown trustee step {other:?}"),
        }
    }

    /// Saves `stage` as this trustee's state for the election.
    fn save(&self, path: &Path, trustee_index: u32, stage: Stage) -> Result<()> {
        save_state(
            path,
            &StateFile {
                election_id: self.election_id.to_string(),
                trustee_index,
                stage,
            },
        )
    }

    /// Round 1: draws the secret polynomial and posts its commitment.
    pub async fn commit(&self) -> Result<StepReport> {
        let loaded = self.load().await?;
        let i = loaded.index;
        let on_board = loaded
            .view
            .commitments()
            .into_iter()
            .find(|c| c.trustee_index == i);
        let committing = match (loaded.state, on_board) {
            (
                Some(StateFile {
                    stage: Stage::Committed(c),
                    ..
                }),
                Some(posted),
            ) if c.commitment_message() == posted => {
                return Ok(Self::report(
                    &[],
                    format!("trustee {i}: commitment already on the board"),
                ));
            }
            (
                Some(StateFile {
                    stage: Stage::Committed(c),
                    ..
                }),
                None,
            ) => c,
            (Some(state), _) => {
                return Ok(Self::report(
                    &[],
                    format!(
                        "trustee {i}: commit was done (state is at step {:?})",
                        state.stage.name()
                    ),
                ));
            }
            (None, Some(_)) => bail!(
                "trustee {i} already has a commitment on the board but no state file {}: \
                 the ceremony cannot continue without it",
                loaded.state_path.display()
            ),
            (None, None) => {
                loaded.view.require_phase(Phase::KeyCeremony, "commit")?;
                let threshold = loaded.view.threshold()?;
                let committing = TrusteeCommitting::new(threshold, i, &mut OsRng)
                    .context("starting the key ceremony")?;
                self.save(&loaded.state_path, i, Stage::Committed(committing.clone()))?;
                committing
            }
        };
        let message = committing.commitment_message();
        let posted = self
            .post_all(
                &loaded.keys.signing,
                vec![(
                    Kind::DkgCommitment(message),
                    format!("trustee {i}'s commitment"),
                )],
            )
            .await?;
        Ok(Self::report(
            &posted,
            format!("trustee {i}: commitment posted"),
        ))
    }

    /// Round 2: reads every commitment, posts the public polynomial and proof.
    pub async fn reveal(&self) -> Result<StepReport> {
        let loaded = self.load().await?;
        let i = loaded.index;
        let already = loaded
            .view
            .public_infos()
            .iter()
            .any(|p| p.trustee_index == i);
        let polynomials = match loaded.state {
            None => bail!(
                "no state file {}: run `trustee commit` first",
                loaded.state_path.display()
            ),
            Some(StateFile {
                stage: Stage::Committed(mut committing),
                ..
            }) => {
                loaded.view.require_phase(Phase::KeyCeremony, "reveal")?;
                for commitment in loaded.view.commitments() {
                    if commitment.trustee_index != i {
                        committing.insert_commitment(&commitment).with_context(|| {
                            format!("trustee {}'s commitment", commitment.trustee_index)
                        })?;
                    }
                }
                let polynomials = committing
                    .finish()
                    .context("not every trustee has committed yet")?;
                self.save(&loaded.state_path, i, Stage::Revealed(polynomials.clone()))?;
                polynomials
            }
            Some(StateFile {
                stage: Stage::Revealed(p),
                ..
            }) if !already => p,
            Some(state) => {
                return Ok(Self::report(
                    &[],
                    format!(
                        "trustee {i}: reveal was done (state is at step {:?})",
                        state.stage.name()
                    ),
                ));
            }
        };
        let info = polynomials
            .public_info()
            .context("encoding the public info")?;
        let posted = self
            .post_all(
                &loaded.keys.signing,
                vec![(
                    Kind::DkgPublicInfo(info.to_message()),
                    format!("trustee {i}'s public info"),
                )],
            )
            .await?;
        Ok(Self::report(
            &posted,
            format!("trustee {i}: public polynomial posted"),
        ))
    }

    /// Round 3: checks every public info, posts one sealed share per other trustee.
    pub async fn share(&self) -> Result<StepReport> {
        let loaded = self.load().await?;
        let i = loaded.index;
        let sharing = match loaded.state {
            None => bail!(
                "no state file {}: run `trustee commit` first",
                loaded.state_path.display()
            ),
            Some(StateFile {
                stage: Stage::Committed(_),
                ..
            }) => {
                bail!("run `trustee reveal` first")
            }
            Some(StateFile {
                stage: Stage::Revealed(mut polynomials),
                ..
            }) => {
                loaded.view.require_phase(Phase::KeyCeremony, "share")?;
                let threshold = loaded.view.threshold()?;
                for message in loaded.view.public_infos() {
                    if message.trustee_index != i {
                        PublicInfo::from_message(threshold, &message)
                            .and_then(|info| polynomials.insert_public_info(&info))
                            .with_context(|| {
                                format!("trustee {}'s public info", message.trustee_index)
                            })?;
                    }
                }
                let sharing = polynomials
                    .finish()
                    .context("not every trustee has posted its public info yet")?;
                self.save(&loaded.state_path, i, Stage::Shared(sharing.clone()))?;
                sharing
            }
            Some(StateFile {
                stage: Stage::Shared(sharing),
                ..
            }) => sharing,
            Some(state) => {
                return Ok(Self::report(
                    &[],
                    format!(
                        "trustee {i}: share was done (state is at step {:?})",
                        state.stage.name()
                    ),
                ));
            }
        };
        let posted_pairs: Vec<u32> = loaded
            .view
            .secret_shares()
            .iter()
            .filter(|s| s.from_trustee == i)
            .map(|s| s.to_trustee)
            .collect();
        let mut kinds = Vec::new();
        for (to, recipient) in loaded.view.manifest.trustees.iter().enumerate() {
            let to = u32::try_from(to).context("trustee index")?;
            if to == i || posted_pairs.contains(&to) {
                continue;
            }
            let share = sharing.secret_share_for(to).context("computing a share")?;
            let message = share_message(
                &recipient.encryption_key,
                self.election_id,
                &share,
                &mut OsRng,
            )
            .with_context(|| format!("sealing the share for trustee {to}"))?;
            kinds.push((
                Kind::DkgSecretShare(message),
                format!("trustee {i}'s share for trustee {to}"),
            ));
        }
        let posted = self.post_all(&loaded.keys.signing, kinds).await?;
        let message = if posted.is_empty() {
            format!("trustee {i}: shares already on the board")
        } else {
            format!("trustee {i}: {} sealed shares posted", posted.len())
        };
        Ok(Self::report(&posted, message))
    }

    /// Completes the ceremony: opens and checks the shares sealed to this trustee and
    /// keeps its secret key share. Posts nothing.
    pub async fn finish(&self) -> Result<StepReport> {
        let loaded = self.load().await?;
        let i = loaded.index;
        let mut sharing = match loaded.state {
            Some(StateFile {
                stage: Stage::Shared(sharing),
                ..
            }) => sharing,
            Some(StateFile {
                stage: Stage::Finished(trustee),
                ..
            }) => {
                return Ok(Self::report(
                    &[],
                    format!(
                        "trustee {i}: the ceremony was finished; joint key {}",
                        hex::encode(trustee.key_set().to_joint_key().public_key)
                    ),
                ));
            }
            _ => bail!("run `trustee commit`, `reveal` and `share` first"),
        };
        for message in loaded.view.secret_shares() {
            if message.to_trustee == i {
                let share =
                    open_share_message(&loaded.keys.transport, self.election_id, i, &message)
                        .with_context(|| {
                            format!("opening the share from trustee {}", message.from_trustee)
                        })?;
                sharing
                    .insert_share(&share)
                    .with_context(|| format!("the share from trustee {}", message.from_trustee))?;
            }
        }
        let trustee = sharing
            .finish()
            .context("not every trustee has posted its share for this trustee yet")?;
        let mine = trustee.key_set().to_joint_key();
        let derived = derive_from_board(&loaded.view)?;
        if derived != mine {
            bail!("the key derived from the board differs from this trustee's key set");
        }
        self.save(&loaded.state_path, i, Stage::Finished(trustee))?;
        Ok(Self::report(
            &[],
            format!(
                "trustee {i}: ceremony complete; secret key share kept in {}; joint key {}",
                loaded.state_path.display(),
                hex::encode(&mine.public_key)
            ),
        ))
    }

    /// Posts this trustee's decryption share of every precinct × contest tally that
    /// does not have one from it yet.
    pub async fn decrypt(&self) -> Result<StepReport> {
        let loaded = self.load().await?;
        let i = loaded.index;
        let Some(StateFile {
            stage: Stage::Finished(trustee),
            ..
        }) = loaded.state
        else {
            bail!("this trustee has not finished the key ceremony (run `trustee finish`)");
        };
        loaded.view.require_phase(Phase::Tallying, "decrypt")?;
        let record = ElectionRecord::from_leaves(&loaded.view.leaves, self.election_id)
            .context("replaying the board")?;
        let tally = record.tally().context("tallying the cast ballots")?;
        let done: Vec<(String, String)> = record
            .shares
            .iter()
            .filter(|(_, s)| s.trustee_index == i)
            .map(|(_, s)| (s.precinct_id.clone(), s.contest_id.clone()))
            .collect();
        let mut kinds = Vec::new();
        for (precinct_id, contest) in tally.iter() {
            if done.contains(&(precinct_id.to_string(), contest.contest_id.clone())) {
                continue;
            }
            let share = tally::decryption_share(
                &trustee,
                self.election_id,
                precinct_id,
                contest,
                &mut OsRng,
            )
            .context("computing a decryption share")?;
            kinds.push((
                Kind::DecryptionShare(share),
                format!(
                    "trustee {i}'s decryption share of {precinct_id}/{}",
                    contest.contest_id
                ),
            ));
        }
        let posted = self.post_all(&loaded.keys.signing, kinds).await?;
        let message = if posted.is_empty() {
            format!("trustee {i}: decryption shares already on the board")
        } else {
            format!("trustee {i}: {} decryption shares posted", posted.len())
        };
        Ok(Self::report(&posted, message))
    }
}

/// Fails with a readable message when `files.dir` holds no trustee keys.
pub fn check_files(files: &TrusteeFiles) -> Result<()> {
    if !files.signing_key().exists() {
        return Err(anyhow!(
            "{} has no signing.key: create it with `bboard trustee keygen`",
            files.dir.display()
        ));
    }
    Ok(())
}
