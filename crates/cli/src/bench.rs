//! `bboard bench`: a load generator for a terminal fleet. Clients append entries of a
//! given size, closed loop (each waits for its verified receipt, then sends the next)
//! or open loop (a total rate, each append timed from when it was due, so a slow
//! board cannot hide its queueing), and the command reports throughput, latency to a
//! receipt verified against the k-of-n node signatures, and errors by kind.
//!
//! With `--workload proofs` it measures the read side instead: after appending
//! `--prefill` entries (keeping their receipts' leaf hashes), each client asks one node
//! (clients spread over the nodes) for the inclusion proof of a random one of them in
//! the node's latest checkpoint, and verifies the proof and the checkpoint's k-of-n
//! signatures, as a voter checking a receipt does.
//!
//! Without `--endpoint` it starts its own local cluster as separate `bboard node run`
//! processes (fsync on, peer TLS on, as deployed) in a temporary directory, and stops
//! it at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bboard_client::{BoardClient, ClientError, ClientOptions};
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::board_cmds::{runtime, TrustArgs};
use crate::devcluster::{config_path, post_genesis, write_cluster};
use crate::keys::read_private_key;

/// Most concurrent clients.
const MAX_CLIENTS: usize = 4096;
/// Longest run.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most appends one run makes (the latencies are kept in memory: 4 bytes each).
const MAX_COUNT: u64 = 10_000_000;
/// Board origin of the cluster the bench starts.
const LOCAL_ORIGIN: &str = "bench.bboard.local/board";

/// Arguments of `bboard bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Nodes to load (host:port, repeatable; needs --trusted-keys, --origin and
    /// --key). Without any, a local cluster of --nodes processes is started.
    #[arg(long = "endpoint", value_name = "HOST:PORT")]
    pub(crate) endpoints: Vec<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Key to sign the entries with (registered on the board), with --endpoint.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Nodes of the local cluster started without --endpoint.
    #[arg(long, default_value_t = 3)]
    pub(crate) nodes: u64,
    /// Where the local cluster keeps its data (a fresh subdirectory, removed at the
    /// end). Use the disk the nodes would use: on tmpfs an fsync costs nothing.
    #[arg(long, value_name = "DIR", default_value_os_t = std::env::temp_dir())]
    pub(crate) data_dir: PathBuf,
    /// Concurrent clients, each with its own connections.
    #[arg(long, default_value_t = 1)]
    pub(crate) clients: usize,
    /// Open loop: appends per second in total, spread over the clients (default:
    /// closed loop).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Bytes of each entry's note text.
    #[arg(long, default_value_t = 256)]
    pub(crate) value_size: usize,
    /// Seconds to measure for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many appends instead (or at --duration, whichever first).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of load before measuring (connections, leader discovery, caches).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Give each client its own memo of verified checkpoints, as terminals on separate
    /// machines have (default: the clients of this process share one, so a checkpoint
    /// that many receipts carry has its signatures checked once per process; every
    /// receipt is verified against k-of-n signatures either way).
    #[arg(long)]
    independent_clients: bool,
    /// What the clients do: append entries, or fetch and verify inclusion proofs.
    #[arg(long, value_enum, default_value_t = Workload::Appends)]
    workload: Workload,
    /// With --workload proofs: entries appended first, whose proofs are then asked for.
    #[arg(long, default_value_t = 2000)]
    prefill: u64,
    /// With --workload scale: the board sizes to grow the board to and measure at
    /// (comma-separated, ascending).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub(crate) sizes: Vec<u64>,
}

/// What the bench clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Append entries, each timed to its verified receipt.
    Appends,
    /// Fetch inclusion proofs of existing entries in the latest checkpoint, each timed
    /// to the verified proof.
    Proofs,
    /// Grow a local board through each of --sizes and measure, at each, what a board
    /// that size costs: disk per entry, a node's restart time and memory, and the
    /// latency of verified inclusion proofs.
    Scale,
}

/// Most entries `--prefill` appends.
const MAX_PREFILL: u64 = 1_000_000;

/// Latency percentiles, in milliseconds.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

/// What one run measured (the `--json` output).
#[derive(Serialize, Debug)]
pub struct BenchReport {
    system: &'static str,
    /// `appends` or `inclusion proofs`.
    workload: &'static str,
    clients: usize,
    value_size: usize,
    mode: String,
    duration_s: f64,
    completed: u64,
    throughput_per_s: f64,
    latency_ms: Latency,
    errors: BTreeMap<String, u64>,
    nodes: String,
    verified_against: String,
}

/// Percentiles of `micros` (sorted in place).
pub(crate) fn latency(micros: &mut [u32]) -> Latency {
    if micros.is_empty() {
        return Latency::default();
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
        f64::from(micros[rank - 1]) / 1000.0
    };
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: f64::from(micros[micros.len() - 1]) / 1000.0,
    }
}

/// The kind of a failed append, for the error counts.
pub(crate) fn error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Rejected { code, .. } | ClientError::Rpc { code, .. } => format!("{code:?}"),
        ClientError::OutcomeUnknown { .. } => "OutcomeUnknown".into(),
        ClientError::LandedUnverified { .. } => "LandedUnverified".into(),
        ClientError::Verification(_) => "Verification".into(),
        other => format!("{other}").chars().take(40).collect(),
    }
}

/// A local cluster of node processes, killed when dropped.
pub(crate) struct LocalCluster {
    children: Vec<Child>,
    pub(crate) endpoints: Vec<String>,
    pub(crate) authority: SigningKey,
    pub(crate) dir: tempfile::TempDir,
    /// Each node's configuration, by position (node id − 1).
    pub(crate) configs: Vec<bboard_node::config::NodeConfig>,
    exe: PathBuf,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl LocalCluster {
    /// Writes and starts `nodes` node processes, waits for a leader and posts the
    /// genesis.
    pub(crate) async fn start(nodes: u64, parent: &Path) -> Result<LocalCluster> {
        let dir = tempfile::Builder::new()
            .prefix("bboard-bench-")
            .tempdir_in(parent)
            .with_context(|| format!("creating the cluster directory in {}", parent.display()))?;
        write_cluster(dir.path(), nodes, 0, LOCAL_ORIGIN)?;
        let exe = std::env::current_exe().context("finding the bboard binary")?;
        let authority = read_private_key(&dir.path().join("authority.key"))?;
        let mut cluster = LocalCluster {
            children: Vec::new(),
            endpoints: Vec::new(),
            authority,
            dir,
            configs: Vec::new(),
            exe,
        };
        for id in 1..=nodes {
            let config =
                bboard_node::config::NodeConfig::load(&config_path(cluster.dir.path(), id))?;
            cluster.endpoints.push(config.listen.to_string());
            cluster.configs.push(config);
            let child = cluster.spawn(id as usize - 1)?;
            cluster.children.push(child);
        }
        post_genesis(
            cluster.dir.path(),
            &cluster.configs,
            &cluster.authority,
            &cluster.endpoints[0],
        )
        .await?;
        Ok(cluster)
    }

    /// Starts the process of the node at `position`, appending to its log.
    fn spawn(&self, position: usize) -> Result<Child> {
        let id = position + 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .context("opening a node log")?;
        Command::new(&self.exe)
            .args(["node", "run", "--config"])
            .arg(config_path(self.dir.path(), id as u64))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("node log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {id}"))
    }

    /// Kills the node at `position` (as a crash would: no clean shutdown).
    pub(crate) fn kill(&mut self, position: usize) -> Result<()> {
        let child = &mut self.children[position];
        child.kill().context("killing a node")?;
        child.wait().context("waiting for a killed node")?;
        Ok(())
    }

    /// Starts the node at `position` again; its process id.
    pub(crate) fn restart(&mut self, position: usize) -> Result<u32> {
        let child = self.spawn(position)?;
        let pid = child.id();
        self.children[position] = child;
        Ok(pid)
    }

    pub(crate) fn policy(&self) -> Result<CosignaturePolicy> {
        let keys = crate::read_verifier_keys(&self.dir.path().join("trusted-keys.txt"))?;
        Ok(CosignaturePolicy::majority(LOCAL_ORIGIN, keys)?)
    }
}

/// When each append is due: closed loop (now) or open loop (a shared schedule).
enum Pace {
    Closed,
    Open {
        start: Instant,
        interval: Duration,
        next: AtomicU64,
    },
}

impl Pace {
    /// The time the next append is due, waiting until then.
    async fn next(&self) -> Instant {
        match self {
            Pace::Closed => Instant::now(),
            Pace::Open {
                start,
                interval,
                next,
            } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let due = *start + interval.mul_f64(n as f64);
                tokio::time::sleep_until(due.into()).await;
                due
            }
        }
    }
}

/// What one client measured.
#[derive(Default)]
struct ClientLog {
    micros: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

/// Shared state of a run.
struct Run {
    stop: AtomicBool,
    measuring: AtomicBool,
    /// Appends started while measuring, against `limit`.
    started: AtomicU64,
    limit: u64,
    pace: Pace,
    done: AtomicU64,
}

/// A note of `size` random printable bytes, signed by `key`.
pub(crate) fn envelope(
    key: &SigningKey,
    size: usize,
    rng: &mut rand::rngs::StdRng,
) -> SignedEnvelope {
    let text: String = (0..size)
        .map(|_| char::from(rng.sample(rand::distributions::Alphanumeric)))
        .collect();
    let body = pb::EntryBody {
        election_id: String::new(),
        created_unix_ms: 0,
        kind: Some(pb::entry_body::Kind::Note(pb::Note { text })),
    };
    SignedEnvelope::sign_body(&body, key)
}

/// One client's closed or open loop: `prepare` readies the next operation outside the
/// measured time (an append's envelope is signed before the clock starts), `operate`
/// runs it; each measured success is timed from when it was due.
async fn drive<P, F, Fut>(
    run: Arc<Run>,
    mut prepare: impl FnMut() -> P,
    mut operate: F,
) -> ClientLog
where
    F: FnMut(P) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut log = ClientLog::default();
    while !run.stop.load(Ordering::Relaxed) {
        let measuring = run.measuring.load(Ordering::Relaxed);
        if measuring && run.started.fetch_add(1, Ordering::Relaxed) >= run.limit {
            break;
        }
        let prepared = prepare();
        let due = run.pace.next().await;
        if run.stop.load(Ordering::Relaxed) {
            break;
        }
        let result = operate(prepared).await;
        if !measuring {
            continue;
        }
        match result {
            Ok(()) => {
                let micros = due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                log.micros.push(micros);
                run.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(kind) => *log.errors.entry(kind).or_default() += 1,
        }
    }
    log
}

async fn client_loop(
    client: BoardClient,
    key: SigningKey,
    value_size: usize,
    seed: u64,
    run: Arc<Run>,
) -> ClientLog {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let client = &client;
    drive(
        run,
        || envelope(&key, value_size, &mut rng),
        |envelope| async move {
            client
                .append(&envelope)
                .await
                .map(|_| ())
                .map_err(|e| error_kind(&e))
        },
    )
    .await
}

/// Entries on the board whose proofs the proof clients ask for: index and leaf hash,
/// from the receipts of the appends that put them there.
type Known = Arc<Vec<(u64, bboard_merkle::Hash)>>;

/// Appends `count` entries (64 at a time) and keeps what their receipts say.
async fn prefill(
    client: &BoardClient,
    key: &SigningKey,
    value_size: usize,
    count: u64,
) -> Result<Known> {
    use futures::StreamExt as _;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let envelopes: Vec<SignedEnvelope> = (0..count)
        .map(|_| envelope(key, value_size, &mut rng))
        .collect();
    let results: Vec<_> = futures::stream::iter(envelopes.iter().map(|e| client.append(e)))
        .buffer_unordered(64)
        .collect()
        .await;
    let mut known = Vec::with_capacity(results.len());
    for result in results {
        let appended = result.context("appending the entries whose proofs are measured")?;
        let hash = bboard_merkle::Hash::from_hex(&appended.receipt.leaf_hash)
            .context("a receipt's leaf hash")?;
        known.push((appended.receipt.leaf_index, hash));
    }
    Ok(Arc::new(known))
}

/// Waits (at most 30 s) until every node's latest final checkpoint covers `size`
/// leaves, so that every proof asked for exists on the node asked: a follower's final
/// checkpoint trails the leader's receipts by a push.
pub(crate) async fn wait_until_final_everywhere(endpoints: &[String], size: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for endpoint in endpoints {
        let mut node =
            bboard_proto::v1::board_client::BoardClient::connect(format!("http://{endpoint}"))
                .await
                .with_context(|| format!("connecting to {endpoint}"))?;
        loop {
            let latest = node
                .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
                .await
                .map(tonic::Response::into_inner);
            if latest.is_ok_and(|cp| cp.r#final && cp.size >= size) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{endpoint} has no final checkpoint covering the {size} entries appended"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Fetches the proof of one known entry from one node and verifies it.
pub(crate) async fn verified_proof(
    node: &mut bboard_proto::v1::board_client::BoardClient<tonic::transport::Channel>,
    policy: &CosignaturePolicy,
    memo: &bboard_client::CheckpointMemo,
    (index, leaf_hash): (u64, bboard_merkle::Hash),
) -> Result<(), String> {
    let response = node
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf: Some(pb::get_inclusion_proof_request::Leaf::Index(index)),
            tree_size: 0,
        })
        .await
        .map_err(|status| format!("{:?}", status.code()))?
        .into_inner();
    // A note seen before is answered by the memo without being parsed again.
    let checkpoint = memo
        .verify_note(policy, &response.signed_checkpoint)
        .map_err(|e| match e {
            bboard_core::Error::MalformedCheckpoint(_)
            | bboard_core::Error::MalformedNote(_)
            | bboard_core::Error::TooLarge { .. } => "MalformedCheckpoint".to_string(),
            _ => "Verification".to_string(),
        })?;
    let proof = response
        .proof
        .iter()
        .map(|h| bboard_merkle::Hash::from_slice(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "MalformedProof".to_string())?;
    bboard_merkle::verify_inclusion(
        &bboard_merkle::Blake3Hasher,
        &leaf_hash,
        bboard_merkle::LeafIndex(index),
        checkpoint.checkpoint.size,
        &proof,
        &checkpoint.checkpoint.root,
    )
    .map_err(|_| "Verification".to_string())
}

async fn proof_loop(
    endpoint: String,
    policy: CosignaturePolicy,
    memo: bboard_client::CheckpointMemo,
    known: Known,
    seed: u64,
    run: Arc<Run>,
) -> Result<ClientLog> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .context("a node address")?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let node = bboard_proto::v1::board_client::BoardClient::new(channel);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (policy, memo) = (&policy, &memo);
    Ok(drive(
        run,
        || known[rng.gen_range(0..known.len())],
        |entry| {
            let mut node = node.clone();
            async move { verified_proof(&mut node, policy, memo, entry).await }
        },
    )
    .await)
}

/// `bboard bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    ensure!(
        (1..=MAX_CLIENTS).contains(&args.clients),
        "--clients must be between 1 and {MAX_CLIENTS}"
    );
    ensure!(
        (1..=bboard_core::envelope::MAX_BODY_BYTES - 1024).contains(&args.value_size),
        "--value-size must be between 1 and {} bytes",
        bboard_core::envelope::MAX_BODY_BYTES - 1024
    );
    let duration = Duration::from_secs(args.duration.max(1));
    ensure!(
        duration <= MAX_DURATION,
        "--duration must be at most {} s",
        MAX_DURATION.as_secs()
    );
    let limit = args.count.unwrap_or(MAX_COUNT);
    ensure!(
        (1..=MAX_COUNT).contains(&limit),
        "--count must be between 1 and {MAX_COUNT}"
    );
    ensure!(
        args.workload == Workload::Appends || (1..=MAX_PREFILL).contains(&args.prefill),
        "--prefill must be between 1 and {MAX_PREFILL}"
    );
    if args.workload == Workload::Scale {
        return runtime()?.block_on(crate::bench_scale::run(args));
    }
    if let Some(rate) = args.rate {
        ensure!(
            rate.is_finite() && rate > 0.0 && rate <= 1e6,
            "--rate must be a positive number of appends per second (at most 1,000,000)"
        );
    }
    runtime()?.block_on(run_async(args, duration, limit))
}

async fn run_async(args: BenchArgs, duration: Duration, limit: u64) -> Result<()> {
    let (local, endpoints, policy, key) = if args.endpoints.is_empty() {
        if !args.json {
            eprintln!("starting a local cluster of {} node processes…", args.nodes);
        }
        let local = LocalCluster::start(args.nodes, &args.data_dir).await?;
        let endpoints = local.endpoints.clone();
        let policy = local.policy()?;
        let key = local.authority.clone();
        (Some(local), endpoints, policy, key)
    } else {
        let Some(policy) = args.trust.policy()? else {
            bail!("with --endpoint, give --trusted-keys and --origin: receipts are verified");
        };
        let key = read_private_key(args.key.as_ref().context("with --endpoint, give --key")?)?;
        crate::preflight::check_settings(&args.endpoints, &policy).await?;
        (None, args.endpoints.clone(), policy, key)
    };
    let verified_against = format!(
        "{} of {} node signatures, origin {}; {}",
        policy.threshold(),
        policy.keys().len(),
        policy.origin(),
        if args.independent_clients {
            "each client checks every checkpoint itself"
        } else {
            "a checkpoint many receipts carry is checked once per process"
        }
    );
    let pace = match args.rate {
        None => Pace::Closed,
        Some(rate) => Pace::Open {
            start: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate),
            next: AtomicU64::new(0),
        },
    };
    let run = Arc::new(Run {
        stop: AtomicBool::new(false),
        measuring: AtomicBool::new(args.warmup == 0),
        started: AtomicU64::new(0),
        limit,
        pace,
        done: AtomicU64::new(0),
    });
    let options = ClientOptions {
        policy: Some(policy),
        ..ClientOptions::default()
    };
    let known = match args.workload {
        // Scale runs are dispatched before any of this.
        Workload::Appends | Workload::Scale => None,
        Workload::Proofs => {
            if !args.json {
                eprintln!(
                    "appending {} entries whose proofs are then asked for…",
                    args.prefill
                );
            }
            let client = BoardClient::connect(endpoints.clone(), options.clone())
                .await
                .context("connecting to the board")?;
            let known = prefill(&client, &key, args.value_size, args.prefill).await?;
            let size = known.iter().map(|(index, _)| index + 1).max().unwrap_or(0);
            wait_until_final_everywhere(&endpoints, size).await?;
            Some(known)
        }
    };
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let mut options = options.clone();
        if args.independent_clients {
            options.checkpoint_memo = bboard_client::CheckpointMemo::new();
        }
        let seed = i as u64 + 1;
        let task = match &known {
            None => {
                let client = BoardClient::connect(endpoints.clone(), options)
                    .await
                    .context("connecting to the board")?;
                let loop_ = client_loop(client, key.clone(), args.value_size, seed, run.clone());
                tokio::spawn(async move { Ok(loop_.await) })
            }
            Some(known) => tokio::spawn(proof_loop(
                endpoints[i % endpoints.len()].clone(),
                options.policy.clone().context("a policy")?,
                options.checkpoint_memo.clone(),
                known.clone(),
                seed,
                run.clone(),
            )),
        };
        tasks.push(task);
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    run.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let progress = progress_bar(&args, duration, limit);
    while started.elapsed() < duration && run.done.load(Ordering::Relaxed) < limit {
        if tasks.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.set_position(match args.count {
            Some(_) => run.done.load(Ordering::Relaxed),
            None => started.elapsed().as_secs().min(duration.as_secs()),
        });
    }
    run.stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let mut micros = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        // A client waiting on its last append finishes within the client timeout.
        let log = task.await.context("a bench client failed")??;
        micros.extend(log.micros);
        for (kind, n) in log.errors {
            *errors.entry(kind).or_default() += n;
        }
    }
    let report = BenchReport {
        system: "bboard",
        workload: match args.workload {
            Workload::Appends | Workload::Scale => "appends",
            Workload::Proofs => "inclusion proofs",
        },
        clients: args.clients,
        value_size: args.value_size,
        mode: match args.rate {
            None => "closed loop".into(),
            Some(rate) => format!("open loop at {rate} operations/s"),
        },
        duration_s: elapsed.as_secs_f64(),
        completed: micros.len() as u64,
        throughput_per_s: micros.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: latency(&mut micros),
        errors,
        nodes: match &local {
            Some(local) => format!(
                "{} local `bboard node run` processes (fsync on, peer TLS on) in {}, removed at the end",
                args.nodes,
                local.dir.path().display()
            ),
            None => endpoints.join(", "),
        },
        verified_against,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else {
        print_report(&report);
    }
    drop(local);
    Ok(())
}

fn progress_bar(args: &BenchArgs, duration: Duration, limit: u64) -> indicatif::ProgressBar {
    if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let (length, unit) = match args.count {
        Some(_) => (limit, "appends"),
        None => (duration.as_secs(), "s"),
    };
    let bar = indicatif::ProgressBar::new(length);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit}"))
    {
        bar.set_style(style);
    }
    bar
}

fn print_report(report: &BenchReport) {
    println!(
        "bboard bench: {} clients, {} B entries, {}, {:.1} s",
        report.clients, report.value_size, report.mode, report.duration_s
    );
    println!("  nodes:          {}", report.nodes);
    let (what, verified) = match report.workload {
        "appends" => ("appends:       ", "receipts:       verified against"),
        _ => ("proofs:        ", "proofs:         verified against"),
    };
    println!("  {verified} {}", report.verified_against);
    println!(
        "  {what} {} ({:.1}/s)",
        report.completed, report.throughput_per_s
    );
    let l = &report.latency_ms;
    println!(
        "  latency (ms):   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if report.errors.is_empty() {
        println!("  errors:         none");
    }
    for (kind, n) in &report.errors {
        println!("  errors:         {kind}: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut micros: Vec<u32> = (1..=1000).rev().map(|ms| ms * 1000).collect();
        let l = latency(&mut micros);
        assert_eq!(
            (l.p50, l.p90, l.p99, l.p999, l.max),
            (500.0, 900.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(latency(&mut []), Latency::default());
        assert_eq!(latency(&mut [1500]).p50, 1.5);
    }

    #[test]
    fn entries_have_the_size_asked_for() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let envelope = envelope(&bboard_testkit::key(1), 256, &mut rng);
        let body = envelope.body().unwrap();
        let Some(pb::entry_body::Kind::Note(note)) = body.kind else {
            panic!("a note");
        };
        assert_eq!(note.text.len(), 256);
    }
}
