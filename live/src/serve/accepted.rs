//! One accepted connection, from its first byte to its close: the TLS handshake (with HTTPS),
//! the protocol — HTTP/2 when the client picks it through ALPN, HTTP/1.1 otherwise — and the
//! drain at shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

use super::{
    activity::Activity,
    drain::{Draining, serve_until_drained},
    service::ConnectionService,
    watched_socket::{SocketLimits, WatchedSocket},
};
use crate::{registry::SocketControl, settings::Settings, tls::Tls};

/// How every connection of one listener is served.
pub(super) struct Serving {
    pub(super) router: Router,
    /// Set for HTTPS: every connection starts with a handshake.
    pub(super) tls: Option<Tls>,
    pub(super) settings: Settings,
    pub(super) draining: Draining,
    /// How long a connection accepted just before shutdown, with no request yet, may take to
    /// send one.
    pub(super) first_request_window: Duration,
    pub(super) http1: http1::Builder,
}

impl Serving {
    /// Whether every connection starts with a TLS handshake (so a refusal must be a TLS alert).
    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn limits(&self) -> SocketLimits {
        SocketLimits {
            send_timeout: self.settings.send_timeout,
            keep_alive_timeout: self.settings.keep_alive_timeout,
        }
    }

    /// Serves the connection `tcp` from `peer` until it closes.
    pub(super) async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let control = SocketControl::new();
        let activity = Arc::new(Activity::default());
        let socket = WatchedSocket::new(
            tcp,
            control.clone(),
            Arc::clone(&activity),
            self.limits(),
            self.draining.clone(),
        );
        let service = ConnectionService {
            router: self.router.clone(),
            control,
            activity: Arc::clone(&activity),
            peer: peer.ip(),
            client_ip_header: self.settings.client_ip_header.clone(),
            networks: self.settings.client_networks,
            draining: self.draining.clone(),
            https: false,
            streams: None,
        };
        // Boxed: a task's future is as large as its largest state, and a TLS session (with
        // HTTP/2's state on top) would make every plain connection's task that large too.
        if let Some(tls) = &self.tls {
            return Box::pin(self.serve_tls(tls, socket, service, &activity)).await;
        }
        self.serve_http1(socket, service, &activity).await;
    }

    /// The handshake, within the header-read timeout (a client that starts one and never
    /// finishes holds a socket and a permit like one that never finishes its headers), then
    /// the protocol the client picked.
    #[cfg(feature = "tls")]
    async fn serve_tls(
        &self,
        tls: &Tls,
        socket: WatchedSocket,
        service: ConnectionService,
        activity: &Activity,
    ) {
        let handshake = tokio::time::timeout(
            self.settings.header_read_timeout,
            tls.acceptor().accept(socket),
        );
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake not finished within the header-read timeout");
                return;
            }
        };
        let service = ConnectionService {
            https: true,
            ..service
        };
        // ACME's TLS-ALPN-01 validation: the handshake (with its challenge certificate) was
        // all it came for.
        #[cfg(feature = "acme")]
        if tls.get_ref().1.alpn_protocol() == Some(crate::tls::acme::CHALLENGE_ALPN) {
            tracing::debug!("ACME challenge handshake answered");
            return;
        }
        if tls.get_ref().1.alpn_protocol() == Some(crate::tls::H2) {
            // Boxed for the same reason as the TLS session: HTTP/2's state is larger than
            // HTTP/1.1's, and a connection over HTTP/1.1 need not carry room for it.
            Box::pin(self.serve_http2(tls, service, activity)).await;
        } else {
            self.serve_http1(tls, service, activity).await;
        }
    }

    /// Without the feature `tls`, no `Tls` exists, so this never runs.
    #[cfg(not(feature = "tls"))]
    async fn serve_tls(&self, tls: &Tls, _: WatchedSocket, _: ConnectionService, _: &Activity) {
        match *tls {}
    }

    /// HTTP/2 over `tls`: each stream watched (`http2.rs`), idle connections sent a GOAWAY.
    #[cfg(feature = "tls")]
    async fn serve_http2(
        &self,
        mut tls: tokio_rustls::server::TlsStream<WatchedSocket>,
        service: ConnectionService,
        activity: &Activity,
    ) {
        let socket = tls.get_mut().0;
        socket.leave_idle_to_connection();
        socket.carries_streams();
        let next = super::service::NextStream::default();
        let executor = super::http2::StreamExecutor {
            next: next.clone(),
            send_timeout: self.settings.send_timeout,
            draining: self.draining.clone(),
        };
        let service = ConnectionService {
            streams: Some(next),
            ..service
        };
        let connection = super::http2::builder(&self.settings, executor)
            .serve_connection(TokioIo::new(tls), service);
        let idle = Some(self.settings.keep_alive_timeout);
        let result = serve_until_drained(
            connection,
            activity,
            &self.draining,
            self.first_request_window,
            idle,
        )
        .await;
        if let Err(error) = result {
            tracing::debug!(%error, "HTTP/2 connection ended with an error");
        }
    }

    async fn serve_http1<I>(&self, io: I, service: ConnectionService, activity: &Activity)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let connection = self.http1.serve_connection(TokioIo::new(io), service);
        let result = serve_until_drained(
            connection,
            activity,
            &self.draining,
            self.first_request_window,
            None,
        )
        .await;
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}
