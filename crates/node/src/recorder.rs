//! The checkpoint recorder: the leader posts its latest final checkpoint on the board
//! as a `CheckpointCosignatures` entry signed with its node key, so the history of
//! checkpoints is itself covered by the tree (and checked against it by the board
//! rules). The entry goes through the ordinary batcher, like any other append.

use std::sync::Arc;
use std::time::Duration;

use bboard_core::board::{BoardView, Outcome};
use tokio::sync::{oneshot, watch};

use crate::batcher::PendingAppend;
use crate::node::{now_unix_ms, Shared};

/// The checkpoint recorder: every `checkpoint_record_interval_ms`, the leader posts its
/// latest final checkpoint as a `CheckpointCosignatures` entry signed with its node
/// key. Skipped while the node's key is not registered with `ROLE_NODE`, and when
/// nothing but the previous record was appended since.
pub async fn run_checkpoint_recorder(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let interval = shared.config.limits.checkpoint_record_interval_ms;
    if interval == 0 {
        return;
    }
    let node_key = *shared.signer.verifier().public_key().as_bytes();
    let mut recorded_size = 0u64;
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval)) => {}
            _ = shutdown.changed() => return,
        }
        let is_leader = shared.raft.current_leader().await == Some(shared.config.node_id);
        let Some(checkpoint) = shared.finals.borrow().clone() else {
            continue;
        };
        let size = checkpoint.checkpoint().size.0;
        // `recorded_size + 1`: the board grew only by our own record.
        if !is_leader || size <= recorded_size + 1 {
            continue;
        }
        match shared.board.key(&node_key) {
            Ok(Some(grant)) if grant.role() == bboard_core::pb::Role::Node && grant.is_active() => {
            }
            _ => {
                if !warned {
                    tracing::info!(
                        "not recording checkpoints on the board: this node's key is not registered with ROLE_NODE"
                    );
                    warned = true;
                }
                continue;
            }
        }
        let body = bboard_core::pb::EntryBody {
            election_id: String::new(),
            created_unix_ms: now_unix_ms(),
            kind: Some(bboard_core::pb::entry_body::Kind::CheckpointCosignatures(
                bboard_core::pb::CheckpointCosignatures {
                    signed_checkpoint: checkpoint.to_note(),
                },
            )),
        };
        let (reply, outcome) = oneshot::channel();
        let pending = PendingAppend {
            envelope: shared.signer.sign_entry(&body),
            reply,
        };
        if shared.batcher.send(pending).await.is_err() {
            return;
        }
        match outcome.await {
            Ok(Ok(Outcome::Appended { index })) => {
                tracing::debug!(size, index, "recorded checkpoint on the board");
                recorded_size = size;
            }
            Ok(Ok(other)) => tracing::warn!(size, ?other, "checkpoint record not appended"),
            Ok(Err(status)) => tracing::debug!(size, %status, "checkpoint record not appended"),
            Err(_) => return,
        }
    }
}
