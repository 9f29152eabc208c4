//! Multi-process cluster tests: real `bboard node run` processes on 127.0.0.1, a leader
//! killed with SIGKILL under load, and a learner that joins from a snapshot.
//!
//! They take a minute or more each, so they are `#[ignore]`d: `.ci/run` runs them with
//! `cargo test -p bboard-cli --test chaos -- --ignored --nocapture`.
//!
//! Raft timing is shortened to keep the tests short: heartbeat 100 ms, election timeout
//! 500–1000 ms (the defaults are 250 ms and 1–2 s, see `RaftTuning`).
//!
//! The process harness (every child killed and reaped when a test ends, logs printed
//! on failure) is `bboard_testkit::process`.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::leaf::decode_leaf;
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_node::config::RaftTuning;
use ed25519_dalek::SigningKey;
use tonic::Code;

use bboard_testkit::process::*;
use bboard_testkit::{note, now_unix_ms};

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");

/// Declares each `test => scenario` as its own `#[ignore]`d test that runs the async
/// scenario serially (one multi-process cluster at a time), so that `cargo test -p
/// bboard-cli --test chaos NAME -- --ignored` runs one of them by name.
macro_rules! chaos_tests {
    ($($name:ident => $scenario:ident;)*) => {$(
        #[test]
        // A literal: libtest drops a reason built by `concat!`.
        #[ignore = "multi-process, about a minute; run one with: cargo test -p bboard-cli --test chaos NAME -- --ignored"]
        fn $name() {
            serially($scenario());
        }
    )*};
}

chaos_tests! {
    kill_leader_mid_load_loses_nothing => kill_leader_mid_load;
    learner_joins_from_a_snapshot_of_50k_entries => learner_joins_from_a_snapshot;
}

/// The kill of a leader, as seen by the clients.
struct KillMark {
    at: Instant,
    /// Wall clock after the process was reaped (leaf timestamps are the leader's clock).
    unix_ms: u64,
    /// Highest leaf index acknowledged before the kill.
    max_index_before: u64,
}

/// Everything the clients have had acknowledged.
#[derive(Default)]
struct Acks {
    by_id: HashMap<EnvelopeId, u64>,
    max_index: Option<u64>,
    duplicates: u64,
    retries: BTreeMap<String, u64>,
    kill: Option<KillMark>,
    resumed_after: Option<Duration>,
}

impl Acks {
    fn record(&mut self, id: EnvelopeId, index: u64, timestamp_unix_ms: u64, duplicate: bool) {
        if let Some(previous) = self.by_id.insert(id, index) {
            assert_eq!(previous, index, "envelope {id} acknowledged at two indexes");
        }
        if duplicate {
            self.duplicates += 1;
        }
        // Writes have resumed at the first acknowledged leaf above every index
        // acknowledged before the kill that was also ordered after it (the leaf timestamp
        // is the ordering leader's clock, this machine's): an entry the old leader had
        // committed but not yet answered for does not count.
        if let Some(kill) = &self.kill {
            if self.resumed_after.is_none()
                && index > kill.max_index_before
                && timestamp_unix_ms > kill.unix_ms
            {
                self.resumed_after = Some(kill.at.elapsed());
            }
        }
        self.max_index = Some(self.max_index.map_or(index, |m| m.max(index)));
    }

    fn retry(&mut self, why: String) {
        *self.retries.entry(why).or_default() += 1;
    }
}

/// Which endpoints a load's clients send to.
#[derive(Clone, Copy)]
enum Route {
    /// Each client starts at its own endpoint and moves on after every batch, so the
    /// load spreads over the nodes.
    Rotate,
    /// Every client starts at this endpoint (moving on only on failures).
    Only(usize),
}

impl Load {
    /// `count` entries per client over `endpoints` by `route`, in AppendMany calls of
    /// `batch`, verifying every `verify_every`-th receipt, for at most `run_for_secs`
    /// from now.
    fn new(
        endpoints: &[String],
        route: Route,
        policy: &CosignaturePolicy,
        count: u64,
        (batch, verify_every): (usize, u64),
        run_for_secs: u64,
    ) -> Self {
        Load {
            count,
            batch,
            endpoints: endpoints.to_vec(),
            route,
            verify_every,
            policy: policy.clone(),
            deadline: Instant::now() + Duration::from_secs(run_for_secs),
        }
    }
}

/// The load of one run: what every client does.
#[derive(Clone)]
struct Load {
    /// Entries per client.
    count: u64,
    /// Envelopes per AppendMany call.
    batch: usize,
    endpoints: Vec<String>,
    /// Which endpoints the clients use.
    route: Route,
    /// Verify every n-th receipt cryptographically (all are checked for their index).
    verify_every: u64,
    policy: CosignaturePolicy,
    deadline: Instant,
}

/// One load-generating client: its key, its sequence numbers and endpoint, the load.
struct ClientPlan {
    key: SigningKey,
    first_seq: u64,
    first_endpoint: usize,
    load: Load,
}

/// The fixture authority and one terminal key per client (seeds 100, 101, …).
fn authority_and_terminals(clients: u64) -> (SigningKey, Vec<SigningKey>) {
    let terminals = (0..clients)
        .map(|c| SigningKey::from_bytes(&[100 + c as u8; 32]))
        .collect();
    (SigningKey::from_bytes(&[1; 32]), terminals)
}

/// Starts one client per terminal key, each with its own sequence numbers; a client
/// that rotates starts at its own endpoint, so the load spreads over the nodes.
fn spawn_clients(
    terminals: &[SigningKey],
    load: &Load,
    acks: &Arc<Mutex<Acks>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    terminals
        .iter()
        .enumerate()
        .map(|(c, key)| {
            let plan = ClientPlan {
                key: key.clone(),
                first_seq: 1_000_000 * (c as u64 + 1),
                first_endpoint: match load.route {
                    Route::Rotate => c,
                    Route::Only(endpoint) => endpoint,
                },
                load: load.clone(),
            };
            tokio::spawn(run_client(plan, acks.clone()))
        })
        .collect()
}

/// Waits for every client (each may run until `deadline`, plus 30 s to finish) and
/// returns what they acknowledged.
async fn join_clients(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    deadline: Instant,
    acks: Arc<Mutex<Acks>>,
) -> Acks {
    for task in tasks {
        let remaining =
            deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(30);
        tokio::time::timeout(remaining, task)
            .await
            .expect("client did not finish in time")
            .unwrap();
    }
    Arc::try_unwrap(acks)
        .ok()
        .expect("every client is done")
        .into_inner()
        .unwrap()
}

/// Appends `count` notes with AppendMany, retrying the same envelopes on the next
/// endpoint after transient failures; records every acknowledgement in `acks`.
async fn run_client(plan: ClientPlan, acks: Arc<Mutex<Acks>>) {
    let load = &plan.load;
    let mut endpoint = plan.first_endpoint;
    let mut seq = plan.first_seq;
    let end = plan.first_seq + load.count;
    while seq < end {
        let n = (end - seq).min(load.batch as u64);
        let mut pending: Vec<SignedEnvelope> = (seq..seq + n).map(|s| note(&plan.key, s)).collect();
        seq += n;
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            assert!(
                attempts <= 500 && Instant::now() < load.deadline,
                "client gave up: {} envelopes still unacknowledged after {attempts} attempts",
                pending.len()
            );
            let address = &load.endpoints[endpoint % load.endpoints.len()];
            let request = pb::AppendManyRequest {
                envelopes: pending.iter().map(SignedEnvelope::to_proto).collect(),
            };
            let outcomes = match board(address).append_many(request).await {
                Ok(response) => response.into_inner().outcomes,
                Err(status) if retryable(status.code()) => {
                    let why = match status.code() {
                        // Say which transport failure tonic could not classify.
                        Code::Unknown => format!("call Unknown: {}", status.message()),
                        code => format!("call {code:?}"),
                    };
                    acks.lock().unwrap().retry(why);
                    endpoint += 1;
                    tokio::time::sleep(Duration::from_millis(50 + 20 * attempts.min(10))).await;
                    continue;
                }
                Err(status) => panic!("AppendMany to {address} failed: {status:?}"),
            };
            assert_eq!(outcomes.len(), pending.len(), "one outcome per envelope");
            let mut again = Vec::new();
            for (envelope, outcome) in pending.into_iter().zip(outcomes) {
                match outcome.outcome {
                    Some(pb::append_outcome::Outcome::Appended(response)) => {
                        let proto = response.receipt.as_ref().expect("receipt");
                        let index = proto.leaf_index;
                        let timestamp = if index % load.verify_every == 0 {
                            let verified = Receipt::from_proto(proto)
                                .unwrap()
                                .verify(&load.policy)
                                .unwrap_or_else(|e| panic!("receipt of leaf {index}: {e}"));
                            assert_eq!(verified.leaf.envelope.id(), envelope.id());
                            verified.leaf.timestamp_unix_ms
                        } else {
                            let leaf = decode_leaf(&proto.leaf_data).unwrap();
                            assert_eq!(leaf.envelope.id(), envelope.id());
                            leaf.timestamp_unix_ms
                        };
                        acks.lock().unwrap().record(
                            envelope.id(),
                            index,
                            timestamp,
                            response.duplicate,
                        );
                    }
                    Some(pb::append_outcome::Outcome::Rejected(rejection))
                        if retryable(Code::from_i32(rejection.code)) =>
                    {
                        acks.lock()
                            .unwrap()
                            .retry(format!("outcome {:?}", Code::from_i32(rejection.code)));
                        again.push(envelope);
                    }
                    other => panic!("envelope {} refused by {address}: {other:?}", envelope.id()),
                }
            }
            pending = again;
            if !pending.is_empty() {
                endpoint += 1;
                tokio::time::sleep(Duration::from_millis(50 + 20 * attempts.min(10))).await;
            }
        }
        if matches!(load.route, Route::Rotate) {
            endpoint += 1;
        }
    }
}

async fn kill_leader_mid_load() {
    const CLIENTS: u64 = 16;
    const TOTAL: u64 = 10_000;
    const KILL_AFTER: usize = 3_000;
    let test_started = Instant::now();
    let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
    for node in &mut cluster.nodes {
        node.start();
    }
    let endpoints = cluster.endpoints(&[1, 2, 3]);
    // 2 of 3 (the majority policy of the three node keys).
    let policy = cluster.policy.clone();
    assert_eq!(policy.threshold(), 2);
    find_leader(&endpoints, Duration::from_secs(30)).await;

    let (authority, terminals) = authority_and_terminals(CLIENTS);
    let setup = genesis_and_keys(&endpoints, &policy, &authority, &terminals).await;
    let acks = Arc::new(Mutex::new(Acks::default()));
    for (id, index) in &setup {
        acks.lock().unwrap().record(*id, *index, 0, false);
    }
    let setup_entries = setup.len();

    let load_started = Instant::now();
    let load = Load::new(
        &endpoints,
        Route::Rotate,
        &policy,
        TOTAL / CLIENTS,
        (20, 1),
        300,
    );
    let deadline = load.deadline;
    let tasks = spawn_clients(&terminals, &load, &acks);

    // Wait for ~3,000 acknowledged entries, then SIGKILL the leader.
    for _ in 0..20_000 {
        if acks.lock().unwrap().by_id.len() >= setup_entries + KILL_AFTER {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "load too slow to reach {KILL_AFTER} entries"
        );
        assert!(
            !tasks.iter().any(|t| t.is_finished()),
            "a client stopped early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = find_leader(&endpoints, Duration::from_secs(10)).await;
    let leader_id = leader as u64 + 1;
    let acked_before;
    {
        let kill_at = Instant::now();
        cluster.node(leader_id).kill();
        let mut acks = acks.lock().unwrap();
        acked_before = acks.by_id.len() - setup_entries;
        acks.kill = Some(KillMark {
            at: kill_at,
            unix_ms: now_unix_ms(),
            max_index_before: acks.max_index.unwrap(),
        });
    }
    println!(
        "killed leader node {leader_id} (SIGKILL) after {acked_before} acknowledged entries, {:.1} s into the load",
        load_started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.node(leader_id).start();
    println!("restarted node {leader_id}");

    let acks = join_clients(tasks, deadline, acks).await;
    let load_time = load_started.elapsed();
    cluster.assert_alive();
    println!(
        "{TOTAL} entries acknowledged in {:.1} s: {:.0} entries/s ({} acknowledged as duplicates of a retried envelope); retries: {:?}",
        load_time.as_secs_f64(),
        TOTAL as f64 / load_time.as_secs_f64(),
        acks.duplicates,
        acks.retries
    );
    let resumed = acks
        .resumed_after
        .expect("no append ordered after the kill was acknowledged above the pre-kill maximum");
    println!("writes resumed {} ms after the kill", resumed.as_millis());
    assert!(
        resumed < Duration::from_millis(5000),
        "writes resumed after {resumed:?}"
    );

    // History: every node holds the same leaves; each acknowledged envelope exactly
    // once, at its receipt's index; nothing else.
    let total = setup_entries as u64 + TOTAL;
    assert_eq!(acks.by_id.len() as u64, total);
    let statuses = wait_for_size(&endpoints, total, Duration::from_secs(60)).await;
    assert!(
        statuses.iter().all(|s| s.root == statuses[0].root),
        "same size, different roots: {statuses:?}"
    );
    let reference = all_leaves(&endpoints[0], total).await;
    for endpoint in &endpoints[1..] {
        let leaves = all_leaves(endpoint, total).await;
        for (i, (a, b)) in reference.iter().zip(&leaves).enumerate() {
            assert_eq!(
                a, b,
                "leaf {i} differs between {} and {endpoint}",
                endpoints[0]
            );
        }
    }
    let mut seen = HashSet::new();
    for (index, leaf) in reference.iter().enumerate() {
        let id = decode_leaf(leaf).unwrap().envelope.id();
        assert!(
            seen.insert(id),
            "envelope {id} appears twice (again at {index})"
        );
        assert_eq!(
            acks.by_id.get(&id),
            Some(&(index as u64)),
            "leaf {index} (envelope {id}) is not where a receipt put it"
        );
    }
    let root = recomputed_root(&reference);
    assert_eq!(statuses[0].root, root.as_bytes().to_vec(), "Status.root");
    for endpoint in &endpoints {
        let checkpoint = final_checkpoint(endpoint, total, &policy).await;
        assert_eq!(
            checkpoint.checkpoint.root, root,
            "{endpoint}: checkpoint root"
        );
    }
    cluster.assert_alive();
    println!(
        "kill_leader_mid_load_loses_nothing: {total} entries identical on 3 nodes; test took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
}

async fn learner_joins_from_a_snapshot() {
    const CLIENTS: u64 = 5;
    const TOTAL: u64 = 50_000;
    let test_started = Instant::now();
    let raft = RaftTuning {
        snapshot_every_entries: 50,
        keep_logs_after_snapshot: 10,
        ..fast_raft()
    };
    let mut cluster = Cluster::configure(BIN, 4, &[1, 2, 3], raft);
    for id in 1..=3 {
        cluster.node(id).start();
    }
    let voters = cluster.endpoints(&[1, 2, 3]);
    // Every config lists 4 peers, so a checkpoint is final with 3 of the 4 node keys.
    let policy = cluster.policy.clone();
    assert_eq!(policy.threshold(), 3);
    assert_eq!(policy.keys().len(), 4);
    assert_eq!(
        policy.keys().len(),
        cluster.verifiers.len(),
        "the policy covers every node key"
    );
    let leader = find_leader(&voters, Duration::from_secs(30)).await;

    let (authority, terminals) = authority_and_terminals(CLIENTS);
    let setup = genesis_and_keys(&voters, &policy, &authority, &terminals).await;

    // Load: every client sends AppendMany calls of 250 envelopes to the leader.
    let acks = Arc::new(Mutex::new(Acks::default()));
    let load_started = Instant::now();
    let load = Load::new(
        &voters,
        Route::Only(leader),
        &policy,
        TOTAL / CLIENTS,
        (250, 97),
        400,
    );
    let deadline = load.deadline;
    let tasks = spawn_clients(&terminals, &load, &acks);
    let acks = join_clients(tasks, deadline, acks).await;
    let load_time = load_started.elapsed();
    let total = setup.len() as u64 + TOTAL;
    let mut indexes: Vec<u64> = acks.by_id.values().copied().collect();
    indexes.extend(setup.iter().map(|(_, i)| *i));
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..total).collect::<Vec<_>>(),
        "every entry acknowledged once"
    );
    println!(
        "{TOTAL} entries appended in {:.1} s: {:.0} entries/s; retries: {:?}",
        load_time.as_secs_f64(),
        TOTAL as f64 / load_time.as_secs_f64(),
        acks.retries
    );
    let statuses = wait_for_size(&voters, total, Duration::from_secs(60)).await;
    println!(
        "raft log: last index {} on the leader",
        statuses.iter().map(|s| s.last_log_index).max().unwrap()
    );

    // The leader must hold a snapshot (so the learner can be sent one); ask for one if
    // the policy has not built it yet.
    let leader = find_leader(&voters, Duration::from_secs(30)).await;
    let leader_id = leader as u64 + 1;
    if cluster.node(leader_id).snapshot_files().is_empty() {
        admin_on_leader(&cluster, &[1, 2, 3], &["snapshot".into()]).await;
    }
    for _ in 0..100 {
        if !cluster.node(leader_id).snapshot_files().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !cluster.node(leader_id).snapshot_files().is_empty(),
        "leader node {leader_id} has no snapshot file"
    );

    // Node 4 joins: learner, then voter.
    let joined = Instant::now();
    cluster.node(4).start();
    let node4 = cluster.node(4).address.clone();
    let output = admin_on_leader(
        &cluster,
        &[1, 2, 3],
        &[
            "add-learner".into(),
            "--id".into(),
            "4".into(),
            "--address".into(),
            node4.clone(),
        ],
    )
    .await;
    let learner_time = joined.elapsed();
    println!(
        "add-learner returned after {} ms: {}",
        learner_time.as_millis(),
        output.trim()
    );
    admin_on_leader(
        &cluster,
        &[1, 2, 3],
        &[
            "change-membership".into(),
            "--voters".into(),
            "1,2,3,4".into(),
        ],
    )
    .await;
    let all = cluster.endpoints(&[1, 2, 3, 4]);
    // Each change posted its majority authorisation on the board.
    let total = total + 2;
    let statuses = wait_for_size(&all, total, Duration::from_secs(120)).await;
    let catch_up = joined.elapsed();
    assert!(
        statuses.iter().all(|s| s.root == statuses[0].root),
        "same size, different roots: {statuses:?}"
    );
    println!(
        "node 4 caught up with {total} entries in {} ms (process start to same size and root)",
        catch_up.as_millis()
    );
    let snapshots = cluster.node(4).snapshot_files();
    assert!(
        !snapshots.is_empty(),
        "node 4 holds no snapshot file: it did not catch up from a snapshot"
    );
    println!("node 4 snapshot files: {snapshots:?}");

    // Node 4 is a voter now, applies new entries and serves a final checkpoint.
    let s4 = status(&node4).await.unwrap();
    assert!(
        s4.role == "follower" || s4.role == "leader",
        "node 4 is {:?} after change-membership",
        s4.role
    );
    let mut endpoints4 = vec![node4.clone()];
    endpoints4.extend(voters.iter().cloned());
    for i in 0..10 {
        let envelope = note(&terminals[0], 9_000_000 + i);
        let response = append_one(&endpoints4, &envelope).await;
        let verified = Receipt::from_proto(response.receipt.as_ref().unwrap())
            .unwrap()
            .verify(&policy)
            .unwrap();
        assert_eq!(verified.leaf_index.0, total + i);
    }
    let total = total + 10;
    let statuses = wait_for_size(&all, total, Duration::from_secs(60)).await;
    assert!(
        statuses.iter().all(|s| s.root == statuses[0].root),
        "{statuses:?}"
    );
    let leaves4 = all_leaves(&node4, total).await;
    let leaves1 = all_leaves(&voters[0], total).await;
    assert!(leaves4 == leaves1, "node 4's history differs from node 1's");
    let root = recomputed_root(&leaves4);
    let checkpoint = final_checkpoint(&node4, total, &policy).await;
    assert_eq!(checkpoint.checkpoint.root, root, "node 4 checkpoint root");
    assert!(checkpoint.signers.len() >= 3, "{:?}", checkpoint.signers);
    println!(
        "node 4 serves a checkpoint of size {total} signed by {:?}",
        checkpoint.signers
    );
    cluster.assert_alive();
    println!(
        "learner_joins_from_a_snapshot_of_50k_entries: test took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
}
