//! Serving: start-up and shutdown, shared by `main` and the tests so both run the same server.
//!
//! - [`Server`]: binds, serves until told to stop, drains.
//! - `connection.rs`: the service behind each connection (what every request learns about its
//!   connection, and `Connection: close` while draining).
//! - `drain.rs`: the draining signal, and how each connection ends once it is given.
//! - `socket.rs`: every socket watched for clients that stop reading or sit idle.
//! - `limits.rs`: how many connections the open-files limit allows, and the answer to the ones
//!   beyond.

mod connection;
mod drain;
mod limits;
mod socket;

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::Semaphore,
};
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use self::{connection::ConnectionService, drain::serve_until_drained, limits::Refusals};
pub use self::{
    drain::Draining,
    limits::{HEADROOM, connection_cap},
    socket::{Activity, DRAIN_SEND_TIMEOUT, SocketLimits, WatchedSocket},
};
pub use crate::client::ClientAddr;
use crate::{
    Live,
    registry::{SocketControl, WeakRegistry},
    settings::Settings,
};

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    live: Live,
    settings: Settings,
}

impl Server {
    /// Listens on the socket the service manager passed (systemd socket activation, or
    /// `systemfd`: `LISTEN_FDS`), or else binds `HOST:PORT` from `settings` (port 0 picks a free
    /// port) with a listen backlog of `LISTEN_BACKLOG`; for the app whose kit state is `live`.
    /// First raises the process's open-files limit as far as the system allows: every stream
    /// holds a socket, and the usual soft limit (1 024) would cap the server far below what it
    /// can serve.
    ///
    /// An inherited socket outlives the process: while one process stops and the next starts,
    /// connections wait in the kernel's queue instead of being refused, so a restart loses
    /// nothing — as long as the queue holds them all. So its queue is set to `LISTEN_BACKLOG`
    /// too, whatever the launcher asked for (see [`from_listener`](Self::from_listener)).
    pub async fn bind(settings: &Settings, live: Live) -> io::Result<Self> {
        let mut passed = listenfd::ListenFd::from_env();
        if let Some(listener) = passed.take_tcp_listener(0)? {
            tracing::info!(addr = ?listener.local_addr().ok(), "serving on an inherited socket");
            return Self::from_listener(listener, settings, live);
        }
        prepare(settings)?;
        Ok(Server {
            listener: bind(settings)?,
            live,
            settings: settings.clone(),
        })
    }

    /// Like [`bind`](Self::bind), on a listening socket made elsewhere (`HOST` and `PORT` are
    /// not used): a socket passed by another scheme than `LISTEN_FDS`, or one a test keeps open
    /// across two servers, as a service manager would.
    ///
    /// The socket's queue of not yet accepted connections is set to `LISTEN_BACKLOG` (Linux
    /// lets a listening socket be given a new one). Between the old process's exit and the new
    /// one's first accept, every reconnecting tab waits in that queue; a launcher that asked for
    /// no more than the usual 128 would let the rest overflow it, and an overflowed connection
    /// is not refused — the kernel drops its handshake and it waits on retransmissions, 1, 3,
    /// 7, 15 seconds and more, looking open to the client and answered by nobody.
    pub fn from_listener(
        listener: std::net::TcpListener,
        settings: &Settings,
        live: Live,
    ) -> io::Result<Self> {
        prepare(settings)?;
        let backlog = i32::try_from(settings.listen_backlog).unwrap_or(i32::MAX);
        if let Err(error) = socket2::SockRef::from(&listener).listen(backlog) {
            tracing::warn!(%error, backlog, "cannot set the inherited socket's queue");
        }
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener: TcpListener::from_std(listener)?,
            live,
            settings: settings.clone(),
        })
    }

    /// The address actually bound (tells tests which port they got).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What `main` does: announces the address, serves `router` until Ctrl-C or SIGTERM, then
    /// shuts down gracefully.
    pub async fn serve(self, router: Router) -> anyhow::Result<()> {
        // Installed before the announcement: a SIGTERM right after start must still shut
        // down gracefully.
        let shutdown = shutdown_signal().context("cannot listen for shutdown signals")?;
        tracing::info!("listening on http://{}", self.local_addr()?);
        self.run(router, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Serves until `shutdown` completes, then stops accepting, ends every open stream, lets
    /// in-flight requests finish (for at most `SHUTDOWN_TIMEOUT_SECS`), and returns.
    ///
    /// Ending the streams is what lets the graceful shutdown finish: hyper waits for every
    /// response body to end, and a stream's body only ends when its connection leaves the
    /// registry. Clients that do not read their last bytes are not waited for: every socket is
    /// a [`WatchedSocket`], and while draining a blocked write fails after
    /// [`DRAIN_SEND_TIMEOUT`].
    ///
    /// The accept loop is axum's `serve-with-hyper` pattern rather than `axum::serve`, for
    /// one reason: `axum::serve` always uses hyper-util's auto builder (HTTP/1 or HTTP/2 by
    /// sniffing each connection), which keeps extra buffers per connection. Browsers reach an
    /// app like this over HTTP/1.1 (HTTP/2 needs TLS, which a proxy terminates), so an HTTP/1
    /// connection is enough. Measured with `benches/fanout.rs` at 10 000 streams: 22.1 KiB
    /// per stream with `axum::serve`, 16.2 KiB with this loop.
    pub async fn run(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let registry = self.live.registry.clone();
        let grace = self.settings.shutdown_timeout;
        let limits = SocketLimits {
            send_timeout: self.settings.send_timeout,
            keep_alive_timeout: self.settings.keep_alive_timeout,
        };
        let client_ip_header = self.settings.client_ip_header.clone();
        let draining = Draining::new();
        // One timer for the keep-alive comments of every stream.
        let _keep_alive = AbortOnDropHandle::new(tokio::spawn(keep_alive(
            registry.downgrade(),
            self.settings.keep_alive,
        )));
        let cap = connection_cap(&self.settings)?;
        if self.settings.max_streams > cap {
            tracing::warn!(
                max_streams = self.settings.max_streams,
                max_connections = cap,
                "MAX_STREAMS is above the connection cap: the cap wins"
            );
        }
        let permits = Arc::new(Semaphore::new(cap));
        let refusals = Refusals::new();
        // Debug builds: push template and stylesheet changes to open tabs while serving.
        #[cfg(debug_assertions)]
        let _watcher = match self.settings.dev.watch {
            true => match crate::dev::watch(self.live.clone()) {
                Ok(watcher) => Some(watcher),
                Err(error) => {
                    tracing::warn!(%error, "cannot watch templates and static files");
                    None
                }
            },
            false => None,
        };
        let app = router;
        let connections = TaskTracker::new();
        let first_request_window = FIRST_REQUEST_WINDOW.min(self.settings.header_read_timeout);
        let mut http = http1::Builder::new();
        // Without a timer hyper's header-read timeout never fires, and a connection that
        // sends nothing (or a byte now and then) stays open for good.
        http.timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_read_timeout);
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, or this loop spins.
                        tracing::error!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // One permit per open connection: beyond the cap, a short answer instead of
            // running into the open-files limit.
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                refusals.refuse(tcp, cap);
                continue;
            };
            // Events are small and latency matters more than packet count.
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            let control = SocketControl::new();
            let activity = Arc::new(Activity::default());
            let socket = WatchedSocket::new(
                tcp,
                control.clone(),
                Arc::clone(&activity),
                limits,
                draining.clone(),
            );
            let service = ConnectionService {
                router: app.clone(),
                control,
                activity: Arc::clone(&activity),
                peer: peer.ip(),
                client_ip_header: client_ip_header.clone(),
                draining: draining.clone(),
            };
            let connection = http.serve_connection(TokioIo::new(socket), service);
            let draining = draining.clone();
            connections.spawn(async move {
                let result =
                    serve_until_drained(connection, &activity, &draining, first_request_window)
                        .await;
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(self.listener); // stop accepting
        // Every stream is told to come back soon: with an inherited socket, the next process
        // is already taking the connections.
        let closed = registry.shut_down(&crate::events::restarting());
        draining.start();
        tracing::info!(closed, "shutting down: streams ended, finishing requests");
        let deadline = tokio::time::Instant::now() + grace;
        connections.close();
        if tokio::time::timeout_at(deadline, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "requests still running after the shutdown timeout: exiting"
            );
        }
        // What the last requests published must reach the other instances before this one
        // goes: a greeting answered with 200 and then lost would be a lie.
        if let Some(relay) = registry.relay()
            && tokio::time::timeout_at(deadline, relay.flush())
                .await
                .is_err()
        {
            tracing::warn!("broadcasts still unpublished at the shutdown timeout: exiting");
        }
        Ok(())
    }
}

/// How long a connection accepted just before shutdown, with no request yet, may take to send
/// one (at most `HEADER_READ_TIMEOUT_SECS`).
pub const FIRST_REQUEST_WINDOW: Duration = Duration::from_secs(1);

/// Has the registry send a keep-alive comment to its quiet streams every `period`, for as long
/// as it exists.
async fn keep_alive(registry: WeakRegistry, period: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        registry.keep_alive();
    }
}

/// What serving needs before it has a socket: settings that can be used, and as many open
/// files as the system allows.
fn prepare(settings: &Settings) -> io::Result<()> {
    settings
        .validate()
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    raise_open_files_limit();
    Ok(())
}

/// A socket of our own on `HOST:PORT`.
fn bind(settings: &Settings) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(settings.host, settings.port);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Restarting must not wait for the old process's sockets to leave TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // `TcpListener::bind` would use a small fixed backlog; a reconnect storm after a deploy
    // then waits seconds on SYN retries.
    socket.listen(settings.listen_backlog)
}

/// Raises the open-files limit to the hard limit the system allows.
pub fn raise_open_files_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
    }
}

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM (what orchestrators send).
///
/// The handlers are installed when this is *called*, not when the future is first polled: call
/// it before announcing the server, or a SIGTERM that arrives in between kills the process
/// without a graceful shutdown.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("Ctrl-C received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
