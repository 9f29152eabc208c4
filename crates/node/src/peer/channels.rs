//! Outgoing peer connections: one lazily connected, mutually authenticated gRPC
//! channel per peer, shared by Raft replication and cosigning and reused for every
//! request (tonic multiplexes HTTP/2 streams and reconnects by itself).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

use super::directory::{PeerDirectory, PeerEndpoint};
use super::identity::{certificate_name, TlsIdentity};
use super::listener::PeerPortCounters;
use super::tls::{client_config, TlsConfigError};
use crate::types::NodeId;

/// Timeout for establishing a TCP connection and its TLS handshake to a peer.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why no channel to a peer could be made.
#[derive(Debug, thiserror::Error)]
pub enum PeerChannelError {
    /// The node is not configured as a peer: without its pin it cannot be reached.
    #[error("node {0} is not configured as a peer (no peer address or TLS fingerprint)")]
    UnknownPeer(NodeId),
    /// Its peer address is not a valid `host:port`.
    #[error("invalid peer address {address:?} of node {node}: {source}")]
    InvalidAddress {
        /// The node.
        node: NodeId,
        /// The address as configured.
        address: String,
        /// Why tonic refused it.
        #[source]
        source: tonic::transport::Error,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

/// This node's outgoing peer connections.
pub struct PeerChannels {
    identity: TlsIdentity,
    directory: Arc<PeerDirectory>,
    /// Each channel with the endpoint it was made for: a changed endpoint makes a new one.
    channels: Mutex<HashMap<NodeId, (PeerEndpoint, Channel)>>,
    counters: Arc<PeerPortCounters>,
}

impl std::fmt::Debug for PeerChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerChannels")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl PeerChannels {
    /// Channels presenting `identity` to the peers at `endpoints` (and to those
    /// learned later).
    pub fn new(identity: TlsIdentity, endpoints: BTreeMap<NodeId, PeerEndpoint>) -> Self {
        PeerChannels {
            identity,
            directory: Arc::new(PeerDirectory::new(endpoints)),
            channels: Mutex::new(HashMap::new()),
            counters: Arc::default(),
        }
    }

    /// The peer port's counters (for `/metrics`).
    pub fn counters(&self) -> &Arc<PeerPortCounters> {
        &self.counters
    }

    /// The peers: who the peer server admits, as which ids.
    pub fn directory(&self) -> &Arc<PeerDirectory> {
        &self.directory
    }

    /// The identity this node presents.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// The peer address of `node`, for messages.
    pub fn address_of(&self, node: NodeId) -> Option<String> {
        self.directory.endpoint(node).map(|e| e.address)
    }

    /// The shared channel to `node`, made on first use. No connection is opened until
    /// the first request.
    pub fn channel(&self, node: NodeId) -> Result<Channel, PeerChannelError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let endpoint = self
            .directory
            .endpoint(node)
            .ok_or(PeerChannelError::UnknownPeer(node))?;
        if let Some((made_for, channel)) = channels.get(&node) {
            if *made_for == endpoint {
                return Ok(channel.clone());
            }
        }
        let channel = self.connect_lazy(node, &endpoint)?;
        channels.insert(node, (endpoint, channel.clone()));
        Ok(channel)
    }

    fn connect_lazy(
        &self,
        node: NodeId,
        endpoint: &PeerEndpoint,
    ) -> Result<Channel, PeerChannelError> {
        let invalid = |source| PeerChannelError::InvalidAddress {
            node,
            address: endpoint.address.clone(),
            source,
        };
        let config = Arc::new(client_config(&self.identity, endpoint.fingerprint)?);
        let address = endpoint.address.clone();
        // The name is only sent as SNI; the pin, not the name, authenticates the peer.
        let server_name = ServerName::try_from(certificate_name(node))
            .map_err(|_| PeerChannelError::UnknownPeer(node))?;
        let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
            let (config, address, server_name) =
                (config.clone(), address.clone(), server_name.clone());
            async move {
                let connect = async {
                    let tcp = tokio::net::TcpStream::connect(&address).await?;
                    tcp.set_nodelay(true)?;
                    tokio_rustls::TlsConnector::from(config)
                        .connect(server_name, tcp)
                        .await
                };
                match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(Ok(stream)) => Ok(TokioIo::new(stream)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting to {address} took over {CONNECT_TIMEOUT:?}"),
                    )),
                }
            }
        });
        // The scheme is `http` because the connector already speaks TLS.
        Ok(
            Endpoint::from_shared(format!("http://{}", endpoint.address))
                .map_err(invalid)?
                .connect_timeout(CONNECT_TIMEOUT)
                .connect_with_connector_lazy(connector),
        )
    }
}
