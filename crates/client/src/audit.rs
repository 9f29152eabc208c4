//! `bboard audit` as a library: fetch every node's latest checkpoint, check it against
//! the k-of-n policy, against the checkpoint this auditor saw last time, and against
//! the other nodes; turn every provable conflict into an [`Evidence`] file.
//!
//! The work is split so the judgement is testable without a network:
//!
//! 1. [`audit`] (async) fetches one [`Observation`] per endpoint (a node's own
//!    latest signed note, or why it could not be fetched);
//! 2. [`needed`] (pure) says which consistency proofs and roots the comparison needs,
//!    and the size of the cosigned reference checkpoint;
//! 3. [`audit`] asks every node for *its own* checkpoints of chosen sizes
//!    ([`Observation::own`]): the reference size, when it has applied that far, and
//!    the size it has applied. A node's latest checkpoint may be an older final one
//!    while what it signs now is over another root (e.g. a leader that applied entries
//!    in another order); its checkpoint of a given size always carries its own
//!    signature over its own tree at that size, so a key that signed another root at
//!    the reference size is caught as an equivocation, and one that signed a smaller
//!    tree that is not a prefix of the reference as not-a-prefix. [`needed`] is asked
//!    again with these;
//! 4. [`audit`] fetches the proofs and roots into a [`ProofBook`] from the nodes that serve the
//!    cosigned checkpoint, and with `full` downloads every entry and recomputes the
//!    tree;
//! 5. [`compare`] (pure) decides: the cosigned reference checkpoint, per-endpoint
//!    status, findings with evidence, warnings.
//!
//! Nothing a node serves is trusted: proofs and roots in the book are only used after
//! they verify against policy-verified (k-of-n) checkpoints, and every evidence file
//! is checked with [`verify_evidence`] before it is reported, so the report never
//! contains evidence that `bboard verify-evidence` would reject.
//!
//! Censorship is audited too ([`crate::censorship`]): every node's active alarms are
//! collected and verified; an alarm whose envelope is absent from the board (no node
//! has it) and whose signer is registered on the cosigned board is a finding, with a
//! [`Evidence::Censorship`] file (the alarm and the cosigned reference checkpoint).
//!
//! The caller keeps an [`AuditState`] (the last cosigned checkpoint seen) in a JSON
//! file between runs: a board that later shows a history not extending it is caught.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};
use bboard_core::evidence::{canonical_note, verify_evidence, Evidence};
use bboard_core::pb;
use bboard_core::witness::WitnessState;
use bboard_merkle::{
    verify_consistency, Blake3Hasher, Hash, MemoryNodeStore, MerkleTree, TreeHasher, TreeSize,
};
use serde::{Deserialize, Serialize};

use crate::{parse_hashes, request, BoardClient, ClientError, ClientOptions};

pub use crate::censorship::{check_censorship_evidence, CensorshipCheckError, CensorshipConfirmed};

/// Version of the audit state JSON written by this code.
pub const AUDIT_STATE_VERSION: u32 = 1;

/// What an auditor remembers between runs.
///
/// JSON: `{"version":1,"checkpoint":"<signed note>"}` (`checkpoint` absent before the
/// first successful audit). The note is the last k-of-n cosigned checkpoint the
/// auditor accepted; it is re-verified on every run, so editing the file cannot make
/// the auditor trust a checkpoint the nodes did not sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// Format version, [`AUDIT_STATE_VERSION`].
    pub version: u32,
    /// The last accepted cosigned checkpoint (signed note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl Default for AuditState {
    fn default() -> Self {
        AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: None,
        }
    }
}

impl AuditState {
    /// Reads the state file; a missing file is the empty state (first run).
    pub fn load(path: &Path) -> io::Result<Self> {
        load_json(
            path,
            "audit",
            |state: &AuditState| state.version,
            AUDIT_STATE_VERSION,
        )
    }

    /// Writes the state file atomically and durably ([`write_atomically`]).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        save_json(path, self)
    }
}

/// Reads a versioned JSON state file; a missing file is the default (empty) state.
/// `version` reads the file's format version, which must be `expected`.
fn load_json<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    what: &str,
    version: impl Fn(&T) -> u32,
    expected: u32,
) -> io::Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let state: T = serde_json::from_str(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if version(&state) != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{what} state version {} is not supported", version(&state)),
                ));
            }
            Ok(state)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes a state file as pretty JSON, atomically and durably ([`write_atomically`]).
fn save_json<T: Serialize>(path: &Path, state: &T) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    write_atomically(path, &json)
}

/// Replaces `path` with `bytes` so that after a crash the file holds either the old or
/// the new content, never a mix: write a temporary file in the same directory, fsync
/// it, rename it over `path`, fsync the directory (so the rename itself is durable).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // Directory fsync is how POSIX makes a rename durable; not possible on all
        // platforms, where the rename is as durable as the OS makes it.
        if let Ok(dir) = std::fs::File::open(&dir) {
            dir.sync_all()
                .or_else(|e| if cfg!(unix) { Err(e) } else { Ok(()) })?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A witness's state file ([`WitnessState`] as JSON), saved atomically.
///
/// A witness must [`save`](Self::save) the new state returned by
/// `Witness::add_checkpoint` *before* it returns the cosignature, and must not run two
/// `add_checkpoint`s concurrently from the same loaded state.
#[derive(Clone, Debug)]
pub struct WitnessStateFile {
    path: PathBuf,
}

impl WitnessStateFile {
    /// The state file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        WitnessStateFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is the empty state (nothing cosigned yet).
    pub fn load(&self) -> io::Result<WitnessState> {
        load_json(
            &self.path,
            "witness",
            |state: &WitnessState| state.version,
            bboard_core::witness::WITNESS_STATE_VERSION,
        )
    }

    /// Writes the state atomically and durably.
    pub fn save(&self, state: &WitnessState) -> io::Result<()> {
        save_json(&self.path, state)
    }
}

/// What one endpoint served as its latest checkpoint, and as its checkpoints of the
/// sizes the auditor asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The endpoint address.
    pub endpoint: String,
    /// Its signed note, or why it could not be fetched.
    pub note: Result<String, String>,
    /// Its checkpoints of chosen sizes ([`audit`] asks for the reference size and the
    /// size the node has applied). A node signs its checkpoint of every size it
    /// serves, so these show the root its own key signs at those sizes even when its
    /// latest checkpoint is an older final one. Empty when not fetched.
    pub own: Vec<OwnCheckpoint>,
}

/// A checkpoint an endpoint served when asked for one size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnCheckpoint {
    /// The size asked for.
    pub size: u64,
    /// The signed note served, or why it could not be fetched.
    pub note: Result<String, String>,
}

/// Proofs and roots fetched for [`compare`]. None of it is trusted: each is used only
/// after it verifies against a k-of-n checkpoint.
#[derive(Default)]
pub struct ProofBook {
    /// Consistency proofs by `(old_size, new_size)`.
    pub proofs: BTreeMap<(u64, u64), Vec<Hash>>,
    /// Roots the cosigned tree is claimed to have at some sizes (from honest nodes'
    /// checkpoints of those sizes).
    pub roots: BTreeMap<u64, Hash>,
    /// With `--full`: the tree recomputed from every downloaded entry.
    pub tree: Option<MerkleTree<Blake3Hasher, MemoryNodeStore>>,
}

impl fmt::Debug for ProofBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofBook")
            .field("proofs", &self.proofs.len())
            .field("roots", &self.roots)
            .field("tree_size", &self.tree.as_ref().map(|t| t.size().0))
            .finish()
    }
}

/// The overall result of an audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditVerdict {
    /// Every reachable node agrees with the cosigned history and nothing was left
    /// unchecked.
    Ok,
    /// No misbehaviour found, but something could not be checked (no cosigned
    /// checkpoint, a missing proof, …): see the warnings.
    Incomplete,
    /// Misbehaviour or inconsistency found: see the findings and evidence.
    Findings,
}

/// What one endpoint looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointStatus {
    /// Could not be reached (not a finding: availability is not accountability).
    Unreachable(String),
    /// Served something that is not a valid checkpoint of this board.
    Invalid(String),
    /// Served a checkpoint.
    Checkpoint {
        /// Tree size.
        size: u64,
        /// Root.
        root: Hash,
        /// Trusted node keys with a valid signature on this endpoint's note.
        signers: Vec<String>,
        /// Whether the checkpoint (with signatures merged from all endpoints serving
        /// the same one) satisfies the policy.
        cosigned: bool,
        /// `None`: consistent with the cosigned history; `Some(problem)` otherwise
        /// (including "not checked").
        problem: Option<String>,
    },
}

/// One endpoint's line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointReport {
    /// The endpoint address.
    pub endpoint: String,
    /// What it served and how it compares.
    pub status: EndpointStatus,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong, for humans.
    pub message: String,
    /// Index into [`AuditReport::evidence`] when the finding is provable.
    pub evidence: Option<usize>,
    /// The keys the evidence proves faulty.
    pub culprits: Vec<String>,
}

/// The outcome of [`audit`] / [`compare`].
#[derive(Clone, Debug)]
pub struct AuditReport {
    /// The board audited.
    pub origin: String,
    /// Ok, incomplete or findings.
    pub verdict: AuditVerdict,
    /// The cosigned checkpoint everything was compared with (canonical note).
    pub reference: Option<String>,
    /// One line per endpoint, in the order given.
    pub endpoints: Vec<EndpointReport>,
    /// Problems found.
    pub findings: Vec<Finding>,
    /// Things that could not be checked.
    pub warnings: Vec<String>,
    /// Evidence files, each verified with [`verify_evidence`].
    pub evidence: Vec<Evidence>,
    /// The state to keep for the next run: the reference, when it is consistent
    /// with the previous state; else the previous state unchanged.
    pub next_state: AuditState,
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            AuditVerdict::Ok => "OK".to_string(),
            AuditVerdict::Incomplete => "INCOMPLETE".to_string(),
            AuditVerdict::Findings => format!("FINDINGS ({})", self.findings.len()),
        };
        writeln!(f, "audit of {}: {verdict}", self.origin)?;
        match self
            .reference
            .as_deref()
            .and_then(|n| SignedCheckpoint::parse(n).ok())
        {
            Some(reference) => writeln!(
                f,
                "cosigned checkpoint: size {} root {} signed by {}",
                reference.checkpoint().size.0,
                reference.checkpoint().root,
                reference.signer_names().join(", ")
            )?,
            None => writeln!(f, "cosigned checkpoint: none")?,
        }
        for line in &self.endpoints {
            match &line.status {
                EndpointStatus::Unreachable(reason) => {
                    writeln!(f, "  {}: unreachable: {reason}", line.endpoint)?;
                }
                EndpointStatus::Invalid(reason) => {
                    writeln!(f, "  {}: INVALID: {reason}", line.endpoint)?;
                }
                EndpointStatus::Checkpoint {
                    size,
                    root,
                    signers,
                    cosigned,
                    problem,
                } => writeln!(
                    f,
                    "  {}: size {size} root {} signed by {}{}: {}",
                    line.endpoint,
                    short(root),
                    if signers.is_empty() {
                        "(no trusted key)".to_string()
                    } else {
                        signers.join(", ")
                    },
                    if *cosigned { " (k-of-n)" } else { "" },
                    problem.as_deref().unwrap_or("consistent")
                )?,
            }
        }
        for (i, finding) in self.findings.iter().enumerate() {
            write!(f, "finding {}: {}", i + 1, finding.message)?;
            if let Some(index) = finding.evidence {
                write!(f, " [evidence {}]", index + 1)?;
            }
            if !finding.culprits.is_empty() {
                write!(f, " culprits: {}", finding.culprits.join(", "))?;
            }
            writeln!(f)?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

fn short(root: &Hash) -> String {
    root.to_hex().chars().take(16).collect()
}

/// Where a checkpoint came from: an endpoint's latest, an endpoint's checkpoint of a
/// size asked for ([`Observation::own`]), or the audit state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Endpoint(usize),
    Own(usize),
    State,
}

/// All sources serving one `(size, root)`, with their signatures merged.
struct Group {
    merged: SignedCheckpoint,
    sources: Vec<Source>,
    cosigned: bool,
    /// Trusted node keys with a valid signature on the merged note.
    signers: usize,
}

impl Group {
    fn size(&self) -> u64 {
        self.merged.checkpoint().size.0
    }

    fn root(&self) -> Hash {
        self.merged.checkpoint().root
    }

    /// The endpoints serving this checkpoint (as their latest or when asked for its
    /// size), each once, in order.
    fn endpoints(&self) -> Vec<usize> {
        let mut endpoints = Vec::new();
        for source in &self.sources {
            if let Source::Endpoint(i) | Source::Own(i) = source {
                if !endpoints.contains(i) {
                    endpoints.push(*i);
                }
            }
        }
        endpoints
    }
}

/// Parsed observations, grouped.
struct Analysis {
    /// Per endpoint: Ok(group index) or the endpoint status to report.
    endpoint_groups: Vec<Result<usize, EndpointStatus>>,
    /// Per endpoint: its own signers.
    endpoint_signers: Vec<Vec<String>>,
    /// Per endpoint: the groups of its checkpoints of the sizes asked for, with the
    /// size.
    endpoint_own: Vec<Vec<(u64, usize)>>,
    /// Checkpoints served for a size asked for that are not valid checkpoints of that
    /// size of this board: `(endpoint index, size asked, reason)`.
    own_invalid: Vec<(usize, u64, String)>,
    groups: Vec<Group>,
    /// The cosigned reference: the largest cosigned group (most signers on ties).
    reference: Option<usize>,
    /// Group of the audit state's checkpoint, when it still verifies.
    previous: Option<usize>,
    warnings: Vec<String>,
}

fn analyse(
    policy: &CosignaturePolicy,
    previous: Option<&str>,
    observations: &[Observation],
) -> Analysis {
    let mut groups: Vec<Group> = Vec::new();
    let mut warnings = Vec::new();
    let add = |groups: &mut Vec<Group>, signed: SignedCheckpoint, source: Source| {
        match groups
            .iter_mut()
            .position(|g| g.merged.checkpoint() == signed.checkpoint())
        {
            Some(i) => {
                // Same checkpoint: merge cannot fail.
                let _ = groups[i].merged.merge(&signed);
                groups[i].sources.push(source);
                i
            }
            None => {
                groups.push(Group {
                    merged: signed,
                    sources: vec![source],
                    cosigned: false,
                    signers: 0,
                });
                groups.len() - 1
            }
        }
    };
    let parse = |note: &str| -> Result<SignedCheckpoint, String> {
        let signed = SignedCheckpoint::parse(note).map_err(|e| e.to_string())?;
        if signed.checkpoint().origin != policy.origin() {
            return Err(format!(
                "checkpoint of origin {:?}, expected {:?}",
                signed.checkpoint().origin,
                policy.origin()
            ));
        }
        Ok(signed)
    };
    let mut endpoint_groups = Vec::new();
    let mut endpoint_signers = Vec::new();
    let mut endpoint_own = Vec::new();
    let mut own_invalid = Vec::new();
    for (i, observation) in observations.iter().enumerate() {
        let parsed = match &observation.note {
            Err(reason) => Err(EndpointStatus::Unreachable(reason.clone())),
            Ok(note) => parse(note).map_err(EndpointStatus::Invalid),
        };
        match parsed {
            Ok(signed) => {
                let signers: Vec<String> = policy
                    .keys()
                    .iter()
                    .filter(|k| signed.is_signed_by(k))
                    .map(|k| k.name().to_string())
                    .collect();
                endpoint_signers.push(signers);
                endpoint_groups.push(Ok(add(&mut groups, signed, Source::Endpoint(i))));
            }
            Err(status) => {
                endpoint_signers.push(Vec::new());
                endpoint_groups.push(Err(status));
            }
        }
        let mut own_groups = Vec::new();
        for own in &observation.own {
            let note = match &own.note {
                Ok(note) => note,
                Err(reason) => {
                    warnings.push(format!(
                        "{}: its checkpoint of size {} could not be fetched ({reason}); what \
                         it signs at that size was not checked",
                        observation.endpoint, own.size
                    ));
                    continue;
                }
            };
            match parse(note) {
                Ok(signed) if signed.checkpoint().size.0 != own.size => own_invalid.push((
                    i,
                    own.size,
                    format!("got a checkpoint of size {}", signed.checkpoint().size.0),
                )),
                Ok(signed) => {
                    own_groups.push((own.size, add(&mut groups, signed, Source::Own(i))));
                }
                Err(reason) => own_invalid.push((i, own.size, reason)),
            }
        }
        endpoint_own.push(own_groups);
    }
    let previous = previous.and_then(|note| {
        let checked = SignedCheckpoint::parse(note)
            .map_err(|e| e.to_string())
            .and_then(|s| policy.verify(&s).map(|_| s).map_err(|e| e.to_string()));
        match checked {
            Ok(signed) => Some(add(&mut groups, signed, Source::State)),
            Err(e) => {
                warnings.push(format!(
                    "the checkpoint in the audit state does not verify ({e}); ignored"
                ));
                None
            }
        }
    });
    for group in &mut groups {
        group.cosigned = policy.verify(&group.merged).is_ok();
        group.signers = policy
            .keys()
            .iter()
            .filter(|k| group.merged.is_signed_by(k))
            .count();
    }
    let reference = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.cosigned)
        .max_by_key(|(_, g)| (g.size(), g.signers))
        .map(|(i, _)| i);
    Analysis {
        endpoint_groups,
        endpoint_signers,
        endpoint_own,
        own_invalid,
        groups,
        reference,
        previous,
        warnings,
    }
}

/// What [`compare`] will look up in the [`ProofBook`], and whom to ask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Size of the cosigned reference checkpoint, if any.
    pub reference_size: Option<u64>,
    /// Consistency proofs `(old, new)` with the endpoints to ask (in order).
    pub proofs: Vec<(u64, u64, Vec<String>)>,
    /// Sizes whose root in the cosigned tree may be needed for evidence, with the
    /// endpoints to ask for their checkpoint of that size.
    pub roots: Vec<(u64, Vec<String>)>,
    /// Largest size any source claims (what `--full` downloads up to).
    pub max_size: u64,
}

/// Which proofs and roots [`compare`] needs for these observations.
pub fn needed(
    policy: &CosignaturePolicy,
    previous: Option<&str>,
    observations: &[Observation],
) -> Needs {
    let analysis = analyse(policy, previous, observations);
    let names = |indices: Vec<usize>| -> Vec<String> {
        indices
            .into_iter()
            .filter_map(|i| observations.get(i).map(|o| o.endpoint.clone()))
            .collect()
    };
    let mut needs = Needs {
        max_size: analysis.groups.iter().map(Group::size).max().unwrap_or(0),
        ..Needs::default()
    };
    let Some(reference) = analysis.reference.map(|r| &analysis.groups[r]) else {
        return needs;
    };
    let n = reference.size();
    needs.reference_size = Some(n);
    let honest = names(reference.endpoints());
    for group in &analysis.groups {
        let m = group.size();
        if m < n && m > 0 {
            if !needs.proofs.iter().any(|(a, b, _)| (*a, *b) == (m, n)) {
                needs.proofs.push((m, n, honest.clone()));
            }
            if !needs.roots.iter().any(|(s, _)| *s == m) {
                needs.roots.push((m, honest.clone()));
            }
        } else if m > n && !needs.proofs.iter().any(|(a, b, _)| (*a, *b) == (n, m)) {
            // A node ahead of the cosigned checkpoint: its own proof from there.
            needs.proofs.push((n, m, names(group.endpoints())));
        }
    }
    needs
}

/// The root at `m` that a consistency proof `m → n` implies, when `m` is not a power of
/// two (then the proof alone determines it; RFC 9162 §2.1.4.2 steps 3–6 for `fr`).
/// The result is a claim: it is used only if the proof then verifies with it.
fn old_root_from_proof(m: u64, n: u64, proof: &[Hash]) -> Option<Hash> {
    if m == 0 || m >= n || m.is_power_of_two() {
        return None;
    }
    let hasher = Blake3Hasher;
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (seed, rest) = proof.split_first()?;
    let mut fr = *seed;
    for c in rest {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            fr = hasher.hash_children(c, &fr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        }
        f >>= 1;
        s >>= 1;
    }
    Some(fr)
}

/// Judges the observations (pure): see the module documentation.
pub fn compare(
    policy: &CosignaturePolicy,
    previous: Option<&str>,
    observations: &[Observation],
    book: &ProofBook,
) -> AuditReport {
    let analysis = analyse(policy, previous, observations);
    let Analysis {
        endpoint_groups,
        endpoint_signers,
        endpoint_own,
        own_invalid,
        groups,
        reference,
        previous: previous_group,
        mut warnings,
    } = analysis;
    let mut findings: Vec<Finding> = Vec::new();
    let mut evidence: Vec<Evidence> = Vec::new();
    // Per group: what is wrong with it (None: consistent with the reference).
    let mut problems: Vec<Option<String>> = vec![None; groups.len()];
    let describe = |g: &Group| -> String {
        let mut who: Vec<String> = Vec::new();
        for source in &g.sources {
            let name = match source {
                Source::Endpoint(i) => observations
                    .get(*i)
                    .map_or_else(|| "?".to_string(), |o| o.endpoint.clone()),
                Source::Own(i) => observations.get(*i).map_or_else(
                    || "?".to_string(),
                    |o| format!("{} asked for size {}", o.endpoint, g.size()),
                ),
                Source::State => "the audit state".to_string(),
            };
            if !who.contains(&name) {
                who.push(name);
            }
        }
        format!(
            "checkpoint of size {} root {} (from {})",
            g.size(),
            short(&g.root()),
            who.join(", ")
        )
    };
    let mut push_evidence =
        |findings: &mut Vec<Finding>, message: String, candidate: Option<Evidence>| {
            let checked = candidate.and_then(|e| {
                let verdict = verify_evidence(&e, policy).ok()?;
                Some((e, verdict))
            });
            match checked {
                Some((e, verdict)) => {
                    evidence.push(e);
                    findings.push(Finding {
                        message,
                        evidence: Some(evidence.len() - 1),
                        culprits: verdict.culprits().to_vec(),
                    });
                }
                None => findings.push(Finding {
                    message: format!("{message} (no transferable evidence)"),
                    evidence: None,
                    culprits: Vec::new(),
                }),
            }
        };
    let canonical = |g: &Group| canonical_note(&g.merged.to_note(), policy).ok();

    // 1. Equivocation: two roots for one size.
    let mut sizes: Vec<u64> = groups.iter().map(Group::size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let at: Vec<usize> = (0..groups.len())
            .filter(|&i| groups[i].size() == size)
            .collect();
        if at.len() < 2 {
            continue;
        }
        // The side to compare others with: the reference, else the best-signed.
        let primary = at
            .iter()
            .copied()
            .find(|&i| Some(i) == reference)
            .or_else(|| {
                at.iter()
                    .copied()
                    .max_by_key(|&i| (groups[i].cosigned, groups[i].signers))
            })
            .unwrap_or(at[0]);
        for &other in at.iter().filter(|&&i| i != primary) {
            let message = format!(
                "equivocation at size {size}: {} vs {}",
                describe(&groups[primary]),
                describe(&groups[other])
            );
            let candidate = match (canonical(&groups[primary]), canonical(&groups[other])) {
                (Some(a), Some(b)) => Some(Evidence::Equivocation {
                    origin: policy.origin().to_string(),
                    a,
                    b,
                }),
                _ => None,
            };
            problems[other] = Some(format!("EQUIVOCATES at size {size}"));
            if primary != reference.unwrap_or(usize::MAX) {
                problems[primary] = Some(format!("EQUIVOCATES at size {size}"));
            }
            push_evidence(&mut findings, message, candidate);
        }
    }

    // 2. Prefixes of the cosigned reference.
    let tree = book.tree.as_ref();
    let tree_root = |size: u64| -> Option<Hash> {
        let tree = tree?;
        (size <= tree.size().0)
            .then(|| tree.root_at(TreeSize(size)).ok())
            .flatten()
    };
    if let Some(r) = reference {
        let (n, honest_root) = (groups[r].size(), groups[r].root());
        // A full download that agrees with the cosigned root makes the local tree the
        // most trustworthy source of proofs and roots.
        let tree_agrees = tree_root(n) == Some(honest_root);
        for (i, group) in groups.iter().enumerate() {
            let m = group.size();
            if problems[i].is_some() || m == n {
                continue;
            }
            if m > n {
                let proof = book.proofs.get(&(n, m));
                let ok = proof.map(|p| {
                    verify_consistency(
                        &Blake3Hasher,
                        TreeSize(n),
                        TreeSize(m),
                        &honest_root,
                        &group.root(),
                        p,
                    )
                    .is_ok()
                });
                match ok {
                    Some(true) => {}
                    Some(false) => {
                        problems[i] = Some("does not extend the cosigned checkpoint".into());
                        findings.push(Finding {
                            message: format!(
                                "{} does not extend the cosigned checkpoint of size {n}: its consistency proof does not verify (no transferable evidence until the board reaches size {m})",
                                describe(group)
                            ),
                            evidence: None,
                            culprits: Vec::new(),
                        });
                    }
                    None => {
                        problems[i] = Some("not checked (no proof)".into());
                        warnings.push(format!(
                            "{} is ahead of the cosigned size {n}; no consistency proof was available",
                            describe(group)
                        ));
                    }
                }
                continue;
            }
            // m < n: is (m, root) the cosigned tree's root at m?
            let mut proofs: Vec<Vec<Hash>> = Vec::new();
            if tree_agrees {
                if let Some(Ok(p)) = tree.map(|t| t.consistency_proof(TreeSize(m), TreeSize(n))) {
                    proofs.push(p);
                }
            }
            if let Some(p) = book.proofs.get(&(m, n)) {
                proofs.push(p.clone());
            }
            if m == 0 {
                proofs.push(Vec::new());
            }
            let verifies = |root: &Hash, proof: &[Hash]| {
                verify_consistency(
                    &Blake3Hasher,
                    TreeSize(m),
                    TreeSize(n),
                    root,
                    &honest_root,
                    proof,
                )
                .is_ok()
            };
            if proofs.is_empty() {
                problems[i] = Some("not checked (no proof)".into());
                warnings.push(format!(
                    "no consistency proof from size {m} to the cosigned size {n}: {} not checked",
                    describe(group)
                ));
                continue;
            }
            if proofs.iter().any(|p| verifies(&group.root(), p)) {
                continue;
            }
            // Not a prefix, if some root at m is proven: find one.
            let mut found = None;
            for proof in &proofs {
                let mut candidates: Vec<Hash> = Vec::new();
                if tree_agrees {
                    candidates.extend(tree_root(m));
                }
                candidates.extend(book.roots.get(&m).copied());
                candidates.extend(old_root_from_proof(m, n, proof));
                if m == 0 {
                    candidates.push(Blake3Hasher.empty_root());
                }
                if let Some(root) = candidates
                    .into_iter()
                    .find(|c| *c != group.root() && verifies(c, proof))
                {
                    found = Some((root, proof.clone()));
                    break;
                }
            }
            problems[i] = Some(format!("NOT A PREFIX of the cosigned size {n}"));
            let message = format!(
                "{} is not a prefix of the cosigned checkpoint of size {n} root {}",
                describe(group),
                short(&honest_root)
            );
            let candidate = found.and_then(|(root_at_m, proof)| {
                Some(Evidence::NotAPrefix {
                    origin: policy.origin().to_string(),
                    faulty: canonical(group)?,
                    honest: canonical(&groups[r])?,
                    root_at_m: root_at_m.to_hex(),
                    proof: proof.iter().map(Hash::to_hex).collect(),
                })
            });
            push_evidence(&mut findings, message, candidate);
        }
        // 3. Full: the downloaded entries must hash to every cosigned root.
        if let Some(tree) = tree {
            let downloaded = tree.size().0;
            if downloaded < n {
                warnings.push(format!(
                    "only {downloaded} entries could be downloaded, the cosigned size is {n}"
                ));
            }
            for group in groups.iter().filter(|g| g.cosigned) {
                if let Some(root) = tree_root(group.size()) {
                    if root != group.root() {
                        findings.push(Finding {
                            message: format!(
                                "the downloaded entries hash to root {} at size {}, but the cosigned {} says otherwise",
                                short(&root),
                                group.size(),
                                describe(group)
                            ),
                            evidence: None,
                            culprits: Vec::new(),
                        });
                    }
                }
            }
        }
    } else {
        warnings
            .push("no endpoint served a checkpoint carrying the policy's k-of-n signatures".into());
    }

    // An endpoint's problem: its latest checkpoint's, else the first of its
    // checkpoints of the sizes asked for.
    let own_problem = |i: usize| -> Option<String> {
        endpoint_own.get(i)?.iter().find_map(|&(size, g)| {
            problems[g]
                .as_ref()
                .map(|p| format!("its checkpoint of size {size}: {p}"))
        })
    };
    let endpoints: Vec<EndpointReport> = observations
        .iter()
        .zip(endpoint_groups)
        .zip(endpoint_signers)
        .enumerate()
        .map(|(i, ((observation, group), signers))| EndpointReport {
            endpoint: observation.endpoint.clone(),
            status: match group {
                Err(status) => status,
                Ok(g) => EndpointStatus::Checkpoint {
                    size: groups[g].size(),
                    root: groups[g].root(),
                    signers,
                    cosigned: groups[g].cosigned,
                    problem: problems[g].clone().or_else(|| own_problem(i)),
                },
            },
        })
        .collect();
    for line in &endpoints {
        if let EndpointStatus::Invalid(reason) = &line.status {
            findings.push(Finding {
                message: format!("{} served an invalid checkpoint: {reason}", line.endpoint),
                evidence: None,
                culprits: Vec::new(),
            });
        }
    }
    for (i, size, reason) in &own_invalid {
        let endpoint = observations.get(*i).map_or("?", |o| o.endpoint.as_str());
        findings.push(Finding {
            message: format!(
                "{endpoint} served an invalid checkpoint when asked for size {size}: {reason}"
            ),
            evidence: None,
            culprits: Vec::new(),
        });
    }

    let reference_note = reference.and_then(|r| canonical(&groups[r]));
    // Advance the state only along a history shown consistent with it.
    let advance = match (reference, previous_group) {
        (Some(_), None) => true,
        (Some(r), Some(p)) => r == p || problems[p].is_none(),
        (None, _) => false,
    };
    let next_state = match (&reference_note, advance) {
        (Some(note), true) => AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: Some(note.clone()),
        },
        _ => AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: previous.map(str::to_string),
        },
    };
    let verdict = if !findings.is_empty() {
        AuditVerdict::Findings
    } else if !warnings.is_empty() || reference.is_none() {
        AuditVerdict::Incomplete
    } else {
        AuditVerdict::Ok
    };
    AuditReport {
        origin: policy.origin().to_string(),
        verdict,
        reference: reference_note,
        endpoints,
        findings,
        warnings,
        evidence,
        next_state,
    }
}

/// Options of [`audit_with_options`]: how long to wait for each node.
fn audit_options() -> ClientOptions {
    ClientOptions {
        per_request_timeout: Duration::from_secs(5),
        // One node per client: retrying the same unreachable node is pointless.
        total_timeout: Duration::from_secs(10),
        policy: None,
        ..ClientOptions::default()
    }
}

/// Audits the board at `endpoints` with default timeouts; see
/// [`audit_with_options`].
pub async fn audit(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    state: &mut AuditState,
    full: bool,
) -> AuditReport {
    audit_with_options(endpoints, policy, state, full, audit_options()).await
}

/// Audits the board: fetches every endpoint's latest checkpoint, the proofs the
/// comparison needs (from the nodes serving the cosigned checkpoint), with `full`
/// every entry, then [`compare`]s. Unreachable endpoints are reported, not fatal.
/// `state` is updated to [`AuditReport::next_state`]; the caller saves it
/// ([`AuditState::save`]). `options.policy` is ignored (checks use `policy`).
pub async fn audit_with_options(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    state: &mut AuditState,
    full: bool,
    options: ClientOptions,
) -> AuditReport {
    let options = ClientOptions {
        policy: None,
        ..options
    };
    let mut observations = Vec::new();
    let mut clients: BTreeMap<String, BoardClient> = BTreeMap::new();
    for endpoint in endpoints {
        let note = match BoardClient::connect(vec![endpoint.clone()], options.clone()).await {
            Ok(client) => {
                let note = client
                    .checkpoint(None)
                    .await
                    .map(|info| info.signed.to_note())
                    .map_err(|e| e.to_string());
                clients.insert(endpoint.clone(), client);
                note
            }
            Err(e) => Err(e.to_string()),
        };
        observations.push(Observation {
            endpoint: endpoint.clone(),
            note,
            own: Vec::new(),
        });
    }
    let previous = state.checkpoint.clone();
    let reference_size = needed(policy, previous.as_deref(), &observations).reference_size;
    for observation in &mut observations {
        if let Some(client) = clients.get(&observation.endpoint) {
            observation.own = fetch_own(client, &observation.endpoint, reference_size).await;
        }
    }
    let needs = needed(policy, previous.as_deref(), &observations);
    let mut book = ProofBook::default();
    for (old_size, new_size, ask) in &needs.proofs {
        for endpoint in ask {
            let Some(client) = clients.get(endpoint) else {
                continue;
            };
            if let Ok(proof) = fetch_consistency(client, endpoint, *old_size, *new_size).await {
                book.proofs.insert((*old_size, *new_size), proof);
                break;
            }
        }
    }
    for (size, ask) in &needs.roots {
        for endpoint in ask {
            let Some(client) = clients.get(endpoint) else {
                continue;
            };
            if let Ok(info) = client.checkpoint(Some(*size)).await {
                book.roots.insert(*size, info.signed.checkpoint().root);
                break;
            }
        }
    }
    if full && needs.max_size > 0 {
        // Prefer nodes serving the cosigned checkpoint; any node will do, since the
        // recomputed roots are compared with signed ones.
        let mut order: Vec<String> = needs
            .proofs
            .iter()
            .flat_map(|(_, _, ask)| ask.clone())
            .collect();
        order.extend(endpoints.iter().cloned());
        let mut unique = Vec::new();
        for e in order {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        if let Ok(client) = BoardClient::connect(unique, options.clone()).await {
            let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
            // Entries come in pages; get_entries checks each entry's hash and
            // signature.
            const CHUNK: u64 = 4096;
            let mut next = 0;
            while next < needs.max_size {
                let want = CHUNK.min(needs.max_size - next);
                let Ok(entries) = client.get_entries(next, want).await else {
                    break;
                };
                if entries.is_empty() {
                    break;
                }
                let mut failed = false;
                for entry in entries {
                    if tree.append(entry.leaf_hash).is_err() {
                        failed = true;
                        break;
                    }
                    next += 1;
                }
                if failed {
                    break;
                }
            }
            book.tree = Some(tree);
        }
    }
    let mut report = compare(policy, previous.as_deref(), &observations, &book);
    audit_alarms(endpoints, policy, &options, &mut report).await;
    *state = report.next_state.clone();
    report
}

/// The checkpoints of `endpoint` that show what its own key signs now: of the
/// reference size (when it has applied that far) and of the size it has applied (from
/// its `Status`). A node that cannot tell its size is asked for the reference size
/// only; a node that has not applied the reference size is not asked for it.
async fn fetch_own(
    client: &BoardClient,
    endpoint: &str,
    reference_size: Option<u64>,
) -> Vec<OwnCheckpoint> {
    let applied = client.status(endpoint).await.ok().map(|s| s.tree_size);
    let mut sizes = Vec::new();
    if let Some(n) = reference_size.filter(|&n| n > 0) {
        if applied.is_none_or(|applied| applied >= n) {
            sizes.push(n);
        }
    }
    if let Some(applied) = applied.filter(|&a| a > 0 && Some(a) != reference_size) {
        sizes.push(applied);
    }
    let mut own = Vec::new();
    for size in sizes {
        let note = client
            .checkpoint(Some(size))
            .await
            .map(|info| info.signed.to_note())
            .map_err(|e| e.to_string());
        own.push(OwnCheckpoint { size, note });
    }
    own
}

/// Adds the censorship findings (see [`crate::censorship`]) to `report`.
async fn audit_alarms(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    options: &ClientOptions,
    report: &mut AuditReport,
) {
    use crate::censorship::{check_alarms, collect, judge, list_alarms};
    let options = ClientOptions {
        policy: Some(policy.clone()),
        ..options.clone()
    };
    let client = match BoardClient::connect(endpoints.to_vec(), options).await {
        Ok(client) => client,
        Err(e) => {
            report
                .warnings
                .push(format!("censorship alarms not checked: {e}"));
            return;
        }
    };
    let served = list_alarms(&client, endpoints, false).await;
    for node in &served {
        if let Err(reason) = &node.alarms {
            report.warnings.push(format!(
                "{}: could not list its censorship alarms: {reason}",
                node.endpoint
            ));
        }
    }
    let alarms = check_alarms(policy, &served);
    if alarms.is_empty() {
        return;
    }
    let reference = report
        .reference
        .as_deref()
        .and_then(|note| SignedCheckpoint::parse(note).ok())
        .map(|signed| (signed.checkpoint().size.0, signed.checkpoint().root));
    let facts = collect(&client, &alarms, reference).await;
    let judgement = judge(policy, report.reference.as_deref(), &alarms, &facts);
    let offset = report.evidence.len();
    report.evidence.extend(judgement.evidence);
    report
        .findings
        .extend(judgement.findings.into_iter().map(|mut finding| {
            finding.evidence = finding.evidence.map(|i| i + offset);
            finding
        }));
    report.warnings.extend(judgement.warnings);
    report.verdict = if !report.findings.is_empty() {
        AuditVerdict::Findings
    } else if !report.warnings.is_empty() || report.reference.is_none() {
        AuditVerdict::Incomplete
    } else {
        AuditVerdict::Ok
    };
}

/// A raw consistency proof from one node (checked later, against signed roots).
async fn fetch_consistency(
    client: &BoardClient,
    endpoint: &str,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ClientError> {
    let response = client
        .call_once(endpoint, |mut grpc, timeout| async move {
            let message = pb::GetConsistencyProofRequest { old_size, new_size };
            grpc.get_consistency_proof(request(message, timeout)).await
        })
        .await?;
    if response.old_size != old_size || response.new_size != new_size {
        return Err(ClientError::InvalidResponse {
            endpoint: endpoint.to_string(),
            reason: format!(
                "asked for a proof from {old_size} to {new_size}, got {} to {}",
                response.old_size, response.new_size
            ),
        });
    }
    parse_hashes(endpoint, "consistency proof", &response.proof)
}

#[cfg(test)]
mod tests {
    use bboard_core::checkpoint::{Checkpoint, NoteSigner};
    use bboard_core::evidence::Verdict;
    use ed25519_dalek::SigningKey;

    use super::*;

    const ORIGIN: &str = "bboard.test/audit";

    fn node(i: u8) -> NoteSigner {
        NoteSigner::new(&format!("node-{i}"), SigningKey::from_bytes(&[i; 32])).unwrap()
    }

    fn policy() -> CosignaturePolicy {
        CosignaturePolicy::new(ORIGIN, (1..=3).map(|i| node(i).verifier()).collect(), 2).unwrap()
    }

    type Tree = MerkleTree<Blake3Hasher, MemoryNodeStore>;

    /// `n` leaves; from `fork_at` on they differ from the honest board's.
    fn tree(n: u64, fork_at: u64) -> Tree {
        let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
        for i in 0..n {
            let data = if i < fork_at {
                format!("entry {i}")
            } else {
                format!("forged {i}")
            };
            tree.append(Blake3Hasher.hash_leaf(data.as_bytes()))
                .unwrap();
        }
        tree
    }

    fn honest(n: u64) -> Tree {
        tree(n, u64::MAX)
    }

    fn note(tree: &Tree, size: u64, signers: &[u8]) -> String {
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: TreeSize(size),
            root: tree.root_at(TreeSize(size)).unwrap(),
        };
        let mut signed = SignedCheckpoint::sign(checkpoint, &node(signers[0])).unwrap();
        for &i in &signers[1..] {
            signed.add_signature(&node(i)).unwrap();
        }
        signed.to_note()
    }

    fn seen(endpoint: &str, note: String) -> Observation {
        Observation {
            endpoint: endpoint.into(),
            note: Ok(note),
            own: Vec::new(),
        }
    }

    fn down(endpoint: &str) -> Observation {
        Observation {
            endpoint: endpoint.into(),
            note: Err("connection refused".into()),
            own: Vec::new(),
        }
    }

    /// `observation` with the checkpoints it served when asked for sizes.
    fn asked(mut observation: Observation, own: &[(u64, String)]) -> Observation {
        observation.own = own
            .iter()
            .map(|(size, note)| OwnCheckpoint {
                size: *size,
                note: Ok(note.clone()),
            })
            .collect();
        observation
    }

    #[test]
    fn a_node_serving_an_old_final_but_signing_another_root_is_caught() {
        let board = honest(10);
        let forged = tree(10, 6);
        // c serves an older honest final checkpoint as its latest, but its own key
        // signs another root at the reference size.
        let latest = [
            seen("a", note(&board, 10, &[1])),
            seen("b", note(&board, 10, &[2])),
            seen("c", note(&board, 5, &[1, 2, 3])),
        ];
        let book = book_with(&board, &[(5, 10)]);
        // Its latest checkpoint alone lets it escape.
        let escaped = compare(&policy(), None, &latest, &book);
        assert_eq!(escaped.verdict, AuditVerdict::Ok, "{escaped}");

        let observations = vec![
            asked(latest[0].clone(), &[(10, note(&board, 10, &[1]))]),
            asked(latest[1].clone(), &[(10, note(&board, 10, &[2]))]),
            asked(latest[2].clone(), &[(10, note(&forged, 10, &[3]))]),
        ];
        assert_eq!(
            needed(&policy(), None, &latest).reference_size,
            needed(&policy(), None, &observations).reference_size
        );
        let report = compare(&policy(), None, &observations, &book);
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert_eq!(report.findings.len(), 1, "{report}");
        assert_eq!(report.evidence.len(), 1, "{report}");
        assert_eq!(report.findings[0].culprits, ["node-3"]);
        assert!(matches!(
            verify_evidence(&report.evidence[0], &policy()).unwrap(),
            Verdict::Equivocation { .. }
        ));
        let problem = problem_of(&report, "c").unwrap();
        assert!(
            problem.contains("size 10") && problem.contains("EQUIVOCATES"),
            "{problem}"
        );
        assert_eq!(problem_of(&report, "a"), None);
        assert_eq!(problem_of(&report, "b"), None);
        assert!(
            report.to_string().contains("c asked for size 10"),
            "{report}"
        );
        // The honest history stays the reference.
        let reference = SignedCheckpoint::parse(report.reference.as_deref().unwrap()).unwrap();
        assert_eq!(
            reference.checkpoint().root,
            board.root_at(TreeSize(10)).unwrap()
        );
    }

    #[test]
    fn a_lagging_node_signing_a_fork_below_the_reference_is_not_a_prefix() {
        let board = honest(10);
        // c has applied 7 entries in another order from entry 6 on, and serves the
        // honest final checkpoint of size 5 as its latest.
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            asked(
                seen("c", note(&board, 5, &[1, 2, 3])),
                &[(7, note(&tree(7, 6), 7, &[3]))],
            ),
        ];
        let needs = needed(&policy(), None, &observations);
        assert!(
            needs.proofs.contains(&(7, 10, vec!["a".to_string()])),
            "{needs:?}"
        );
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&board, &[(5, 10), (7, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert_eq!(report.evidence.len(), 1, "{report}");
        match verify_evidence(&report.evidence[0], &policy()).unwrap() {
            Verdict::NotAPrefix { culprits, .. } => assert_eq!(culprits, ["node-3"]),
            other => panic!("wrong verdict {other:?}"),
        }
        assert!(problem_of(&report, "c").unwrap().contains("NOT A PREFIX"));
    }

    #[test]
    fn an_honest_lagging_node_asked_for_its_own_checkpoint_is_consistent() {
        let board = honest(10);
        // c serves the final checkpoint of size 5 and has applied 7 (so it is asked
        // for 7, not for the reference size 10).
        let observations = vec![
            asked(
                seen("a", note(&board, 10, &[1, 2])),
                &[(10, note(&board, 10, &[1]))],
            ),
            asked(
                seen("c", note(&board, 5, &[1, 2, 3])),
                &[(7, note(&board, 7, &[3]))],
            ),
        ];
        let needs = needed(&policy(), None, &observations);
        assert_eq!(needs.reference_size, Some(10));
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&board, &[(5, 10), (7, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        assert!(report.findings.is_empty() && report.evidence.is_empty());
        assert_eq!(problem_of(&report, "c"), None);
        // Without the proof for its own size: incomplete, no accusation.
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&board, &[(5, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
        assert!(report.findings.is_empty());
    }

    #[test]
    fn own_checkpoints_that_fail_or_have_the_wrong_size_are_reported() {
        let board = honest(10);
        let mut failed = seen("b", note(&board, 10, &[2]));
        failed.own.push(OwnCheckpoint {
            size: 10,
            note: Err("deadline exceeded".into()),
        });
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            failed,
            asked(
                seen("c", note(&board, 10, &[3])),
                &[(10, note(&board, 9, &[3]))],
            ),
        ];
        let report = compare(&policy(), None, &observations, &book_with(&board, &[]));
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(
            report.findings.iter().any(|f| f
                .message
                .contains("c served an invalid checkpoint when asked for size 10")),
            "{report}"
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("b: its checkpoint of size 10 could not be fetched")),
            "{report}"
        );
    }

    fn book_with(tree: &Tree, pairs: &[(u64, u64)]) -> ProofBook {
        let mut book = ProofBook::default();
        for &(m, n) in pairs {
            book.proofs.insert(
                (m, n),
                tree.consistency_proof(TreeSize(m), TreeSize(n)).unwrap(),
            );
        }
        book
    }

    fn problem_of(report: &AuditReport, endpoint: &str) -> Option<String> {
        report
            .endpoints
            .iter()
            .find(|e| e.endpoint == endpoint)
            .and_then(|e| match &e.status {
                EndpointStatus::Checkpoint { problem, .. } => problem.clone(),
                other => Some(format!("{other:?}")),
            })
    }

    #[test]
    fn agreeing_nodes_are_ok_and_signatures_are_merged() {
        let board = honest(10);
        // Each node serves only its own signature: merged they are 3-of-3.
        let observations = vec![
            seen("a", note(&board, 10, &[1])),
            seen("b", note(&board, 10, &[2])),
            seen("c", note(&board, 10, &[3])),
            down("d"),
        ];
        let report = compare(&policy(), None, &observations, &ProofBook::default());
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        assert!(report.evidence.is_empty());
        let reference = SignedCheckpoint::parse(report.reference.as_deref().unwrap()).unwrap();
        assert_eq!(reference.signer_names().len(), 3);
        assert_eq!(report.next_state.checkpoint, report.reference);
        assert!(matches!(
            report.endpoints[3].status,
            EndpointStatus::Unreachable(_)
        ));
        let text = report.to_string();
        assert!(
            text.contains(": OK") && text.contains("d: unreachable"),
            "{text}"
        );
    }

    #[test]
    fn equivocation_yields_evidence_naming_the_minority() {
        let board = honest(10);
        let forged = tree(10, 4);
        let observations = vec![
            seen("a", note(&board, 10, &[1])),
            seen("b", note(&board, 10, &[2])),
            seen("c", note(&forged, 10, &[3])),
        ];
        let report = compare(&policy(), None, &observations, &ProofBook::default());
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert_eq!(report.evidence.len(), 1);
        assert_eq!(report.findings[0].culprits, ["node-3"]);
        let verdict = verify_evidence(&report.evidence[0], &policy()).unwrap();
        assert!(matches!(verdict, Verdict::Equivocation { .. }));
        assert!(problem_of(&report, "c").unwrap().contains("EQUIVOCATES"));
        assert_eq!(problem_of(&report, "a"), None);
        // The evidence survives its JSON file.
        let json = report.evidence[0].to_json();
        assert!(verify_evidence(&Evidence::from_json(&json).unwrap(), &policy()).is_ok());
        // The honest history is still the reference and advances the state.
        assert!(report.next_state.checkpoint.is_some());
    }

    #[test]
    fn a_smaller_forked_checkpoint_is_not_a_prefix() {
        let board = honest(10);
        // m = 6 (not a power of two: the root at m comes from the proof alone).
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("c", note(&tree(6, 2), 6, &[3])),
        ];
        let needs = needed(&policy(), None, &observations);
        assert_eq!(needs.reference_size, Some(10));
        assert_eq!(needs.proofs, vec![(6, 10, vec!["a".to_string()])]);
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&board, &[(6, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert_eq!(report.evidence.len(), 1, "{report}");
        match verify_evidence(&report.evidence[0], &policy()).unwrap() {
            Verdict::NotAPrefix { culprits, .. } => assert_eq!(culprits, ["node-3"]),
            other => panic!("wrong verdict {other:?}"),
        }
        assert!(problem_of(&report, "c").unwrap().contains("NOT A PREFIX"));
    }

    #[test]
    fn a_power_of_two_size_needs_the_root_from_an_honest_node() {
        let board = honest(13);
        let observations = vec![
            seen("a", note(&board, 13, &[1, 2])),
            seen("c", note(&tree(8, 5), 8, &[3])),
        ];
        let mut book = book_with(&board, &[(8, 13)]);
        let without_root = compare(&policy(), None, &observations, &book);
        assert_eq!(without_root.verdict, AuditVerdict::Findings);
        assert!(without_root.evidence.is_empty());
        assert!(without_root.findings[0]
            .message
            .contains("no transferable evidence"));
        book.roots.insert(8, board.root_at(TreeSize(8)).unwrap());
        let with_root = compare(&policy(), None, &observations, &book);
        assert_eq!(with_root.evidence.len(), 1, "{with_root}");
        // A lying "root" from a node is not enough: it must verify with the proof.
        book.roots.insert(8, Hash([7; 32]));
        assert!(compare(&policy(), None, &observations, &book)
            .evidence
            .is_empty());
    }

    #[test]
    fn lagging_honest_nodes_are_consistent() {
        let board = honest(10);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("b", note(&board, 7, &[2])),
            seen("c", note(&board, 8, &[3])),
        ];
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&board, &[(7, 10), (8, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        // Without proofs: incomplete, not ok, and no accusation.
        let report = compare(&policy(), None, &observations, &ProofBook::default());
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
        assert!(report.findings.is_empty());
    }

    #[test]
    fn nodes_ahead_of_the_cosigned_checkpoint_are_checked_from_it() {
        let board = honest(12);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("b", note(&board, 12, &[2])),
        ];
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&board, &[(10, 12)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        let forged = tree(12, 3);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("c", note(&forged, 12, &[3])),
        ];
        let report = compare(
            &policy(),
            None,
            &observations,
            &book_with(&forged, &[(10, 12)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(report.evidence.is_empty());
    }

    #[test]
    fn the_previous_state_is_checked_and_advanced() {
        let board = honest(10);
        let previous = note(&board, 5, &[1, 2]);
        let observations = vec![seen("a", note(&board, 10, &[1, 2, 3]))];
        let report = compare(
            &policy(),
            Some(&previous),
            &observations,
            &book_with(&board, &[(5, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        assert!(report
            .next_state
            .checkpoint
            .as_deref()
            .unwrap()
            .contains("\n10\n"));

        // The whole cluster now shows a history that rewrote entry 3.
        let forged = tree(10, 3);
        let observations = vec![seen("a", note(&forged, 10, &[1, 2, 3]))];
        let report = compare(
            &policy(),
            Some(&previous),
            &observations,
            &book_with(&forged, &[(5, 10)]),
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert_eq!(report.evidence.len(), 1, "{report}");
        match verify_evidence(&report.evidence[0], &policy()).unwrap() {
            Verdict::NotAPrefix { signed_both, .. } => {
                assert_eq!(signed_both, ["node-1", "node-2"]);
            }
            other => panic!("wrong verdict {other:?}"),
        }
        // The state is not advanced onto the rewritten history.
        assert_eq!(
            report.next_state.checkpoint.as_deref(),
            Some(previous.as_str())
        );

        // A tampered state file is ignored with a warning.
        let tampered = previous.replace("node-1", "node-9");
        let report = compare(
            &policy(),
            Some(&tampered),
            &[seen("a", note(&board, 10, &[1, 2]))],
            &ProofBook::default(),
        );
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
    }

    #[test]
    fn full_mode_compares_the_recomputed_tree() {
        let board = honest(10);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("c", note(&tree(8, 5), 8, &[3])),
        ];
        // With the recomputed tree no fetched proof or root is needed.
        let book = ProofBook {
            tree: Some(honest(10)),
            ..ProofBook::default()
        };
        let report = compare(&policy(), None, &observations, &book);
        assert_eq!(report.evidence.len(), 1, "{report}");
        // Entries that do not hash to the cosigned root.
        let book = ProofBook {
            tree: Some(tree(10, 9)),
            ..ProofBook::default()
        };
        let report = compare(
            &policy(),
            None,
            &[seen("a", note(&board, 10, &[1, 2]))],
            &book,
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(report.findings[0].message.contains("downloaded entries"));
        // Too few entries: incomplete.
        let book = ProofBook {
            tree: Some(honest(4)),
            ..ProofBook::default()
        };
        let report = compare(
            &policy(),
            None,
            &[seen("a", note(&board, 10, &[1, 2]))],
            &book,
        );
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
    }

    #[test]
    fn invalid_or_uncosigned_checkpoints_are_reported() {
        let board = honest(3);
        let report = compare(
            &policy(),
            None,
            &[
                seen("a", "garbage".into()),
                seen("b", note(&board, 3, &[1])),
            ],
            &ProofBook::default(),
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(report.reference.is_none());
        assert!(report.to_string().contains("a: INVALID"));
        let report = compare(&policy(), None, &[down("a")], &ProofBook::default());
        assert_eq!(report.verdict, AuditVerdict::Incomplete);
    }

    #[test]
    fn old_root_from_proof_matches_the_tree() {
        let board = honest(40);
        for n in 2..40 {
            for m in 1..n {
                let proof = board.consistency_proof(TreeSize(m), TreeSize(n)).unwrap();
                let derived = old_root_from_proof(m, n, &proof);
                if m.is_power_of_two() {
                    assert_eq!(derived, None);
                } else {
                    assert_eq!(
                        derived,
                        Some(board.root_at(TreeSize(m)).unwrap()),
                        "m={m} n={n}"
                    );
                }
            }
        }
        assert_eq!(old_root_from_proof(3, 5, &[]), None);
    }

    #[test]
    fn state_files_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        assert_eq!(AuditState::load(&path).unwrap(), AuditState::default());
        let state = AuditState {
            version: AUDIT_STATE_VERSION,
            checkpoint: Some(note(&honest(2), 2, &[1, 2])),
        };
        state.save(&path).unwrap();
        assert_eq!(AuditState::load(&path).unwrap(), state);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&path, "{\"version\":9}").unwrap();
        assert!(AuditState::load(&path).is_err());

        let file = WitnessStateFile::new(dir.path().join("witness.json"));
        assert_eq!(file.load().unwrap(), WitnessState::default());
        let mut witnessed = WitnessState::default();
        witnessed.logs.insert(
            ORIGIN.into(),
            bboard_core::witness::LogState {
                size: 2,
                root: honest(2).root().unwrap(),
            },
        );
        file.save(&witnessed).unwrap();
        assert_eq!(file.load().unwrap(), witnessed);
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_reported_not_fatal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut state = AuditState::default();
        let options = ClientOptions {
            per_request_timeout: Duration::from_millis(500),
            total_timeout: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(10),
            ..ClientOptions::default()
        };
        let report = audit_with_options(&[closed], &policy(), &mut state, true, options).await;
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
        assert!(matches!(
            report.endpoints[0].status,
            EndpointStatus::Unreachable(_)
        ));
        assert_eq!(state, AuditState::default());
    }
}
