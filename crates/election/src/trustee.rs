//! A trustee's side of the election: its key files, the three rounds of the key
//! ceremony (commit, reveal, share), finishing it, and its decryption shares.
//!
//! Every step ([`TrusteeStep::run`]) reads the board, does its round, persists its
//! secret state **before** posting (a crash between the two leaves a state the re-run
//! resumes from) and posts. Re-running a step that is done posts nothing and says so.
//!
//! A trustee's directory ([`TrusteeFiles`]) holds `signing.key` (Ed25519: signs its
//! entries), `transport.key` (X25519: opens the DKG shares sealed to it), both in the
//! key-file format of [`bboard_util::key_file`], and one ceremony state file per
//! election, `state-<election>.json`. The state holds the secret polynomial and, once
//! the ceremony is finished, the trustee's secret key share: it is replaced atomically
//! and readable only by its owner.
//!
//! What a step decides is a pure function of the board read, the state and the keys
//! (a [`Plan`]); only [`TrusteeStep::run`] touches files and the network.

use std::path::{Path, PathBuf};

use bboard_ballot::dkg::{
    PublicInfo, Trustee, TrusteeCommitting, TrusteePolynomials, TrusteeSharing,
};
use bboard_ballot::tally;
use bboard_ballot::transport::{open_share_message, share_message, TransportSecret};
use bboard_ballot::BallotError;
use bboard_client::BoardClient;
use bboard_core::audit::ElectionRecord;
use bboard_core::pb::{self, entry_body::Kind, Phase};
use bboard_util::key_file;
use ed25519_dalek::SigningKey;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::authority::derive_from_board;
use crate::board::{post, ElectionView};
use crate::manifest::TrusteeSpec;
use crate::{Error, Result};

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

    /// The ceremony state file of `election_id` (characters other than ASCII letters,
    /// digits and `-` become `_`, so an id cannot name another path).
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

    /// Fails unless the directory holds a trustee's signing key: a readable error
    /// before any network call.
    ///
    /// # Errors
    ///
    /// [`Error::NoTrusteeKeys`].
    pub fn check(&self) -> Result<()> {
        if !self.signing_key().exists() {
            return Err(Error::NoTrusteeKeys {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }
}

/// Creates `files.dir` with a new signing key and transport secret (refuses to
/// overwrite either) and returns the public parts, as the manifest names them.
///
/// # Errors
///
/// [`Error::TrusteeDir`] or [`Error::KeyFile`].
pub fn keygen<R: CryptoRng + RngCore>(
    files: &TrusteeFiles,
    name: &str,
    rng: &mut R,
) -> Result<TrusteeSpec> {
    std::fs::create_dir_all(&files.dir).map_err(|source| Error::TrusteeDir {
        dir: files.dir.clone(),
        source,
    })?;
    let signing = SigningKey::generate(rng);
    let transport = TransportSecret::generate(rng);
    key_file::write_signing_key(&files.signing_key(), &signing)?;
    key_file::write_key_bytes(&files.transport_key(), &transport.to_bytes())?;
    Ok(TrusteeSpec {
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
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`].
    pub fn load(files: &TrusteeFiles) -> Result<Self> {
        let transport = key_file::read_key_bytes(&files.transport_key())?;
        Ok(TrusteeKeys {
            signing: key_file::read_signing_key(&files.signing_key())?,
            // Cannot fail on 32 bytes; mapped all the same rather than unwrapped.
            transport: TransportSecret::from_bytes(&transport).map_err(|source| Error::Crypto {
                doing: format!("the transport key {}", files.transport_key().display()),
                source: Box::new(source),
            })?,
        })
    }

    fn public_key(&self) -> [u8; 32] {
        *self.signing.verifying_key().as_bytes()
    }
}

/// A step of a trustee: the three ceremony rounds, finishing the ceremony, decrypting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Round 1: draws the secret polynomial and posts its commitment.
    Commit,
    /// Round 2: reads every commitment, posts the public polynomial and its proof.
    Reveal,
    /// Round 3: checks every public polynomial, posts one sealed share per other
    /// trustee.
    Share,
    /// Opens and checks the shares sealed to this trustee and keeps its secret key
    /// share. Posts nothing.
    Finish,
    /// Posts this trustee's decryption share of every precinct × contest tally.
    Decrypt,
}

impl Step {
    /// The key ceremony's steps, in order.
    pub const CEREMONY: [Step; 4] = [Step::Commit, Step::Reveal, Step::Share, Step::Finish];

    /// Its name (`commit`, `reveal`, `share`, `finish`, `decrypt`), as the commands
    /// name it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Commit => "commit",
            Step::Reveal => "reveal",
            Step::Share => "share",
            Step::Finish => "finish",
            Step::Decrypt => "decrypt",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The ceremony state of one trustee in one election, named by the step that made it.
/// **Secret.**
#[derive(Serialize, Deserialize)]
#[serde(tag = "stage", content = "state", rename_all = "snake_case")]
enum Stage {
    Committed(TrusteeCommitting),
    Revealed(TrusteePolynomials),
    Shared(TrusteeSharing),
    Finished(Trustee),
}

impl Stage {
    /// The step that produced this state.
    fn step(&self) -> Step {
        match self {
            Stage::Committed(_) => Step::Commit,
            Stage::Revealed(_) => Step::Reveal,
            Stage::Shared(_) => Step::Share,
            Stage::Finished(_) => Step::Finish,
        }
    }

    /// The step to run next from this state (`Decrypt` once finished).
    fn next(&self) -> Step {
        match self {
            Stage::Committed(_) => Step::Reveal,
            Stage::Revealed(_) => Step::Share,
            Stage::Shared(_) => Step::Finish,
            Stage::Finished(_) => Step::Decrypt,
        }
    }
}

/// The content of a state file: the stage, bound to its election and trustee.
#[derive(Serialize, Deserialize)]
struct StateFile {
    election_id: String,
    trustee_index: u32,
    stage: Stage,
}

/// Reads the state file at `path`: `None` when there is none yet.
fn load_state(path: &Path, election_id: &str) -> Result<Option<StateFile>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::StateRead {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|source| Error::StateSyntax {
        path: path.to_path_buf(),
        source,
    })?;
    if state.election_id != election_id {
        return Err(Error::StateOfAnotherElection {
            path: path.to_path_buf(),
            found: state.election_id,
            expected: election_id.to_string(),
        });
    }
    Ok(Some(state))
}

/// Replaces the state file at `path`, atomically and readable only by its owner.
fn save_state(path: &Path, state: &StateFile) -> Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(|source| Error::StateSyntax {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(key_file::replace_secret_file(path, &json)?)
}

/// What a ceremony or decryption step did.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Leaf index of the last entry posted, if any.
    pub last_index: Option<u64>,
    /// For people.
    pub message: String,
}

/// A trustee's context for one step: the board, the election, its files.
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

impl TrusteeStep<'_> {
    /// Runs `step`: loads the keys, reads the board and the state file, decides, saves
    /// the new state, then posts.
    ///
    /// # Errors
    ///
    /// Reading the keys, the board or the state; a step run out of order, a ceremony
    /// round others have not completed, a bad message of another trustee (each named
    /// by its manifest name); saving the state; posting.
    pub async fn run(&self, step: Step) -> Result<StepReport> {
        let keys = TrusteeKeys::load(self.files)?;
        let view = ElectionView::fetch(self.client, self.election_id, self.min_size).await?;
        let (entries, message) = decide(self.files, &keys, &view, step, &mut rand::rngs::OsRng)?;
        let mut last_index = None;
        for (kind, what) in entries {
            let posted = post(self.client, &keys.signing, self.election_id, kind, &what).await?;
            last_index = Some(posted.receipt.leaf_index);
        }
        Ok(StepReport {
            last_index,
            message,
        })
    }
}

/// Decides `step` on the board as read in `view` and saves the new ceremony state, if
/// any: what is left is to post the entries returned (each with its name for errors),
/// then tell people the message.
fn decide<R: CryptoRng + RngCore>(
    files: &TrusteeFiles,
    keys: &TrusteeKeys,
    view: &ElectionView,
    step: Step,
    rng: &mut R,
) -> Result<(Vec<(Kind, String)>, String)> {
    let state_path = files.state(&view.election_id);
    let ceremony = Ceremony::new(view, keys, &state_path)?;
    let plan = ceremony.plan(step, rng)?;
    if let Some(stage) = plan.save {
        let state = StateFile {
            election_id: view.election_id.clone(),
            trustee_index: ceremony.index,
            stage,
        };
        save_state(&state_path, &state)?;
    }
    Ok((plan.post, plan.message))
}

/// What a step decided: the state to save first (if it changed), the entries to post
/// then (each with its name for errors), and what to tell people.
struct Plan {
    save: Option<Stage>,
    post: Vec<(Kind, String)>,
    message: String,
}

/// One trustee's view of the ceremony: the board read, its keys, its state.
struct Ceremony<'a> {
    view: &'a ElectionView,
    keys: &'a TrusteeKeys,
    /// Its manifest index.
    index: u32,
    /// Its manifest name, for messages and errors.
    name: String,
    state_path: &'a Path,
    state: Option<Stage>,
}

impl<'a> Ceremony<'a> {
    /// Finds the trustee of `keys` in the manifest and reads its state (refusing the
    /// state of another election or trustee).
    fn new(view: &'a ElectionView, keys: &'a TrusteeKeys, state_path: &'a Path) -> Result<Self> {
        let index = view.trustee_index(&keys.public_key())?;
        let state = load_state(state_path, &view.election_id)?;
        if let Some(state) = &state {
            if state.trustee_index != index {
                return Err(Error::StateOfAnotherTrustee {
                    path: state_path.to_path_buf(),
                    state: view.trustee_name(state.trustee_index),
                    keys: view.trustee_name(index),
                });
            }
        }
        Ok(Ceremony {
            view,
            keys,
            index,
            name: view.trustee_name(index),
            state_path,
            state: state.map(|s| s.stage),
        })
    }

    fn plan<R: CryptoRng + RngCore>(&self, step: Step, rng: &mut R) -> Result<Plan> {
        match step {
            Step::Commit => self.commit(rng),
            Step::Reveal => self.reveal(),
            Step::Share => self.share(rng),
            Step::Finish => self.finish(),
            Step::Decrypt => self.decrypt(rng),
        }
    }

    /// A plan that changes nothing.
    fn nothing(&self, message: String) -> Plan {
        Plan {
            save: None,
            post: Vec::new(),
            message: format!("trustee {}: {message}", self.name),
        }
    }

    /// "`step` was done": the state is past it.
    fn was_done(&self, step: Step, stage: &Stage) -> Plan {
        self.nothing(format!(
            "{step} was done (state is at step {:?})",
            stage.step().name()
        ))
    }

    /// The state is missing, or not far enough along for `step`.
    fn out_of_order(&self, step: Step) -> Error {
        match &self.state {
            None => Error::NoCeremonyState {
                trustee: self.name.clone(),
                path: self.state_path.to_path_buf(),
            },
            Some(stage) => Error::StepOrder {
                trustee: self.name.clone(),
                step,
                needs: stage.next(),
            },
        }
    }

    /// `doing` failed in election cryptography: a ceremony round that cannot finish
    /// names the trustees it waits for.
    fn crypto(&self, doing: &str) -> impl FnOnce(BallotError) -> Error + '_ {
        let doing = doing.to_string();
        move |source| self.view.crypto_error(doing, source)
    }

    /// A message of trustee `from` on the board does not fit.
    fn bad_message(&self, what: &'static str, from: u32) -> impl FnOnce(BallotError) -> Error {
        let from = self.view.trustee_name(from);
        move |source| Error::CeremonyMessage {
            what,
            from,
            source: Box::new(source),
        }
    }

    fn commit<R: CryptoRng + RngCore>(&self, rng: &mut R) -> Result<Plan> {
        let i = self.index;
        let on_board = self
            .view
            .messages::<pb::DkgCommitment>()
            .find(|c| c.trustee_index == i);
        let (committing, save) = match (&self.state, on_board) {
            (Some(Stage::Committed(c)), Some(posted)) if c.commitment_message() == *posted => {
                return Ok(self.nothing("commitment already on the board".into()));
            }
            (Some(Stage::Committed(c)), None) => (c.clone(), false),
            (Some(stage), _) => return Ok(self.was_done(Step::Commit, stage)),
            (None, Some(_)) => {
                return Err(Error::StateLost {
                    trustee: self.name.clone(),
                    path: self.state_path.to_path_buf(),
                })
            }
            (None, None) => {
                self.view.require_phase(Phase::KeyCeremony, "commit")?;
                let threshold = self.view.threshold()?;
                let committing =
                    TrusteeCommitting::new(threshold, i, rng).map_err(|source| Error::Crypto {
                        doing: "starting the key ceremony".into(),
                        source: Box::new(source),
                    })?;
                (committing, true)
            }
        };
        Ok(Plan {
            post: vec![(
                Kind::DkgCommitment(committing.commitment_message()),
                format!("the commitment of trustee {}", self.name),
            )],
            message: format!("trustee {}: commitment posted", self.name),
            save: save.then_some(Stage::Committed(committing)),
        })
    }

    fn reveal(&self) -> Result<Plan> {
        let i = self.index;
        let already = self
            .view
            .messages::<pb::DkgPublicInfo>()
            .any(|p| p.trustee_index == i);
        let (polynomials, save) = match &self.state {
            Some(Stage::Committed(committing)) => {
                self.view.require_phase(Phase::KeyCeremony, "reveal")?;
                let mut committing = committing.clone();
                for commitment in self.view.messages::<pb::DkgCommitment>() {
                    if commitment.trustee_index != i {
                        committing
                            .insert_commitment(commitment)
                            .map_err(self.bad_message("commitment", commitment.trustee_index))?;
                    }
                }
                let polynomials = committing
                    .finish()
                    .map_err(self.crypto("finishing the commitment round"))?;
                (polynomials, true)
            }
            Some(Stage::Revealed(p)) if !already => (p.clone(), false),
            Some(stage) => return Ok(self.was_done(Step::Reveal, stage)),
            None => return Err(self.out_of_order(Step::Reveal)),
        };
        let info = polynomials
            .public_info()
            .map_err(self.crypto("encoding the public info"))?;
        Ok(Plan {
            post: vec![(
                Kind::DkgPublicInfo(info.to_message()),
                format!("the public info of trustee {}", self.name),
            )],
            message: format!("trustee {}: public polynomial posted", self.name),
            save: save.then_some(Stage::Revealed(polynomials)),
        })
    }

    fn share<R: CryptoRng + RngCore>(&self, rng: &mut R) -> Result<Plan> {
        let i = self.index;
        let (sharing, save) = match &self.state {
            Some(Stage::Revealed(polynomials)) => {
                self.view.require_phase(Phase::KeyCeremony, "share")?;
                let threshold = self.view.threshold()?;
                let mut polynomials = polynomials.clone();
                for message in self.view.messages::<pb::DkgPublicInfo>() {
                    if message.trustee_index != i {
                        PublicInfo::from_message(threshold, message)
                            .and_then(|info| polynomials.insert_public_info(&info))
                            .map_err(self.bad_message("public info", message.trustee_index))?;
                    }
                }
                let sharing = polynomials
                    .finish()
                    .map_err(self.crypto("finishing the public info round"))?;
                (sharing, true)
            }
            Some(Stage::Shared(sharing)) => (sharing.clone(), false),
            Some(stage @ Stage::Finished(_)) => return Ok(self.was_done(Step::Share, stage)),
            Some(Stage::Committed(_)) | None => return Err(self.out_of_order(Step::Share)),
        };
        let posted_to: Vec<u32> = self
            .view
            .messages::<pb::DkgSecretShare>()
            .filter(|s| s.from_trustee == i)
            .map(|s| s.to_trustee)
            .collect();
        let mut post = Vec::new();
        for (to, recipient) in self.view.manifest.trustees.iter().enumerate() {
            let to = u32::try_from(to).map_err(|_| Error::IndexOverflow {
                what: "trustee",
                index: to,
            })?;
            if to == i || posted_to.contains(&to) {
                continue;
            }
            let to_name = self.view.trustee_name(to);
            let share = sharing
                .secret_share_for(to)
                .map_err(self.crypto(&format!("computing the share for trustee {to_name}")))?;
            let message = share_message(
                &recipient.encryption_key,
                &self.view.election_id,
                &share,
                rng,
            )
            .map_err(self.crypto(&format!("sealing the share for trustee {to_name}")))?;
            post.push((
                Kind::DkgSecretShare(message),
                format!("the share of trustee {} for trustee {to_name}", self.name),
            ));
        }
        let message = if post.is_empty() {
            format!("trustee {}: shares already on the board", self.name)
        } else {
            format!("trustee {}: {} sealed shares posted", self.name, post.len())
        };
        Ok(Plan {
            post,
            message,
            save: save.then_some(Stage::Shared(sharing)),
        })
    }

    fn finish(&self) -> Result<Plan> {
        let i = self.index;
        let mut sharing = match &self.state {
            Some(Stage::Shared(sharing)) => sharing.clone(),
            Some(Stage::Finished(trustee)) => {
                return Ok(self.nothing(format!(
                    "the ceremony was finished; joint key {}",
                    hex::encode(trustee.key_set().to_joint_key().public_key)
                )));
            }
            _ => return Err(self.out_of_order(Step::Finish)),
        };
        for message in self.view.messages::<pb::DkgSecretShare>() {
            if message.to_trustee == i {
                open_share_message(&self.keys.transport, &self.view.election_id, i, message)
                    .and_then(|share| sharing.insert_share(&share))
                    .map_err(self.bad_message("sealed share", message.from_trustee))?;
            }
        }
        let trustee = sharing
            .finish()
            .map_err(self.crypto("finishing the share round"))?;
        let mine = trustee.key_set().to_joint_key();
        if derive_from_board(self.view)? != mine {
            return Err(Error::JointKeyMismatch {
                trustee: self.name.clone(),
            });
        }
        Ok(Plan {
            message: format!(
                "trustee {}: ceremony complete; secret key share kept in {}; joint key {}",
                self.name,
                self.state_path.display(),
                hex::encode(&mine.public_key)
            ),
            save: Some(Stage::Finished(trustee)),
            post: Vec::new(),
        })
    }

    fn decrypt<R: CryptoRng + RngCore>(&self, rng: &mut R) -> Result<Plan> {
        let i = self.index;
        let Some(Stage::Finished(trustee)) = &self.state else {
            return Err(self.out_of_order(Step::Decrypt));
        };
        self.view.require_phase(Phase::Tallying, "decrypt")?;
        let election_id = &self.view.election_id;
        let record =
            ElectionRecord::from_leaves(&self.view.leaves, election_id).map_err(Error::Replay)?;
        let tally = record
            .tally()
            .map_err(self.crypto("tallying the cast ballots"))?;
        let done: Vec<(&str, &str)> = record
            .shares
            .iter()
            .filter(|(_, s)| s.trustee_index == i)
            .map(|(_, s)| (s.precinct_id.as_str(), s.contest_id.as_str()))
            .collect();
        let mut post = Vec::new();
        for (precinct_id, contest) in tally.iter() {
            if done.contains(&(precinct_id, contest.contest_id.as_str())) {
                continue;
            }
            let what = format!(
                "the decryption share of trustee {} of {precinct_id}/{}",
                self.name, contest.contest_id
            );
            let share = tally::decryption_share(trustee, election_id, precinct_id, contest, rng)
                .map_err(self.crypto(&format!("computing {what}")))?;
            post.push((Kind::DecryptionShare(share), what));
        }
        let message = if post.is_empty() {
            format!(
                "trustee {}: decryption shares already on the board",
                self.name
            )
        } else {
            format!(
                "trustee {}: {} decryption shares posted",
                self.name,
                post.len()
            )
        };
        Ok(Plan {
            save: None,
            post,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use bboard_core::leaf::LeafRecord;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::board::{sign, Posted};

    const ELECTION: &str = "e-2026";
    const NAMES: [&str; 3] = ["CEC", "Observers", "Party A"];

    /// Three trustees (2 of 3) with their files, and an in-memory board in phase
    /// KEY_CEREMONY that their steps post to.
    struct Setup {
        _dir: tempfile::TempDir,
        files: Vec<TrusteeFiles>,
        keys: Vec<TrusteeKeys>,
        view: ElectionView,
        rng: StdRng,
    }

    /// Appends `kind`, signed by `key`, to the board of `view`.
    fn push(view: &mut ElectionView, key: &SigningKey, kind: Kind) {
        let envelope = sign(key, &view.election_id, kind);
        let record = LeafRecord {
            timestamp_unix_ms: view.size(),
            envelope,
        };
        view.leaves.push(record.encode());
        view.entries.push(Posted {
            signer: *record.envelope.signer().as_bytes(),
            body: record.envelope.body().unwrap(),
            record,
        });
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(16);
        let files: Vec<TrusteeFiles> = NAMES
            .iter()
            .map(|name| TrusteeFiles {
                dir: dir.path().join(name),
            })
            .collect();
        let trustees = files
            .iter()
            .zip(NAMES)
            .map(|(files, name)| keygen(files, name, &mut rng).unwrap())
            .collect();
        let manifest = crate::manifest::tests::file(2, trustees)
            .to_proto()
            .unwrap();
        let mut view = ElectionView {
            election_id: ELECTION.into(),
            leaves: Vec::new(),
            entries: Vec::new(),
            manifest,
            registered_elsewhere: Vec::new(),
        };
        let phase = pb::PhaseChange {
            phase: Phase::KeyCeremony as i32,
        };
        push(
            &mut view,
            &SigningKey::from_bytes(&[7; 32]),
            Kind::PhaseChange(phase),
        );
        Setup {
            keys: files
                .iter()
                .map(|f| TrusteeKeys::load(f).unwrap())
                .collect(),
            files,
            view,
            rng,
            _dir: dir,
        }
    }

    impl Setup {
        /// Trustee `t` runs `step` on the board as it is now and posts to it; the
        /// number of entries posted and the message.
        fn step(&mut self, t: usize, step: Step) -> Result<(usize, String)> {
            let (entries, message) = decide(
                &self.files[t],
                &self.keys[t],
                &self.view,
                step,
                &mut self.rng,
            )?;
            let posted = entries.len();
            for (kind, _) in entries {
                push(&mut self.view, &self.keys[t].signing, kind);
            }
            Ok((posted, message))
        }

        fn state(&self, t: usize) -> StateFile {
            load_state(&self.files[t].state(ELECTION), ELECTION)
                .unwrap()
                .unwrap()
        }
    }

    #[test]
    fn the_ceremony_completes_step_by_step_and_a_rerun_posts_nothing() {
        let mut setup = setup();
        // Commitments, public infos, then two sealed shares per trustee.
        for (step, each) in [(Step::Commit, 1), (Step::Reveal, 1), (Step::Share, 2)] {
            for (t, name) in NAMES.iter().enumerate() {
                assert_eq!(setup.step(t, step).unwrap().0, each, "{step} of {name}");
                let (again, message) = setup.step(t, step).unwrap();
                assert_eq!(again, 0, "{step} of {name} again: {message}");
                assert!(message.starts_with(&format!("trustee {name} (#{t}):")));
            }
        }
        let joint = derive_from_board(&setup.view).unwrap();
        for t in 0..3 {
            assert_eq!(setup.step(t, Step::Finish).unwrap().0, 0);
            let Stage::Finished(trustee) = setup.state(t).stage else {
                panic!("trustee {t} did not finish");
            };
            assert_eq!(trustee.key_set().to_joint_key(), joint);
            let (posted, message) = setup.step(t, Step::Finish).unwrap();
            assert_eq!(posted, 0);
            assert!(message.contains("the ceremony was finished"), "{message}");
            // Done steps stay done.
            assert_eq!(setup.step(t, Step::Commit).unwrap().0, 0);
            assert_eq!(setup.step(t, Step::Share).unwrap().0, 0);
        }
        assert_eq!(setup.view.messages::<pb::DkgSecretShare>().count(), 6);
    }

    #[test]
    fn an_incomplete_round_names_the_trustees_it_waits_for() {
        let mut setup = setup();
        setup.step(0, Step::Commit).unwrap();
        setup.step(1, Step::Commit).unwrap();
        let error = setup.step(0, Step::Reveal).unwrap_err();
        match &error {
            Error::CeremonyIncomplete { round, missing } => {
                assert_eq!(*round, "commitment");
                assert_eq!(missing, &["Party A (#2)".to_string()]);
            }
            other => panic!("expected CeremonyIncomplete, got {other:?}"),
        }
        assert!(
            error.to_string().contains("waiting for Party A (#2)"),
            "{error}"
        );
        // Nothing was saved: the trustee is still at its commitment and can retry.
        assert!(matches!(setup.state(0).stage, Stage::Committed(_)));
        setup.step(2, Step::Commit).unwrap();
        assert_eq!(setup.step(0, Step::Reveal).unwrap().0, 1);
    }

    #[test]
    fn a_step_out_of_order_names_the_trustee_and_the_step_to_run() {
        let mut setup = setup();
        match setup.step(1, Step::Reveal).unwrap_err() {
            Error::NoCeremonyState { trustee, path } => {
                assert_eq!(trustee, "Observers (#1)");
                assert_eq!(path, setup.files[1].state(ELECTION));
            }
            other => panic!("expected NoCeremonyState, got {other:?}"),
        }
        setup.step(1, Step::Commit).unwrap();
        for step in [Step::Share, Step::Finish, Step::Decrypt] {
            match setup.step(1, step).unwrap_err() {
                Error::StepOrder {
                    trustee,
                    step: attempted,
                    needs,
                } => {
                    assert_eq!(trustee, "Observers (#1)");
                    assert_eq!((attempted, needs), (step, Step::Reveal));
                }
                other => panic!("{step}: expected StepOrder, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_lost_state_after_the_commitment_is_posted_stops_the_ceremony() {
        let mut setup = setup();
        setup.step(2, Step::Commit).unwrap();
        std::fs::remove_file(setup.files[2].state(ELECTION)).unwrap();
        match setup.step(2, Step::Commit).unwrap_err() {
            Error::StateLost { trustee, .. } => assert_eq!(trustee, "Party A (#2)"),
            other => panic!("expected StateLost, got {other:?}"),
        }
    }

    #[test]
    fn the_state_file_round_trips_and_is_saved_before_posting() {
        let mut setup = setup();
        let (entries, _) = decide(
            &setup.files[0],
            &setup.keys[0],
            &setup.view,
            Step::Commit,
            &mut setup.rng,
        )
        .unwrap();
        // Not posted yet, already saved: the posted commitment is the saved one's.
        let state = setup.state(0);
        assert_eq!(
            (state.election_id.as_str(), state.trustee_index),
            (ELECTION, 0)
        );
        let Stage::Committed(committing) = state.stage else {
            panic!("expected the committed stage");
        };
        match &entries[..] {
            [(Kind::DkgCommitment(posted), _)] => {
                assert_eq!(*posted, committing.commitment_message());
            }
            other => panic!("expected one commitment, got {other:?}"),
        }
        // The format stays what earlier versions wrote.
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(setup.files[0].state(ELECTION)).unwrap())
                .unwrap();
        assert_eq!(json["stage"]["stage"], "committed");
        assert_eq!(json["election_id"], ELECTION);
    }

    #[test]
    fn the_state_of_another_election_is_refused() {
        let mut setup = setup();
        setup.step(0, Step::Commit).unwrap();
        let path = setup.files[0].state(ELECTION);
        match load_state(&path, "another") {
            Err(Error::StateOfAnotherElection {
                path: at,
                found,
                expected,
            }) => {
                assert_eq!(at, path);
                assert_eq!((found.as_str(), expected.as_str()), (ELECTION, "another"));
            }
            other => panic!("expected StateOfAnotherElection, got {:?}", other.err()),
        }
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            load_state(&path, ELECTION),
            Err(Error::StateSyntax { .. })
        ));
    }

    #[test]
    fn the_state_of_another_trustee_is_refused_by_name() {
        let mut setup = setup();
        setup.step(0, Step::Commit).unwrap();
        std::fs::copy(
            setup.files[0].state(ELECTION),
            setup.files[1].state(ELECTION),
        )
        .unwrap();
        match setup.step(1, Step::Reveal).unwrap_err() {
            Error::StateOfAnotherTrustee { state, keys, .. } => {
                assert_eq!(
                    (state.as_str(), keys.as_str()),
                    ("CEC (#0)", "Observers (#1)")
                );
            }
            other => panic!("expected StateOfAnotherTrustee, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_never_overwritten_and_a_directory_without_keys_is_named() {
        let setup = setup();
        assert!(matches!(
            keygen(&setup.files[0], "CEC", &mut StdRng::seed_from_u64(1)),
            Err(Error::KeyFile(key_file::KeyFileError::Exists { .. }))
        ));
        let loaded = TrusteeKeys::load(&setup.files[0]).unwrap();
        assert_eq!(loaded.public_key(), setup.keys[0].public_key());
        setup.files[0].check().unwrap();
        let empty = TrusteeFiles {
            dir: setup._dir.path().join("nobody"),
        };
        assert!(matches!(empty.check(), Err(Error::NoTrusteeKeys { .. })));
    }

    #[test]
    fn state_file_names_cannot_leave_the_directory() {
        let files = TrusteeFiles {
            dir: PathBuf::from("/t"),
        };
        assert_eq!(files.state("../e 1"), PathBuf::from("/t/state-___e_1.json"));
    }

    #[test]
    fn a_key_registered_for_another_election_is_named_as_such() {
        let mut setup = setup();
        let key = [9u8; 32];
        let unknown = setup
            .view
            .precinct_of(&key, pb::Role::Terminal)
            .unwrap_err()
            .to_string();
        assert_eq!(
            unknown,
            format!(
                "key {} is not registered for election {ELECTION:?}",
                hex::encode(key)
            )
        );
        setup.view.registered_elsewhere.push((
            "e1".into(),
            pb::RegisterKey {
                public_key: key.to_vec(),
                role: pb::Role::Terminal as i32,
                ..Default::default()
            },
        ));
        let elsewhere = setup
            .view
            .precinct_of(&key, pb::Role::Terminal)
            .unwrap_err()
            .to_string();
        assert!(
            elsewhere.ends_with("(it is registered for election \"e1\" as ROLE_TERMINAL)"),
            "{elsewhere}"
        );
    }
}
