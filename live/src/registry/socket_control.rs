//! What a stream and the registry may ask of the TCP connection under a stream.
//!
//! The server hands every request a [`SocketControl`] for the connection it arrived on; a
//! stream passes it to the registry with its connection. Through it:
//!
//! - the stream says it is one ([`SocketControl::stream`]), and the server shrinks the socket's
//!   send buffer to [`STREAM_SEND_BUFFER`]. Events are small; the kernel's default lets the send
//!   buffer grow to megabytes, which a client that stopped reading pins, and which must fill up
//!   before the server's send timeout can even see that the client is not reading;
//! - the registry cuts the connection off ([`SocketControl::hang_up`]) when it must drop the
//!   stream for good (its queue overflowed). Ending the response body is not enough: hyper would
//!   still wait to flush what it buffered for as long as the client keeps the connection open.
//!   The server's socket wrapper sees the flag, fails the connection's next write, and closes
//!   the socket with a reset, freeing its descriptor and kernel buffers at once.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::Context,
};

use futures_util::task::AtomicWaker;

/// The send buffer of a socket that carries a stream: room for hundreds of events, a small
/// fraction of what the kernel would let it grow to.
pub(crate) const STREAM_SEND_BUFFER: usize = 64 * 1024;

/// Controls one TCP connection. Cheap to clone; every clone controls the same connection.
#[derive(Clone, Default)]
pub struct SocketControl {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    hung_up: AtomicBool,
    stream: AtomicBool,
    /// Set when the server cut the connection (or HTTP/2 stream) off because it stayed
    /// unwritable for the send timeout: the stream's end is then counted as such.
    timed_out: AtomicBool,
    /// The connection's task while a write of it is blocked: a hang-up must wake it then, as
    /// nothing else will until the client reads.
    blocked: AtomicWaker,
}

/// What the socket under a connection has been asked to do (see [`SocketControl::requests`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// Cut the connection off.
    pub hang_up: bool,
    /// It carries a stream: use [`STREAM_SEND_BUFFER`].
    pub stream: bool,
}

impl SocketControl {
    /// A control for a new connection.
    pub fn new() -> Self {
        SocketControl::default()
    }

    /// Says the connection carries a long-lived stream. It takes effect at the connection's next
    /// write (the response head).
    pub fn stream(&self) {
        self.inner.stream.store(true, Ordering::Release);
    }

    /// Cuts the connection off: its next write fails (the end of the stream the registry cut
    /// off is one). A connection whose write is blocked is woken to notice at once.
    pub fn hang_up(&self) {
        self.inner.hung_up.store(true, Ordering::Release);
        self.inner.blocked.wake();
    }

    /// Registers the connection's task while one of its writes is blocked, so that a hang-up
    /// wakes it; returns whether the connection was hung up meanwhile. (Only blocked writes
    /// register, which spares every other write the cost.)
    pub fn register_blocked(&self, cx: &mut Context<'_>) -> bool {
        self.inner.blocked.register(cx.waker());
        self.inner.hung_up.load(Ordering::Acquire)
    }

    /// What has been asked so far: two atomic loads, cheap enough for every read and write.
    pub fn requests(&self) -> Requests {
        Requests {
            hang_up: self.inner.hung_up.load(Ordering::Acquire),
            stream: self.inner.stream.load(Ordering::Acquire),
        }
    }

    /// Notes that the server cut the connection off because the client stopped reading.
    pub fn time_out(&self) {
        self.inner.timed_out.store(true, Ordering::Release);
    }

    /// Whether [`SocketControl::time_out`] was called.
    pub fn is_timed_out(&self) -> bool {
        self.inner.timed_out.load(Ordering::Acquire)
    }

    /// Whether [`SocketControl::hang_up`] was called.
    pub fn is_hung_up(&self) -> bool {
        self.inner.hung_up.load(Ordering::Acquire)
    }
}

impl fmt::Debug for SocketControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketControl")
            .field("hung_up", &self.is_hung_up())
            .field("stream", &self.inner.stream.load(Ordering::Relaxed))
            .finish()
    }
}
