//! What an audit concludes, and how `bboard audit` prints it.
//!
//! The judge ([`super::judge`]) fills an [`AuditReport`]; this module owns its shape,
//! the rule that turns findings and warnings into an [`AuditVerdict`], and the text
//! the CLI prints ([`fmt::Display`]). Evidence files are printed by the CLI itself,
//! as the JSON of `bboard_core::evidence::Evidence`.

use std::fmt;

use bboard_core::checkpoint::SignedCheckpoint;
use bboard_core::evidence::Evidence;
use bboard_merkle::Hash;
use serde::{Deserialize, Serialize};

use super::state::AuditState;

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

impl AuditVerdict {
    /// Findings win over warnings; a clean audit without a cosigned reference is
    /// incomplete, since there was nothing to hold the nodes to.
    pub(crate) fn of(findings: &[Finding], warnings: &[String], has_reference: bool) -> Self {
        if !findings.is_empty() {
            AuditVerdict::Findings
        } else if !warnings.is_empty() || !has_reference {
            AuditVerdict::Incomplete
        } else {
            AuditVerdict::Ok
        }
    }
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

impl Finding {
    /// A finding without transferable evidence (and so without culprits).
    pub(crate) fn unproven(message: String) -> Self {
        Finding {
            message,
            evidence: None,
            culprits: Vec::new(),
        }
    }
}

/// What a full audit (`--full`) recomputed from the downloaded entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recomputed {
    /// Entries downloaded and hashed into the tree.
    pub entries: u64,
    /// Sizes of the cosigned checkpoints whose root was recomputed, ascending.
    pub roots_checked: Vec<u64>,
    /// How many of those roots differ from the recomputed tree (each a finding).
    pub roots_differing: usize,
}

/// The outcome of [`super::audit`] / [`super::compare`].
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
    /// With `--full` and a cosigned checkpoint: what was recomputed.
    pub recomputed: Option<Recomputed>,
    /// Evidence files, each verified with `bboard_core::evidence::verify_evidence`.
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
        write_reference(f, self.reference.as_deref())?;
        for line in &self.endpoints {
            write_endpoint(f, line)?;
        }
        for (i, finding) in self.findings.iter().enumerate() {
            write_finding(f, i, finding)?;
        }
        if let Some(full) = &self.recomputed {
            write_recomputed(f, full)?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

fn write_recomputed(f: &mut fmt::Formatter<'_>, full: &Recomputed) -> fmt::Result {
    let sizes: Vec<String> = full.roots_checked.iter().map(u64::to_string).collect();
    writeln!(
        f,
        "full check: downloaded {} entries (each leaf hash and envelope signature checked) and \
         recomputed the tree; \
         the root of {} cosigned checkpoint(s) (size {}) recomputed: {}",
        full.entries,
        full.roots_checked.len(),
        if sizes.is_empty() {
            "-".to_string()
        } else {
            sizes.join(", ")
        },
        match full.roots_differing {
            0 => "all match".to_string(),
            n => format!("{n} DIFFER"),
        }
    )
}

fn write_reference(f: &mut fmt::Formatter<'_>, reference: Option<&str>) -> fmt::Result {
    match reference.and_then(|n| SignedCheckpoint::parse(n).ok()) {
        Some(reference) => writeln!(
            f,
            "cosigned checkpoint: size {} root {} signed by {}",
            reference.checkpoint().size.0,
            reference.checkpoint().root,
            reference.signer_names().join(", ")
        ),
        None => writeln!(f, "cosigned checkpoint: none"),
    }
}

fn write_endpoint(f: &mut fmt::Formatter<'_>, line: &EndpointReport) -> fmt::Result {
    match &line.status {
        EndpointStatus::Unreachable(reason) => {
            writeln!(f, "  {}: unreachable: {reason}", line.endpoint)
        }
        EndpointStatus::Invalid(reason) => writeln!(f, "  {}: INVALID: {reason}", line.endpoint),
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
        ),
    }
}

fn write_finding(f: &mut fmt::Formatter<'_>, i: usize, finding: &Finding) -> fmt::Result {
    write!(f, "finding {}: {}", i + 1, finding.message)?;
    if let Some(index) = finding.evidence {
        write!(f, " [evidence {}]", index + 1)?;
    }
    if !finding.culprits.is_empty() {
        write!(f, " culprits: {}", finding.culprits.join(", "))?;
    }
    writeln!(f)
}

/// A root as people compare it by eye: its first 16 hex digits.
pub(crate) fn short(root: &Hash) -> String {
    root.to_hex().chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(verdict: AuditVerdict, findings: Vec<Finding>) -> AuditReport {
        AuditReport {
            origin: "bboard.test/report".into(),
            verdict,
            reference: None,
            recomputed: None,
            endpoints: vec![
                EndpointReport {
                    endpoint: "a".into(),
                    status: EndpointStatus::Unreachable("refused".into()),
                },
                EndpointReport {
                    endpoint: "b".into(),
                    status: EndpointStatus::Checkpoint {
                        size: 3,
                        root: Hash([0xab; 32]),
                        signers: Vec::new(),
                        cosigned: false,
                        problem: None,
                    },
                },
            ],
            findings,
            warnings: vec!["something unchecked".into()],
            evidence: Vec::new(),
            next_state: AuditState::default(),
        }
    }

    #[test]
    fn findings_outrank_warnings_and_no_reference_is_incomplete() {
        let finding = [Finding::unproven("wrong".into())];
        let warning = ["unchecked".to_string()];
        assert_eq!(
            AuditVerdict::of(&finding, &warning, true),
            AuditVerdict::Findings
        );
        assert_eq!(
            AuditVerdict::of(&[], &warning, true),
            AuditVerdict::Incomplete
        );
        assert_eq!(AuditVerdict::of(&[], &[], false), AuditVerdict::Incomplete);
        assert_eq!(AuditVerdict::of(&[], &[], true), AuditVerdict::Ok);
    }

    #[test]
    fn the_text_names_every_endpoint_finding_and_warning() {
        let finding = Finding {
            message: "equivocation".into(),
            evidence: Some(0),
            culprits: vec!["node-3".into()],
        };
        let text = report(AuditVerdict::Findings, vec![finding]).to_string();
        for line in [
            "audit of bboard.test/report: FINDINGS (1)",
            "cosigned checkpoint: none",
            "  a: unreachable: refused",
            "  b: size 3 root abababababababab signed by (no trusted key): consistent",
            "finding 1: equivocation [evidence 1] culprits: node-3",
            "warning: something unchecked",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
