//! `bboard devcluster`: a local cluster of nodes in one process, each in its own
//! directory with its own keys, as `bboard demo` and a developer use it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bboard_node::config::{NodeConfig, PeerConfig};
use bboard_node::runtime::{start, RunningNode};
use ed25519_dalek::SigningKey;

use crate::keys::{generate_key, read_private_key, write_private_key};
use crate::node_cmds::{
    append_with_retry, genesis_envelope, init_node, runtime, wait_for_stop_signal, write_config,
    NodeAddresses,
};

#[derive(clap::Args)]
pub struct DevclusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Directory holding every node's keys, config and data (reused on restart).
    #[arg(long, default_value = "bboard-devcluster")]
    dir: PathBuf,
    /// Public port of node 1; node i listens on base_port + i - 1 and on peer port
    /// base_port + 100 + i - 1 (0: any free ports).
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

/// Writes the keys and configurations of a fresh local cluster of `nodes` in `dir`:
/// `authority.key`, `node<i>/` (keys, peer certificate, `config.toml` listing every
/// peer and every organisation's admin key) and `trusted-keys.txt`. Each node is one
/// organisation, `org-<i>`. `base_port` 0 picks free ports.
pub fn write_cluster(dir: &Path, nodes: u64, base_port: u16, origin: &str) -> Result<()> {
    if nodes == 0 || nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private_key(&dir.join("authority.key"), &generate_key())?;
    let mut initialized = Vec::new();
    for id in 1..=nodes {
        let (port, peer_port) = if base_port == 0 {
            (free_port()?, free_port()?)
        } else {
            (base_port + id as u16 - 1, base_port + 100 + id as u16 - 1)
        };
        let node_dir = dir.join(format!("node{id}"));
        initialized.push(init_node(
            &node_dir,
            &format!("dev-node-{id}"),
            &format!("org-{id}"),
            id,
            NodeAddresses::loopback(port, peer_port),
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
    Ok(())
}

/// The path of node `id`'s configuration in the cluster directory `dir`.
pub fn config_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node{id}")).join("config.toml")
}

/// Posts the genesis of the cluster in `dir` through `endpoint`, signed by its
/// authority: each node is one organisation, whose admin is the `admin.key` that
/// `node init` made beside it (every node trusts all of them for Admin calls).
pub async fn post_genesis(
    dir: &Path,
    configs: &[NodeConfig],
    authority: &SigningKey,
    endpoint: &str,
) -> Result<()> {
    let organisations = configs
        .iter()
        .map(|config| {
            let admin_key = dir
                .join(format!("node{}", config.node_id))
                .join("admin.key");
            let admin = read_private_key(&admin_key)?;
            Ok(bboard_core::pb::Organisation {
                name: config.organisation.clone(),
                admin_keys: vec![admin.verifying_key().as_bytes().to_vec()],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let origin = configs.first().map_or("", |c| c.origin.as_str());
    let genesis = genesis_envelope(
        origin,
        authority,
        "local development cluster",
        organisations,
    );
    append_with_retry(endpoint, &genesis, Duration::from_secs(30))
        .await
        .context("posting the board genesis")?;
    Ok(())
}

/// Creates (or reopens) and starts a local cluster, and posts the genesis if needed.
pub async fn start_devcluster(
    dir: &Path,
    nodes: u64,
    base_port: u16,
    origin: &str,
) -> Result<DevCluster> {
    let authority_path = dir.join("authority.key");
    let fresh = !authority_path.exists();
    if fresh {
        write_cluster(dir, nodes, base_port, origin)?;
    }
    let configs = (1..=nodes)
        .map(|id| NodeConfig::load(&config_path(dir, id)).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let authority = read_private_key(&authority_path)?;
    let mut running = Vec::new();
    for config in configs.clone() {
        let id = config.node_id;
        running.push(
            start(config)
                .await
                .with_context(|| format!("starting node {id}"))?,
        );
    }
    let endpoints: Vec<String> = running.iter().map(|n| n.local_addr.to_string()).collect();
    if fresh {
        post_genesis(dir, &configs, &authority, &endpoints[0]).await?;
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
        for (i, (endpoint, node)) in cluster.endpoints.iter().zip(&cluster.nodes).enumerate() {
            println!(
                "  node {}: grpc {endpoint} (peer port {}, mutual TLS)",
                i + 1,
                node.peer_addr
            );
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
