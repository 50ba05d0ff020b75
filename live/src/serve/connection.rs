//! The service behind one HTTP connection: the router, plus what every request needs to know
//! about the connection it came on.

use std::{
    convert::Infallible,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use tower::ServiceExt;

use super::{
    drain::Draining,
    socket::{Activity, InFlight},
};
use crate::{
    client::ClientAddr,
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
    pub(super) client_ip_header: Option<HeaderName>,
    pub(super) draining: Draining,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = Response<Served>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Served>, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let mut request: Request = request.map(Body::new);
        let client =
            client_addr(request.headers(), self.client_ip_header.as_ref()).unwrap_or(self.peer);
        // A stream hands its connection's control to the registry (see `SocketControl`).
        request.extensions_mut().insert(self.control.clone());
        request.extensions_mut().insert(ClientAddr(client));
        let in_flight = self.activity.start();
        let draining = self.draining.clone();
        let router = self.router.clone();
        Box::pin(async move {
            let mut response = router.oneshot(request).await?;
            if draining.is_started() {
                // Tell the client not to send another request on this connection: it is about
                // to close, and a request sent on it would meet the end instead of an answer.
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
                _in_flight: in_flight,
            }))
        })
    }
}

/// The client address `header` names: the last address in it, which is the one the nearest
/// proxy added (anything before it came from the client and cannot be trusted).
fn client_addr(headers: &HeaderMap, header: Option<&HeaderName>) -> Option<IpAddr> {
    let value = headers.get(header?)?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

/// What the server writes for one response, keeping its request in flight until it is dropped.
#[derive(Debug)]
pub(super) struct Served {
    body: Content,
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
        match &mut self.body {
            Content::Stream(stream) => stream
                .poll_chunk(cx)
                .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes)))),
            Content::Body(body) => Pin::new(body).poll_frame(cx),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_last_address_the_proxy_added() {
        let name = HeaderName::from_static("x-forwarded-for");
        let mut headers = HeaderMap::new();
        headers.insert(&name, HeaderValue::from_static("6.6.6.6, 10.0.0.7"));
        assert_eq!(
            client_addr(&headers, Some(&name)),
            Some(IpAddr::from([10, 0, 0, 7]))
        );
        assert_eq!(client_addr(&headers, None), None, "no header configured");
        headers.insert(&name, HeaderValue::from_static("garbage"));
        assert_eq!(client_addr(&headers, Some(&name)), None);
    }
}
