//! Test-only: serving gRPC services on a listener until told to stop, shared by the
//! unit tests of `admin` and `network` (integration tests use `bboard-testkit`, which
//! unit tests cannot: they would see a second copy of this crate's types).

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

/// Serves `routes` on `listener`; sending on (or dropping) the returned sender stops it.
pub(crate) fn serve_until_stopped(
    listener: TcpListener,
    routes: Routes,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, server)
}

/// Serves `routes` on the peer port `listener` (mutual TLS with `channels`' pins);
/// sending on (or dropping) the returned sender stops it.
pub(crate) fn serve_peer_port_until_stopped(
    listener: TcpListener,
    routes: Routes,
    channels: &crate::peer::PeerChannels,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let server = crate::peer::serve(listener, routes, channels, async {
        let _ = stopped.await;
    })
    .unwrap();
    let server = tokio::spawn(async move { server.await.unwrap().unwrap() });
    (stop, server)
}

/// Peer ports of a test cluster, bound before any node starts so that every node can
/// pin every other one: a listener and a fresh TLS identity per node id.
pub(crate) struct TestPeers {
    listeners: std::collections::BTreeMap<crate::types::NodeId, TcpListener>,
    identities: std::collections::BTreeMap<crate::types::NodeId, crate::peer::TlsIdentity>,
    endpoints: std::collections::BTreeMap<crate::types::NodeId, crate::peer::PeerEndpoint>,
}

impl TestPeers {
    /// Binds a peer port on 127.0.0.1 and makes an identity for each of `ids`.
    pub(crate) async fn bind(ids: &[crate::types::NodeId]) -> Self {
        let mut peers = TestPeers {
            listeners: Default::default(),
            identities: Default::default(),
            endpoints: Default::default(),
        };
        for &id in ids {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let identity = crate::peer::TlsIdentity::generate(id).unwrap();
            peers.endpoints.insert(
                id,
                crate::peer::PeerEndpoint {
                    address: listener.local_addr().unwrap().to_string(),
                    fingerprint: identity.fingerprint(),
                },
            );
            peers.listeners.insert(id, listener);
            peers.identities.insert(id, identity);
        }
        peers
    }

    /// The peer address of `id`.
    pub(crate) fn address(&self, id: crate::types::NodeId) -> String {
        self.endpoints[&id].address.clone()
    }

    /// Node `id`'s outgoing channels: its identity, every node's pin.
    pub(crate) fn channels(
        &self,
        id: crate::types::NodeId,
    ) -> std::sync::Arc<crate::peer::PeerChannels> {
        std::sync::Arc::new(crate::peer::PeerChannels::new(
            self.identities[&id].clone(),
            self.endpoints.clone(),
        ))
    }

    /// Node `id`'s peer-port listener (once).
    pub(crate) fn take_listener(&mut self, id: crate::types::NodeId) -> TcpListener {
        self.listeners.remove(&id).unwrap()
    }
}
