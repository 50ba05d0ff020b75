//! The unit of everything sent on a stream: one encoded server-sent event.
//!
//! Datastar events are encoded **once** into a [`Frame`] (the exact bytes of one SSE event), and
//! the same bytes are then shared by every stream a broadcast reaches: cloning a frame bumps a
//! reference count instead of re-encoding per receiver. The registry queues frames, the
//! responses in `sse.rs` write them, Redis carries them between instances.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use datastar::prelude::{DatastarEvent, ExecuteScript, PatchElements, PatchSignals};

use crate::gzip::{Compressible, Forms};

/// One encoded SSE event (`event: …\ndata: …\n\n`), cheap to clone and share.
///
/// Datastar events are encoded **once** into a frame (the exact bytes of one SSE event), and
/// the same bytes are then shared by every stream a broadcast reaches: cloning a frame bumps a
/// reference count instead of re-encoding per receiver. `PatchElements`, `PatchSignals` and
/// `ExecuteScript` of the `datastar` crate each turn into one (`.into()`).
#[derive(Clone)]
pub struct Frame(Arc<Encoded>);

/// A frame's bytes, and its compressed forms once a compressed stream has asked for one
/// (see `gzip.rs`): like the bytes, computed once and shared by every stream.
struct Encoded {
    bytes: Bytes,
    gzip: OnceLock<Forms>,
}

impl Frame {
    fn new(bytes: Bytes) -> Frame {
        Frame(Arc::new(Encoded {
            bytes,
            gzip: OnceLock::new(),
        }))
    }

    /// The bytes exactly as they go on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The frame as text (SSE is UTF-8 by definition).
    pub fn as_str(&self) -> &str {
        // Frames are only ever built from `String`s, so this cannot fail.
        std::str::from_utf8(&self.0.bytes).unwrap_or_default()
    }

    /// A `retry:` field alone: how long the client waits before it reconnects once the stream
    /// ends. (Datastar resets its backoff to this value.)
    pub fn retry(after: Duration) -> Frame {
        Frame::new(Bytes::from(format!("retry: {}\n\n", after.as_millis())))
    }

    /// An SSE comment: ignored by clients, but it keeps proxies and NAT tables from timing out
    /// an idle stream and lets the server notice a vanished client on the next write. The
    /// registry sends it to quiet streams (every `SSE_KEEP_ALIVE_SECS`).
    pub fn keep_alive() -> Frame {
        Frame::new(Bytes::from_static(KEEP_ALIVE))
    }

    /// Whether this is [`Frame::keep_alive`].
    pub fn is_keep_alive(&self) -> bool {
        self.as_bytes() == KEEP_ALIVE
    }

    /// The shared bytes of the frame.
    pub fn into_bytes(self) -> Bytes {
        self.0.bytes.clone()
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
        fields_ok.then(|| Frame::new(bytes))
    }
}

impl From<DatastarEvent> for Frame {
    fn from(event: DatastarEvent) -> Self {
        // The SDK's `Display` writes the complete event, blank line included.
        Frame::new(Bytes::from(event.to_string()))
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

/// A compressed stream's frames: their forms are made on first use, and shared.
impl Compressible for Frame {
    fn plain(&self) -> &[u8] {
        &self.0.bytes
    }

    fn forms(&self) -> &Forms {
        self.0.gzip.get_or_init(|| Forms::new(&self.0.bytes))
    }

    fn is_keep_alive(&self) -> bool {
        Frame::is_keep_alive(self)
    }
}

/// Frames are equal when their bytes are.
impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Frame {}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Frame").field(&self.0.bytes).finish()
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
