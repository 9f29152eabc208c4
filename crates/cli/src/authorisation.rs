//! `bboard admin propose|countersign|submit`: membership changes signed by the admins
//! of a majority of organisations.
//!
//! A membership change (adding a learner, replacing the voters) takes effect only when
//! the board's latest `MembershipAuthorisation` is exactly that change, and the board
//! admits one only with signatures of admins of a strict majority of the organisations
//! its genesis names (docs/PROTOCOL.md §10). The leader checks it before proposing, and
//! every follower again before appending the Raft entry.
//!
//! The flow, across organisations:
//! 1. one admin writes the command file: `bboard admin --key A propose --out F …`;
//! 2. the others add their signatures: `bboard admin --key B countersign F`;
//! 3. any of them submits it: `bboard admin --endpoint E --key A submit F` posts the
//!    authorisation on the board, waits for its receipt, then asks the leader to make
//!    the change.
//!
//! The file is JSON: a description for the people signing it, and the
//! `MembershipAuthorisation` (protobuf, hex) whose `command` bytes every signature
//! covers. `countersign` prints the change it signs, decoded from those bytes (not the
//! description), so each signer sees what they sign.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::membership::{self, MembershipChange};
use bboard_core::pb;
use ed25519_dalek::SigningKey;
use prost::Message as _;

use crate::admin::{AdminRpcError, AdminSubcommand};

/// The change a proposal covers (`bboard admin propose …`).
#[derive(clap::Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum ProposedChange {
    /// Add a node as a learner, with the identity every member will pin.
    AddLearner {
        /// The new node's id (never reused).
        #[arg(long)]
        id: u64,
        /// The new node's public address, `HOST:PORT`.
        #[arg(long)]
        address: String,
        /// The new node's peer-port address, `HOST:PORT`.
        #[arg(long)]
        peer_address: String,
        /// `sha256:<hex>` of the new node's peer-port certificate (`bboard node init`
        /// prints it).
        #[arg(long)]
        tls_fingerprint: String,
    },
    /// Replace the voters.
    ChangeMembership {
        /// The new voters, comma separated: `1,2,3`.
        #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
        voters: Vec<u64>,
    },
}

impl ProposedChange {
    /// The change as the board records it.
    pub fn change(&self) -> MembershipChange {
        match self.clone() {
            ProposedChange::AddLearner {
                id,
                address,
                peer_address,
                tls_fingerprint,
            } => MembershipChange::AddLearner(pb::AddLearnerCommand {
                node_id: id,
                address,
                peer_address,
                tls_fingerprint,
            }),
            ProposedChange::ChangeMembership { voters } => {
                MembershipChange::ChangeMembership(pb::ChangeMembershipCommand {
                    voter_ids: voters,
                })
            }
        }
    }
}

/// The admin command the leader runs for an authorised change.
fn admin_command_of(change: &MembershipChange) -> AdminSubcommand {
    match change {
        MembershipChange::AddLearner(add) => AdminSubcommand::AddLearner {
            id: add.node_id,
            address: add.address.clone(),
            peer_address: Some(add.peer_address.clone()),
            tls_fingerprint: Some(add.tls_fingerprint.clone()),
        },
        MembershipChange::ChangeMembership(change) => AdminSubcommand::ChangeMembership {
            voters: change.voter_ids.clone(),
        },
    }
}

/// What the signers read.
pub fn describe(change: &MembershipChange) -> String {
    match change {
        MembershipChange::AddLearner(add) => format!(
            "add node {} as a learner: public address {}, peer address {}, TLS certificate {}",
            add.node_id, add.address, add.peer_address, add.tls_fingerprint
        ),
        MembershipChange::ChangeMembership(change) => {
            format!("make the voters exactly {:?}", change.voter_ids)
        }
    }
}

/// The command file.
#[derive(serde::Serialize, serde::Deserialize)]
struct CommandFile {
    /// For the people signing it; the signatures cover `authorisation`'s command.
    description: String,
    /// Public keys (hex) that signed so far.
    signed_by: Vec<String>,
    /// The `MembershipAuthorisation`, protobuf, hex.
    authorisation: String,
}

/// A new authorisation of `change`, signed by `key`, stamped with this machine's clock.
pub fn propose(change: &MembershipChange, key: &SigningKey) -> pb::MembershipAuthorisation {
    use pb::admin_command::Command;
    let command = pb::AdminCommand {
        issued_unix_ms: bboard_util::clock::now_unix_ms(),
        // An authorisation is for the cluster, not for one node.
        node_id: 0,
        command: Some(match change {
            MembershipChange::AddLearner(add) => Command::AddLearner(add.clone()),
            MembershipChange::ChangeMembership(c) => Command::ChangeMembership(c.clone()),
        }),
    };
    membership::authorise(&command, key)
}

/// Writes `authorisation` to `path` (atomically: a temporary file renamed).
pub fn write_file(path: &Path, authorisation: &pb::MembershipAuthorisation) -> Result<()> {
    let (_, change) = membership::change_of(authorisation).context("the authorisation")?;
    let signed_by = membership::verified_signers(authorisation)
        .context("the authorisation's signatures")?
        .iter()
        .map(hex::encode)
        .collect();
    let file = CommandFile {
        description: describe(&change),
        signed_by,
        authorisation: hex::encode(authorisation.encode_to_vec()),
    };
    let text = serde_json::to_string_pretty(&file)?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text + "\n")
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a command file; every signature in it must verify.
pub fn read_file(path: &Path) -> Result<(pb::MembershipAuthorisation, MembershipChange)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: CommandFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a membership command file", path.display()))?;
    let bytes = hex::decode(file.authorisation.trim())
        .with_context(|| format!("{}: the authorisation is not hex", path.display()))?;
    let authorisation = pb::MembershipAuthorisation::decode(bytes.as_slice())
        .with_context(|| format!("{}: the authorisation does not decode", path.display()))?;
    let (_, change) = membership::change_of(&authorisation)
        .with_context(|| format!("{}: the authorised command", path.display()))?;
    membership::verified_signers(&authorisation)
        .with_context(|| format!("{}: a signature does not verify", path.display()))?;
    Ok((authorisation, change))
}

/// Posts `authorisation` on the board through `endpoint` (an envelope signed by `key`,
/// an organisation's admin key), then asks the leader to make the change; returns the
/// leader's message.
pub async fn submit(
    endpoint: &str,
    key: &SigningKey,
    authorisation: &pb::MembershipAuthorisation,
    timeout: Duration,
) -> Result<String> {
    let (_, change) = membership::change_of(authorisation)?;
    let body = pb::EntryBody {
        election_id: String::new(),
        created_unix_ms: bboard_util::clock::now_unix_ms(),
        kind: Some(pb::entry_body::Kind::MembershipAuthorisation(
            authorisation.clone(),
        )),
    };
    let envelope = SignedEnvelope::sign_body(&body, key);
    let posting = timeout.min(Duration::from_secs(15));
    match crate::node_cmds::append_with_retry(endpoint, &envelope, posting).await {
        Ok(response) => {
            let index = response.receipt.map(|r| r.leaf_index).unwrap_or_default();
            println!(
                "authorisation on the board at index {index}: {}",
                describe(&change)
            );
        }
        // No cosigned receipt yet (e.g. a lone voter whose peers are not members yet):
        // the leader's own board decides below. A refusal by the board's rules is
        // final and stops here.
        Err(error)
            if error
                .downcast_ref::<tonic::Status>()
                .is_some_and(|s| s.code() == tonic::Code::Unavailable) =>
        {
            println!(
                "authorisation sent, without a k-of-n receipt yet ({error:#}): {}",
                describe(&change)
            );
        }
        Err(error) => return Err(error).context("the board refused the membership authorisation"),
    }
    // The leader may apply the entry a moment after the node that answered.
    let started = tokio::time::Instant::now();
    loop {
        match crate::node_cmds::send_to_leader(endpoint, key, &admin_command_of(&change), timeout)
            .await
        {
            Err(error)
                if error.downcast_ref::<AdminRpcError>().is_some_and(|e| {
                    e.code == tonic::Code::FailedPrecondition
                        && e.to_string().contains("membership authorisation")
                }) && started.elapsed() < posting =>
            {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            other => return other,
        }
    }
}

/// Proposes `change` with `key`, countersigns it with each of `countersigners`, and
/// submits it (for a drill or a rebuild where every organisation's admin is at hand).
pub async fn authorise_and_submit(
    endpoint: &str,
    key: &SigningKey,
    countersigners: &[SigningKey],
    change: &MembershipChange,
    timeout: Duration,
) -> Result<String> {
    let mut authorisation = propose(change, key);
    for countersigner in countersigners {
        membership::countersign(&mut authorisation, countersigner);
    }
    submit(endpoint, key, &authorisation, timeout).await
}

/// `bboard admin propose`.
pub fn run_propose(key: &SigningKey, change: &ProposedChange, out: &Path) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists: choose another file (a command file is signed once per change)",
            out.display()
        );
    }
    let change = change.change();
    let authorisation = propose(&change, key);
    write_file(out, &authorisation)?;
    println!(
        "wrote {}: {}\nsigned by 1 admin; the admins of a majority of organisations must sign it (bboard admin --key … countersign {}), then submit it",
        out.display(),
        describe(&change),
        out.display()
    );
    Ok(())
}

/// `bboard admin countersign`.
pub fn run_countersign(key: &SigningKey, file: &Path) -> Result<()> {
    let (mut authorisation, change) = read_file(file)?;
    membership::countersign(&mut authorisation, key);
    write_file(file, &authorisation)?;
    println!(
        "countersigned {}: {}\nsigned by {} admin keys",
        file.display(),
        describe(&change),
        authorisation.signatures.len()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_command_file_round_trips_and_refuses_a_changed_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("change.json");
        let (a, b) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        );
        let change = ProposedChange::ChangeMembership { voters: vec![1, 2] };
        run_propose(&a, &change, &path).unwrap();
        assert!(
            run_propose(&a, &change, &path).is_err(),
            "never overwritten"
        );
        run_countersign(&b, &path).unwrap();
        let (authorisation, read) = read_file(&path).unwrap();
        assert_eq!(read, change.change());
        assert_eq!(
            membership::verified_signers(&authorisation).unwrap().len(),
            2
        );

        // Editing the command behind the signers' backs spoils the file.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut file: CommandFile = serde_json::from_str(&text).unwrap();
        let mut edited = authorisation.clone();
        let mut command = pb::AdminCommand::decode(edited.command.as_slice()).unwrap();
        command.command = Some(pb::admin_command::Command::ChangeMembership(
            pb::ChangeMembershipCommand { voter_ids: vec![1] },
        ));
        edited.command = command.encode_to_vec();
        file.authorisation = hex::encode(edited.encode_to_vec());
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let error = read_file(&path).unwrap_err();
        assert!(
            format!("{error:#}").contains("does not verify"),
            "{error:#}"
        );
    }
}
