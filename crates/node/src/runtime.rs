//! Starting and stopping a node: stores, Raft, gRPC server, background loops.

use std::collections::BTreeMap;
use std::sync::Arc;

use bboard_core::checkpoint::NoteSigner;
use ed25519_dalek::SigningKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::batcher::run_batcher;
use crate::config::NodeConfig;
use crate::cosign::{run_cosigner, NodeCosigner};
use crate::log_store::{open_db, SledLogStore};
use crate::network::{GrpcNetworkFactory, RaftService};
use crate::node::Shared;
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
    /// The key cannot sign as this node (e.g. the node name is not a valid key name).
    #[error("key file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
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

/// A running node.
pub struct RunningNode {
    /// Shared state (for in-process tests and tools).
    pub shared: Arc<Shared>,
    /// The address the gRPC server is bound to.
    pub local_addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
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
        let mut server = self.server;
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
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
    let signer = NoteSigner::new(&config.name, key.clone()).map_err(|e| StartError::Key {
        path: config.key_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let own = config.own_peer().ok_or_else(|| {
        StartError::Config(crate::config::ConfigError::Invalid(
            "node not in peers".into(),
        ))
    })?;
    if own.verifier_key != signer.verifier().to_string() {
        return Err(StartError::Key {
            path: config.key_file.display().to_string(),
            reason: "this key does not match the node's verifier key in peers".into(),
        });
    }
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
    })?;
    let board = state_machine.board();
    let applied = state_machine.subscribe();
    let raft_config = Arc::new(config.raft_config()?);
    let raft = BoardRaft::new(
        config.node_id,
        raft_config,
        GrpcNetworkFactory::new(),
        log_store,
        state_machine,
    )
    .await
    .map_err(|e| StartError::Raft(Box::new(e)))?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            address: config.listen.to_string(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        address: config.listen.to_string(),
        source,
    })?;

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
            .map(|p| (p.id, openraft::BasicNode::new(p.address.clone())))
            .collect();
        // Every initial voter calls this with the same membership; openraft accepts
        // it on an empty log and the election sorts out the rest.
        if let Err(e) = raft.initialize(members).await {
            tracing::info!(error = %e, "cluster already initialised");
        }
    }

    let admin_keys = config
        .admin_keys
        .iter()
        .map(|k| {
            hex::decode(k)
                .ok()
                .and_then(|b| bboard_core::envelope::parse_public_key(&b).ok())
                .ok_or_else(|| {
                    StartError::Config(crate::config::ConfigError::Invalid(format!(
                        "admin key {k:?} is not a hex Ed25519 public key"
                    )))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let inclusion = crate::inclusion::Inclusion::open(
        &db,
        std::time::Duration::from_millis(config.limits.inclusion_deadline_ms.max(1)),
    )?;
    let (shared, queue) = Shared::new(config, raft.clone(), board, signer, applied, inclusion)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(run_batcher(shared.clone(), queue, shutdown_rx.clone())),
        tokio::spawn(run_cosigner(shared.clone(), shutdown_rx.clone())),
        tokio::spawn(run_checkpoint_recorder(shared.clone(), shutdown_rx.clone())),
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
    let distrust = Arc::new(crate::network::LeaderDistrust::default());
    let raft_service = RaftService::new(raft.clone(), Arc::new(NodeCosigner(shared.clone())))
        .with_distrust(distrust.clone());
    let board_service = BoardService::new(shared.clone(), shutdown_rx.clone());
    let admin_service =
        crate::admin::AdminService::new(raft.clone(), admin_keys).with_distrust(distrust);
    let mut server_shutdown = shutdown_rx.clone();
    // gRPC (HTTP/2) and the read-only HTTP/JSON side (HTTP/1.1) share one port.
    let routes =
        tonic::service::Routes::from(crate::http::router(board_service.clone(), shared.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(raft_service.into_server())
            .add_service(board_service.into_server())
            .add_service(admin_service.into_server());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = server_shutdown.changed().await;
                },
            ),
    );
    tracing::info!(%local_addr, node = shared.config.node_id, "node serving");
    Ok(RunningNode {
        shared,
        local_addr,
        shutdown,
        tasks,
        server,
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
