//! The unit of everything sent on a stream: one encoded server-sent event.
//!
//! Datastar events are encoded **once** into a [`Frame`] (the exact bytes of one SSE event), and
//! the same bytes are then shared by every stream a broadcast reaches: cloning a frame bumps a
//! reference count instead of re-encoding per receiver. The registry queues frames, the
//! responses in `sse.rs` write them, Redis carries them between instances.

use std::time::Duration;

use bytes::Bytes;
use datastar::prelude::{DatastarEvent, ExecuteScript, PatchElements, PatchSignals};

/// One encoded SSE event (`event: …\ndata: …\n\n`), cheap to clone and share.
///
/// Datastar events are encoded **once** into a frame (the exact bytes of one SSE event), and
/// the same bytes are then shared by every stream a broadcast reaches: cloning a frame bumps a
/// reference count instead of re-encoding per receiver. `PatchElements`, `PatchSignals` and
/// `ExecuteScript` of the `datastar` crate each turn into one (`.into()`).
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

    /// An SSE comment: ignored by clients, but it keeps proxies and NAT tables from timing out
    /// an idle stream and lets the server notice a vanished client on the next write. The
    /// registry sends it to quiet streams (every `SSE_KEEP_ALIVE_SECS`).
    pub fn keep_alive() -> Frame {
        Frame(Bytes::from_static(KEEP_ALIVE))
    }

    /// Whether this is [`Frame::keep_alive`].
    pub fn is_keep_alive(&self) -> bool {
        self.as_bytes() == KEEP_ALIVE
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

/// The bytes of [`Frame::keep_alive`].
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

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
