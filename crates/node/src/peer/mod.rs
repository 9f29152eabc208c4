//! The peer port: the second listener where Raft and cosigning travel, open only to
//! the nodes configured as peers, over mutually authenticated TLS.
//!
//! - [`identity`]: a node's self-signed certificate and the [`Fingerprint`] other
//!   organisations pin it by (`tls_fingerprint` in each `[[peers]]` entry);
//! - [`tls`]: verifiers that accept exactly the pinned certificates, and the rustls
//!   configurations (TLS 1.3, client certificates mandatory);
//! - [`listener`]: the accept loop, bounded handshakes, and [`AuthenticatedPeer`],
//!   the identity the Raft service binds each request's claimed sender to;
//! - [`directory`]: each peer id's address and pin, from the config and then from the
//!   Raft membership;
//! - [`channels`]: one reused outgoing channel per peer.
//!
//! *Invariant:* every byte the node's Raft or cosigner reads from the network came
//! over a connection whose client certificate is pinned to a configured node id.

pub mod channels;
pub mod directory;
pub mod identity;
pub mod listener;
pub mod tls;

pub use channels::PeerChannels;
pub use directory::{PeerDirectory, PeerEndpoint};
pub use identity::{Fingerprint, TlsIdentity};
pub use listener::{AuthenticatedPeer, PeerPortCounters};

use std::future::Future;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves `routes` (the Raft service) on the peer port `listener` until `shutdown`
/// completes: only connections whose handshake authenticated one of `channels`'
/// pinned peers reach them.
pub fn serve(
    listener: TcpListener,
    routes: tonic::service::Routes,
    channels: &PeerChannels,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, tls::TlsConfigError> {
    let directory = channels.directory().clone();
    let connections = listener::accept(
        listener,
        tls::server_config(channels.identity(), directory.clone())?,
        directory,
        channels.counters().clone(),
    );
    Ok(tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(connections, shutdown),
    ))
}
