//! `etcd-load`: a closed-loop put load generator for an etcd cluster, the etcd side of
//! `bench/compare-etcd.sh` (issue #19).
//!
//! N clients, each with its own etcd `Client` (its own gRPC/HTTP-2 connection) to one
//! endpoint taken round-robin from `--endpoints` (as etcd's own `benchmark` tool does),
//! each doing `put` of a fresh key with a fresh random value of B bytes, one after the
//! other (closed loop: a client sends its next put only when the previous one answered).
//! A put's latency runs from just before the request is sent to the response, which etcd
//! gives once the entry is committed by a majority (fsynced to their WALs) and applied.
//!
//! Timeline: connect and probe every client, then a warm-up (default 1 s) whose puts are
//! not counted, then the measured window. A put is measured when it is *sent* inside the
//! window; `duration_s` runs from the window's start to the last measured put's response,
//! and `throughput_per_s` = `completed` / `duration_s`.
//!
//! Output: a table, or with `--json` exactly one JSON object on stdout (progress goes to
//! stderr). Latencies are nearest-rank percentiles in ms (all 0 when nothing completed);
//! errors count failed measured puts by kind (the gRPC code, e.g. `Unavailable`):
//!
//! ```json
//! {"system":"etcd","clients":16,"value_size":256,"duration_s":20.004,"completed":41234,
//!  "throughput_per_s":2061.3,"latency_ms":{"p50":7.1,"p90":9.8,"p99":15.2,"p999":30.1,
//!  "max":41.0},"errors":{}}
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, ConnectOptions, Error as EtcdError};
use tokio::sync::Barrier;

/// Hard caps: the load is bounded in time and count whatever the flags say.
const MAX_DURATION_S: f64 = 300.0;
const MAX_COUNT: u64 = 10_000_000;
const MAX_CLIENTS: usize = 4096;
const MAX_VALUE_SIZE: usize = 1024 * 1024;
const MAX_WARMUP_S: f64 = 10.0;
/// Duration when neither `--duration` nor `--count` is given.
const DEFAULT_DURATION_S: f64 = 10.0;
/// How long a client may take to connect and answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause after a failed put, so that a dead endpoint is not hammered in a hot loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

const USAGE: &str = "\
usage: etcd-load --endpoints HOST:PORT[,HOST:PORT...] --clients N --value-size B
                 [--duration SECS] [--count N] [--warmup SECS] [--timeout SECS] [--json]

  --endpoints   etcd client URLs (http:// is added when no scheme is given); client i
                connects to endpoint i mod len (default 127.0.0.1:2379)
  --clients     concurrent closed-loop clients, each its own connection (1..=4096)
  --value-size  bytes of random value per put (1..=1048576)
  --duration    measured seconds after the warm-up (default 10 if --count is not given;
                capped at 300)
  --count       stop after this many measured puts in all (capped at 10,000,000; the
                duration cap still applies)
  --warmup      seconds of unmeasured load before the window (default 1, at most 10)
  --timeout     per-put timeout in seconds (default 10)
  --json        print exactly one JSON object on stdout instead of a table";

#[derive(Debug, Clone)]
struct Args {
    endpoints: Vec<String>,
    clients: usize,
    value_size: usize,
    duration_s: f64,
    count: Option<u64>,
    warmup_s: f64,
    timeout_s: f64,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut endpoints = vec!["127.0.0.1:2379".to_string()];
    let mut clients: Option<usize> = None;
    let mut value_size: Option<usize> = None;
    let mut duration_s: Option<f64> = None;
    let mut count: Option<u64> = None;
    let mut warmup_s = 1.0;
    let mut timeout_s = 10.0;
    let mut json = false;

    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "--endpoints" => {
                endpoints = value(&name)?
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--clients" => clients = Some(parse_num(&name, &value(&name)?)?),
            "--value-size" => value_size = Some(parse_num(&name, &value(&name)?)?),
            "--duration" => duration_s = Some(parse_num(&name, &value(&name)?)?),
            "--count" => count = Some(parse_num(&name, &value(&name)?)?),
            "--warmup" => warmup_s = parse_num(&name, &value(&name)?)?,
            "--timeout" => timeout_s = parse_num(&name, &value(&name)?)?,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    let clients = clients.ok_or("--clients is required")?;
    let value_size = value_size.ok_or("--value-size is required")?;
    if endpoints.is_empty() {
        return Err("--endpoints is empty".into());
    }
    if !(1..=MAX_CLIENTS).contains(&clients) {
        return Err(format!("--clients must be in 1..={MAX_CLIENTS}"));
    }
    if !(1..=MAX_VALUE_SIZE).contains(&value_size) {
        return Err(format!("--value-size must be in 1..={MAX_VALUE_SIZE}"));
    }
    if let Some(c) = count {
        if !(1..=MAX_COUNT).contains(&c) {
            return Err(format!("--count must be in 1..={MAX_COUNT}"));
        }
    }
    let duration_s = match (duration_s, count) {
        (Some(d), _) => d,
        (None, Some(_)) => MAX_DURATION_S,
        (None, None) => DEFAULT_DURATION_S,
    };
    if !(duration_s > 0.0 && duration_s <= MAX_DURATION_S) {
        return Err(format!("--duration must be in (0, {MAX_DURATION_S}]"));
    }
    if !(0.0..=MAX_WARMUP_S).contains(&warmup_s) {
        return Err(format!("--warmup must be in [0, {MAX_WARMUP_S}]"));
    }
    if !(timeout_s > 0.0 && timeout_s <= 60.0) {
        return Err("--timeout must be in (0, 60]".into());
    }
    let endpoints = endpoints
        .into_iter()
        .map(|e| {
            if e.contains("://") {
                e
            } else {
                format!("http://{e}")
            }
        })
        .collect();
    Ok(Args {
        endpoints,
        clients,
        value_size,
        duration_s,
        count,
        warmup_s,
        timeout_s,
        json,
    })
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name}: {v:?} is not a valid number"))
}

/// What one client measured.
#[derive(Default)]
struct ClientResult {
    /// Latencies of the measured puts that succeeded, in nanoseconds.
    latencies_ns: Vec<u64>,
    /// Failed measured puts by kind.
    errors: BTreeMap<String, u64>,
    /// When the last measured put answered (ok or not).
    last_done: Option<Instant>,
}

/// The window every client shares.
struct Window {
    /// Start of the measured window (end of the warm-up).
    start: Instant,
    /// No measured put is sent at or after this instant.
    deadline: Instant,
    /// Measured puts claimed so far (for `--count`).
    claimed: AtomicU64,
    count: Option<u64>,
    /// Set when `--count` is reached, so every client stops.
    done: AtomicBool,
}

/// A small, fast PRNG for the values (xorshift64*): the values need to be incompressible
/// noise, not cryptographic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// The name of an error kind, as a JSON key. gRPC statuses are named by their code as
/// `bboard bench` names them (`Unavailable`, `DeadlineExceeded`, ...).
fn error_kind(e: &EtcdError) -> String {
    match e {
        EtcdError::GRpcStatus(s) => format!("{:?}", s.code()),
        EtcdError::TransportError(_) => "Transport".into(),
        EtcdError::IoError(_) => "Io".into(),
        EtcdError::InvalidArgs(_) => "InvalidArgs".into(),
        EtcdError::InvalidUri(_) => "InvalidUri".into(),
        EtcdError::EndpointError(_) => "Endpoint".into(),
        _ => "Other".into(),
    }
}

async fn connect(args: &Args, endpoint: &str) -> Result<Client, String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs_f64(args.timeout_s))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    let started = Instant::now();
    let mut client = Client::connect([endpoint], Some(options))
        .await
        .map_err(|e| format!("connect to {endpoint}: {e}"))?;
    // The channel connects lazily: probe it with a read until it answers.
    loop {
        match client.get("bench/ready-probe", None).await {
            Ok(_) => return Ok(client),
            Err(_) if started.elapsed() < READY_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(format!(
                    "{endpoint} did not answer within {READY_TIMEOUT:?}: {e}"
                ))
            }
        }
    }
}

async fn run_client(
    id: usize,
    run_id: u64,
    value_size: usize,
    mut client: Client,
    barrier: Arc<Barrier>,
    window: Arc<tokio::sync::OnceCell<Window>>,
) -> ClientResult {
    let mut rng = Rng::new(run_id ^ ((id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut result = ClientResult::default();
    let mut value = vec![0u8; value_size];
    barrier.wait().await;
    let w = window
        .get()
        .expect("window is set before the barrier opens");
    for seq in 0u64.. {
        if w.done.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("bench/{run_id:x}/{id}/{seq}");
        rng.fill(&mut value);
        let sent = Instant::now();
        if sent >= w.deadline {
            break;
        }
        let measured = sent >= w.start;
        if measured {
            if let Some(count) = w.count {
                if w.claimed.fetch_add(1, Ordering::Relaxed) >= count {
                    w.done.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        let outcome = client.put(key, value.clone(), None).await;
        let done = Instant::now();
        if measured {
            result.last_done = Some(done);
            match &outcome {
                Ok(_) => result
                    .latencies_ns
                    .push(done.duration_since(sent).as_nanos() as u64),
                Err(e) => *result.errors.entry(error_kind(e)).or_insert(0) += 1,
            }
        }
        if outcome.is_err() {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    result
}

/// Nearest-rank percentile of a sorted slice, in milliseconds.
fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1] as f64 / 1e6
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED);

    eprintln!(
        "etcd-load: connecting {} client(s) to {}",
        args.clients,
        args.endpoints.join(",")
    );
    let mut connects = tokio::task::JoinSet::new();
    for id in 0..args.clients {
        let endpoint = args.endpoints[id % args.endpoints.len()].clone();
        let args = args.clone();
        connects.spawn(async move { (id, connect(&args, &endpoint).await) });
    }
    let mut clients: Vec<Option<Client>> = (0..args.clients).map(|_| None).collect();
    while let Some(joined) = connects.join_next().await {
        let (id, client) = joined.map_err(|e| format!("connect task: {e}"))?;
        clients[id] = Some(client?);
    }

    let barrier = Arc::new(Barrier::new(args.clients + 1));
    let window = Arc::new(tokio::sync::OnceCell::new());
    let mut tasks = tokio::task::JoinSet::new();
    for (id, client) in clients.into_iter().enumerate() {
        let client = client.expect("every client connected");
        tasks.spawn(run_client(
            id,
            run_id,
            args.value_size,
            client,
            barrier.clone(),
            window.clone(),
        ));
    }
    let begin = Instant::now();
    let start = begin + Duration::from_secs_f64(args.warmup_s);
    let deadline = start + Duration::from_secs_f64(args.duration_s);
    window
        .set(Window {
            start,
            deadline,
            claimed: AtomicU64::new(0),
            count: args.count,
            done: AtomicBool::new(false),
        })
        .map_err(|_| "window set twice")?;
    eprintln!(
        "etcd-load: warm-up {:.1} s, then up to {:.1} s{}",
        args.warmup_s,
        args.duration_s,
        args.count
            .map(|c| format!(" or {c} puts"))
            .unwrap_or_default()
    );
    barrier.wait().await;

    let mut latencies: Vec<u64> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_done: Option<Instant> = None;
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(|e| format!("client task: {e}"))?;
        latencies.extend(r.latencies_ns);
        for (k, v) in r.errors {
            *errors.entry(k).or_insert(0) += v;
        }
        last_done = last_done.max(r.last_done);
    }
    let end = last_done.unwrap_or_else(Instant::now).max(start);
    let duration_s = end.duration_since(start).as_secs_f64();
    latencies.sort_unstable();
    let completed = latencies.len() as u64;
    let throughput = if duration_s > 0.0 {
        completed as f64 / duration_s
    } else {
        0.0
    };
    // All zero when nothing completed (as `bboard bench` reports it).
    let lat = |p: f64| -> f64 {
        if latencies.is_empty() {
            0.0
        } else {
            round3(percentile_ms(&latencies, p))
        }
    };
    Ok(serde_json::json!({
        "system": "etcd",
        "clients": args.clients,
        "value_size": args.value_size,
        "duration_s": round3(duration_s),
        "completed": completed,
        "throughput_per_s": round3(throughput),
        "latency_ms": {
            "p50": lat(0.50),
            "p90": lat(0.90),
            "p99": lat(0.99),
            "p999": lat(0.999),
            "max": lat(1.0),
        },
        "errors": errors,
    }))
}

fn print_table(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| match v.as_f64() {
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    };
    let l = &r["latency_ms"];
    println!(
        "system            {}",
        r["system"].as_str().unwrap_or("etcd")
    );
    println!("clients           {}", r["clients"]);
    println!("value size (B)    {}", r["value_size"]);
    println!("duration (s)      {}", f(&r["duration_s"]));
    println!("completed puts    {}", r["completed"]);
    println!("throughput (/s)   {}", f(&r["throughput_per_s"]));
    println!(
        "latency (ms)      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        f(&l["p50"]),
        f(&l["p90"]),
        f(&l["p99"]),
        f(&l["p999"]),
        f(&l["max"])
    );
    let errors = r["errors"].as_object().map(|o| o.len()).unwrap_or(0);
    if errors == 0 {
        println!("errors            none");
    } else {
        for (k, v) in r["errors"].as_object().into_iter().flatten() {
            println!("errors            {k}: {v}");
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("etcd-load: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json {
                println!("{report}");
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("etcd-load: {e}");
            ExitCode::FAILURE
        }
    }
}
