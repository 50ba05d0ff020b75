//! The socket under every HTTP connection, watched for clients that stop reading or go quiet.
//!
//! hyper writes a response as fast as the socket takes it and waits, without limit, when it
//! does not. For a stream that is the failure to fear: a client that stops reading (a frozen
//! laptop, a hostile script) keeps its socket, its descriptor and up to megabytes of kernel
//! send buffer for as long as it likes, and a graceful shutdown waits on it. So every accepted
//! socket is wrapped in a [`WatchedSocket`], which fails the connection — and closes the socket
//! with a reset, freeing its buffers at once — when:
//!
//! - a write has been blocked (the socket unwritable) for the send timeout: the client is not
//!   reading. This is the *only* test of a slow client: a long queue on the server's side says
//!   the server is behind, not that the client is;
//! - the registry [hung up](SocketControl::hang_up) on the connection (its stream had to be cut
//!   off);
//! - the server is draining and a write stays blocked for [`DRAIN_SEND_TIMEOUT`]: shutdown
//!   waits for healthy clients to get their last bytes, never for stalled ones.
//!
//! It also ends a connection that sits idle between requests for the keep-alive timeout, with
//! an orderly close (the read side reports the end; hyper closes). Idle means no request in
//! flight — a stream is a request in flight for as long as it lasts — and nothing read.

use std::{
    future::Future,
    io::{self, IoSlice},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{
    activity::Activity,
    drain::{DRAIN_SEND_TIMEOUT, Draining},
};
use crate::registry::{STREAM_SEND_BUFFER, SocketControl};

/// How much longer than the send timeout the kernel waits for a stream's client to acknowledge
/// what it was sent before it gives the connection up (`TCP_USER_TIMEOUT`): the client's
/// machine is gone.
pub(super) const VANISHED_MARGIN: Duration = Duration::from_secs(5);

/// The time limits a socket is watched with.
#[derive(Debug, Clone, Copy)]
pub(super) struct SocketLimits {
    /// How long a write may stay blocked.
    pub send_timeout: Duration,
    /// How long the connection may sit idle between requests.
    pub keep_alive_timeout: Duration,
}

/// A TCP socket whose writes may not stay blocked for longer than the send timeout, and which
/// may not sit idle for longer than the keep-alive timeout.
#[derive(Debug)]
pub(super) struct WatchedSocket {
    stream: TcpStream,
    control: SocketControl,
    activity: Arc<Activity>,
    limits: SocketLimits,
    draining: Draining,
    /// Whether the send buffer has been sized for a stream.
    streaming: bool,
    /// Set while a write is blocked; allocated only then.
    blocked: Option<Blocked>,
    /// Set while the connection is idle; allocated only then.
    idle: Option<Pin<Box<Sleep>>>,
    /// Set once the keep-alive timeout has passed: reads report the end from now on.
    timed_out_idle: bool,
    /// Whether this socket ends the connection when it sits idle (see
    /// [`WatchedSocket::leave_idle_to_connection`]).
    watch_idle: bool,
    /// Set once the connection has been failed: every later call fails the same way.
    failed: Option<io::ErrorKind>,
}

/// How long a blocked write has left: the send timeout, cut to [`DRAIN_SEND_TIMEOUT`] once the
/// server drains. Allocated only while a write is blocked. (A socket's writes, and an HTTP/2
/// stream's — `http2.rs` — are held to the same.)
#[derive(Debug)]
pub(super) struct Blocked {
    deadline: Pin<Box<Sleep>>,
    /// Completes when draining starts, to shorten the deadline; `None` once it has.
    drain: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Blocked {
    /// A write blocked from now, allowed `send_timeout`.
    pub(super) fn new(send_timeout: Duration, draining: &Draining) -> Self {
        let limit = if draining.is_started() {
            send_timeout.min(DRAIN_SEND_TIMEOUT)
        } else {
            send_timeout
        };
        Blocked {
            deadline: Box::pin(tokio::time::sleep(limit)),
            drain: (!draining.is_started()).then(|| Box::pin(draining.started())),
        }
    }

    /// Ready, with why, once the write has been blocked for too long.
    pub(super) fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        draining: &Draining,
    ) -> Poll<&'static str> {
        if let Some(drain) = &mut self.drain
            && drain.as_mut().poll(cx).is_ready()
        {
            self.drain = None;
            let sooner = Instant::now() + DRAIN_SEND_TIMEOUT;
            if sooner < self.deadline.deadline() {
                self.deadline.as_mut().reset(sooner);
            }
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(if draining.is_started() {
            "client not reading while the server shuts down"
        } else {
            "client not reading (send timeout)"
        })
    }
}

impl WatchedSocket {
    /// Watches `stream` within `limits`. Once `control` is hung up the next write fails, and
    /// everything after it; after `draining` has started a blocked write may last
    /// [`DRAIN_SEND_TIMEOUT`] at most.
    pub(super) fn new(
        stream: TcpStream,
        control: SocketControl,
        activity: Arc<Activity>,
        limits: SocketLimits,
        draining: Draining,
    ) -> Self {
        WatchedSocket {
            stream,
            control,
            activity,
            limits,
            draining,
            streaming: false,
            blocked: None,
            idle: None,
            timed_out_idle: false,
            watch_idle: true,
            failed: None,
        }
    }

    /// Leaves idle connections to the protocol above: HTTP/2 ends one with a GOAWAY (see
    /// `drain.rs`), which a client understands, rather than with the end of its input. From
    /// now on only blocked writes, hang-ups and draining are watched here.
    // For HTTP/2, which browsers speak only over TLS.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(super) fn leave_idle_to_connection(&mut self) {
        self.watch_idle = false;
        self.idle = None;
    }

    /// Says the connection carries streams, as a stream's [`SocketControl::stream`] does: its
    /// send buffer is sized for them (an HTTP/2 connection, whose streams have controls of
    /// their own).
    // For HTTP/2, which browsers speak only over TLS.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(super) fn carries_streams(&mut self) {
        self.size_for_streams();
    }

    fn size_for_streams(&mut self) {
        if self.streaming {
            return;
        }
        self.streaming = true;
        // Linux doubles the value asked for (the rest is its bookkeeping).
        let socket = socket2::SockRef::from(&self.stream);
        if let Err(error) = socket.set_send_buffer_size(STREAM_SEND_BUFFER / 2) {
            tracing::debug!(%error, "cannot size the send buffer");
        }
        // A tab whose machine vanished (a laptop lid closed) acknowledges nothing. What it is
        // sent waits in the send buffer, which a keep-alive comment every 15–30 s never fills,
        // so the send timeout never trips, and Linux retransmits for about 15 minutes before it
        // gives up. With TCP_USER_TIMEOUT it gives up once data has gone unacknowledged for
        // the send timeout and a margin; the margin keeps a client that stops reading (a shut
        // window, which Linux counts too) cut off by the send timeout, for that reason.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(error) =
            socket.set_tcp_user_timeout(Some(self.limits.send_timeout + VANISHED_MARGIN))
        {
            tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
        }
    }

    /// Fails the connection: a reset on close, and `kind` from now on.
    fn fail(&mut self, kind: io::ErrorKind, why: &str) -> io::Error {
        if self.failed.is_none() {
            // A reset instead of an orderly close: the kernel drops whatever the client never
            // read, rather than keep it (and the socket) until the client reads or times out.
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::debug!(%error, "cannot set SO_LINGER");
            }
            self.failed = Some(kind);
            self.blocked = None;
            match kind {
                io::ErrorKind::TimedOut => {
                    tracing::warn!(peer = ?self.stream.peer_addr().ok(), "{why}: disconnected");
                }
                _ => tracing::debug!(peer = ?self.stream.peer_addr().ok(), "{why}: disconnected"),
            }
        }
        io::Error::new(kind, why.to_owned())
    }

    /// Before any use: fail if the connection has been failed or hung up on, and size the send
    /// buffer once it carries a stream.
    fn check(&mut self) -> io::Result<()> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(kind, "connection already failed"));
        }
        let requests = self.control.requests();
        if requests.hang_up {
            return Err(self.fail(io::ErrorKind::ConnectionAborted, "stream cut off"));
        }
        if requests.stream && !self.streaming {
            self.size_for_streams();
        }
        Ok(())
    }

    /// After a write returned `Pending`: arms the deadline, and fails the connection when it
    /// has passed.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.control.register_blocked(cx) {
            return Poll::Ready(Err(
                self.fail(io::ErrorKind::ConnectionAborted, "stream cut off")
            ));
        }
        let (limit, draining) = (self.limits.send_timeout, &self.draining);
        let blocked = self
            .blocked
            .get_or_insert_with(|| Blocked::new(limit, draining));
        match blocked.poll_expired(cx, draining) {
            Poll::Ready(why) => {
                self.control.time_out();
                Poll::Ready(Err(self.fail(io::ErrorKind::TimedOut, why)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.blocked = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.blocked(cx),
        }
    }

    /// After a read returned `Pending`: whether the keep-alive timeout has now passed.
    fn idle_for_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.watch_idle || !self.activity.is_idle() {
            self.idle = None;
            return false;
        }
        let limit = self.limits.keep_alive_timeout;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if idle.as_mut().poll(cx).is_ready() {
            self.idle = None;
            self.timed_out_idle = true;
            tracing::trace!("idle connection closed (keep-alive timeout)");
            return true;
        }
        false
    }
}

impl AsyncRead for WatchedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Only a failure already seen, not the control's requests: hyper polls a stream's
        // reads at every event (to notice the client closing), and a hang-up needs no read to
        // take effect — the stream it cuts off ends at once, and the write of its end fails.
        if let Some(kind) = this.failed {
            return Poll::Ready(Err(io::Error::new(kind, "connection already failed")));
        }
        if this.timed_out_idle {
            return Poll::Ready(Ok(())); // the end: nothing more will be read
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.idle = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending if this.idle_for_too_long(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for WatchedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        // Over TLS, rustls hands over one encrypted record per event this way: a plain send
        // is cheaper than a one-part `writev`.
        let mut parts = bufs.iter().filter(|part| !part.is_empty());
        let result = match (parts.next(), parts.next()) {
            (Some(only), None) => Pin::new(&mut this.stream).poll_write(cx, only),
            _ => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
        };
        this.wrote(result, cx)
    }

    /// Not vectored, on purpose: hyper then copies each chunk's size line, data and ending
    /// into its write buffer and sends them with one plain `send`, instead of a three-part
    /// `writev`. Events are a few hundred bytes, so the copy costs less than the kernel's work
    /// on an I/O vector, on every event of every stream (measured with `examples/fanout.rs` in
    /// the template repository).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}
