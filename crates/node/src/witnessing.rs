//! Feeding final checkpoints to independent witnesses (`[[witnesses]]` in the node
//! configuration) and merging their cosignatures into the checkpoint the node serves.
//!
//! After the nodes' own cosigning reaches k-of-n, the cosigner offers the checkpoint to
//! every configured witness (C2SP tlog-witness `add-checkpoint`, see
//! `bboard_witness::server`) with a consistency proof from the size that witness last
//! cosigned (learned from its answers; a `409` tells it, and the request is retried
//! once). Each `200` answer's signature lines are appended to the note. With
//! `witness_threshold` set, the node calls a checkpoint final (and hands out receipts
//! with it) only once enough witnesses cosigned, so a client requiring witnesses gets
//! receipts it accepts; a witness that refuses (e.g. because it saw a fork) is logged.

use std::collections::HashMap;
use std::sync::Mutex;

use bboard_core::checkpoint::SignedCheckpoint;
use bboard_core::witness::AddCheckpoint;
use bboard_merkle::TreeSize;

use crate::config::WitnessPeer;
use crate::node::Shared;
use bboard_witness::{offer_checkpoint, WitnessAnswer};

/// The sizes each witness last cosigned, as learned from its answers.
#[derive(Debug, Default)]
pub struct WitnessSizes(Mutex<HashMap<String, u64>>);

impl WitnessSizes {
    fn get(&self, url: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|sizes| sizes.get(url).copied())
            .unwrap_or(0)
    }

    fn set(&self, url: &str, size: u64) {
        if let Ok(mut sizes) = self.0.lock() {
            sizes.insert(url.to_string(), size);
        }
    }
}

/// Offers `checkpoint` (final among the nodes) to every configured witness and
/// returns it with the cosignature lines of those that accepted.
pub async fn cosign(shared: &Shared, checkpoint: SignedCheckpoint) -> SignedCheckpoint {
    let answers = futures::future::join_all(
        shared
            .config
            .witnesses
            .iter()
            .map(|witness| offer(shared, witness, &checkpoint)),
    )
    .await;
    let mut note = checkpoint.to_note();
    for lines in answers.into_iter().flatten() {
        for line in lines.lines().filter(|l| !l.is_empty()) {
            note.push_str(line);
            note.push('\n');
        }
    }
    match SignedCheckpoint::parse(&note) {
        Ok(merged) => merged,
        Err(e) => {
            tracing::warn!(error = %e, "a witness answer does not merge into the note; ignored");
            checkpoint
        }
    }
}

/// One witness: its cosignature lines, or `None` (logged) if it did not cosign.
async fn offer(
    shared: &Shared,
    witness: &WitnessPeer,
    checkpoint: &SignedCheckpoint,
) -> Option<String> {
    let size = checkpoint.checkpoint().size.0;
    let sizes = &shared.witness_sizes;
    for _attempt in 0..2 {
        let old_size = sizes.get(&witness.url);
        let proof = if old_size > 0 && old_size < size {
            match shared
                .board
                .with_merkle(|m| Ok(m.consistency_proof(TreeSize(old_size), TreeSize(size))?))
            {
                Ok(proof) => proof,
                Err(e) => {
                    tracing::warn!(error = %e, "no consistency proof for the witness");
                    return None;
                }
            }
        } else {
            Vec::new()
        };
        let offer = AddCheckpoint {
            old_size,
            proof,
            note: checkpoint.to_note(),
        };
        match offer_checkpoint(&witness.url, &offer).await {
            Ok(WitnessAnswer::Cosigned(lines)) => {
                sizes.set(&witness.url, size);
                return Some(lines);
            }
            Ok(WitnessAnswer::KnownSize(known)) => sizes.set(&witness.url, known),
            Ok(WitnessAnswer::Refused { status, reason }) => {
                tracing::warn!(witness = %witness.url, status, %reason, "witness refused to cosign");
                return None;
            }
            Err(e) => {
                tracing::warn!(witness = %witness.url, error = %e, "witness unreachable");
                return None;
            }
        }
    }
    None
}
