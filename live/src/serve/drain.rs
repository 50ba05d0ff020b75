//! Draining: the server has stopped accepting and lets its connections finish.
//!
//! Every connection's task asks "are we draining?" each time it wakes, and every blocked write
//! asks too. A `CancellationToken` answers behind a mutex that all connections share (as does
//! the `Notify` behind its future, on every poll), so at ten thousand streams that question
//! was a lock taken — and fought over by both cores — once per event per stream. [`Draining`]
//! answers it with one atomic load and keeps the token only to wake those that wait.

use std::{
    future::Future,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::Poll,
    time::Duration,
};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::socket::{Activity, WatchedSocket};

/// Whether the server is draining. Cheap to clone; every clone shares the same state.
#[derive(Clone, Debug, Default)]
pub struct Draining {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    started: AtomicBool,
    wake: CancellationToken,
}

impl Draining {
    /// A server that is not draining yet.
    pub fn new() -> Self {
        Draining::default()
    }

    /// Starts draining, and wakes everything waiting for it.
    pub fn start(&self) {
        self.inner.started.store(true, Ordering::Release);
        self.inner.wake.cancel();
    }

    /// Whether draining has started: one atomic load.
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Completes when draining starts.
    pub fn started(&self) -> WaitForCancellationFutureOwned {
        self.inner.wake.clone().cancelled_owned()
    }
}

/// Serves `connection` until it ends; once `draining`, ends it gracefully: at once if it has
/// served a request (idle, it closes; busy, it closes after its response), and otherwise only
/// after `window`.
///
/// The exception is what makes a restart lose nothing. A connection the kernel accepted just
/// before shutdown usually has its request on the way, unread: closing it then — hyper's
/// graceful shutdown closes a connection that has no request yet — would reset it, and the
/// client sees a failed request instead of the answer it would get a moment later. Given the
/// window, its request is read and answered, with `Connection: close` since the server is
/// draining, and the connection ends by itself.
pub(super) async fn serve_until_drained<S>(
    connection: http1::Connection<TokioIo<WatchedSocket>, S>,
    activity: &Activity,
    draining: &Draining,
    window: Duration,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = pin!(connection);
    let mut started = pin!(draining.started());
    let mut listening = false;
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
        Poll::Pending
    })
    .await;
    if let Some(result) = ended {
        return result;
    }
    if !activity.is_used()
        && let Ok(result) = tokio::time::timeout(window, connection.as_mut()).await
    {
        return result;
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}
