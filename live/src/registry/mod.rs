//! The connection registry: where persistent streams live, so actions can reach them.
//!
//! A stream handler stores its connection under a [`Key`] (`page/home/<session-id>`) with
//! [`Registry::connect`]; any later action pushes [`Frame`]s to one key ([`Registry::send`]) or
//! to every key a [`Pattern`] matches ([`Registry::broadcast`]), or publishes a new version of
//! a latest-state [`Topic`] ([`Registry::publish_latest`]).
//!
//! What this gets right that a map of senders with a TTL does not:
//!
//! - **Cleanup is owned by drop.** The [`Connection`] handed to the stream is also its drop
//!   guard: when the client goes away, hyper drops the response body, the body drops the
//!   connection, and the entry leaves the registry at once. Code placed after a stream's loop
//!   would never run for a dropped stream; a timer would leak until it fires.
//! - **Same key, one connection.** Storing under a key that is taken replaces the old
//!   connection and ends its stream; the caller gets a [`Replaced`] handle to send it a last
//!   word first.
//! - **A healthy viewer is never dropped.** A broadcast never waits, and a long queue is not a
//!   reason to drop anyone: it only says the server is behind (`outbox.rs`). Ordinary events
//!   are all delivered, in order, up to a generous limit per stream. Clients that stop reading
//!   are found by the server's send timeout instead, which watches the socket itself.
//! - **A latest-state publish costs O(1).** A topic's newest version sits in one slot
//!   (`slot.rs`, the shape of tokio's `watch`); publishing swaps it and wakes the streams that
//!   wait for it. A stream that wakes writes the newest version it has not sent, so a burst of
//!   1 024 publishes costs about what one does: the work follows the frames written.
//! - **Encode once.** A broadcast clones one [`Frame`] — a reference-counted byte buffer — into
//!   each outbox; a latest-state version is one frame in its slot, read by every stream.
//! - **Cost follows the matches.** Keys live in a trie of segments (`index.rs`), so a broadcast
//!   visits only the branches its pattern can match.
//! - **Never backwards.** Versions of a latest-state topic are totally ordered ([`Version`]),
//!   and the registry and every outbox refuse one older than what they have seen.
//! - **Several instances.** A [`Relay`] attached at start carries broadcasts to other
//!   instances (the `redis` module provides one); the registry itself stays in-process.
//!
//! The files: `key.rs` (keys and patterns), `index.rs` (the trie), `outbox.rs` (a connection's
//! queue and waker), `connection.rs` (the stream's end and its drop guard), `delivery.rs`
//! (sending, broadcasting, keep-alive), `latest.rs` (versions and topics), `slot.rs` (a
//! topic's newest version and who waits for it), `topics.rs` (publishing and delivering
//! versions), `socket_control.rs` (what the registry may ask of a stream's TCP connection),
//! `relay.rs` (the hook other instances are reached through).

mod connection;
mod delivery;
mod index;
mod key;
mod latest;
mod outbox;
mod page;
mod presence;
mod probe;
mod relay;
mod slot;
mod socket_control;
mod stats;
mod stream_limits;
mod topics;

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

#[cfg(feature = "redis")]
pub(crate) use self::presence::PUBLISH_GAP as PRESENCE_PUBLISH_GAP;
pub(crate) use self::presence::is_name as is_presence_name;
pub use self::stream_limits::{ConnectError, DEFAULT_QUEUE_LIMIT, Limits};
// What the serving layer tells a stream's socket, and hears from it: not an app's concern.
pub(crate) use self::socket_control::{STREAM_SEND_BUFFER, SocketControl};
use self::{
    connection::Guard,
    index::{Entry, Index},
    outbox::{Outbox, next_seq},
    presence::Counted,
    probe::Probes,
    slot::Follow,
    stats::{Stats, Written},
    topics::TopicState,
};
pub use self::{
    connection::{Connection, Replaced},
    key::{Key, KeyError, Pattern, RedactedKey, WILDCARD},
    latest::{Topic, Version, VersionError, is_topic_name},
    page::Page,
    presence::Presence,
    relay::{Relay, RelayCounts, RelayPort},
    stats::{CloseReason, Counts, REFUSALS},
};
use crate::frame::Frame;

/// The shared registry of open connections. Clones share the same registry.
///
/// It has two faces:
/// - **what an app calls**: [`publish_latest`](Self::publish_latest) and
///   [`latest`](Self::latest) (a topic's newest state), [`broadcast`](Self::broadcast),
///   [`broadcast_except`](Self::broadcast_except) and [`send`](Self::send) (ordinary events),
///   [`presence`](Self::presence), [`count`](Self::count), [`keys`](Self::keys) and
///   [`close`](Self::close); a stream handler stores its connection through
///   [`Stream`](crate::Stream), not here;
/// - **what a [`Relay`] to other instances calls**, behind a port of its own: the
///   [`RelayPort`] trait (what arrives from the other instances, what is shared with them),
///   which only a relay imports; besides, [`attach_relay`](Self::attach_relay) at start and
///   [`downgrade`](Self::downgrade) for a reference that does not keep the registry alive.
///
/// The serving layer's own calls (the keep-alive round, the address it serves at) are not
/// public.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

struct Shared {
    /// A std mutex, not tokio's: it is never held across an `.await`, and every critical
    /// section is a short in-memory walk with non-blocking pushes.
    state: Mutex<State>,
    next_id: AtomicU64,
    queue_limit: usize,
    max_connections: usize,
    max_per_client: usize,
    /// Set once, at start, when broadcasts go to other instances too.
    relay: OnceLock<Arc<dyn Relay>>,
    /// When this registry started: the epoch of the versions it hands out on its own.
    epoch: u64,
    /// Tells this registry's local versions apart from another instance's.
    origin: u16,
    /// What it has done, for metrics.
    stats: Stats,
    /// How long sampled events take to reach their streams, once metrics ask.
    probes: Probes,
}

#[derive(Default)]
struct State {
    index: Index,
    /// Set by [`Registry::shut_down`]: later connections are refused.
    shut_down: bool,
    topics: HashMap<Arc<str>, TopicState>,
    /// The presences counted here (see `presence.rs`): a few, each checked at every store and
    /// removal of a key.
    presences: Vec<Counted>,
    /// Told of every change of a presence's count here (see `presence.rs`).
    presence_changed: Arc<tokio::sync::Notify>,
    /// How much one client may add to a presence count (see `presence.rs`).
    presence_per_client: usize,
}

/// One broadcast: what, to whom, and whether it is a version of a latest-state topic.
///
/// Public for [`Relay`] implementations, which carry it to other instances and deliver it with
/// [`Registry::deliver`].
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Which keys it is for.
    pub pattern: Pattern,
    /// Keys to skip.
    pub except: Vec<Key>,
    /// The event.
    pub frame: Frame,
    /// Set when the event is a version of a latest-state topic.
    pub latest: Option<LatestState>,
}

/// The latest-state part of an [`Outgoing`] broadcast.
#[derive(Clone, Debug)]
pub struct LatestState {
    /// The topic's name.
    pub topic: Arc<str>,
    /// This version.
    pub version: Version,
    /// The value, as JSON (what pages render from).
    pub value: Option<Arc<str>>,
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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the index half-updated in a way that
        // matters more than losing the registry, so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(Limits::default())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.len())
            .field("queue_limit", &self.shared.queue_limit)
            .finish()
    }
}

impl Registry {
    /// An empty registry within `limits`.
    pub fn new(limits: Limits) -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Registry {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    presence_per_client: limits.presence_per_client.max(1),
                    ..State::default()
                }),
                next_id: AtomicU64::new(1),
                queue_limit: limits.queue_limit.max(1),
                max_connections: limits.max_connections,
                max_per_client: limits.max_per_client,
                relay: OnceLock::new(),
                epoch,
                origin: rand_origin(),
                stats: Stats::default(),
                probes: Probes::default(),
            }),
        }
    }

    /// Sends every later broadcast through `relay` (to other instances). Only the first call
    /// has an effect.
    pub fn attach_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.shared.relay.set(relay);
    }

    /// The relay, if one is attached.
    pub fn relay(&self) -> Option<&Arc<dyn Relay>> {
        self.shared.relay.get()
    }

    /// A handle that does not keep the registry alive (for background tasks).
    pub fn downgrade(&self) -> WeakRegistry {
        WeakRegistry(Arc::downgrade(&self.shared))
    }

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
                let (name, known) = state.topic(topic);
                let slot = Arc::clone(&known.slot);
                let delivered = slot.newest().map(|newest| newest.version);
                let start = known
                    .newest
                    .as_ref()
                    .filter(|newest| Some(newest.version) > delivered)
                    .cloned();
                follows.push(Follow::new(slot, name, start));
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

    /// How many connections `pattern` matches.
    pub fn count(&self, pattern: &Pattern) -> usize {
        self.shared.lock().index.matching(pattern)
    }

    /// The keys `pattern` matches, sorted.
    pub fn keys(&self, pattern: &Pattern) -> Vec<Key> {
        let mut keys = Vec::new();
        self.shared
            .lock()
            .index
            .for_each_match(pattern, |entry| keys.push(entry.key.clone()));
        keys.sort();
        keys
    }

    /// Removes every connection `pattern` matches; their streams end once they have sent what is
    /// already queued. Returns how many were closed.
    pub fn close(&self, pattern: &Pattern) -> usize {
        let removed: Vec<Entry> = {
            let mut state = self.shared.lock();
            let mut matched = Vec::new();
            state
                .index
                .for_each_match(pattern, |entry| matched.push((entry.key.clone(), entry.id)));
            matched
                .into_iter()
                .filter_map(|(key, id)| state.remove(&key, id))
                .collect()
        };
        for entry in &removed {
            entry.outbox.ended_by(CloseReason::Closed);
        }
        removed.len()
    }

    /// Closes every connection, each after `last` (say, when to come back), and refuses later
    /// ones: the first step of a graceful shutdown, since a server waits for open response
    /// bodies to finish.
    pub fn shut_down(&self, last: &Frame) -> usize {
        let removed = {
            let mut state = self.shared.lock();
            state.shut_down = true;
            let seq = next_seq();
            state.index.for_each(|entry| {
                entry.outbox.ended_by(CloseReason::Shutdown);
                entry.outbox.push(seq, last.clone());
            });
            let removed = std::mem::take(&mut state.index);
            state.everyone_left();
            removed
        };
        removed.len()
    }

    /// Total number of stored connections.
    pub fn len(&self) -> usize {
        self.shared.lock().index.len()
    }

    /// Whether no connection is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the registry has done since it was made, and the streams open now by page: for
    /// metrics. Walks every stored connection (under the lock), so it is for a scrape every
    /// few seconds, not for every request.
    pub fn counts(&self) -> Counts {
        let mut by_page: HashMap<String, usize> = HashMap::new();
        self.shared.lock().index.for_each(|entry| {
            let page = entry
                .key
                .as_str()
                .rsplit_once('/')
                .map_or("", |(page, _)| page);
            match by_page.get_mut(page) {
                Some(open) => *open += 1,
                None => {
                    by_page.insert(page.to_owned(), 1);
                }
            }
        });
        let mut counts = self.shared.stats.counts();
        counts.open_by_page = by_page.into_iter().collect();
        counts.open_by_page.sort();
        counts
    }

    /// The server serves at `addr`; a relay may name what it shares after it
    /// ([`Relay::serving_at`]).
    pub(crate) fn serving_at(&self, addr: std::net::SocketAddr) {
        if let Some(relay) = self.relay() {
            relay.serving_at(addr);
        }
    }

    /// Whether [`Registry::shut_down`] has been called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shared.lock().shut_down
    }

    /// Starts timing deliveries, for metrics: how long a sampled event takes from its delivery
    /// here to its last write to a stream, into `latest` or `ordinary` by its kind (see
    /// `registry/probe.rs`). Only the first call has an effect; without one, nothing is timed.
    pub(crate) fn time_deliveries(
        &self,
        latest: prometheus_client::metrics::histogram::Histogram,
        ordinary: prometheus_client::metrics::histogram::Histogram,
    ) {
        self.shared.probes.record_into(latest, ordinary);
    }
}

/// A random tag for this registry's local versions; nothing depends on it being unique beyond
/// telling two instances' offline updates apart.
fn rand_origin() -> u16 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// A [`Registry`] handle that does not keep it alive.
#[derive(Clone, Debug)]
pub struct WeakRegistry(Weak<Shared>);

impl WeakRegistry {
    /// The registry, if it still exists.
    pub fn upgrade(&self) -> Option<Registry> {
        self.0.upgrade().map(|shared| Registry { shared })
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
