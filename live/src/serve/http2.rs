//! HTTP/2: many streams on one connection, each held to what a whole connection is held to on
//! HTTP/1.1.
//!
//! On HTTP/1.1 a tab that stops reading shows as a socket that stays unwritable, and the socket
//! watch (`watched_socket.rs`) cuts it off. On HTTP/2 the tabs of a browser share one socket that
//! keeps flowing; a tab that stops reading shows only as its own stream's flow-control window
//! staying shut. hyper then stops asking that stream's body for chunks and waits, without limit,
//! for the window to open. So each stream's task is spawned inside a [`Watched`] future:
//!
//! - while the body's last chunk waits for the window (the body says so: `StreamWatch`), the
//!   send timeout runs, and when it has passed the stream's task is dropped. Dropping it drops
//!   hyper's handle on the stream, which makes the h2 crate reset that one stream
//!   (`RST_STREAM`, CANCEL) and free what it holds; the other streams go on;
//! - the registry can cut one stream off through the stream's own `SocketControl`, as it does a
//!   whole HTTP/1.1 connection.
//!
//! hyper hands every stream's task to the connection's executor right after it has called the
//! service for the stream's request, on the same task; the service leaves the request's watch
//! in a `NextStream` and [`StreamExecutor`] picks it up.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper::server::conn::http2;
use hyper_util::rt::TokioTimer;

use super::{
    drain::Draining,
    service::{NextStream, StreamWatch},
    watched_socket::Blocked,
};
use crate::settings::Settings;

/// Streams one connection may have open at once: plenty for every tab of a browser and their
/// requests, and a bound on what one connection can make the server hold.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The most header bytes (decoded) one request may carry. Browsers send a few KiB at most.
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// How much request body the client may send on a stream before the app reads it, and on the
/// whole connection. Actions take at most a few KiB (`ACTION_BODY_LIMIT`), so these bound what
/// a client can make the server buffer — hyper's defaults are 1 MiB each, per connection.
pub const STREAM_WINDOW: u32 = 64 * 1024;
/// See [`STREAM_WINDOW`].
pub const CONNECTION_WINDOW: u32 = 256 * 1024;

/// The HTTP/2 side of a connection's server: hyper's builder, with the kit's limits, spawning
/// each stream through `executor`.
pub(super) fn builder(
    settings: &Settings,
    executor: StreamExecutor,
) -> http2::Builder<StreamExecutor> {
    let mut builder = http2::Builder::new(executor);
    builder
        .timer(TokioTimer::new())
        // A PING every keep-alive period, answered within the send timeout, or the connection
        // is closed: a client that vanished (a laptop lid) is found even while its streams are
        // quiet.
        .keep_alive_interval(settings.keep_alive)
        .keep_alive_timeout(settings.send_timeout)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    builder
}

/// Spawns the tasks of one connection's streams, each watched ([`Watched`]).
#[derive(Clone, Debug)]
pub(super) struct StreamExecutor {
    pub(super) next: NextStream,
    pub(super) send_timeout: Duration,
    pub(super) draining: Draining,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        match self.next.take() {
            Some(watch) => drop(tokio::spawn(Watched {
                task: Some(Box::pin(task)),
                watch,
                send_timeout: self.send_timeout,
                draining: self.draining.clone(),
                blocked: None,
            })),
            // Not a request's stream (hyper spawns nothing else on a server without CONNECT
            // support, but it would run unwatched rather than not at all).
            None => drop(tokio::spawn(task)),
        }
    }
}

/// One stream's task, dropped — resetting the stream — when its window stays shut for the send
/// timeout or the registry cuts it off.
struct Watched<F> {
    task: Option<Pin<Box<F>>>,
    watch: Arc<StreamWatch>,
    send_timeout: Duration,
    draining: Draining,
    /// Set while the body waits for the window.
    blocked: Option<Blocked>,
}

impl<F> Watched<F> {
    fn cut_off(&mut self, why: &str, warn: bool) -> Poll<()> {
        // Dropping the task drops hyper's stream handle: h2 resets the stream.
        self.task = None;
        self.blocked = None;
        if warn {
            tracing::warn!("{why}: HTTP/2 stream reset");
        } else {
            tracing::debug!("{why}: HTTP/2 stream reset");
        }
        Poll::Ready(())
    }
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(task) = this.task.as_mut() else {
            return Poll::Ready(());
        };
        if this.watch.control.is_hung_up() {
            return this.cut_off("stream cut off", false);
        }
        if task.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !this.watch.is_waiting() {
            this.blocked = None;
            return Poll::Pending;
        }
        // Waiting for the window: a hang-up must wake this task, since nothing else will.
        if this.watch.control.register_blocked(cx) {
            return this.cut_off("stream cut off", false);
        }
        let (limit, draining) = (this.send_timeout, &this.draining);
        let blocked = this
            .blocked
            .get_or_insert_with(|| Blocked::new(limit, draining));
        match blocked.poll_expired(cx, draining) {
            Poll::Ready(why) => {
                this.watch.control.time_out();
                this.cut_off(why, true)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
