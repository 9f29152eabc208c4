//! Node configuration: one TOML file, written by `bboard node init`, read by
//! `bboard node run`. Every tunable has a documented default suited to a 2-core box.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bboard_core::checkpoint::{CosignaturePolicy, NoteVerifier};
use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// Errors loading or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A member of the cluster, as every node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// Raft node id (never reused).
    pub id: NodeId,
    /// gRPC address other nodes and clients use (`host:port`).
    pub address: String,
    /// Checkpoint verifier key (`name+keyid+base64`), name = the node's key name.
    pub verifier_key: String,
    /// Organisation that runs the node.
    #[serde(default)]
    pub organisation: String,
}

/// An independent witness this node feeds its final checkpoints to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessPeer {
    /// Base URL of its `add-checkpoint` service, e.g. `http://witness.example:7380`.
    pub url: String,
    /// Its verifier key (`name+keyid+base64`).
    pub verifier_key: String,
}

/// Raft timing. Defaults: heartbeat 250 ms, election timeout 1–2 s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaftTuning {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Minimum election timeout.
    pub election_timeout_min_ms: u64,
    /// Maximum election timeout.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every_entries: u64,
    /// Log entries kept after a snapshot (lagging followers catch up from the log).
    pub keep_logs_after_snapshot: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every_entries: 5000,
            keep_logs_after_snapshot: 1000,
        }
    }
}

/// Group commit and limits. Defaults: 2 ms, 512 entries, 2 MiB per Raft entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Longest time the leader waits to fill a batch.
    pub batch_max_delay_ms: u64,
    /// Most envelopes per batch (one Raft entry).
    pub batch_max_entries: usize,
    /// Most leaf bytes per batch.
    pub batch_max_bytes: usize,
    /// Largest entry body accepted.
    pub max_body_bytes: usize,
    /// Largest gRPC message accepted.
    pub max_message_bytes: usize,
    /// Most entries per `GetEntries` page.
    pub max_page_entries: u32,
    /// How long an append waits for a k-of-n checkpoint covering it.
    pub receipt_timeout_ms: u64,
    /// How often the leader records its latest final checkpoint on the board as a
    /// `CheckpointCosignatures` entry (0 = never). Needs the node's key registered
    /// with `ROLE_NODE`.
    pub checkpoint_record_interval_ms: u64,
    /// How long a forwarded entry may take to appear on the board before this node
    /// forwards it again, and (one more such period later) raises a censorship alarm.
    pub inclusion_deadline_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_max_delay_ms: 2,
            batch_max_entries: 512,
            batch_max_bytes: 2 * 1024 * 1024,
            max_body_bytes: bboard_core::envelope::MAX_BODY_BYTES,
            max_message_bytes: 4 * 1024 * 1024,
            max_page_entries: 1000,
            receipt_timeout_ms: 10_000,
            checkpoint_record_interval_ms: 30_000,
            inclusion_deadline_ms: 10_000,
        }
    }
}

/// Configuration of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// This node's Raft id.
    pub node_id: NodeId,
    /// This node's checkpoint key name (e.g. `cec-node-1`).
    pub name: String,
    /// Organisation running this node.
    #[serde(default)]
    pub organisation: String,
    /// Board origin (first line of every checkpoint).
    pub origin: String,
    /// Directory of the sled store and snapshots.
    pub data_dir: PathBuf,
    /// File holding this node's Ed25519 signing key (hex seed).
    pub key_file: PathBuf,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Public keys (hex) allowed to sign admin commands.
    #[serde(default)]
    pub admin_keys: Vec<String>,
    /// Signatures a checkpoint needs to be final; default: a majority of `peers`.
    #[serde(default)]
    pub cosign_threshold: Option<usize>,
    /// Initial voters: every node of a new cluster lists the same ids; a node that
    /// joins later as a learner leaves it empty.
    #[serde(default)]
    pub initial_voters: Vec<NodeId>,
    /// Every node of the cluster, this one included.
    pub peers: Vec<PeerConfig>,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftTuning,
    /// Batching and limits.
    #[serde(default)]
    pub limits: Limits,
    /// Witnesses fed with every final checkpoint; their cosignatures are merged into
    /// the checkpoints this node serves (and into receipts).
    #[serde(default)]
    pub witnesses: Vec<WitnessPeer>,
    /// Witness cosignatures a checkpoint needs, on top of the node signatures, before
    /// this node calls it final (and hands out receipts with it). Default: none
    /// required (witnesses, if any, are fed on a best-effort basis).
    #[serde(default)]
    pub witness_threshold: Option<usize>,
}

impl NodeConfig {
    /// Loads and checks a configuration file. Relative paths in it are relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        if let Some(base) = path.parent() {
            if config.data_dir.is_relative() {
                config.data_dir = base.join(&config.data_dir);
            }
            if config.key_file.is_relative() {
                config.key_file = base.join(&config.key_file);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Checks internal consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !self.peers.iter().any(|p| p.id == self.node_id) {
            return invalid(format!("node_id {} is not listed in peers", self.node_id));
        }
        for (i, a) in self.peers.iter().enumerate() {
            if self.peers[i + 1..].iter().any(|b| b.id == a.id) {
                return invalid(format!("peer id {} is listed twice", a.id));
            }
        }
        for voter in &self.initial_voters {
            if !self.peers.iter().any(|p| p.id == *voter) {
                return invalid(format!("initial voter {voter} is not listed in peers"));
            }
        }
        let own = self.peers.iter().find(|p| p.id == self.node_id);
        if let Some(own) = own {
            let verifier = NoteVerifier::parse(&own.verifier_key)
                .map_err(|e| ConfigError::Invalid(format!("own verifier key: {e}")))?;
            if verifier.name() != self.name {
                return invalid(format!(
                    "own verifier key is named {:?}, node name is {:?}",
                    verifier.name(),
                    self.name
                ));
            }
        }
        self.policy()?;
        let raft = &self.raft;
        if raft.election_timeout_min_ms <= raft.heartbeat_ms
            || raft.election_timeout_max_ms <= raft.election_timeout_min_ms
        {
            return invalid(
                "raft: need heartbeat < election_timeout_min < election_timeout_max".into(),
            );
        }
        if self.limits.batch_max_entries == 0 || self.limits.max_page_entries == 0 {
            return invalid("limits: batch and page sizes must be positive".into());
        }
        Ok(())
    }

    /// The cosignature policy of this cluster: the peers' keys, k of n.
    pub fn policy(&self) -> Result<CosignaturePolicy, ConfigError> {
        let keys = self
            .peers
            .iter()
            .map(|p| {
                NoteVerifier::parse(&p.verifier_key)
                    .map_err(|e| ConfigError::Invalid(format!("peer {} verifier key: {e}", p.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = match self.cosign_threshold {
            Some(k) => CosignaturePolicy::new(&self.origin, keys, k),
            None => CosignaturePolicy::majority(&self.origin, keys),
        };
        let policy = policy.map_err(|e| ConfigError::Invalid(e.to_string()))?;
        match self.witness_threshold {
            None | Some(0) => Ok(policy),
            Some(m) => policy
                .with_witnesses(self.witness_verifiers()?, m)
                .map_err(|e| ConfigError::Invalid(format!("witnesses: {e}"))),
        }
    }

    /// The cosignature policy over the node keys alone (what the nodes' own
    /// cosigning must reach before witnesses are asked).
    pub fn node_policy(&self) -> Result<CosignaturePolicy, ConfigError> {
        NodeConfig {
            witness_threshold: None,
            ..self.clone()
        }
        .policy()
    }

    /// The verifier keys of the configured witnesses.
    pub fn witness_verifiers(&self) -> Result<Vec<NoteVerifier>, ConfigError> {
        self.witnesses
            .iter()
            .map(|w| {
                NoteVerifier::parse(&w.verifier_key).map_err(|e| {
                    ConfigError::Invalid(format!("witness {} verifier key: {e}", w.url))
                })
            })
            .collect()
    }

    /// The openraft configuration derived from the tuning.
    pub fn raft_config(&self) -> Result<openraft::Config, ConfigError> {
        let config = openraft::Config {
            cluster_name: self.origin.clone(),
            heartbeat_interval: self.raft.heartbeat_ms,
            election_timeout_min: self.raft.election_timeout_min_ms,
            election_timeout_max: self.raft.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.raft.snapshot_every_entries,
            ),
            max_in_snapshot_log_to_keep: self.raft.keep_logs_after_snapshot,
            // Chunks stay far below the gRPC message limit (MessagePack may double them).
            snapshot_max_chunk_size: 1024 * 1024,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("raft: {e}")))
    }

    /// This node's entry in `peers`.
    pub fn own_peer(&self) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.id == self.node_id)
    }
}
