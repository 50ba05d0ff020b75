//! The connection registry: where persistent streams live, so actions can reach them.
//!
//! A stream handler stores its connection under a [`Key`] (`page/home/<session-id>`) with
//! [`Registry::connect`]; any later action pushes [`Frame`]s to one key ([`Registry::send`]) or
//! to every key a [`Pattern`] matches ([`Registry::broadcast`]).
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
//! - **Back-pressure per connection.** Each connection has a bounded outbox. A broadcast never
//!   waits: a client whose outbox is full is dropped from the registry (its stream then ends)
//!   instead of slowing delivery to everyone else or growing memory without bound.
//! - **Encode once.** A broadcast clones one [`Frame`] — a reference-counted byte buffer — into
//!   each outbox.
//! - **Cost follows the matches.** Keys live in a trie of segments (`index.rs`), so a broadcast
//!   visits only the branches its pattern can match.
//! - **Several instances.** With the `redis` feature a `relay` sends broadcasts through Redis
//!   pub/sub, so streams on every instance get them (see `relay.rs`).

mod index;
mod key;
#[cfg(feature = "redis")]
pub mod relay;
#[cfg(feature = "redis")]
pub mod wire;

use std::{
    collections::HashMap,
    fmt,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use futures_util::Stream;
use tokio::sync::mpsc::{self, error::TrySendError};

use self::index::{Entry, Index};
pub use self::key::{Key, KeyError, Pattern, WILDCARD};
use crate::sse::Frame;

/// Frames a connection may have waiting before it counts as too slow and is dropped.
///
/// A browser reads an SSE stream as fast as it arrives, so a healthy client never has more than
/// a handful queued; 32 absorbs bursts (several actions at once, a dev reload) while bounding
/// what one stuck client can pin in memory to 32 shared frames.
pub const DEFAULT_OUTBOX_CAPACITY: usize = 32;

/// The shared registry of open connections. Clones share the same registry.
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

struct Shared {
    /// A std mutex, not tokio's: it is never held across an `.await`, and every critical
    /// section is a short in-memory walk with non-blocking `try_send`s.
    state: Mutex<State>,
    next_id: AtomicU64,
    outbox_capacity: usize,
    max_connections: usize,
    /// Set once, at start, when broadcasts go through Redis.
    #[cfg(feature = "redis")]
    relay: std::sync::OnceLock<relay::Relay>,
}

#[derive(Default)]
struct State {
    index: Index,
    /// Set by [`Registry::shut_down`]: later connections are refused.
    shut_down: bool,
    /// The last version broadcast per topic, for [`Registry::broadcast_latest`].
    latest: HashMap<String, u64>,
}

/// One broadcast: what, to whom, and whether it is a version of a "latest" topic.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
struct Outgoing {
    pattern: Pattern,
    except: Vec<Key>,
    frame: Frame,
    latest: Option<(String, u64)>,
    delivered_locally: bool,
}

/// Why [`Registry::connect`] refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The registry already holds its maximum number of connections.
    #[error("too many open streams (at most {0}); try again later")]
    Full(usize),
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
        Registry::new(DEFAULT_OUTBOX_CAPACITY, usize::MAX)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.len())
            .field("outbox_capacity", &self.shared.outbox_capacity)
            .finish()
    }
}

impl Registry {
    /// An empty registry whose connections queue at most `outbox_capacity` frames each, and
    /// which holds at most `max_connections` at once.
    pub fn new(outbox_capacity: usize, max_connections: usize) -> Self {
        Registry {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(1),
                outbox_capacity: outbox_capacity.max(1),
                max_connections,
                #[cfg(feature = "redis")]
                relay: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Sends every later broadcast through `relay` (Redis), so streams on every instance get
    /// it. Only the first call has an effect.
    #[cfg(feature = "redis")]
    pub fn attach_relay(&self, relay: relay::Relay) {
        let _ = self.shared.relay.set(relay);
    }

    /// The Redis relay, if one is attached.
    #[cfg(feature = "redis")]
    pub fn relay(&self) -> Option<&relay::Relay> {
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
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (outbox, inbox) = mpsc::channel(self.shared.outbox_capacity);
        let entry = Entry {
            id,
            key: key.clone(),
            outbox,
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
            state.index.insert(entry)
        };
        tracing::debug!(%key, "stream opened");
        let connection = Connection {
            inbox,
            guard: Guard {
                shared: Arc::clone(&self.shared),
                key,
                id,
                opened: Instant::now(),
            },
        };
        let replaced = replaced.map(|old| Replaced {
            key: old.key,
            outbox: old.outbox,
        });
        Ok((connection, replaced))
    }

    /// Queues `frame` for the connection under `key`. Returns whether it was queued.
    pub fn send(&self, key: &Key, frame: Frame) -> bool {
        // Keys are instance-local, so this never goes through a relay. A key is the pattern
        // that matches only itself: delivery and eviction are the broadcast's own.
        let outgoing = Outgoing {
            pattern: Pattern::from(key),
            except: Vec::new(),
            frame,
            latest: None,
            delivered_locally: false,
        };
        self.deliver_local(&outgoing) > 0
    }

    /// Queues `frame` for every connection whose key `pattern` matches. Returns how many
    /// connections it was queued for on this instance right away. (With a Redis relay the
    /// broadcast goes round through Redis, so every instance delivers it in the same order,
    /// and this returns 0.)
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
            delivered_locally: false,
        })
    }

    /// Broadcasts version `version` of a "latest state" `topic` (the latest greeting, say),
    /// unless a newer version of it has been broadcast already — across instances too, when
    /// they share Redis. Two actions racing each other can then never leave tabs showing the
    /// older state. Returns how many local connections got it at once.
    pub fn broadcast_latest(
        &self,
        pattern: &Pattern,
        frame: &Frame,
        topic: &str,
        version: u64,
    ) -> usize {
        self.route(Outgoing {
            pattern: pattern.clone(),
            except: Vec::new(),
            frame: frame.clone(),
            latest: Some((topic.to_owned(), version)),
            delivered_locally: false,
        })
    }

    fn route(&self, outgoing: Outgoing) -> usize {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.shared.relay.get() {
            return relay.broadcast(self, outgoing);
        }
        self.deliver_local(&outgoing)
    }

    /// Queues a broadcast for the matching connections of this instance.
    fn deliver_local(&self, outgoing: &Outgoing) -> usize {
        let mut delivered = 0;
        let mut failed = Vec::new();
        let mut state = self.shared.lock();
        if let Some((topic, version)) = &outgoing.latest {
            let last = state.latest.entry(topic.clone()).or_default();
            if *version <= *last {
                return 0; // superseded
            }
            *last = *version;
        }
        state.index.for_each_match(&outgoing.pattern, |entry| {
            if outgoing.except.contains(&entry.key) {
                return;
            }
            match entry.outbox.try_send(outgoing.frame.clone()) {
                Ok(()) => delivered += 1,
                Err(error) => failed.push((entry.key.clone(), entry.id, error)),
            }
        });
        let removed: Vec<_> = failed
            .iter()
            .filter_map(|(key, id, _)| state.index.remove(key, Some(*id)))
            .collect();
        drop(state);
        for (key, _, error) in &failed {
            log_eviction(key, error);
        }
        drop(removed); // outside the lock: dropping a sender wakes its stream
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

    /// Closes every connection and refuses later ones: the first step of a graceful shutdown,
    /// since a server waits for open response bodies to finish.
    pub fn shut_down(&self) -> usize {
        let removed = {
            let mut state = self.shared.lock();
            state.shut_down = true;
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

fn log_eviction(key: &Key, error: &TrySendError<Frame>) {
    match error {
        TrySendError::Full(_) => {
            tracing::warn!(%key, "client too slow (outbox full): disconnected");
        }
        TrySendError::Closed(_) => {
            tracing::debug!(%key, "connection already gone: removed");
        }
    }
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
    inbox: mpsc::Receiver<Frame>,
    guard: Guard,
}

impl Connection {
    /// The key this connection is stored under.
    pub fn key(&self) -> &Key {
        &self.guard.key
    }
}

impl Stream for Connection {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        self.inbox.poll_recv(cx)
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
        // `removed` is `None` when the registry ended the stream (close, replacement, a slow
        // client, shutdown); `Some` when the client went away first.
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
    key: Key,
    outbox: mpsc::Sender<Frame>,
}

impl Replaced {
    /// The key the old connection was stored under.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Queues a last `frame` for the old connection, then lets its stream end. Returns whether
    /// the frame was queued.
    pub fn farewell(self, frame: Frame) -> bool {
        self.outbox.try_send(frame).is_ok()
    }
}

#[cfg(test)]
mod tests;
