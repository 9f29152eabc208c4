//! `bboard demo`: a whole verifiable election on a local 3-node cluster, in one command,
//! on embedded defaults.
//!
//! It starts a local 3-node cluster (one node per organisation, real sled stores and
//! gRPC on 127.0.0.1, in this process) and runs the election with the same functions
//! as the `bboard election|trustee|terminal|protocol|results` commands: a 2-of-3 key
//! ceremony, two precincts with two terminals each casting encrypted ballots in
//! parallel, one ballot challenged and opened (Benaloh), paper protocols (one of them
//! falsified), decryption by two of the three trustees, published results, and the
//! full audit (`verify-election`), which shows the falsified protocol beside the
//! electronic count.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::CosignaturePolicy;
use bboard_core::pb::{self, Phase};
use ed25519_dalek::SigningKey;
use rand::SeedableRng;

use crate::devcluster::start_devcluster;
use crate::keys::{generate_key, write_private_key};
use crate::node_cmds::runtime;
use bboard_election::authority::{self, Registration};
use bboard_election::manifest::{
    describe_selection, random_selections, ContestSpec, ManifestFile, PrecinctSpec, TrusteeSpec,
};
use bboard_election::report;
use bboard_election::terminal::TerminalSession;
use bboard_election::trustee::{self, Step, TrusteeFiles, TrusteeStep};

/// Election id of the demo.
const ELECTION_ID: &str = "demo-2026";
/// Trustees of the demo (2 of 3 decrypt).
const TRUSTEES: [&str; 3] = ["CEC", "Observers' Association", "Party A"];
/// Terminals per precinct.
const TERMINALS_PER_PRECINCT: usize = 2;
/// Votes the falsified protocol moves from one option to another.
const FALSIFIED_VOTES: u64 = 3;

/// Arguments of `bboard demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's cluster data and keys (replaced on each run).
    #[arg(long, default_value = "bboard-demo")]
    dir: PathBuf,
    /// Number of ballots to cast (besides the one spoiled ballot).
    #[arg(long, alias = "entries", default_value_t = 200)]
    ballots: u64,
    /// Seed of the voters' random selections.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Board origin (name in checkpoints).
    #[arg(long, default_value = "demo.bboard.local/election-2026")]
    origin: String,
    /// Terminals wait a random time up to this many milliseconds before posting each
    /// ballot (real stations would use seconds; it blurs timestamp-to-voter links).
    #[arg(long, value_name = "MS", default_value_t = 10)]
    max_delay_ms: u64,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<()> {
    ensure!(
        (8..=100_000).contains(&args.ballots),
        "--ballots must be between 8 and 100000"
    );
    runtime()?.block_on(run_async(args))
}

/// The embedded manifest: 2 precincts, a single-choice and a multi-choice contest.
fn demo_manifest(trustees: Vec<TrusteeSpec>) -> ManifestFile {
    let options = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    ManifestFile {
        title: "Demo municipal election 2026".into(),
        threshold: 2,
        contests: vec![
            ContestSpec {
                id: "mayor".into(),
                title: "Mayor (choose one)".into(),
                options: options(&[
                    "Ada Lovelace",
                    "Alan Turing",
                    "Grace Hopper",
                    "Edsger Dijkstra",
                ]),
                min_selections: 1,
                max_selections: 1,
            },
            ContestSpec {
                id: "council".into(),
                title: "Council (choose up to two)".into(),
                options: options(&["Green List", "Civic Union", "Workers' Bloc", "Free Voters"]),
                min_selections: 0,
                max_selections: 2,
            },
        ],
        precincts: vec![
            PrecinctSpec {
                id: "p-001".into(),
                name: "Town Hall".into(),
            },
            PrecinctSpec {
                id: "p-002".into(),
                name: "Riverside School".into(),
            },
        ],
        trustees,
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

fn reset(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A key written to `dir/name.key` for the reader to use with the commands later.
fn new_key(dir: &Path, name: &str) -> Result<SigningKey> {
    let key = generate_key();
    write_private_key(&dir.join(format!("{name}.key")), &key)?;
    Ok(key)
}

/// Per precinct, per contest, per option: the counts the demo's voters chose.
type Counts = Vec<Vec<Vec<u64>>>;

struct Demo {
    client: BoardClient,
    /// The nodes' addresses (their HTTP side serves the ballot tracker).
    endpoints: Vec<String>,
    authority: SigningKey,
    /// Leaves to wait for before the next read (the last receipt's index + 1).
    seen: u64,
}

impl Demo {
    fn saw(&mut self, index: u64) {
        self.seen = self.seen.max(index + 1);
    }

    async fn phase(&mut self, phase: Phase) -> Result<()> {
        let posted =
            authority::change_phase(&self.client, &self.authority, ELECTION_ID, phase).await?;
        self.saw(posted.receipt.leaf_index);
        Ok(())
    }

    async fn trustee_round(&mut self, files: &[TrusteeFiles], round: Step) -> Result<()> {
        for files in files {
            let step = TrusteeStep {
                client: &self.client,
                election_id: ELECTION_ID,
                files,
                min_size: self.seen,
            };
            let report = step
                .run(round)
                .await
                .with_context(|| format!("trustee {round} of {}", files.dir.display()))?;
            if let Some(index) = report.last_index {
                self.saw(index);
            }
        }
        Ok(())
    }
}

async fn run_async(args: DemoArgs) -> Result<()> {
    reset(&args.dir)?;
    let cluster_dir = args.dir.join("cluster");
    let keys_dir = args.dir.join("keys");
    std::fs::create_dir_all(&keys_dir)
        .with_context(|| format!("creating {}", keys_dir.display()))?;
    println!("bboard demo — a whole verifiable election on a local 3-node cluster\n");

    // 1. Cluster.
    let started = Instant::now();
    let cluster = start_devcluster(&cluster_dir, 3, 0, &args.origin).await?;
    let keys_path = cluster_dir.join("trusted-keys.txt");
    let policy = CosignaturePolicy::majority(&args.origin, crate::read_verifier_keys(&keys_path)?)?;
    let options = ClientOptions {
        policy: Some(policy),
        ..ClientOptions::default()
    };
    let client = BoardClient::connect(cluster.endpoints.clone(), options).await?;
    println!(
        "1. 3 nodes (org-1, org-2, org-3) up on {} in {:.1?}; every receipt below is checked against 2-of-3 node signatures",
        cluster.endpoints.join(", "),
        started.elapsed()
    );
    let mut demo = Demo {
        client: client.clone(),
        endpoints: cluster.endpoints.clone(),
        authority: cluster.authority.clone(),
        seen: 0,
    };
    let outcome = run_election(&mut demo, &args, &keys_dir).await;
    for node in cluster.nodes {
        node.shutdown().await;
    }
    outcome?;
    let endpoints: String = cluster
        .endpoints
        .iter()
        .map(|e| format!(" --endpoint {e}"))
        .collect();
    let trust = format!(
        "--trusted-keys {} --origin {}",
        keys_path.display(),
        args.origin
    );
    println!(
        "\nAll checks passed. The board (3 sled stores) is in {}; keys are in {}.",
        cluster_dir.display(),
        keys_dir.display()
    );
    println!("Start the cluster again, then look at the election yourself:");
    println!("  bboard devcluster --dir {}", cluster_dir.display());
    println!("  bboard verify-election{endpoints} --election {ELECTION_ID} {trust}");
    println!("  bboard results{endpoints} --election {ELECTION_ID}");
    println!("  bboard tally{endpoints} --election {ELECTION_ID}");
    Ok(())
}

async fn run_election(demo: &mut Demo, args: &DemoArgs, keys_dir: &Path) -> Result<()> {
    // 2. Trustee keys and the manifest.
    let mut trustee_files = Vec::new();
    let mut specs = Vec::new();
    for name in TRUSTEES {
        let files = TrusteeFiles {
            dir: args.dir.join("trustees").join(slug(name)),
        };
        specs.push(trustee::keygen(&files, name, &mut rand_core::OsRng)?);
        trustee_files.push(files);
    }
    let manifest_file = demo_manifest(specs);
    let manifest_path = args.dir.join("manifest.json");
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest_file).context("encoding the manifest")?,
    )
    .with_context(|| format!("writing {}", manifest_path.display()))?;
    let manifest = manifest_file.to_proto()?;
    let posted =
        authority::create_election(&demo.client, &demo.authority, ELECTION_ID, manifest.clone())
            .await?;
    demo.saw(posted.receipt.leaf_index);

    // Registrations: trustees, 2 terminals and 1 commission per precinct.
    let mut registrations = Vec::new();
    for (spec, name) in manifest.trustees.iter().zip(TRUSTEES) {
        let public_key =
            <[u8; 32]>::try_from(spec.signing_key.as_slice()).context("trustee signing key")?;
        registrations.push(Registration {
            public_key,
            role: pb::Role::Trustee,
            precinct_id: String::new(),
            label: name.to_string(),
        });
    }
    let mut terminals = Vec::new();
    let mut commissions = Vec::new();
    for precinct in &manifest.precincts {
        let id = &precinct.precinct_id;
        for n in 1..=TERMINALS_PER_PRECINCT {
            let key = new_key(keys_dir, &format!("terminal-{id}-{n}"))?;
            registrations.push(Registration {
                public_key: *key.verifying_key().as_bytes(),
                role: pb::Role::Terminal,
                precinct_id: id.clone(),
                label: format!("terminal {n} of {id}"),
            });
            terminals.push(key);
        }
        let key = new_key(keys_dir, &format!("commission-{id}"))?;
        registrations.push(Registration {
            public_key: *key.verifying_key().as_bytes(),
            role: pb::Role::PrecinctCommission,
            precinct_id: id.clone(),
            label: format!("commission of {id}"),
        });
        commissions.push(key);
    }
    for registration in &registrations {
        let posted =
            authority::register_key(&demo.client, &demo.authority, ELECTION_ID, registration)
                .await?;
        demo.saw(posted.receipt.leaf_index);
    }
    println!(
        "2. election {ELECTION_ID:?} created from {} (2 precincts, 2 contests, 2-of-3 trustees); {} keys registered: 3 trustees, {} terminals, {} commissions",
        manifest_path.display(),
        registrations.len(),
        terminals.len(),
        commissions.len()
    );

    // 3. Key ceremony.
    let started = Instant::now();
    demo.phase(Phase::KeyCeremony).await?;
    for round in Step::CEREMONY {
        demo.trustee_round(&trustee_files, round).await?;
    }
    let (posted, joint) =
        authority::post_joint_key(&demo.client, &demo.authority, ELECTION_ID, demo.seen).await?;
    demo.saw(posted.receipt.leaf_index);
    demo.phase(Phase::Open).await?;
    println!(
        "3. key ceremony in {:.1?}: 3 commitments, 3 public polynomials, 6 sealed shares on the board; joint key {} re-derived and posted; election OPEN",
        started.elapsed(),
        &hex::encode(&joint.public_key)[..16]
    );

    // 4. Voting: terminals in parallel, each one ballot after another.
    let started = Instant::now();
    let (expected, spoiled_line) = vote(demo, &manifest, &terminals, args).await?;
    let cast: u64 = expected
        .iter()
        .map(|p| p.first().map_or(0, |c| c.iter().sum::<u64>()))
        .sum();
    println!(
        "4. {} ballots cast by {} terminals in parallel in {:.1?} (every one encrypted, proven, chained by tracking code, posted after a random delay of up to {} ms)",
        args.ballots,
        terminals.len(),
        started.elapsed(),
        args.max_delay_ms
    );
    println!("   {spoiled_line}");
    ensure!(
        cast == args.ballots,
        "expected {} single-choice votes, counted {cast}",
        args.ballots
    );

    // 5. Close; paper protocols, one falsified.
    demo.phase(Phase::Closed).await?;
    let mut falsified = None;
    for (p, (precinct, commission)) in manifest.precincts.iter().zip(&commissions).enumerate() {
        let mut counts = expected[p].clone();
        if p == 1 {
            // Move a few votes for the first contest from one option to another.
            let mayor = &mut counts[0];
            let from = (0..mayor.len()).max_by_key(|&i| mayor[i]).unwrap_or(0);
            let to = (from + 1) % mayor.len();
            let moved = FALSIFIED_VOTES.min(mayor[from]);
            mayor[from] -= moved;
            mayor[to] += moved;
            falsified = Some((precinct.precinct_id.clone(), moved));
        }
        let ballots_cast = counts[0].iter().sum();
        let protocol = pb::PrecinctProtocol {
            precinct_id: precinct.precinct_id.clone(),
            counts: manifest
                .contests
                .iter()
                .zip(counts)
                .map(|(c, option_counts)| pb::ContestCount {
                    contest_id: c.contest_id.clone(),
                    option_counts,
                })
                .collect(),
            ballots_issued: ballots_cast,
            ballots_cast,
            photo_hash: Vec::new(),
        };
        let posted =
            authority::post_protocol(&demo.client, commission, ELECTION_ID, protocol).await?;
        demo.saw(posted.receipt.leaf_index);
    }
    let (falsified_precinct, moved) = falsified.context("no falsified protocol")?;
    println!(
        "5. election CLOSED; both commissions posted paper protocols (the one of {falsified_precinct} moves {moved} mayor votes: falsified on purpose)"
    );

    // 6. Tally: 2 of 3 trustees decrypt, results are published.
    let started = Instant::now();
    demo.phase(Phase::Tallying).await?;
    demo.trustee_round(&trustee_files[..2], Step::Decrypt)
        .await?;
    let results =
        authority::publish_results(&demo.client, &demo.authority, ELECTION_ID, demo.seen).await?;
    for (posted, _) in &results {
        demo.saw(posted.receipt.leaf_index);
    }
    demo.phase(Phase::Published).await?;
    println!(
        "6. TALLYING: {} and {} posted decryption shares ({} stayed offline: 2 of 3 suffice); {} results published in {:.1?}; election PUBLISHED",
        TRUSTEES[0],
        TRUSTEES[1],
        TRUSTEES[2],
        results.len(),
        started.elapsed()
    );
    for (_, result) in &results {
        let p = manifest
            .precincts
            .iter()
            .position(|p| p.precinct_id == result.precinct_id);
        let c = result.count.as_ref().and_then(|count| {
            manifest
                .contests
                .iter()
                .position(|c| c.contest_id == count.contest_id)
        });
        let (Some(p), Some(c), Some(count)) = (p, c, &result.count) else {
            bail!("a published result names an unknown precinct or contest");
        };
        ensure!(
            count.option_counts == expected[p][c],
            "the decrypted result of {}/{} is {:?}, the voters chose {:?}",
            result.precinct_id,
            count.contest_id,
            count.option_counts,
            expected[p][c]
        );
    }

    // 7. The audit.
    let started = Instant::now();
    let report = report::verify(&demo.client, ELECTION_ID, demo.seen).await?;
    println!(
        "7. verify-election replayed all {} leaves in {:.1?} (signatures, rules, proofs, chains, shares, results):\n",
        report.size,
        started.elapsed()
    );
    println!("{report}\n");
    ensure!(report.is_ok(), "the election does NOT verify");
    ensure!(
        report.paper_mismatches.len() == 1
            && report
                .paper_mismatches
                .iter()
                .all(|m| m.contains(&falsified_precinct)),
        "expected exactly the falsified protocol of {falsified_precinct} to be flagged, got {:?}",
        report.paper_mismatches
    );
    println!(
        "The decrypted results equal the voters' choices; the paper protocol of {falsified_precinct} does not match them (flagged above)."
    );
    Ok(())
}

/// Casts `args.ballots` random ballots from all terminals in parallel (each terminal
/// sequentially), plus one spoiled ballot that is then checked. Returns the counts the
/// voters chose (per precinct, contest, option) and a line about the spoiled ballot.
/// Looks a tracking code up the way a voter does: the ballot tracker on a node's HTTP
/// side (the last node, not the one the terminal used). Fails unless it finds the
/// ballot at `index`.
async fn track(endpoints: &[String], short_code: &str, index: u64) -> Result<String> {
    let endpoint = endpoints.last().context("no node")?;
    let url = format!("http://{endpoint}/v1/tracking/{short_code}");
    // That node may apply the entry a moment after the receipt: retry a 404 briefly.
    let mut answer =
        bboard_util::http::request(axum::http::Method::GET, &url, String::new()).await?;
    for _ in 0..50 {
        if answer.status != 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = bboard_util::http::request(axum::http::Method::GET, &url, String::new()).await?;
    }
    if answer.status != 200 {
        bail!(
            "the ballot tracker at {url} answered {}: {}",
            answer.status,
            answer.body
        );
    }
    let found: serde_json::Value = serde_json::from_str(&answer.body)
        .with_context(|| format!("parsing the answer of {url}"))?;
    let at = found[0]["entry"]["index"].as_u64();
    if at != Some(index) {
        bail!("the ballot tracker at {url} finds entry {at:?}, the receipt says {index}");
    }
    Ok(format!(
        "the voter finds code {short_code} in the ballot tracker (http://{endpoint}/) at entry {index}, with its inclusion proof"
    ))
}

async fn vote(
    demo: &mut Demo,
    manifest: &pb::ElectionManifest,
    terminals: &[SigningKey],
    args: &DemoArgs,
) -> Result<(Counts, String)> {
    let per_terminal = args.ballots / terminals.len() as u64;
    let extra = args.ballots % terminals.len() as u64;
    let mut tasks = Vec::new();
    for (t, key) in terminals.iter().enumerate() {
        let count = per_terminal + u64::from((t as u64) < extra);
        let client = demo.client.clone();
        let key = key.clone();
        let seen = demo.seen;
        let seed = args.seed.wrapping_add(t as u64);
        let max_delay = std::time::Duration::from_millis(args.max_delay_ms);
        tasks.push(tokio::spawn(async move {
            let mut session = TerminalSession::open(&client, ELECTION_ID, key, seen)
                .await?
                .with_max_delay(max_delay);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut chosen = Vec::new();
            let mut spoiled = None;
            if t == 0 {
                // The first voter challenges the device: the ballot is opened, not cast.
                let selections = random_selections(&session.manifest, &mut rng);
                let receipt = session.cast(&selections, true).await?;
                let ballot = receipt.spoiled.clone().context("no spoiled ballot")?;
                session.check_spoiled(&ballot)?;
                spoiled = Some((receipt, ballot));
            }
            let mut last = 0;
            for _ in 0..count {
                let selections = random_selections(&session.manifest, &mut rng);
                let receipt = session.cast(&selections, false).await?;
                last = receipt.leaf_index;
                chosen.push(selections);
            }
            anyhow::Ok((session.precinct_id, chosen, spoiled, last))
        }));
    }
    let mut counts: Counts = manifest
        .precincts
        .iter()
        .map(|_| {
            manifest
                .contests
                .iter()
                .map(|c| vec![0; c.options.len()])
                .collect()
        })
        .collect();
    let mut spoiled_line = String::new();
    for task in tasks {
        let (precinct_id, chosen, spoiled, last) = task.await.context("terminal task")??;
        demo.saw(last);
        let p = manifest
            .precincts
            .iter()
            .position(|p| p.precinct_id == precinct_id)
            .context("terminal of an unknown precinct")?;
        for selections in chosen {
            for (c, selection) in selections.iter().enumerate() {
                for &option in &selection.selected_options {
                    counts[p][c][option as usize] += 1;
                }
            }
        }
        if let Some((receipt, ballot)) = spoiled {
            demo.saw(receipt.leaf_index);
            let shown: Vec<String> = manifest
                .contests
                .iter()
                .zip(&ballot.selections)
                .map(|(c, s)| {
                    format!(
                        "{}: {}",
                        c.contest_id,
                        describe_selection(c, &s.selected_options)
                    )
                })
                .collect();
            let tracker = track(&demo.endpoints, &receipt.short_code, receipt.leaf_index).await?;
            spoiled_line = format!(
                "one voter challenged the device: spoiled ballot (entry {}, tracking code {}) opened with its nonces re-encrypts to exactly what the voter saw ({}); it is not counted\n   {tracker}",
                receipt.leaf_index,
                receipt.short_code,
                shown.join("; ")
            );
        }
    }
    Ok((counts, spoiled_line))
}
