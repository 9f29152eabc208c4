//! The peer port's listener: accepts TCP, completes a mutually authenticated TLS
//! handshake, and hands tonic connections that know which node is on the other end.
//!
//! A handshake that fails (no certificate, an unpinned one, plain gRPC, garbage)
//! closes the connection before a single gRPC byte is read. Handshakes run
//! concurrently, at most [`MAX_HANDSHAKES`] at a time and each for at most
//! [`HANDSHAKE_TIMEOUT`], so strangers cannot hold the port or the accept loop.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::directory::PeerDirectory;
use super::identity::Fingerprint;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most handshakes in progress at once; connections beyond it are closed at once.
pub const MAX_HANDSHAKES: usize = 64;

/// Who is on the other end of a peer-port connection: set by the handshake, read by
/// the Raft service from each request's extensions. The ids it may speak for are looked
/// up in the [`PeerDirectory`] per request, so a pin learned or replaced later applies
/// to open connections too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticatedPeer {
    /// The pinned certificate the client presented.
    pub fingerprint: Fingerprint,
    /// Its TCP address.
    pub remote: SocketAddr,
}

/// Counters of the peer port, for `/metrics`.
#[derive(Debug, Default)]
pub struct PeerPortCounters {
    /// Handshakes that failed or timed out.
    pub handshakes_failed: AtomicU64,
    /// Connections closed because [`MAX_HANDSHAKES`] were in progress.
    pub handshakes_shed: AtomicU64,
    /// Raft requests refused because the sender claimed to be another node.
    pub impersonations_refused: AtomicU64,
    /// Replicated Raft membership entries refused because no majority authorisation
    /// on the board covers them.
    pub membership_changes_refused: AtomicU64,
}

/// One authenticated connection on the peer port.
pub struct PeerConnection {
    stream: TlsStream<TcpStream>,
    peer: AuthenticatedPeer,
}

impl tonic::transport::server::Connected for PeerConnection {
    type ConnectInfo = AuthenticatedPeer;

    fn connect_info(&self) -> AuthenticatedPeer {
        self.peer
    }
}

impl AsyncRead for PeerConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections on `listener` until the returned stream is dropped, yielding
/// only those whose TLS handshake authenticated a pinned peer.
pub fn accept(
    listener: TcpListener,
    config: rustls::ServerConfig,
    peers: Arc<PeerDirectory>,
    counters: Arc<PeerPortCounters>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<PeerConnection>> {
    let (sender, receiver) = mpsc::channel(MAX_HANDSHAKES);
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = sender.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "peer port: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                counters.handshakes_shed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (acceptor, peers, counters, sender) = (
                acceptor.clone(),
                peers.clone(),
                counters.clone(),
                sender.clone(),
            );
            tokio::spawn(async move {
                let _permit = permit;
                match handshake(&acceptor, &peers, tcp, remote).await {
                    Ok(connection) => {
                        let _ = sender.send(Ok(connection)).await;
                    }
                    Err(reason) => {
                        counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%remote, %reason, "peer port: handshake refused");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Why a connection on the peer port was closed during its handshake.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    /// The client did not finish within [`HANDSHAKE_TIMEOUT`].
    #[error("handshake timed out")]
    Timeout,
    /// TLS failed: no certificate, an unpinned one, not TLS at all.
    #[error("{0}")]
    Tls(std::io::Error),
    /// The certificate's pin was removed during the handshake.
    #[error("no pinned client certificate")]
    NotPinned,
}

/// Completes one handshake and names the peer.
async fn handshake(
    acceptor: &TlsAcceptor,
    peers: &PeerDirectory,
    tcp: TcpStream,
    remote: SocketAddr,
) -> Result<PeerConnection, HandshakeError> {
    let _ = tcp.set_nodelay(true);
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Tls)?;
    // The verifier accepted the certificate, so it is pinned; checking again fails
    // closed if the pin was replaced meanwhile.
    let fingerprint = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|certificate| Fingerprint::of(certificate))
        .filter(|fingerprint| !peers.ids_of(fingerprint).is_empty())
        .ok_or(HandshakeError::NotPinned)?;
    Ok(PeerConnection {
        stream,
        peer: AuthenticatedPeer {
            fingerprint,
            remote,
        },
    })
}
