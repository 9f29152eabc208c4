//! `bboard bench --workload scale`: what a board of a given size costs a node.
//!
//! The bench grows its own local cluster's board through each of `--sizes` with
//! `--clients` closed-loop appenders (every receipt verified, as terminals do), and at
//! each size:
//!
//! - waits until every node's final checkpoint covers the board, then kills node 1 as
//!   a crash would, and measures its data directory (all of it: sled store and
//!   snapshot file) against the leaf bytes the board holds;
//! - starts node 1 again and times it until it serves the whole board (its start-up
//!   integrity check included), then reads its resident and peak memory;
//! - asks node 1 for verified inclusion proofs of entries sampled evenly over the
//!   board, one at a time, and reports their latency.
//!
//! The board is grown through the real append path, not written behind the nodes'
//! backs, so the figures include everything a node does to get there.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::pb;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::bench::{
    envelope, error_kind, latency, verified_proof, wait_until_final_everywhere, BenchArgs, Latency,
    LocalCluster,
};

/// Largest board the scale workload grows.
const MAX_SCALE_ENTRIES: u64 = 20_000_000;
/// Entries whose proofs can be asked for, sampled evenly over the largest size.
const SAMPLES: u64 = 10_000;
/// Proofs asked for at each size (one at a time, so the figure is latency).
const PROOFS_PER_SIZE: usize = 2_000;
/// Failed appends tolerated while growing the board (each is retried).
const MAX_FAILED_APPENDS: u64 = 1_000;
/// Longest a restarted node may take to serve its board again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(600);

/// What one board size costs (a row of the report).
#[derive(Serialize, Debug)]
pub struct ScaleRow {
    /// Entries on the board.
    entries: u64,
    /// Appends per second while growing to this size (from the previous one).
    appends_per_s: f64,
    /// Bytes of node 1's data directory.
    disk_bytes: u64,
    /// Of which the latest snapshot file.
    snapshot_bytes: u64,
    /// `disk_bytes / entries`.
    disk_bytes_per_entry: f64,
    /// Mean leaf bytes of the appended entries.
    leaf_bytes_per_entry: f64,
    /// `disk_bytes_per_entry / leaf_bytes_per_entry`.
    disk_to_leaf_ratio: f64,
    /// Seconds from starting node 1 to it serving the whole board.
    restart_s: f64,
    /// Node 1's resident memory after its restart, then after the proofs (MiB).
    rss_mib: Option<f64>,
    /// Node 1's peak resident memory since its restart (MiB).
    peak_rss_mib: Option<f64>,
    /// Latency of verified inclusion proofs from node 1.
    proof_latency_ms: Latency,
}

/// The `--json` output of a scale run.
#[derive(Serialize, Debug)]
pub struct ScaleReport {
    workload: &'static str,
    nodes: u64,
    clients: usize,
    value_size: usize,
    rows: Vec<ScaleRow>,
}

/// Checks the sizes asked for: ascending, each above the genesis entries, bounded.
fn check_sizes(sizes: &[u64]) -> Result<()> {
    ensure!(!sizes.is_empty(), "--sizes needs at least one board size");
    ensure!(
        sizes.windows(2).all(|pair| pair[0] < pair[1]),
        "--sizes must be strictly ascending"
    );
    ensure!(
        sizes[0] >= 10 && sizes[sizes.len() - 1] <= MAX_SCALE_ENTRIES,
        "--sizes must be between 10 and {MAX_SCALE_ENTRIES} entries"
    );
    Ok(())
}

/// `bboard bench --workload scale`.
pub(crate) async fn run(args: BenchArgs) -> Result<()> {
    check_sizes(&args.sizes)?;
    ensure!(
        args.endpoints.is_empty(),
        "--workload scale starts its own cluster (it restarts a node and reads its disk): drop --endpoint"
    );
    if !args.json {
        eprintln!(
            "starting a local cluster of {} node processes in {}…",
            args.nodes,
            args.data_dir.display()
        );
    }
    let mut cluster = LocalCluster::start(args.nodes, &args.data_dir).await?;
    let policy = cluster.policy()?;
    let options = ClientOptions {
        policy: Some(policy.clone()),
        ..ClientOptions::default()
    };
    let stride = (args.sizes[args.sizes.len() - 1] / SAMPLES).max(1);
    let grown = Arc::new(Grown::default());
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let board = board_size(&cluster.endpoints[0]).await?;
        let started = Instant::now();
        let appended_before = grown.appended.load(Ordering::Relaxed);
        if size > board {
            grow(&cluster, &options, &args, size - board, stride, &grown).await?;
        }
        let appended = grown.appended.load(Ordering::Relaxed) - appended_before;
        let appends_per_s = appended as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let entries = board_size(&cluster.endpoints[0]).await?;
        wait_until_final_everywhere(&cluster.endpoints, entries).await?;

        cluster.kill(0)?;
        let data_dir = cluster.configs[0].data_dir.clone();
        let disk_bytes = dir_bytes(&data_dir)?;
        let snapshot_bytes = dir_bytes(&data_dir.join("snapshots"))?;
        let restarted = Instant::now();
        let pid = cluster.restart(0)?;
        wait_serving(&cluster.endpoints[0], entries).await?;
        let restart_s = restarted.elapsed().as_secs_f64();
        wait_until_final_everywhere(&cluster.endpoints[..1], entries).await?;

        let samples = grown.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let proof_latency_ms = proofs(&cluster.endpoints[0], &policy, &samples).await?;
        let (rss_mib, peak_rss_mib) = memory_mib(pid);
        let leaf_bytes_per_entry = grown.leaf_bytes.load(Ordering::Relaxed) as f64
            / grown.appended.load(Ordering::Relaxed).max(1) as f64;
        let disk_bytes_per_entry = disk_bytes as f64 / entries.max(1) as f64;
        let row = ScaleRow {
            entries,
            appends_per_s,
            disk_bytes,
            snapshot_bytes,
            disk_bytes_per_entry,
            leaf_bytes_per_entry,
            disk_to_leaf_ratio: disk_bytes_per_entry / leaf_bytes_per_entry.max(1.0),
            restart_s,
            rss_mib,
            peak_rss_mib,
            proof_latency_ms,
        };
        if !args.json {
            print_row(&row);
        }
        rows.push(row);
    }
    let report = ScaleReport {
        workload: "scale",
        nodes: args.nodes,
        clients: args.clients,
        value_size: args.value_size,
        rows,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    }
    drop(cluster);
    Ok(())
}

/// What the appenders have put on the board so far.
#[derive(Default)]
struct Grown {
    appended: AtomicU64,
    leaf_bytes: AtomicU64,
    failed: AtomicU64,
    /// (index, leaf hash) of the entries at multiples of the sampling stride.
    samples: Mutex<Vec<(u64, bboard_merkle::Hash)>>,
}

/// Appends `count` entries with `args.clients` closed-loop clients, each receipt
/// verified; a failed append is retried with a new entry.
async fn grow(
    cluster: &LocalCluster,
    options: &ClientOptions,
    args: &BenchArgs,
    count: u64,
    stride: u64,
    grown: &Arc<Grown>,
) -> Result<()> {
    let remaining = Arc::new(AtomicI64::new(i64::try_from(count).unwrap_or(i64::MAX)));
    let progress = progress_bar(args.json, count);
    let start = grown.appended.load(Ordering::Relaxed);
    let mut tasks = Vec::new();
    for seed in 0..args.clients {
        let client = BoardClient::connect(cluster.endpoints.clone(), options.clone())
            .await
            .context("connecting to the board")?;
        let (key, remaining, grown) = (cluster.authority.clone(), remaining.clone(), grown.clone());
        let value_size = args.value_size;
        let seed = grown.appended.load(Ordering::Relaxed) + seed as u64;
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                let entry = envelope(&key, value_size, &mut rng);
                match client.append(&entry).await {
                    Ok(appended) => {
                        let receipt = &appended.receipt;
                        grown.appended.fetch_add(1, Ordering::Relaxed);
                        grown
                            .leaf_bytes
                            .fetch_add(receipt.leaf_data.len() as u64 / 2, Ordering::Relaxed);
                        if receipt.leaf_index % stride == 0 {
                            let hash = bboard_merkle::Hash::from_hex(&receipt.leaf_hash)
                                .context("a receipt's leaf hash")?;
                            if let Ok(mut samples) = grown.samples.lock() {
                                samples.push((receipt.leaf_index, hash));
                            }
                        }
                    }
                    Err(error) => {
                        remaining.fetch_add(1, Ordering::Relaxed);
                        let failed = grown.failed.fetch_add(1, Ordering::Relaxed) + 1;
                        if failed > MAX_FAILED_APPENDS {
                            bail!("more than {MAX_FAILED_APPENDS} appends failed; the last: {} ({error})", error_kind(&error));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    while !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        progress.set_position(grown.appended.load(Ordering::Relaxed) - start);
    }
    progress.finish_and_clear();
    for task in tasks {
        task.await.context("an appender failed")??;
    }
    Ok(())
}

fn progress_bar(hidden: bool, count: u64) -> indicatif::ProgressBar {
    if hidden || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(count);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} appends ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    bar
}

/// The board size node `endpoint` reports.
async fn board_size(endpoint: &str) -> Result<u64> {
    let mut node = node_client(endpoint).await?;
    Ok(node
        .status(pb::StatusRequest {})
        .await
        .with_context(|| format!("status of {endpoint}"))?
        .into_inner()
        .tree_size)
}

async fn node_client(
    endpoint: &str,
) -> Result<bboard_proto::v1::board_client::BoardClient<tonic::transport::Channel>> {
    bboard_proto::v1::board_client::BoardClient::connect(format!("http://{endpoint}"))
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

/// Waits until the restarted node at `endpoint` serves a board of `size` entries.
async fn wait_serving(endpoint: &str, size: u64) -> Result<()> {
    let deadline = Instant::now() + RESTART_TIMEOUT;
    loop {
        if board_size(endpoint)
            .await
            .is_ok_and(|served| served >= size)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{endpoint} did not serve its {size} entries within {} s of its restart",
            RESTART_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency of [`PROOFS_PER_SIZE`] verified inclusion proofs of random samples, asked
/// of `endpoint` one at a time.
async fn proofs(
    endpoint: &str,
    policy: &CosignaturePolicy,
    samples: &[(u64, bboard_merkle::Hash)],
) -> Result<Latency> {
    ensure!(
        !samples.is_empty(),
        "no entries were sampled to ask proofs of"
    );
    let mut node = node_client(endpoint).await?;
    let memo = bboard_client::CheckpointMemo::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut micros = Vec::with_capacity(PROOFS_PER_SIZE);
    for _ in 0..PROOFS_PER_SIZE {
        let sample = samples[rng.gen_range(0..samples.len())];
        let asked = Instant::now();
        verified_proof(&mut node, policy, &memo, sample)
            .await
            .map_err(|kind| anyhow::anyhow!("the proof of entry {} failed: {kind}", sample.0))?;
        micros.push(asked.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    }
    Ok(latency(&mut micros))
}

/// Bytes of every file under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> Result<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let metadata = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        total += if metadata.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}

/// Resident and peak resident memory of process `pid` in MiB (Linux `/proc`; none
/// elsewhere).
fn memory_mib(pid: u32) -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn print_row(row: &ScaleRow) {
    let mib = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    println!(
        "{:>10} entries: grown at {:.0}/s; disk {:.0} B/entry = {:.2}x the {:.0} B leaves (snapshot {:.0} MiB); restart {:.2} s; RSS {} MiB (peak {}); proofs p50 {:.2} ms p99 {:.2} ms",
        row.entries,
        row.appends_per_s,
        row.disk_bytes_per_entry,
        row.disk_to_leaf_ratio,
        row.leaf_bytes_per_entry,
        row.snapshot_bytes as f64 / (1024.0 * 1024.0),
        row.restart_s,
        mib(row.rss_mib),
        mib(row.peak_rss_mib),
        row.proof_latency_ms.p50,
        row.proof_latency_ms.p99,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_must_ascend_within_bounds() {
        assert!(check_sizes(&[100, 1000]).is_ok());
        assert!(check_sizes(&[]).is_err());
        assert!(check_sizes(&[1000, 100]).is_err());
        assert!(check_sizes(&[100, 100]).is_err());
        assert!(check_sizes(&[5]).is_err());
        assert!(check_sizes(&[MAX_SCALE_ENTRIES + 1]).is_err());
    }

    #[test]
    fn a_missing_directory_holds_nothing_and_files_are_summed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(dir_bytes(&dir.path().join("absent")).unwrap(), 0);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()).unwrap(), 15);
    }
}
