//! Draining: the server has stopped accepting and lets its connections finish.
//!
//! Every connection's task asks "are we draining?" each time it wakes, and every blocked write
//! asks too. A `CancellationToken` answers behind a mutex that all connections share (as does
//! the `Notify` behind its future, on every poll), so at ten thousand streams that question
//! was a lock taken — and fought over by both cores — once per event per stream. [`Draining`]
//! answers it with one atomic load and keeps the token only to wake those that wait.

use std::{
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::Poll,
    time::Duration,
};

use hyper_util::server::graceful::GracefulConnection;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::activity::Activity;

/// While the server drains, the longest a write may stay blocked.
pub(super) const DRAIN_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the server is draining. Cheap to clone; every clone shares the same state.
#[derive(Clone, Debug, Default)]
pub(super) struct Draining {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    started: AtomicBool,
    wake: CancellationToken,
}

impl Draining {
    /// A server that is not draining yet.
    pub(super) fn new() -> Self {
        Draining::default()
    }

    /// Starts draining, and wakes everything waiting for it.
    pub(super) fn start(&self) {
        self.inner.started.store(true, Ordering::Release);
        self.inner.wake.cancel();
    }

    /// Whether draining has started: one atomic load.
    pub(super) fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Completes when draining starts.
    pub(super) fn started(&self) -> WaitForCancellationFutureOwned {
        self.inner.wake.clone().cancelled_owned()
    }
}

/// Serves `connection` until it ends; once `draining`, ends it gracefully: at once if a request
/// is in flight (it closes after its response) or if it is an idle HTTP/2 connection that has
/// served one (a GOAWAY), and otherwise only after `window`.
///
/// The window is what makes a restart lose nothing. A connection the kernel accepted just
/// before shutdown usually has its request on the way, unread: closing it then — hyper's
/// graceful shutdown closes a connection that has no request yet — would reset it, and the
/// client sees a failed request instead of the answer it would get a moment later. An idle
/// HTTP/1 keep-alive connection is the same: a proxy's pool may be sending its next request
/// on it at the moment it closes, and a proxy retries a lost `GET` but never a lost `POST`
/// (Caddy answered one such greet with a 502 in a restart test). Given the window, a request
/// is read and answered, with `Connection: close` since the server is draining, and the
/// connection ends by itself; one that stays quiet for the whole window is the one its client
/// is least likely to pick at the moment it closes.
///
/// With `idle` (HTTP/2), a connection with no request in flight for that long is also ended
/// gracefully (a GOAWAY, which tells the client to open a new connection for its next request
/// rather than lose it). HTTP/1 connections leave that to their socket, which ends a quiet
/// connection by reporting the end of its input (`watched_socket.rs`): for HTTP/1 that is the end
/// hyper expects, while an HTTP/2 connection also needs to hear why.
pub(super) async fn serve_until_drained<C>(
    connection: C,
    activity: &Activity,
    draining: &Draining,
    window: Duration,
    idle: Option<Duration>,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    let mut connection = pin!(connection);
    let mut started = pin!(draining.started());
    let mut listening = false;
    let mut quiet: Option<Pin<Box<Sleep>>> = None;
    let ended = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        // The flag on every wake-up; the token's future once, so that it wakes this task.
        if draining.is_started() {
            return Poll::Ready(None);
        }
        if !listening {
            listening = true;
            if started.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        // Every request's start and end wakes this task (the connection reads the one and
        // writes the other's last frame), so looking here sees every change.
        if let Some(limit) = idle {
            if activity.is_idle() {
                let timer = quiet.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    tracing::trace!("idle connection closed (keep-alive timeout)");
                    return Poll::Ready(None);
                }
            } else {
                quiet = None;
            }
        }
        Poll::Pending
    })
    .await;
    if let Some(result) = ended {
        return result;
    }
    let may_be_sending = match idle {
        // HTTP/2: a GOAWAY tells the client which requests were not served, so it can retry
        // them elsewhere; only a connection with no request yet may still be sending its first.
        Some(_) => !activity.is_used(),
        None => activity.is_idle(),
    };
    if draining.is_started()
        && may_be_sending
        && let Ok(result) = tokio::time::timeout(window, connection.as_mut()).await
    {
        return result;
    }
    connection.as_mut().graceful_shutdown();
    // A graceful HTTP/2 close waits for the client to answer a PING after the GOAWAY; a client
    // that reads nothing (or will not answer) would hold the shutdown. Once nothing is in
    // flight, the connection gets as long as a blocked write does while draining.
    let mut lingering: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if !activity.is_idle() {
            lingering = None;
            return Poll::Pending;
        }
        let timer =
            lingering.get_or_insert_with(|| Box::pin(tokio::time::sleep(DRAIN_SEND_TIMEOUT)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!("connection not closed by its client after its last answer");
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The drain's end, once the server stopped accepting: every stream is told to come back soon
/// (with an inherited socket the next process is already taking the connections), draining
/// starts, and the requests still running, then what they published to the other instances,
/// get until `grace` to finish.
pub(super) async fn finish(
    registry: &crate::registry::Registry,
    draining: &Draining,
    connections: tokio_util::task::TaskTracker,
    grace: Duration,
) {
    let closed = registry.shut_down(&crate::events::restarting());
    draining.start();
    tracing::info!(closed, "shutting down: streams ended, finishing requests");
    let deadline = tokio::time::Instant::now() + grace;
    connections.close();
    if tokio::time::timeout_at(deadline, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "requests still running after the shutdown timeout: exiting"
        );
    }
    // A greeting answered with 200 and then lost to the other instances would be a lie.
    if let Some(relay) = registry.relay()
        && tokio::time::timeout_at(deadline, relay.flush())
            .await
            .is_err()
    {
        tracing::warn!("broadcasts still unpublished at the shutdown timeout: exiting");
    }
}
