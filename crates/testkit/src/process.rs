//! Harness of the multi-process tests (`bboard-cli`'s `chaos.rs`, `tamper.rs`,
//! `censorship.rs`): real `bboard` processes on 127.0.0.1, their configurations, and
//! gRPC helpers to drive and inspect them.
//!
//! The harness cannot see the `bboard` binary itself: a test passes its path
//! (`env!("CARGO_BIN_EXE_bboard")`) to [`Cluster::configure`] and [`run_cli`].
//!
//! Every child process is killed (SIGKILL) and reaped when its [`Cluster`] is dropped,
//! also on panic; each node writes its stdout/stderr to `node.log` in its temporary
//! directory and the tail of every log is printed when a test fails.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bboard_core::checkpoint::{CosignaturePolicy, NoteVerifier};
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::leaf::leaf_hash;
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_node::config::{Limits, RaftTuning};
use bboard_proto::v1::board_client::BoardClient;
use ed25519_dalek::SigningKey;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::{genesis_of_organisations, note_signer, now_unix_ms, register_terminal, ORIGIN};

/// The seed of node `id`'s checkpoint key ([`crate::key`]) in a [`Cluster`].
pub fn node_seed(id: u64) -> u8 {
    9 + id as u8
}

/// The checkpoint signer of node `id` of a [`Cluster`] (`node-{id}`).
pub fn node_signer(id: u64) -> bboard_core::checkpoint::NoteSigner {
    note_signer(&format!("node-{id}"), node_seed(id))
}

/// The admin key of organisation `org-{id}` (the organisation of node `id`; seeds
/// 231 and up, which no test key uses): every
/// node trusts all of them for Admin calls, and the harnesses' genesis names them.
pub fn org_admin_key(id: u64) -> SigningKey {
    crate::key(230 + id as u8)
}

/// The admin key a [`Cluster`]'s CLI calls use: organisation 1's.
pub fn admin_key() -> SigningKey {
    org_admin_key(1)
}

/// The tests run one at a time: each loads the whole (2-core) machine, and the failover
/// time bound must not depend on another cluster running beside it.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Runs a test body on its own multi-threaded runtime while holding [`SERIAL`].
pub fn serially(test: impl std::future::Future<Output = ()>) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// Short Raft timing for tests (defaults: heartbeat 250 ms, election 1–2 s).
pub fn fast_raft() -> RaftTuning {
    RaftTuning {
        heartbeat_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1000,
        ..Default::default()
    }
}

/// One `bboard node run` process (or its configuration, while it is not running).
pub struct NodeProc {
    /// The node id (or any label id for an extra process, e.g. a witness).
    pub id: u64,
    /// Its public `host:port` (Board API, HTTP, Admin).
    pub address: String,
    /// Its peer-port `host:port` (Raft, cosigning; mutual TLS), empty for a process
    /// that is not a node.
    pub peer_address: String,
    /// Its directory (key, configuration, `data/`, log).
    pub dir: PathBuf,
    /// Its configuration file.
    pub config_path: PathBuf,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    /// The path of the `bboard` binary it runs.
    pub bin: PathBuf,
    /// The running process, if any.
    pub child: Option<Child>,
}

impl NodeProc {
    /// Starts `bboard node run` with this node's configuration.
    pub fn start(&mut self) {
        let config = self.config_path.display().to_string();
        self.start_with(&["node", "run", "--config", &config], &[]);
    }

    /// Starts `bboard <args>` as this node's process (e.g. `node rebuild … --run`),
    /// with extra environment variables (e.g. `BBOARD_FAULT`).
    pub fn start_with(&mut self, args: &[&str], env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        writeln!(
            log,
            "=== test: starting node {}: bboard {} ===",
            self.id,
            args.join(" ")
        )
        .unwrap();
        let child = Command::new(&self.bin)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL (`Child::kill` on Unix) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (at most `limit`) for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Panics if the process has exited on its own.
    pub fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("node {} exited unexpectedly: {status}", self.id);
            }
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Snapshot files this node holds.
    pub fn snapshot_files(&self) -> Vec<PathBuf> {
        let dir = self.dir.join("data").join("snapshots");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "snap"))
            .collect()
    }
}

/// A cluster of node processes; kills them all when dropped.
pub struct Cluster {
    /// The nodes, node `id` at index `id - 1` (extra processes may follow).
    pub nodes: Vec<NodeProc>,
    /// The cosignature policy of the configuration (majority of all peers).
    pub policy: CosignaturePolicy,
    /// Every node's checkpoint verifier key, node 1 first.
    pub verifiers: Vec<NoteVerifier>,
    /// The hex file of [`admin_key`], trusted by every node.
    pub admin_key_file: PathBuf,
    /// The admin key file of each organisation (`org-{id}` runs node `id`).
    pub org_admin_key_files: Vec<PathBuf>,
    /// The cluster's temporary directory (one subdirectory per node).
    pub dir: tempfile::TempDir,
    /// The path of the `bboard` binary.
    pub bin: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!(
                    "----- tail of node {} log ({}) -----\n{}",
                    node.id,
                    node.log_path.display(),
                    node.log_tail(40)
                );
            }
        }
    }
}

impl Cluster {
    /// [`genesis_and_keys`] through `endpoints`, verified with this cluster's policy.
    pub async fn genesis_and_keys(
        &self,
        endpoints: &[String],
        authority: &SigningKey,
        terminals: &[SigningKey],
    ) -> Vec<(EnvelopeId, u64)> {
        genesis_and_keys(endpoints, &self.policy, authority, terminals).await
    }

    /// Writes the configurations of `n` nodes (every config lists all `n` peers); nodes
    /// in `voters` list them as initial voters, the others (future learners) none. `bin`
    /// is the `bboard` binary (`env!("CARGO_BIN_EXE_bboard")` in `bboard-cli`'s tests).
    pub fn configure(bin: &str, n: u64, voters: &[u64], raft: RaftTuning) -> Cluster {
        let dir = crate::temp_dir();
        let org_admin_key_files: Vec<PathBuf> = (1..=n)
            .map(|id| {
                let path = dir.path().join(format!("org-{id}-admin.key"));
                std::fs::write(&path, hex::encode(org_admin_key(id).to_bytes())).unwrap();
                path
            })
            .collect();
        let admin_key_file = org_admin_key_files[0].clone();
        let peers = crate::peers(n);
        let mut nodes = Vec::new();
        for peer in &peers {
            let id = peer.id;
            let node_dir = dir.path().join(format!("n{id}"));
            let initial_voters = if voters.contains(&id) {
                voters.to_vec()
            } else {
                Vec::new()
            };
            let config = crate::node_config(
                &node_dir,
                peer,
                &peers,
                initial_voters,
                raft.clone(),
                Limits::default(),
            );
            let config_path = node_dir.join("config.toml");
            std::fs::write(&config_path, config.to_toml().unwrap()).unwrap();
            nodes.push(NodeProc {
                id,
                address: peer.address.clone(),
                peer_address: peer.peer_address.clone(),
                log_path: node_dir.join("node.log"),
                dir: node_dir,
                config_path,
                bin: bin.into(),
                child: None,
            });
        }
        let verifiers: Vec<NoteVerifier> = peers
            .iter()
            .map(|p| NoteVerifier::parse(&p.verifier_key).unwrap())
            .collect();
        Cluster {
            policy: CosignaturePolicy::majority(ORIGIN, verifiers.clone()).unwrap(),
            verifiers,
            nodes,
            admin_key_file,
            org_admin_key_files,
            dir,
            bin: bin.into(),
        }
    }

    /// [`run_cli`] in the cluster's directory.
    pub async fn run_cli(&self, args: Vec<String>, limit: Duration) -> (bool, String) {
        run_cli(&self.bin, self.dir.path(), args, limit).await
    }

    /// [`run_cli_code`] in the cluster's directory.
    pub async fn run_cli_code(&self, args: Vec<String>, limit: Duration) -> (Option<i32>, String) {
        run_cli_code(&self.bin, self.dir.path(), args, limit).await
    }

    /// `n` nodes, all initial voters, started, with a leader and the genesis posted by
    /// the authority `key(1)`; returns the cluster and its public endpoints.
    pub async fn start_with_genesis(bin: &str, n: u64) -> (Cluster, Vec<String>) {
        let ids: Vec<u64> = (1..=n).collect();
        let mut cluster = Cluster::configure(bin, n, &ids, fast_raft());
        for id in &ids {
            cluster.node(*id).start();
        }
        let endpoints = cluster.endpoints(&ids);
        find_leader(&endpoints, Duration::from_secs(30)).await;
        cluster
            .genesis_and_keys(&endpoints, &crate::key(1), &[])
            .await;
        (cluster, endpoints)
    }

    /// Writes `key` as a key file (hex seed) named `name` in the cluster directory;
    /// returns its path.
    pub fn write_key_file(&self, name: &str, key: &SigningKey) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, hex::encode(key.to_bytes())).unwrap();
        path
    }

    /// Writes a trusted-keys file holding one key of no node of this cluster (an
    /// operator's file for another board); returns its path.
    pub fn write_strangers_keys(&self) -> PathBuf {
        let path = self.dir.path().join("strangers.txt");
        let stranger =
            bboard_core::checkpoint::NoteSigner::new("stranger", crate::key(77)).unwrap();
        std::fs::write(&path, format!("{}\n", stranger.verifier())).unwrap();
        path
    }

    /// Writes every node's verifier key to `trusted-keys.txt` in the cluster
    /// directory; returns its path.
    pub fn write_trusted_keys(&self) -> PathBuf {
        let path = self.dir.path().join("trusted-keys.txt");
        let text: String = self.verifiers.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The addresses of nodes `ids`.
    pub fn endpoints(&self, ids: &[u64]) -> Vec<String> {
        ids.iter()
            .map(|id| self.nodes[*id as usize - 1].address.clone())
            .collect()
    }

    /// Node `id`.
    pub fn node(&mut self, id: u64) -> &mut NodeProc {
        &mut self.nodes[id as usize - 1]
    }

    /// Panics if any process has exited on its own.
    pub fn assert_alive(&mut self) {
        for node in &mut self.nodes {
            node.assert_alive();
        }
    }
}

/// A lazy Board client of `address` (1 s connect timeout, 20 s per call).
pub fn board(address: &str) -> BoardClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(20))
        .connect_lazy();
    BoardClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// Status of a node, or `None` if it does not answer within 2 s.
pub async fn status(address: &str) -> Option<pb::StatusResponse> {
    let mut client = board(address);
    match tokio::time::timeout(Duration::from_secs(2), client.status(pb::StatusRequest {})).await {
        Ok(Ok(response)) => Some(response.into_inner()),
        _ => None,
    }
}

/// The node (index into `endpoints`) that reports itself leader; waits up to `limit`.
pub async fn find_leader(endpoints: &[String], limit: Duration) -> usize {
    let started = Instant::now();
    for _ in 0..1000 {
        for (i, endpoint) in endpoints.iter().enumerate() {
            if let Some(s) = status(endpoint).await {
                if s.role == "leader" {
                    return i;
                }
            }
        }
        if started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader among {endpoints:?} within {limit:?}");
}

/// Transient failures: the same envelope is retried (appends are idempotent).
pub fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
    )
}

/// Appends one envelope, trying the endpoints in turn on transient failures.
pub async fn append_one(endpoints: &[String], envelope: &SignedEnvelope) -> pb::AppendResponse {
    let started = Instant::now();
    let mut last = None;
    for attempt in 0..300 {
        let mut client = board(&endpoints[attempt % endpoints.len()]);
        match client
            .append(pb::AppendRequest {
                envelope: Some(envelope.to_proto()),
            })
            .await
        {
            Ok(response) => return response.into_inner(),
            Err(status) if retryable(status.code()) => last = Some(status),
            Err(status) => panic!("append refused: {status:?}"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("append did not succeed within 60 s: {last:?}");
}

/// Genesis by `authority`, then one terminal key per entry of `terminals`; returns the
/// acknowledged (envelope id, index) of each.
pub async fn genesis_and_keys(
    endpoints: &[String],
    policy: &CosignaturePolicy,
    authority: &SigningKey,
    terminals: &[SigningKey],
) -> Vec<(EnvelopeId, u64)> {
    // One organisation per configured node, as the policy lists them.
    let mut envelopes = vec![genesis_of_organisations(
        authority,
        policy.keys().len() as u64,
    )];
    for (i, terminal) in terminals.iter().enumerate() {
        envelopes.push(register_terminal(authority, terminal, i as u64 + 1));
    }
    let mut acked = Vec::new();
    for envelope in &envelopes {
        let response = append_one(endpoints, envelope).await;
        let receipt = Receipt::from_proto(response.receipt.as_ref().unwrap()).unwrap();
        let verified = receipt.verify(policy).unwrap();
        assert_eq!(verified.leaf.envelope.id(), envelope.id());
        acked.push((envelope.id(), verified.leaf_index.0));
    }
    acked
}

/// Waits until every endpoint reports `tree_size == size`; returns their statuses.
pub async fn wait_for_size(
    endpoints: &[String],
    size: u64,
    limit: Duration,
) -> Vec<pb::StatusResponse> {
    let started = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        seen.clear();
        for endpoint in endpoints {
            seen.push(status(endpoint).await);
        }
        if seen
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.tree_size == size))
        {
            return seen.into_iter().map(Option::unwrap).collect();
        }
        if started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sizes: Vec<_> = seen
        .iter()
        .map(|s| s.as_ref().map(|s| (s.node_id, s.role.clone(), s.tree_size)))
        .collect();
    panic!("nodes did not all reach size {size} within {limit:?}: {sizes:?}");
}

/// All leaves of a node, paged with GetEntries.
pub async fn all_leaves(address: &str, size: u64) -> Vec<Vec<u8>> {
    let mut client = board(address);
    let mut leaves = Vec::with_capacity(size as usize);
    for _ in 0..100_000 {
        if leaves.len() as u64 >= size {
            break;
        }
        let page = client
            .get_entries(pb::GetEntriesRequest {
                start: leaves.len() as u64,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            !page.entries.is_empty(),
            "{address}: empty page at {}",
            leaves.len()
        );
        for entry in page.entries {
            assert_eq!(entry.index, leaves.len() as u64);
            assert_eq!(
                entry.leaf_hash,
                leaf_hash(&entry.leaf_data).as_bytes().to_vec()
            );
            leaves.push(entry.leaf_data);
        }
    }
    assert_eq!(leaves.len() as u64, size, "{address}: entries fetched");
    leaves
}

/// The BLAKE3 Merkle root of `leaves`, computed here.
pub fn recomputed_root(leaves: &[Vec<u8>]) -> bboard_merkle::Hash {
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    bboard_merkle::root_of_leaf_hashes(&bboard_merkle::Blake3Hasher, &hashes)
}

/// The latest final checkpoint of a node once it covers `size`, verified with `policy`.
pub async fn final_checkpoint(
    address: &str,
    size: u64,
    policy: &CosignaturePolicy,
) -> bboard_core::checkpoint::VerifiedCheckpoint {
    let mut client = board(address);
    let started = Instant::now();
    for _ in 0..500 {
        if let Ok(response) = client
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await
        {
            let response = response.into_inner();
            if response.r#final && response.size == size {
                return policy
                    .verify_note(&response.signed_checkpoint)
                    .unwrap_or_else(|e| {
                        panic!("{address}: final checkpoint does not verify: {e}")
                    });
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{address}: no final checkpoint of size {size} within 30 s");
}

/// Runs `bboard <args>` to completion (at most `limit`); returns success and its output.
pub async fn run_cli(bin: &Path, dir: &Path, args: Vec<String>, limit: Duration) -> (bool, String) {
    let (code, output) = run_cli_code(bin, dir, args, limit).await;
    (code == Some(0), output)
}

/// Runs `bboard <args>` to completion (at most `limit`); returns its exit code (`None`
/// when it was killed at the limit) and its output. Envelopes it keeps after an unknown
/// outcome go to `dir/bboard-unsent`.
pub async fn run_cli_code(
    bin: &Path,
    dir: &Path,
    args: Vec<String>,
    limit: Duration,
) -> (Option<i32>, String) {
    let out_path = dir.join(format!("cli-{}.out", now_unix_ms()));
    let unsent_dir = dir.join("bboard-unsent");
    let bin = bin.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = std::fs::File::create(&out_path).unwrap();
        let mut child = Command::new(&bin)
            .args(&args)
            // Envelopes of unknown outcomes stay in the test's directory.
            .env("BBOARD_UNSENT_DIR", &unsent_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut status = None;
        for _ in 0..100_000 {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            if started.elapsed() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let output = format!("bboard {}\n{output}", args.join(" "));
        (status.and_then(|s| s.code()), output)
    })
    .await
    .unwrap()
}

/// Runs an admin command against the current leader, retrying (bounded) when the node
/// it reached was not the leader any more. A membership change (`add-learner`,
/// `change-membership`) goes through the majority rule as operators run it: organisation
/// 1 proposes it, the next organisations countersign until a majority signed, and
/// organisation 1 submits it.
pub async fn admin_on_leader(cluster: &Cluster, voters: &[u64], command: &[String]) -> String {
    let command = match command.first().map(String::as_str) {
        Some("add-learner" | "change-membership") => {
            vec!["submit".to_owned(), cluster.authorise(command).await]
        }
        _ => command.to_vec(),
    };
    let endpoints = cluster.endpoints(voters);
    let mut last = String::new();
    for _ in 0..5 {
        let leader = &endpoints[find_leader(&endpoints, Duration::from_secs(30)).await];
        let mut args: Vec<String> = vec![
            "admin".into(),
            "--endpoint".into(),
            leader.clone(),
            "--key".into(),
            cluster.admin_key_file.display().to_string(),
            "--timeout-secs".into(),
            "150".into(),
        ];
        args.extend(command.iter().cloned());
        let (ok, output) = cluster.run_cli(args, Duration::from_secs(180)).await;
        println!("{output}");
        if ok {
            return output;
        }
        last = output;
        if !last.contains("FailedPrecondition") || !last.contains("leader") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("admin command failed:\n{last}");
}

impl Cluster {
    /// Writes a command file for a membership `command` (as `bboard admin` takes it;
    /// an `add-learner` gains the node's peer address and pin), signed by the admins of
    /// the first `signers` organisations; returns its path.
    pub async fn authorise_by(&self, command: &[String], signers: usize) -> String {
        let mut change = command.to_vec();
        if change[0] == "add-learner" && !change.iter().any(|a| a == "--peer-address") {
            let id: u64 = change
                .iter()
                .position(|a| a == "--id")
                .and_then(|i| change.get(i + 1))
                .and_then(|id| id.parse().ok())
                .expect("add-learner --id");
            change.extend([
                "--peer-address".to_owned(),
                self.nodes[id as usize - 1].peer_address.clone(),
                "--tls-fingerprint".to_owned(),
                crate::tls_identity(id).fingerprint().to_string(),
            ]);
        }
        static FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.dir.path().join(format!("membership-{n}.json"));
        let file = file.display().to_string();
        for (i, key) in self.org_admin_key_files.iter().take(signers).enumerate() {
            let mut args: Vec<String> =
                vec!["admin".into(), "--key".into(), key.display().to_string()];
            if i == 0 {
                args.extend(["propose".to_owned(), "--out".to_owned(), file.clone()]);
                args.extend(change.iter().cloned());
            } else {
                args.extend(["countersign".to_owned(), file.clone()]);
            }
            let (ok, output) = self.run_cli(args, Duration::from_secs(30)).await;
            assert!(ok, "preparing the membership change: {output}");
        }
        file
    }

    /// [`Cluster::authorise_by`] a strict majority of the organisations.
    pub async fn authorise(&self, command: &[String]) -> String {
        self.authorise_by(command, self.nodes.len() / 2 + 1).await
    }
}

/// Sends envelopes in one AppendMany without waiting for receipts (a lone or lying
/// leader cannot produce k-of-n ones).
pub async fn append_many_unacknowledged(endpoint: &str, envelopes: &[SignedEnvelope]) {
    let request = pb::AppendManyRequest {
        envelopes: envelopes.iter().map(SignedEnvelope::to_proto).collect(),
    };
    let _ =
        tokio::time::timeout(Duration::from_secs(2), board(endpoint).append_many(request)).await;
}
