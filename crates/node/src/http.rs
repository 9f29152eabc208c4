//! The node's plain-HTTP side, served on the gRPC port (HTTP/1.1 requests): a read-only
//! JSON mirror of the board for browsers and scripts, the ballot tracker page,
//! Prometheus metrics and a health check.
//!
//! Every JSON answer is produced by calling the node's own `bboard.v1.Board` service
//! in-process, so HTTP and gRPC readers see exactly the same data, checks and errors;
//! this module only translates. Everything is read-only: writes go through gRPC,
//! where envelopes are signed.
//!
//! | path | answer |
//! |---|---|
//! | `GET /` | the ballot tracker page |
//! | `GET /healthz` | `ok` (200) while the node serves |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/status` | role, term, leader, tree size and root, alarm counts |
//! | `GET /v1/checkpoint[?size=N]` | latest (or size-N) checkpoint with cosignatures |
//! | `GET /v1/entries?start=S&limit=L` | entries, decoded, with leaf bytes in hex |
//! | `GET /v1/entries/{index}` | one entry |
//! | `GET /v1/proof/inclusion?index=I\|leaf_hash=H\|envelope_id=E[&size=N]` | inclusion proof |
//! | `GET /v1/proof/consistency?old=M&new=N` | consistency proof |
//! | `GET /v1/alarms[?all=true]` | censorship alarms raised by this node |
//! | `GET /v1/tracking/{code}` | the ballot(s) with this tracking code (full hex or `XXXX-XXXX`), with inclusion proofs |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bboard_core::election::{parse_short_tracking_code, tracking_code_of, tracking_index_key};
use bboard_core::leaf::decode_leaf;
use bboard_core::pb;
use bboard_proto::v1::board_server::Board;
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::Request;

use crate::node::Shared;
use crate::service::BoardService;

/// What the handlers share.
#[derive(Clone)]
struct Http {
    service: BoardService,
    shared: Arc<Shared>,
}

/// The HTTP routes of a node.
pub fn router(service: BoardService, shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(tracker_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/checkpoint", get(checkpoint))
        .route("/v1/entries", get(entries))
        .route("/v1/entries/{index}", get(entry))
        .route("/v1/proof/inclusion", get(inclusion))
        .route("/v1/proof/consistency", get(consistency))
        .route("/v1/alarms", get(alarms))
        .route("/v1/tracking/{code}", get(tracking))
        .with_state(Http { service, shared })
}

/// An error as JSON, with the HTTP status matching the gRPC code.
struct HttpError(tonic::Status);

impl From<tonic::Status> for HttpError {
    fn from(status: tonic::Status) -> Self {
        HttpError(status)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        use tonic::Code;
        let status = match self.0.code() {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                StatusCode::BAD_REQUEST
            }
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = serde_json::json!({ "error": self.0.message() });
        (status, Json(body)).into_response()
    }
}

type Answer<T> = Result<Json<T>, HttpError>;

fn bad_request(message: impl Into<String>) -> HttpError {
    HttpError(tonic::Status::invalid_argument(message.into()))
}

fn decode_hex(what: &str, text: &str) -> Result<Vec<u8>, HttpError> {
    hex::decode(text).map_err(|_| bad_request(format!("{what} must be hex")))
}

// ---- JSON shapes -------------------------------------------------------------------

#[derive(Serialize)]
struct StatusJson {
    node_id: u64,
    node_name: String,
    role: String,
    term: u64,
    leader_id: u64,
    leader_address: String,
    origin: String,
    tree_size: u64,
    root: String,
    last_log_index: u64,
    committed_index: u64,
    active_alarms: u64,
    pending_forwards: u64,
}

#[derive(Serialize)]
struct CheckpointJson {
    signed_checkpoint: String,
    size: u64,
    root: String,
    #[serde(rename = "final")]
    is_final: bool,
}

/// One entry, decoded for people, with the verbatim bytes for verifiers.
#[derive(Serialize)]
struct EntryJson {
    index: u64,
    leaf_hash: String,
    /// The leaf bytes, hex: hash these (docs/PROTOCOL.md §2), never the decoded fields.
    leaf_data: String,
    timestamp_unix_ms: Option<u64>,
    election_id: Option<String>,
    kind: Option<&'static str>,
    signer: Option<String>,
    envelope_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    short_tracking_code: Option<String>,
}

#[derive(Serialize)]
struct EntriesJson {
    tree_size: u64,
    entries: Vec<EntryJson>,
}

#[derive(Serialize)]
struct InclusionJson {
    leaf_index: u64,
    tree_size: u64,
    proof: Vec<String>,
    signed_checkpoint: String,
}

#[derive(Serialize)]
struct ConsistencyJson {
    old_size: u64,
    new_size: u64,
    proof: Vec<String>,
}

#[derive(Serialize)]
struct AlarmJson {
    node_name: String,
    envelope_id: Option<String>,
    envelope_signer: Option<String>,
    received_unix_ms: u64,
    deadline_unix_ms: u64,
    raised_unix_ms: u64,
    board_size: u64,
    board_root: String,
    forwarded_to_node: u64,
    forwarded_to_address: String,
    cleared: bool,
    cleared_leaf_index: Option<u64>,
    /// The signed alarm (`bboard.v1.CensorshipAlarm` protobuf, hex), to verify with
    /// the node keys (docs/PROTOCOL.md).
    signed_alarm: String,
}

#[derive(Serialize)]
struct TrackedBallotJson {
    entry: EntryJson,
    inclusion: InclusionJson,
}

fn entry_json(index: u64, leaf_data: Vec<u8>) -> EntryJson {
    let record = decode_leaf(&leaf_data).ok();
    let body = record.as_ref().and_then(|r| r.envelope.body().ok());
    let code = record.as_ref().and_then(tracking_code_of);
    EntryJson {
        index,
        leaf_hash: bboard_core::leaf::leaf_hash(&leaf_data).to_string(),
        timestamp_unix_ms: record.as_ref().map(|r| r.timestamp_unix_ms),
        election_id: body.as_ref().map(|b| b.election_id.clone()),
        kind: body
            .as_ref()
            .and_then(|b| b.kind.as_ref())
            .map(bboard_core::board::kind_name),
        signer: record
            .as_ref()
            .map(|r| hex::encode(r.envelope.signer().as_bytes())),
        envelope_id: record.as_ref().map(|r| r.envelope.id().to_string()),
        tracking_code: code.map(hex::encode),
        short_tracking_code: code.map(|c| bboard_core::election::short_tracking_code(&c)),
        leaf_data: hex::encode(leaf_data),
    }
}

fn inclusion_json(response: pb::InclusionProofResponse) -> InclusionJson {
    InclusionJson {
        leaf_index: response.leaf_index,
        tree_size: response.tree_size,
        proof: response.proof.iter().map(hex::encode).collect(),
        signed_checkpoint: response.signed_checkpoint,
    }
}

// ---- handlers ----------------------------------------------------------------------

async fn status(State(http): State<Http>) -> Answer<StatusJson> {
    let s = http
        .service
        .status(Request::new(pb::StatusRequest {}))
        .await?
        .into_inner();
    Ok(Json(StatusJson {
        node_id: s.node_id,
        node_name: s.node_name,
        role: s.role,
        term: s.term,
        leader_id: s.leader_id,
        leader_address: s.leader_address,
        origin: s.origin,
        tree_size: s.tree_size,
        root: hex::encode(s.root),
        last_log_index: s.last_log_index,
        committed_index: s.committed_index,
        active_alarms: s.active_alarms,
        pending_forwards: s.pending_forwards,
    }))
}

#[derive(Deserialize)]
struct SizeQuery {
    #[serde(default)]
    size: u64,
}

async fn checkpoint(
    State(http): State<Http>,
    Query(q): Query<SizeQuery>,
) -> Answer<CheckpointJson> {
    let c = http
        .service
        .get_checkpoint(Request::new(pb::GetCheckpointRequest { size: q.size }))
        .await?
        .into_inner();
    Ok(Json(CheckpointJson {
        signed_checkpoint: c.signed_checkpoint,
        size: c.size,
        root: hex::encode(c.root),
        is_final: c.r#final,
    }))
}

#[derive(Deserialize)]
struct RangeQuery {
    #[serde(default)]
    start: u64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

async fn entries(State(http): State<Http>, Query(q): Query<RangeQuery>) -> Answer<EntriesJson> {
    let r = http
        .service
        .get_entries(Request::new(pb::GetEntriesRequest {
            start: q.start,
            limit: q.limit,
        }))
        .await?
        .into_inner();
    Ok(Json(EntriesJson {
        tree_size: r.tree_size,
        entries: r
            .entries
            .into_iter()
            .map(|e| entry_json(e.index, e.leaf_data))
            .collect(),
    }))
}

async fn entry(State(http): State<Http>, Path(index): Path<u64>) -> Answer<EntryJson> {
    let e = http
        .service
        .get_entry(Request::new(pb::GetEntryRequest { index }))
        .await?
        .into_inner();
    Ok(Json(entry_json(e.index, e.leaf_data)))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: Option<u64>,
    leaf_hash: Option<String>,
    envelope_id: Option<String>,
    #[serde(default)]
    size: u64,
}

async fn inclusion(
    State(http): State<Http>,
    Query(q): Query<InclusionQuery>,
) -> Answer<InclusionJson> {
    use pb::get_inclusion_proof_request::Leaf;
    let leaf = match (q.index, q.leaf_hash, q.envelope_id) {
        (Some(index), None, None) => Leaf::Index(index),
        (None, Some(hash), None) => Leaf::LeafHash(decode_hex("leaf_hash", &hash)?),
        (None, None, Some(id)) => Leaf::EnvelopeId(decode_hex("envelope_id", &id)?),
        _ => {
            return Err(bad_request(
                "give exactly one of index, leaf_hash, envelope_id",
            ))
        }
    };
    let r = http
        .service
        .get_inclusion_proof(Request::new(pb::GetInclusionProofRequest {
            leaf: Some(leaf),
            tree_size: q.size,
        }))
        .await?
        .into_inner();
    Ok(Json(inclusion_json(r)))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

async fn consistency(
    State(http): State<Http>,
    Query(q): Query<ConsistencyQuery>,
) -> Answer<ConsistencyJson> {
    let r = http
        .service
        .get_consistency_proof(Request::new(pb::GetConsistencyProofRequest {
            old_size: q.old,
            new_size: q.new,
        }))
        .await?
        .into_inner();
    Ok(Json(ConsistencyJson {
        old_size: r.old_size,
        new_size: r.new_size,
        proof: r.proof.iter().map(hex::encode).collect(),
    }))
}

#[derive(Deserialize)]
struct AlarmsQuery {
    #[serde(default)]
    all: bool,
}

async fn alarms(State(http): State<Http>, Query(q): Query<AlarmsQuery>) -> Answer<Vec<AlarmJson>> {
    let records = http
        .service
        .list_alarms(Request::new(pb::ListAlarmsRequest {
            include_cleared: q.all,
        }))
        .await?
        .into_inner()
        .alarms;
    let alarms = records
        .into_iter()
        .filter_map(|record| {
            let alarm = record.alarm?;
            let statement = pb::AlarmStatement::decode(alarm.statement.as_slice()).ok()?;
            let envelope = statement
                .envelope
                .as_ref()
                .and_then(|e| bboard_core::envelope::SignedEnvelope::verify(e, usize::MAX).ok());
            Some(AlarmJson {
                node_name: statement.node_name,
                envelope_id: envelope.as_ref().map(|e| e.id().to_string()),
                envelope_signer: envelope
                    .as_ref()
                    .map(|e| hex::encode(e.signer().as_bytes())),
                received_unix_ms: statement.received_unix_ms,
                deadline_unix_ms: statement.deadline_unix_ms,
                raised_unix_ms: statement.raised_unix_ms,
                board_size: statement.board_size,
                board_root: hex::encode(&statement.board_root),
                forwarded_to_node: statement.forwarded_to_node,
                forwarded_to_address: statement.forwarded_to_address,
                cleared: record.cleared,
                cleared_leaf_index: record.cleared.then_some(record.cleared_leaf_index),
                signed_alarm: hex::encode(alarm.encode_to_vec()),
            })
        })
        .collect();
    Ok(Json(alarms))
}

/// Most ballots one short code may name (40 bits: collisions are rare, never many).
const MAX_TRACKED: usize = 8;

async fn tracking(
    State(http): State<Http>,
    Path(code): Path<String>,
) -> Answer<Vec<TrackedBallotJson>> {
    let prefix: Vec<u8> = if code.len() == 64 {
        decode_hex("tracking code", &code)?
    } else {
        parse_short_tracking_code(&code)
            .ok_or_else(|| {
                bad_request("a tracking code is 64 hex digits or 8 characters like K7QF-2M9X")
            })?
            .to_vec()
    };
    let indexes = http
        .shared
        .board
        .state_with_prefix(&tracking_index_key(&prefix), MAX_TRACKED)
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    if indexes.is_empty() {
        return Err(HttpError(tonic::Status::not_found(format!(
            "no ballot with tracking code {code} on this node's board (yet)"
        ))));
    }
    let mut found = Vec::new();
    for value in indexes {
        let Ok(bytes) = <[u8; 8]>::try_from(value.as_slice()) else {
            continue;
        };
        let index = u64::from_be_bytes(bytes);
        let e = http
            .service
            .get_entry(Request::new(pb::GetEntryRequest { index }))
            .await?
            .into_inner();
        let proof = http
            .service
            .get_inclusion_proof(Request::new(pb::GetInclusionProofRequest {
                leaf: Some(pb::get_inclusion_proof_request::Leaf::Index(index)),
                tree_size: 0,
            }))
            .await?
            .into_inner();
        found.push(TrackedBallotJson {
            entry: entry_json(e.index, e.leaf_data),
            inclusion: inclusion_json(proof),
        });
    }
    Ok(Json(found))
}

/// `/metrics`: OpenMetrics for a scraper that asks for it (Prometheus does), the
/// Prometheus text format 0.0.4 otherwise (`curl`, `promtool check metrics`).
async fn metrics(State(http): State<Http>, headers: axum::http::HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    match render_metrics(&http).await {
        Ok(text) if openmetrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::to_prometheus_text(&text),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Labels of the per-peer replication gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PeerLabels {
    peer: u64,
}

/// The leader's view of how far each follower's acknowledged log trails its own (empty
/// on followers). The label set is the Raft membership, never what clients send.
fn replication_lag(
    shared: &Shared,
) -> prometheus_client::metrics::family::Family<PeerLabels, prometheus_client::metrics::gauge::Gauge>
{
    let family = prometheus_client::metrics::family::Family::<
        PeerLabels,
        prometheus_client::metrics::gauge::Gauge,
    >::default();
    let metrics = shared.raft.metrics().borrow().clone();
    let last = metrics.last_log_index.unwrap_or(0);
    for (peer, matched) in metrics.replication.iter().flatten() {
        if *peer == shared.config.node_id {
            continue;
        }
        let matched = matched.map_or(0, |log_id| log_id.index);
        family
            .get_or_create(&PeerLabels { peer: *peer })
            .set(i64::try_from(last.saturating_sub(matched)).unwrap_or(i64::MAX));
    }
    family
}

/// Why `/metrics` could not be rendered.
#[derive(Debug, thiserror::Error)]
enum MetricsError {
    /// The in-process Status call failed.
    #[error("status: {}", .0.message())]
    Status(#[from] tonic::Status),
    /// The board store failed.
    #[error(transparent)]
    Store(#[from] crate::board_store::StoreError),
    /// The OpenMetrics text encoder failed.
    #[error("encoding metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// Renders the node's gauges and counters, read fresh from its state at each scrape
/// (a registry per scrape: no global recorder, so several nodes can share a process).
async fn render_metrics(http: &Http) -> Result<String, MetricsError> {
    use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
    use prometheus_client::registry::Registry;
    let s = http
        .service
        .status(Request::new(pb::StatusRequest {}))
        .await?
        .into_inner();
    let rejected = http.shared.board.rejected_count()?;
    let final_size = http
        .shared
        .finals
        .borrow()
        .as_ref()
        .map_or(0, |c| c.checkpoint().size.0);
    let mut registry = Registry::with_prefix("bboard");
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    };
    gauge(
        &mut registry,
        "tree_size",
        "Leaves on this node's board",
        s.tree_size,
    );
    gauge(
        &mut registry,
        "final_checkpoint_size",
        "Size of the latest k-of-n checkpoint",
        final_size,
    );
    gauge(&mut registry, "raft_term", "Current Raft term", s.term);
    gauge(
        &mut registry,
        "raft_is_leader",
        "1 if this node leads",
        u64::from(s.role == "leader"),
    );
    gauge(
        &mut registry,
        "raft_committed_index",
        "Last applied Raft log index",
        s.committed_index,
    );
    let voters = http
        .shared
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .count();
    gauge(
        &mut registry,
        "raft_voters",
        "Voters in this node's effective Raft membership",
        voters as u64,
    );
    gauge(
        &mut registry,
        "censorship_alarms_active",
        "Censorship alarms raised by this node and not cleared",
        s.active_alarms,
    );
    gauge(
        &mut registry,
        "pending_forwards",
        "Forwarded entries not yet seen on the board",
        s.pending_forwards,
    );
    let peer_port = http.shared.peers.counters();
    let load =
        |value: &std::sync::atomic::AtomicU64| value.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, value) in [
        (
            "committed_entries_rejected",
            "Committed entries the rules rejected on apply (a correct leader proposes none)",
            rejected,
        ),
        (
            "peer_handshakes_failed",
            "Peer-port TLS handshakes refused or timed out (no or unpinned certificate)",
            load(&peer_port.handshakes_failed),
        ),
        (
            "peer_handshakes_shed",
            "Peer-port connections closed because too many handshakes were in progress",
            load(&peer_port.handshakes_shed),
        ),
        (
            "peer_impersonations_refused",
            "Raft requests refused because they claimed another sender than the authenticated peer",
            load(&peer_port.impersonations_refused),
        ),
        (
            "membership_changes_refused",
            "Replicated Raft membership entries refused: no majority authorisation on the board covers them",
            load(&peer_port.membership_changes_refused),
        ),
    ] {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
    http.shared.metrics.register(&mut registry);
    registry.register(
        "replication_lag_entries",
        "On the leader: Raft log entries each follower has yet to acknowledge",
        replication_lag(&http.shared),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

async fn tracker_page() -> Html<&'static str> {
    Html(include_str!("tracker.html"))
}
