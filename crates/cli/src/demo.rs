//! `bboard demo`: shows, end to end and on embedded defaults, what bboard does today.
//!
//! Current scope (said plainly to the user): a single-process, in-memory board. It
//! signs entries, builds the BLAKE3 Merkle tree, has three organisations' node keys
//! cosign checkpoints, issues a receipt, proves consistency between two checkpoints,
//! and shows that tampering is detected. The replicated cluster and the election
//! protocol are not part of this demo yet.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::leaf::{encode_leaf, leaf_hash};
use bboard_core::pb;
use bboard_core::receipt::Receipt;
use bboard_merkle::{
    verify_consistency, Blake3Hasher, LeafIndex, MemoryNodeStore, MerkleTree, TreeSize,
};

use crate::keys::generate_key;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's output files (keys, checkpoints, receipt).
    #[arg(long, default_value = "bboard-demo")]
    dir: PathBuf,
    /// Number of entries to append.
    #[arg(long, default_value_t = 1000)]
    entries: u64,
    /// Board origin (name in checkpoints).
    #[arg(long, default_value = "demo.bboard.local/election-2026")]
    origin: String,
}

/// The organisations whose nodes cosign checkpoints in the demo.
const ORGANISATIONS: [&str; 3] = ["cec-node", "observers-node", "party-node"];

fn note_entry(election_id: &str, seq: u64, text: String) -> pb::EntryBody {
    pb::EntryBody {
        election_id: election_id.to_string(),
        created_unix_ms: seq,
        kind: Some(pb::entry_body::Kind::Note(pb::Note { text })),
    }
}

fn cosign(checkpoint: Checkpoint, signers: &[NoteSigner]) -> Result<SignedCheckpoint> {
    let (first, rest) = signers.split_first().context("no signers")?;
    let mut signed = SignedCheckpoint::sign(checkpoint, first)?;
    for signer in rest {
        signed.add_signature(signer)?;
    }
    Ok(signed)
}

pub fn run(args: DemoArgs) -> Result<()> {
    ensure!(args.entries >= 2, "--entries must be at least 2");
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    println!("bboard demo — in-memory board (single process; the replicated cluster and the");
    println!("election protocol are not in this demo yet)\n");

    // 1. Keys of the organisations' nodes and of the entry author.
    let signers = ORGANISATIONS
        .iter()
        .map(|name| NoteSigner::new(name, generate_key()).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let keys_path = args.dir.join("node-keys.txt");
    let keys_text: String = signers
        .iter()
        .map(|s| format!("{}\n", s.verifier()))
        .collect();
    std::fs::write(&keys_path, &keys_text)
        .with_context(|| format!("writing {}", keys_path.display()))?;
    let policy = CosignaturePolicy::majority(
        &args.origin,
        signers.iter().map(NoteSigner::verifier).collect(),
    )?;
    println!(
        "1. three organisations' node keys generated (policy: {} of {}), verifier keys in {}",
        policy.threshold(),
        policy.keys().len(),
        keys_path.display()
    );

    // 2. Sign and append entries.
    let author = generate_key();
    let started = Instant::now();
    let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
    let mut leaves = Vec::with_capacity(args.entries as usize);
    for seq in 0..args.entries {
        let body = note_entry("demo-2026", seq, format!("demo entry {seq}"));
        let envelope = SignedEnvelope::sign_body(&body, &author);
        let leaf_data = encode_leaf(1_767_225_600_000 + seq, &envelope);
        tree.append(leaf_hash(&leaf_data))?;
        leaves.push(leaf_data);
    }
    println!(
        "2. {} signed entries appended to the BLAKE3 Merkle tree in {:.1?}",
        args.entries,
        started.elapsed()
    );

    // 3. Two cosigned checkpoints and a consistency proof between them.
    let half = TreeSize(args.entries / 2);
    let full = TreeSize(args.entries);
    let early = cosign(
        Checkpoint {
            origin: args.origin.clone(),
            size: half,
            root: tree.root_at(half)?,
        },
        &signers,
    )?;
    let latest = cosign(
        Checkpoint {
            origin: args.origin.clone(),
            size: full,
            root: tree.root()?,
        },
        &signers,
    )?;
    for (name, signed) in [
        ("checkpoint-early.note", &early),
        ("checkpoint-latest.note", &latest),
    ] {
        let path = args.dir.join(name);
        std::fs::write(&path, signed.to_note())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    policy.verify(&early)?;
    policy.verify(&latest)?;
    let consistency = tree.consistency_proof(half, full)?;
    verify_consistency(
        &Blake3Hasher,
        half,
        full,
        &early.checkpoint().root,
        &latest.checkpoint().root,
        &consistency,
    )?;
    println!(
        "3. checkpoints at sizes {} and {} cosigned by all 3 nodes; the {}-hash consistency proof shows the board only grew",
        half.0,
        full.0,
        consistency.len()
    );

    // 4. A receipt for one entry, checkable offline.
    let index = LeafIndex(args.entries * 2 / 3);
    let leaf_data = &leaves[index.0 as usize];
    let receipt = Receipt {
        leaf_index: index.0,
        leaf_hash: leaf_hash(leaf_data).to_hex(),
        leaf_data: hex::encode(leaf_data),
        checkpoint: latest.to_note(),
        inclusion_proof: tree
            .inclusion_proof(index, full)?
            .iter()
            .map(|h| h.to_hex())
            .collect(),
        tracking_code: String::new(),
    };
    let receipt_path = args.dir.join("receipt.json");
    std::fs::write(&receipt_path, serde_json::to_string_pretty(&receipt)?)
        .with_context(|| format!("writing {}", receipt_path.display()))?;
    receipt.verify(&policy)?;
    println!(
        "4. receipt for entry {} verified offline ({} proof hashes): {}",
        index.0,
        receipt.inclusion_proof.len(),
        receipt_path.display()
    );

    // 5. Tampering is detected.
    let mut forged = receipt.clone();
    let mut forged_leaf = leaf_data.clone();
    let last = forged_leaf.len() - 1;
    forged_leaf[last] ^= 0x01;
    forged.leaf_data = hex::encode(&forged_leaf);
    forged.leaf_hash = leaf_hash(&forged_leaf).to_hex();
    let Err(error) = forged.verify(&policy) else {
        bail!("a receipt with an edited entry was accepted");
    };
    println!("5. a receipt whose entry was edited by one bit is rejected: {error}");

    let mut one_signature = latest.clone();
    one_signature = SignedCheckpoint::sign(one_signature.checkpoint().clone(), &signers[0])?;
    let Err(error) = policy.verify(&one_signature) else {
        bail!("a checkpoint signed by one node was accepted");
    };
    println!("   a checkpoint signed by a single node is not accepted: {error}");

    println!("\nAll checks passed. Re-check the receipt yourself:");
    println!(
        "  bboard verify-receipt --receipt {} --keys {} --origin {}",
        receipt_path.display(),
        keys_path.display(),
        args.origin
    );
    Ok(())
}
