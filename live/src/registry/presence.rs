//! Presence: how many streams a pattern matches (say `page/home/*`: the tabs on the home
//! page), kept as a latest-state topic that every stream following it shows live.
//!
//! One of two sides, named alike on purpose: this is the count this instance keeps, and
//! `redis/presence.rs` adds the other instances' counts to it.
//!
//! - **It follows keys, not connections.** The count changes when a key matching the pattern
//!   is stored or removed: a duplicated tab replaces the stream under its key, so it changes
//!   nothing; a reconnecting tab leaves and comes back under the same key.
//! - **One client cannot fake a crowd.** A key's last segment is a session id the client
//!   picks, so one client could open a stream per made-up id (up to its stream cap, 256) and
//!   every page read "257 people here". Each key is counted for the client that stored it (the
//!   server's `ClientAddr`), and one client adds at most `presence_per_client`
//!   (`PRESENCE_PER_CLIENT`, default 4) to the count: a handful of people behind one shared
//!   address still count each, a flood counts as that handful. Kept per client and changed one
//!   key at a time, so a change stays O(1). A key taken over by another client (a session id
//!   copied elsewhere) moves to that client's share.
//! - **A change costs O(1)**: the new count goes into the topic's slot, which wakes the
//!   streams that are waiting for it (see `latest/slot.rs`), and each stream writes the newest
//!   count when it gets to it. Changes closer together than [`PUBLISH_GAP`] (200 ms) are published
//!   together when the gap is over, the first after a quiet spell at once: a storm of 10 000
//!   joins costs a tab a few frames, not 10 000.
//! - **A tab that vanishes** (a laptop lid closed) leaves when its connection is found dead:
//!   when a write to it stays blocked for the send timeout, or when the kernel gives up data
//!   it never acknowledged (the keep-alive comment every 15–30 s is such data) after the send
//!   timeout and 5 s more (`TCP_USER_TIMEOUT`, set in `serve/watched_socket.rs`): 30–45 s at the
//!   default settings, where Linux alone would retransmit for about 15 minutes.
//! - **Across instances**: with a relay (Redis), each instance's own count is shared, and
//!   the count shown is this instance's plus the others' ([`Registry::set_remote_presence`];
//!   the `redis` module's `presence.rs` keeps them). Versions are the instance's own and never
//!   go through the relay: each instance publishes its total to its own streams.
//!
//! The count reaches pages as the signal `_presence.<name>` (local to the page: Datastar
//! sends no signal whose name starts with `_` back to the server), which the kit's
//! `live_presence` markup shows.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::{
    index::Entry,
    key::{Key, Pattern},
    page::Page,
    shared::{Registry, State},
    tally::{Counted, CountedShared},
};

/// A live count of the streams `pattern` matches, shown on pages as `name`.
///
/// ```
/// use live::Presence;
///
/// /// The tabs open on the home page.
/// static HERE: Presence = Presence::new("here", "page/home/*");
/// ```
///
/// A page's tabs are counted more simply with [`Page::presence`]:
/// `HOME.presence("here")`.
#[derive(Debug)]
pub struct Presence {
    name: &'static str,
    counts: Counts,
}

/// What a presence counts: the streams of a pattern, or the tabs of the page of this name.
#[derive(Debug)]
enum Counts {
    Pattern(&'static str),
    Page(&'static str),
}

impl Presence {
    /// The count of the streams `pattern` matches, under `name` (letters, digits and `_`: it
    /// is a signal's name on the page). A name that is not one fails at compile time in a
    /// `static`.
    pub const fn new(name: &'static str, pattern: &'static str) -> Self {
        Presence::counting(name, Counts::Pattern(pattern))
    }

    /// The count of the open tabs of the page called `page` under `name`: what
    /// [`Page::presence`] makes.
    const fn on_page(name: &'static str, page: &'static str) -> Self {
        Presence::counting(name, Counts::Page(page))
    }

    const fn counting(name: &'static str, counts: Counts) -> Self {
        assert!(
            is_name(name),
            "a presence's name is letters, digits and _, at least one"
        );
        Presence { name, counts }
    }

    /// The streams it counts.
    fn pattern(&self) -> Pattern {
        let pattern = match self.counts {
            Counts::Pattern(pattern) => Pattern::new(pattern),
            Counts::Page(page) => Pattern::page(page),
        };
        pattern.unwrap_or_else(|error| panic!("presence {:?}: {error}", self.name))
    }

    /// Its name on pages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The latest-state topic its count is kept in.
    pub(crate) fn topic(&self) -> String {
        format!("presence:{}", self.name)
    }
}

impl Page {
    /// The count of this page's open tabs, under `name` on the page (see [`Presence::new`]).
    pub const fn presence(self, name: &'static str) -> Presence {
        Presence::on_page(name, self.name())
    }
}

/// Whether `name` can name a presence: letters, digits and `_`, at least one — it becomes a
/// signal's name on the page, inside an attribute's expression.
pub(crate) const fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if !(bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
            return false;
        }
        at += 1;
    }
    !bytes.is_empty()
}

impl Registry {
    /// How many streams `presence`'s pattern matches here, counted live from the first call
    /// on: a page renders it, and a stream that follows it ([`crate::Stream::counting`]) gets
    /// every change.
    ///
    /// # Panics
    ///
    /// If the presence's pattern is not a valid [`Pattern`] (a mistake in the source, found
    /// by the first test that renders the page).
    pub fn presence(&self, presence: &Presence) -> usize {
        self.shared.lock().presence(presence, self.shared.epoch)
    }

    /// Each presence counted here, with the streams it matches on this instance alone: what a
    /// relay shares with the other instances.
    pub(crate) fn presence_counts_here(&self) -> Vec<(&'static str, usize)> {
        let state = self.shared.lock();
        let counted = state.presences.iter();
        counted.map(|c| (c.shared.name, c.count())).collect()
    }

    /// Completes at the next change of a count here (one may have happened since the last
    /// call: a change while nobody waits is kept for the next one). For a relay, which shares
    /// the counts.
    pub(crate) fn presence_count_changed(&self) -> impl Future<Output = ()> + Send + use<> {
        let changed = Arc::clone(&self.shared.lock().presence_changed);
        async move { changed.notified().await }
    }

    /// Sets how many streams the presence `name` matches on the other instances, as a relay
    /// read them; pages then show this instance's count plus `remote`. An unknown name changes
    /// nothing.
    pub(crate) fn set_presence_elsewhere(&self, name: &str, remote: usize) {
        let Some(shared) = self
            .shared
            .lock()
            .counted(name)
            .map(|counted| Arc::clone(&counted.shared))
        else {
            return;
        };
        if shared.remote.swap(remote, Ordering::Relaxed) != remote {
            CountedShared::changed(&shared);
        }
    }
}

impl State {
    /// The count of `presence`, counted from now on if it was not yet (`epoch`: the registry's).
    pub(super) fn presence(&mut self, presence: &Presence, epoch: u64) -> usize {
        if let Some(counted) = self.counted(presence.name) {
            return counted.shared.total();
        }
        let pattern = presence.pattern();
        let (mut count, mut clients) = (0, HashMap::<IpAddr, usize>::new());
        self.index
            .for_each_match(&pattern, |entry| match entry.client {
                Some(client) => *clients.entry(client).or_default() += 1,
                None => count += 1,
            });
        let bound = self.presence_per_client;
        count += clients.values().map(|&keys| keys.min(bound)).sum::<usize>();
        let counted = Counted {
            pattern,
            clients,
            shared: Arc::new(CountedShared {
                name: presence.name,
                slot: self.topics.slot(&presence.topic()),
                epoch,
                count: AtomicUsize::new(count),
                remote: AtomicUsize::new(0),
                changed: Arc::clone(&self.presence_changed),
                publishing: Mutex::default(),
            }),
        };
        counted.shared.publish(&mut counted.shared.lock());
        self.presences.push(counted);
        // A relay shares the new presence's count.
        self.presence_changed.notify_one();
        count
    }

    /// The presence counted here under `name`, if it is.
    fn counted(&self, name: &str) -> Option<&Counted> {
        self.presences.iter().find(|c| c.shared.name == name)
    }

    /// Removes the connection `id` under `key`, and counts the key out.
    pub(super) fn remove(&mut self, key: &Key, id: u64) -> Option<Entry> {
        let removed = self.index.remove(key, Some(id))?;
        self.left(key, removed.client);
        Some(removed)
    }

    /// `client` stored a stream under `key`, which no stream held (or another client's did).
    pub(super) fn joined(&mut self, key: &Key, client: Option<IpAddr>) {
        let bound = self.presence_per_client;
        for counted in &mut self.presences {
            if counted.pattern.matches(key) {
                counted.join(client, bound);
            }
        }
    }

    /// Every stream was removed (a shutdown).
    pub(super) fn everyone_left(&mut self) {
        for counted in &mut self.presences {
            counted.clients.clear();
            counted.set(0);
        }
    }

    /// The stream `client` stored under `key` was removed (or replaced by another client's).
    pub(super) fn left(&mut self, key: &Key, client: Option<IpAddr>) {
        let bound = self.presence_per_client;
        for counted in &mut self.presences {
            if counted.pattern.matches(key) {
                counted.leave(client, bound);
            }
        }
    }
}
