//! The stream's side of a stored connection, and the drop guard that removes it.

use std::{
    fmt,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Instant,
};

use futures_util::Stream;

use super::{
    index::Entry,
    key::Key,
    latest::{Follow, Published},
    outbox::{Next, Outbox, Push, next_seq},
    shared::{Registry, Shared},
    socket_control::SocketControl,
    stats::{CloseReason, Written},
    stream_limits::ConnectError,
};
use crate::frame::Frame;

/// The receiving end of a stored connection: a stream of the frames pushed to its key.
///
/// It is also the connection's drop guard: dropping it removes the entry from the registry
/// (unless a newer connection has replaced it under the same key).
pub struct Connection {
    pub(super) outbox: Arc<Outbox>,
    /// The latest-state topics it follows.
    pub(super) follows: Vec<Follow>,
    /// What it wrote since it last handed that over to the registry's counts.
    pub(super) written: Written,
    pub(super) guard: Guard,
}

impl Connection {
    /// Counts an event about to be written: the ones it yields, and those its stream sends
    /// before them ([`crate::sse::EventStream`]'s first frames).
    pub(crate) fn writes(&mut self, frame: &Frame) {
        self.written.events += 1;
        self.written.bytes += frame.as_bytes().len() as u64;
    }

    /// Hands what it wrote over to the registry's counts: when it has nothing more to write.
    fn hand_over(&mut self) {
        self.guard
            .shared
            .stats
            .wrote(self.guard.id, &mut self.written);
    }
}

impl Connection {
    /// The key this connection is stored under.
    pub fn key(&self) -> &Key {
        &self.guard.key
    }

    /// Whether a version of the topic called `topic` is queued or was sent: after
    /// [`Registry::connect`](crate::Registry::connect), whether the stream starts with one (or the
    /// page must show that there is none yet).
    pub fn has_version_of(&self, topic: &str) -> bool {
        self.follows
            .iter()
            .any(|follow| &*follow.topic == topic && follow.has_version(&self.guard.key))
    }
}

impl Stream for Connection {
    type Item = Frame;

    /// The next frame: the oldest queued ordinary frame, or the newest unsent version of a
    /// followed topic, whichever came first in the order of events.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let this = self.get_mut();
        let mut registered = false;
        loop {
            let mut latest: Option<(usize, Arc<Published>)> = None;
            for (at, follow) in this.follows.iter_mut().enumerate() {
                if let Some(unsent) = follow.unsent(&this.outbox)
                    && latest
                        .as_ref()
                        .is_none_or(|(_, first)| unsent.seq < first.seq)
                {
                    latest = Some((at, unsent));
                }
            }
            match this
                .outbox
                .next(latest.as_ref().map(|(_, unsent)| unsent.seq))
            {
                Next::Frame(frame, probe) => {
                    if !frame.is_keep_alive() {
                        this.outbox.wrote();
                        this.writes(&frame);
                    }
                    if let Some(probe) = probe {
                        probe.wrote();
                    }
                    return Poll::Ready(Some(frame));
                }
                Next::End => {
                    this.hand_over();
                    return Poll::Ready(None);
                }
                Next::Latest => {
                    let (at, unsent) = latest.expect("`next` offered a version");
                    let follow = &mut this.follows[at];
                    follow.sent(unsent.version);
                    if follow.is_for(&unsent, &this.guard.key) {
                        this.outbox.wrote();
                        this.writes(&unsent.frame);
                        if let Some(probe) = &unsent.probe {
                            probe.wrote();
                        }
                        return Poll::Ready(Some(unsent.frame.clone()));
                    }
                    // Not meant for this key: look again.
                }
                Next::Pending if registered => {
                    this.hand_over();
                    return Poll::Pending;
                }
                Next::Pending => {
                    // Nothing now. Say which task to wake, then look once more: a push or a
                    // publish since the look above would otherwise wake nobody. (Registering
                    // only here spares the usual poll, which finds a frame, the cost.)
                    this.outbox.register(cx.waker());
                    registered = true;
                }
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.outbox.abandon();
        self.hand_over();
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("key", &self.guard.key)
            .field("id", &self.guard.id)
            .finish()
    }
}

pub(super) struct Guard {
    pub(super) shared: Arc<Shared>,
    /// The connection's outbox: says why the registry ended it, if it did.
    pub(super) outbox: Arc<Outbox>,
    pub(super) key: Key,
    pub(super) id: u64,
    pub(super) opened: Instant,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let removed = self.shared.lock().remove(&self.key, self.id);
        // `removed` is `None` when the registry ended the stream (close, replacement, a queue
        // overflow, shutdown); `Some` when the client went away first.
        let reason = match &removed {
            Some(entry) if entry.socket.as_ref().is_some_and(|s| s.is_timed_out()) => {
                CloseReason::SendTimeout
            }
            Some(_) => CloseReason::ClientLeft,
            None => self.outbox.end_reason(),
        };
        self.shared.stats.closed(reason);
        tracing::debug!(
            key = %self.key.redacted(),
            lifetime = ?self.opened.elapsed(),
            client_left = removed.is_some(),
            "stream closed",
        );
    }
}

/// A connection that was just replaced under its key. Its stream ends when this is dropped;
/// [`Replaced::farewell`] sends it one last frame first.
#[derive(Debug)]
pub struct Replaced {
    pub(super) old: Entry,
}

impl Replaced {
    /// The key the old connection was stored under.
    pub fn key(&self) -> &Key {
        &self.old.key
    }

    /// Queues a last `frame` for the old connection, then lets its stream end. Returns whether
    /// the frame was queued.
    pub fn farewell(self, frame: Frame) -> bool {
        self.old.outbox.push(next_seq(), frame) == Push::Queued
    }
}

/// How a stream is stored: see [`Registry::connect_with`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions<'a> {
    /// The TCP connection under the stream (the server puts one on every request): it is told
    /// it carries a stream, and cut off if the registry must drop the stream for good.
    pub socket: Option<SocketControl>,
    /// Latest-state topics the stream follows: it starts with the newest version of each, and
    /// gets every later one meant for its key. (Only followers get a topic's versions.)
    pub topics: &'a [&'a str],
    /// Who opened it, for the per-client cap (the server puts a `ClientAddr` on every
    /// request).
    pub client: Option<IpAddr>,
}

impl Registry {
    /// Stores a new connection under `key` and returns its receiving end, plus the connection
    /// it replaced, if the key was taken.
    ///
    /// Refused when the registry is full (a replacement does not count as new) or shut down.
    pub fn connect(&self, key: Key) -> Result<(Connection, Option<Replaced>), ConnectError> {
        self.connect_with(key, ConnectOptions::default())
    }

    /// [`Registry::connect`], with options. The stream follows each of `options.topics`,
    /// starting with its newest version (see [`Connection::has_version_of`]); following starts
    /// from the topic's slot, so an update in between can be neither lost nor sent twice.
    pub fn connect_with(
        &self,
        key: Key,
        options: ConnectOptions<'_>,
    ) -> Result<(Connection, Option<Replaced>), ConnectError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(socket) = &options.socket {
            socket.stream();
        }
        let outbox = Arc::new(Outbox::new(self.shared.queue_limit));
        let client = options.client;
        let mut follows = Vec::with_capacity(options.topics.len());
        let entry = Entry {
            id,
            key: key.clone(),
            outbox: Arc::clone(&outbox),
            socket: options.socket,
            client: options.client,
        };
        let refused = |error: ConnectError| {
            self.shared.stats.refused(error);
            Err(error)
        };
        let replaced = {
            let mut state = self.shared.lock();
            if state.shut_down {
                return refused(ConnectError::ShuttingDown);
            }
            let is_new = state.index.get(&key).is_none();
            if is_new && state.index.len() >= self.shared.max_connections {
                return refused(ConnectError::Full(self.shared.max_connections));
            }
            if is_new
                && let Some(client) = options.client
                && state.index.of_client(client) >= self.shared.max_per_client
            {
                return refused(ConnectError::ClientFull(self.shared.max_per_client));
            }
            for topic in options.topics {
                follows.push(state.topics.follow(topic));
            }
            let replaced = state.index.insert(entry);
            match &replaced {
                None => state.joined(&key, client),
                // The same tab, counted once; but if from another client, it is that client's
                // now (its share is bounded, not the first one's).
                Some(old) if old.client != client => {
                    state.left(&key, old.client);
                    state.joined(&key, client);
                }
                Some(_) => {}
            }
            replaced
        };
        if let Some(old) = &replaced {
            old.outbox.ended_by(CloseReason::Replaced);
        }
        self.shared.stats.opened();
        tracing::debug!(key = %key.redacted(), "stream opened");
        let connection = Connection {
            outbox: Arc::clone(&outbox),
            follows,
            written: Written::default(),
            guard: Guard {
                shared: Arc::clone(&self.shared),
                outbox,
                key,
                id,
                opened: Instant::now(),
            },
        };
        Ok((connection, replaced.map(|old| Replaced { old })))
    }
}
