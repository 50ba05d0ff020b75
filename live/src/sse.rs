//! Server-sent events on the wire: encoded frames and the two response shapes that carry them.
//!
//! Datastar events are encoded **once** into a [`Frame`] (the exact bytes of one SSE event), and
//! the same bytes are then shared by every stream a broadcast reaches: cloning a frame bumps a
//! reference count instead of re-encoding per receiver. That is why responses here are built
//! from raw bytes rather than from `axum::response::sse::Event`, which would be encoded again
//! for every connection.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use datastar::prelude::{DatastarEvent, ExecuteScript, PatchElements, PatchSignals};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::registry::Connection;

/// One encoded SSE event (`event: …\ndata: …\n\n`), cheap to clone and share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// The bytes exactly as they go on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The frame as text (SSE is UTF-8 by definition).
    pub fn as_str(&self) -> &str {
        // Frames are only ever built from `String`s, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// A `retry:` field alone: how long the client waits before it reconnects once the stream
    /// ends. (Datastar resets its backoff to this value.)
    pub fn retry(after: Duration) -> Frame {
        Frame(Bytes::from(format!("retry: {}\n\n", after.as_millis())))
    }

    /// Takes the shared bytes out of the frame.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A frame received from elsewhere (another instance): accepted only if it is one or more
    /// complete SSE events in UTF-8, each made of `field: value` lines or comments.
    pub fn from_wire(bytes: Bytes) -> Option<Frame> {
        let text = std::str::from_utf8(&bytes).ok()?;
        let body = text.strip_suffix("\n\n")?;
        let fields_ok = !body.is_empty()
            && body.split('\n').all(|line| {
                line.is_empty()
                    || line.starts_with(':')
                    || ["event:", "data:", "id:"]
                        .iter()
                        .any(|field| line.starts_with(field))
            });
        fields_ok.then_some(Frame(bytes))
    }
}

impl From<DatastarEvent> for Frame {
    fn from(event: DatastarEvent) -> Self {
        // The SDK's `Display` writes the complete event, blank line included.
        Frame(Bytes::from(event.to_string()))
    }
}

impl From<PatchElements> for Frame {
    fn from(patch: PatchElements) -> Self {
        patch.into_datastar_event().into()
    }
}

impl From<PatchSignals> for Frame {
    fn from(patch: PatchSignals) -> Self {
        patch.into_datastar_event().into()
    }
}

impl From<ExecuteScript> for Frame {
    fn from(script: ExecuteScript) -> Self {
        script.into_datastar_event().into()
    }
}

/// The header Datastar puts on every request it makes (the SDK keeps its constant private).
pub const DATASTAR_REQUEST: &str = "datastar-request";

/// Whether a request with these headers was made by Datastar (and so applies only the events
/// of a `200` answer, ignoring the body of any other).
pub fn from_datastar(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(DATASTAR_REQUEST)
}

/// An SSE comment: ignored by clients, but it keeps proxies and NAT tables from timing out an
/// idle stream and lets the server notice a vanished client on the next write.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

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
pub fn reply(frames: impl IntoIterator<Item = Frame>) -> Response {
    let mut body = BytesMut::new();
    for frame in frames {
        body.extend_from_slice(frame.as_bytes());
    }
    let mut response = (StatusCode::OK, body.freeze()).into_response();
    event_stream_headers(&mut response);
    response
}

/// The body of a persistent stream: first the `initial` frames, then every frame pushed to the
/// [`Connection`] through the registry, with a keep-alive comment after each quiet `keep_alive`
/// period. It ends when the registry drops the connection (replacement, close, shutdown, a
/// queue over its limit); dropping it (the client went away) removes the connection from the
/// registry, because the [`Connection`] it owns is the registry's drop guard.
#[derive(Debug)]
pub struct EventStream {
    initial: Option<Bytes>,
    connection: Connection,
    keep_alive: Duration,
    idle: Pin<Box<Sleep>>,
}

impl EventStream {
    /// Starts a stream on `connection` that first sends `initial`.
    pub fn new(
        connection: Connection,
        initial: impl IntoIterator<Item = Frame>,
        keep_alive: Duration,
    ) -> Self {
        let mut buffer = BytesMut::new();
        for frame in initial {
            buffer.extend_from_slice(frame.as_bytes());
        }
        let initial = (!buffer.is_empty()).then(|| buffer.freeze());
        Self {
            initial,
            connection,
            keep_alive,
            idle: Box::pin(tokio::time::sleep(keep_alive)),
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
            Poll::Ready(Some(frame)) => {
                this.idle.as_mut().reset(Instant::now() + this.keep_alive);
                return Poll::Ready(Some(Ok(frame.into_bytes())));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if this.idle.as_mut().poll(cx).is_ready() {
            this.idle.as_mut().reset(Instant::now() + this.keep_alive);
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
        }
        Poll::Pending
    }
}

impl IntoResponse for EventStream {
    fn into_response(self) -> Response {
        let mut response = Body::from_stream(self).into_response();
        event_stream_headers(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_the_sdk_encoding_of_the_event() {
        let frame = Frame::from(PatchSignals::new(r#"{"connected":true}"#));
        assert_eq!(
            frame.as_str(),
            "event: datastar-patch-signals\ndata: signals {\"connected\":true}\n\n"
        );
    }

    #[test]
    fn multi_line_elements_become_one_data_line_each() {
        let frame = Frame::from(PatchElements::new("<p id=\"a\">\nhi\n</p>"));
        assert_eq!(
            frame.as_str(),
            "event: datastar-patch-elements\ndata: elements <p id=\"a\">\ndata: elements hi\ndata: elements </p>\n\n"
        );
    }
}
