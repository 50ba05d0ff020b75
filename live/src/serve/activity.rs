//! Requests in flight on one connection: what the socket (`watched_socket.rs`: idle only when there
//! are none) and the drain (`drain.rs`: a connection with none may be closed, one that never
//! had one may have it on the way) both ask about it.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// Requests in flight on one connection, shared by the connection's service (which counts
/// them) and its socket (which is idle only when there are none).
#[derive(Debug, Default)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// Whether any request has started: a connection without one may have it on the way.
    used: AtomicBool,
}

impl Activity {
    /// A request started; it ends when the returned guard is dropped (with its response body,
    /// once that has been sent).
    pub(super) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.used.store(true, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// Whether a request has started on this connection.
    pub(super) fn is_used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// Whether no request is in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// One request in flight; see [`Activity::start`].
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
