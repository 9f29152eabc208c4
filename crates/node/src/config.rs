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
    /// The configuration cannot be written as TOML.
    #[error("encoding the configuration: {0}")]
    Encode(#[from] toml::ser::Error),
    /// `node_id` has no entry in `peers`.
    #[error("invalid configuration: node_id {0} is not listed in peers")]
    NotInPeers(NodeId),
    /// Two `peers` entries share an id.
    #[error("invalid configuration: peer id {0} is listed twice")]
    DuplicatePeer(NodeId),
    /// An initial voter has no entry in `peers`.
    #[error("invalid configuration: initial voter {0} is not listed in peers")]
    UnknownInitialVoter(NodeId),
    /// A verifier key (of a peer, or of a witness) does not parse.
    #[error("invalid configuration: verifier key of {whose}: {source}")]
    VerifierKey {
        /// "peer 2", "witness http://…".
        whose: String,
        /// Why.
        #[source]
        source: bboard_core::Error,
    },
    /// The node's own verifier key names another key than the node's `name`.
    #[error(
        "invalid configuration: own verifier key is named {key_name:?}, node name is {node_name:?}"
    )]
    OwnKeyName {
        /// The name in the verifier key.
        key_name: String,
        /// `name`.
        node_name: String,
    },
    /// A peer's peer address or TLS fingerprint is missing or malformed.
    #[error("invalid configuration: peer {id}: {reason}")]
    PeerEndpoint {
        /// The peer.
        id: NodeId,
        /// What is wrong.
        #[source]
        reason: PeerEndpointError,
    },
    /// An admin key is not a hex Ed25519 public key.
    #[error("invalid configuration: admin key {0:?} is not a hex Ed25519 public key")]
    AdminKey(String),
    /// The cosignature policy (threshold against peers, witnesses) is impossible.
    #[error("invalid configuration: {what}: {source}")]
    Policy {
        /// "cosign_threshold" or "witness_threshold".
        what: &'static str,
        /// Why.
        #[source]
        source: bboard_core::Error,
    },
    /// Raft timing is inconsistent.
    #[error(
        "invalid configuration: raft: need heartbeat < election_timeout_min < election_timeout_max"
    )]
    RaftTiming,
    /// openraft refuses the derived configuration (boxed: it is large).
    #[error("invalid configuration: raft: {0}")]
    Raft(Box<openraft::ConfigError>),
    /// A size limit is zero.
    #[error("invalid configuration: limits: batch and page sizes must be positive")]
    Limits,
}

/// What is wrong with a peer's peer-port entry.
#[derive(Debug, thiserror::Error)]
pub enum PeerEndpointError {
    /// `peer_address` is empty.
    #[error("no peer_address")]
    NoPeerAddress,
    /// `tls_fingerprint` does not parse.
    #[error(transparent)]
    Fingerprint(#[from] crate::peer::identity::IdentityError),
}

/// A member of the cluster, as every node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// Raft node id (never reused).
    pub id: NodeId,
    /// Public address clients use (`host:port`): Board API, HTTP, Admin.
    pub address: String,
    /// Peer-port address other nodes use for Raft and cosigning (`host:port`).
    pub peer_address: String,
    /// SHA-256 of the node's peer-port TLS certificate (`sha256:<hex>`): the only
    /// certificate accepted from, and expected of, this node on peer connections.
    pub tls_fingerprint: String,
    /// Checkpoint verifier key (`name+keyid+base64`), name = the node's key name.
    pub verifier_key: String,
    /// Organisation that runs the node.
    #[serde(default)]
    pub organisation: String,
}

/// The checkpoint verifier key of `peer`.
fn peer_verifier(peer: &PeerConfig) -> Result<NoteVerifier, ConfigError> {
    NoteVerifier::parse(&peer.verifier_key).map_err(|source| ConfigError::VerifierKey {
        whose: format!("peer {}", peer.id),
        source,
    })
}

impl PeerConfig {
    /// This peer as a member of the Raft membership.
    pub fn member(&self) -> crate::types::BoardNode {
        crate::types::BoardNode {
            addr: self.address.clone(),
            peer_addr: self.peer_address.clone(),
            tls_fingerprint: self.tls_fingerprint.clone(),
        }
    }
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
    /// Longest time the leader waits to fill a batch while earlier batches are in
    /// flight (with none in flight it proposes at once).
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
    /// Public listen address: Board API (gRPC), HTTP/JSON, health, reflection, Admin.
    pub listen: SocketAddr,
    /// Peer listen address: Raft and cosigning, mutual TLS with configured peers only.
    pub peer_listen: SocketAddr,
    /// This node's peer-port certificate (PEM), made by `bboard node init`.
    #[serde(default = "default_tls_certificate_file")]
    pub tls_certificate_file: PathBuf,
    /// Its private key (PEM, a secret file).
    #[serde(default = "default_tls_key_file")]
    pub tls_key_file: PathBuf,
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

fn default_tls_certificate_file() -> PathBuf {
    PathBuf::from("tls.crt")
}

fn default_tls_key_file() -> PathBuf {
    PathBuf::from("tls.key")
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
            for file in [
                &mut config.key_file,
                &mut config.tls_certificate_file,
                &mut config.tls_key_file,
            ] {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Checks internal consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let own = self
            .own_peer()
            .ok_or(ConfigError::NotInPeers(self.node_id))?;
        for (i, a) in self.peers.iter().enumerate() {
            if self.peers[i + 1..].iter().any(|b| b.id == a.id) {
                return Err(ConfigError::DuplicatePeer(a.id));
            }
        }
        self.peer_endpoints()?;
        if let Some(voter) = self
            .initial_voters
            .iter()
            .find(|voter| !self.peers.iter().any(|p| p.id == **voter))
        {
            return Err(ConfigError::UnknownInitialVoter(*voter));
        }
        let verifier = peer_verifier(own)?;
        if verifier.name() != self.name {
            return Err(ConfigError::OwnKeyName {
                key_name: verifier.name().to_owned(),
                node_name: self.name.clone(),
            });
        }
        self.policy()?;
        self.admin_verifying_keys()?;
        let raft = &self.raft;
        if raft.election_timeout_min_ms <= raft.heartbeat_ms
            || raft.election_timeout_max_ms <= raft.election_timeout_min_ms
        {
            return Err(ConfigError::RaftTiming);
        }
        if self.limits.batch_max_entries == 0 || self.limits.max_page_entries == 0 {
            return Err(ConfigError::Limits);
        }
        Ok(())
    }

    /// The admin keys, parsed.
    pub fn admin_verifying_keys(&self) -> Result<Vec<ed25519_dalek::VerifyingKey>, ConfigError> {
        self.admin_keys
            .iter()
            .map(|k| {
                hex::decode(k)
                    .ok()
                    .and_then(|b| bboard_core::envelope::parse_public_key(&b).ok())
                    .ok_or_else(|| ConfigError::AdminKey(k.clone()))
            })
            .collect()
    }

    /// The cosignature policy of this cluster: the peers' keys, k of n.
    pub fn policy(&self) -> Result<CosignaturePolicy, ConfigError> {
        let keys = self
            .peers
            .iter()
            .map(peer_verifier)
            .collect::<Result<Vec<_>, _>>()?;
        let policy = match self.cosign_threshold {
            Some(k) => CosignaturePolicy::new(&self.origin, keys, k),
            None => CosignaturePolicy::majority(&self.origin, keys),
        };
        let policy = policy.map_err(|source| ConfigError::Policy {
            what: "cosign_threshold",
            source,
        })?;
        match self.witness_threshold {
            None | Some(0) => Ok(policy),
            Some(m) => policy
                .with_witnesses(self.witness_verifiers()?, m)
                .map_err(|source| ConfigError::Policy {
                    what: "witness_threshold",
                    source,
                }),
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
                NoteVerifier::parse(&w.verifier_key).map_err(|source| ConfigError::VerifierKey {
                    whose: format!("witness {}", w.url),
                    source,
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
            .map_err(|e| ConfigError::Raft(Box::new(e)))
    }

    /// Where each peer's peer port is and the certificate it must present.
    pub fn peer_endpoints(
        &self,
    ) -> Result<std::collections::BTreeMap<NodeId, crate::peer::PeerEndpoint>, ConfigError> {
        self.peers
            .iter()
            .map(|p| {
                let invalid = |reason| ConfigError::PeerEndpoint { id: p.id, reason };
                let fingerprint = crate::peer::Fingerprint::parse(&p.tls_fingerprint)
                    .map_err(|e| invalid(e.into()))?;
                if p.peer_address.is_empty() {
                    return Err(invalid(PeerEndpointError::NoPeerAddress));
                }
                let endpoint = crate::peer::PeerEndpoint {
                    address: p.peer_address.clone(),
                    fingerprint,
                };
                Ok((p.id, endpoint))
            })
            .collect()
    }

    /// This node's entry in `peers`.
    pub fn own_peer(&self) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.id == self.node_id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer(id: NodeId) -> PeerConfig {
        let key = ed25519_dalek::SigningKey::from_bytes(&[id as u8; 32]);
        let signer = bboard_core::checkpoint::NoteSigner::new(&format!("node-{id}"), key).unwrap();
        PeerConfig {
            id,
            address: format!("127.0.0.1:{}", 7100 + id),
            peer_address: format!("127.0.0.1:{}", 7200 + id),
            tls_fingerprint: crate::peer::Fingerprint::of(&[id as u8]).to_string(),
            verifier_key: signer.verifier().to_string(),
            organisation: format!("org-{id}"),
        }
    }

    fn config() -> NodeConfig {
        NodeConfig {
            node_id: 1,
            name: "node-1".into(),
            organisation: "org-1".into(),
            origin: "config.test/board".into(),
            data_dir: "data".into(),
            key_file: "node.key".into(),
            listen: "127.0.0.1:7101".parse().unwrap(),
            peer_listen: "127.0.0.1:7201".parse().unwrap(),
            tls_certificate_file: default_tls_certificate_file(),
            tls_key_file: default_tls_key_file(),
            admin_keys: vec![hex::encode(
                ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                    .verifying_key()
                    .as_bytes(),
            )],
            cosign_threshold: None,
            initial_voters: vec![1, 2, 3],
            peers: (1..=3).map(peer).collect(),
            raft: RaftTuning::default(),
            limits: Limits::default(),
            witnesses: Vec::new(),
            witness_threshold: None,
        }
    }

    #[test]
    fn each_inconsistency_is_named_by_its_own_error() {
        config().validate().unwrap();
        let check = |edit: &dyn Fn(&mut NodeConfig), expected: &dyn Fn(&ConfigError) -> bool| {
            let mut config = config();
            edit(&mut config);
            let error = config.validate().unwrap_err();
            assert!(expected(&error), "unexpected {error:?}");
        };
        check(&|c| c.node_id = 9, &|e| {
            matches!(e, ConfigError::NotInPeers(9))
        });
        check(&|c| c.peers[2].id = 2, &|e| {
            matches!(e, ConfigError::DuplicatePeer(2))
        });
        check(&|c| c.initial_voters.push(5), &|e| {
            matches!(e, ConfigError::UnknownInitialVoter(5))
        });
        check(&|c| c.peers[1].tls_fingerprint = "sha256:00".into(), &|e| {
            matches!(
                e,
                ConfigError::PeerEndpoint {
                    id: 2,
                    reason: PeerEndpointError::Fingerprint(_)
                }
            )
        });
        check(&|c| c.peers[2].peer_address.clear(), &|e| {
            matches!(
                e,
                ConfigError::PeerEndpoint {
                    id: 3,
                    reason: PeerEndpointError::NoPeerAddress
                }
            )
        });
        check(&|c| c.peers[1].verifier_key = "garbage".into(), &|e| {
            matches!(e, ConfigError::VerifierKey { .. })
        });
        check(&|c| c.name = "node-x".into(), &|e| {
            matches!(e, ConfigError::OwnKeyName { .. })
        });
        check(&|c| c.cosign_threshold = Some(4), &|e| {
            matches!(
                e,
                ConfigError::Policy {
                    what: "cosign_threshold",
                    ..
                }
            )
        });
        check(&|c| c.admin_keys.push("zz".into()), &|e| {
            matches!(e, ConfigError::AdminKey(_))
        });
        check(&|c| c.raft.heartbeat_ms = 5000, &|e| {
            matches!(e, ConfigError::RaftTiming)
        });
        check(&|c| c.limits.max_page_entries = 0, &|e| {
            matches!(e, ConfigError::Limits)
        });
    }

    #[test]
    fn a_written_configuration_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config().to_toml().unwrap()).unwrap();
        let loaded = NodeConfig::load(&path).unwrap();
        assert_eq!(loaded.peers, config().peers);
        assert_eq!(
            loaded.tls_key_file,
            dir.path().join("tls.key"),
            "relative to the file"
        );
    }
}
