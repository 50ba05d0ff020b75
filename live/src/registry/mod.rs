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

mod index;
mod key;
mod latest;
mod outbox;
mod relay;
mod slot;
mod socket;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::Stream;
use serde::{Serialize, de::DeserializeOwned};

use self::{
    index::{Entry, Index},
    outbox::{Next, Outbox, Push, next_seq},
    slot::{Follow, Published, Slot},
};
pub use self::{
    key::{Key, KeyError, Pattern, WILDCARD},
    latest::{Topic, Version, VersionError, is_topic_name},
    relay::Relay,
    socket::{Requests, STREAM_SEND_BUFFER, SocketControl},
};
use crate::sse::Frame;

/// Ordinary (not latest-state) frames one connection may have queued at once.
///
/// A tab that reads never gets near it: latest-state events are not queued (a stream reads the
/// newest from its topic's slot), and a stream's task writes everything queued each time it
/// runs. Reaching it
/// takes more than a thousand un-coalescable events sent to one tab faster than they can be
/// written; the connection is then cut off (the tab reconnects and gets the current state)
/// instead of holding more memory. Each queued frame costs one shared pointer, so the limit
/// bounds a stream's queue to a few tens of KiB whatever the burst.
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;

/// The shared registry of open connections. Clones share the same registry.
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
}

#[derive(Default)]
struct State {
    index: Index,
    /// Set by [`Registry::shut_down`]: later connections are refused.
    shut_down: bool,
    topics: HashMap<Arc<str>, TopicState>,
}

/// What the registry knows of one latest-state topic.
#[derive(Default)]
struct TopicState {
    /// The newest version known here, with its value and event: what pages render and new
    /// streams start with. A version published here is known at once, before it has gone round
    /// through the relay, so a page loaded right after the post that made it shows it.
    newest: Option<Arc<Published>>,
    /// The newest version delivered to the streams, and the streams that follow the topic.
    slot: Arc<Slot>,
    /// The newest version handed out here (it may not be published yet).
    assigned: Option<Version>,
}

impl TopicState {
    fn newest_known(&self) -> Option<Version> {
        let delivered = self.newest.as_ref().map(|newest| newest.version);
        delivered.max(self.assigned)
    }
}

impl Outgoing {
    /// This broadcast as a published version of its topic, at place `seq` in the order of
    /// events.
    fn published(&self, latest: &LatestState, seq: u64) -> Arc<Published> {
        Arc::new(Published {
            version: latest.version,
            value: latest.value.clone(),
            frame: self.frame.clone(),
            pattern: self.pattern.clone(),
            except: self.except.clone(),
            seq,
        })
    }
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

/// Why [`Registry::connect`] refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The registry already holds its maximum number of connections.
    #[error("too many open streams (at most {0}); try again later")]
    Full(usize),
    /// The client already holds its maximum number of connections.
    #[error("too many open streams from your address (at most {0}); close some tabs")]
    ClientFull(usize),
    /// The server is shutting down.
    #[error("the server is shutting down; reconnect in a moment")]
    ShuttingDown,
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

/// How much a registry holds. The default: no caps, and [`DEFAULT_QUEUE_LIMIT`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections at once; beyond it a new key is refused ([`ConnectError::Full`]).
    pub max_connections: usize,
    /// Connections of one client address at once ([`ConnectError::ClientFull`]).
    pub max_per_client: usize,
    /// Ordinary frames one connection may have queued (see [`DEFAULT_QUEUE_LIMIT`]).
    pub queue_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: usize::MAX,
            max_per_client: usize::MAX,
            queue_limit: DEFAULT_QUEUE_LIMIT,
        }
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
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(1),
                queue_limit: limits.queue_limit.max(1),
                max_connections: limits.max_connections,
                max_per_client: limits.max_per_client,
                relay: OnceLock::new(),
                epoch,
                origin: rand_origin(),
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
        let mut follows = Vec::with_capacity(options.topics.len());
        let entry = Entry {
            id,
            key: key.clone(),
            outbox: Arc::clone(&outbox),
            socket: options.socket,
            client: options.client,
        };
        let replaced = {
            let mut state = self.shared.lock();
            if state.shut_down {
                return Err(ConnectError::ShuttingDown);
            }
            let is_new = state.index.get(&key).is_none();
            if is_new && state.index.len() >= self.shared.max_connections {
                return Err(ConnectError::Full(self.shared.max_connections));
            }
            if is_new
                && let Some(client) = options.client
                && state.index.of_client(client) >= self.shared.max_per_client
            {
                return Err(ConnectError::ClientFull(self.shared.max_per_client));
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
            state.index.insert(entry)
        };
        tracing::debug!(%key, "stream opened");
        let connection = Connection {
            outbox,
            follows,
            guard: Guard {
                shared: Arc::clone(&self.shared),
                key,
                id,
                opened: Instant::now(),
            },
        };
        Ok((connection, replaced.map(|old| Replaced { old })))
    }

    /// Queues `frame` for the connection under `key`. Returns whether it was queued.
    pub fn send(&self, key: &Key, frame: Frame) -> bool {
        // Keys are instance-local, so this never goes through a relay. A key is the pattern
        // that matches only itself: delivery and overflow are the broadcast's own.
        let outgoing = Outgoing {
            pattern: Pattern::from(key),
            except: Vec::new(),
            frame,
            latest: None,
        };
        self.deliver(&outgoing) > 0
    }

    /// Queues `frame` for every connection whose key `pattern` matches. Returns how many
    /// connections it was queued for on this instance right away. (With a relay the broadcast
    /// may go round through the other instances first, so every instance delivers it in the
    /// same order; it then returns 0.)
    pub fn broadcast(&self, pattern: &Pattern, frame: &Frame) -> usize {
        self.broadcast_except(pattern, &[], frame)
    }

    /// Like [`Registry::broadcast`], skipping the connections stored under `except` (say, the
    /// tab that caused the event and already shows it).
    pub fn broadcast_except(&self, pattern: &Pattern, except: &[Key], frame: &Frame) -> usize {
        self.route(Outgoing {
            pattern: pattern.clone(),
            except: except.to_vec(),
            frame: frame.clone(),
            latest: None,
        })
    }

    /// Publishes a new version of the latest-state `topic` to every stream `pattern` matches.
    ///
    /// The registry numbers the version first (shared by every instance when a relay is
    /// attached, falling back to local numbers while it cannot), then `make` turns that number
    /// into the value and its event — say, greeting #7 and the patch that shows it. The value is
    /// kept as the topic's newest (see [`Registry::latest`]), and streams that are behind skip
    /// straight to this version. If a newer version was published meanwhile, this one is
    /// dropped: racing updates never leave a tab on the older one.
    pub async fn publish_latest<T, E>(
        &self,
        topic: &Topic<T>,
        pattern: &Pattern,
        make: impl FnOnce(u64) -> Result<(T, Frame), E>,
    ) -> Result<T, E>
    where
        T: Serialize,
    {
        let version = self.next_version(topic.name()).await;
        let (value, frame) = make(version.display_number())?;
        let json = match serde_json::to_string(&value) {
            Ok(json) => Some(Arc::from(json)),
            Err(error) => {
                tracing::error!(topic = topic.name(), %error, "cannot store the value as JSON");
                None
            }
        };
        let latest = LatestState {
            topic: topic.name().into(),
            version,
            value: json,
        };
        let outgoing = Outgoing {
            pattern: pattern.clone(),
            except: Vec::new(),
            frame,
            latest: Some(latest.clone()),
        };
        {
            let mut state = self.shared.lock();
            let (_, known) = state.topic(&latest.topic);
            if known
                .newest
                .as_ref()
                .is_none_or(|newest| newest.version < version)
            {
                known.newest = Some(outgoing.published(&latest, next_seq()));
            }
        }
        self.route(outgoing);
        Ok(value)
    }

    /// The newest value of `topic` delivered here, if any.
    pub fn latest<T: DeserializeOwned>(&self, topic: &Topic<T>) -> Option<T> {
        let json = {
            let state = self.shared.lock();
            let newest = state.topics.get(topic.name())?.newest.as_ref()?;
            Arc::clone(newest.value.as_ref()?)
        };
        serde_json::from_str(&json)
            .inspect_err(|error| {
                tracing::warn!(topic = topic.name(), %error, "stored value does not parse");
            })
            .ok()
    }

    /// The newest version of the topic called `topic` delivered here, if any.
    pub fn latest_version(&self, topic: &str) -> Option<Version> {
        let state = self.shared.lock();
        Some(state.topics.get(topic)?.newest.as_ref()?.version)
    }

    /// The newest version of every latest-state topic delivered here, as the broadcasts that
    /// delivered them (for a relay bringing other instances up to date).
    pub fn latest_broadcasts(&self) -> Vec<Outgoing> {
        let state = self.shared.lock();
        state
            .topics
            .iter()
            .filter_map(|(topic, known)| {
                let newest = known.newest.as_ref()?;
                Some(Outgoing {
                    pattern: newest.pattern.clone(),
                    except: newest.except.clone(),
                    frame: newest.frame.clone(),
                    latest: Some(LatestState {
                        topic: Arc::clone(topic),
                        version: newest.version,
                        value: newest.value.clone(),
                    }),
                })
            })
            .collect()
    }

    /// The newest version of `topic` seen or handed out here (what a relay's numbering must
    /// stay above).
    pub fn newest_known(&self, topic: &str) -> Option<Version> {
        self.shared.lock().topics.get(topic)?.newest_known()
    }

    async fn next_version(&self, topic: &str) -> Version {
        let Some(relay) = self.shared.relay.get() else {
            // This process numbers on its own, from its start time as the epoch.
            let epoch = self.shared.epoch;
            return self.assign(topic, |newest| {
                Version::new(epoch, newest.map_or(0, |v| v.display_number()) + 1)
            });
        };
        let seen = self.newest_known(topic).map_or(0, |v| v.display_number());
        match relay.next_version(topic, seen).await {
            Some(version) => self.assign(topic, |_| version),
            None => {
                // The shared numbering is out of reach: number after the newest we know.
                let origin = self.shared.origin;
                self.assign(topic, |newest| {
                    newest.unwrap_or_default().next_local(origin)
                })
            }
        }
    }

    fn assign(&self, topic: &str, next: impl FnOnce(Option<Version>) -> Version) -> Version {
        let mut state = self.shared.lock();
        let (_, topic) = state.topic(topic);
        let version = next(topic.newest_known());
        topic.assigned = topic.assigned.max(Some(version));
        version
    }

    fn route(&self, outgoing: Outgoing) -> usize {
        match self.shared.relay.get() {
            Some(relay) => relay.relay(self, outgoing),
            None => self.deliver(&outgoing),
        }
    }

    /// Delivers a broadcast to the matching connections of this instance, and returns how many
    /// got it. For [`Relay`]s: every broadcast must reach each instance's `deliver` once.
    ///
    /// An ordinary broadcast is queued for every connection `pattern` matches. A latest-state
    /// version is stored once, in its topic's slot, and wakes the streams that follow the topic
    /// (each then writes it if `pattern` matches its key); it returns how many follow it. A
    /// version older than (or as old as) the newest delivered here is dropped, and returns 0.
    pub fn deliver(&self, outgoing: &Outgoing) -> usize {
        match &outgoing.latest {
            Some(latest) => self.deliver_latest(outgoing, latest),
            None => self.deliver_queued(outgoing),
        }
    }

    fn deliver_latest(&self, outgoing: &Outgoing, latest: &LatestState) -> usize {
        let (waiting, followers) = {
            let mut state = self.shared.lock();
            let (_, known) = state.topic(&latest.topic);
            if known
                .newest
                .as_ref()
                .is_some_and(|newest| newest.version > latest.version)
            {
                return 0; // superseded before it arrived
            }
            // Taking its place in the order under the registry's lock keeps it in the same
            // place relative to ordinary broadcasts on every stream.
            let published = outgoing.published(latest, next_seq());
            let Some(waiting) = known.slot.publish(Arc::clone(&published)) else {
                return 0; // delivered already, or superseded
            };
            if known
                .newest
                .as_ref()
                .is_none_or(|newest| newest.version < latest.version)
            {
                known.newest = Some(published);
            }
            (waiting, known.slot.followers())
        };
        // Outside the lock: waking a task is cheap, but ten thousand of them are not free.
        for outbox in waiting {
            outbox.wake();
        }
        followers
    }

    fn deliver_queued(&self, outgoing: &Outgoing) -> usize {
        self.push(outgoing, Some(&outgoing.pattern), |_| true)
    }

    /// Sends [`Frame::keep_alive`] to every stream that has written nothing since the last
    /// call, and returns how many. The server calls it every `SSE_KEEP_ALIVE_SECS`, so a quiet
    /// stream gets a comment one to two periods after its last event: one timer for every
    /// stream, instead of one per stream reset at each event.
    pub fn keep_alive(&self) -> usize {
        let outgoing = Outgoing {
            pattern: Pattern::any(1), // not used: every connection is visited
            except: Vec::new(),
            frame: Frame::keep_alive(),
            latest: None,
        };
        self.push(&outgoing, None, |entry| entry.outbox.was_quiet())
    }

    /// Queues `outgoing` for the connections `pattern` matches (every one, without a pattern)
    /// that `only` accepts, and cuts off those whose queue overflows.
    fn push(
        &self,
        outgoing: &Outgoing,
        pattern: Option<&Pattern>,
        only: impl Fn(&Entry) -> bool,
    ) -> usize {
        // Excluded keys are few (the sender's own tab): a list is fastest. A long list, from
        // whoever can publish to a relay, must not make every match a linear scan.
        let except_set: Option<HashSet<&Key>> =
            (outgoing.except.len() > 8).then(|| outgoing.except.iter().collect());
        let excluded = |key: &Key| match &except_set {
            Some(set) => set.contains(key),
            None => outgoing.except.contains(key),
        };
        let mut delivered = 0;
        let mut overflowed = Vec::new();
        let mut gone = Vec::new();
        let mut state = self.shared.lock();
        let seq = next_seq();
        let mut visit = |entry: &Entry| {
            if excluded(&entry.key) || !only(entry) {
                return;
            }
            match entry.outbox.push(seq, outgoing.frame.clone()) {
                Push::Queued => delivered += 1,
                Push::Overflow => overflowed.push((entry.key.clone(), entry.id)),
                Push::Closed => gone.push((entry.key.clone(), entry.id)),
            }
        };
        match pattern {
            Some(pattern) => state.index.for_each_match(pattern, &mut visit),
            None => state.index.for_each(&mut visit),
        }
        let removed: Vec<Entry> = overflowed
            .iter()
            .chain(&gone)
            .filter_map(|(key, id)| state.index.remove(key, Some(*id)))
            .collect();
        drop(state);
        for entry in &removed {
            if overflowed.iter().any(|(_, id)| *id == entry.id) {
                tracing::warn!(
                    key = %entry.key,
                    limit = self.shared.queue_limit,
                    "stream more than its queue limit of events behind: cut off"
                );
                entry.cut_off();
            }
        }
        drop(removed); // outside the lock: ending a stream wakes its task
        delivered
    }

    /// How many connections `pattern` matches.
    pub fn count(&self, pattern: &Pattern) -> usize {
        let mut count = 0;
        self.shared
            .lock()
            .index
            .for_each_match(pattern, |_| count += 1);
        count
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
                .filter_map(|(key, id)| state.index.remove(&key, Some(id)))
                .collect()
        };
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
                entry.outbox.push(seq, last.clone());
            });
            std::mem::take(&mut state.index)
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

    /// Whether [`Registry::shut_down`] has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.lock().shut_down
    }
}

impl State {
    /// The topic called `name`, created if it is new, with its shared name.
    fn topic(&mut self, name: &str) -> (Arc<str>, &mut TopicState) {
        let name: Arc<str> = match self.topics.get_key_value(name) {
            Some((name, _)) => Arc::clone(name),
            None => {
                let name: Arc<str> = name.into();
                self.topics.insert(Arc::clone(&name), TopicState::default());
                name
            }
        };
        let known = self.topics.get_mut(&name).expect("the topic is there");
        (name, known)
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

/// The receiving end of a stored connection: a stream of the frames pushed to its key.
///
/// It is also the connection's drop guard: dropping it removes the entry from the registry
/// (unless a newer connection has replaced it under the same key).
pub struct Connection {
    outbox: Arc<Outbox>,
    /// The latest-state topics it follows.
    follows: Vec<Follow>,
    guard: Guard,
}

impl Connection {
    /// The key this connection is stored under.
    pub fn key(&self) -> &Key {
        &self.guard.key
    }

    /// Whether a version of the topic called `topic` is queued or was sent: after
    /// [`Registry::connect`], whether the stream starts with one (or the page must show that
    /// there is none yet).
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
                Next::Frame(frame) => {
                    if !frame.is_keep_alive() {
                        this.outbox.wrote();
                    }
                    return Poll::Ready(Some(frame));
                }
                Next::End => return Poll::Ready(None),
                Next::Latest => {
                    let (at, unsent) = latest.expect("`next` offered a version");
                    let follow = &mut this.follows[at];
                    follow.sent(unsent.version);
                    if follow.is_for(&unsent, &this.guard.key) {
                        this.outbox.wrote();
                        return Poll::Ready(Some(unsent.frame.clone()));
                    }
                    // Not meant for this key: look again.
                }
                Next::Pending if registered => return Poll::Pending,
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

struct Guard {
    shared: Arc<Shared>,
    key: Key,
    id: u64,
    opened: Instant,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let removed = self.shared.lock().index.remove(&self.key, Some(self.id));
        // `removed` is `None` when the registry ended the stream (close, replacement, a queue
        // overflow, shutdown); `Some` when the client went away first.
        tracing::debug!(
            key = %self.key,
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
    old: Entry,
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

#[cfg(test)]
mod tests;
