//! `bboard node init|run|rebuild|campaign`, `bboard genesis` and `bboard devcluster`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bboard_core::checkpoint::NoteSigner;
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_node::config::{NodeConfig, PeerConfig};
use bboard_node::peer::TlsIdentity;
use bboard_node::runtime::start;
use bboard_proto::v1::board_client::BoardClient;
use ed25519_dalek::SigningKey;

use crate::admin::{AdminRpcError, AdminSubcommand};
use crate::keys::{generate_key, read_private_key, write_private_key};
use bboard_core::membership::MembershipChange;

#[derive(clap::Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(clap::Subcommand)]
enum NodeCommand {
    /// Creates a node directory: signing key, admin key and config.toml.
    Init(InitArgs),
    /// Runs a node until Ctrl-C or SIGTERM.
    Run {
        /// The node's config.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Rebuilds a node whose store was found edited or corrupt: removes its old id
    /// from the voters, moves its data aside, gives it a new id and has it rejoin
    /// from its peers (see docs/OPERATIONS.md).
    Rebuild(RebuildArgs),
    /// Makes a node start an election now; with `--depose`, it also refuses to
    /// follow the current leader (same as `bboard admin campaign`).
    Campaign {
        /// The node's gRPC endpoint, `HOST:PORT`.
        #[arg(long)]
        endpoint: String,
        /// Admin private key file (hex seed).
        #[arg(long)]
        admin_key: PathBuf,
        #[command(flatten)]
        campaign: crate::admin::CampaignArgs,
    },
}

#[derive(clap::Args)]
struct RebuildArgs {
    /// The broken node's config.toml (rewritten with the new id; the old one is kept
    /// beside it as `config.toml.before-rebuild-<unix time>`).
    #[arg(long)]
    config: PathBuf,
    /// The node's new Raft id: ids are never reused, so it must differ from every id
    /// in the config's peers.
    #[arg(long)]
    new_node_id: u64,
    /// A healthy node's gRPC endpoint (the leader is found from it).
    #[arg(long)]
    endpoint: String,
    /// Admin private key file (hex seed) accepted by the cluster: this organisation's
    /// admin, registered on the board by the genesis.
    #[arg(long)]
    admin_key: PathBuf,
    /// Admin key files of other organisations, countersigning each of the three
    /// membership changes (a majority of organisations must sign them). Without
    /// enough of them the board refuses the first change and nothing is touched;
    /// prepare the changes with `bboard admin propose|countersign|submit` instead.
    #[arg(long = "countersign-key")]
    countersign_keys: Vec<PathBuf>,
    /// Voters after the old id is removed, comma separated (default: every peer id
    /// of the config except the old one).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    voters: Option<Vec<u64>>,
    /// Start the node in this process and keep running it after it rejoined
    /// (otherwise start it yourself with `bboard node run`; this command waits).
    #[arg(long)]
    run: bool,
    /// How long to wait for the node to answer and for each membership step.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Directory to create (must not exist or be empty).
    #[arg(long)]
    dir: PathBuf,
    /// Node key name, e.g. cec-node-1 (no spaces or '+').
    #[arg(long)]
    name: String,
    /// Organisation running the node.
    #[arg(long, default_value = "")]
    org: String,
    /// Raft node id, unique in the cluster and never reused.
    #[arg(long, default_value_t = 1)]
    node_id: u64,
    /// Public listen address: Board API (gRPC), HTTP/JSON, Admin.
    #[arg(long, default_value = "127.0.0.1:7101")]
    listen: SocketAddr,
    /// Public address clients and other nodes use (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Peer listen address: Raft and cosigning, mutual TLS with configured peers only
    /// (default: the listen address with its port + 100).
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Peer address other nodes use (default: the advertised host with the peer
    /// listen port).
    #[arg(long)]
    peer_advertise: Option<String>,
    /// Board origin.
    #[arg(long, default_value = "bboard.local/election")]
    origin: String,
}

/// Everything `init` writes for one node.
pub(crate) struct InitializedNode {
    pub(crate) config: NodeConfig,
    pub(crate) config_path: PathBuf,
    pub(crate) admin_key: SigningKey,
}

/// Where a node listens and how others reach it.
pub(crate) struct NodeAddresses {
    /// Public listen address.
    listen: SocketAddr,
    /// Public address others use.
    advertise: String,
    /// Peer listen address.
    peer_listen: SocketAddr,
    /// Peer address others use.
    peer_advertise: String,
}

impl NodeAddresses {
    /// The addresses `init` uses: the given ones, else defaults derived from `listen`
    /// (peer port = public port + 100).
    fn with_defaults(
        listen: SocketAddr,
        advertise: Option<String>,
        peer_listen: Option<SocketAddr>,
        peer_advertise: Option<String>,
    ) -> Result<Self> {
        let advertise = advertise.unwrap_or_else(|| listen.to_string());
        let peer_listen = match peer_listen {
            Some(address) => address,
            None => {
                let port = listen.port().checked_add(100).with_context(|| {
                    format!("--listen port {} leaves no room for the default peer port (+100); give --peer-listen", listen.port())
                })?;
                SocketAddr::new(listen.ip(), port)
            }
        };
        let peer_advertise = match peer_advertise {
            Some(address) => address,
            None => {
                let (host, _) = advertise
                    .rsplit_once(':')
                    .with_context(|| format!("--advertise {advertise:?} is not host:port"))?;
                format!("{host}:{}", peer_listen.port())
            }
        };
        Ok(NodeAddresses {
            listen,
            advertise,
            peer_listen,
            peer_advertise,
        })
    }

    /// Both ports on 127.0.0.1, advertised as bound.
    pub(crate) fn loopback(port: u16, peer_port: u16) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let peer_listen = SocketAddr::from(([127, 0, 0, 1], peer_port));
        NodeAddresses {
            listen,
            advertise: listen.to_string(),
            peer_listen,
            peer_advertise: peer_listen.to_string(),
        }
    }
}

pub(crate) fn init_node(
    dir: &Path,
    name: &str,
    org: &str,
    node_id: u64,
    addresses: NodeAddresses,
    origin: &str,
) -> Result<InitializedNode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = generate_key();
    let signer = NoteSigner::new(name, key.clone()).context("invalid node name")?;
    write_private_key(&dir.join("node.key"), &key)?;
    let tls = TlsIdentity::generate(node_id).context("making the peer TLS certificate")?;
    tls.write(&dir.join("tls.crt"), &dir.join("tls.key"))
        .context("writing the peer TLS certificate")?;
    let admin_key = generate_key();
    write_private_key(&dir.join("admin.key"), &admin_key)?;
    let config = NodeConfig {
        node_id,
        name: name.to_string(),
        organisation: org.to_string(),
        origin: origin.to_string(),
        data_dir: PathBuf::from("data"),
        key_file: PathBuf::from("node.key"),
        listen: addresses.listen,
        peer_listen: addresses.peer_listen,
        tls_certificate_file: PathBuf::from("tls.crt"),
        tls_key_file: PathBuf::from("tls.key"),
        admin_keys: vec![hex::encode(admin_key.verifying_key().as_bytes())],
        cosign_threshold: None,
        initial_voters: vec![node_id],
        peers: vec![PeerConfig {
            id: node_id,
            address: addresses.advertise,
            peer_address: addresses.peer_advertise,
            tls_fingerprint: tls.fingerprint().to_string(),
            verifier_key: signer.verifier().to_string(),
            organisation: org.to_string(),
        }],
        raft: Default::default(),
        limits: Default::default(),
        witnesses: Vec::new(),
        witness_threshold: None,
    };
    let config_path = dir.join("config.toml");
    write_config(&config_path, &config)?;
    Ok(InitializedNode {
        config,
        config_path,
        admin_key,
    })
}

pub(crate) fn write_config(path: &Path, config: &NodeConfig) -> Result<()> {
    let text = format!(
        "# bboard node configuration. Paths are relative to this file.\n\
         # `peers` lists every node of the cluster (this one included); all nodes of a\n\
         # new cluster list the same `initial_voters`.\n{}",
        config.to_toml()?
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: NodeArgs) -> Result<()> {
    match args.command {
        NodeCommand::Init(args) => {
            let addresses = NodeAddresses::with_defaults(
                args.listen,
                args.advertise,
                args.peer_listen,
                args.peer_advertise,
            )?;
            let node = init_node(
                &args.dir,
                &args.name,
                &args.org,
                args.node_id,
                addresses,
                &args.origin,
            )?;
            println!("node initialised in {}", args.dir.display());
            println!("  config:        {}", node.config_path.display());
            println!("  verifier key:  {}", node.config.peers[0].verifier_key);
            println!("  peer address:  {}", node.config.peers[0].peer_address);
            println!(
                "  tls fingerprint: {}",
                node.config.peers[0].tls_fingerprint
            );
            println!(
                "  admin key:     {} (public {})",
                args.dir.join("admin.key").display(),
                hex::encode(node.admin_key.verifying_key().as_bytes())
            );
            println!("Share the verifier key, peer address and TLS fingerprint with the other organisations; list every node under [[peers]].");
            Ok(())
        }
        NodeCommand::Rebuild(args) => rebuild(args),
        NodeCommand::Campaign {
            endpoint,
            admin_key,
            campaign,
        } => {
            let key = read_private_key(&admin_key)?;
            let command = AdminSubcommand::Campaign(campaign);
            let message = runtime()?.block_on(crate::admin::send(
                &endpoint,
                &key,
                &command,
                Duration::from_secs(30),
            ))?;
            println!("{message}");
            Ok(())
        }
        NodeCommand::Run { config } => {
            let config = NodeConfig::load(&config)?;
            runtime()?.block_on(async {
                let node = start(config).await?;
                println!(
                    "node {} serving gRPC on {}",
                    node.shared.config.node_id, node.local_addr
                );
                wait_for_stop_signal().await;
                println!("stopping");
                node.shutdown().await;
                Ok(())
            })
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The new configuration of a rebuilt node: `new_id` instead of the old id (same
/// address, key and organisation), no initial voters (it joins as a learner).
/// `raw` is the configuration as written (relative paths kept).
fn rebuilt_config(raw: &NodeConfig, new_id: u64) -> Result<NodeConfig> {
    let old_id = raw.node_id;
    if new_id == old_id {
        bail!("the new node id must differ from the old one ({old_id}): ids are never reused");
    }
    if raw.peers.iter().any(|p| p.id == new_id) {
        bail!("node id {new_id} is already listed in peers: ids are never reused");
    }
    let mut config = raw.clone();
    config.node_id = new_id;
    config.initial_voters.clear();
    for peer in &mut config.peers {
        if peer.id == old_id {
            peer.id = new_id;
        }
    }
    config
        .validate()
        .context("the rebuilt configuration is invalid")?;
    Ok(config)
}

/// Asks the node at `endpoint` who leads; returns the leader's address (or
/// `endpoint` itself when it leads or does not know).
async fn leader_address(endpoint: &str) -> Result<String> {
    let mut client = BoardClient::connect(format!("http://{endpoint}"))
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let status = client
        .status(pb::StatusRequest {})
        .await
        .with_context(|| format!("status of {endpoint}"))?
        .into_inner();
    Ok(
        if status.leader_address.is_empty() || status.role == "leader" {
            endpoint.to_string()
        } else {
            status.leader_address
        },
    )
}

/// Sends an admin command to the current leader (found from `endpoint`), retrying
/// while leadership moves; returns the leader's message.
pub(crate) async fn send_to_leader(
    endpoint: &str,
    key: &SigningKey,
    command: &AdminSubcommand,
    timeout: Duration,
) -> Result<String> {
    let started = tokio::time::Instant::now();
    loop {
        let leader = leader_address(endpoint).await?;
        match crate::admin::send(&leader, key, command, timeout).await {
            Ok(message) => return Ok(message),
            Err(error)
                if error
                    .downcast_ref::<AdminRpcError>()
                    .is_some_and(|e| e.code == tonic::Code::FailedPrecondition)
                    && started.elapsed() < timeout =>
            {
                tracing::info!(%error, "not the leader any more; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Waits until the node at `address` answers as node `id`.
async fn wait_for_node(address: &str, id: u64, timeout: Duration) -> Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let answered = async {
            let mut client = BoardClient::connect(format!("http://{address}")).await?;
            let status = client.status(pb::StatusRequest {}).await?.into_inner();
            anyhow::Ok(status.node_id)
        };
        if let Ok(Ok(node_id)) = tokio::time::timeout(Duration::from_secs(2), answered).await {
            if node_id == id {
                return Ok(());
            }
        }
        if started.elapsed() > timeout {
            bail!("node {id} did not answer on {address} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `bboard node rebuild`: see [`NodeCommand::Rebuild`] and docs/OPERATIONS.md.
fn rebuild(args: RebuildArgs) -> Result<()> {
    // Load (resolved paths, validated) and raw (as written, to rewrite).
    let config = NodeConfig::load(&args.config)?;
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let raw: NodeConfig =
        toml::from_str(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let old_id = config.node_id;
    let new_config = rebuilt_config(&raw, args.new_node_id)?;
    let own = config
        .own_peer()
        .cloned()
        .context("the node is not listed in its own peers")?;
    let address = own.address.clone();
    let voters: Vec<u64> = match args.voters {
        Some(voters) => voters,
        None => config
            .peers
            .iter()
            .map(|p| p.id)
            .filter(|id| *id != old_id)
            .collect(),
    };
    if voters.is_empty() || voters.contains(&old_id) || voters.contains(&args.new_node_id) {
        bail!(
            "--voters must be the remaining voters, without node {old_id} or {}",
            args.new_node_id
        );
    }
    let key = read_private_key(&args.admin_key)?;
    let countersigners = args
        .countersign_keys
        .iter()
        .map(|path| read_private_key(path))
        .collect::<Result<Vec<_>>>()?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let runtime = runtime()?;
    let authorised = |change: MembershipChange| {
        let (endpoint, key, countersigners) = (&args.endpoint, &key, &countersigners);
        async move {
            crate::authorisation::authorise_and_submit(
                endpoint,
                key,
                countersigners,
                &change,
                timeout,
            )
            .await
        }
    };

    println!("1. removing node {old_id} from the voters (voters {voters:?})");
    let message = runtime.block_on(authorised(MembershipChange::ChangeMembership(
        pb::ChangeMembershipCommand {
            voter_ids: voters.clone(),
        },
    )))?;
    println!("   {message}");

    let stamp = unix_secs();
    if config.data_dir.exists() {
        let mut aside = config.data_dir.clone().into_os_string();
        aside.push(format!(".broken-{stamp}"));
        let aside = PathBuf::from(aside);
        std::fs::rename(&config.data_dir, &aside).with_context(|| {
            format!(
                "moving {} aside to {}",
                config.data_dir.display(),
                aside.display()
            )
        })?;
        println!(
            "2. moved the data directory aside (kept for forensics): {}",
            aside.display()
        );
    } else {
        println!(
            "2. no data directory at {}: nothing to move aside",
            config.data_dir.display()
        );
    }

    let mut backup = args.config.clone().into_os_string();
    backup.push(format!(".before-rebuild-{stamp}"));
    let backup = PathBuf::from(backup);
    std::fs::copy(&args.config, &backup)
        .with_context(|| format!("keeping the old config as {}", backup.display()))?;
    write_config(&args.config, &new_config)?;
    let new_id = args.new_node_id;
    println!(
        "3. {} now says node id {new_id} (old config kept as {}); the key is unchanged",
        args.config.display(),
        backup.display()
    );

    runtime.block_on(async {
        let running = if args.run {
            let loaded = NodeConfig::load(&args.config)?;
            let node = start(loaded)
                .await
                .with_context(|| format!("starting node {new_id}"))?;
            println!(
                "4. node {new_id} started, serving gRPC on {}",
                node.local_addr
            );
            Some(node)
        } else {
            println!(
                "4. start the node now: bboard node run --config {}
   waiting for it on {address} …",
                args.config.display()
            );
            wait_for_node(&address, new_id, timeout).await?;
            None
        };
        println!("5. adding node {new_id} as a learner; it catches up from its peers");
        // The other nodes know this node by its old id: the membership tells them the
        // new id's peer address and (unchanged) certificate.
        let message = authorised(MembershipChange::AddLearner(pb::AddLearnerCommand {
            node_id: new_id,
            address: address.clone(),
            peer_address: own.peer_address.clone(),
            tls_fingerprint: own.tls_fingerprint.clone(),
        }))
        .await?;
        println!("   {message}");
        let mut all = voters.clone();
        all.push(new_id);
        let message = authorised(MembershipChange::ChangeMembership(
            pb::ChangeMembershipCommand { voter_ids: all },
        ))
        .await?;
        println!("   {message}");
        println!("node {new_id} (formerly {old_id}) is a voter again");
        if let Some(node) = running {
            wait_for_stop_signal().await;
            println!("stopping");
            node.shutdown().await;
        }
        Ok(())
    })
}

/// A multi-threaded tokio runtime for the commands that talk to nodes.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The genesis entry of a board: names `authority` as its first authority, and the
/// `organisations` (name, admin keys) whose majority authorises membership changes.
pub fn genesis_envelope(
    origin: &str,
    authority: &SigningKey,
    description: &str,
    organisations: Vec<pb::Organisation>,
) -> SignedEnvelope {
    let body = pb::EntryBody {
        election_id: String::new(),
        created_unix_ms: bboard_util::clock::now_unix_ms(),
        kind: Some(pb::entry_body::Kind::Genesis(pb::BoardGenesis {
            origin: origin.to_string(),
            authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
            description: description.to_string(),
            organisations,
        })),
    };
    SignedEnvelope::sign_body(&body, authority)
}

/// Parses `NAME=HEXKEY[,HEXKEY…]` (an organisation and its admins' public keys).
fn parse_organisation(spec: &str) -> Result<pb::Organisation> {
    let (name, keys) = spec
        .split_once('=')
        .with_context(|| format!("--organisation {spec:?}: expected NAME=ADMINKEY[,ADMINKEY…]"))?;
    let admin_keys = keys
        .split(',')
        .map(|key| {
            let bytes = hex::decode(key.trim())
                .with_context(|| format!("--organisation {name}: {key:?} is not hex"))?;
            bboard_core::envelope::parse_public_key(&bytes).with_context(|| {
                format!("--organisation {name}: {key:?} is not an Ed25519 public key")
            })?;
            Ok(bytes)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(pb::Organisation {
        name: name.trim().to_string(),
        admin_keys,
    })
}

/// Appends an envelope, retrying on UNAVAILABLE (no leader yet, checkpoint pending).
pub async fn append_with_retry(
    endpoint: &str,
    envelope: &SignedEnvelope,
    deadline: Duration,
) -> Result<pb::AppendResponse> {
    let started = tokio::time::Instant::now();
    loop {
        let attempt = async {
            let mut client = BoardClient::connect(format!("http://{endpoint}")).await?;
            let response = client
                .append(pb::AppendRequest {
                    envelope: Some(envelope.to_proto()),
                })
                .await?;
            anyhow::Ok(response.into_inner())
        };
        match attempt.await {
            Ok(response) => return Ok(response),
            Err(error) => {
                let retryable = match error.downcast_ref::<tonic::Status>() {
                    Some(status) => status.code() == tonic::Code::Unavailable,
                    None => true, // connection errors
                };
                if !retryable || started.elapsed() > deadline {
                    return Err(error).with_context(|| format!("appending to {endpoint}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[derive(clap::Args)]
pub struct GenesisArgs {
    /// A node's gRPC address.
    #[arg(long)]
    endpoint: String,
    /// The authority's private key file (it becomes the board's first authority).
    #[arg(long)]
    authority_key: PathBuf,
    /// The board origin (must match the nodes' configuration).
    #[arg(long)]
    origin: String,
    /// Description recorded in the genesis.
    #[arg(long, default_value = "")]
    description: String,
    /// An organisation running nodes, with its admins' public keys (hex):
    /// `NAME=KEY[,KEY…]`, once per organisation. A membership change then needs the
    /// admins of a majority of them; a board without organisations allows none.
    #[arg(long = "organisation")]
    organisations: Vec<String>,
}

pub fn run_genesis(args: GenesisArgs) -> Result<()> {
    let authority = read_private_key(&args.authority_key)?;
    let organisations = args
        .organisations
        .iter()
        .map(|spec| parse_organisation(spec))
        .collect::<Result<Vec<_>>>()?;
    if organisations.is_empty() {
        eprintln!(
            "warning: the genesis names no organisations: no membership change will ever be authorised on this board"
        );
    }
    let envelope = genesis_envelope(&args.origin, &authority, &args.description, organisations);
    let response = runtime()?.block_on(append_with_retry(
        &args.endpoint,
        &envelope,
        Duration::from_secs(30),
    ))?;
    let index = response.receipt.map(|r| r.leaf_index).unwrap_or_default();
    println!(
        "genesis at index {index} (duplicate: {})",
        response.duplicate
    );
    Ok(())
}
