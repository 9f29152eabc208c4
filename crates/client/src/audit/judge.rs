//! The auditor's judgement, as pure functions: what the nodes served in, findings,
//! evidence and warnings out. No async, no network, no files — so every rule below is
//! tested with checkpoints built in memory.
//!
//! The input is one [`Observation`] per endpoint and a [`ProofBook`] of proofs and
//! roots fetched for the comparison (what to fetch is [`needed`]). Checkpoints are
//! grouped by `(size, root)` with their signatures merged; the largest group carrying
//! the policy's k-of-n signatures is the *reference*. [`compare`] then runs one check
//! at a time, each its own function:
//!
//! 1. **Equivocation** (`Judge::check_equivocations`): two roots signed for one size.
//! 2. **Extension** (`Judge::check_extends`): a checkpoint larger than the reference
//!    must extend it (a finding without evidence: the board has not reached that size).
//! 3. **Prefix** (`Judge::check_prefix`): a smaller checkpoint must be a prefix of the
//!    reference; when it is not and a root at its size is proven, that is evidence.
//! 4. **Downloaded entries** (`Judge::check_downloaded_tree`, `--full`): the
//!    recomputed tree must hash to every cosigned root.
//! 5. **Invalid answers** (`Judge::report_invalid`): what is not a checkpoint.
//!
//! Nothing a node serves is trusted: proofs and roots from the book are used only once
//! they verify against a k-of-n checkpoint, and every evidence file is checked with
//! [`verify_evidence`] before it is reported.

use std::collections::BTreeMap;
use std::fmt;

use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::evidence::{canonical_note, verify_evidence, Evidence};
use bboard_merkle::{
    verify_consistency, Blake3Hasher, Hash, MemoryNodeStore, MerkleTree, TreeHasher, TreeSize,
};

use super::groups::{analyse, Analysis, Group, Source};
use super::report::{
    short, AuditReport, AuditVerdict, EndpointReport, EndpointStatus, Finding, Recomputed,
};
use super::state::AuditState;
use crate::censorship::AlarmJudgement;

/// The board's tree, recomputed from downloaded entries (`--full`).
pub(crate) type Tree = MerkleTree<Blake3Hasher, MemoryNodeStore>;

/// What one endpoint served as its latest checkpoint, and as its checkpoints of the
/// sizes the auditor asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The endpoint address.
    pub endpoint: String,
    /// Its signed note, or why it could not be fetched.
    pub note: Result<String, String>,
    /// Its checkpoints of chosen sizes ([`super::audit`] asks for the reference size
    /// and the size the node has applied). A node signs its checkpoint of every size
    /// it serves, so these show the root its own key signs at those sizes even when
    /// its latest checkpoint is an older final one. Empty when not fetched.
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

// ---------------------------------------------------------------------------------
// What to fetch
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Tree math the judge needs
// ---------------------------------------------------------------------------------

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

/// Whether `proof` shows the tree `(m, old_root)` is a prefix of `(n, new_root)`.
fn consistent(m: u64, n: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    verify_consistency(
        &Blake3Hasher,
        TreeSize(m),
        TreeSize(n),
        old_root,
        new_root,
        proof,
    )
    .is_ok()
}

/// The recomputed tree's root at `size`, if it has that many leaves.
fn tree_root(tree: Option<&Tree>, size: u64) -> Option<Hash> {
    let tree = tree?;
    (size <= tree.size().0)
        .then(|| tree.root_at(TreeSize(size)).ok())
        .flatten()
}

/// A checkpoint of size `m` (root `claimed`) held against the cosigned reference of
/// size `n > m` (root `honest`), with what the book offers to decide it.
struct Prefix<'b> {
    m: u64,
    n: u64,
    claimed: Hash,
    honest: Hash,
    book: &'b ProofBook,
    /// The recomputed tree agrees with the reference, so its proofs and roots are the
    /// most trustworthy ones.
    tree_agrees: bool,
}

impl Prefix<'_> {
    /// Every consistency proof `m → n` on offer: from the agreeing recomputed tree,
    /// from the book, and the empty proof from the empty tree.
    fn proofs(&self) -> Vec<Vec<Hash>> {
        let (m, n) = (self.m, self.n);
        let mut proofs = Vec::new();
        if self.tree_agrees {
            if let Some(Ok(p)) = self
                .book
                .tree
                .as_ref()
                .map(|t| t.consistency_proof(TreeSize(m), TreeSize(n)))
            {
                proofs.push(p);
            }
        }
        if let Some(p) = self.book.proofs.get(&(m, n)) {
            proofs.push(p.clone());
        }
        if m == 0 {
            proofs.push(Vec::new());
        }
        proofs
    }

    /// Whether `root` at `m` is a prefix of the reference by `proof`.
    fn verifies(&self, root: &Hash, proof: &[Hash]) -> bool {
        consistent(self.m, self.n, root, &self.honest, proof)
    }

    /// A root at `m` other than the claimed one, proven to be the reference's by one
    /// of `proofs`, with that proof: what makes "not a prefix" evidence.
    fn proven_root(&self, proofs: &[Vec<Hash>]) -> Option<(Hash, Vec<Hash>)> {
        let (m, n) = (self.m, self.n);
        for proof in proofs {
            let mut candidates: Vec<Hash> = Vec::new();
            if self.tree_agrees {
                candidates.extend(tree_root(self.book.tree.as_ref(), m));
            }
            candidates.extend(self.book.roots.get(&m).copied());
            candidates.extend(old_root_from_proof(m, n, proof));
            if m == 0 {
                candidates.push(Blake3Hasher.empty_root());
            }
            if let Some(root) = candidates
                .into_iter()
                .find(|c| *c != self.claimed && self.verifies(c, proof))
            {
                return Some((root, proof.clone()));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------
// The judgement
// ---------------------------------------------------------------------------------

/// Judges the observations (pure): see the module documentation.
pub fn compare(
    policy: &CosignaturePolicy,
    previous: Option<&str>,
    observations: &[Observation],
    book: &ProofBook,
) -> AuditReport {
    let Analysis {
        endpoint_groups,
        endpoint_signers,
        endpoint_own,
        own_invalid,
        groups,
        reference,
        previous: previous_group,
        warnings,
    } = analyse(policy, previous, observations);
    let mut judge = Judge {
        policy,
        observations,
        groups: &groups,
        reference,
        problems: vec![None; groups.len()],
        findings: Vec::new(),
        evidence: Vec::new(),
        warnings,
        recomputed: None,
    };
    judge.check_equivocations();
    match reference {
        Some(r) => {
            judge.check_against_reference(r, book);
            judge.check_downloaded_tree(r, book);
        }
        None => {
            let why = missing_signatures(policy, &groups);
            judge.warnings.push(format!(
                "no endpoint served a checkpoint carrying the policy's signatures: {why}"
            ));
        }
    }
    let endpoints = judge.endpoint_reports(endpoint_groups, endpoint_signers, &endpoint_own);
    judge.report_invalid(&endpoints, &own_invalid);
    let reference_note = reference.and_then(|r| judge.canonical(&groups[r]));
    let next_state = judge.next_state(previous, previous_group, reference_note.as_deref());
    let Judge {
        findings,
        evidence,
        warnings,
        recomputed,
        ..
    } = judge;
    AuditReport {
        recomputed,
        origin: policy.origin().to_string(),
        verdict: AuditVerdict::of(&findings, &warnings, reference.is_some()),
        reference: reference_note,
        endpoints,
        findings,
        warnings,
        evidence,
        next_state,
    }
}

/// The judgement in progress: the grouped checkpoints and what was found so far.
struct Judge<'a> {
    policy: &'a CosignaturePolicy,
    observations: &'a [Observation],
    groups: &'a [Group],
    reference: Option<usize>,
    /// Per group: what is wrong with it (None: consistent with the reference).
    problems: Vec<Option<String>>,
    findings: Vec<Finding>,
    evidence: Vec<Evidence>,
    warnings: Vec<String>,
    /// What the `--full` check recomputed.
    recomputed: Option<Recomputed>,
}

/// Which signatures the best checkpoint served lacks, for the warning of an audit
/// without a reference: node signatures and witness cosignatures are distinct
/// settings (`--threshold`, `--witness-threshold`), and the operator must know which
/// one is not met.
fn missing_signatures(policy: &CosignaturePolicy, groups: &[Group]) -> String {
    let Some(best) = groups.iter().max_by_key(|g| (g.signers, g.size())) else {
        return "no endpoint served a checkpoint at all".into();
    };
    match policy.verify(&best.merged) {
        Err(bboard_core::Error::NotEnoughWitnessCosignatures {
            valid, required, ..
        }) => format!(
            "the node signatures are enough ({} of the {} required, at size {}), but only \
             {valid} of the {required} required witness cosignature(s) are present",
            best.signers,
            policy.threshold(),
            best.size()
        ),
        Err(bboard_core::Error::NotEnoughCosignatures {
            valid, required, ..
        }) => format!(
            "the best checkpoint (size {}) carries {valid} of the {required} required node \
             signature(s){}",
            best.size(),
            if policy.witness_threshold() > 0 {
                " (witness cosignatures not counted until then)"
            } else {
                ""
            }
        ),
        Err(other) => format!(
            "the best checkpoint (size {}) does not verify: {other}",
            best.size()
        ),
        Ok(_) => "(every signature is present; the checkpoint was not chosen)".into(),
    }
}

impl Judge<'_> {
    /// A checkpoint and everyone who served it, for messages.
    fn describe(&self, g: &Group) -> String {
        let mut who: Vec<String> = Vec::new();
        for source in &g.sources {
            let name = match source {
                Source::Endpoint(i) => self
                    .observations
                    .get(*i)
                    .map_or_else(|| "?".to_string(), |o| o.endpoint.clone()),
                Source::Own(i) => self.observations.get(*i).map_or_else(
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
    }

    /// The group's note in the canonical form evidence carries.
    fn canonical(&self, g: &Group) -> Option<String> {
        canonical_note(&g.merged.to_note(), self.policy).ok()
    }

    /// Records a finding with its evidence, if the evidence verifies; else without
    /// (a finding must never point at evidence `bboard verify-evidence` rejects).
    fn prove(&mut self, message: String, candidate: Option<Evidence>) {
        let checked = candidate.and_then(|e| {
            let verdict = verify_evidence(&e, self.policy).ok()?;
            Some((e, verdict))
        });
        match checked {
            Some((e, verdict)) => {
                self.evidence.push(e);
                self.findings.push(Finding {
                    message,
                    evidence: Some(self.evidence.len() - 1),
                    culprits: verdict.culprits().to_vec(),
                });
            }
            None => self.findings.push(Finding::unproven(format!(
                "{message} (no transferable evidence)"
            ))),
        }
    }

    /// Check 1: two roots for one size.
    fn check_equivocations(&mut self) {
        let groups = self.groups;
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
            let primary = self.primary_of(&at);
            for &other in at.iter().filter(|&&i| i != primary) {
                self.equivocation(size, primary, other);
            }
        }
    }

    /// Of several groups of one size, the side to compare the others with: the
    /// reference, else the best-signed.
    fn primary_of(&self, at: &[usize]) -> usize {
        at.iter()
            .copied()
            .find(|&i| Some(i) == self.reference)
            .or_else(|| {
                at.iter()
                    .copied()
                    .max_by_key(|&i| (self.groups[i].cosigned, self.groups[i].signers))
            })
            .unwrap_or(at[0])
    }

    /// Groups `primary` and `other` sign two roots for `size`.
    fn equivocation(&mut self, size: u64, primary: usize, other: usize) {
        let (a, b) = (&self.groups[primary], &self.groups[other]);
        let message = format!(
            "equivocation at size {size}: {} vs {}",
            self.describe(a),
            self.describe(b)
        );
        let candidate = match (self.canonical(a), self.canonical(b)) {
            (Some(a), Some(b)) => Some(Evidence::Equivocation {
                origin: self.policy.origin().to_string(),
                a,
                b,
            }),
            _ => None,
        };
        let problem = format!("EQUIVOCATES at size {size}");
        if Some(primary) != self.reference {
            self.problems[primary] = Some(problem.clone());
        }
        self.problems[other] = Some(problem);
        self.prove(message, candidate);
    }

    /// Checks 2 and 3: every other size against the reference `r`.
    fn check_against_reference(&mut self, r: usize, book: &ProofBook) {
        let groups = self.groups;
        let (n, honest_root) = (groups[r].size(), groups[r].root());
        // A full download that agrees with the cosigned root makes the local tree the
        // most trustworthy source of proofs and roots.
        let tree_agrees = tree_root(book.tree.as_ref(), n) == Some(honest_root);
        for (i, group) in groups.iter().enumerate() {
            let m = group.size();
            if self.problems[i].is_some() || m == n {
                continue;
            }
            if m > n {
                self.check_extends(i, &groups[r], book);
            } else {
                let prefix = Prefix {
                    m,
                    n,
                    claimed: group.root(),
                    honest: honest_root,
                    book,
                    tree_agrees,
                };
                self.check_prefix(i, &groups[r], &prefix);
            }
        }
    }

    /// Check 2: group `i`, ahead of the reference, extends it.
    fn check_extends(&mut self, i: usize, reference: &Group, book: &ProofBook) {
        let group = &self.groups[i];
        let (n, m) = (reference.size(), group.size());
        let verified = book
            .proofs
            .get(&(n, m))
            .map(|p| consistent(n, m, &reference.root(), &group.root(), p));
        match verified {
            Some(true) => {}
            Some(false) => {
                self.problems[i] = Some("does not extend the cosigned checkpoint".into());
                let message = format!(
                    "{} does not extend the cosigned checkpoint of size {n}: its consistency proof does not verify (no transferable evidence until the board reaches size {m})",
                    self.describe(group)
                );
                self.findings.push(Finding::unproven(message));
            }
            None => {
                self.problems[i] = Some("not checked (no proof)".into());
                let warning = format!(
                    "{} is ahead of the cosigned size {n}; no consistency proof was available",
                    self.describe(group)
                );
                self.warnings.push(warning);
            }
        }
    }

    /// Check 3: group `i`, behind the reference, is a prefix of it.
    fn check_prefix(&mut self, i: usize, reference: &Group, prefix: &Prefix<'_>) {
        let group = &self.groups[i];
        let (m, n) = (prefix.m, prefix.n);
        let proofs = prefix.proofs();
        if proofs.is_empty() {
            self.problems[i] = Some("not checked (no proof)".into());
            let warning = format!(
                "no consistency proof from size {m} to the cosigned size {n}: {} not checked",
                self.describe(group)
            );
            self.warnings.push(warning);
            return;
        }
        if proofs.iter().any(|p| prefix.verifies(&prefix.claimed, p)) {
            return;
        }
        self.problems[i] = Some(format!("NOT A PREFIX of the cosigned size {n}"));
        let message = format!(
            "{} is not a prefix of the cosigned checkpoint of size {n} root {}",
            self.describe(group),
            short(&prefix.honest)
        );
        let candidate = prefix.proven_root(&proofs).and_then(|(root_at_m, proof)| {
            Some(Evidence::NotAPrefix {
                origin: self.policy.origin().to_string(),
                faulty: self.canonical(group)?,
                honest: self.canonical(reference)?,
                root_at_m: root_at_m.to_hex(),
                proof: proof.iter().map(Hash::to_hex).collect(),
            })
        });
        self.prove(message, candidate);
    }

    /// Check 4 (`--full`): the downloaded entries hash to every cosigned root.
    fn check_downloaded_tree(&mut self, r: usize, book: &ProofBook) {
        let Some(tree) = book.tree.as_ref() else {
            return;
        };
        let n = self.groups[r].size();
        let downloaded = tree.size().0;
        if downloaded < n {
            self.warnings.push(format!(
                "only {downloaded} entries could be downloaded, the cosigned size is {n}"
            ));
        }
        let mut recomputed = Recomputed {
            entries: downloaded,
            roots_checked: Vec::new(),
            roots_differing: 0,
        };
        for group in self.groups.iter().filter(|g| g.cosigned) {
            let Some(root) = tree_root(Some(tree), group.size()) else {
                continue;
            };
            recomputed.roots_checked.push(group.size());
            if root != group.root() {
                recomputed.roots_differing += 1;
                let message = format!(
                    "the downloaded entries hash to root {} at size {}, but the cosigned {} says otherwise",
                    short(&root),
                    group.size(),
                    self.describe(group)
                );
                self.findings.push(Finding::unproven(message));
            }
        }
        recomputed.roots_checked.sort_unstable();
        recomputed.roots_checked.dedup();
        self.recomputed = Some(recomputed);
    }

    /// Check 5: endpoints that served something that is not a checkpoint of the
    /// board, as their latest or when asked for a size.
    fn report_invalid(
        &mut self,
        endpoints: &[EndpointReport],
        own_invalid: &[(usize, u64, String)],
    ) {
        for line in endpoints {
            if let EndpointStatus::Invalid(reason) = &line.status {
                self.findings.push(Finding::unproven(format!(
                    "{} served an invalid checkpoint: {reason}",
                    line.endpoint
                )));
            }
        }
        for (i, size, reason) in own_invalid {
            let endpoint = self
                .observations
                .get(*i)
                .map_or("?", |o| o.endpoint.as_str());
            self.findings.push(Finding::unproven(format!(
                "{endpoint} served an invalid checkpoint when asked for size {size}: {reason}"
            )));
        }
    }

    /// One line per endpoint. An endpoint's problem is its latest checkpoint's, else
    /// the first of its checkpoints of the sizes asked for.
    fn endpoint_reports(
        &self,
        endpoint_groups: Vec<Result<usize, EndpointStatus>>,
        endpoint_signers: Vec<Vec<String>>,
        endpoint_own: &[Vec<(u64, usize)>],
    ) -> Vec<EndpointReport> {
        self.observations
            .iter()
            .zip(endpoint_groups)
            .zip(endpoint_signers)
            .enumerate()
            .map(|(i, ((observation, group), signers))| EndpointReport {
                endpoint: observation.endpoint.clone(),
                status: match group {
                    Err(status) => status,
                    Ok(g) => EndpointStatus::Checkpoint {
                        size: self.groups[g].size(),
                        root: self.groups[g].root(),
                        signers,
                        cosigned: self.groups[g].cosigned,
                        problem: self.problems[g]
                            .clone()
                            .or_else(|| self.own_problem(endpoint_own.get(i))),
                    },
                },
            })
            .collect()
    }

    /// The first problem among an endpoint's checkpoints of the sizes asked for.
    fn own_problem(&self, own: Option<&Vec<(u64, usize)>>) -> Option<String> {
        own?.iter().find_map(|&(size, g)| {
            self.problems[g]
                .as_ref()
                .map(|p| format!("its checkpoint of size {size}: {p}"))
        })
    }

    /// The state for the next run: advanced to the reference only along a history
    /// shown consistent with the previous state.
    fn next_state(
        &self,
        previous: Option<&str>,
        previous_group: Option<usize>,
        reference_note: Option<&str>,
    ) -> AuditState {
        let advance = match (self.reference, previous_group) {
            (Some(_), None) => true,
            (Some(r), Some(p)) => r == p || self.problems[p].is_none(),
            (None, _) => false,
        };
        match (reference_note, advance) {
            (Some(note), true) => AuditState::with_checkpoint(Some(note.to_string())),
            _ => AuditState::with_checkpoint(previous.map(str::to_string)),
        }
    }
}

/// Adds the censorship judgement (see [`crate::censorship::judge`]) to `report`: its
/// evidence after the report's, its findings pointing at their moved evidence, and
/// the verdict recomputed.
pub(crate) fn add_censorship(report: &mut AuditReport, judgement: AlarmJudgement) {
    let offset = report.evidence.len();
    report.evidence.extend(judgement.evidence);
    report
        .findings
        .extend(judgement.findings.into_iter().map(|mut finding| {
            finding.evidence = finding.evidence.map(|i| i + offset);
            finding
        }));
    report.warnings.extend(judgement.warnings);
    report.verdict = AuditVerdict::of(
        &report.findings,
        &report.warnings,
        report.reference.is_some(),
    );
}

#[cfg(test)]
mod tests {
    use bboard_core::checkpoint::SignedCheckpoint;
    use bboard_core::evidence::Verdict;

    use super::super::groups::parse_checkpoint;
    use super::*;
    use bboard_testkit::{fixture_note, fixture_policy, honest_tree as honest, tree};

    const ORIGIN: &str = "bboard.test/audit";

    fn policy() -> CosignaturePolicy {
        fixture_policy(ORIGIN)
    }

    /// [`compare`] with the test policy and no previous state.
    fn judged(observations: &[Observation], book: &ProofBook) -> AuditReport {
        compare(&policy(), None, observations, book)
    }

    fn note(tree: &Tree, size: u64, signers: &[u8]) -> String {
        fixture_note(ORIGIN, tree, size, signers)
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
        let escaped = judged(&latest, &book);
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
        let report = judged(&observations, &book);
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
        let report = judged(&observations, &book_with(&board, &[(5, 10), (7, 10)]));
        assert_c_is_not_a_prefix_by_node_3(&report);
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
        let report = judged(&observations, &book_with(&board, &[(5, 10), (7, 10)]));
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        assert!(report.findings.is_empty() && report.evidence.is_empty());
        assert_eq!(problem_of(&report, "c"), None);
        // Without the proof for its own size: incomplete, no accusation.
        let report = judged(&observations, &book_with(&board, &[(5, 10)]));
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
        let report = judged(&observations, &book_with(&board, &[]));
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

    /// `report` has one finding, with evidence that endpoint c's key (node-3) signed a
    /// checkpoint that is not a prefix of the cosigned one.
    fn assert_c_is_not_a_prefix_by_node_3(report: &AuditReport) {
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert_eq!(report.evidence.len(), 1, "{report}");
        match verify_evidence(&report.evidence[0], &policy()).unwrap() {
            Verdict::NotAPrefix { culprits, .. } => assert_eq!(culprits, ["node-3"]),
            other => panic!("wrong verdict {other:?}"),
        }
        assert!(problem_of(report, "c").unwrap().contains("NOT A PREFIX"));
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
        let report = judged(&observations, &ProofBook::default());
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
        let report = judged(&observations, &ProofBook::default());
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
        let report = judged(&observations, &book_with(&board, &[(6, 10)]));
        assert_c_is_not_a_prefix_by_node_3(&report);
    }

    #[test]
    fn a_power_of_two_size_needs_the_root_from_an_honest_node() {
        let board = honest(13);
        let observations = vec![
            seen("a", note(&board, 13, &[1, 2])),
            seen("c", note(&tree(8, 5), 8, &[3])),
        ];
        let mut book = book_with(&board, &[(8, 13)]);
        let without_root = judged(&observations, &book);
        assert_eq!(without_root.verdict, AuditVerdict::Findings);
        assert!(without_root.evidence.is_empty());
        assert!(without_root.findings[0]
            .message
            .contains("no transferable evidence"));
        book.roots.insert(8, board.root_at(TreeSize(8)).unwrap());
        let with_root = judged(&observations, &book);
        assert_eq!(with_root.evidence.len(), 1, "{with_root}");
        // A lying "root" from a node is not enough: it must verify with the proof.
        book.roots.insert(8, Hash([7; 32]));
        assert!(judged(&observations, &book).evidence.is_empty());
    }

    #[test]
    fn lagging_honest_nodes_are_consistent() {
        let board = honest(10);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("b", note(&board, 7, &[2])),
            seen("c", note(&board, 8, &[3])),
        ];
        let report = judged(&observations, &book_with(&board, &[(7, 10), (8, 10)]));
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        // Without proofs: incomplete, not ok, and no accusation.
        let report = judged(&observations, &ProofBook::default());
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
        let report = judged(&observations, &book_with(&board, &[(10, 12)]));
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        let forged = tree(12, 3);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("c", note(&forged, 12, &[3])),
        ];
        let report = judged(&observations, &book_with(&forged, &[(10, 12)]));
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
        let report = judged(&observations, &book);
        assert_eq!(report.evidence.len(), 1, "{report}");
        // The report says what was recomputed.
        let full = report.recomputed.clone().unwrap();
        assert_eq!((full.entries, full.roots_differing), (10, 0));
        assert_eq!(full.roots_checked, vec![10]);
        assert!(
            report
                .to_string()
                .contains("downloaded 10 entries (each leaf hash and envelope signature checked)"),
            "{report}"
        );
        assert!(
            report
                .to_string()
                .contains("(size 10) recomputed: all match"),
            "{report}"
        );
        // Without --full, nothing is claimed.
        assert!(judged(&observations, &ProofBook::default())
            .recomputed
            .is_none());
        // Entries that do not hash to the cosigned root.
        let book = ProofBook {
            tree: Some(tree(10, 9)),
            ..ProofBook::default()
        };
        let report = judged(&[seen("a", note(&board, 10, &[1, 2]))], &book);
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(report.findings[0].message.contains("downloaded entries"));
        // Too few entries: incomplete.
        let book = ProofBook {
            tree: Some(honest(4)),
            ..ProofBook::default()
        };
        let report = judged(&[seen("a", note(&board, 10, &[1, 2]))], &book);
        assert_eq!(report.verdict, AuditVerdict::Incomplete, "{report}");
    }

    #[test]
    fn invalid_or_uncosigned_checkpoints_are_reported() {
        let board = honest(3);
        let report = judged(
            &[
                seen("a", "garbage".into()),
                seen("b", note(&board, 3, &[1])),
            ],
            &ProofBook::default(),
        );
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(report.reference.is_none());
        assert!(report.to_string().contains("a: INVALID"));
        let report = judged(&[down("a")], &ProofBook::default());
        assert_eq!(report.verdict, AuditVerdict::Incomplete);
    }

    #[test]
    fn without_a_cosigned_checkpoint_the_warning_names_the_missing_signatures() {
        let board = honest(3);
        let report = judged(&[seen("b", note(&board, 3, &[1]))], &ProofBook::default());
        assert!(
            report.warnings[0].contains("carries 1 of the 2 required node signature(s)"),
            "{report}"
        );
        // The node signatures are enough; the witnesses are missing.
        let witness = bboard_testkit::note_signer("witness", 90);
        let policy = policy()
            .with_witnesses(vec![witness.verifier()], 1)
            .unwrap();
        let report = compare(
            &policy,
            None,
            &[seen("a", note(&board, 3, &[1, 2]))],
            &ProofBook::default(),
        );
        assert!(
            report.warnings[0].contains("node signatures are enough (2 of the 2 required")
                && report.warnings[0].contains("only 0 of the 1 required witness"),
            "{report}"
        );
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

    // Each check on its own, through the small functions compare() is built from.

    #[test]
    fn analysis_merges_signatures_per_checkpoint_and_picks_the_largest_cosigned() {
        let board = honest(10);
        let observations = vec![
            seen("a", note(&board, 8, &[1, 2])),
            seen("b", note(&board, 10, &[1])),
            seen("c", note(&board, 10, &[3])),
            seen("d", note(&tree(12, 11), 12, &[2])),
        ];
        let analysis = analyse(&policy(), None, &observations);
        assert_eq!(analysis.groups.len(), 3);
        // b and c serve one checkpoint: one group, signatures merged into 2-of-3.
        assert_eq!(analysis.endpoint_groups[1], analysis.endpoint_groups[2]);
        let reference = analysis.reference.unwrap();
        assert_eq!(Ok(reference), analysis.endpoint_groups[1]);
        assert_eq!(analysis.groups[reference].signers, 2);
        // d's larger checkpoint carries one signature: not the reference.
        assert!(!analysis.groups[analysis.endpoint_groups[3].clone().unwrap()].cosigned);
        assert_eq!(analysis.endpoint_signers[2], ["node-3"]);
        assert!(analysis.warnings.is_empty() && analysis.own_invalid.is_empty());
    }

    #[test]
    fn a_checkpoint_of_another_board_is_invalid() {
        let other = fixture_note("another/board", &honest(3), 3, &[1, 2]);
        let reason = parse_checkpoint(&policy(), &other).unwrap_err();
        assert!(reason.contains("another/board"), "{reason}");
        let report = judged(&[seen("a", other)], &ProofBook::default());
        assert!(matches!(
            report.endpoints[0].status,
            EndpointStatus::Invalid(_)
        ));
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
    }

    #[test]
    fn an_unverifiable_previous_state_is_ignored_with_a_warning() {
        let board = honest(4);
        // One signature: not k-of-n, so the state cannot have come from an audit.
        let analysis = analyse(&policy(), Some(&note(&board, 4, &[1])), &[]);
        assert_eq!(analysis.previous, None);
        assert!(analysis.groups.is_empty());
        assert!(analysis.warnings[0].contains("audit state does not verify"));
        let analysis = analyse(&policy(), Some(&note(&board, 4, &[1, 3])), &[]);
        assert_eq!(analysis.previous, Some(0));
        assert_eq!(analysis.reference, Some(0));
    }

    #[test]
    fn equivocation_without_a_reference_blames_both_sides() {
        let observations = vec![
            seen("a", note(&honest(6), 6, &[1])),
            seen("b", note(&tree(6, 2), 6, &[2])),
        ];
        let report = judged(&observations, &ProofBook::default());
        assert!(report.reference.is_none());
        assert_eq!(report.evidence.len(), 1, "{report}");
        match verify_evidence(&report.evidence[0], &policy()).unwrap() {
            Verdict::Equivocation { culprits, .. } => assert!(culprits.is_empty(), "{culprits:?}"),
            other => panic!("wrong verdict {other:?}"),
        }
        for endpoint in ["a", "b"] {
            assert!(problem_of(&report, endpoint)
                .unwrap()
                .contains("EQUIVOCATES"));
        }
        assert_eq!(report.next_state, AuditState::default());
    }

    #[test]
    fn an_extension_whose_proof_fails_is_a_finding_without_evidence() {
        let board = honest(10);
        let observations = vec![
            seen("a", note(&board, 8, &[1, 2])),
            seen("c", note(&tree(10, 3), 10, &[3])),
        ];
        // The proof of the honest board does not link the forged root to size 8.
        let report = judged(&observations, &book_with(&board, &[(8, 10)]));
        assert_eq!(report.verdict, AuditVerdict::Findings, "{report}");
        assert!(report.evidence.is_empty());
        assert!(report.findings[0].message.contains("does not extend"));
        assert_eq!(
            problem_of(&report, "c").as_deref(),
            Some("does not extend the cosigned checkpoint")
        );
        // The reference itself is fine and becomes the next state.
        assert!(report.next_state.checkpoint.is_some());
    }

    #[test]
    fn the_empty_tree_is_a_prefix_of_every_board() {
        let board = honest(5);
        let empty = note(&board, 0, &[3]);
        let observations = vec![seen("a", note(&board, 5, &[1, 2])), seen("c", empty)];
        // No proof to fetch: the empty proof links the empty tree to any tree.
        assert!(needed(&policy(), None, &observations).proofs.is_empty());
        let report = judged(&observations, &ProofBook::default());
        assert_eq!(report.verdict, AuditVerdict::Ok, "{report}");
        assert_eq!(problem_of(&report, "c"), None);
    }

    #[test]
    fn a_proven_root_must_differ_from_the_claimed_one() {
        let board = honest(10);
        let forged = tree(6, 2);
        let book = book_with(&board, &[(6, 10)]);
        let prefix = Prefix {
            m: 6,
            n: 10,
            claimed: forged.root().unwrap(),
            honest: board.root().unwrap(),
            book: &book,
            tree_agrees: false,
        };
        let proofs = prefix.proofs();
        assert_eq!(proofs.len(), 1);
        assert!(!prefix.verifies(&prefix.claimed, &proofs[0]));
        let (root, proof) = prefix.proven_root(&proofs).unwrap();
        assert_eq!(root, board.root_at(TreeSize(6)).unwrap());
        assert_eq!(proof, proofs[0]);
        // The honest claim has nothing else to prove.
        let honest_claim = Prefix {
            claimed: board.root_at(TreeSize(6)).unwrap(),
            ..prefix
        };
        assert!(honest_claim.verifies(&honest_claim.claimed, &proofs[0]));
        assert_eq!(honest_claim.proven_root(&proofs), None);
    }

    #[test]
    fn an_agreeing_downloaded_tree_supplies_proofs_and_roots() {
        let board = honest(16);
        let book = ProofBook {
            tree: Some(honest(16)),
            ..ProofBook::default()
        };
        let prefix = Prefix {
            m: 8,
            n: 16,
            claimed: tree(8, 1).root().unwrap(),
            honest: board.root().unwrap(),
            book: &book,
            tree_agrees: true,
        };
        let proofs = prefix.proofs();
        assert_eq!(proofs.len(), 1);
        // 8 is a power of two: the root comes from the tree, not from the proof.
        let (root, _) = prefix.proven_root(&proofs).unwrap();
        assert_eq!(root, board.root_at(TreeSize(8)).unwrap());
        let distrusted = Prefix {
            tree_agrees: false,
            ..prefix
        };
        assert!(distrusted.proofs().is_empty());
    }

    #[test]
    fn needs_ask_honest_nodes_for_prefixes_and_nodes_ahead_for_their_extension() {
        let board = honest(12);
        let observations = vec![
            seen("a", note(&board, 10, &[1, 2])),
            seen("b", note(&board, 7, &[2])),
            seen("c", note(&board, 12, &[3])),
        ];
        let needs = needed(&policy(), None, &observations);
        assert_eq!(needs.reference_size, Some(10));
        assert_eq!(needs.max_size, 12);
        assert_eq!(
            needs.proofs,
            vec![
                (7, 10, vec!["a".to_string()]),
                (10, 12, vec!["c".to_string()])
            ]
        );
        assert_eq!(needs.roots, vec![(7, vec!["a".to_string()])]);
        // Without a cosigned checkpoint nothing can be compared.
        let alone = needed(&policy(), None, &observations[1..]);
        assert_eq!(
            alone,
            Needs {
                max_size: 12,
                ..Needs::default()
            }
        );
    }

    #[test]
    fn censorship_findings_point_at_their_evidence_after_the_audits() {
        let board = honest(10);
        let observations = vec![
            seen("a", note(&board, 10, &[1])),
            seen("b", note(&board, 10, &[2])),
            seen("c", note(&tree(10, 4), 10, &[3])),
        ];
        let mut report = judged(&observations, &ProofBook::default());
        assert_eq!(report.evidence.len(), 1);
        let judgement = AlarmJudgement {
            findings: vec![Finding {
                message: "entry censored".into(),
                evidence: Some(0),
                culprits: vec!["node-1".into()],
            }],
            evidence: vec![report.evidence[0].clone()],
            warnings: vec!["a stale alarm".into()],
        };
        add_censorship(&mut report, judgement);
        assert_eq!(report.evidence.len(), 2);
        assert_eq!(report.findings[1].evidence, Some(1));
        assert_eq!(report.warnings, ["a stale alarm"]);
        assert_eq!(report.verdict, AuditVerdict::Findings);

        // Only warnings: a clean audit becomes incomplete.
        let mut clean = judged(
            &[seen("a", note(&board, 10, &[1, 2]))],
            &ProofBook::default(),
        );
        assert_eq!(clean.verdict, AuditVerdict::Ok);
        add_censorship(
            &mut clean,
            AlarmJudgement {
                warnings: vec!["alarm not checked".into()],
                ..AlarmJudgement::default()
            },
        );
        assert_eq!(clean.verdict, AuditVerdict::Incomplete);
    }
}
