//! The service behind one HTTP connection: the router, plus what every request needs to know
//! about the connection it came on.

use std::{
    convert::Infallible,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderValue, Version, header},
    response::Response,
};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use tower::ServiceExt;

use super::{
    activity::{Activity, InFlight},
    drain::Draining,
};
use crate::{
    client_addr::{ClientIp, ClientIpHeader, ClientNetworks},
    registry::SocketControl,
    sse::{EventStream, Handoff},
};

/// Serves the requests of one connection.
#[derive(Clone, Debug)]
pub(super) struct ConnectionService {
    pub(super) router: Router,
    pub(super) control: SocketControl,
    pub(super) activity: Arc<Activity>,
    pub(super) peer: IpAddr,
    pub(super) client_ip_header: Option<ClientIpHeader>,
    /// How the client's address is grouped into the network per-client limits count.
    pub(super) networks: ClientNetworks,
    pub(super) draining: Draining,
    /// Whether the connection is HTTPS: its responses tell browsers to keep to HTTPS.
    pub(super) https: bool,
    /// HTTP/2 only: where each request leaves the watch of its stream, for the executor that
    /// spawns the stream to pick up (see `http2.rs`).
    pub(super) streams: Option<NextStream>,
}

/// What an HTTP/2 stream's response body and its watcher (`http2.rs`) share: the stream's own
/// control, through which the registry may cut off this one stream and no other on its
/// connection, and whether the body is waiting for the client's flow-control window.
#[derive(Debug, Default)]
pub(super) struct StreamWatch {
    pub(super) control: SocketControl,
    /// Set while the body has handed over a chunk that has not been sent: hyper polls the body
    /// for its next chunk only once the last one is on its way, so a chunk still held means the
    /// stream's window is shut — the client is not reading this stream.
    waiting: AtomicBool,
}

// Without the `tls` feature there is no HTTP/2, and nothing asks.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
impl StreamWatch {
    /// Whether the body's last chunk is still waiting for the client's window.
    pub(super) fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    fn set_waiting(&self, waiting: bool) {
        // A load first: most polls change nothing, and a store would dirty the line.
        if self.waiting.load(Ordering::Relaxed) != waiting {
            self.waiting.store(waiting, Ordering::Relaxed);
        }
    }
}

/// Hands each HTTP/2 request's [`StreamWatch`] from the service, which makes it, to the executor
/// that spawns the request's stream: hyper calls the one and then the other, for each request in
/// turn, on the connection's task.
#[derive(Clone, Debug, Default)]
pub(super) struct NextStream(Arc<Mutex<Option<Arc<StreamWatch>>>>);

#[cfg_attr(not(feature = "tls"), allow(dead_code))]
impl NextStream {
    fn put(&self, watch: Arc<StreamWatch>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(watch);
    }

    /// The watch of the request whose stream is being spawned.
    pub(super) fn take(&self) -> Option<Arc<StreamWatch>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = Response<Served>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Served>, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let mut request: Request = request.map(Body::new);
        let client = (self.client_ip_header.as_ref())
            .and_then(|header| header.client(request.headers()))
            .unwrap_or(self.peer);
        // A stream hands its connection's control to the registry (see `SocketControl`); on
        // HTTP/2, its own stream's control, so that cutting it off leaves the others be.
        let watch = self.streams.as_ref().map(|next| {
            let watch = Arc::new(StreamWatch::default());
            next.put(Arc::clone(&watch));
            watch
        });
        let control = match &watch {
            Some(watch) => watch.control.clone(),
            None => self.control.clone(),
        };
        request.extensions_mut().insert(control);
        let http1 = request.version() < Version::HTTP_2;
        // Counted by its network (so an IPv6 host's whole /64 is one client), logged exactly.
        request
            .extensions_mut()
            .insert(self.networks.client(client));
        request.extensions_mut().insert(ClientIp(client));
        let in_flight = self.activity.start();
        let draining = self.draining.clone();
        let router = self.router.clone();
        let https = self.https;
        Box::pin(async move {
            let mut response = router.oneshot(request).await?;
            if https {
                // Served over HTTPS by this server: browsers should never try plain HTTP here
                // again (a year; no subdomains, which may be served otherwise).
                response
                    .headers_mut()
                    .entry(header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(HeaderValue::from_static("max-age=31536000"));
            }
            if draining.is_started() && http1 {
                // Tell the client not to send another request on this connection: it is about
                // to close, and a request sent on it would meet the end instead of an answer.
                // (HTTP/2 says it once for the whole connection, with a GOAWAY.)
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // A stream's events go straight to the socket, past the layers (see `Handoff`).
            let stream = response
                .extensions_mut()
                .remove::<Handoff>()
                .and_then(|handoff| handoff.take());
            // The request stays in flight (the connection is not idle) until its body has
            // been sent: for a stream, as long as the stream lasts.
            Ok(response.map(|body| Served {
                body: match stream {
                    Some(stream) => Content::Stream(stream),
                    None => Content::Body(body),
                },
                watch,
                _in_flight: in_flight,
            }))
        })
    }
}

/// What the server writes for one response, keeping its request in flight until it is dropped.
#[derive(Debug)]
pub(super) struct Served {
    body: Content,
    /// HTTP/2: told whether a chunk is waiting for the client's window.
    watch: Option<Arc<StreamWatch>>,
    _in_flight: InFlight,
}

#[derive(Debug)]
enum Content {
    /// A stream's events, written directly.
    Stream(EventStream),
    /// Any other response, as the layers made it.
    Body(Body),
}

impl http_body::Body for Served {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = match &mut self.body {
            Content::Stream(stream) => stream
                .poll_chunk(cx)
                .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes)))),
            Content::Body(body) => Pin::new(body).poll_frame(cx),
        };
        if let Some(watch) = &self.watch {
            watch.set_waiting(matches!(polled, Poll::Ready(Some(Ok(_)))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Content::Stream(_) => false,
            Content::Body(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Content::Stream(_) => SizeHint::default(),
            Content::Body(body) => body.size_hint(),
        }
    }
}
