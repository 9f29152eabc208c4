//! The public `bboard.v1.Board` gRPC service of a node.
//!
//! Writes: the envelope is checked (size, key, strict signature) before anything else;
//! a duplicate returns the original receipt at once; a follower forwards the envelope
//! to the leader; the leader pre-checks the board rules (registration, role, genesis)
//! and queues the envelope for the batcher. The reply waits until a k-of-n cosigned
//! checkpoint covers the new leaf, then carries that checkpoint and the inclusion proof.
//!
//! Reads are served from this node's applied board; checkpoints carry the cosignatures
//! this node has gathered.
//!
//! Status codes: INVALID_ARGUMENT (malformed, bad signature, too large),
//! PERMISSION_DENIED (unregistered, revoked or wrong-role signer), FAILED_PRECONDITION
//! (entry does not fit the board, e.g. no genesis yet), NOT_FOUND (no such entry),
//! OUT_OF_RANGE (size beyond the board), UNAVAILABLE (no leader, leadership changed,
//! checkpoint not final in time: retry the same envelope, appends are idempotent).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bboard_core::board::{BatchApplier, BoardView, Outcome, RejectCode, Rejection};
use bboard_core::checkpoint::SignedCheckpoint;
use bboard_core::election::envelope_tracking_code;
use bboard_core::envelope::{EnvelopeId, SignedEnvelope};
use bboard_core::leaf::{leaf_hash, LeafRecord};
use bboard_core::pb;
use bboard_merkle::{Hash, LeafIndex, TreeSize};
use bboard_proto::v1::board_server::{Board, BoardServer};
use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use crate::batcher::PendingAppend;
use crate::node::Shared;

/// Metadata key marking a request forwarded by another node (no second hop).
pub(crate) const FORWARDED: &str = "x-bboard-forwarded";
/// Largest total leaf bytes in one `GetEntries` page.
const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;

/// The Board service.
#[derive(Clone)]
pub struct BoardService {
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

fn status_of(rejection: &Rejection) -> Status {
    match rejection.code {
        RejectCode::InvalidArgument => Status::invalid_argument(rejection.message.clone()),
        RejectCode::PermissionDenied => Status::permission_denied(rejection.message.clone()),
        RejectCode::FailedPrecondition => Status::failed_precondition(rejection.message.clone()),
    }
}

fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

fn entry_response(index: u64, leaf_data: Vec<u8>) -> pb::EntryResponse {
    pb::EntryResponse {
        index,
        leaf_hash: leaf_hash(&leaf_data).as_bytes().to_vec(),
        leaf_data,
    }
}

fn checkpoint_response(signed: &SignedCheckpoint, is_final: bool) -> pb::CheckpointResponse {
    pb::CheckpointResponse {
        signed_checkpoint: signed.to_note(),
        size: signed.checkpoint().size.0,
        root: signed.checkpoint().root.as_bytes().to_vec(),
        r#final: is_final,
    }
}

impl BoardService {
    /// A service over the node's shared state; streams end when `shutdown` changes.
    pub fn new(shared: Arc<Shared>, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        BoardService { shared, shutdown }
    }

    /// The tonic server, with the configured message size limits.
    pub fn into_server(self) -> BoardServer<BoardService> {
        let limit = self.shared.config.limits.max_message_bytes;
        BoardServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit.max(8 * 1024 * 1024))
    }

    fn receipt_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.config.limits.receipt_timeout_ms)
    }

    /// Builds the receipt of leaf `index` against a final checkpoint covering it. The
    /// leaf holds `sent` (verified by this service) or an envelope with the same id.
    async fn receipt(
        &self,
        index: u64,
        duplicate: bool,
        sent: &SignedEnvelope,
    ) -> Result<pb::AppendResponse, Status> {
        let checkpoint = self
            .shared
            .final_covering(index, self.receipt_timeout())
            .await
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "entry is on the board at index {index}, but no k-of-n checkpoint covers it yet; retry for the receipt"
                ))
            })?;
        let size = checkpoint.checkpoint().size;
        let leaf_data = self
            .shared
            .board
            .leaf(index)
            .map_err(internal)?
            .ok_or_else(|| Status::internal(format!("leaf {index} missing")))?;
        let proof = self
            .shared
            .board
            .with_merkle(|m| Ok(m.inclusion_proof(LeafIndex(index), size)?))
            .map_err(internal)?;
        // The leaf holds an envelope with `sent`'s id, so its body and tracking code
        // are `sent`'s: no need to decode the stored leaf.
        let tracking_code = envelope_tracking_code(sent)
            .map(hex::encode)
            .unwrap_or_default();
        Ok(pb::AppendResponse {
            receipt: Some(pb::Receipt {
                leaf_index: index,
                leaf_hash: leaf_hash(&leaf_data).as_bytes().to_vec(),
                leaf_data,
                checkpoint: checkpoint.to_note(),
                inclusion_proof: proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
                tracking_code,
            }),
            duplicate,
        })
    }

    /// Forwards to the leader, remembering the entry (if this node's rules admit it)
    /// so that it raises a censorship alarm if the entry never lands.
    async fn forward(&self, envelope: SignedEnvelope) -> Result<pb::AppendResponse, Status> {
        let verdict = self.precheck(envelope.clone()).await?;
        if verdict.is_ok() {
            if let Some(leader) = self.shared.current_leader_id() {
                let address = self.shared.address_of(leader).unwrap_or_default();
                self.shared
                    .inclusion
                    .track(&envelope, leader, &address)
                    .await
                    .map_err(internal)?;
            }
        }
        let (response, _, _) = self.shared.forward_to_leader(envelope.to_proto()).await?;
        self.shared
            .inclusion
            .landed(&envelope.id())
            .map_err(internal)?;
        Ok(response)
    }

    /// This node's board rules on an entry, against its applied state. Ballot proofs
    /// take milliseconds of CPU: this runs on a blocking thread.
    async fn precheck(&self, envelope: SignedEnvelope) -> Result<Result<(), Rejection>, Status> {
        let board = self.shared.board.clone();
        let verified = self.shared.verified.clone();
        let heavy = carries_ballot_proofs(&envelope);
        let record = LeafRecord {
            timestamp_unix_ms: 0,
            envelope,
        };
        let check = move || {
            let verdict = BatchApplier::new(&board).and_then(|applier| applier.check(&record));
            if matches!(verdict, Ok(Ok(_))) {
                // Signature, rules and ballot proofs hold: apply need not verify the
                // same bytes again.
                verified.insert(&record.envelope);
            }
            verdict
        };
        // Ballot proofs take milliseconds of CPU: off the async workers. Every other
        // entry is a few key lookups, cheaper than the two thread switches of
        // `spawn_blocking` (which the profile of issue #19 showed at every append).
        let verdict = if heavy {
            tokio::task::spawn_blocking(check).await.map_err(internal)?
        } else {
            check()
        }
        .map_err(internal)?;
        Ok(verdict.map(|_effects| ()))
    }

    /// Times an append that arrived at `arrived`; counts it by code if the board rules
    /// refused it.
    fn measure_append<T>(&self, arrived: std::time::Instant, result: &Result<T, Status>) {
        let metrics = &self.shared.metrics;
        metrics
            .append_seconds
            .observe(arrived.elapsed().as_secs_f64());
        if let Err(status) = result {
            if matches!(
                status.code(),
                Code::InvalidArgument | Code::PermissionDenied | Code::FailedPrecondition
            ) {
                metrics.reject(status.code());
            }
        }
    }

    /// The append path of one checked envelope.
    async fn append_checked(
        &self,
        envelope: SignedEnvelope,
        forwarded: bool,
    ) -> Result<pb::AppendResponse, Status> {
        if let Some(index) = self
            .shared
            .board
            .find_envelope(&envelope.id())
            .map_err(internal)?
        {
            return self.receipt(index, true, &envelope).await;
        }
        let is_leader = self.shared.raft.current_leader().await == Some(self.shared.config.node_id);
        if !is_leader {
            if forwarded {
                return Err(Status::unavailable(
                    "leadership changed while forwarding; retry",
                ));
            }
            return self.forward(envelope).await;
        }
        // Pre-check against the applied board: a correct leader never proposes an
        // entry that apply would reject.
        if let Err(rejection) = self.precheck(envelope.clone()).await? {
            return Err(status_of(&rejection));
        }
        if let Some(crate::fault::Fault::DropSigner(signer)) = crate::fault::active() {
            if *envelope.signer().as_bytes() == signer {
                // Test-only censorship: never propose, answer like a slow leader.
                tokio::time::sleep(self.receipt_timeout()).await;
                return Err(Status::unavailable("no receipt yet; retry"));
            }
        }
        let (reply, outcome) = oneshot::channel();
        let sent = envelope.clone();
        self.shared
            .batcher
            .send(PendingAppend { envelope, reply })
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))?;
        let outcome = outcome
            .await
            .map_err(|_| Status::unavailable("node is shutting down"))??;
        match outcome {
            Outcome::Appended { index } => self.receipt(index, false, &sent).await,
            Outcome::Duplicate { index } => self.receipt(index, true, &sent).await,
            Outcome::Rejected(rejection) => Err(status_of(&rejection)),
        }
    }

    fn check_envelope(&self, envelope: Option<pb::Envelope>) -> Result<SignedEnvelope, Status> {
        let envelope = envelope.ok_or_else(|| Status::invalid_argument("no envelope"))?;
        SignedEnvelope::verify(&envelope, self.shared.config.limits.max_body_bytes)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }

    /// Latest final checkpoint, or this node's own latest if none is final yet.
    fn latest_checkpoint(&self) -> Result<(SignedCheckpoint, bool), Status> {
        if let Some(final_cp) = self.shared.finals.borrow().clone() {
            return Ok((final_cp, true));
        }
        let own = self
            .shared
            .board
            .latest_own_checkpoint()
            .map_err(internal)?
            .ok_or_else(|| Status::unavailable("the board is empty: no checkpoint yet"))?;
        Ok((own, false))
    }

    async fn checkpoint_of_size(&self, size: u64) -> Result<(SignedCheckpoint, bool), Status> {
        if size == 0 {
            return self.latest_checkpoint();
        }
        let applied = self.shared.applied.borrow().size;
        if size > applied {
            return Err(Status::out_of_range(format!(
                "size {size} is beyond this node's board size {applied}"
            )));
        }
        self.shared
            .checkpoint_at(size)
            .map_err(|e| Status::unavailable(e.to_string()))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// Whether checking `envelope` means verifying ballot proofs (a ballot or a spoiled
/// ballot): undecodable bodies are cheap to reject, so they count as not.
fn carries_ballot_proofs(envelope: &SignedEnvelope) -> bool {
    use bboard_core::pb::entry_body::Kind;
    envelope
        .body()
        .is_ok_and(|body| matches!(body.kind, Some(Kind::Ballot(_) | Kind::SpoiledBallot(_))))
}

#[tonic::async_trait]
impl Board for BoardService {
    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let arrived = std::time::Instant::now();
        let forwarded = request.metadata().contains_key(FORWARDED);
        let result = match self.check_envelope(request.into_inner().envelope) {
            Ok(envelope) => self.append_checked(envelope, forwarded).await,
            Err(status) => Err(status),
        };
        self.measure_append(arrived, &result);
        result.map(Response::new)
    }

    async fn append_many(
        &self,
        request: Request<pb::AppendManyRequest>,
    ) -> Result<Response<pb::AppendManyResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let envelopes = request.into_inner().envelopes;
        if envelopes.len() > self.shared.config.limits.batch_max_entries {
            return Err(Status::invalid_argument(format!(
                "{} envelopes in one call, at most {} allowed",
                envelopes.len(),
                self.shared.config.limits.batch_max_entries
            )));
        }
        let appends = envelopes.into_iter().map(|envelope| async move {
            let arrived = std::time::Instant::now();
            let result = match self.check_envelope(Some(envelope)) {
                Ok(checked) => self.append_checked(checked, forwarded).await,
                Err(status) => Err(status),
            };
            self.measure_append(arrived, &result);
            pb::AppendOutcome {
                outcome: Some(match result {
                    Ok(appended) => pb::append_outcome::Outcome::Appended(appended),
                    Err(status) => pb::append_outcome::Outcome::Rejected(pb::Rejection {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                    }),
                }),
            }
        });
        let outcomes = futures::future::join_all(appends).await;
        Ok(Response::new(pb::AppendManyResponse { outcomes }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::EntryResponse>, Status> {
        let index = request.into_inner().index;
        let leaf = self
            .shared
            .board
            .leaf(index)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no entry at index {index}")))?;
        Ok(Response::new(entry_response(index, leaf)))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let request = request.into_inner();
        let size = self.shared.applied.borrow().size;
        let limit = request
            .limit
            .clamp(1, self.shared.config.limits.max_page_entries) as u64;
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let end = request.start.saturating_add(limit).min(size);
        for index in request.start..end {
            let Some(leaf) = self.shared.board.leaf(index).map_err(internal)? else {
                break;
            };
            bytes += leaf.len();
            if bytes > MAX_PAGE_BYTES && !entries.is_empty() {
                break;
            }
            entries.push(entry_response(index, leaf));
        }
        Ok(Response::new(pb::GetEntriesResponse {
            entries,
            tree_size: size,
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let (checkpoint, is_final) = self.checkpoint_of_size(request.into_inner().size).await?;
        Ok(Response::new(checkpoint_response(&checkpoint, is_final)))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let request = request.into_inner();
        let index = match request.leaf {
            Some(pb::get_inclusion_proof_request::Leaf::Index(index)) => index,
            Some(pb::get_inclusion_proof_request::Leaf::LeafHash(hash)) => {
                let hash = Hash::from_slice(&hash)
                    .map_err(|_| Status::invalid_argument("leaf hash must be 32 bytes"))?;
                self.shared
                    .board
                    .find_leaf_hash(&hash)
                    .map_err(internal)?
                    .ok_or_else(|| Status::not_found(format!("no leaf with hash {hash}")))?
            }
            Some(pb::get_inclusion_proof_request::Leaf::EnvelopeId(id)) => {
                let id = <[u8; 32]>::try_from(id.as_slice())
                    .map_err(|_| Status::invalid_argument("envelope id must be 32 bytes"))?;
                let id = EnvelopeId(id);
                self.shared
                    .board
                    .find_envelope(&id)
                    .map_err(internal)?
                    .ok_or_else(|| {
                        Status::not_found(format!("envelope {id} is not on the board"))
                    })?
            }
            None => {
                return Err(Status::invalid_argument(
                    "give a leaf index, a leaf hash or an envelope id",
                ))
            }
        };
        let (checkpoint, _) = self.checkpoint_of_size(request.tree_size).await?;
        let size = checkpoint.checkpoint().size;
        if index >= size.0 {
            // A leaf this node has applied but that its latest final checkpoint does
            // not cover yet (a follower's final trails a receipt by a push) exists:
            // the reader should retry, not conclude it is absent.
            let applied = self.shared.board.size().map_err(internal)?;
            if request.tree_size == 0 && index < applied {
                return Err(Status::unavailable(format!(
                    "leaf {index} is on the board, but this node's latest final checkpoint (size {}) does not cover it yet; retry shortly",
                    size.0
                )));
            }
            return Err(Status::out_of_range(format!(
                "leaf {index} is not in the tree of size {}",
                size.0
            )));
        }
        let proof = self
            .shared
            .board
            .with_merkle(|m| Ok(m.inclusion_proof(LeafIndex(index), size)?))
            .map_err(internal)?;
        Ok(Response::new(pb::InclusionProofResponse {
            leaf_index: index,
            tree_size: size.0,
            proof: proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
            signed_checkpoint: checkpoint.to_note(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let new_size = if request.new_size == 0 {
            self.latest_checkpoint()?.0.checkpoint().size.0
        } else {
            request.new_size
        };
        let applied = self.shared.applied.borrow().size;
        if new_size > applied || request.old_size > new_size {
            return Err(Status::out_of_range(format!(
                "need old_size ≤ new_size ≤ {applied}, got {} and {new_size}",
                request.old_size
            )));
        }
        let proof = self
            .shared
            .board
            .with_merkle(|m| {
                Ok(m.consistency_proof(TreeSize(request.old_size), TreeSize(new_size))?)
            })
            .map_err(internal)?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: request.old_size,
            new_size,
            proof: proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut next = request.into_inner().from_index;
        let shared = self.shared.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut applied = shared.applied.clone();
            let mut finals = shared.finals.subscribe();
            let mut alarms = shared.inclusion.subscribe();
            loop {
                let size = applied.borrow_and_update().size;
                while next < size {
                    let event = match shared.board.leaf(next) {
                        Ok(Some(leaf)) => Ok(pb::WatchEvent {
                            event: Some(pb::watch_event::Event::Entry(entry_response(next, leaf))),
                        }),
                        Ok(None) => break,
                        Err(e) => Err(internal(e)),
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    next += 1;
                }
                tokio::select! {
                    changed = applied.changed() => if changed.is_err() { return },
                    changed = finals.changed() => {
                        if changed.is_err() { return }
                        let latest = finals.borrow_and_update().clone();
                        if let Some(cp) = latest {
                            let event = pb::WatchEvent {
                                event: Some(pb::watch_event::Event::Checkpoint(checkpoint_response(&cp, true))),
                            };
                            if tx.send(Ok(event)).await.is_err() { return }
                        }
                    }
                    alarm = alarms.recv() => match alarm {
                        Ok(record) => {
                            let event = pb::WatchEvent {
                                event: Some(pb::watch_event::Event::Alarm(record)),
                            };
                            if tx.send(Ok(event)).await.is_err() { return }
                        }
                        // A slow reader missed some; `ListAlarms` has them all.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        let alarms = self
            .shared
            .inclusion
            .list(request.into_inner().include_cleared)
            .map_err(internal)?;
        Ok(Response::new(pb::ListAlarmsResponse { alarms }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let applied = self.shared.applied.borrow().clone();
        let (active_alarms, pending_forwards) = self.shared.inclusion.counts();
        let role = match metrics.state {
            openraft::ServerState::Leader => "leader",
            openraft::ServerState::Follower => "follower",
            openraft::ServerState::Candidate => "candidate",
            openraft::ServerState::Learner => "learner",
            openraft::ServerState::Shutdown => "shutdown",
        };
        let leader_id = metrics.current_leader.unwrap_or(0);
        Ok(Response::new(pb::StatusResponse {
            node_id: self.shared.config.node_id,
            node_name: self.shared.config.name.clone(),
            role: role.to_string(),
            term: metrics.current_term,
            leader_id,
            leader_address: metrics
                .current_leader
                .and_then(|id| self.shared.address_of(id))
                .unwrap_or_default(),
            tree_size: applied.size,
            root: applied
                .root
                .map(|r| r.as_bytes().to_vec())
                .unwrap_or_default(),
            origin: self.shared.config.origin.clone(),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            committed_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            active_alarms,
            pending_forwards,
        }))
    }
}
