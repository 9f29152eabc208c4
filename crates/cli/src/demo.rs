//! `bboard demo`: shows, end to end and on embedded defaults, what bboard does today.
//!
//! It starts a local 3-node cluster (one node per organisation, real sled stores and
//! gRPC on 127.0.0.1, in this process), posts the board genesis, registers terminal
//! keys, appends signed entries concurrently through different nodes, verifies every
//! receipt against the 2-of-3 cosignature policy, proves consistency between two
//! checkpoints, stops a node and keeps appending, and shows that tampering is
//! detected. The election protocol (encrypted ballots, tally) is not in it yet.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use bboard_client::{BoardClient, ClientOptions};
use bboard_core::checkpoint::{CosignaturePolicy, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::leaf_hash;
use bboard_core::pb;
use ed25519_dalek::SigningKey;

use crate::keys::generate_key;
use crate::node_cmds::{runtime, start_devcluster};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's cluster data, keys and receipt (replaced on each run).
    #[arg(long, default_value = "bboard-demo")]
    dir: PathBuf,
    /// Number of entries to append.
    #[arg(long, default_value_t = 300)]
    entries: u64,
    /// Board origin (name in checkpoints).
    #[arg(long, default_value = "demo.bboard.local/election-2026")]
    origin: String,
}

fn entry(election_id: &str, kind: pb::entry_body::Kind) -> pb::EntryBody {
    pb::EntryBody {
        election_id: election_id.to_string(),
        created_unix_ms: bboard_node::node::now_unix_ms(),
        kind: Some(kind),
    }
}

fn register(authority: &SigningKey, terminal: &SigningKey, precinct: &str) -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &entry(
            "",
            pb::entry_body::Kind::RegisterKey(pb::RegisterKey {
                public_key: terminal.verifying_key().as_bytes().to_vec(),
                role: pb::Role::Terminal as i32,
                precinct_id: precinct.to_string(),
                label: format!("terminal in {precinct}"),
            }),
        ),
        authority,
    )
}

fn note(author: &SigningKey, text: String) -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &entry("", pb::entry_body::Kind::Note(pb::Note { text })),
        author,
    )
}

pub fn run(args: DemoArgs) -> Result<()> {
    ensure!(args.entries >= 10, "--entries must be at least 10");
    runtime()?.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> Result<()> {
    let cluster_dir = args.dir.join("cluster");
    if cluster_dir.exists() {
        std::fs::remove_dir_all(&cluster_dir)
            .with_context(|| format!("removing the previous demo in {}", cluster_dir.display()))?;
    }
    println!(
        "bboard demo — a local 3-node cluster (the election protocol is not in this demo yet)\n"
    );

    // 1. Cluster and genesis.
    let started = Instant::now();
    let mut cluster = start_devcluster(&cluster_dir, 3, 0, &args.origin).await?;
    let keys_path = cluster_dir.join("trusted-keys.txt");
    let policy = CosignaturePolicy::majority(&args.origin, crate::read_verifier_keys(&keys_path)?)?;
    println!(
        "1. 3 nodes (org-1, org-2, org-3) up on {} in {:.1?}; genesis posted by the board authority",
        cluster.endpoints.join(", "),
        started.elapsed()
    );
    let options = ClientOptions {
        policy: Some(policy.clone()),
        ..ClientOptions::default()
    };
    let client = BoardClient::connect(cluster.endpoints.clone(), options.clone()).await?;

    // 2. Register terminals.
    let terminals: Vec<SigningKey> = (0..3).map(|_| generate_key()).collect();
    for (i, terminal) in terminals.iter().enumerate() {
        client
            .append(&register(
                &cluster.authority,
                terminal,
                &format!("precinct-{}", i + 1),
            ))
            .await
            .context("registering a terminal")?;
    }
    let stranger = generate_key();
    match client
        .append(&note(&stranger, "not registered".into()))
        .await
    {
        Ok(_) => bail!("an unregistered key was allowed to post"),
        Err(e) => println!("2. 3 terminal keys registered; an unregistered key is refused: {e}"),
    }

    // 3. Concurrent appends through every node (followers forward to the leader).
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, terminal) in terminals.iter().enumerate() {
        let endpoint = cluster.endpoints[i].clone();
        let terminal = terminal.clone();
        let options = options.clone();
        let count = args.entries / 3;
        tasks.push(tokio::spawn(async move {
            let client = BoardClient::connect(vec![endpoint], options).await?;
            let mut receipts = Vec::new();
            for n in 0..count {
                let result = client
                    .append(&note(&terminal, format!("terminal {i} entry {n}")))
                    .await?;
                receipts.push(result.receipt);
            }
            anyhow::Ok(receipts)
        }));
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.extend(task.await.context("append task")??);
    }
    let mut indexes: Vec<u64> = receipts.iter().map(|r| r.leaf_index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    ensure!(
        indexes.len() == receipts.len(),
        "two receipts share a leaf index"
    );
    println!(
        "3. {} entries appended by 3 terminals through 3 different nodes in {:.1?}; every receipt verified against the 2-of-3 node keys",
        receipts.len(),
        started.elapsed()
    );

    // 4. A receipt to keep, and a retry that is recognised as a duplicate.
    let receipt = receipts
        .get(receipts.len() / 2)
        .context("no receipts")?
        .clone();
    let receipt_path = args.dir.join("receipt.json");
    std::fs::write(&receipt_path, serde_json::to_string_pretty(&receipt)?)
        .with_context(|| format!("writing {}", receipt_path.display()))?;
    let verified = receipt.verify(&policy)?;
    let retry = client.append(&verified.leaf.envelope).await?;
    ensure!(
        retry.duplicate && retry.receipt.leaf_index == receipt.leaf_index,
        "a retried envelope was not recognised as a duplicate"
    );
    println!(
        "4. receipt for entry {} written to {}; re-sending the same envelope returns the same entry (duplicate)",
        receipt.leaf_index,
        receipt_path.display()
    );

    // 5. Consistency between an early and the latest checkpoint.
    let consistency = client.consistency_proof(2, 0).await?;
    println!(
        "5. the board of size {} is provably an extension of the board of size 2 ({}-hash consistency proof, both checkpoints 2-of-3 cosigned)",
        consistency.new_checkpoint.checkpoint.size.0,
        consistency.proof.len()
    );

    // 6. One node stops: the others keep the board available.
    let stopped = cluster.nodes.pop().context("no node")?;
    stopped.shutdown().await;
    let survivors = BoardClient::connect(cluster.endpoints[..2].to_vec(), options).await?;
    let after = survivors
        .append(&note(&terminals[0], "after a node stopped".into()))
        .await
        .context("appending with one node down")?;
    println!(
        "6. node 3 stopped; entry {} still appended and cosigned by {}",
        after.receipt.leaf_index,
        after
            .verified
            .as_ref()
            .map(|v| v.checkpoint.signers.join(" + "))
            .unwrap_or_default()
    );

    // 7. Tampering is detected offline.
    let mut forged = receipt.clone();
    let mut leaf = hex::decode(&forged.leaf_data)?;
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    forged.leaf_hash = leaf_hash(&leaf).to_hex();
    forged.leaf_data = hex::encode(&leaf);
    let Err(error) = forged.verify(&policy) else {
        bail!("a receipt with an edited entry was accepted");
    };
    println!("7. a receipt whose entry was edited by one bit is rejected: {error}");
    let signed = SignedCheckpoint::parse(&receipt.checkpoint)?;
    let mut lines: Vec<&str> = receipt.checkpoint.lines().collect();
    lines.truncate(lines.len() - (signed.signer_names().len() - 1));
    let one_signature = format!("{}\n", lines.join("\n"));
    let Err(error) = policy.verify_note(&one_signature) else {
        bail!("a checkpoint signed by one node was accepted");
    };
    println!("   a checkpoint signed by a single node is not accepted: {error}");

    for node in cluster.nodes {
        node.shutdown().await;
    }
    println!(
        "\nAll checks passed. Cluster data is in {}.",
        cluster_dir.display()
    );
    println!("Re-check the receipt yourself:");
    println!(
        "  bboard verify-receipt --receipt {} --keys {} --origin {}",
        receipt_path.display(),
        keys_path.display(),
        args.origin
    );
    println!(
        "Run the cluster again with: bboard devcluster --dir {} --base-port 0",
        cluster_dir.display()
    );
    Ok(())
}
