//! The accept loop: every connection on the public port and the redirect port, admitted or
//! refused, served on a task of its own, until shutdown.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::{accepted::Serving, connection_limits::ConnectionLimits};

/// The sockets a server accepts on, each with how its connections are served.
pub(super) struct Listeners {
    pub(super) app: (TcpListener, Arc<Serving>),
    /// `HTTP_REDIRECT_PORT`.
    pub(super) redirect: Option<(TcpListener, Arc<Serving>)>,
}

impl Listeners {
    /// Accepts until `shutdown` completes, each connection served on a task of `connections`;
    /// then stops accepting (the sockets are closed on return: a next process, started while
    /// this one drains, binds the same addresses).
    pub(super) async fn accept_until(
        self,
        shutdown: impl Future<Output = ()>,
        limits: &ConnectionLimits,
        connections: &TaskTracker,
    ) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = self.app.0.accept() => accepted.map(|(tcp, peer)| (tcp, peer, &self.app.1)),
                accepted = accept(self.redirect.as_ref()) => accepted,
                () = &mut shutdown => return,
            };
            let (tcp, peer, serving) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, or this loop spins.
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some((tcp, admitted)) = limits.admit(tcp, peer, serving.is_tls()) else {
                continue;
            };
            // Events are small and latency matters more than packet count.
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            let serving = Arc::clone(serving);
            connections.spawn(async move {
                serving.serve(tcp, peer).await;
                drop(admitted);
            });
        }
    }
}

/// The next connection on the redirect port; never, without one.
async fn accept(
    listener: Option<&(TcpListener, Arc<Serving>)>,
) -> io::Result<(TcpStream, SocketAddr, &Arc<Serving>)> {
    match listener {
        Some((listener, serving)) => listener
            .accept()
            .await
            .map(|(tcp, peer)| (tcp, peer, serving)),
        None => std::future::pending().await,
    }
}
