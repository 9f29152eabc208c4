//! Starting and stopping a node: stores, Raft, the public and peer servers,
//! background loops.

use std::collections::BTreeMap;
use std::sync::Arc;

use bboard_core::checkpoint::NoteSigner;
use ed25519_dalek::SigningKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::batcher::run_batcher;
use crate::config::NodeConfig;
use crate::cosign::{run_cosigner, run_pushers, NodeCosigner, PeerVouchers};
use crate::log_store::{open_db, SledLogStore};
use crate::network::{GrpcNetworkFactory, RaftService};
use crate::node::Shared;
use crate::peer::{PeerChannels, TlsIdentity};
use crate::recorder::run_checkpoint_recorder;
use crate::service::BoardService;
use crate::state_machine::BoardStateMachine;
use crate::types::BoardRaft;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The key file is unreadable or malformed.
    #[error(transparent)]
    KeyFile(#[from] bboard_util::key_file::KeyFileError),
    /// The node name cannot name a checkpoint key (empty, whitespace or '+').
    #[error("node name {name:?} cannot sign checkpoints: {source}")]
    KeyName {
        /// The configured name.
        name: String,
        /// Why.
        #[source]
        source: bboard_core::Error,
    },
    /// The key file holds another key than the node's verifier key in `peers`.
    #[error(
        "key file {path}: this key does not match the node's verifier key in peers ({configured})"
    )]
    KeyMismatch {
        /// The key file.
        path: std::path::PathBuf,
        /// The verifier key the config lists for this node.
        configured: String,
    },
    /// The peer-port certificate or its key could not be read.
    #[error("peer TLS identity: {0}")]
    PeerIdentity(#[from] crate::peer::identity::IdentityError),
    /// The peer-port certificate is not the one the config pins for this node.
    #[error("peer certificate {path} has fingerprint {actual}, but peers pins this node to {configured}; the other nodes would refuse it")]
    PeerCertificateMismatch {
        /// The certificate file.
        path: std::path::PathBuf,
        /// The fingerprint in this node's `[[peers]]` entry.
        configured: String,
        /// The certificate's fingerprint.
        actual: String,
    },
    /// The peer port's TLS configuration could not be built.
    #[error(transparent)]
    PeerTls(#[from] crate::peer::tls::TlsConfigError),
    /// The data directory could not be created.
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The sled database could not be opened.
    #[error("opening {path}: {source} (is another node using this data directory?)")]
    OpenStore {
        /// The database directory.
        path: std::path::PathBuf,
        /// sled's reason.
        #[source]
        source: crate::log_store::LogStoreError,
    },
    /// The Raft log store could not be opened.
    #[error("opening the Raft log: {0}")]
    LogStore(#[source] crate::log_store::LogStoreError),
    /// The board store failed to open, most often its integrity check: the node
    /// refuses to serve a store that does not match what it signed.
    #[error("{source}. The store does not match what this node signed: it was edited, truncated or corrupted. Refusing to serve; move {data_dir} aside and let the node rebuild from its peers")]
    Untrusted {
        /// The node's data directory.
        data_dir: std::path::PathBuf,
        /// What failed.
        #[source]
        source: crate::board_store::StoreError,
    },
    /// The board's other persisted state (forwarded entries, alarms) could not be read.
    #[error("store: {0}")]
    Store(#[from] crate::board_store::StoreError),
    /// Raft could not start.
    #[error("raft: {0}")]
    Raft(#[source] Box<openraft::error::Fatal<crate::types::NodeId>>),
    /// gRPC reflection could not be set up from the embedded descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The listen address could not be bound.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads a node key file (hex Ed25519 seed on one line; the format of every bboard
/// key file, `bboard_util::key_file`).
pub fn read_key_file(path: &std::path::Path) -> Result<SigningKey, StartError> {
    Ok(bboard_util::key_file::read_signing_key(path)?)
}

/// Whether opening the database failed because another handle holds sled's lock.
///
/// sled 0.34 (`Config::try_lock`) reports a held lock as
/// `sled::Error::Io(io::Error::new(ErrorKind::Other, "could not acquire lock on ..."))`:
/// the underlying `WouldBlock` from `flock` is formatted into the message and lost, so
/// the kind is the only structural signal. Other I/O failures at open keep their own
/// kinds (`NotFound`, `PermissionDenied`, ...) because sled forwards them unchanged; a
/// rare `Other` from elsewhere only costs the bounded wait below before it is reported.
fn is_lock_contention(error: &crate::log_store::LogStoreError) -> bool {
    matches!(
        error,
        crate::log_store::LogStoreError::Sled(sled::Error::Io(io))
            if io.kind() == std::io::ErrorKind::Other
    )
}

/// Opens the store; if another process (or a node of this process that is still
/// shutting down) holds sled's lock, waits up to 10 s for it to go.
async fn open_db_waiting_for_lock(path: &std::path::Path) -> Result<sled::Db, StartError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_db(path) {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_contention(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(StartError::OpenStore {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Binds a listener on `address`.
async fn bind(
    address: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), StartError> {
    let listen_error = |source| StartError::Listen {
        address: address.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    Ok((listener, local))
}

/// A running node.
pub struct RunningNode {
    /// Shared state (for in-process tests and tools).
    pub shared: Arc<Shared>,
    /// The address the public server (Board API, HTTP, Admin) is bound to.
    pub local_addr: std::net::SocketAddr,
    /// The address the peer server (Raft, cosigning; mutual TLS) is bound to.
    pub peer_addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    db: sled::Db,
}

impl RunningNode {
    /// The Raft handle.
    pub fn raft(&self) -> &BoardRaft {
        &self.shared.raft
    }

    /// Stops the node: server, loops, Raft; flushes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Graceful: in-flight calls finish; open Watch streams end on the same signal.
        // Bounded, so a stuck client cannot keep the node from stopping.
        for mut server in self.servers {
            if tokio::time::timeout(std::time::Duration::from_secs(5), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        let db = self.db.clone();
        let _ = tokio::task::spawn_blocking(move || db.flush()).await;
    }
}

/// Starts a node from its configuration.
pub async fn start(config: NodeConfig) -> Result<RunningNode, StartError> {
    config.validate()?;
    let key = read_key_file(&config.key_file)?;
    let signer =
        NoteSigner::new(&config.name, key.clone()).map_err(|source| StartError::KeyName {
            name: config.name.clone(),
            source,
        })?;
    let own = config
        .own_peer()
        .ok_or(crate::config::ConfigError::NotInPeers(config.node_id))?;
    if own.verifier_key != signer.verifier().to_string() {
        return Err(StartError::KeyMismatch {
            path: config.key_file.clone(),
            configured: own.verifier_key.clone(),
        });
    }
    let identity = TlsIdentity::load(&config.tls_certificate_file, &config.tls_key_file)?;
    if identity.fingerprint().to_string() != own.tls_fingerprint.to_lowercase() {
        return Err(StartError::PeerCertificateMismatch {
            path: config.tls_certificate_file.clone(),
            configured: own.tls_fingerprint.clone(),
            actual: identity.fingerprint().to_string(),
        });
    }
    let peers = Arc::new(PeerChannels::new(identity, config.peer_endpoints()?));
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let db = open_db_waiting_for_lock(&config.data_dir.join("db")).await?;
    let log_store = SledLogStore::open(&db).map_err(StartError::LogStore)?;
    let state_machine = BoardStateMachine::open(
        db.clone(),
        &config.origin,
        signer.clone(),
        &config.data_dir.join("snapshots"),
    )
    .map_err(|source| StartError::Untrusted {
        data_dir: config.data_dir.clone(),
        source,
    })?
    // A snapshot is installed only once the other nodes vouch for its root.
    .with_snapshot_vouchers(
        Arc::new(PeerVouchers::new(peers.clone(), &config)?),
        config.node_policy()?,
    );
    let handles = state_machine.handles();
    let raft_config = Arc::new(config.raft_config()?);
    let raft = BoardRaft::new(
        config.node_id,
        raft_config,
        GrpcNetworkFactory::new(peers.clone()),
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| StartError::Raft(Box::new(e)))?;

    let (listener, local_addr) = bind(config.listen).await?;
    let (peer_listener, peer_addr) = bind(config.peer_listen).await?;

    if !config.initial_voters.is_empty()
        && !raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(Box::new(e)))?
    {
        let members: BTreeMap<_, _> = config
            .peers
            .iter()
            .filter(|p| config.initial_voters.contains(&p.id))
            .map(|p| (p.id, p.member()))
            .collect();
        // Every initial voter calls this with the same membership; openraft accepts
        // it on an empty log and the election sorts out the rest.
        if let Err(e) = raft.initialize(members).await {
            tracing::info!(error = %e, "cluster already initialised");
        }
    }

    let admin_keys = config.admin_verifying_keys()?;

    let inclusion = crate::inclusion::Inclusion::open(
        &db,
        std::time::Duration::from_millis(config.limits.inclusion_deadline_ms.max(1)),
    )?;
    let (shared, queue) = Shared::new(
        config,
        raft.clone(),
        handles,
        signer,
        inclusion,
        peers.clone(),
    )?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(run_batcher(shared.clone(), queue, shutdown_rx.clone())),
        tokio::spawn(run_cosigner(shared.clone(), shutdown_rx.clone())),
        tokio::spawn(run_pushers(shared.clone(), shutdown_rx.clone())),
        tokio::spawn(run_checkpoint_recorder(shared.clone(), shutdown_rx.clone())),
        tokio::spawn(crate::network::learn_membership(
            raft.clone(),
            peers.directory().clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(crate::inclusion::run_inclusion_watch(
            shared.clone(),
            shutdown_rx.clone(),
        )),
    ];

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<bboard_proto::v1::board_server::BoardServer<BoardService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bboard_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let distrust = Arc::new(crate::distrust::LeaderDistrust::open(&db)?);
    let raft_service =
        RaftService::new(raft.clone(), Arc::new(NodeCosigner(shared.clone())), &peers)
            .with_distrust(distrust.clone())
            .with_membership_rule(shared.board.clone());
    let board_service = BoardService::new(shared.clone(), shutdown_rx.clone());
    let admin_service = crate::admin::AdminService::new(raft.clone(), admin_keys)
        .with_distrust(distrust)
        .with_peers(peers.directory().clone())
        .with_membership_rule(shared.board.clone());
    let shutdown_signal = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.changed().await;
    };
    // The public port: gRPC (HTTP/2) and the read-only HTTP/JSON side (HTTP/1.1). Raft
    // and cosigning are not here: asked on this port they are UNIMPLEMENTED.
    let routes =
        tonic::service::Routes::from(crate::http::router(board_service.clone(), shared.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(board_service.into_server())
            .add_service(admin_service.into_server());
    let public_server = tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // No Nagle: a response is several small HTTP/2 frames, and Nagle's
                // algorithm against the client's delayed ACK held each receipt ~40 ms.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown_signal(shutdown_rx.clone()),
            ),
    );
    // The peer port: mutual TLS with pinned peers, then Raft and cosigning only.
    let peer_server = crate::peer::serve(
        peer_listener,
        tonic::service::Routes::new(raft_service.into_server()),
        &peers,
        shutdown_signal(shutdown_rx.clone()),
    )?;
    tracing::info!(%local_addr, %peer_addr, node = shared.config.node_id, "node serving");
    Ok(RunningNode {
        shared,
        local_addr,
        peer_addr,
        shutdown,
        tasks,
        servers: vec![public_server, peer_server],
        db,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_store_is_lock_contention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _held = open_db(&path).unwrap();
        let error = open_db(&path).unwrap_err();
        assert!(is_lock_contention(&error), "{error}");
    }

    #[test]
    fn other_open_failures_are_not_lock_contention() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the store's directory should be.
        let path = dir.path().join("db");
        std::fs::write(&path, b"not a directory").unwrap();
        let error = open_db(&path).unwrap_err();
        assert!(!is_lock_contention(&error), "{error}");
    }
}
