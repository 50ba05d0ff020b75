//! Presence: how many streams a pattern matches (say `page/home/*`: the tabs on the home
//! page), kept as a latest-state topic that every stream following it shows live.
//!
//! - **It follows keys, not connections.** The count changes when a key matching the pattern
//!   is stored or removed: a duplicated tab replaces the stream under its key, so it changes
//!   nothing; a reconnecting tab leaves and comes back under the same key.
//! - **A change costs O(1)**: the new count goes into the topic's slot, which wakes the
//!   streams that are waiting for it (see `slot.rs`). A storm of joins wakes each stream about
//!   as often as it manages to write, and each write is the newest count: a burst of 10 000
//!   joins costs a tab a handful of frames, not 10 000.
//! - **A tab that vanishes** (a laptop lid closed) leaves when its connection is found dead:
//!   when a write to it stays blocked for the send timeout, or when the kernel gives up on
//!   data it never acknowledged — the keep-alive comment every 15–30 s is such data, and
//!   stream sockets give up after the send timeout (see `serve/socket.rs`).
//! - **Local**: the count is this instance's. Versions are the instance's own and never go
//!   through a relay.
//!
//! The count reaches pages as the signal `_presence.<name>` (local to the page: Datastar
//! sends no signal whose name starts with `_` back to the server), which the kit's
//! `live_presence` markup shows.

use std::sync::Arc;

use super::{
    Registry, State,
    key::{Key, Pattern},
    latest::Version,
    outbox::next_seq,
    slot::{Published, Slot},
};
use crate::frame::Frame;
use datastar::prelude::PatchSignals;

/// A live count of the streams `pattern` matches, shown on pages as `name`: see the
/// [module docs](self).
///
/// ```
/// use live::Presence;
///
/// /// The tabs open on the home page.
/// static HERE: Presence = Presence::new("here", "page/home/*");
/// ```
#[derive(Debug)]
pub struct Presence {
    name: &'static str,
    pattern: &'static str,
}

impl Presence {
    /// The count of the streams `pattern` matches, under `name` (letters, digits and `_`: it
    /// is a signal's name on the page). A name that is not one fails at compile time in a
    /// `static`.
    pub const fn new(name: &'static str, pattern: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "a presence needs a name");
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            assert!(
                byte.is_ascii_alphanumeric() || byte == b'_',
                "a presence's name is letters, digits and _"
            );
            at += 1;
        }
        Presence { name, pattern }
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

/// One presence the registry counts.
pub(super) struct Counted {
    name: &'static str,
    pattern: Pattern,
    slot: Arc<Slot>,
    count: usize,
    /// Changes so far: the number of its next version.
    changes: u64,
    epoch: u64,
}

impl Counted {
    /// Publishes the count as the topic's next version, and wakes the streams waiting for it.
    fn publish(&mut self) {
        self.changes += 1;
        let count = self.count;
        let signals = format!(r#"{{"_presence":{{"{}":{count}}}}}"#, self.name);
        let published = Arc::new(Published {
            version: Version::new(self.epoch, self.changes),
            value: Some(count.to_string().into()),
            frame: Frame::from(PatchSignals::new(signals)),
            pattern: None,
            except: Vec::new(),
            seq: next_seq(),
            probe: None,
        });
        // Under the registry's lock, unlike other publishes: the streams listed since the
        // last change are few (each lists itself once per change it sees), and waking one is
        // a few atomic operations.
        for outbox in self.slot.publish(published).unwrap_or_default() {
            outbox.wake();
        }
    }
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
}

impl State {
    /// The count of `presence`, counted from now on if it was not yet (`epoch`: the registry's).
    pub(super) fn presence(&mut self, presence: &Presence, epoch: u64) -> usize {
        if let Some(counted) = self.presences.iter().find(|c| c.name == presence.name) {
            return counted.count;
        }
        let pattern = Pattern::new(presence.pattern).unwrap_or_else(|error| {
            panic!("presence {:?}: {error}", presence.name);
        });
        let mut count = 0;
        self.index.for_each_match(&pattern, |_| count += 1);
        let (_, topic) = self.topic(&presence.topic());
        let mut counted = Counted {
            name: presence.name,
            pattern,
            slot: Arc::clone(&topic.slot),
            count,
            changes: 0,
            epoch,
        };
        counted.publish();
        self.presences.push(counted);
        count
    }

    /// Removes the connection `id` under `key`, and counts the key out.
    pub(super) fn remove(&mut self, key: &Key, id: u64) -> Option<super::index::Entry> {
        let removed = self.index.remove(key, Some(id))?;
        self.left(key);
        Some(removed)
    }

    /// A stream was stored under `key`, which no stream held.
    pub(super) fn joined(&mut self, key: &Key) {
        for counted in &mut self.presences {
            if counted.pattern.matches(key) {
                counted.count += 1;
                counted.publish();
            }
        }
    }

    /// Every stream was removed (a shutdown).
    pub(super) fn everyone_left(&mut self) {
        for counted in &mut self.presences {
            counted.count = 0;
            counted.publish();
        }
    }

    /// The stream under `key` was removed, and the key is free.
    fn left(&mut self, key: &Key) {
        for counted in &mut self.presences {
            if counted.pattern.matches(key) {
                counted.count = counted.count.saturating_sub(1);
                counted.publish();
            }
        }
    }
}
