//! The engine under every call: one lazily connected gRPC channel per configured
//! node, which node is tried next, which one is believed to lead, and the retry loop.
//!
//! A call that fails transiently (see `error::is_transient`) or gets no answer in
//! time is sent again, after an exponential backoff, to the next node, until the
//! total timeout. Writes go to the believed leader first; after
//! [`ClientOptions::leader_attempts`] failures there the same request goes round the
//! other nodes, so a leader that censors an entry cannot stop it reaching the others.
//! Answers are not judged here: the RPC wrappers (`rpc`) check what comes back.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bboard_core::pb;
use tonic::transport::{Channel, Endpoint};

use crate::error::is_transient;
use crate::{ClientError, ClientOptions};

/// The generated gRPC stub over a tonic channel.
pub(crate) type Grpc = bboard_proto::v1::board_client::BoardClient<Channel>;

struct Node {
    address: String,
    client: Grpc,
}

struct State {
    nodes: Vec<Node>,
    /// Node tried first for reads (and writes when the leader is unknown).
    current: usize,
    /// Index of the node believed to be the leader.
    leader: Option<usize>,
    /// Whether leader discovery ran.
    leader_checked: bool,
    /// Whether a current checkpoint verified under the policy before a first post.
    trust_checked: bool,
}

/// A client of a bboard cluster. Cheap to clone (clones share connections and the
/// knowledge of which node is the leader).
#[derive(Clone)]
pub struct BoardClient {
    options: Arc<ClientOptions>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for BoardClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardClient")
            .field("endpoints", &self.endpoints())
            .field("leader", &self.leader())
            .finish_non_exhaustive()
    }
}

fn make_client(address: &str, options: &ClientOptions) -> Result<Grpc, ClientError> {
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| ClientError::InvalidEndpoint {
            endpoint: address.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(options.per_request_timeout)
        .tcp_nodelay(true);
    Ok(
        bboard_proto::v1::board_client::BoardClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes),
    )
}

/// A request carrying a gRPC deadline.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

impl BoardClient {
    /// A client of the nodes at `endpoints` (`host:port`, or full `http(s)://` URIs).
    ///
    /// Connections are opened lazily, so nodes that are down now do not prevent
    /// connecting. Must be called inside a tokio runtime.
    pub async fn connect(
        endpoints: Vec<String>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoint);
        }
        let nodes = endpoints
            .into_iter()
            .map(|address| {
                let client = make_client(&address, &options)?;
                Ok(Node { address, client })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(BoardClient {
            options: Arc::new(options),
            state: Arc::new(Mutex::new(State {
                nodes,
                current: 0,
                leader: None,
                leader_checked: false,
                trust_checked: false,
            })),
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The configured node addresses.
    pub fn endpoints(&self) -> Vec<String> {
        self.lock()
            .nodes
            .iter()
            .map(|n| n.address.clone())
            .collect()
    }

    /// Address of the node believed to be the leader, if known.
    pub fn leader(&self) -> Option<String> {
        let state = self.lock();
        state
            .leader
            .and_then(|i| state.nodes.get(i))
            .map(|n| n.address.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether leader discovery has run (writes run it first otherwise).
    pub(crate) fn leader_checked(&self) -> bool {
        self.lock().leader_checked
    }

    /// Whether the trust configuration was checked against the board.
    pub(crate) fn trust_checked(&self) -> bool {
        self.lock().trust_checked
    }

    /// Records that the trust configuration matched the board.
    pub(crate) fn set_trust_checked(&self) {
        self.lock().trust_checked = true;
    }

    /// The node to try next: the leader for writes when known, else the current one.
    fn pick(&self, prefer_leader: bool) -> Result<(usize, String, Grpc), ClientError> {
        let state = self.lock();
        let index = match (prefer_leader, state.leader) {
            (true, Some(leader)) => leader,
            _ => state.current,
        };
        let node = state.nodes.get(index).ok_or(ClientError::NoEndpoint)?;
        Ok((index, node.address.clone(), node.client.clone()))
    }

    fn failed(&self, index: usize) {
        let mut state = self.lock();
        if state.leader == Some(index) {
            state.leader = None;
        }
        state.current = (index + 1) % state.nodes.len().max(1);
    }

    fn succeeded(&self, index: usize) {
        self.lock().current = index;
    }

    /// Sends a call built by `make_call` (given a stub and the time left for this
    /// attempt), retrying transient failures on the next node with backoff until
    /// the total timeout. Returns the address of the node that answered and its answer.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        prefer_leader: bool,
        mut make_call: F,
    ) -> Result<(String, T), ClientError>
    where
        F: FnMut(Grpc, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let deadline = start + self.options.total_timeout;
        let mut backoff = self.options.initial_backoff;
        let mut attempts = 0u32;
        let mut leader_failures = 0u32;
        let mut tried: Vec<String> = Vec::new();
        loop {
            let (index, address, client) = self.pick(prefer_leader)?;
            let to_leader = prefer_leader && self.lock().leader == Some(index);
            if !tried.contains(&address) {
                tried.push(address.clone());
            }
            let budget = if attempts == 0 {
                self.options.per_request_timeout
            } else {
                self.options
                    .per_request_timeout
                    .min(deadline.saturating_duration_since(Instant::now()))
            };
            attempts += 1;
            let last = match tokio::time::timeout(budget, make_call(client, budget)).await {
                Ok(Ok(response)) => {
                    self.succeeded(index);
                    return Ok((address, response.into_inner()));
                }
                Ok(Err(status)) if is_transient(&status) => {
                    format!("{address}: {:?}: {}", status.code(), status.message())
                }
                Ok(Err(status)) => return Err(ClientError::from_status(&address, &status)),
                Err(_) => format!("{address}: no answer within {budget:?}"),
            };
            if to_leader {
                leader_failures += 1;
            }
            // The leader keeps its retry budget; after it, the same request goes to
            // the other nodes in turn (round robin from the node after the leader).
            if !to_leader || leader_failures >= self.options.leader_attempts.max(1) {
                self.failed(index);
            }
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(ClientError::Timeout {
                    attempts,
                    elapsed: now - start,
                    last,
                    tried,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    /// One call to one node, no retry.
    pub(crate) async fn call_once<T, Fut>(
        &self,
        address: &str,
        call: impl FnOnce(Grpc, Duration) -> Fut,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let existing = self
            .lock()
            .nodes
            .iter()
            .find(|n| n.address == address)
            .map(|n| n.client.clone());
        let client = match existing {
            Some(client) => client,
            None => make_client(address, &self.options)?,
        };
        let timeout = self.options.per_request_timeout;
        match tokio::time::timeout(timeout, call(client, timeout)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(ClientError::from_status(address, &status)),
            Err(_) => Err(ClientError::Rpc {
                endpoint: address.to_string(),
                code: tonic::Code::DeadlineExceeded,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// Asks every configured node for its status and remembers which configured node
    /// is the leader: a node that says it is leader (highest term wins), else the
    /// configured node whose id or address the others name as leader. Returns its
    /// address, or `None` if no configured node is known to lead (writes then go to
    /// any node, which forwards them).
    pub async fn discover_leader(&self) -> Option<String> {
        let statuses: Vec<(usize, pb::StatusResponse)> = self
            .status_all()
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(i, (_, result))| result.ok().map(|s| (i, s)))
            .collect();
        let endpoints = self.endpoints();
        let self_declared = statuses
            .iter()
            .filter(|(_, s)| s.role == "leader")
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| *i);
        let named = || {
            let (_, newest) = statuses
                .iter()
                .filter(|(_, s)| s.leader_id != 0 || !s.leader_address.is_empty())
                .max_by_key(|(_, s)| s.term)?;
            statuses
                .iter()
                .find(|(_, s)| newest.leader_id != 0 && s.node_id == newest.leader_id)
                .map(|(i, _)| *i)
                .or_else(|| {
                    endpoints
                        .iter()
                        .position(|e| same_address(e, &newest.leader_address))
                })
        };
        let leader = self_declared.or_else(named);
        let mut state = self.lock();
        state.leader = leader;
        state.leader_checked = true;
        leader
            .and_then(|i| state.nodes.get(i))
            .map(|n| n.address.clone())
    }
}

/// Whether two `host:port` / URI strings name the same address.
fn same_address(a: &str, b: &str) -> bool {
    fn strip(s: &str) -> &str {
        let s = s.trim();
        let s = s.split_once("://").map_or(s, |(_, rest)| rest);
        s.trim_end_matches('/')
    }
    !b.trim().is_empty() && strip(a) == strip(b)
}
