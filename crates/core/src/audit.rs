//! Re-checking a whole election from the board alone (`bboard verify-election`).
//!
//! An auditor downloads every leaf of the board (and checks them against a k-of-n
//! cosigned checkpoint, which is the caller's job: [`ElectionReport::root`] is the
//! root the leaves hash to). [`ElectionRecord::from_leaves`] then replays every leaf
//! through the same rules the nodes apply ([`crate::memory::MemoryBoard`]): every
//! signature, every role and phase rule, every ballot proof, every tracking-code link.
//! A leaf the rules would not admit is a failure — honest nodes never admit one, so it
//! means the board (or the download) was tampered with.
//!
//! [`verify_election`] adds what the rules cannot check entry by entry: the tally is
//! the homomorphic sum of exactly the cast (not spoiled) ballots of each precinct,
//! every decryption share's proof holds against that tally, any k valid shares decrypt
//! it, and every published result equals the decryption. Each failure names the leaf
//! and what is wrong.

use std::collections::BTreeMap;

use bboard_ballot::dkg::KeySet;
use bboard_ballot::tally::{self, Tally};
use bboard_merkle::{Blake3Hasher, Hash, MemoryNodeStore, MerkleTree};

use crate::board::Outcome;
use crate::election::{load_election, ElectionStatus};
use crate::leaf::{decode_leaf, leaf_hash};
use crate::memory::MemoryBoard;
use crate::pb::{self, entry_body::Kind, Phase};

/// One thing wrong with the election record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFailure {
    /// The leaf concerned, if one is.
    pub leaf_index: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.leaf_index {
            Some(index) => write!(f, "leaf {index}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

fn failure(leaf_index: Option<u64>, message: impl Into<String>) -> AuditFailure {
    AuditFailure {
        leaf_index,
        message: message.into(),
    }
}

/// The entries of one election, gathered from a replayed board.
#[derive(Clone, Debug)]
pub struct ElectionRecord {
    /// The election.
    pub election_id: String,
    /// Its manifest.
    pub manifest: pb::ElectionManifest,
    /// Its status after the last leaf.
    pub status: ElectionStatus,
    /// Its key set, once the joint key is posted.
    pub key_set: Option<KeySet>,
    /// Cast ballots, with their leaf index.
    pub cast: Vec<(u64, pb::Ballot)>,
    /// Spoiled (audited, never counted) ballots.
    pub spoiled: Vec<(u64, pb::SpoiledBallot)>,
    /// Paper protocols.
    pub protocols: Vec<(u64, pb::PrecinctProtocol)>,
    /// Decryption shares.
    pub shares: Vec<(u64, pb::DecryptionShare)>,
    /// Published results.
    pub results: Vec<(u64, pb::ElectionResult)>,
    /// Leaves the rules would not admit (tampering).
    pub failures: Vec<AuditFailure>,
    /// Number of leaves replayed.
    pub size: u64,
    /// Root of the tree over the leaves.
    pub root: Hash,
}

/// Why an election record could not be built at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The board is empty or its first leaf is not a genesis.
    #[error("leaf 0 is not a board genesis: {0}")]
    NoGenesis(String),
    /// The election has no manifest on the board.
    #[error("election {0:?} has no manifest on this board")]
    UnknownElection(String),
    /// The Merkle tree could not be computed.
    #[error("merkle: {0}")]
    Merkle(String),
}

fn origin_of(leaves: &[Vec<u8>]) -> Result<String, AuditError> {
    let first = leaves
        .first()
        .ok_or_else(|| AuditError::NoGenesis("the board is empty".into()))?;
    let record = decode_leaf(first).map_err(|e| AuditError::NoGenesis(e.to_string()))?;
    let body = record
        .envelope
        .body()
        .map_err(|e| AuditError::NoGenesis(e.to_string()))?;
    match body.kind {
        Some(Kind::Genesis(genesis)) => Ok(genesis.origin),
        _ => Err(AuditError::NoGenesis("another entry kind".into())),
    }
}

impl ElectionRecord {
    /// Replays `leaves` (the whole board, index order) through the board rules and
    /// gathers the entries of `election_id`.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when there is no genesis or no such election; a leaf the rules
    /// refuse is recorded in [`ElectionRecord::failures`] instead.
    pub fn from_leaves(leaves: &[Vec<u8>], election_id: &str) -> Result<Self, AuditError> {
        let mut board = MemoryBoard::new(origin_of(leaves)?);
        let mut merkle = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
        let mut failures = Vec::new();
        let mut cast = Vec::new();
        let mut spoiled = Vec::new();
        let mut protocols = Vec::new();
        let mut shares = Vec::new();
        let mut results = Vec::new();
        for (index, leaf) in leaves.iter().enumerate() {
            let index = index as u64;
            merkle
                .append(leaf_hash(leaf))
                .map_err(|e| AuditError::Merkle(e.to_string()))?;
            // Replay leaf by leaf: the rules' outcome does not depend on batch bounds.
            match board.apply_batch(std::slice::from_ref(leaf)).pop() {
                Some(Outcome::Appended { .. }) => {}
                Some(Outcome::Duplicate { index: original }) => failures.push(failure(
                    Some(index),
                    format!("duplicate of leaf {original}: a board never stores an envelope twice"),
                )),
                Some(Outcome::Rejected(rejection)) => failures.push(failure(
                    Some(index),
                    format!("the board rules reject this leaf: {}", rejection.message),
                )),
                None => {}
            }
            let Ok(record) = decode_leaf(leaf) else {
                continue;
            };
            let Ok(body) = record.envelope.body() else {
                continue;
            };
            if body.election_id != election_id {
                continue;
            }
            match body.kind {
                Some(Kind::Ballot(ballot)) => cast.push((index, ballot)),
                Some(Kind::SpoiledBallot(ballot)) => spoiled.push((index, ballot)),
                Some(Kind::PrecinctProtocol(protocol)) => protocols.push((index, protocol)),
                Some(Kind::DecryptionShare(share)) => shares.push((index, share)),
                Some(Kind::Result(result)) => results.push((index, result)),
                _ => {}
            }
        }
        let election = match load_election(&board, election_id) {
            Ok(Ok(Some(election))) => election,
            Ok(Ok(None)) => return Err(AuditError::UnknownElection(election_id.into())),
            Ok(Err(rejection)) => return Err(AuditError::UnknownElection(rejection.message)),
            Err(never) => match never {},
        };
        let root = merkle
            .root()
            .map_err(|e| AuditError::Merkle(e.to_string()))?;
        Ok(ElectionRecord {
            election_id: election_id.into(),
            manifest: election.manifest,
            status: election.status,
            key_set: election.key_set,
            cast,
            spoiled,
            protocols,
            shares,
            results,
            failures,
            size: leaves.len() as u64,
            root,
        })
    }

    /// The homomorphic tally of the cast ballots, per precinct and contest.
    ///
    /// # Errors
    ///
    /// A ballot that does not fit the manifest (only on a tampered board).
    pub fn tally(&self) -> Result<Tally, bboard_ballot::BallotError> {
        let mut tally = Tally::new(&self.manifest)?;
        for (_, ballot) in &self.cast {
            tally.add_ballot(ballot)?;
        }
        Ok(tally)
    }

    /// The posted decryption shares of one precinct and contest.
    pub fn shares_for(&self, precinct_id: &str, contest_id: &str) -> Vec<&pb::DecryptionShare> {
        self.shares
            .iter()
            .filter(|(_, s)| s.precinct_id == precinct_id && s.contest_id == contest_id)
            .map(|(_, s)| s)
            .collect()
    }
}

/// One contest of one precinct in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContestReport {
    /// Contest id.
    pub contest_id: String,
    /// Option names.
    pub options: Vec<String>,
    /// Counts decrypted from the posted shares (if ≥ k valid shares are posted).
    pub decrypted: Option<Vec<u64>>,
    /// Counts of the published result, if posted.
    pub published: Option<Vec<u64>>,
    /// Counts of the paper protocol, if posted.
    pub paper: Option<Vec<u64>>,
}

/// One precinct in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecinctReport {
    /// Precinct id.
    pub precinct_id: String,
    /// Its name.
    pub name: String,
    /// Cast ballots counted in the tally.
    pub ballots_counted: u64,
    /// Spoiled (audited) ballots, not counted.
    pub ballots_spoiled: u64,
    /// Paper ballots cast according to the protocol, if posted.
    pub paper_ballots_cast: Option<u64>,
    /// Contests.
    pub contests: Vec<ContestReport>,
}

/// The verdict of `verify-election`.
#[derive(Clone, Debug)]
pub struct ElectionReport {
    /// The election.
    pub election_id: String,
    /// Its title.
    pub title: String,
    /// Phase reached.
    pub phase: Phase,
    /// Leaves checked.
    pub size: u64,
    /// Root they hash to (compare with a cosigned checkpoint).
    pub root: Hash,
    /// Per precinct.
    pub precincts: Vec<PrecinctReport>,
    /// Everything wrong, in board order.
    pub failures: Vec<AuditFailure>,
    /// Precincts whose paper protocol differs from the electronic result (not a
    /// failure of the board: a finding to report).
    pub paper_mismatches: Vec<String>,
}

impl ElectionReport {
    /// Whether the record checked out.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Re-checks a whole election from the board's leaves. See the module docs.
///
/// # Errors
///
/// [`AuditError`] when there is nothing to check (no genesis, no such election).
pub fn verify_election(
    leaves: &[Vec<u8>],
    election_id: &str,
) -> Result<ElectionReport, AuditError> {
    let record = ElectionRecord::from_leaves(leaves, election_id)?;
    let mut failures = record.failures.clone();
    let phase = record.status.phase();
    let tally = match record.tally() {
        Ok(tally) => Some(tally),
        Err(e) => {
            failures.push(failure(None, format!("cannot tally the cast ballots: {e}")));
            None
        }
    };
    let threshold = record.manifest.threshold as usize;

    // Shares: check every proof against the tally.
    let mut valid_shares: BTreeMap<(String, String), Vec<pb::DecryptionShare>> = BTreeMap::new();
    for (index, share) in &record.shares {
        let (Some(tally), Some(key_set)) = (&tally, &record.key_set) else {
            failures.push(failure(
                Some(*index),
                "decryption share posted but there is no tally or joint key to check it against",
            ));
            continue;
        };
        let Some(contest) = tally.contest(&share.precinct_id, &share.contest_id) else {
            failures.push(failure(
                Some(*index),
                format!(
                    "decryption share for unknown {}/{}",
                    share.precinct_id, share.contest_id
                ),
            ));
            continue;
        };
        match tally::verify_decryption_share(
            key_set,
            &record.election_id,
            &share.precinct_id,
            contest,
            share,
        ) {
            Ok(()) => valid_shares
                .entry((share.precinct_id.clone(), share.contest_id.clone()))
                .or_default()
                .push(share.clone()),
            Err(e) => failures.push(failure(
                Some(*index),
                format!(
                    "decryption share of trustee {} for {}/{} is invalid: {e}",
                    record
                        .manifest
                        .trustees
                        .get(share.trustee_index as usize)
                        .map_or_else(
                            || format!("#{}", share.trustee_index),
                            |t| format!("{} (#{})", t.name, share.trustee_index)
                        ),
                    share.precinct_id,
                    share.contest_id
                ),
            )),
        }
    }

    let mut precincts = Vec::new();
    let mut paper_mismatches = Vec::new();
    for precinct in &record.manifest.precincts {
        let pid = &precinct.precinct_id;
        let protocol = record
            .protocols
            .iter()
            .find(|(_, p)| &p.precinct_id == pid)
            .map(|(_, p)| p);
        let mut contests = Vec::new();
        let mut ballots_counted = 0;
        for contest in &record.manifest.contests {
            let cid = &contest.contest_id;
            let tallied = tally.as_ref().and_then(|t| t.contest(pid, cid));
            if let Some(tallied) = tallied {
                ballots_counted = tallied.ballots_counted;
            }
            let decrypted = match (tallied, &record.key_set) {
                (Some(tallied), Some(key_set)) => {
                    let shares = valid_shares
                        .get(&(pid.clone(), cid.clone()))
                        .cloned()
                        .unwrap_or_default();
                    if shares.len() >= threshold {
                        match tally::combine(key_set, &record.election_id, pid, tallied, &shares) {
                            Ok(counts) => Some(counts),
                            Err(e) => {
                                failures.push(failure(
                                    None,
                                    format!("{pid}/{cid}: the valid shares do not decrypt: {e}"),
                                ));
                                None
                            }
                        }
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let published = record
                .results
                .iter()
                .find(|(_, r)| {
                    &r.precinct_id == pid && r.count.as_ref().is_some_and(|c| &c.contest_id == cid)
                })
                .map(|(index, r)| (*index, r));
            if let Some((index, result)) = published {
                match (&decrypted, tallied) {
                    (Some(counts), Some(tallied)) => {
                        if let Err(e) = tally::check_result(result, counts, tallied.ballots_counted)
                        {
                            failures.push(failure(
                                Some(index),
                                format!("published result for {pid}/{cid} is not the tally: {e}"),
                            ));
                        }
                    }
                    _ => failures.push(failure(
                        Some(index),
                        format!(
                            "result for {pid}/{cid} is published but fewer than {threshold} valid \
                             decryption shares back it"
                        ),
                    )),
                }
            } else if phase == Phase::Published {
                failures.push(failure(
                    None,
                    format!("election is published but {pid}/{cid} has no result"),
                ));
            }
            let paper = protocol.and_then(|p| {
                p.counts
                    .iter()
                    .find(|c| &c.contest_id == cid)
                    .map(|c| c.option_counts.clone())
            });
            if let (Some(paper), Some(electronic)) = (&paper, &decrypted) {
                if paper != electronic {
                    paper_mismatches.push(format!(
                        "{pid}/{cid}: paper protocol {paper:?} differs from the electronic \
                         result {electronic:?}"
                    ));
                }
            }
            contests.push(ContestReport {
                contest_id: cid.clone(),
                options: contest.options.clone(),
                decrypted,
                published: published
                    .and_then(|(_, r)| r.count.as_ref().map(|c| c.option_counts.clone())),
                paper,
            });
        }
        match protocol {
            Some(protocol) if protocol.ballots_cast != ballots_counted => {
                paper_mismatches.push(format!(
                    "{pid}: the paper protocol records {} paper ballots cast, the electronic \
                     tally counts {ballots_counted} ballots",
                    protocol.ballots_cast
                ));
            }
            None if phase == Phase::Published => paper_mismatches.push(format!(
                "{pid}: no paper protocol is on the board to compare the electronic tally \
                 ({ballots_counted} ballots) with"
            )),
            _ => {}
        }
        precincts.push(PrecinctReport {
            precinct_id: pid.clone(),
            name: precinct.name.clone(),
            ballots_counted,
            ballots_spoiled: record
                .spoiled
                .iter()
                .filter(|(_, s)| s.ballot.as_ref().is_some_and(|b| &b.precinct_id == pid))
                .count() as u64,
            paper_ballots_cast: protocol.map(|p| p.ballots_cast),
            contests,
        });
    }
    Ok(ElectionReport {
        election_id: record.election_id,
        title: record.manifest.title,
        phase,
        size: record.size,
        root: record.root,
        precincts,
        failures,
        paper_mismatches,
    })
}

impl std::fmt::Display for ElectionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "election {:?} ({}), phase {}, board size {}, root {}",
            self.election_id,
            self.title,
            self.phase.as_str_name(),
            self.size,
            self.root
        )?;
        for precinct in &self.precincts {
            writeln!(
                f,
                "  precinct {} ({}): {} ballots counted, {} spoiled{}",
                precinct.precinct_id,
                precinct.name,
                precinct.ballots_counted,
                precinct.ballots_spoiled,
                precinct
                    .paper_ballots_cast
                    .map(|n| format!(", {n} paper ballots cast"))
                    .unwrap_or_default()
            )?;
            for contest in &precinct.contests {
                writeln!(f, "    {}", contest.contest_id)?;
                writeln!(
                    f,
                    "      {:<24} {:>10} {:>10} {:>10}",
                    "option", "decrypted", "published", "paper"
                )?;
                let cell = |counts: &Option<Vec<u64>>, i: usize| {
                    counts
                        .as_ref()
                        .and_then(|c| c.get(i))
                        .map_or_else(|| "-".to_string(), u64::to_string)
                };
                for (i, option) in contest.options.iter().enumerate() {
                    let flag = match (&contest.paper, &contest.decrypted) {
                        (Some(p), Some(d)) if p.get(i) != d.get(i) => "  <- paper differs",
                        _ => "",
                    };
                    writeln!(
                        f,
                        "      {:<24} {:>10} {:>10} {:>10}{flag}",
                        option,
                        cell(&contest.decrypted, i),
                        cell(&contest.published, i),
                        cell(&contest.paper, i)
                    )?;
                }
            }
        }
        for mismatch in &self.paper_mismatches {
            writeln!(f, "FINDING: {mismatch}")?;
        }
        if self.failures.is_empty() {
            let warned = if self.paper_mismatches.is_empty() {
                ""
            } else {
                " (WITH WARNINGS)"
            };
            write!(f, "VERIFIED{warned}: every signature, rule, ballot proof, decryption share and result checks out")?;
            match self.paper_mismatches.len() {
                0 => Ok(()),
                n => write!(
                    f,
                    "\nWARNING: {n} difference(s) between the paper protocols and the electronic \
                     tally (FINDING lines above): the board is consistent, the counts disagree"
                ),
            }
        } else {
            for failure in &self.failures {
                writeln!(f, "FAIL: {failure}")?;
            }
            write!(f, "NOT VERIFIED: {} failure(s)", self.failures.len())
        }
    }
}
