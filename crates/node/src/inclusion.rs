//! Inclusion deadlines and censorship alarms.
//!
//! A leader can stay perfectly consistent while silently leaving one terminal's ballots
//! out. Every node therefore remembers what it forwarded to the leader (a bounded,
//! persisted pending set in sled) and watches its own applied board:
//!
//! 1. an entry that lands is forgotten;
//! 2. an entry still missing at the inclusion deadline is forwarded once more, to the
//!    current leader;
//! 3. if it is still missing one more deadline later — and the node's own copy of the
//!    board rules would admit it — the node raises a **censorship alarm**: a statement
//!    signed with its checkpoint key (see `bboard_core::alarm`) naming the whole
//!    envelope, when it was received, the board size and root at that moment and the
//!    leader it was forwarded to. Alarms are persisted, listed by `ListAlarms`, sent on
//!    `Watch`, counted in `Status` and logged;
//! 4. while an alarm is active the node re-forwards the entry whenever the leader
//!    changes (appends are idempotent, so this never makes two leaves); when the entry
//!    lands, the alarm is marked cleared (and says at which index), never deleted.
//!
//! An honest but slow leader (paused for less than the deadline) raises nothing, and no
//! alarm is ever raised for an entry that is on this node's board.

use std::sync::Arc;
use std::time::Duration;

use bboard_core::alarm::sign_alarm;
use bboard_core::board::{BatchApplier, BoardView};
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::leaf::LeafRecord;
use bboard_core::pb;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::board_store::{decode, encode, StoreError};
use crate::node::{now_unix_ms, Shared};

/// Most entries tracked at once; beyond this, forwarded entries are not tracked (and a
/// warning is logged), so a flood cannot exhaust the disk.
pub const MAX_PENDING: usize = 65_536;

/// One forwarded entry not yet seen on the board.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    /// The `pb::Envelope`, encoded.
    #[serde(with = "serde_bytes")]
    envelope: Vec<u8>,
    received_unix_ms: u64,
    forwarded_to: u64,
    forwarded_address: String,
    /// When it was last forwarded (first forward, re-forward, or after a leader change).
    last_forward_unix_ms: u64,
    reforwarded: bool,
    alarm_raised: bool,
}

/// The persisted pending set and alarm log of one node.
#[derive(Clone)]
pub struct Inclusion {
    pending: sled::Tree,
    alarms: sled::Tree,
    events: broadcast::Sender<pb::AlarmRecord>,
    deadline: Duration,
}

impl Inclusion {
    /// Opens the node's pending set and alarm log.
    ///
    /// # Errors
    ///
    /// sled errors.
    pub fn open(db: &sled::Db, deadline: Duration) -> Result<Self, StoreError> {
        let (events, _) = broadcast::channel(256);
        Ok(Inclusion {
            pending: db.open_tree("pending-forwards")?,
            alarms: db.open_tree("alarms")?,
            events,
            deadline,
        })
    }

    /// Alarm events (raised and cleared) as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<pb::AlarmRecord> {
        self.events.subscribe()
    }

    /// Remembers an entry this node is forwarding to `leader`. Durable before it
    /// returns, like everything a node later signs a statement about.
    ///
    /// # Errors
    ///
    /// sled errors.
    pub async fn track(
        &self,
        envelope: &SignedEnvelope,
        leader: u64,
        address: &str,
    ) -> Result<(), StoreError> {
        let id = envelope.id();
        if self.pending.contains_key(id.0)? {
            return Ok(());
        }
        if self.pending.len() >= MAX_PENDING {
            tracing::warn!(
                max = MAX_PENDING,
                "pending-forward set is full; this entry is forwarded but not tracked"
            );
            return Ok(());
        }
        let now = now_unix_ms();
        let pending = Pending {
            envelope: envelope.to_proto().encode_to_vec(),
            received_unix_ms: now,
            forwarded_to: leader,
            forwarded_address: address.to_string(),
            last_forward_unix_ms: now,
            reforwarded: false,
            alarm_raised: false,
        };
        self.pending.insert(id.0, encode(&pending)?)?;
        self.flush().await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let tree = self.pending.clone();
        tokio::task::spawn_blocking(move || tree.flush()).await??;
        Ok(())
    }

    /// Forgets an entry that is on the board (its receipt came back).
    ///
    /// # Errors
    ///
    /// sled errors.
    pub fn landed(&self, id: &EnvelopeId) -> Result<(), StoreError> {
        // An entry with an alarm stays until the watcher clears the alarm.
        if let Some(bytes) = self.pending.get(id.0)? {
            let pending: Pending = decode(&bytes, "pending forward")?;
            if !pending.alarm_raised {
                self.pending.remove(id.0)?;
            }
        }
        Ok(())
    }

    /// The alarm log, oldest first; cleared alarms only if asked for.
    ///
    /// # Errors
    ///
    /// sled errors or an undecodable record.
    pub fn list(&self, include_cleared: bool) -> Result<Vec<pb::AlarmRecord>, StoreError> {
        let mut records = Vec::new();
        for row in self.alarms.iter() {
            let (_, bytes) = row?;
            let record = pb::AlarmRecord::decode(bytes.as_ref()).map_err(|source| {
                StoreError::DecodeProto {
                    what: "alarm record",
                    source,
                }
            })?;
            if include_cleared || !record.cleared {
                records.push(record);
            }
        }
        records.sort_by_key(|r| {
            r.alarm
                .as_ref()
                .and_then(|a| pb::AlarmStatement::decode(a.statement.as_slice()).ok())
                .map_or(0, |s| s.raised_unix_ms)
        });
        Ok(records)
    }

    /// Active (uncleared) alarms and tracked forwards.
    pub fn counts(&self) -> (u64, u64) {
        let active = self.list(false).map_or(0, |l| l.len() as u64);
        (active, self.pending.len() as u64)
    }
}

/// The watcher loop; see the module docs.
pub async fn run_inclusion_watch(
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let tick =
        (shared.inclusion.deadline / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = check_once(&shared).await {
            tracing::warn!(error = %e, "inclusion check failed");
        }
    }
}

async fn check_once(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let inclusion = &shared.inclusion;
    let deadline_ms = inclusion.deadline.as_millis() as u64;
    let leader = shared.raft.current_leader().await;
    let own_id = shared.config.node_id;
    for row in inclusion.pending.iter() {
        let (key, bytes) = row?;
        let Ok(id) = <[u8; 32]>::try_from(key.as_ref()) else {
            inclusion.pending.remove(&key)?;
            continue;
        };
        let id = EnvelopeId(id);
        let mut pending: Pending = decode(&bytes, "pending forward")?;
        let now = now_unix_ms();

        if let Some(index) = shared.board.find_envelope(&id)? {
            inclusion.pending.remove(id.0)?;
            if pending.alarm_raised {
                clear_alarm(inclusion, &id, index, now)?;
            }
            continue;
        }
        let Ok(envelope) = pb::Envelope::decode(pending.envelope.as_slice()) else {
            inclusion.pending.remove(id.0)?;
            continue;
        };

        let due = pending.received_unix_ms + deadline_ms;
        let leader_changed = leader.is_some_and(|l| l != pending.forwarded_to && l != own_id);
        if now >= due && !pending.reforwarded {
            // Deadline passed: forward once more, to whoever leads now.
            pending.reforwarded = true;
            reforward(shared, &mut pending, envelope, now);
            inclusion.pending.insert(id.0, encode(&pending)?)?;
        } else if pending.reforwarded && !pending.alarm_raised && now >= due + deadline_ms {
            if !still_admissible(shared, &envelope)? {
                // The rules would refuse it now (e.g. the polls closed): not censorship.
                tracing::info!(envelope = %hex(&id), "forwarded entry is no longer admissible; not raising an alarm");
                inclusion.pending.remove(id.0)?;
                continue;
            }
            raise_alarm(shared, &id, &pending, envelope, due, now)?;
            pending.alarm_raised = true;
            inclusion.pending.insert(id.0, encode(&pending)?)?;
        } else if pending.alarm_raised
            && (leader_changed || now >= pending.last_forward_unix_ms + deadline_ms)
        {
            // Keep offering the entry, above all to a new leader.
            reforward(shared, &mut pending, envelope, now);
            inclusion.pending.insert(id.0, encode(&pending)?)?;
        }
    }
    Ok(())
}

fn hex(id: &EnvelopeId) -> String {
    ::hex::encode(id.0)
}

/// Sends the entry again without waiting for the outcome (a censoring leader may never
/// answer); the next check sees whether it landed.
fn reforward(shared: &Arc<Shared>, pending: &mut Pending, envelope: pb::Envelope, now: u64) {
    pending.last_forward_unix_ms = now;
    if let Some(leader) = shared.current_leader_id() {
        pending.forwarded_to = leader;
        pending.forwarded_address = shared.address_of(leader).unwrap_or_default();
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(status) = shared.forward_to_leader(envelope).await {
            tracing::debug!(%status, "re-forward failed");
        }
    });
}

/// Whether this node's copy of the rules would admit the entry now.
fn still_admissible(shared: &Shared, envelope: &pb::Envelope) -> Result<bool, StoreError> {
    let Ok(envelope) = SignedEnvelope::verify(envelope, shared.config.limits.max_body_bytes) else {
        return Ok(false);
    };
    let record = LeafRecord {
        timestamp_unix_ms: 0,
        envelope,
    };
    let applier = BatchApplier::new(&shared.board)?;
    Ok(applier.check(&record)?.is_ok())
}

fn raise_alarm(
    shared: &Shared,
    id: &EnvelopeId,
    pending: &Pending,
    envelope: pb::Envelope,
    deadline: u64,
    now: u64,
) -> Result<(), StoreError> {
    let size = shared.board.size()?;
    let root = shared.board.root_at(size)?;
    let statement = pb::AlarmStatement {
        origin: shared.config.origin.clone(),
        node_name: shared.config.name.clone(),
        envelope: Some(envelope),
        received_unix_ms: pending.received_unix_ms,
        deadline_unix_ms: deadline,
        raised_unix_ms: now,
        board_size: size,
        board_root: root.as_bytes().to_vec(),
        forwarded_to_node: pending.forwarded_to,
        forwarded_to_address: pending.forwarded_address.clone(),
    };
    let record = pb::AlarmRecord {
        alarm: Some(sign_alarm(&statement, &shared.signer)),
        cleared: false,
        cleared_leaf_index: 0,
        cleared_unix_ms: 0,
    };
    shared
        .inclusion
        .alarms
        .insert(id.0, record.encode_to_vec())?;
    shared.inclusion.alarms.flush()?;
    tracing::warn!(
        envelope = %hex(id),
        leader = pending.forwarded_to,
        board_size = size,
        "CENSORSHIP ALARM: a forwarded entry is not on the board after the inclusion deadline"
    );
    let _ = shared.inclusion.events.send(record);
    Ok(())
}

fn clear_alarm(
    inclusion: &Inclusion,
    id: &EnvelopeId,
    index: u64,
    now: u64,
) -> Result<(), StoreError> {
    let Some(bytes) = inclusion.alarms.get(id.0)? else {
        return Ok(());
    };
    let mut record =
        pb::AlarmRecord::decode(bytes.as_ref()).map_err(|source| StoreError::DecodeProto {
            what: "alarm record",
            source,
        })?;
    record.cleared = true;
    record.cleared_leaf_index = index;
    record.cleared_unix_ms = now;
    inclusion.alarms.insert(id.0, record.encode_to_vec())?;
    inclusion.alarms.flush()?;
    tracing::info!(envelope = %hex(id), index, "censorship alarm cleared: the entry is on the board");
    let _ = inclusion.events.send(record);
    Ok(())
}
