//! What anyone can read off the board: the tally, the results beside the paper
//! protocols, and the full audit (`verify-election`).

use std::fmt::Write as _;

use bboard_client::BoardClient;
use bboard_core::audit::{verify_election, AuditFailure, ElectionRecord, ElectionReport};
use bboard_core::pb;

use crate::authority::decrypt_all;
use crate::board::ElectionView;
use crate::{Error, Result};

/// The tally: ballots per precinct, decryption shares posted, and the counts once k
/// valid shares are on the board.
pub fn tally_table(view: &ElectionView) -> Result<String> {
    let record =
        ElectionRecord::from_leaves(&view.leaves, &view.election_id).map_err(Error::Replay)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "election {:?}: {} cast ballots, {} spoiled (not counted), phase {}",
        view.election_id,
        record.cast.len(),
        record.spoiled.len(),
        view.phase().as_str_name()
    );
    for decrypted in decrypt_all(&record)? {
        let contest = view
            .manifest
            .contests
            .iter()
            .find(|c| c.contest_id == decrypted.contest_id);
        let _ = writeln!(
            out,
            "{}/{}: {} ballots, valid decryption shares from {}",
            decrypted.precinct_id,
            decrypted.contest_id,
            decrypted.ballots_counted,
            if decrypted.trustees.is_empty() {
                "no trustee yet".to_string()
            } else {
                decrypted
                    .trustees
                    .iter()
                    .map(|&i| view.trustee_name(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        match (&decrypted.counts, contest) {
            (Ok(counts), Some(contest)) => {
                for (option, count) in contest.options.iter().zip(counts) {
                    let _ = writeln!(out, "  {option:<24} {count:>8}");
                }
            }
            (Err(why), _) => {
                let _ = writeln!(out, "  not decrypted yet: {why}");
            }
            (Ok(_), None) => {}
        }
    }
    Ok(out)
}

/// The published results beside the paper protocols, mismatches flagged.
pub fn results_table(view: &ElectionView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "election {:?} ({}), phase {}",
        view.election_id,
        view.manifest.title,
        view.phase().as_str_name()
    );
    for precinct in &view.manifest.precincts {
        let protocol = view
            .messages::<pb::PrecinctProtocol>()
            .find(|p| p.precinct_id == precinct.precinct_id);
        let _ = writeln!(out, "precinct {} ({})", precinct.precinct_id, precinct.name);
        for contest in &view.manifest.contests {
            let published = view.messages::<pb::ElectionResult>().find(|r| {
                r.precinct_id == precinct.precinct_id
                    && r.count
                        .as_ref()
                        .is_some_and(|c| c.contest_id == contest.contest_id)
            });
            let paper =
                protocol.and_then(|p| p.counts.iter().find(|c| c.contest_id == contest.contest_id));
            let _ = writeln!(
                out,
                "  {} — {} ballots counted",
                contest.title,
                published.map_or_else(|| "-".to_string(), |r| r.ballots_counted.to_string())
            );
            let _ = writeln!(
                out,
                "    {:<24} {:>10} {:>10}",
                "option", "electronic", "paper"
            );
            for (i, option) in contest.options.iter().enumerate() {
                let electronic = published
                    .and_then(|r| r.count.as_ref())
                    .and_then(|c| c.option_counts.get(i).copied());
                let on_paper = paper.and_then(|c| c.option_counts.get(i).copied());
                let cell = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
                let flag = match (electronic, on_paper) {
                    (Some(e), Some(p)) if e != p => "  <- MISMATCH",
                    _ => "",
                };
                let _ = writeln!(
                    out,
                    "    {option:<24} {:>10} {:>10}{flag}",
                    cell(electronic),
                    cell(on_paper)
                );
            }
        }
    }
    out
}

/// Re-checks the whole election from the board's leaves ([`verify_election`]). With a
/// cosignature policy, the root of the leaves read must also be the root of a k-of-n
/// cosigned checkpoint of that size.
pub async fn verify(
    client: &BoardClient,
    election_id: &str,
    min_size: u64,
) -> Result<ElectionReport> {
    let view = ElectionView::fetch(client, election_id, min_size).await?;
    let mut report = verify_election(&view.leaves, election_id).map_err(Error::Replay)?;
    if client.options().policy.is_some() {
        let checkpoint = client
            .checkpoint(Some(view.size()))
            .await
            .map_err(|source| Error::Checkpoint {
                size: view.size(),
                source: Box::new(source),
            })?;
        let cosigned = checkpoint.verified.map(|v| v.checkpoint.root);
        if cosigned != Some(report.root) {
            report.failures.push(AuditFailure {
                leaf_index: None,
                message: format!(
                    "the leaves read hash to root {}, not to the cosigned checkpoint's root",
                    report.root
                ),
            });
        }
    }
    Ok(report)
}
