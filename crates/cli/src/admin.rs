//! `bboard admin`: signed operator commands sent to a node's `bboard.v1.Admin` service.
//!
//! Each invocation builds one `AdminCommand` stamped with this machine's clock, signs it
//! with the admin key (`"bboard/v1/admin\n" || body`) and sends it once. The node refuses
//! a request whose timestamp is more than its allowed skew (60 s by default) from its own
//! clock, and any request it has already seen: re-running the command signs a fresh one.
//!
//! Every command names the node it is for (`AdminCommand.node_id`), and a node refuses
//! a command for another node (`PermissionDenied`), so a signed request cannot be
//! replayed against another node of the cluster. The id is `--node-id` when given,
//! else the one the endpoint reports in `Board.Status` (one extra RPC before the
//! command); pinning it with `--node-id` means a command sent to the wrong address is
//! refused instead of run on whatever node answers there.
//!
//! Membership commands (`add-learner`, `change-membership`) must go to the leader; a
//! follower answers `FailedPrecondition` naming the leader's id and address.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bboard_core::admin::sign_admin_command;
use bboard_core::pb;
use bboard_core::pb::admin_command::Command;
use bboard_proto::v1::admin_client::AdminClient;
use bboard_proto::v1::board_client::BoardClient;
use ed25519_dalek::SigningKey;
use tonic::transport::{Channel, Endpoint};

/// Sends a signed admin command to a node.
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The node's gRPC endpoint, `HOST:PORT` (or an `http://` URL); every command but
    /// `propose` and `countersign` needs it.
    #[arg(long)]
    endpoint: Option<String>,
    /// Admin private key file (hex seed, as written by `bboard keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The id of the node the command is for; the node refuses a command for another
    /// node. Default: the id the endpoint reports (`Board.Status`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    node_id: Option<u64>,
    /// Give up after this many seconds (`add-learner` waits for the learner to catch up).
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    #[command(subcommand)]
    command: AdminAction,
}

/// What `bboard admin` does: one signed RPC, or a step of a membership authorisation.
#[derive(clap::Subcommand, Clone, Debug, PartialEq, Eq)]
enum AdminAction {
    #[command(flatten)]
    Rpc(AdminSubcommand),
    /// Writes a membership change signed by this admin to a command file, for the
    /// admins of the other organisations to countersign.
    Propose {
        #[command(subcommand)]
        change: crate::authorisation::ProposedChange,
        /// The command file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Adds this admin's signature to a command file.
    Countersign {
        /// The command file.
        file: PathBuf,
    },
    /// Posts a command file's authorisation on the board, then asks the leader to
    /// make the change.
    Submit {
        /// The command file, signed by admins of a majority of organisations.
        file: PathBuf,
    },
}

#[derive(clap::Subcommand, Clone, Debug, PartialEq, Eq)]
pub(crate) enum AdminSubcommand {
    /// Adds a node as a non-voting learner and waits until it has caught up (the
    /// board's latest membership authorisation must be this change: see `propose`).
    AddLearner {
        /// The new node's id (never reused).
        #[arg(long)]
        id: u64,
        /// The new node's public address, `HOST:PORT` (Board API; clients are sent there).
        #[arg(long)]
        address: String,
        /// The new node's peer-port address, `HOST:PORT` (Raft, cosigning). Omit it,
        /// with --tls-fingerprint, when the leader's config lists the node.
        #[arg(long, requires = "tls_fingerprint")]
        peer_address: Option<String>,
        /// `sha256:<hex>` of the new node's peer-port certificate (`bboard node init`
        /// prints it); every member then admits the node with exactly this certificate.
        #[arg(long, requires = "peer_address")]
        tls_fingerprint: Option<String>,
    },
    /// Replaces the set of voters (each must already be a member, e.g. a learner; the
    /// board's latest membership authorisation must be this change: see `propose`).
    ChangeMembership {
        /// The new voters, comma separated: `1,2,3`.
        #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
        voters: Vec<u64>,
    },
    /// Makes the node build a snapshot of its state now.
    Snapshot,
    /// Makes the node start an election now (useful when the leader is gone).
    Campaign(CampaignArgs),
}

/// Options of `campaign` (`bboard admin campaign`, `bboard node campaign`).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct CampaignArgs {
    /// Also refuse to follow a leader (e.g. one that censors entries): once a majority
    /// of organisations do this on their nodes, it is replaced.
    #[arg(long)]
    pub depose: bool,
    /// The leader to depose (its node id); default: whichever the node follows now.
    /// Name it when several organisations act at once, so that a node that already
    /// follows a new leader does not depose that one.
    #[arg(long, requires = "depose")]
    pub leader: Option<u64>,
    /// How long to refuse the deposed leader, in seconds.
    #[arg(long, default_value_t = 600)]
    pub distrust_secs: u64,
}

/// Which RPC a subcommand calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    AddLearner,
    ChangeMembership,
    TriggerSnapshot,
    Campaign,
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rpc::AddLearner => "AddLearner",
            Rpc::ChangeMembership => "ChangeMembership",
            Rpc::TriggerSnapshot => "TriggerSnapshot",
            Rpc::Campaign => "Campaign",
        })
    }
}

/// The RPC and the unsigned command of a subcommand for node `node_id`, issued at
/// `now_unix_ms`.
fn build_command(
    command: &AdminSubcommand,
    node_id: u64,
    now_unix_ms: u64,
) -> (Rpc, pb::AdminCommand) {
    let (rpc, command) = match command {
        AdminSubcommand::AddLearner {
            id,
            address,
            peer_address,
            tls_fingerprint,
        } => (
            Rpc::AddLearner,
            Command::AddLearner(pb::AddLearnerCommand {
                node_id: *id,
                address: address.clone(),
                peer_address: peer_address.clone().unwrap_or_default(),
                tls_fingerprint: tls_fingerprint.clone().unwrap_or_default(),
            }),
        ),
        AdminSubcommand::ChangeMembership { voters } => (
            Rpc::ChangeMembership,
            Command::ChangeMembership(pb::ChangeMembershipCommand {
                voter_ids: voters.clone(),
            }),
        ),
        AdminSubcommand::Snapshot => (
            Rpc::TriggerSnapshot,
            Command::TriggerSnapshot(pb::TriggerSnapshotCommand {}),
        ),
        AdminSubcommand::Campaign(campaign) => (
            Rpc::Campaign,
            Command::Campaign(pb::CampaignCommand {
                depose_leader: campaign.depose,
                distrust_ms: campaign.distrust_secs.saturating_mul(1000),
                leader_id: campaign.leader.unwrap_or(0),
            }),
        ),
    };
    (
        rpc,
        pb::AdminCommand {
            issued_unix_ms: now_unix_ms,
            command: Some(command),
            node_id,
        },
    )
}

/// `http://HOST:PORT` for a bare `HOST:PORT`; URLs are kept.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// A node refused an admin RPC (or the call failed in transit).
#[derive(Debug)]
pub(crate) struct AdminRpcError {
    rpc: Rpc,
    url: String,
    /// The gRPC status code.
    pub(crate) code: tonic::Code,
    message: String,
}

impl std::fmt::Display for AdminRpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} failed: {:?}: {}",
            self.rpc, self.url, self.code, self.message
        )
    }
}

impl std::error::Error for AdminRpcError {}

/// Runs `bboard admin` on its own Tokio runtime.
pub fn run(args: AdminArgs) -> Result<()> {
    let key = crate::keys::read_private_key(&args.key)?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let endpoint = || {
        args.endpoint
            .as_deref()
            .context("--endpoint HOST:PORT is required for this command")
    };
    let message = match &args.command {
        AdminAction::Propose { change, out } => {
            return crate::authorisation::run_propose(&key, change, out)
        }
        AdminAction::Countersign { file } => {
            return crate::authorisation::run_countersign(&key, file)
        }
        AdminAction::Submit { file } => {
            let (authorisation, _) = crate::authorisation::read_file(file)?;
            let endpoint = endpoint()?;
            crate::node_cmds::runtime()?.block_on(crate::authorisation::submit(
                endpoint,
                &key,
                &authorisation,
                timeout,
            ))?
        }
        AdminAction::Rpc(command) => {
            let endpoint = endpoint()?;
            crate::node_cmds::runtime()?.block_on(send_to(
                endpoint,
                &key,
                command,
                timeout,
                args.node_id,
            ))?
        }
    };
    println!("{message}");
    Ok(())
}

/// Signs `command` (stamped with this machine's clock) with `key` for the node at
/// `endpoint`, whose id is asked from it (`Board.Status`), and sends it once; returns
/// the node's message. See [`send_to`].
pub(crate) async fn send(
    endpoint: &str,
    key: &SigningKey,
    command: &AdminSubcommand,
    timeout: Duration,
) -> Result<String> {
    send_to(endpoint, key, command, timeout, None).await
}

/// Signs `command` (stamped with this machine's clock) with `key` for node `node_id`
/// (`None`: the id the endpoint reports in `Board.Status`) and sends it once to the
/// node at `endpoint`; returns the node's message. A refusal is an [`AdminRpcError`]
/// (downcast it to read the gRPC code); a node that is not `node_id` refuses with
/// `PermissionDenied`.
pub(crate) async fn send_to(
    endpoint: &str,
    key: &SigningKey,
    command: &AdminSubcommand,
    timeout: Duration,
    node_id: Option<u64>,
) -> Result<String> {
    let url = endpoint_url(endpoint);
    let channel = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let node_id = match node_id {
        Some(id) => id,
        None => node_id_of(channel.clone(), &url, timeout).await?,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?;
    let now_unix_ms = u64::try_from(now.as_millis()).context("system clock out of range")?;
    let (rpc, command) = build_command(command, node_id, now_unix_ms);
    let request = sign_admin_command(&command, key);
    let mut client = AdminClient::new(channel);
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    let result = match rpc {
        Rpc::AddLearner => client.add_learner(request).await,
        Rpc::ChangeMembership => client.change_membership(request).await,
        Rpc::TriggerSnapshot => client.trigger_snapshot(request).await,
        Rpc::Campaign => client.campaign(request).await,
    };
    match result {
        Ok(response) => Ok(response.into_inner().message),
        Err(status) => Err(AdminRpcError {
            rpc,
            url,
            code: status.code(),
            message: status.message().to_string(),
        }
        .into()),
    }
}

/// The node id the node behind `channel` (at `url`) reports in `Board.Status`.
async fn node_id_of(channel: Channel, url: &str, timeout: Duration) -> Result<u64> {
    let mut request = tonic::Request::new(pb::StatusRequest {});
    request.set_timeout(timeout);
    let status = BoardClient::new(channel)
        .status(request)
        .await
        .map_err(|status| {
            anyhow::anyhow!(
                "Status on {url} failed: {:?}: {} (pass --node-id to name the node \
                 without asking it)",
                status.code(),
                status.message()
            )
        })?
        .into_inner();
    if status.node_id == 0 {
        anyhow::bail!("the node at {url} reports no node id (0); pass --node-id");
    }
    Ok(status.node_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_args::parse_args;

    fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
        let base = [
            "bboard",
            "--endpoint",
            "127.0.0.1:7001",
            "--key",
            "admin.key",
        ];
        let argv: Vec<&str> = base.iter().chain(args).copied().collect();
        parse_args(&argv)
    }

    /// The RPC subcommand of parsed arguments.
    fn rpc_of(args: &AdminArgs) -> &AdminSubcommand {
        match &args.command {
            AdminAction::Rpc(command) => command,
            other => panic!("not an RPC: {other:?}"),
        }
    }

    #[test]
    fn admin_parses_subcommands_into_signed_commands() {
        let args = parse(&["add-learner", "--id", "4", "--address", "10.0.0.4:7000"]).unwrap();
        assert_eq!(args.endpoint.as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(args.node_id, None);
        let (rpc, cmd) = build_command(rpc_of(&args), 7, 123);
        assert_eq!(rpc, Rpc::AddLearner);
        assert_eq!(cmd.issued_unix_ms, 123);
        assert_eq!(cmd.node_id, 7, "the command names its target node");
        assert_eq!(
            cmd.command,
            Some(Command::AddLearner(pb::AddLearnerCommand {
                node_id: 4,
                address: "10.0.0.4:7000".into(),
                ..Default::default()
            }))
        );
        let args = parse(&[
            "add-learner",
            "--id",
            "4",
            "--address",
            "10.0.0.4:7000",
            "--peer-address",
            "10.0.0.4:7100",
            "--tls-fingerprint",
            "sha256:ab",
        ])
        .unwrap();
        let (_, cmd) = build_command(rpc_of(&args), 7, 123);
        let Some(Command::AddLearner(add)) = cmd.command else {
            panic!("not an AddLearner command");
        };
        assert_eq!(
            (add.peer_address.as_str(), add.tls_fingerprint.as_str()),
            ("10.0.0.4:7100", "sha256:ab")
        );
        assert!(
            parse(&[
                "add-learner",
                "--id",
                "4",
                "--address",
                "a:1",
                "--peer-address",
                "a:2"
            ])
            .is_err(),
            "a peer address without its fingerprint"
        );

        let args = parse(&["change-membership", "--voters", "1,2,3"]).unwrap();
        let (rpc, cmd) = build_command(rpc_of(&args), 2, 1);
        assert_eq!(rpc, Rpc::ChangeMembership);
        assert_eq!(cmd.node_id, 2);
        assert_eq!(
            cmd.command,
            Some(Command::ChangeMembership(pb::ChangeMembershipCommand {
                voter_ids: vec![1, 2, 3]
            }))
        );

        let args = parse(&["snapshot"]).unwrap();
        assert_eq!(build_command(rpc_of(&args), 1, 1).0, Rpc::TriggerSnapshot);
        let args = parse(&["campaign"]).unwrap();
        assert_eq!(build_command(rpc_of(&args), 1, 1).0, Rpc::Campaign);

        assert!(parse(&["change-membership"]).is_err());
        assert!(parse(&["change-membership", "--voters", "1,x"]).is_err());
        assert!(parse(&["add-learner", "--id", "4"]).is_err());
    }

    #[test]
    fn admin_node_id_is_optional_and_never_zero() {
        let args = parse(&["--node-id", "3", "snapshot"]).unwrap();
        assert_eq!(args.node_id, Some(3));
        assert!(parse(&["--node-id", "0", "snapshot"]).is_err());
        assert!(parse(&["--node-id", "x", "snapshot"]).is_err());
    }

    #[test]
    fn admin_endpoint_urls() {
        assert_eq!(endpoint_url("10.0.0.1:7000"), "http://10.0.0.1:7000");
        assert_eq!(endpoint_url("http://a:1"), "http://a:1");
        assert_eq!(endpoint_url("https://a:1"), "https://a:1");
    }

    #[test]
    fn admin_unreachable_node_is_an_error_with_context() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("admin.key");
        crate::keys::write_private_key(&key_file, &crate::keys::generate_key()).unwrap();
        let mut args = parse(&["snapshot"]).unwrap();
        args.key = key_file;
        // Nothing listens on port 1.
        args.endpoint = Some("127.0.0.1:1".into());
        let err = run(args).unwrap_err();
        assert!(
            format!("{err:#}").contains("connecting to http://127.0.0.1:1"),
            "{err:#}"
        );
    }
}
