//! The node-to-node Raft transport over gRPC (`bboard.v1.Raft`, tonic).
//!
//! This module owns both ends of the transport:
//!
//! - the **client side**, [`GrpcNetworkFactory`] and [`GrpcRaftClient`], which implement
//!   openraft's [`RaftNetworkFactory`] and [`RaftNetwork`]: one lazily connected tonic
//!   [`Channel`] per peer, shared through [`PeerChannels`] (mutual TLS to the peer
//!   address and certificate the config or the membership's [`BoardNode`] names);
//! - the **server side**, [`RaftService`], which implements the generated
//!   [`raft_server::Raft`] trait by handing each request to the local [`BoardRaft`];
//! - the checkpoint co-signing RPC: the server delegates to a [`Cosigner`], and
//!   [`request_cosignature`] is the client the node uses to collect its peers' signatures.
//!
//! # Payload format
//!
//! The protobuf schema does not mirror openraft's types: every Raft RPC carries one
//! [`RaftPayload`] whose `data` is MessagePack (`rmp_serde::to_vec_named`, named fields).
//!
//! - Request: the openraft request itself (`AppendEntriesRequest`, `VoteRequest` or
//!   `InstallSnapshotRequest`).
//! - Response: the full `Result<Response, RaftError<NodeId, E>>` returned by the receiving
//!   [`BoardRaft`] (`E` = openraft's `Infallible` for AppendEntries and Vote,
//!   `InstallSnapshotError` for InstallSnapshot). An `Err` is surfaced to the local openraft
//!   as [`RPCError::RemoteError`], exactly as if the call had been in process.
//!
//! A gRPC-level failure means the message never got a Raft answer: unreachable peers,
//! refused connections and expired deadlines become [`RPCError::Unreachable`] (openraft then
//! backs off before retrying); any other status, or a payload that cannot be encoded or
//! decoded, becomes [`RPCError::Network`] with a message naming the RPC and the peer. A
//! request the server could not decode is answered with `INVALID_ARGUMENT`; the server never
//! panics on untrusted bytes.
//!
//! # Why snapshots are chunked
//!
//! Snapshots are sent with openraft's chunked `install_snapshot` RPC (the
//! `generic-snapshot-data` feature is off): openraft reads `Config::snapshot_max_chunk_size`
//! bytes at a time from the snapshot file and the receiver appends each chunk to the file
//! returned by `begin_receiving_snapshot`. A snapshot of any size therefore travels in
//! bounded messages and is never held in memory whole on either side.
//!
//! # Limits
//!
//! Both the generated client and server accept and send messages of up to
//! [`MAX_MESSAGE_BYTES`] (8 MiB) instead of tonic's default 4 MiB:
//!
//! - a snapshot chunk is at most 1 MiB of data (the node's `snapshot_max_chunk_size`);
//!   MessagePack encodes the chunk's `Vec<u8>` as an array of small integers, up to two bytes
//!   per byte, so a chunk occupies at most ~2 MiB on the wire;
//! - an AppendEntries batch can be several MiB. Before sending, the client checks the encoded
//!   size; if it exceeds the limit it returns [`RPCError::PayloadTooLarge`] with a hint, and
//!   openraft retries at once with fewer entries. A peer that rejects a message as too large
//!   (`OUT_OF_RANGE` / `RESOURCE_EXHAUSTED`) is handled the same way. A single entry larger
//!   than the limit cannot be replicated; the leader's batching must stay well below it.
//!
//! Connections are opened lazily with a [`CONNECT_TIMEOUT`] of 1 s; every request carries a
//! deadline of openraft's `RPCOption::hard_ttl()` (enforced by the client channel and sent
//! to the server as `grpc-timeout`).

// openraft's `RPCError` and tonic's `Status` are the error types fixed by the traits we
// implement; boxing them in private helpers would only add conversions.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bboard_proto::v1::raft_client::RaftClient;
use bboard_proto::v1::raft_server;
use bboard_proto::v1::{CosignOffer, CosignOfferAck, CosignRequest, CosignResponse, RaftPayload};
use openraft::error::{
    InstallSnapshotError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::AnyError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

pub use crate::distrust::LeaderDistrust;
use crate::peer::channels::PeerChannelError;
use crate::peer::{
    AuthenticatedPeer, Fingerprint, PeerChannels, PeerDirectory, PeerEndpoint, PeerPortCounters,
};
use crate::types::{BoardNode, BoardRaft, NodeId, TypeConfig};

/// Largest gRPC message (either direction) the Raft transport sends or accepts: 8 MiB.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Bytes reserved for protobuf and gRPC framing when checking an encoded payload against
/// [`MAX_MESSAGE_BYTES`].
const FRAMING_MARGIN: usize = 1024;

pub use crate::peer::channels::CONNECT_TIMEOUT;

/// The error openraft sees from one of our RPCs, with `E` the remote API error.
type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BoardNode, RaftError<NodeId, E>>>;

/// Which Raft RPC a call is, for messages and dispatch.
#[derive(Clone, Copy, Debug)]
enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl fmt::Display for RaftRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RaftRpc::AppendEntries => "AppendEntries",
            RaftRpc::Vote => "Vote",
            RaftRpc::InstallSnapshot => "InstallSnapshot",
        })
    }
}

/// A generated Raft client over `channel` with the transport's message limits.
fn raft_client(channel: Channel) -> RaftClient<Channel> {
    RaftClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Whether a gRPC status means the peer could not be reached (back off before retrying).
fn is_unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    )
}

/// Whether a gRPC status means a message exceeded a size limit.
fn is_too_large(status: &Status) -> bool {
    matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted)
}

/// Creates a [`GrpcRaftClient`] per replication target, over the node's shared
/// [`PeerChannels`]: a peer is reached at its configured peer address and must present
/// its pinned certificate, whatever address the Raft membership names.
#[derive(Clone, Debug)]
pub struct GrpcNetworkFactory {
    channels: Arc<PeerChannels>,
}

impl GrpcNetworkFactory {
    /// A factory dialling peers through `channels`.
    pub fn new(channels: Arc<PeerChannels>) -> Self {
        Self { channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcRaftClient;

    async fn new_client(&mut self, target: NodeId, node: &BoardNode) -> Self::Network {
        learn_member(self.channels.directory(), target, node);
        GrpcRaftClient::new(target, node.clone(), &self.channels)
    }
}

/// Records the peer identity a membership entry gives for `id` (ignored when the
/// entry predates peer TLS or its fingerprint is malformed: the config's pin stays).
pub fn learn_member(directory: &PeerDirectory, id: NodeId, node: &BoardNode) {
    if node.peer_addr.is_empty() {
        return;
    }
    match Fingerprint::parse(&node.tls_fingerprint) {
        Ok(fingerprint) => {
            directory.learn(
                id,
                PeerEndpoint {
                    address: node.peer_addr.clone(),
                    fingerprint,
                },
            );
        }
        Err(e) => tracing::warn!(node = id, error = %e, "membership names a malformed pin"),
    }
}

/// Keeps `directory` in step with the Raft membership until `shutdown`: every member's
/// peer identity, as the admin-signed membership records it, is admitted on the peer
/// port and dialled there.
pub async fn learn_membership(
    raft: BoardRaft,
    directory: Arc<PeerDirectory>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    loop {
        let membership = metrics.borrow_and_update().membership_config.clone();
        for (id, node) in membership.nodes() {
            learn_member(&directory, *id, node);
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// The Raft transport to one peer: its shared, lazily connected channel.
pub struct GrpcRaftClient {
    target: NodeId,
    node: BoardNode,
    /// Its peer address, for messages.
    addr: String,
    /// The client, or why none could be built (a node with no configured pin): every
    /// RPC then fails as [`RPCError::Unreachable`].
    client: Result<RaftClient<Channel>, Arc<PeerChannelError>>,
}

impl fmt::Debug for GrpcRaftClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcRaftClient")
            .field("target", &self.target)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl GrpcRaftClient {
    /// A client for node `target` (a member at `node`) through `channels`. No
    /// connection is made until the first RPC.
    pub fn new(target: NodeId, node: BoardNode, channels: &PeerChannels) -> Self {
        let client = channels.channel(target).map(raft_client).map_err(Arc::new);
        if let Err(e) = &client {
            tracing::error!(target, error = %e, "cannot reach Raft peer");
        }
        Self {
            target,
            addr: channels
                .address_of(target)
                .unwrap_or_else(|| node.peer_addr.clone()),
            node,
            client,
        }
    }

    /// A `Network` error naming the RPC and the peer.
    fn network_error<E: std::error::Error>(
        &self,
        rpc: RaftRpc,
        what: impl fmt::Display,
    ) -> RPCError<NodeId, BoardNode, E> {
        RPCError::Network(openraft::error::NetworkError::from(AnyError::error(
            format!("{rpc} to node {} at {}: {what}", self.target, self.addr),
        )))
    }

    /// Encodes a request as the `data` of a [`RaftPayload`].
    fn encode<T: Serialize, E: std::error::Error>(
        &self,
        rpc: RaftRpc,
        request: &T,
    ) -> RpcResult<Vec<u8>, E> {
        rmp_serde::to_vec_named(request)
            .map_err(|e| self.network_error(rpc, format_args!("cannot encode request: {e}")))
    }

    /// Sends an encoded request and returns the encoded response, mapping gRPC failures to
    /// openraft errors. `too_large` builds the error for a message rejected as too large.
    async fn send<E: std::error::Error>(
        &mut self,
        rpc: RaftRpc,
        data: Vec<u8>,
        ttl: Duration,
        too_large: impl FnOnce(&Status) -> Option<PayloadTooLarge>,
    ) -> RpcResult<Vec<u8>, E> {
        let client = match &mut self.client {
            Ok(client) => client,
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(e.as_ref()))),
        };
        let mut request = Request::new(RaftPayload { data });
        request.set_timeout(ttl);
        let result = match rpc {
            RaftRpc::AppendEntries => client.append_entries(request).await,
            RaftRpc::Vote => client.vote(request).await,
            RaftRpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        match result {
            Ok(response) => Ok(response.into_inner().data),
            Err(status) => {
                tracing::debug!(%rpc, target = self.target, addr = %self.addr, %status,
                    "Raft RPC failed");
                if is_unreachable(&status) {
                    Err(RPCError::Unreachable(Unreachable::from(AnyError::error(
                        format!("{rpc} to node {} at {}: {status}", self.target, self.addr),
                    ))))
                } else if let Some(e) = is_too_large(&status).then(|| too_large(&status)).flatten()
                {
                    Err(RPCError::PayloadTooLarge(e.with_source_error(&status)))
                } else {
                    Err(self.network_error(rpc, status))
                }
            }
        }
    }

    /// Decodes the `Result` a peer's Raft returned.
    fn decode<T, E>(&self, rpc: RaftRpc, data: &[u8]) -> RpcResult<T, E>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<T, RaftError<NodeId, E>> = rmp_serde::from_slice(data).map_err(|e| {
            self.network_error(
                rpc,
                format_args!("undecodable response ({} bytes): {e}", data.len()),
            )
        })?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

/// A hint of how many entries fit: proportionally fewer than `entries`, at least 1.
fn entries_hint(entries: usize, encoded: usize) -> u64 {
    let budget = (MAX_MESSAGE_BYTES - FRAMING_MARGIN) as u128 * 3 / 4;
    let hint = entries as u128 * budget / encoded.max(1) as u128;
    hint.clamp(1, (entries.max(2) - 1) as u128) as u64
}

impl RaftNetwork<TypeConfig> for GrpcRaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let kind = RaftRpc::AppendEntries;
        let entries = rpc.entries.len();
        let data = self.encode(kind, &rpc)?;
        if data.len() > MAX_MESSAGE_BYTES - FRAMING_MARGIN {
            tracing::info!(
                target = self.target,
                entries,
                bytes = data.len(),
                "AppendEntries too large, asking openraft to split it"
            );
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(entries_hint(entries, data.len())),
            ));
        }
        let encoded = data.len();
        let reply = self
            .send(kind, data, option.hard_ttl(), |_| {
                Some(PayloadTooLarge::new_entries_hint(entries_hint(
                    entries,
                    encoded.max(MAX_MESSAGE_BYTES),
                )))
            })
            .await?;
        self.decode(kind, &reply)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let kind = RaftRpc::InstallSnapshot;
        let data = self.encode(kind, &rpc)?;
        // openraft cannot shrink chunks on the fly: a chunk rejected as too large is a plain
        // network error (the chunk size is configuration).
        let reply = self.send(kind, data, option.hard_ttl(), |_| None).await?;
        self.decode(kind, &reply)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let kind = RaftRpc::Vote;
        let data = self.encode(kind, &rpc)?;
        let reply = self.send(kind, data, option.hard_ttl(), |_| None).await?;
        self.decode(kind, &reply)
    }
}

/// Produces this node's co-signature over one of its checkpoints.
#[tonic::async_trait]
pub trait Cosigner: Send + Sync + 'static {
    /// This node's signed note over its checkpoint at `size`, waiting (bounded) until it has
    /// applied `size`.
    async fn cosign(&self, size: u64) -> Result<String, tonic::Status>;

    /// Takes a peer's pushed signed note over its checkpoint (see
    /// `Raft.OfferCosignature`): signatures that verify over this node's own
    /// checkpoint of that size count towards making it final; the rest is dropped.
    fn offer(&self, note: &str) -> Result<(), tonic::Status>;
}

/// The server side of the Raft transport: hands each RPC to the local Raft, after
/// binding the sender it claims to the peer the TLS handshake authenticated.
///
/// Served only on the peer port ([`crate::peer`]); every request there carries an
/// [`AuthenticatedPeer`]. A request without one is refused, so mounting this service
/// on a port without peer TLS serves nothing.
#[derive(Clone)]
pub struct RaftService {
    raft: BoardRaft,
    cosigner: Arc<dyn Cosigner>,
    distrust: Arc<LeaderDistrust>,
    counters: Arc<PeerPortCounters>,
    directory: Arc<PeerDirectory>,
    /// The applied board whose latest membership authorisation replicated membership
    /// entries must match ([`crate::membership_rule`]); `None` only in tests of the
    /// Raft plumbing itself.
    membership_board: Option<crate::board_store::BoardStore>,
}

/// How long a follower waits to have applied the committed entries before a
/// replicated membership entry, to judge it against the board as of that point.
const MEMBERSHIP_APPLY_WAIT: Duration = Duration::from_secs(1);

impl fmt::Debug for RaftService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftService").finish_non_exhaustive()
    }
}

impl RaftService {
    /// A service answering for `raft`, co-signing checkpoints with `cosigner`, taking
    /// who may speak as which node from `peers` (and counting refusals in its counters,
    /// shared with `/metrics`).
    pub fn new(raft: BoardRaft, cosigner: Arc<dyn Cosigner>, peers: &PeerChannels) -> Self {
        Self {
            raft,
            cosigner,
            distrust: Arc::default(),
            counters: peers.counters().clone(),
            directory: peers.directory().clone(),
            membership_board: None,
        }
    }

    /// Refuses replicated membership entries that `board`'s latest majority
    /// authorisation does not cover.
    pub fn with_membership_rule(mut self, board: crate::board_store::BoardStore) -> Self {
        self.membership_board = Some(board);
        self
    }

    /// Applies the membership rule to the entries of an append: returns the request
    /// to hand to Raft, cut short before a membership entry that can only be judged
    /// once the entries before it are applied (the reply is then a partial success),
    /// or the refusal of an entry no authorisation covers.
    async fn guard_membership(
        &self,
        mut request: AppendEntriesRequest<TypeConfig>,
    ) -> Result<(AppendEntriesRequest<TypeConfig>, bool), Status> {
        let Some(board) = &self.membership_board else {
            return Ok((request, false));
        };
        // Nearly every append (heartbeats, board entries) carries no membership entry:
        // it passes without reading the Raft metrics or cloning the membership.
        let carries_membership = request
            .entries
            .iter()
            .any(|e| matches!(e.payload, openraft::EntryPayload::Membership(_)));
        if !carries_membership {
            return Ok((request, false));
        }
        let (applied, mut before) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (
                metrics.last_applied.map(|l| l.index),
                metrics.membership_config.membership().clone(),
            )
        };
        for position in 0..request.entries.len() {
            let entry = &request.entries[position];
            let openraft::EntryPayload::Membership(after) = &entry.payload else {
                continue;
            };
            let index = entry.log_id.index;
            // The bootstrap membership, entries this node already applied (committed,
            // so the same on every node) and re-sent ones change nothing.
            if index == 0 || applied.is_some_and(|a| index <= a) || *after == before {
                before = after.clone();
                continue;
            }
            if position > 0 {
                request.entries.truncate(position);
                return Ok((request, true));
            }
            // Judge it by the board as applied up to just before it (as far as it is
            // committed): the same board on every node.
            let before_it = request
                .prev_log_id
                .map_or(0, |l| l.index)
                .min(request.leader_commit.map_or(0, |l| l.index));
            if applied.is_none_or(|a| a < before_it) {
                let _ = self
                    .raft
                    .wait(Some(MEMBERSHIP_APPLY_WAIT))
                    .applied_index_at_least(Some(before_it), "membership rule")
                    .await;
            }
            let latest = crate::membership_rule::latest_authorised(board)
                .map_err(|e| Status::internal(e.to_string()))?;
            if latest
                .as_ref()
                .is_some_and(|change| crate::membership_rule::covers(change, &before, after))
            {
                before = after.clone();
                continue;
            }
            self.counters
                .membership_changes_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(index, before = %crate::membership_rule::describe(&before),
                after = %crate::membership_rule::describe(after), authorised = ?latest,
                "refused a replicated membership change that no majority authorisation on the board covers");
            return Err(Status::permission_denied(format!(
                "the membership entry at log index {index} ({}) is not covered by the board's \
                 latest membership authorisation (signed by a majority of organisations)",
                crate::membership_rule::describe(after)
            )));
        }
        Ok((request, false))
    }

    /// Shares the distrusted-leader state with the admin service.
    pub fn with_distrust(mut self, distrust: Arc<LeaderDistrust>) -> Self {
        self.distrust = distrust;
        self
    }

    /// Refuses a sender whose certificate stands for a deposed node (under any of its
    /// ids).
    fn refuse_distrusted(&self, ids: &std::collections::BTreeSet<NodeId>) -> Result<(), Status> {
        if let Some(deposed) = self.distrust.refused(ids.iter().copied()) {
            return Err(Status::unavailable(format!(
                "this node no longer follows node {deposed} (deposed by its operator)"
            )));
        }
        Ok(())
    }

    /// Decodes a Raft request whose claimed sender (the candidate of a vote, the
    /// leader of an append or snapshot: `vote.leader_id`) must be the authenticated
    /// peer. Log ids inside are not checked: a leader replicates its predecessors'
    /// entries.
    fn authenticated_request<T: DeserializeOwned>(
        &self,
        rpc: RaftRpc,
        request: Request<RaftPayload>,
        claimed_sender: impl FnOnce(&T) -> Option<NodeId>,
    ) -> Result<T, Status> {
        let peer = authenticated_peer(&request)?;
        let decoded: T = decode_request(rpc, request)?;
        let claimed = claimed_sender(&decoded);
        let authenticated = self.directory.ids_of(&peer.fingerprint);
        match claimed {
            Some(sender) if authenticated.contains(&sender) => {
                self.refuse_distrusted(&authenticated)?;
                Ok(decoded)
            }
            _ => {
                self.counters
                    .impersonations_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%rpc, ?authenticated, ?claimed, remote = %peer.remote,
                    "refused a Raft request whose sender is not the authenticated peer");
                Err(Status::permission_denied(format!(
                    "{rpc} claims to come from node {}, but this connection is node {:?}",
                    claimed.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                    authenticated
                )))
            }
        }
    }

    /// The tonic service, with [`MAX_MESSAGE_BYTES`] limits in both directions.
    pub fn into_server(self) -> raft_server::RaftServer<RaftService> {
        raft_server::RaftServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// The peer the TLS handshake authenticated for this request's connection.
fn authenticated_peer<T>(request: &Request<T>) -> Result<AuthenticatedPeer, Status> {
    request
        .extensions()
        .get::<AuthenticatedPeer>()
        .copied()
        .ok_or_else(|| {
            Status::unauthenticated("Raft and cosigning are served to authenticated peers only")
        })
}

/// Decodes an openraft request from a payload; bad bytes are the caller's fault.
fn decode_request<T: DeserializeOwned>(
    rpc: RaftRpc,
    request: Request<RaftPayload>,
) -> Result<T, Status> {
    let data = request.into_inner().data;
    rmp_serde::from_slice(&data).map_err(|e| {
        Status::invalid_argument(format!(
            "undecodable {rpc} request ({} bytes): {e}",
            data.len()
        ))
    })
}

/// Encodes the `Result` the local Raft produced.
fn encode_reply<T: Serialize>(rpc: RaftRpc, reply: &T) -> Result<Response<RaftPayload>, Status> {
    rmp_serde::to_vec_named(reply)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(format!("cannot encode {rpc} response: {e}")))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = RaftRpc::AppendEntries;
        let req =
            self.authenticated_request(rpc, request, |r: &AppendEntriesRequest<TypeConfig>| {
                r.vote.leader_id().voted_for()
            })?;
        let (req, cut_short) = self.guard_membership(req).await?;
        let last = req.entries.last().map(|e| e.log_id);
        let reply = match self.raft.append_entries(req).await {
            Ok(AppendEntriesResponse::Success) if cut_short => {
                Ok(AppendEntriesResponse::PartialSuccess(last))
            }
            other => other,
        };
        encode_reply(rpc, &reply)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = RaftRpc::Vote;
        let req = self.authenticated_request(rpc, request, |r: &VoteRequest<NodeId>| {
            r.vote.leader_id().voted_for()
        })?;
        let reply = self.raft.vote(req).await;
        encode_reply(rpc, &reply)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = RaftRpc::InstallSnapshot;
        let req =
            self.authenticated_request(rpc, request, |r: &InstallSnapshotRequest<TypeConfig>| {
                r.vote.leader_id().voted_for()
            })?;
        let reply = self.raft.install_snapshot(req).await;
        encode_reply(rpc, &reply)
    }

    async fn cosign_checkpoint(
        &self,
        request: Request<CosignRequest>,
    ) -> Result<Response<CosignResponse>, Status> {
        authenticated_peer(&request)?;
        let size = request.into_inner().size;
        let signed_checkpoint = self.cosigner.cosign(size).await?;
        Ok(Response::new(CosignResponse { signed_checkpoint }))
    }

    async fn offer_cosignature(
        &self,
        request: Request<CosignOffer>,
    ) -> Result<Response<CosignOfferAck>, Status> {
        authenticated_peer(&request)?;
        self.cosigner
            .offer(&request.into_inner().signed_checkpoint)?;
        Ok(Response::new(CosignOfferAck {}))
    }
}

/// Why [`request_cosignature`] failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No channel to the peer could be made.
    #[error(transparent)]
    Channel(#[from] PeerChannelError),
    /// The peer could not be reached or answered with an error status.
    #[error("node {node}: {status}")]
    Status {
        /// The peer.
        node: NodeId,
        /// The gRPC status (boxed: it is large).
        status: Box<Status>,
    },
    /// The peer did not answer in time.
    #[error("node {node} did not answer within {timeout:?}")]
    Timeout {
        /// The peer.
        node: NodeId,
        /// The deadline that expired.
        timeout: Duration,
    },
}

/// Asks peer `node` for its signature over its checkpoint at `size`, on the shared
/// channel to it, giving up after `timeout` (which bounds connecting, the peer's wait
/// for `size` to be applied, and the reply).
pub async fn request_cosignature(
    channels: &PeerChannels,
    node: NodeId,
    size: u64,
    timeout: Duration,
) -> Result<String, NetworkError> {
    let response = call_peer(
        channels,
        node,
        timeout,
        CosignRequest { size },
        |mut client, request| async move { client.cosign_checkpoint(request).await },
    )
    .await?;
    Ok(response.signed_checkpoint)
}

/// Pushes this node's signed note `note` to peer `node` (`Raft.OfferCosignature`) on
/// the shared channel to it, giving up after `timeout`.
pub async fn offer_cosignature(
    channels: &PeerChannels,
    node: NodeId,
    note: String,
    timeout: Duration,
) -> Result<(), NetworkError> {
    let offer = CosignOffer {
        signed_checkpoint: note,
    };
    call_peer(
        channels,
        node,
        timeout,
        offer,
        |mut client, request| async move { client.offer_cosignature(request).await },
    )
    .await?;
    Ok(())
}

/// One unary call to peer `node` on the shared channel to it: `timeout` is both the
/// gRPC deadline the peer sees and a local bound on connecting and waiting, so a peer
/// that never answers costs at most `timeout`.
async fn call_peer<M, R, F, Fut>(
    channels: &PeerChannels,
    node: NodeId,
    timeout: Duration,
    message: M,
    call: F,
) -> Result<R, NetworkError>
where
    F: FnOnce(RaftClient<Channel>, Request<M>) -> Fut,
    Fut: std::future::Future<Output = Result<Response<R>, Status>>,
{
    let client = raft_client(channels.channel(node)?);
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, call(client, request)).await {
        Err(_elapsed) => Err(NetworkError::Timeout { node, timeout }),
        Ok(Err(status)) => Err(NetworkError::Status {
            node,
            status: Box::new(status),
        }),
        Ok(Ok(response)) => Ok(response.into_inner()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;
    use std::io::SeekFrom;
    use std::ops::RangeBounds;
    use std::sync::Mutex;

    use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
    use openraft::{
        Config, Entry, EntryPayload, LogId, OptionalSend, Raft, RaftLogReader, RaftSnapshotBuilder,
        Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
    };
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::peer::TlsIdentity;
    use crate::test_server::TestPeers;
    use crate::types::{BoardRequest, BoardResponse};

    /// Bound on every wait in these tests.
    const WAIT: Duration = Duration::from_secs(10);
    /// Size of the test state machine's snapshot data: several 64 KiB chunks.
    const SNAPSHOT_BYTES: usize = 300 * 1024;
    /// Chunk size used by the snapshot test.
    const CHUNK: u64 = 64 * 1024;

    // ---- in-memory log store ------------------------------------------------------------

    #[derive(Default)]
    struct LogInner {
        vote: Option<Vote<NodeId>>,
        committed: Option<LogId<NodeId>>,
        last_purged: Option<LogId<NodeId>>,
        log: BTreeMap<u64, Entry<TypeConfig>>,
    }

    #[derive(Clone, Default)]
    struct MemLog(Arc<Mutex<LogInner>>);

    impl RaftLogReader<TypeConfig> for MemLog {
        async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
            &mut self,
            range: RB,
        ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
            let inner = self.0.lock().unwrap();
            Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
        }
    }

    impl RaftLogStorage<TypeConfig> for MemLog {
        type LogReader = Self;

        async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
            let inner = self.0.lock().unwrap();
            let last = inner
                .log
                .values()
                .next_back()
                .map(|e| e.log_id)
                .or(inner.last_purged);
            Ok(LogState {
                last_purged_log_id: inner.last_purged,
                last_log_id: last,
            })
        }

        async fn get_log_reader(&mut self) -> Self::LogReader {
            self.clone()
        }

        async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
            self.0.lock().unwrap().vote = Some(*vote);
            Ok(())
        }

        async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
            Ok(self.0.lock().unwrap().vote)
        }

        async fn save_committed(
            &mut self,
            committed: Option<LogId<NodeId>>,
        ) -> Result<(), StorageError<NodeId>> {
            self.0.lock().unwrap().committed = committed;
            Ok(())
        }

        async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
            Ok(self.0.lock().unwrap().committed)
        }

        async fn append<I>(
            &mut self,
            entries: I,
            callback: LogFlushed<TypeConfig>,
        ) -> Result<(), StorageError<NodeId>>
        where
            I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
            I::IntoIter: OptionalSend,
        {
            {
                let mut inner = self.0.lock().unwrap();
                for entry in entries {
                    inner.log.insert(entry.log_id.index, entry);
                }
            }
            callback.log_io_completed(Ok(()));
            Ok(())
        }

        async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
            self.0.lock().unwrap().log.split_off(&log_id.index);
            Ok(())
        }

        async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
            let mut inner = self.0.lock().unwrap();
            inner.log = inner.log.split_off(&(log_id.index + 1));
            inner.last_purged = Some(log_id);
            Ok(())
        }
    }

    // ---- in-memory state machine with file snapshots ------------------------------------

    #[derive(Default)]
    struct SmInner {
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, BoardNode>,
        /// Normal entries applied one by one (not through a snapshot).
        applied_normal: u64,
        snapshot: Option<(SnapshotMeta<NodeId, BoardNode>, Vec<u8>)>,
        /// Snapshots installed from the leader.
        installed: u64,
        built: u64,
    }

    #[derive(Clone, Default)]
    struct MemSm(Arc<Mutex<SmInner>>);

    /// The snapshot payload: deterministic, not compressible to nothing, every byte value.
    fn snapshot_payload() -> Vec<u8> {
        (0..SNAPSHOT_BYTES).map(|i| (i * 131 % 251) as u8).collect()
    }

    fn io_err(e: std::io::Error) -> StorageError<NodeId> {
        StorageIOError::write_snapshot(None, &e).into()
    }

    async fn file_with(data: &[u8]) -> Result<tokio::fs::File, StorageError<NodeId>> {
        let mut file = tokio::fs::File::from_std(tempfile::tempfile().map_err(io_err)?);
        file.write_all(data).await.map_err(io_err)?;
        file.flush().await.map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).await.map_err(io_err)?;
        Ok(file)
    }

    impl RaftSnapshotBuilder<TypeConfig> for MemSm {
        async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
            let data = snapshot_payload();
            let meta = {
                let mut inner = self.0.lock().unwrap();
                inner.built += 1;
                let meta = SnapshotMeta {
                    last_log_id: inner.last_applied,
                    last_membership: inner.membership.clone(),
                    snapshot_id: format!(
                        "{}-{}",
                        inner.last_applied.map_or(0, |l| l.index),
                        inner.built
                    ),
                };
                inner.snapshot = Some((meta.clone(), data.clone()));
                meta
            };
            Ok(Snapshot {
                meta,
                snapshot: Box::new(file_with(&data).await?),
            })
        }
    }

    impl RaftStateMachine<TypeConfig> for MemSm {
        type SnapshotBuilder = Self;

        async fn applied_state(
            &mut self,
        ) -> Result<
            (Option<LogId<NodeId>>, StoredMembership<NodeId, BoardNode>),
            StorageError<NodeId>,
        > {
            let inner = self.0.lock().unwrap();
            Ok((inner.last_applied, inner.membership.clone()))
        }

        async fn apply<I>(&mut self, entries: I) -> Result<Vec<BoardResponse>, StorageError<NodeId>>
        where
            I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
            I::IntoIter: OptionalSend,
        {
            let mut inner = self.0.lock().unwrap();
            let mut out = Vec::new();
            for entry in entries {
                inner.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(_) => inner.applied_normal += 1,
                    EntryPayload::Membership(m) => {
                        inner.membership = StoredMembership::new(Some(entry.log_id), m)
                    }
                }
                out.push(BoardResponse::default());
            }
            Ok(out)
        }

        async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
            self.clone()
        }

        async fn begin_receiving_snapshot(
            &mut self,
        ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
            Ok(Box::new(file_with(&[]).await?))
        }

        async fn install_snapshot(
            &mut self,
            meta: &SnapshotMeta<NodeId, BoardNode>,
            mut snapshot: Box<tokio::fs::File>,
        ) -> Result<(), StorageError<NodeId>> {
            let mut data = Vec::new();
            snapshot.seek(SeekFrom::Start(0)).await.map_err(io_err)?;
            snapshot.read_to_end(&mut data).await.map_err(io_err)?;
            let mut inner = self.0.lock().unwrap();
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.snapshot = Some((meta.clone(), data));
            inner.installed += 1;
            Ok(())
        }

        async fn get_current_snapshot(
            &mut self,
        ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
            let current = self.0.lock().unwrap().snapshot.clone();
            match current {
                None => Ok(None),
                Some((meta, data)) => Ok(Some(Snapshot {
                    meta,
                    snapshot: Box::new(file_with(&data).await?),
                })),
            }
        }
    }

    // ---- cluster harness ----------------------------------------------------------------

    struct EchoCosigner(NodeId);

    #[tonic::async_trait]
    impl Cosigner for EchoCosigner {
        async fn cosign(&self, size: u64) -> Result<String, Status> {
            if size == u64::MAX {
                return Err(Status::failed_precondition("size not applied"));
            }
            Ok(format!("node {} signs {size}", self.0))
        }

        fn offer(&self, _note: &str) -> Result<(), Status> {
            Ok(())
        }
    }

    struct TestNode {
        id: NodeId,
        addr: String,
        channels: Arc<PeerChannels>,
        raft: BoardRaft,
        sm: MemSm,
        stop: Option<oneshot::Sender<()>>,
        server: Option<JoinHandle<()>>,
    }

    impl TestNode {
        fn node(&self) -> BoardNode {
            BoardNode {
                addr: self.addr.clone(),
                ..Default::default()
            }
        }

        /// Stops the node: its Raft, then its gRPC server (connections are closed).
        async fn stop(&mut self) {
            self.raft.shutdown().await.unwrap();
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(server) = self.server.take() {
                tokio::time::timeout(WAIT, server)
                    .await
                    .expect("server stops")
                    .unwrap();
            }
        }
    }

    fn test_config() -> Arc<Config> {
        let config = Config {
            cluster_name: "bboard-network-test".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            install_snapshot_timeout: 2_000,
            snapshot_max_chunk_size: CHUNK,
            max_in_snapshot_log_to_keep: 0,
            purge_batch_size: 1,
            ..Config::default()
        };
        Arc::new(config.validate().unwrap())
    }

    async fn start_node(peers: &mut TestPeers, id: NodeId) -> TestNode {
        let listener = peers.take_listener(id);
        let channels = peers.channels(id);
        let sm = MemSm::default();
        let raft = Raft::new(
            id,
            test_config(),
            GrpcNetworkFactory::new(channels.clone()),
            MemLog::default(),
            sm.clone(),
        )
        .await
        .unwrap();
        let service = RaftService::new(raft.clone(), Arc::new(EchoCosigner(id)), &channels);
        let (stop, server) = crate::test_server::serve_peer_port_until_stopped(
            listener,
            tonic::service::Routes::new(service.into_server()),
            &channels,
        );
        TestNode {
            id,
            addr: peers.address(id),
            channels,
            raft,
            sm,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Starts nodes 1..=n and initialises the cluster from node 1; returns the nodes and the
    /// leader's id.
    async fn start_cluster(peers: &mut TestPeers, n: u64) -> (Vec<TestNode>, NodeId) {
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(start_node(peers, id).await);
        }
        let members: BTreeMap<NodeId, BoardNode> = nodes.iter().map(|n| (n.id, n.node())).collect();
        nodes[0].raft.initialize(members).await.unwrap();
        let metrics = nodes[0]
            .raft
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader is elected")
            .await
            .unwrap();
        let leader = metrics.current_leader.unwrap();
        (nodes, leader)
    }

    fn node(nodes: &[TestNode], id: NodeId) -> &TestNode {
        nodes.iter().find(|n| n.id == id).unwrap()
    }

    async fn write(raft: &BoardRaft) -> u64 {
        let resp = raft
            .client_write(BoardRequest::Batch { leaves: vec![] })
            .await
            .unwrap();
        assert_eq!(resp.data, BoardResponse::default());
        resp.log_id.index
    }

    async fn wait_applied(node: &TestNode, index: u64) {
        node.raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.last_applied.is_some_and(|l| l.index >= index),
                format!("node {} applies {index}", node.id),
            )
            .await
            .unwrap();
    }

    async fn stop_all(nodes: &mut [TestNode]) {
        for n in nodes.iter_mut() {
            if n.stop.is_some() {
                n.stop().await;
            }
        }
    }

    // ---- tests --------------------------------------------------------------------------

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn network_three_nodes_elect_commit_and_survive_a_stopped_follower() {
        let mut peers = TestPeers::bind(&[1, 2, 3]).await;
        let (mut nodes, leader) = start_cluster(&mut peers, 3).await;
        let index = write(&node(&nodes, leader).raft).await;
        for n in &nodes {
            wait_applied(n, index).await;
            assert_eq!(n.sm.0.lock().unwrap().applied_normal, 1, "node {}", n.id);
        }
        // Every node agrees on the leader.
        for n in &nodes {
            n.raft
                .wait(Some(WAIT))
                .metrics(|m| m.current_leader == Some(leader), "leader known")
                .await
                .unwrap();
        }

        // Stop one follower (Raft and gRPC server): the other two still commit.
        let follower = nodes.iter().map(|n| n.id).find(|&id| id != leader).unwrap();
        nodes
            .iter_mut()
            .find(|n| n.id == follower)
            .unwrap()
            .stop()
            .await;
        let index = tokio::time::timeout(WAIT, write(&node(&nodes, leader).raft))
            .await
            .expect("a write commits with one follower down");
        for n in nodes.iter().filter(|n| n.id != follower) {
            wait_applied(n, index).await;
            assert_eq!(n.sm.0.lock().unwrap().applied_normal, 2, "node {}", n.id);
        }
        stop_all(&mut nodes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn network_learner_catches_up_through_chunked_snapshot() {
        let mut peers = TestPeers::bind(&[1, 2, 3, 4]).await;
        let (mut nodes, leader) = start_cluster(&mut peers, 3).await;
        let mut index = 0;
        for _ in 0..5 {
            index = write(&node(&nodes, leader).raft).await;
        }
        for n in &nodes {
            wait_applied(n, index).await;
        }

        // Snapshot on the leader and purge its whole log.
        let leader_raft = node(&nodes, leader).raft.clone();
        leader_raft.trigger().snapshot().await.unwrap();
        leader_raft
            .wait(Some(WAIT))
            .metrics(
                |m| {
                    m.snapshot.is_some_and(|s| s.index >= index)
                        && m.purged.is_some_and(|p| p.index >= index)
                },
                "leader snapshots and purges its log",
            )
            .await
            .unwrap();

        // A new learner can only catch up by receiving the snapshot, in several chunks.
        let learner = start_node(&mut peers, 4).await;
        leader_raft
            .add_learner(learner.id, learner.node(), true)
            .await
            .unwrap();
        wait_applied(&learner, index).await;
        {
            let sm = learner.sm.0.lock().unwrap();
            assert_eq!(sm.installed, 1);
            assert_eq!(sm.applied_normal, 0, "entries came through the snapshot");
            let (meta, data) = sm.snapshot.as_ref().unwrap();
            assert!(meta.last_log_id.is_some_and(|l| l.index >= index));
            assert!(data.len() as u64 > 4 * CHUNK);
            assert!(data == &snapshot_payload(), "snapshot bytes arrive intact");
        }

        // And it keeps replicating normally afterwards.
        let index = write(&leader_raft).await;
        wait_applied(&learner, index).await;
        assert_eq!(learner.sm.0.lock().unwrap().applied_normal, 1);

        nodes.push(learner);
        stop_all(&mut nodes).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn network_cosign_and_bad_payloads() {
        let mut peers = TestPeers::bind(&[7, 8]).await;
        let mut n = start_node(&mut peers, 7).await;
        // Node 8 is a configured peer calling node 7.
        let caller = peers.channels(8);

        let signed = request_cosignature(&caller, 7, 42, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(signed, "node 7 signs 42");
        let err = request_cosignature(&caller, 7, u64::MAX, Duration::from_secs(2))
            .await
            .unwrap_err();
        match err {
            NetworkError::Status { status, .. } => {
                assert_eq!(status.code(), Code::FailedPrecondition)
            }
            other => panic!("unexpected {other}"),
        }

        // Garbage payloads are rejected, not fatal.
        let mut client = raft_client(caller.channel(7).unwrap());
        for rpc in [
            RaftRpc::AppendEntries,
            RaftRpc::Vote,
            RaftRpc::InstallSnapshot,
        ] {
            let req = Request::new(RaftPayload {
                data: vec![0xc1, 0xff, 0x00],
            });
            let status = match rpc {
                RaftRpc::AppendEntries => client.append_entries(req).await,
                RaftRpc::Vote => client.vote(req).await,
                RaftRpc::InstallSnapshot => client.install_snapshot(req).await,
            }
            .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{rpc}: {status}");
        }

        // A remote Raft error comes back as RemoteError: an uninitialised node still
        // answers a vote, and a vote against a stopped Raft is a remote Fatal error.
        let mut raft_net = GrpcNetworkFactory::new(caller.clone())
            .new_client(7, &n.node())
            .await;
        let option = RPCOption::new(Duration::from_secs(2));
        let vote = VoteRequest::new(Vote::new(1, 8), None);
        raft_net.vote(vote.clone(), option.clone()).await.unwrap();
        n.raft.shutdown().await.unwrap();
        match raft_net.vote(vote.clone(), option.clone()).await {
            Err(RPCError::RemoteError(e)) => {
                assert_eq!(e.target, 7);
                assert!(matches!(e.source, RaftError::Fatal(_)), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
        n.stop().await;

        // Once the server is gone the peer is unreachable, quickly.
        let started = std::time::Instant::now();
        match raft_net.vote(vote, option).await {
            Err(RPCError::Unreachable(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = request_cosignature(&caller, 7, 1, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, NetworkError::Status { .. }), "{err}");
        assert!(matches!(
            request_cosignature(&caller, 99, 1, Duration::from_secs(1)).await,
            Err(NetworkError::Channel(PeerChannelError::UnknownPeer(99)))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn network_peer_port_refuses_strangers_and_impersonators() {
        let mut peers = TestPeers::bind(&[1, 2, 3]).await;
        let mut n = start_node(&mut peers, 1).await;
        let vote_at = |term: u64, candidate: NodeId| {
            Request::new(RaftPayload {
                data: rmp_serde::to_vec_named(&VoteRequest::<NodeId>::new(
                    Vote::new(term, candidate),
                    None,
                ))
                .unwrap(),
            })
        };
        let vote_claiming = |candidate: NodeId| vote_at(100, candidate);

        // Node 3 is a configured peer, but a vote it sends for candidate 2 is refused,
        // and node 1's term does not move.
        let mut as_node_3 = raft_client(peers.channels(3).channel(1).unwrap());
        let status = as_node_3.vote(vote_claiming(2)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status}");
        assert_eq!(n.raft.metrics().borrow().current_term, 0);
        assert_eq!(
            n.channels
                .counters()
                .impersonations_refused
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // Voting as itself is fine.
        as_node_3.vote(vote_claiming(3)).await.unwrap();

        // A certificate nobody pinned cannot complete a handshake, nor can plain gRPC.
        let stranger_channels = Arc::new(PeerChannels::new(
            TlsIdentity::generate(3).unwrap(),
            BTreeMap::from([(
                1,
                crate::peer::PeerEndpoint {
                    address: n.addr.clone(),
                    fingerprint: n.channels.identity().fingerprint(),
                },
            )]),
        ));
        // (The refusal surfaces as a TLS alert or a closed connection, by timing.)
        let mut stranger = raft_client(stranger_channels.channel(1).unwrap());
        assert!(stranger.vote(vote_at(200, 3)).await.is_err());
        let mut plain = RaftClient::new(
            tonic::transport::Endpoint::from_shared(format!("http://{}", n.addr))
                .unwrap()
                .connect_lazy(),
        );
        assert!(plain.vote(vote_at(200, 3)).await.is_err());
        assert_eq!(
            n.raft.metrics().borrow().current_term,
            100,
            "only node 3's own vote moved the term"
        );
        n.stop().await;
    }

    #[tokio::test]
    async fn network_oversized_append_entries_asks_for_smaller_batches() {
        // Nothing listens here: the size check happens before any connection.
        let peers = TestPeers::bind(&[9]).await;
        let mut net = GrpcRaftClient::new(9, BoardNode::default(), &peers.channels(9));
        let leaf = crate::types::LeafBytes(vec![7; 1024 * 1024]);
        let entries = (1..=12)
            .map(|i| Entry::<TypeConfig> {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Normal(BoardRequest::Batch {
                    leaves: vec![leaf.clone()],
                }),
            })
            .collect();
        let rpc = AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        };
        match net
            .append_entries(rpc, RPCOption::new(Duration::from_secs(1)))
            .await
        {
            Err(RPCError::PayloadTooLarge(e)) => {
                assert!((1..12).contains(&e.entries_hint()), "{e}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn network_entries_hint_is_smaller_and_positive() {
        assert_eq!(entries_hint(1, 100 * MAX_MESSAGE_BYTES), 1);
        assert_eq!(entries_hint(2, 3 * MAX_MESSAGE_BYTES), 1);
        let hint = entries_hint(1000, 2 * MAX_MESSAGE_BYTES);
        assert!((300..500).contains(&hint), "{hint}");
        assert!(entries_hint(10, 1) < 10);
    }
}
