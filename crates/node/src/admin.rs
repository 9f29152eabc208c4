//! The operator service of a node (`bboard.v1.Admin`, tonic): membership changes and
//! maintenance, each request signed by a trusted admin key.
//!
//! Every RPC takes a [`SignedAdminRequest`] and, in this order:
//!
//! 1. verifies it with [`bboard_core::admin::verify_admin_request`] against the node's
//!    admin keys and clock (allowed skew [`DEFAULT_MAX_SKEW`] unless configured);
//! 2. checks that the signed command is the one this RPC performs (a signed
//!    `ChangeMembership` body sent to `AddLearner` is refused);
//! 3. checks that the command names this node (`AdminCommand.node_id`): a request
//!    signed for one node is refused by every other node, and one naming no node (0)
//!    by all;
//! 4. refuses a replay: the signature of every accepted request is remembered for twice
//!    the skew window, which covers the whole time its `issued_unix_ms` stays acceptable,
//!    in a map bounded by [`MAX_REMEMBERED_REQUESTS`]. A request is *consumed* when it
//!    passes these checks, before it runs: if it then fails (e.g. this node is not the
//!    leader) the operator signs a new one;
//! 5. runs it on the local [`BoardRaft`].
//!
//! # Status codes
//!
//! | Situation | Code |
//! |---|---|
//! | not signed, or signed by no trusted admin key | `UNAUTHENTICATED` |
//! | `issued_unix_ms` outside now ± skew (expired, from the future) | `UNAUTHENTICATED` |
//! | body too large, not an `AdminCommand`, no command, bad signature length, bad arguments (empty voter set, address not `host:port`) | `INVALID_ARGUMENT` |
//! | signed command is not the one of the RPC | `FAILED_PRECONDITION` |
//! | command names another node, or no node (`node_id` 0) | `PERMISSION_DENIED` |
//! | signature already used (replay) | `ALREADY_EXISTS` |
//! | too many requests inside the replay window | `RESOURCE_EXHAUSTED` |
//! | a membership change that is not the board's latest majority authorisation ([`crate::membership_rule`]) | `FAILED_PRECONDITION` |
//! | this node is not the leader | `FAILED_PRECONDITION`, naming the leader's id and address |
//! | openraft refuses the membership change (unknown learner, change in progress) | `FAILED_PRECONDITION` |
//! | `Campaign` on a node that is not a voter | `FAILED_PRECONDITION` |
//! | a learner did not catch up within the learner timeout (it *was* added) | `DEADLINE_EXCEEDED` |
//! | Raft stopped | `UNAVAILABLE` |
//!
//! `Campaign` makes the node start an election at once; it wins only if a quorum votes
//! for it, and openraft voters refuse while they still hear from a live leader (leader
//! lease). It is meant for a cluster whose leader is gone, not to move leadership away
//! from a healthy leader.
//!
//! An unknown key is `UNAUTHENTICATED`, not `PERMISSION_DENIED`: a request carries no
//! signer, so "signed by a key we do not trust" and "badly signed" are indistinguishable,
//! and there is only one permission level. `PERMISSION_DENIED` is kept for a validly
//! signed command addressed to another node.
//!
//! The replay cache is per node; what stops a request accepted by one node from being
//! replayed against another node of the cluster within the skew window is the target
//! `node_id` inside the signed body (step 3).

// tonic's `Status` is the error type fixed by the trait we implement.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bboard_core::admin::{verify_admin_request, DEFAULT_MAX_SKEW_MS, MAX_ADMIN_BODY_BYTES};
use bboard_core::envelope::SIGNATURE_LEN;
use bboard_core::Error as CoreError;
use bboard_proto::v1::admin_command::Command;
use bboard_proto::v1::admin_server;
use bboard_proto::v1::{AddLearnerCommand, AdminResponse, CampaignCommand, SignedAdminRequest};
use ed25519_dalek::VerifyingKey;
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use tonic::{Request, Response, Status};

use crate::peer::{Fingerprint, PeerDirectory};
use crate::types::{BoardNode, BoardRaft, NodeId};

/// Default allowed difference between a command's `issued_unix_ms` and this node's
/// clock, either way.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_millis(DEFAULT_MAX_SKEW_MS);

/// Default time `AddLearner` waits for the new learner to catch up.
pub const DEFAULT_LEARNER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `Campaign` with `depose_leader` refuses the deposed leader by default.
pub const DEFAULT_DISTRUST: Duration = Duration::from_secs(600);

/// Most accepted requests remembered for replay protection at once; beyond that new
/// requests are refused (`RESOURCE_EXHAUSTED`) until old ones expire.
pub const MAX_REMEMBERED_REQUESTS: usize = 10_000;

/// Which RPC is being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AdminRpc {
    AddLearner,
    ChangeMembership,
    TriggerSnapshot,
    Campaign,
}

impl fmt::Display for AdminRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminRpc::AddLearner => "AddLearner",
            AdminRpc::ChangeMembership => "ChangeMembership",
            AdminRpc::TriggerSnapshot => "TriggerSnapshot",
            AdminRpc::Campaign => "Campaign",
        })
    }
}

/// The RPC a command belongs to.
fn rpc_of(command: &Command) -> AdminRpc {
    match command {
        Command::AddLearner(_) => AdminRpc::AddLearner,
        Command::ChangeMembership(_) => AdminRpc::ChangeMembership,
        Command::TriggerSnapshot(_) => AdminRpc::TriggerSnapshot,
        Command::Campaign(_) => AdminRpc::Campaign,
    }
}

/// Signatures of accepted requests and when they may be forgotten.
#[derive(Debug, Default)]
struct ReplayCache {
    expiry_unix_ms: HashMap<[u8; SIGNATURE_LEN], u64>,
}

impl ReplayCache {
    /// Records `signature` until `expires_unix_ms`, refusing one already recorded.
    fn insert(
        &mut self,
        signature: [u8; SIGNATURE_LEN],
        now_unix_ms: u64,
        expires_unix_ms: u64,
        capacity: usize,
    ) -> Result<(), Status> {
        if self
            .expiry_unix_ms
            .get(&signature)
            .is_some_and(|&expiry| expiry > now_unix_ms)
        {
            return Err(Status::already_exists(
                "this signed admin request was already used (replay); sign a new one",
            ));
        }
        if self.expiry_unix_ms.len() >= capacity {
            self.expiry_unix_ms
                .retain(|_, &mut expiry| expiry > now_unix_ms);
        }
        if self.expiry_unix_ms.len() >= capacity {
            return Err(Status::resource_exhausted(format!(
                "{capacity} admin requests accepted within the replay window; retry later"
            )));
        }
        self.expiry_unix_ms.insert(signature, expires_unix_ms);
        Ok(())
    }
}

/// The node's `bboard.v1.Admin` service over its [`BoardRaft`].
#[derive(Clone)]
pub struct AdminService {
    raft: BoardRaft,
    admin_keys: Arc<Vec<VerifyingKey>>,
    max_skew: Duration,
    learner_timeout: Duration,
    replay: Arc<Mutex<ReplayCache>>,
    distrust: Arc<crate::network::LeaderDistrust>,
    peers: Arc<PeerDirectory>,
    /// The applied board whose latest membership authorisation a membership change
    /// must match; `None` only in tests of the Raft plumbing itself.
    membership_board: Option<crate::board_store::BoardStore>,
}

impl fmt::Debug for AdminService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminService")
            .field("admin_keys", &self.admin_keys.len())
            .field("max_skew", &self.max_skew)
            .field("learner_timeout", &self.learner_timeout)
            .finish_non_exhaustive()
    }
}

impl AdminService {
    /// A service running commands signed by one of `admin_keys` on `raft`, with the
    /// default skew ([`DEFAULT_MAX_SKEW`]) and learner timeout
    /// ([`DEFAULT_LEARNER_TIMEOUT`]). With no keys every request is refused.
    pub fn new(raft: BoardRaft, admin_keys: Vec<VerifyingKey>) -> Self {
        Self {
            raft,
            admin_keys: Arc::new(admin_keys),
            max_skew: DEFAULT_MAX_SKEW,
            learner_timeout: DEFAULT_LEARNER_TIMEOUT,
            replay: Arc::new(Mutex::new(ReplayCache::default())),
            distrust: Arc::default(),
            peers: Arc::default(),
            membership_board: None,
        }
    }

    /// Runs a membership change only when `board`'s latest majority authorisation is
    /// exactly that change ([`crate::membership_rule`]).
    pub fn with_membership_rule(mut self, board: crate::board_store::BoardStore) -> Self {
        self.membership_board = Some(board);
        self
    }

    /// Refuses `requested` unless the board's latest membership authorisation is it.
    fn require_authorisation(
        &self,
        requested: &bboard_core::membership::MembershipChange,
    ) -> Result<(), Status> {
        let Some(board) = &self.membership_board else {
            return Ok(());
        };
        if crate::fault::active() == Some(crate::fault::Fault::IgnoreMembershipRule) {
            tracing::warn!("FAULT: proposing a membership change without checking the board");
            return Ok(());
        }
        let latest = crate::membership_rule::latest_authorised(board)
            .map_err(|e| Status::internal(e.to_string()))?;
        match latest {
            Some(authorised) if crate::membership_rule::same_change(&authorised, requested) => {
                Ok(())
            }
            Some(authorised) => Err(Status::failed_precondition(format!(
                "the board's latest membership authorisation is for another change \
                 ({authorised:?}); post one for this change, signed by admins of a majority \
                 of organisations (bboard admin propose, countersign, submit)"
            ))),
            None => Err(Status::failed_precondition(
                "no membership authorisation is on the board: a membership change needs one \
                 signed by admins of a majority of organisations (bboard admin propose, \
                 countersign, submit)",
            )),
        }
    }

    /// Where `AddLearner` looks up a new node's peer address and pin when the command
    /// does not carry them (the node's configured peers).
    pub fn with_peers(mut self, peers: Arc<PeerDirectory>) -> Self {
        self.peers = peers;
        self
    }

    /// The member `command` adds: its addresses and pin, from the command or else from
    /// this node's peers.
    fn new_member(&self, command: &AddLearnerCommand) -> Result<BoardNode, Status> {
        check_address(&command.address)?;
        if command.peer_address.is_empty() && command.tls_fingerprint.is_empty() {
            let known = self.peers.endpoint(command.node_id).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "node {} is not among this node's peers: give its peer address and TLS \
                     fingerprint (--peer-address, --tls-fingerprint)",
                    command.node_id
                ))
            })?;
            return Ok(BoardNode {
                addr: command.address.clone(),
                peer_addr: known.address,
                tls_fingerprint: known.fingerprint.to_string(),
            });
        }
        check_address(&command.peer_address)?;
        let fingerprint = Fingerprint::parse(&command.tls_fingerprint)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(BoardNode {
            addr: command.address.clone(),
            peer_addr: command.peer_address.clone(),
            tls_fingerprint: fingerprint.to_string(),
        })
    }

    /// Shares the distrusted-leader state with the Raft service (`Campaign` with
    /// `depose_leader`).
    pub fn with_distrust(mut self, distrust: Arc<crate::network::LeaderDistrust>) -> Self {
        self.distrust = distrust;
        self
    }

    /// Sets the allowed difference between a command's `issued_unix_ms` and this node's
    /// clock (accepted requests are remembered for twice this long).
    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// Sets how long `AddLearner` waits for the new learner to catch up.
    pub fn with_learner_timeout(mut self, timeout: Duration) -> Self {
        self.learner_timeout = timeout;
        self
    }

    /// The tonic service. Requests larger than an admin command can be are refused before
    /// they are buffered.
    pub fn into_server(self) -> admin_server::AdminServer<AdminService> {
        admin_server::AdminServer::new(self).max_decoding_message_size(MAX_ADMIN_BODY_BYTES + 1024)
    }

    fn node_id(&self) -> NodeId {
        self.raft.metrics().borrow().id
    }

    /// Steps 1–4 of the module documentation: the verified command of `rpc`.
    fn authorize(
        &self,
        rpc: AdminRpc,
        request: Request<SignedAdminRequest>,
    ) -> Result<Command, Status> {
        let request = request.into_inner();
        let now = now_unix_ms()?;
        let max_skew_ms = u64::try_from(self.max_skew.as_millis()).unwrap_or(u64::MAX);
        let (cmd, signer) = verify_admin_request(&request, &self.admin_keys, now, max_skew_ms)
            .map_err(|e| {
                tracing::warn!(%rpc, error = %e, "admin request refused");
                verify_error(e)
            })?;
        let Some(command) = cmd.command else {
            return Err(Status::invalid_argument("admin command has no command set"));
        };
        let signed_rpc = rpc_of(&command);
        if signed_rpc != rpc {
            return Err(Status::failed_precondition(format!(
                "the signed command is {signed_rpc}, but it was sent to {rpc}"
            )));
        }
        check_target(cmd.node_id, self.node_id())?;
        // verify_admin_request checked the length.
        let signature: [u8; SIGNATURE_LEN] = request
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| Status::invalid_argument("bad signature length"))?;
        let expires = now.saturating_add(max_skew_ms.saturating_mul(2));
        self.replay
            .lock()
            .map_err(|_| Status::internal("replay cache lock poisoned"))?
            .insert(signature, now, expires, MAX_REMEMBERED_REQUESTS)?;
        tracing::info!(%rpc, admin_key = %short_hex(signer.as_bytes()), ?command,
            "running signed admin command");
        Ok(command)
    }

    async fn add_learner(&self, command: &AddLearnerCommand) -> Result<String, Status> {
        let member = self.new_member(command)?;
        self.require_authorisation(&bboard_core::membership::MembershipChange::AddLearner(
            AddLearnerCommand {
                node_id: command.node_id,
                address: member.addr.clone(),
                peer_address: member.peer_addr.clone(),
                tls_fingerprint: member.tls_fingerprint.clone(),
            },
        ))?;
        let (node_id, address) = (command.node_id, member.addr.clone());
        let me = self.node_id();
        let response = self
            .raft
            .add_learner(node_id, member, false)
            .await
            .map_err(|e| write_error(me, e))?;
        let index = response.log_id.index;
        if node_id == me {
            return Ok(format!(
                "node {node_id} at {address} is a member (membership log index {index})"
            ));
        }
        let caught_up = self
            .raft
            .wait(Some(self.learner_timeout))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&node_id))
                        .and_then(|matched| *matched)
                        .is_some_and(|matched| matched.index >= index)
                },
                format!("learner {node_id} replicates up to log index {index}"),
            )
            .await;
        match caught_up {
            Ok(_) => Ok(format!(
                "node {node_id} at {address} added as a learner (membership log index \
                 {index}) and caught up"
            )),
            Err(e) => Err(Status::deadline_exceeded(format!(
                "node {node_id} at {address} was added as a learner (membership log index \
                 {index}) but has not caught up: {e}; it keeps replicating, check it before \
                 making it a voter"
            ))),
        }
    }

    async fn change_membership(&self, voter_ids: Vec<NodeId>) -> Result<String, Status> {
        if voter_ids.is_empty() {
            return Err(Status::invalid_argument("the new voter set is empty"));
        }
        self.require_authorisation(
            &bboard_core::membership::MembershipChange::ChangeMembership(
                bboard_proto::v1::ChangeMembershipCommand {
                    voter_ids: voter_ids.clone(),
                },
            ),
        )?;
        let voters: BTreeSet<NodeId> = voter_ids.into_iter().collect();
        let me = self.node_id();
        let response = self
            .raft
            .change_membership(voters.clone(), false)
            .await
            .map_err(|e| write_error(me, e))?;
        let membership = match &response.membership {
            Some(m) => format!(
                "voters {:?}, learners {:?}",
                m.voter_ids().collect::<BTreeSet<_>>(),
                m.learner_ids().collect::<BTreeSet<_>>()
            ),
            None => format!("voters {voters:?}"),
        };
        Ok(format!(
            "membership changed at log index {}: {membership}",
            response.log_id.index
        ))
    }

    async fn trigger_snapshot(&self) -> Result<String, Status> {
        let (me, applied) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.id, m.last_applied)
        };
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| stopped(me, e))?;
        Ok(match applied {
            Some(log_id) => format!(
                "node {me} is building a snapshot at applied log index {}",
                log_id.index
            ),
            None => format!("node {me} was asked for a snapshot but has applied nothing yet"),
        })
    }

    async fn campaign(&self, command: &CampaignCommand) -> Result<String, Status> {
        let (me, is_voter, term, leader) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let is_voter = m
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == m.id);
            (m.id, is_voter, m.current_term, m.current_leader)
        };
        if !is_voter {
            return Err(Status::failed_precondition(format!(
                "node {me} is not a voter and cannot become leader"
            )));
        }
        let mut deposed = String::new();
        if command.depose_leader {
            let target = match command.leader_id {
                0 => leader,
                named => Some(named),
            };
            if let Some(current) = target.filter(|l| *l != me) {
                let distrust_ms = if command.distrust_ms == 0 {
                    DEFAULT_DISTRUST.as_millis() as u64
                } else {
                    command.distrust_ms
                };
                self.distrust
                    .distrust(current, Duration::from_millis(distrust_ms))
                    .map_err(|e| {
                        Status::internal(format!("recording the deposition of node {current}: {e}"))
                    })?;
                deposed = format!(
                    "; it refuses to follow node {current} for {} s (the leader changes once a majority of nodes do the same)",
                    distrust_ms / 1000
                );
            }
        }
        // When a named leader was already replaced, the node keeps following the new
        // one: an election now would only disturb it.
        let replaced = command.depose_leader
            && command.leader_id != 0
            && leader.is_some_and(|l| l != command.leader_id);
        if !replaced {
            self.raft
                .trigger()
                .elect()
                .await
                .map_err(|e| stopped(me, e))?;
        }
        let leader = leader.map_or_else(|| "none".to_owned(), |id| id.to_string());
        let action = if replaced {
            "did not start an election (it already follows another leader)"
        } else {
            "started an election"
        };
        Ok(format!(
            "node {me} {action} (was term {term}, leader {leader}){deposed}"
        ))
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn add_learner(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<AdminResponse>, Status> {
        let Command::AddLearner(cmd) = self.authorize(AdminRpc::AddLearner, request)? else {
            return Err(Status::internal("authorize returned another command"));
        };
        let message = self.add_learner(&cmd).await?;
        Ok(Response::new(AdminResponse { message }))
    }

    async fn change_membership(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<AdminResponse>, Status> {
        let Command::ChangeMembership(cmd) = self.authorize(AdminRpc::ChangeMembership, request)?
        else {
            return Err(Status::internal("authorize returned another command"));
        };
        let message = self.change_membership(cmd.voter_ids).await?;
        Ok(Response::new(AdminResponse { message }))
    }

    async fn trigger_snapshot(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<AdminResponse>, Status> {
        self.authorize(AdminRpc::TriggerSnapshot, request)?;
        let message = self.trigger_snapshot().await?;
        Ok(Response::new(AdminResponse { message }))
    }

    async fn campaign(
        &self,
        request: Request<SignedAdminRequest>,
    ) -> Result<Response<AdminResponse>, Status> {
        let Command::Campaign(cmd) = self.authorize(AdminRpc::Campaign, request)? else {
            return Err(Status::internal("authorize returned another command"));
        };
        let message = self.campaign(&cmd).await?;
        Ok(Response::new(AdminResponse { message }))
    }
}

/// This node's clock in Unix milliseconds.
fn now_unix_ms() -> Result<u64, Status> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Status::internal(format!("system clock before 1970: {e}")))?;
    Ok(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// The status of a request `verify_admin_request` refused.
fn verify_error(e: CoreError) -> Status {
    match e {
        CoreError::UntrustedAdminRequest(_) | CoreError::StaleAdminCommand { .. } => {
            Status::unauthenticated(e.to_string())
        }
        other => Status::invalid_argument(other.to_string()),
    }
}

/// Checks that a command naming `target` is for this node, `me`.
fn check_target(target: NodeId, me: NodeId) -> Result<(), Status> {
    if target == 0 {
        return Err(Status::permission_denied(
            "admin command names no target node (node_id 0); sign one naming this node",
        ));
    }
    if target != me {
        return Err(Status::permission_denied(format!(
            "admin command is for node {target}, but this is node {me}; refused (sign one \
             naming node {me})"
        )));
    }
    Ok(())
}

/// Checks that `address` looks like `host:port`.
fn check_address(address: &str) -> Result<(), Status> {
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "learner address {address:?} is not host:port"
        )))
    }
}

/// The status of a failed membership write on node `me`.
fn write_error(me: NodeId, e: RaftError<NodeId, ClientWriteError<NodeId, BoardNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            Status::failed_precondition(not_leader(me, &forward))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Status::failed_precondition(format!("membership change refused: {e}"))
        }
        RaftError::Fatal(e) => stopped(me, e),
    }
}

/// The message for a membership command sent to a node that is not the leader.
fn not_leader(me: NodeId, forward: &ForwardToLeader<NodeId, BoardNode>) -> String {
    match (forward.leader_id, &forward.leader_node) {
        (Some(id), Some(node)) => format!(
            "node {me} is not the leader: run the command against the leader, node {id} at {}",
            node.addr
        ),
        (Some(id), None) => {
            format!("node {me} is not the leader: run the command against the leader, node {id}")
        }
        _ => format!("node {me} is not the leader and knows no leader yet; retry later"),
    }
}

/// The status of a Raft that has stopped.
fn stopped(me: NodeId, e: openraft::error::Fatal<NodeId>) -> Status {
    Status::unavailable(format!("Raft of node {me} is not running: {e}"))
}

/// The first 8 bytes of a key in hex, for logs.
fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use bboard_core::admin::sign_admin_command;
    use bboard_core::checkpoint::NoteSigner;
    use bboard_proto::v1::admin_client::AdminClient;
    use bboard_proto::v1::{
        AddLearnerCommand, AdminCommand, CampaignCommand, ChangeMembershipCommand,
        TriggerSnapshotCommand,
    };
    use ed25519_dalek::SigningKey;
    use openraft::{Config, Raft};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tonic::transport::Channel;
    use tonic::Code;

    use super::*;
    use crate::log_store::{open_db, SledLogStore};
    use crate::network::{Cosigner, GrpcNetworkFactory, RaftService};
    use crate::state_machine::BoardStateMachine;
    use crate::test_server::TestPeers;

    /// Bound on every wait in these tests.
    const WAIT: Duration = Duration::from_secs(10);

    fn admin_key() -> SigningKey {
        SigningKey::from_bytes(&[42; 32])
    }

    struct NoCosigner;

    #[tonic::async_trait]
    impl Cosigner for NoCosigner {
        async fn cosign(&self, _size: u64) -> Result<String, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        fn offer(&self, _note: &str) -> Result<(), Status> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    struct TestNode {
        id: NodeId,
        addr: String,
        raft: BoardRaft,
        /// Stops the public (Admin) and the peer (Raft) server.
        stops: Vec<oneshot::Sender<()>>,
        servers: Vec<JoinHandle<()>>,
        _dir: tempfile::TempDir,
    }

    impl TestNode {
        async fn stop(&mut self) {
            self.raft.shutdown().await.unwrap();
            for stop in self.stops.drain(..) {
                let _ = stop.send(());
            }
            for server in self.servers.drain(..) {
                tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
            }
        }

        async fn client(&self) -> AdminClient<Channel> {
            AdminClient::connect(format!("http://{}", self.addr))
                .await
                .unwrap()
        }
    }

    fn config() -> Arc<Config> {
        let config = Config {
            cluster_name: "bboard-admin-test".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..Config::default()
        };
        Arc::new(config.validate().unwrap())
    }

    /// A node with real sled storage serving Admin on a public 127.0.0.1 port and Raft
    /// on its peer port of `peers`.
    async fn start_node(peers: &mut TestPeers, id: NodeId) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&dir.path().join("db")).unwrap();
        let log = SledLogStore::open(&db).unwrap();
        let signer = NoteSigner::new(
            &format!("node-{id}"),
            SigningKey::from_bytes(&[id as u8; 32]),
        )
        .unwrap();
        let sm =
            BoardStateMachine::open(db, "admin.test", signer, &dir.path().join("snap")).unwrap();
        let channels = peers.channels(id);
        let raft = Raft::new(
            id,
            config(),
            GrpcNetworkFactory::new(channels.clone()),
            log,
            sm,
        )
        .await
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let raft_service = RaftService::new(raft.clone(), Arc::new(NoCosigner), &channels);
        let admin = AdminService::new(raft.clone(), vec![admin_key().verifying_key()])
            .with_peers(channels.directory().clone());
        let (admin_stop, admin_server) = crate::test_server::serve_until_stopped(
            listener,
            tonic::service::Routes::new(admin.into_server()),
        );
        let (raft_stop, raft_server) = crate::test_server::serve_peer_port_until_stopped(
            peers.take_listener(id),
            tonic::service::Routes::new(raft_service.into_server()),
            &channels,
        );
        TestNode {
            id,
            addr,
            raft,
            stops: vec![admin_stop, raft_stop],
            servers: vec![admin_server, raft_server],
            _dir: dir,
        }
    }

    /// Starts node `id` and makes it a one-node cluster (it becomes leader).
    async fn start_leader(peers: &mut TestPeers, id: NodeId) -> TestNode {
        let node = start_node(peers, id).await;
        let members = BTreeMap::from([(
            id,
            BoardNode {
                addr: node.addr.clone(),
                ..Default::default()
            },
        )]);
        node.raft.initialize(members).await.unwrap();
        node.raft
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader == Some(id), "node leads")
            .await
            .unwrap();
        node
    }

    fn now_ms() -> u64 {
        now_unix_ms().unwrap()
    }

    /// `command` for node `node_id`, issued now and signed by the admin key.
    fn signed(node_id: NodeId, command: Command) -> SignedAdminRequest {
        signed_at(node_id, command, now_ms())
    }

    fn signed_at(node_id: NodeId, command: Command, issued_unix_ms: u64) -> SignedAdminRequest {
        let cmd = AdminCommand {
            issued_unix_ms,
            command: Some(command),
            node_id,
        };
        sign_admin_command(&cmd, &admin_key())
    }

    fn add_learner_cmd(node: &TestNode) -> Command {
        Command::AddLearner(AddLearnerCommand {
            node_id: node.id,
            address: node.addr.clone(),
            ..Default::default()
        })
    }

    fn voters(node: &TestNode) -> BTreeSet<NodeId> {
        node.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    fn nodes(node: &TestNode) -> BTreeSet<NodeId> {
        node.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn admin_rejects_unsigned_forged_replayed_stale_and_mismatched_requests() {
        let mut peers = TestPeers::bind(&[1, 2]).await;
        let mut leader = start_leader(&mut peers, 1).await;
        let mut learner = start_node(&mut peers, 2).await;
        let mut client = leader.client().await;
        let before = (*leader.raft.metrics().borrow().membership_config).clone();
        let add = add_learner_cmd(&learner);

        // Unsigned.
        let mut unsigned = signed(1, add.clone());
        unsigned.signature.clear();
        let status = client.add_learner(unsigned).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status}");

        // Signed by a key the node does not trust.
        let forged = sign_admin_command(
            &AdminCommand {
                issued_unix_ms: now_ms(),
                command: Some(add.clone()),
                node_id: 1,
            },
            &SigningKey::from_bytes(&[7; 32]),
        );
        let status = client.add_learner(forged).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status}");

        // Body altered after signing.
        let mut altered = signed(1, add.clone());
        let last = altered.body.len() - 1;
        altered.body[last] ^= 1;
        let status = client.add_learner(altered).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status}");

        // Expired and from the future.
        for issued in [now_ms() - 10 * 60_000, now_ms() + 10 * 60_000] {
            let status = client
                .add_learner(signed_at(1, add.clone(), issued))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{status}");
        }

        // Malformed: garbage body and bad signature length.
        let status = client
            .add_learner(SignedAdminRequest {
                body: vec![0xff; 10],
                signature: vec![1; 10],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status}");

        // A signed ChangeMembership body sent to AddLearner.
        let change = Command::ChangeMembership(ChangeMembershipCommand {
            voter_ids: vec![1, 2],
        });
        let status = client.add_learner(signed(1, change)).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status}");

        // Nothing changed.
        assert_eq!(*leader.raft.metrics().borrow().membership_config, before);

        // A good request works once; the same bytes again are a replay.
        let good = signed(1, add);
        let response = client.add_learner(good.clone()).await.unwrap().into_inner();
        assert!(response.message.contains("learner"), "{}", response.message);
        assert_eq!(nodes(&leader), BTreeSet::from([1, 2]));
        let status = client.add_learner(good.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status}");

        // The same bytes replayed against another node of the cluster: refused, since
        // they name node 1 (node 2's replay cache has never seen them).
        let mut learner_client = learner.client().await;
        let status = learner_client.add_learner(good).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status}");
        assert!(
            status.message().contains("for node 1") && status.message().contains("node 2"),
            "{status}"
        );
        // A command naming no node is refused everywhere.
        let status = client
            .trigger_snapshot(signed(
                0,
                Command::TriggerSnapshot(TriggerSnapshotCommand {}),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status}");
        assert!(
            status.message().contains("names no target node"),
            "{status}"
        );
        // A refusal for another node consumes nothing: the request signed for node 1,
        // first sent to node 2, still works on node 1.
        let for_leader = signed(1, Command::TriggerSnapshot(TriggerSnapshotCommand {}));
        let status = learner_client
            .trigger_snapshot(for_leader.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status}");
        client.trigger_snapshot(for_leader).await.unwrap();

        // Arguments are checked.
        let status = client
            .add_learner(signed(
                1,
                Command::AddLearner(AddLearnerCommand {
                    node_id: 9,
                    address: "no port".into(),
                    ..Default::default()
                }),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status}");
        // A node that is not among the peers needs its peer address and pin, well formed.
        for (peer_address, tls_fingerprint) in [("", ""), ("127.0.0.1:2", "sha256:00")] {
            let status = client
                .add_learner(signed(
                    1,
                    Command::AddLearner(AddLearnerCommand {
                        node_id: 9,
                        address: "127.0.0.1:1".into(),
                        peer_address: peer_address.into(),
                        tls_fingerprint: tls_fingerprint.into(),
                    }),
                ))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status}");
        }
        let status = client
            .change_membership(signed(
                1,
                Command::ChangeMembership(ChangeMembershipCommand { voter_ids: vec![] }),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status}");
        // Unknown voter: openraft refuses.
        let status = client
            .change_membership(signed(
                1,
                Command::ChangeMembership(ChangeMembershipCommand {
                    voter_ids: vec![1, 9],
                }),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
        assert_eq!(voters(&leader), BTreeSet::from([1]));

        // A learner nobody can reach is added but does not catch up: DEADLINE_EXCEEDED
        // says so (the service is called directly, with a short timeout).
        let service = AdminService::new(leader.raft.clone(), vec![admin_key().verifying_key()])
            .with_learner_timeout(Duration::from_millis(500));
        let unreachable = Command::AddLearner(AddLearnerCommand {
            node_id: 3,
            address: "127.0.0.1:1".into(),
            peer_address: "127.0.0.1:1".into(),
            tls_fingerprint: crate::peer::Fingerprint::of(b"nobody").to_string(),
        });
        let status =
            admin_server::Admin::add_learner(&service, Request::new(signed(1, unreachable)))
                .await
                .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert!(status.message().contains("was added"), "{status}");
        assert_eq!(nodes(&leader), BTreeSet::from([1, 2, 3]));

        learner.stop().await;
        leader.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn admin_add_learner_change_membership_snapshot_and_campaign() {
        let mut peers = TestPeers::bind(&[1, 2]).await;
        let mut leader = start_leader(&mut peers, 1).await;
        let mut second = start_node(&mut peers, 2).await;
        let mut client = leader.client().await;

        let response = client
            .add_learner(signed(1, add_learner_cmd(&second)))
            .await
            .unwrap()
            .into_inner();
        assert!(
            response.message.contains("caught up"),
            "{}",
            response.message
        );
        assert_eq!(nodes(&leader), BTreeSet::from([1, 2]));
        assert_eq!(voters(&leader), BTreeSet::from([1]));

        // Campaign on a learner is refused; membership commands on a non-leader name the
        // leader.
        let mut second_client = second.client().await;
        let status = second_client
            .campaign(signed(2, Command::Campaign(CampaignCommand::default())))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
        let status = second_client
            .change_membership(signed(
                2,
                Command::ChangeMembership(ChangeMembershipCommand {
                    voter_ids: vec![1, 2],
                }),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
        assert!(
            status.message().contains("node 1") && status.message().contains(&leader.addr),
            "{status}"
        );

        let response = client
            .change_membership(signed(
                1,
                Command::ChangeMembership(ChangeMembershipCommand {
                    voter_ids: vec![1, 2],
                }),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(response.message.contains("voters"), "{}", response.message);
        assert_eq!(voters(&leader), BTreeSet::from([1, 2]));
        second
            .raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.membership_config.membership().voter_ids().count() == 2,
                "node 2 sees the new membership",
            )
            .await
            .unwrap();

        // Snapshot on the leader.
        let applied = leader.raft.metrics().borrow().last_applied.unwrap().index;
        let response = client
            .trigger_snapshot(signed(
                1,
                Command::TriggerSnapshot(TriggerSnapshotCommand {}),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            response.message.contains("snapshot"),
            "{}",
            response.message
        );
        leader
            .raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "leader builds a snapshot",
            )
            .await
            .unwrap();

        // Node 2, now a voter, campaigns: it starts an election in a new term (whether it
        // wins is up to the voters: a follower that hears from a live leader refuses).
        let term = second.raft.metrics().borrow().current_term;
        let response = second_client
            .campaign(signed(2, Command::Campaign(CampaignCommand::default())))
            .await
            .unwrap()
            .into_inner();
        assert!(
            response.message.contains("election"),
            "{}",
            response.message
        );
        second
            .raft
            .wait(Some(WAIT))
            .metrics(|m| m.current_term > term, "node 2 starts a new term")
            .await
            .unwrap();

        second.stop().await;
        leader.stop().await;
    }

    #[test]
    fn admin_replay_cache_expires_and_is_bounded() {
        let mut cache = ReplayCache::default();
        cache.insert([1; 64], 100, 200, 2).unwrap();
        assert_eq!(
            cache.insert([1; 64], 150, 250, 2).unwrap_err().code(),
            Code::AlreadyExists
        );
        cache.insert([2; 64], 150, 250, 2).unwrap();
        assert_eq!(
            cache.insert([3; 64], 160, 260, 2).unwrap_err().code(),
            Code::ResourceExhausted
        );
        // After the first expires, there is room again, and it is forgotten.
        cache.insert([3; 64], 200, 300, 2).unwrap();
        assert_eq!(cache.expiry_unix_ms.len(), 2);
    }

    #[test]
    fn admin_addresses_are_checked() {
        for good in ["127.0.0.1:7000", "node-a.example:1", "[::1]:80"] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for bad in ["", "host", ":80", "host:", "host:99999", "a b:1"] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
