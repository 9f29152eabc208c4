//! What the election authority and the precinct commissions post: the manifest, key
//! registrations, phase changes, the joint key, paper protocols and the results.

use bboard_ballot::dkg::{derive_key_set, PublicInfo};
use bboard_ballot::tally::{self, Tally};
use bboard_ballot::BallotError;
use bboard_client::{AppendResult, BoardClient};
use bboard_core::audit::ElectionRecord;
use bboard_core::pb::{self, entry_body::Kind, Phase};
use ed25519_dalek::SigningKey;

use crate::board::{post, ElectionView};
use crate::{Error, Result};

/// Posts the manifest: creates the election in phase SETUP.
pub async fn create_election(
    client: &BoardClient,
    authority: &SigningKey,
    election_id: &str,
    manifest: pb::ElectionManifest,
) -> Result<AppendResult> {
    post(
        client,
        authority,
        election_id,
        Kind::Manifest(manifest),
        "the election manifest",
    )
    .await
}

/// A key to register for an election.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
    /// Its role.
    pub role: pb::Role,
    /// Its precinct (terminals and commissions).
    pub precinct_id: String,
    /// Human label.
    pub label: String,
}

/// Registers a key for `election_id` (terminals and commissions scoped to a precinct).
pub async fn register_key(
    client: &BoardClient,
    authority: &SigningKey,
    election_id: &str,
    registration: &Registration,
) -> Result<AppendResult> {
    let needs_precinct = matches!(
        registration.role,
        pb::Role::Terminal | pb::Role::PrecinctCommission
    );
    if needs_precinct == registration.precinct_id.is_empty() {
        return Err(Error::RegistrationPrecinct {
            role: registration.role.as_str_name(),
            needs_precinct,
        });
    }
    post(
        client,
        authority,
        election_id,
        Kind::RegisterKey(pb::RegisterKey {
            public_key: registration.public_key.to_vec(),
            role: registration.role as i32,
            precinct_id: registration.precinct_id.clone(),
            label: registration.label.clone(),
        }),
        &if registration.label.is_empty() {
            format!(
                "the registration of key {} as {}",
                hex::encode(registration.public_key),
                registration.role.as_str_name()
            )
        } else {
            format!(
                "the registration of {:?} ({} as {})",
                registration.label,
                hex::encode(registration.public_key),
                registration.role.as_str_name()
            )
        },
    )
    .await
}

/// Moves the election to `phase` (the next one).
pub async fn change_phase(
    client: &BoardClient,
    authority: &SigningKey,
    election_id: &str,
    phase: Phase,
) -> Result<AppendResult> {
    post(
        client,
        authority,
        election_id,
        Kind::PhaseChange(pb::PhaseChange {
            phase: phase as i32,
        }),
        &format!("the change to phase {}", phase.as_str_name()),
    )
    .await
}

/// Derives the joint key from the ceremony's messages on the board and posts it.
pub async fn post_joint_key(
    client: &BoardClient,
    authority: &SigningKey,
    election_id: &str,
    min_size: u64,
) -> Result<(AppendResult, pb::JointKey)> {
    let view = ElectionView::fetch(client, election_id, min_size).await?;
    view.require_phase(Phase::KeyCeremony, "post the joint key")?;
    let joint = derive_from_board(&view)?;
    let posted = post(
        client,
        authority,
        election_id,
        Kind::JointKey(joint.clone()),
        "the joint key",
    )
    .await?;
    Ok((posted, joint))
}

/// Posts a precinct commission's paper protocol.
pub async fn post_protocol(
    client: &BoardClient,
    commission: &SigningKey,
    election_id: &str,
    protocol: pb::PrecinctProtocol,
) -> Result<AppendResult> {
    let what = format!("the paper protocol of {}", protocol.precinct_id);
    post(
        client,
        commission,
        election_id,
        Kind::PrecinctProtocol(protocol),
        &what,
    )
    .await
}

/// The decryption of one precinct × contest from the shares on the board.
#[derive(Clone, Debug)]
pub struct Decrypted {
    /// Precinct.
    pub precinct_id: String,
    /// Contest.
    pub contest_id: String,
    /// Ballots in the tally.
    pub ballots_counted: u64,
    /// Valid decryption shares posted, by trustee index.
    pub trustees: Vec<u32>,
    /// The counts, or why they cannot be decrypted (yet).
    pub counts: Result<Vec<u64>, BallotError>,
}

/// Tallies the cast ballots and combines the valid posted decryption shares of every
/// precinct × contest.
pub fn decrypt_all(record: &ElectionRecord) -> Result<Vec<Decrypted>> {
    let tally: Tally = record.tally().map_err(|source| Error::Crypto {
        doing: "tallying the cast ballots".to_string(),
        source: Box::new(source),
    })?;
    let Some(key_set) = &record.key_set else {
        return Err(Error::NoJointKey {
            election_id: record.election_id.clone(),
        });
    };
    let mut out = Vec::new();
    for (precinct_id, contest) in tally.iter() {
        let valid: Vec<pb::DecryptionShare> = record
            .shares_for(precinct_id, &contest.contest_id)
            .into_iter()
            .filter(|share| {
                tally::verify_decryption_share(
                    key_set,
                    &record.election_id,
                    precinct_id,
                    contest,
                    share,
                )
                .is_ok()
            })
            .cloned()
            .collect();
        let counts = tally::combine(key_set, &record.election_id, precinct_id, contest, &valid);
        out.push(Decrypted {
            precinct_id: precinct_id.to_string(),
            contest_id: contest.contest_id.clone(),
            ballots_counted: contest.ballots_counted,
            trustees: valid.iter().map(|s| s.trustee_index).collect(),
            counts,
        });
    }
    Ok(out)
}

/// Combines the posted decryption shares and posts the result of every precinct ×
/// contest that has none yet. Returns the results posted now.
pub async fn publish_results(
    client: &BoardClient,
    authority: &SigningKey,
    election_id: &str,
    min_size: u64,
) -> Result<Vec<(AppendResult, pb::ElectionResult)>> {
    let view = ElectionView::fetch(client, election_id, min_size).await?;
    view.require_phase(Phase::Tallying, "publish results")?;
    let record = ElectionRecord::from_leaves(&view.leaves, election_id).map_err(Error::Replay)?;
    let mut posted = Vec::new();
    for decrypted in decrypt_all(&record)? {
        let exists = record.results.iter().any(|(_, r)| {
            r.precinct_id == decrypted.precinct_id
                && r.count
                    .as_ref()
                    .is_some_and(|c| c.contest_id == decrypted.contest_id)
        });
        if exists {
            continue;
        }
        let counts = decrypted.counts.map_err(|source| Error::Undecryptable {
            trustees: decrypted
                .trustees
                .iter()
                .map(|&i| view.trustee_name(i))
                .collect(),
            precinct_id: decrypted.precinct_id.clone(),
            contest_id: decrypted.contest_id.clone(),
            source: Box::new(source),
        })?;
        let result = tally::result_message(
            &decrypted.precinct_id,
            &decrypted.contest_id,
            &counts,
            decrypted.ballots_counted,
        );
        let what = format!(
            "the result of {}/{}",
            decrypted.precinct_id, decrypted.contest_id
        );
        let receipt = post(
            client,
            authority,
            election_id,
            Kind::Result(result.clone()),
            &what,
        )
        .await?;
        posted.push((receipt, result));
    }
    Ok(posted)
}

/// Re-derives the joint key from the commitments and public infos on the board.
pub fn derive_from_board(view: &ElectionView) -> Result<pb::JointKey> {
    let threshold = view.threshold()?;
    let infos = view
        .messages::<pb::DkgPublicInfo>()
        .map(|m| PublicInfo::from_message(threshold, m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| view.crypto_error("a public info on the board", source))?;
    let commitments: Vec<pb::DkgCommitment> =
        view.messages::<pb::DkgCommitment>().cloned().collect();
    let key_set = derive_key_set(threshold, &commitments, &infos)
        .map_err(|source| view.crypto_error("deriving the joint key from the board", source))?;
    Ok(key_set.to_joint_key())
}
