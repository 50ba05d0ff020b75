//! What the registry has done, counted for an operator (the `metrics` module exposes it).
//!
//! Counted always, whether or not anyone scrapes it, so it must cost nothing a benchmark can
//! see on the fan-out path. Events and bytes written are the only counts made once per stream
//! per event: each stream adds them up in its own fields and hands the sums over when it has
//! nothing more to write (one add per wake, not per event), into one of [`SHARDS`] counters
//! picked by its id, each on a cache line of its own, so streams on different cores rarely
//! write the same line. Everything else is counted once per publish or per stream opened and
//! closed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::stream_limits::ConnectError;

/// Why a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client went away (closed the tab, navigated, lost the network).
    ClientLeft,
    /// The client stopped reading: its socket (or HTTP/2 stream) stayed unwritable for the
    /// send timeout and was cut off.
    SendTimeout,
    /// Another stream was stored under its key (the same tab reconnected).
    Replaced,
    /// The app closed it ([`Registry::close`](super::Registry::close)).
    Closed,
    /// More ordinary events were queued for it than its queue limit.
    QueueFull,
    /// The server shut down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in the order of [`Counts::closed`].
    pub const ALL: [CloseReason; 6] = [
        CloseReason::ClientLeft,
        CloseReason::SendTimeout,
        CloseReason::Replaced,
        CloseReason::Closed,
        CloseReason::QueueFull,
        CloseReason::Shutdown,
    ];

    /// Its name as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientLeft => "client_left",
            CloseReason::SendTimeout => "send_timeout",
            CloseReason::Replaced => "replaced",
            CloseReason::Closed => "closed",
            CloseReason::QueueFull => "queue_full",
            CloseReason::Shutdown => "shutdown",
        }
    }

    pub(super) fn from_index(index: u8) -> CloseReason {
        CloseReason::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or(CloseReason::ClientLeft)
    }

    pub(super) fn index(self) -> u8 {
        CloseReason::ALL
            .iter()
            .position(|reason| *reason == self)
            .unwrap_or(0) as u8
    }
}

/// Why a stream was refused: the names of [`ConnectError`]'s variants as label values, in the
/// order of [`Counts::refused`].
pub const REFUSALS: [&str; 3] = ["max_streams", "max_streams_per_client", "shutting_down"];

/// Counters of written events are split this many ways.
const SHARDS: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct Shard {
    events: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Default)]
pub(super) struct Stats {
    opened: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    refused: [AtomicU64; REFUSALS.len()],
    published_ordinary: AtomicU64,
    published_latest: AtomicU64,
    written: [Shard; SHARDS],
}

impl Stats {
    pub(super) fn opened(&self) {
        self.opened.fetch_add(1, Relaxed);
    }

    pub(super) fn closed(&self, reason: CloseReason) {
        self.closed[usize::from(reason.index())].fetch_add(1, Relaxed);
    }

    pub(super) fn refused(&self, error: ConnectError) {
        let at = match error {
            ConnectError::Full(_) => 0,
            ConnectError::ClientFull(_) => 1,
            ConnectError::ShuttingDown => 2,
        };
        self.refused[at].fetch_add(1, Relaxed);
    }

    pub(super) fn published(&self, latest: bool) {
        match latest {
            true => &self.published_latest,
            false => &self.published_ordinary,
        }
        .fetch_add(1, Relaxed);
    }

    /// Adds what stream `id` wrote since it last handed its sums over.
    pub(super) fn wrote(&self, id: u64, written: &mut Written) {
        if written.events == 0 && written.bytes == 0 {
            return;
        }
        let shard = &self.written[(id as usize) % SHARDS];
        shard.events.fetch_add(written.events, Relaxed);
        shard.bytes.fetch_add(written.bytes, Relaxed);
        *written = Written::default();
    }

    pub(super) fn counts(&self) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Relaxed);
        Counts {
            opened: load(&self.opened),
            closed: self.closed.each_ref().map(load),
            refused: self.refused.each_ref().map(load),
            published_ordinary: load(&self.published_ordinary),
            published_latest: load(&self.published_latest),
            events_written: self.written.iter().map(|shard| load(&shard.events)).sum(),
            bytes_written: self.written.iter().map(|shard| load(&shard.bytes)).sum(),
            open_by_page: Vec::new(),
        }
    }
}

/// What one stream has written and not yet handed over (its own, so counting a write touches
/// nothing shared).
#[derive(Default, Debug, Clone, Copy)]
pub(super) struct Written {
    pub(super) events: u64,
    pub(super) bytes: u64,
}

/// The registry's counts since it was made (see [`Registry::counts`](super::Registry::counts)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Streams stored.
    pub opened: u64,
    /// Streams ended, by reason, in the order of [`CloseReason::ALL`].
    pub closed: [u64; CloseReason::ALL.len()],
    /// Streams refused, in the order of [`REFUSALS`].
    pub refused: [u64; REFUSALS.len()],
    /// Ordinary broadcasts and sends made on this instance.
    pub published_ordinary: u64,
    /// Latest-state versions published on this instance.
    pub published_latest: u64,
    /// Events written to streams (keep-alive comments not counted), as streams last handed
    /// them over: a stream hands over whenever it has written all it had.
    pub events_written: u64,
    /// Their bytes.
    pub bytes_written: u64,
    /// Streams open now, by their key without its last segment (`page/home` for the tabs of
    /// the home page), sorted.
    pub open_by_page: Vec<(String, usize)>,
}

impl Counts {
    /// Streams ended for `reason`.
    pub fn closed_by(&self, reason: CloseReason) -> u64 {
        self.closed[usize::from(reason.index())]
    }
}
