//! The registry's handle and what its clones share: the state under its lock, the limits, the
//! relay to other instances (and the [`Relay`] trait, which is handed the registry that holds
//! it), and the calls that only read or clear that state (a latest-state topic's newest value
//! among them). What stores a connection is in `connection.rs`; what delivers and publishes,
//! in `delivery.rs`; what counts, in `presence.rs`.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak, atomic::AtomicU64},
    time::{SystemTime, UNIX_EPOCH},
};

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::{
    index::{Entry, Index},
    key::{Key, Pattern},
    latest::{Topic, Topics, Version},
    outbox::next_seq,
    outgoing::Outgoing,
    probe::Probes,
    relay::RelayCounts,
    stats::{CloseReason, Counts, Stats},
    stream_limits::Limits,
    tally::Counted,
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
///   [`RelayPort`](super::RelayPort) trait (what arrives from the other instances, what is shared
///   with them), which only a relay imports; besides, [`attach_relay`](Self::attach_relay) at start
///   and [`downgrade`](Self::downgrade) for a reference that does not keep the registry alive.
///
/// The serving layer's own calls (the keep-alive round, the address it serves at) are not
/// public.
#[derive(Clone)]
pub struct Registry {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    /// A std mutex, not tokio's: it is never held across an `.await`, and every critical
    /// section is a short in-memory walk with non-blocking pushes.
    pub(super) state: Mutex<State>,
    pub(super) next_id: AtomicU64,
    pub(super) queue_limit: usize,
    pub(super) max_connections: usize,
    pub(super) max_per_client: usize,
    /// Set once, at start, when broadcasts go to other instances too.
    pub(super) relay: OnceLock<Arc<dyn Relay>>,
    /// When this registry started: the epoch of the versions it hands out on its own.
    pub(super) epoch: u64,
    /// Tells this registry's local versions apart from another instance's.
    pub(super) origin: u16,
    /// What it has done, for metrics.
    pub(super) stats: Stats,
    /// How long sampled events take to reach their streams, once metrics ask.
    pub(super) probes: Probes,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) index: Index,
    /// Set by [`Registry::shut_down`]: later connections are refused.
    pub(super) shut_down: bool,
    /// Every latest-state topic heard of (see `latest/topics.rs`).
    pub(super) topics: Topics,
    /// The presences counted here (see `presence.rs`): a few, each checked at every store and
    /// removal of a key.
    pub(super) presences: Vec<Counted>,
    /// Told of every change of a presence's count here (see `presence.rs`).
    pub(super) presence_changed: Arc<tokio::sync::Notify>,
    /// How much one client may add to a presence count (see `presence.rs`).
    pub(super) presence_per_client: usize,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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

    /// The newest value of `topic` delivered here, if any.
    pub fn latest<T: DeserializeOwned>(&self, topic: &Topic<T>) -> Option<T> {
        let json = {
            let state = self.shared.lock();
            Arc::clone(state.topics.newest(topic.name())?.value.as_ref()?)
        };
        serde_json::from_str(&json)
            .inspect_err(|error| {
                tracing::warn!(topic = topic.name(), %error, "stored value does not parse");
            })
            .ok()
    }

    /// The newest version of the topic called `topic` delivered here, if any.
    pub fn latest_version(&self, topic: &str) -> Option<Version> {
        Some(self.shared.lock().topics.newest(topic)?.version)
    }

    /// The newest version of `topic` seen or handed out here (what a relay's numbering must
    /// stay above).
    pub(crate) fn newest_version_known(&self, topic: &str) -> Option<Version> {
        self.shared.lock().topics.newest_known(topic)
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

/// Carries broadcasts between instances, and numbers latest-state versions for all of them.
pub trait Relay: Send + Sync + fmt::Debug {
    /// Takes one broadcast from this instance, to be delivered on every instance.
    ///
    /// The promise to keep: this instance's own matching streams get it exactly once, through
    /// [`RelayPort::deliver`](super::RelayPort::deliver) — whether it goes round through the other
    /// instances first or cannot be sent anywhere. Returns how many local streams got it right
    /// away.
    fn relay(&self, registry: &Registry, outgoing: Outgoing) -> usize;

    /// The next version of the latest-state topic called `topic`, from the numbering every
    /// instance shares, kept above `newest` (the newest version this instance knows, if any).
    /// `None` when the numbering cannot be reached now; the registry then numbers locally.
    fn next_version<'a>(
        &'a self,
        topic: &'a str,
        newest: Option<Version>,
    ) -> BoxFuture<'a, Option<Version>>;

    /// Whether broadcasts from other instances are arriving (for health checks).
    fn is_connected(&self) -> bool;

    /// Messages from other instances refused so far (unsigned, forged, too large, malformed,
    /// for another app, too old, copies), and shared state found not to be trusted.
    fn rejected(&self) -> u64;

    /// What it has done so far, for metrics. (A relay that counts nothing says zeros.)
    fn counts(&self) -> RelayCounts {
        RelayCounts::default()
    }

    /// The server serves at `addr`: where this instance is, which names what it shares with
    /// the others (a relay that shares nothing under a name ignores it).
    fn serving_at(&self, _addr: std::net::SocketAddr) {}

    /// Completes once every broadcast taken so far has been sent on (or given up on): the
    /// server waits for it, within its shutdown timeout, before the process exits.
    fn flush(&self) -> BoxFuture<'_, ()>;
}
