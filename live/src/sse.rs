//! Server-sent events on the wire: the two response shapes that carry [`Frame`]s.
//!
//! Responses here are built from a frame's raw bytes rather than from
//! `axum::response::sse::Event`, which would be encoded again for every connection: a
//! broadcast's frame is encoded once and shared by every stream it reaches.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

pub(crate) use crate::frame::Frame;
use crate::{gzip, registry::Connection};

/// The header Datastar puts on every request it makes (the SDK keeps its constant private).
pub(crate) const DATASTAR_REQUEST: &str = "datastar-request";

/// Whether a request with these headers was made by Datastar (and so applies only the events
/// of a `200` answer, ignoring the body of any other).
pub(crate) fn from_datastar(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(DATASTAR_REQUEST)
}

fn event_stream_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and proxies that copy it) buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// A short SSE response that sends `frames` and ends: what an action answers a Datastar request
/// with. Datastar applies the events and, because the response ends, does not keep a request
/// open.
pub(crate) fn reply(frames: impl IntoIterator<Item = Frame>) -> Response {
    let mut body = BytesMut::new();
    for frame in frames {
        body.extend_from_slice(frame.as_bytes());
    }
    let mut response = (StatusCode::OK, body.freeze()).into_response();
    event_stream_headers(&mut response);
    response
}

/// The body of a persistent stream: first the `initial` frames, then every frame pushed to the
/// [`Connection`] through the registry (keep-alive comments included: the server has the
/// registry send them to quiet streams, one timer for all of them instead of one per stream).
/// It ends when the registry drops the connection (replacement, close, shutdown, a queue over
/// its limit); dropping it (the client went away) removes the connection from the registry,
/// because the [`Connection`] it owns is the registry's drop guard.
///
/// Gzipped for a client that accepts it (`gzip.rs`): each frame goes out as its block for
/// this stream's history, made once for every stream that shares it; a stream the server ends
/// gets the gzip trailer last.
#[derive(Debug)]
pub(crate) struct EventStream {
    initial: Option<Bytes>,
    connection: Connection,
    /// With gzip: the stream's encoder, taken out for the trailer when the stream ends.
    gzip: Option<gzip::Encoder<Frame>>,
}

impl EventStream {
    /// Starts a stream on `connection` that first sends `initial`, gzipped if `gzipped`.
    pub(crate) fn new(
        mut connection: Connection,
        initial: impl IntoIterator<Item = Frame>,
        gzipped: bool,
    ) -> Self {
        let mut gzip = gzipped.then(gzip::Encoder::new);
        let mut buffer = BytesMut::new();
        if gzipped {
            buffer.extend_from_slice(gzip::HEADER);
        }
        for frame in initial {
            connection.writes(&frame);
            match &mut gzip {
                Some(gzip) => buffer.extend_from_slice(&gzip.write(&frame)),
                None => buffer.extend_from_slice(frame.as_bytes()),
            }
        }
        let initial = (!buffer.is_empty()).then(|| buffer.freeze());
        Self {
            initial,
            connection,
            gzip,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(initial) = this.initial.take() {
            return Poll::Ready(Some(Ok(initial)));
        }
        match Pin::new(&mut this.connection).poll_next(cx) {
            Poll::Ready(Some(frame)) => Poll::Ready(Some(Ok(match &mut this.gzip {
                Some(gzip) => gzip.write(&frame),
                None => frame.into_bytes(),
            }))),
            // The server ended the stream: a gzipped one ends its gzip member too.
            Poll::Ready(None) => Poll::Ready(this.gzip.take().map(|gzip| Ok(gzip.finish()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl EventStream {
    /// The next chunk of the body (what hyper writes).
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        Pin::new(self)
            .poll_next(cx)
            .map(|chunk| chunk.map(|Ok(bytes)| bytes))
    }
}

/// The response of a stream. Its body goes past the middleware on the way out (see `Handoff`
/// in this file).
impl IntoResponse for EventStream {
    fn into_response(self) -> Response {
        // Before the first poll, so the encoder is still there.
        let gzipped = self.gzip.is_some();
        let handoff = Handoff(Arc::new(Mutex::new(Some(self))));
        let mut response = Body::new(HandoffBody(handoff.clone())).into_response();
        response.extensions_mut().insert(handoff);
        event_stream_headers(&mut response);
        if gzipped {
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }
}

/// A stream's body, handed straight to the server.
///
/// A response body passes through every layer on its way out, and each may wrap it (the request
/// log's span and timing, compression, boxing): per chunk, a chain of calls on memory of its own,
/// which at ten thousand streams is paid once per event per stream — for layers that have nothing
/// to do per event (a stream is logged when it opens, and gzips itself, once per event for every
/// stream: `gzip.rs`). So the response carries its [`EventStream`] in this extension too: the kit's
/// server takes it out and writes it directly (see `serve/service.rs`), and what the layers wrapped
/// ends empty. Served any other way (`oneshot` in a test, `axum::serve`), the wrapped body streams
/// the same events, through the layers.
#[derive(Clone, Debug)]
pub(crate) struct Handoff(Arc<Mutex<Option<EventStream>>>);

impl Handoff {
    /// Takes the stream out, for the server to write directly.
    pub(crate) fn take(&self) -> Option<EventStream> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The body the layers see: the stream while nobody took it out, then the end.
struct HandoffBody(Handoff);

impl http_body::Body for HandoffBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let mut stream = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(events) = stream.as_mut() else {
            return Poll::Ready(None);
        };
        events
            .poll_chunk(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use datastar::prelude::PatchSignals;

    use super::*;

    #[tokio::test]
    async fn a_stream_served_without_the_kits_server_still_streams_through_the_layers() {
        use futures_util::StreamExt;

        use crate::registry::{Key, Registry};

        // Arrange: a stream's response, as a test calling the router with `oneshot` gets it.
        let registry = Registry::default();
        let (connection, _) = registry.connect(Key::new("page/home/a").unwrap()).unwrap();
        let first = Frame::from(PatchSignals::new(r#"{"connected":true}"#));
        let response = EventStream::new(connection, [first.clone()], false).into_response();
        let mut body = response.into_body().into_data_stream();

        // Act: the first events, then a broadcast.
        let initial = body.next().await.unwrap().unwrap();
        let later = Frame::from(PatchSignals::new(r#"{"n":1}"#));
        registry.send(&Key::new("page/home/a").unwrap(), later.clone());
        let pushed = body.next().await.unwrap().unwrap();

        // Assert: both arrive, and dropping the body lets the connection go.
        assert_eq!(&initial[..], first.as_bytes());
        assert_eq!(&pushed[..], later.as_bytes());
        drop(body);
        assert!(registry.is_empty());
    }
}
