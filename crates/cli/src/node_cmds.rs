//! `bboard node init|run`, `bboard genesis` and `bboard devcluster`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bboard_core::checkpoint::NoteSigner;
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_node::config::{NodeConfig, PeerConfig};
use bboard_node::runtime::{start, RunningNode};
use bboard_proto::v1::board_client::BoardClient;
use ed25519_dalek::SigningKey;

use crate::keys::{generate_key, read_private_key, write_private_key};

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
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7101")]
    listen: SocketAddr,
    /// Address other nodes and clients use (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Board origin.
    #[arg(long, default_value = "bboard.local/election")]
    origin: String,
}

/// Everything `init` writes for one node.
struct InitializedNode {
    config: NodeConfig,
    config_path: PathBuf,
    admin_key: SigningKey,
}

fn init_node(
    dir: &Path,
    name: &str,
    org: &str,
    node_id: u64,
    listen: SocketAddr,
    advertise: &str,
    origin: &str,
) -> Result<InitializedNode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = generate_key();
    let signer = NoteSigner::new(name, key.clone()).context("invalid node name")?;
    write_private_key(&dir.join("node.key"), &key)?;
    let admin_key = generate_key();
    write_private_key(&dir.join("admin.key"), &admin_key)?;
    let config = NodeConfig {
        node_id,
        name: name.to_string(),
        organisation: org.to_string(),
        origin: origin.to_string(),
        data_dir: PathBuf::from("data"),
        key_file: PathBuf::from("node.key"),
        listen,
        admin_keys: vec![hex::encode(admin_key.verifying_key().as_bytes())],
        cosign_threshold: None,
        initial_voters: vec![node_id],
        peers: vec![PeerConfig {
            id: node_id,
            address: advertise.to_string(),
            verifier_key: signer.verifier().to_string(),
            organisation: org.to_string(),
        }],
        raft: Default::default(),
        limits: Default::default(),
    };
    let config_path = dir.join("config.toml");
    write_config(&config_path, &config)?;
    Ok(InitializedNode {
        config,
        config_path,
        admin_key,
    })
}

fn write_config(path: &Path, config: &NodeConfig) -> Result<()> {
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
            let advertise = args.advertise.unwrap_or_else(|| args.listen.to_string());
            let node = init_node(
                &args.dir,
                &args.name,
                &args.org,
                args.node_id,
                args.listen,
                &advertise,
                &args.origin,
            )?;
            println!("node initialised in {}", args.dir.display());
            println!("  config:        {}", node.config_path.display());
            println!("  verifier key:  {}", node.config.peers[0].verifier_key);
            println!(
                "  admin key:     {} (public {})",
                args.dir.join("admin.key").display(),
                hex::encode(node.admin_key.verifying_key().as_bytes())
            );
            println!("Share the verifier key with the other organisations; list every node under [[peers]].");
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

/// A multi-threaded tokio runtime for the commands that talk to nodes.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn wait_for_stop_signal() {
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

/// The genesis entry of a board: names `authority` as its first authority.
pub fn genesis_envelope(origin: &str, authority: &SigningKey, description: &str) -> SignedEnvelope {
    let body = pb::EntryBody {
        election_id: String::new(),
        created_unix_ms: bboard_node::node::now_unix_ms(),
        kind: Some(pb::entry_body::Kind::Genesis(pb::BoardGenesis {
            origin: origin.to_string(),
            authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
            description: description.to_string(),
        })),
    };
    SignedEnvelope::sign_body(&body, authority)
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
}

pub fn run_genesis(args: GenesisArgs) -> Result<()> {
    let authority = read_private_key(&args.authority_key)?;
    let envelope = genesis_envelope(&args.origin, &authority, &args.description);
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

#[derive(clap::Args)]
pub struct DevclusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Directory holding every node's keys, config and data (reused on restart).
    #[arg(long, default_value = "bboard-devcluster")]
    dir: PathBuf,
    /// gRPC port of node 1; node i listens on base_port + i - 1 (0: any free ports).
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
    /// Board origin.
    #[arg(long, default_value = "dev.bboard.local/election")]
    origin: String,
}

/// A free TCP port on 127.0.0.1 (bound, then released for the node to bind).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A local cluster running in this process.
pub struct DevCluster {
    /// The nodes.
    pub nodes: Vec<RunningNode>,
    /// gRPC endpoints.
    pub endpoints: Vec<String>,
    /// The board authority's key.
    pub authority: SigningKey,
    /// Directory of the cluster.
    pub dir: PathBuf,
}

/// Creates (or reopens) and starts a local cluster, and posts the genesis if needed.
pub async fn start_devcluster(
    dir: &Path,
    nodes: u64,
    base_port: u16,
    origin: &str,
) -> Result<DevCluster> {
    if nodes == 0 || nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    let authority_path = dir.join("authority.key");
    let fresh = !authority_path.exists();
    let mut configs = Vec::new();
    if fresh {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let authority = generate_key();
        write_private_key(&authority_path, &authority)?;
        let mut initialized = Vec::new();
        for id in 1..=nodes {
            let port = if base_port == 0 {
                free_port()?
            } else {
                base_port + id as u16 - 1
            };
            let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            let node_dir = dir.join(format!("node{id}"));
            initialized.push(init_node(
                &node_dir,
                &format!("dev-node-{id}"),
                &format!("org-{id}"),
                id,
                listen,
                &listen.to_string(),
                origin,
            )?);
        }
        let peers: Vec<PeerConfig> = initialized
            .iter()
            .map(|n| n.config.peers[0].clone())
            .collect();
        let admin_keys: Vec<String> = initialized
            .iter()
            .flat_map(|n| n.config.admin_keys.clone())
            .collect();
        let trusted: String = peers
            .iter()
            .map(|p| format!("{}\n", p.verifier_key))
            .collect();
        std::fs::write(dir.join("trusted-keys.txt"), trusted)
            .with_context(|| format!("writing {}", dir.join("trusted-keys.txt").display()))?;
        for node in initialized {
            let mut config = node.config;
            config.peers = peers.clone();
            config.initial_voters = peers.iter().map(|p| p.id).collect();
            config.admin_keys = admin_keys.clone();
            write_config(&node.config_path, &config)?;
        }
    }
    for id in 1..=nodes {
        let path = dir.join(format!("node{id}")).join("config.toml");
        configs.push(NodeConfig::load(&path)?);
    }
    let authority = read_private_key(&authority_path)?;
    let mut running = Vec::new();
    for config in configs {
        let id = config.node_id;
        running.push(
            start(config)
                .await
                .with_context(|| format!("starting node {id}"))?,
        );
    }
    let endpoints: Vec<String> = running.iter().map(|n| n.local_addr.to_string()).collect();
    let origin = running[0].shared.config.origin.clone();
    if fresh {
        let genesis = genesis_envelope(&origin, &authority, "local development cluster");
        append_with_retry(&endpoints[0], &genesis, Duration::from_secs(30))
            .await
            .context("posting the board genesis")?;
    }
    Ok(DevCluster {
        nodes: running,
        endpoints,
        authority,
        dir: dir.to_path_buf(),
    })
}

pub fn run_devcluster(args: DevclusterArgs) -> Result<()> {
    runtime()?.block_on(async {
        let cluster = start_devcluster(&args.dir, args.nodes, args.base_port, &args.origin).await?;
        println!(
            "local cluster of {} nodes is up (board origin {}):",
            args.nodes, args.origin
        );
        for (i, endpoint) in cluster.endpoints.iter().enumerate() {
            println!("  node {}: grpc {endpoint}", i + 1);
        }
        println!(
            "authority key: {} (public {})",
            cluster.dir.join("authority.key").display(),
            hex::encode(cluster.authority.verifying_key().as_bytes())
        );
        println!(
            "trusted node keys: {}",
            cluster.dir.join("trusted-keys.txt").display()
        );
        println!("try: bboard status --endpoint {}", cluster.endpoints[0]);
        println!(
            "Ctrl-C stops the cluster; data stays in {}",
            cluster.dir.display()
        );
        wait_for_stop_signal().await;
        println!("stopping");
        for node in cluster.nodes {
            node.shutdown().await;
        }
        Ok(())
    })
}
