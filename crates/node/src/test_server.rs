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
