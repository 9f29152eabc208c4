//! `bboard audit` and `bboard verify-evidence`: holding the board's nodes to account.
//!
//! `audit` runs [`bboard_client::audit`] against every endpoint given, prints the
//! report, saves the auditor's state (the last cosigned checkpoint it accepted) and
//! writes each piece of evidence to its own JSON file. `verify-evidence` re-checks such
//! a file with nothing but the board's origin and the trusted keys.
//!
//! Exit codes of `bboard audit` (see [`AUDIT_EXIT_FINDINGS`] and
//! [`AUDIT_EXIT_INCOMPLETE`]): 0 when the verdict is OK, 2 when misbehaviour was
//! found, 3 when nothing wrong was found but something could not be checked, 1 on any
//! other error (unreadable keys, unwritable files, …).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bboard_client::audit::{audit, AuditState, AuditVerdict};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::evidence::{verify_evidence, Evidence};
use bboard_util::state_file::{write_atomically, Access};

/// Exit code of `bboard audit` when it found misbehaviour (with evidence or not).
pub const AUDIT_EXIT_FINDINGS: u8 = 2;
/// Exit code of `bboard audit` when nothing wrong was found but the audit is
/// incomplete (no cosigned checkpoint, an unreachable node, a missing proof, …).
pub const AUDIT_EXIT_INCOMPLETE: u8 = 3;

/// A command outcome that is not an error of the tool but must still end the
/// process with a specific non-zero exit code (e.g. an audit with findings).
#[derive(Debug)]
pub struct ExitWith {
    /// The process exit code.
    pub code: u8,
    /// What to print on stderr.
    pub message: String,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// The exit code for an error returned by a command: [`ExitWith::code`] when the
/// error is one, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<ExitWith>().map_or(1, |e| e.code)
}

/// Trusted keys and thresholds: the cosignature policy a checkpoint must satisfy.
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// File with one trusted node verifier key (`name+keyid+base64`) per line.
    #[arg(long, visible_alias = "keys", value_name = "FILE")]
    pub trusted_keys: PathBuf,
    /// Origin (board name) the checkpoints must carry.
    #[arg(long)]
    pub origin: String,
    /// Node signatures required (k of n); default: a majority of the keys.
    #[arg(long)]
    pub threshold: Option<usize>,
    /// File with one witness verifier key per line: checkpoints must then also carry
    /// `--witness-threshold` witness cosignatures.
    #[arg(long, value_name = "FILE", requires = "witness_threshold")]
    pub witness_keys: Option<PathBuf>,
    /// Witness cosignatures required (m of the witness keys).
    #[arg(long, value_name = "M", requires = "witness_keys")]
    pub witness_threshold: Option<usize>,
}

impl PolicyArgs {
    /// The cosignature policy these arguments describe.
    pub fn policy(&self) -> Result<CosignaturePolicy> {
        let keys = crate::read_verifier_keys(&self.trusted_keys)?;
        let policy = match self.threshold {
            Some(k) => CosignaturePolicy::new(&self.origin, keys, k),
            None => CosignaturePolicy::majority(&self.origin, keys),
        }
        .context("building the cosignature policy")?;
        match (&self.witness_keys, self.witness_threshold) {
            (Some(file), Some(m)) => {
                let witnesses = crate::read_verifier_keys(file)?;
                policy
                    .with_witnesses(witnesses, m)
                    .context("adding the witnesses to the cosignature policy")
            }
            _ => Ok(policy),
        }
    }
}

/// Arguments of `bboard audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// A node's gRPC address (host:port); repeat for every node of the cluster.
    #[arg(long = "endpoint", required = true, value_name = "HOST:PORT")]
    endpoints: Vec<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The auditor's state file: the last cosigned checkpoint it accepted. Created on
    /// the first run; every later run checks the board still extends it.
    #[arg(long, value_name = "FILE", default_value = "audit-state.json")]
    state: PathBuf,
    /// Also download every entry, recompute the tree and compare roots at every
    /// checkpointed size.
    #[arg(long)]
    full: bool,
    /// Directory to write evidence files to (`evidence-<kind>-<n>.json`).
    #[arg(long, value_name = "DIR", default_value = ".")]
    evidence_dir: PathBuf,
}

/// `bboard audit`.
pub fn run_audit(args: AuditArgs) -> Result<()> {
    let policy = args.policy.policy()?;
    let mut state = AuditState::load(&args.state)
        .with_context(|| format!("reading the audit state {}", args.state.display()))?;
    let runtime = crate::node_cmds::runtime()?;
    runtime.block_on(crate::preflight::check_settings(&args.endpoints, &policy))?;
    let report = runtime.block_on(audit(&args.endpoints, &policy, &mut state, args.full));
    print!("{report}");
    state
        .save(&args.state)
        .with_context(|| format!("saving the audit state {}", args.state.display()))?;
    let written = write_evidence(&args.evidence_dir, &report.evidence)?;
    for path in &written {
        println!("evidence written to {}", path.display());
    }
    match report.verdict {
        AuditVerdict::Ok => Ok(()),
        AuditVerdict::Findings => Err(ExitWith {
            code: AUDIT_EXIT_FINDINGS,
            message: format!(
                "the audit found {} problem(s), {} with evidence",
                report.findings.len(),
                written.len()
            ),
        }
        .into()),
        AuditVerdict::Incomplete => Err(ExitWith {
            code: AUDIT_EXIT_INCOMPLETE,
            message: "the audit is incomplete: see the warnings above".into(),
        }
        .into()),
    }
}

/// The evidence's own origin and signed notes against the policy: a configuration
/// error (exit 1) when they belong to another board or none is signed by a trusted
/// key ([`crate::preflight::check_note_settings`]).
fn check_evidence_settings(
    policy: &CosignaturePolicy,
    what: &str,
    evidence: &Evidence,
) -> Result<()> {
    let (origin, notes): (&str, Vec<&str>) = match evidence {
        Evidence::Equivocation { origin, a, b } => (origin, vec![a, b]),
        Evidence::NotAPrefix {
            origin,
            faulty,
            honest,
            ..
        } => (origin, vec![faulty, honest]),
        Evidence::Censorship {
            origin, checkpoint, ..
        } => (origin, vec![checkpoint]),
        // A kind this build does not know: verify_evidence refuses it with its reason.
        _ => return Ok(()),
    };
    anyhow::ensure!(
        origin == policy.origin(),
        "configuration error: --origin {:?}, but {what} is about the board {origin:?}. \
         Nothing was judged; check --origin",
        policy.origin()
    );
    crate::preflight::check_note_settings(policy, what, &notes)
}

/// Writes each evidence as `dir/evidence-<kind>-<n>.json` (n counts from 1 per run;
/// an existing file of that name is never overwritten: n moves on). Returns the paths.
fn write_evidence(dir: &Path, evidence: &[Evidence]) -> Result<Vec<PathBuf>> {
    if evidence.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut n = 1;
    for item in evidence {
        let path = loop {
            let path = dir.join(format!("evidence-{}-{n}.json", item.kind()));
            n += 1;
            if !path.exists() {
                break path;
            }
        };
        write_atomically(&path, item.to_json().as_bytes(), Access::Default)
            .with_context(|| format!("writing evidence {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Arguments of `bboard verify-evidence`.
#[derive(clap::Args, Debug)]
pub struct VerifyEvidenceArgs {
    /// Evidence file (JSON), as written by `bboard audit`.
    #[arg(long, value_name = "FILE")]
    evidence: PathBuf,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Nodes to ask, for censorship evidence, whether the envelope is still missing
    /// (repeatable). Without them only the signatures are checked: absence from the
    /// board cannot be proven offline.
    #[arg(long = "endpoint", value_name = "HOST:PORT")]
    endpoints: Vec<String>,
}

/// `bboard verify-evidence`: prints what the evidence proves (naming the culprits),
/// or fails with the precise reason it does not hold.
pub fn run_verify_evidence(args: VerifyEvidenceArgs) -> Result<()> {
    let policy = args.policy.policy()?;
    let text = std::fs::read_to_string(&args.evidence)
        .with_context(|| format!("reading evidence {}", args.evidence.display()))?;
    let does_not_hold = || {
        crate::preflight::not_verified(format!(
            "evidence {} does NOT hold",
            args.evidence.display()
        ))
    };
    let evidence = Evidence::from_json(&text).with_context(does_not_hold)?;
    let what = format!("the evidence {}", args.evidence.display());
    check_evidence_settings(&policy, &what, &evidence)?;
    let verdict = verify_evidence(&evidence, &policy).with_context(does_not_hold)?;
    if matches!(evidence, Evidence::Censorship { .. }) && !args.endpoints.is_empty() {
        let confirmed = crate::board_cmds::runtime()?.block_on(async {
            let client = BoardClient::connect(
                args.endpoints.clone(),
                ClientOptions {
                    policy: Some(policy.clone()),
                    ..ClientOptions::default()
                },
            )
            .await
            .context("connecting to the board")?;
            bboard_client::audit::check_censorship_evidence(&client, &evidence)
                .await
                .with_context(does_not_hold)
        })?;
        println!(
            "the envelope is still absent from the board on: {}",
            confirmed.absent_on.join(", ")
        );
    }
    println!("evidence {} HOLDS:", args.evidence.display());
    println!("{verdict}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bboard_core::checkpoint::{Checkpoint, NoteSigner, SignedCheckpoint};
    use bboard_merkle::{Hash, TreeSize};
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::test_args::parse_args;

    fn signer(i: u8) -> NoteSigner {
        NoteSigner::new(&format!("node-{i}"), SigningKey::from_bytes(&[i; 32])).unwrap()
    }

    fn note(root: u8, signers: &[u8]) -> String {
        let checkpoint = Checkpoint {
            origin: "test/board".into(),
            size: TreeSize(5),
            root: Hash::from_slice(&[root; 32]).unwrap(),
        };
        let mut signed = SignedCheckpoint::sign(checkpoint, &signer(signers[0])).unwrap();
        for i in &signers[1..] {
            signed.add_signature(&signer(*i)).unwrap();
        }
        signed.to_note()
    }

    /// Writes trusted keys and an equivocation by node-3 against nodes 1 and 2.
    fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
        let keys: String = (1..=3)
            .map(|i| format!("{}\n", signer(i).verifier()))
            .collect();
        let keys_file = dir.join("keys.txt");
        std::fs::write(&keys_file, keys).unwrap();
        let evidence = Evidence::Equivocation {
            origin: "test/board".into(),
            a: note(1, &[1, 2]),
            b: note(2, &[3]),
        };
        let written = write_evidence(dir, &[evidence]).unwrap();
        assert_eq!(written, vec![dir.join("evidence-equivocation-1.json")]);
        (keys_file, written[0].clone())
    }

    fn args(keys: &Path, evidence: &Path) -> VerifyEvidenceArgs {
        let (keys, evidence) = (keys.to_str().unwrap(), evidence.to_str().unwrap());
        parse_args(&[
            "x",
            "--evidence",
            evidence,
            "--trusted-keys",
            keys,
            "--origin",
            "test/board",
        ])
        .unwrap()
    }

    #[test]
    fn verify_evidence_accepts_valid_and_rejects_altered_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, evidence) = fixture(dir.path());
        run_verify_evidence(args(&keys, &evidence)).unwrap();

        // One hex digit of a root changed: the signature no longer covers the note.
        let text = std::fs::read_to_string(&evidence).unwrap();
        let altered = text.replacen("AQEBAQEB", "AQEBAQEC", 1);
        assert_ne!(altered, text, "fixture must contain the root in base64");
        std::fs::write(&evidence, altered).unwrap();
        let error = run_verify_evidence(args(&keys, &evidence)).unwrap_err();
        assert!(format!("{error:#}").contains("does NOT hold"), "{error:#}");
    }

    #[test]
    fn evidence_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = fixture(dir.path());
        let evidence = Evidence::from_json(&std::fs::read_to_string(&first).unwrap()).unwrap();
        let again = write_evidence(dir.path(), &[evidence]).unwrap();
        assert_eq!(again, vec![dir.path().join("evidence-equivocation-2.json")]);
    }

    #[test]
    fn exit_codes_distinguish_findings_from_errors() {
        let findings: anyhow::Error = ExitWith {
            code: AUDIT_EXIT_FINDINGS,
            message: "x".into(),
        }
        .into();
        assert_eq!(exit_code(&findings), 2);
        assert_eq!(exit_code(&findings.context("more")), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}
