//! Serving: start-up and shutdown, shared by `main` and the tests so both run the same server.
//!
//! - [`Server`]: binds, serves until told to stop, drains.
//! - `connection_limits.rs`: who gets a connection (per client network, under a cap the
//!   open-files limit allows), and the short answer to the ones beyond.
//! - `accepting.rs`: the accept loop over the public and redirect ports.
//! - `background.rs`: what runs beside the connections (keep-alive timer, metrics, trim, ACME,
//!   `SIGHUP` reload, dev watcher).
//! - `accepted.rs`: one connection from accept to close: the TLS handshake (HTTPS), HTTP/2 or
//!   HTTP/1.1, the drain.
//! - `service.rs`: the service behind each connection (what every request learns about its
//!   connection, and `Connection: close` while draining).
//! - `http2.rs` (HTTPS): each HTTP/2 stream held to the limits a connection is held to.
//! - `redirect.rs`: the plain-HTTP port of an HTTPS server.
//! - `drain.rs`: the draining signal, how each connection ends once it is given, and the
//!   drain's finish.
//! - `activity.rs`: the requests in flight on a connection, which draining and its socket ask
//!   about.
//! - `watched_socket.rs`: every socket watched for clients that stop reading or sit idle.
//! - `trim.rs`: memory given back to the system once a flood of connections has gone.
//! - `prepare.rs`: before serving — settings checked, certificates read, sockets bound.

mod accepted;
mod accepting;
mod activity;
mod background;
mod connection_limits;
mod drain;
#[cfg(feature = "tls")]
mod http2;
mod prepare;
mod redirect;
mod service;
mod trim;
mod watched_socket;

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

#[cfg(feature = "tls")]
pub use self::http2::{
    CONNECTION_WINDOW, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, STREAM_WINDOW,
};
pub use self::prepare::raise_open_files_limit;
use self::{
    accepted::Serving,
    accepting::Listeners,
    background::Background,
    connection_limits::ConnectionLimits,
    drain::Draining,
    prepare::{AcmeDriver, Prepared, bind, bind_metrics, prepare},
};
pub use crate::client_addr::ClientAddr;
use crate::{settings::Settings, state::Live, tls::Tls};

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// `HTTP_REDIRECT_PORT`: the plain port that redirects to HTTPS.
    redirect: Option<TcpListener>,
    /// `TLS_CERT` and `TLS_KEY`, or ACME: the server speaks HTTPS. (Never, in a build
    /// without the feature `tls`: there, no `Tls` can exist.)
    tls: Option<Tls>,
    /// With ACME: the task that gets and renews the certificate, run while serving.
    acme: Option<AcmeDriver>,
    /// `METRICS_ADDR`: where Prometheus scrapes `/metrics`, apart from the public port.
    metrics: Option<TcpListener>,
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
            let mut server = Self::from_listener(listener, settings, live)?;
            // A second socket passed along is the redirect port's (a socket unit with two
            // `ListenStream=` lines, in that order).
            if let Some(redirect) = passed.take_tcp_listener(1)? {
                // The socket unit decides the port, as it does the main one's.
                if server.scheme() != "https" {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a second socket was passed (the HTTPS redirect port's), but TLS_CERT \
                         and TLS_KEY are not set: there is no HTTPS to redirect to",
                    ));
                }
                redirect.set_nonblocking(true)?;
                server.redirect = Some(TcpListener::from_std(redirect)?);
            } else if let Some(port) = settings.http_redirect_port {
                server.redirect = Some(bind(settings, port)?);
            }
            return Ok(server);
        }
        let prepared = prepare(settings)?;
        let redirect = match settings.http_redirect_port {
            Some(port) => Some(bind(settings, port)?),
            None => None,
        };
        Server::new(
            bind(settings, settings.port)?,
            redirect,
            prepared,
            settings,
            live,
        )
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
        let prepared = prepare(settings)?;
        let backlog = i32::try_from(settings.listen_backlog).unwrap_or(i32::MAX);
        if let Err(error) = socket2::SockRef::from(&listener).listen(backlog) {
            tracing::warn!(%error, backlog, "cannot set the inherited socket's queue");
        }
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        Server::new(listener, None, prepared, settings, live)
    }

    /// The one constructor: `listener` (and the redirect port's), prepared to serve, and the
    /// metrics port bound.
    fn new(
        listener: TcpListener,
        redirect: Option<TcpListener>,
        prepared: Prepared,
        settings: &Settings,
        live: Live,
    ) -> io::Result<Self> {
        Ok(Server {
            listener,
            redirect,
            tls: prepared.tls,
            acme: prepared.acme,
            metrics: bind_metrics(settings)?,
            live,
            settings: settings.clone(),
        })
    }

    /// The address actually bound (tells tests which port they got).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the redirect port, if there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref()?.local_addr().ok()
    }

    /// The address Prometheus scrapes, with `METRICS_ADDR` (port 0 picks a free port).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref()?.local_addr().ok()
    }

    /// The certificate and key in use, with HTTPS (for tests, and whoever wants to reload
    /// them without `SIGHUP`).
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// `https` or `http`: what the main port speaks.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// What `main` does: announces the address, serves `router` until Ctrl-C or SIGTERM, then
    /// shuts down gracefully.
    pub async fn serve(self, router: Router) -> anyhow::Result<()> {
        // Installed before the announcement: a SIGTERM right after start must still shut
        // down gracefully.
        let shutdown = shutdown_signal().context("cannot listen for shutdown signals")?;
        // Under `cargo dev`: show its builds on the open tabs, and stop when it goes away.
        let shutdown = crate::dev::runner::or_gone(shutdown, self.live.clone());
        tracing::info!("listening on {}://{}", self.scheme(), self.local_addr()?);
        if let Some(redirect) = self.redirect_addr() {
            tracing::info!("redirecting http://{redirect} to HTTPS");
        }
        if let Some(metrics) = self.metrics_addr() {
            tracing::info!("metrics on http://{metrics}/metrics");
        }
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
    /// watched (`watched_socket.rs`), and while draining a blocked write fails after a second
    /// (`DRAIN_SEND_TIMEOUT` in `drain.rs`).
    ///
    /// The steps of a server's life: the connection limits and the background tasks start,
    /// the listeners accept until `shutdown` (`accepting.rs`), the metrics port closes, and the
    /// drain ends every stream and waits for the rest (`drain.rs`).
    ///
    /// The accept loop is axum's `serve-with-hyper` pattern rather than `axum::serve`, for
    /// one reason: `axum::serve` always uses hyper-util's auto builder (HTTP/1 or HTTP/2 by
    /// sniffing each connection), which keeps extra buffers per connection. A plain connection
    /// is HTTP/1.1 (browsers speak HTTP/2 only over TLS); over TLS, ALPN says which, before
    /// the first byte of HTTP (`accepted.rs`). Measured with `examples/fanout.rs` in the
    /// template repository at 10 000 streams: 22.1 KiB per stream with `axum::serve`, 16.2 KiB
    /// with this loop.
    pub async fn run(
        mut self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let registry = self.live.registry.clone();
        registry.serving_at(self.local_addr()?);
        let grace = self.settings.shutdown_timeout;
        let limits = ConnectionLimits::new(&self.settings)?;
        let mut background = Background::start(
            &self.live,
            &self.settings,
            self.acme.take(),
            self.tls.clone(),
            self.metrics.take(),
            &limits,
        )?;
        let draining = Draining::new();
        let listeners = self.into_listeners(router, &draining)?;
        let connections = TaskTracker::new();
        listeners
            .accept_until(shutdown, &limits, &connections)
            .await;
        background.stop_metrics();
        drain::finish(&registry, &draining, connections, grace).await;
        Ok(())
    }

    /// The public port, serving `router` (over HTTPS, with TLS), and the redirect port, if
    /// any, serving the redirect (and `router`, until HTTPS has a certificate).
    fn into_listeners(self, router: Router, draining: &Draining) -> io::Result<Listeners> {
        let mut http1 = http1::Builder::new();
        // Without a timer hyper's header-read timeout never fires, and a connection that
        // sends nothing (or a byte now and then) stays open for good.
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_read_timeout);
        let serving = |router: Router, https: bool| {
            Arc::new(Serving {
                router,
                tls: self.tls.clone().filter(|_| https),
                settings: self.settings.clone(),
                draining: draining.clone(),
                first_request_window: FIRST_REQUEST_WINDOW.min(self.settings.header_read_timeout),
                http1: http1.clone(),
            })
        };
        // Until HTTPS has a certificate (ACME, before its first), the plain port serves the
        // app rather than send browsers where nothing can answer them.
        let tls = self.tls.clone();
        let https_ready: redirect::Ready = Arc::new(move || tls.as_ref().is_none_or(Tls::is_ready));
        let redirect = serving(
            redirect::router(
                self.local_addr()?.port(),
                // With ACME the served names are known: the redirect leads nowhere else.
                redirect::Names::only(
                    self.settings
                        .acme
                        .as_ref()
                        .map_or(&[][..], |acme| &acme.domains),
                ),
                self.settings.acme_challenge_dir.clone(),
                router.clone(),
                https_ready,
            ),
            false,
        );
        let app = serving(router, true);
        Ok(Listeners {
            app: (self.listener, app),
            redirect: self.redirect.map(|listener| (listener, redirect)),
        })
    }
}

/// How long a connection accepted just before shutdown, with no request yet, may take to send
/// one (at most `HEADER_READ_TIMEOUT_SECS`).
pub const FIRST_REQUEST_WINDOW: Duration = Duration::from_secs(1);

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
