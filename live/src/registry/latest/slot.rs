//! One latest-state topic's slot: its newest published version, and the streams waiting for a
//! newer one.
//!
//! This is the shape of tokio's `watch` channel — one value, its version, and the wakers of
//! whoever waits — made for the registry:
//!
//! - **A publish costs O(1) plus one wake per waiting stream.** It swaps the newest version in
//!   and takes the list of streams that parked since the last publish. A stream is listed at
//!   most once between two publishes, so a burst of 1 024 publishes wakes each stream about as
//!   often as it manages to write, not 1 024 times; nothing is queued per stream at all.
//! - **A stream writes only the newest version it has not sent.** It compares versions (the
//!   registry's total order, across instances), not a per-channel counter, so an older version
//!   can never follow a newer one, wherever each came from.
//! - **It wakes the stream's outbox**, the one waker a stream has for everything it follows,
//!   so one stream can follow several topics and still take ordinary frames in order.
//!
//! Why not `tokio::sync::watch` itself: its receivers each register their own waker per wait
//! and are polled through a boxed future (`WatchStream`), its versions are its own counter (the
//! registry needs to refuse an older [`Version`] that arrives later from another instance), and
//! it would need a second wake-up path beside the outbox's for a stream that follows a topic
//! *and* receives ordinary frames.

use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use super::version::Version;
use crate::{
    frame::Frame,
    registry::{
        key::{Key, Pattern},
        outbox::Outbox,
        probe::Probe,
    },
};

/// One published version of a latest-state topic: what streams write, and what pages and
/// (re)connecting streams start from.
#[derive(Debug)]
pub(in crate::registry) struct Published {
    pub(in crate::registry) version: Version,
    /// The value as JSON (what pages render from).
    pub(in crate::registry) value: Option<Arc<str>>,
    /// The event, encoded once for every stream.
    pub(in crate::registry) frame: Frame,
    /// Which of the following streams it is for: those it matches, or every one (`None`, a
    /// presence count).
    pub(in crate::registry) pattern: Option<Pattern>,
    /// Keys to skip.
    pub(in crate::registry) except: Vec<Key>,
    /// Its place in the order of every event the process sends (see `registry/outbox.rs`,
    /// `next_seq`): a stream writes it after the ordinary frames that were queued before it.
    pub(in crate::registry) seq: u64,
    /// Times its delivery, if it is the version sampled (see `registry/probe.rs`): observed when a
    /// newer version replaces it and no stream holds it any more.
    pub(in crate::registry) probe: Option<Arc<Probe>>,
}

impl Published {
    /// Whether the stream under `key` is meant to show it.
    pub(in crate::registry) fn is_for(&self, key: &Key) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|pattern| pattern.matches(key))
            && !self.except.contains(key)
    }
}

/// The slot of one topic. Shared by the registry (which publishes) and every stream that
/// follows the topic (which reads).
#[derive(Debug, Default)]
pub(in crate::registry) struct Slot {
    state: Mutex<State>,
    /// Counts publishes (each empties the waiting list): a stream that listed itself in the
    /// current round is still listed, and has seen the newest version. Changed under the lock,
    /// read without it.
    round: AtomicU64,
    /// Streams following the topic.
    followers: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    newest: Option<Arc<Published>>,
    /// Streams that have looked at the newest version: each is woken by the next publish.
    waiting: Vec<Arc<Outbox>>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves `State` consistent before it can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest version published here.
    pub(super) fn newest(&self) -> Option<Arc<Published>> {
        self.lock().newest.clone()
    }

    /// Stores `published` if it is newer than what the slot holds, and returns the streams to
    /// wake (the caller wakes them, outside any lock). `None` if it is not newer.
    pub(in crate::registry) fn publish(
        &self,
        published: Arc<Published>,
    ) -> Option<Vec<Arc<Outbox>>> {
        let mut state = self.lock();
        if state
            .newest
            .as_ref()
            .is_some_and(|newest| newest.version >= published.version)
        {
            return None;
        }
        state.newest = Some(published);
        self.round.fetch_add(1, Ordering::Release);
        Some(std::mem::take(&mut state.waiting))
    }

    /// How many streams follow the topic.
    pub(in crate::registry) fn followers(&self) -> usize {
        self.followers.load(Ordering::Relaxed)
    }

    /// How many streams are listed to be woken (for tests).
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// One stream's hold on a topic's slot: what it has sent of it, and whether it is listed to be
/// woken.
#[derive(Debug)]
pub(in crate::registry) struct Follow {
    slot: Arc<Slot>,
    /// The topic's name (for `has_version_of`).
    pub(in crate::registry) topic: Arc<str>,
    /// The newest version written to the stream.
    sent: Option<Version>,
    /// The round in which this stream listed itself in the slot's waiting list, if any, and
    /// the slot's newest version then.
    listed: Option<(u64, Option<Version>)>,
    /// A version to start with that the slot may not hold yet: the registry's newest known
    /// one, published here but still on its way round through the relay.
    start: Option<Arc<Published>>,
    /// The last pattern checked against the stream's key, and the answer: a topic is usually
    /// published to the same pattern every time, so the check is a pointer comparison.
    matched: Option<(Pattern, bool)>,
}

impl Follow {
    /// Follows `slot`, starting from `start` if it is newer than what the slot holds.
    pub(super) fn new(slot: Arc<Slot>, topic: Arc<str>, start: Option<Arc<Published>>) -> Self {
        slot.followers.fetch_add(1, Ordering::Relaxed);
        Follow {
            slot,
            topic,
            sent: None,
            listed: None,
            start,
            matched: None,
        }
    }

    /// The newest version the stream has not sent yet, if any. The stream is also listed in
    /// the slot's waiting list (once per round), so the next publish wakes `outbox`. Looking and
    /// listing are one step under the slot's lock: a publish in between cannot be missed.
    ///
    /// A stream that has sent the newest version of the round it is listed in skips the lock:
    /// nothing was published since, so there is nothing to send. That is the usual second look
    /// of a round (after writing what the wake brought), which then costs one atomic load.
    pub(in crate::registry) fn unsent(&mut self, outbox: &Arc<Outbox>) -> Option<Arc<Published>> {
        if let Some((round, newest_then)) = self.listed
            && self.start.is_none()
            && newest_then <= self.sent
            && self.slot.round.load(Ordering::Acquire) == round
        {
            return None;
        }
        let mut state = self.slot.lock();
        let round = self.slot.round.load(Ordering::Relaxed);
        if self.listed.is_none_or(|(listed, _)| listed != round) {
            // Streams that went away stay listed until the next publish; a topic that is never
            // published must not collect them forever.
            let followers = self.slot.followers();
            if state.waiting.len() >= 2 * followers + 16 {
                state.waiting.retain(|outbox| !outbox.is_abandoned());
            }
            state.waiting.push(Arc::clone(outbox));
        }
        self.listed = Some((round, state.newest.as_ref().map(|newest| newest.version)));
        let newest = match (&self.start, &state.newest) {
            (Some(start), Some(newest)) if start.version > newest.version => Some(start),
            (Some(start), None) => Some(start),
            (_, newest) => newest.as_ref(),
        };
        newest
            .filter(|newest| Some(newest.version) > self.sent)
            .map(Arc::clone)
    }

    /// Whether `published` is meant for the stream under `key`.
    pub(in crate::registry) fn is_for(&mut self, published: &Published, key: &Key) -> bool {
        let matches = match (&self.matched, &published.pattern) {
            (_, None) => true,
            (Some((pattern, matches)), Some(published)) if pattern.is_same(published) => *matches,
            (_, Some(published)) => {
                let matches = published.matches(key);
                self.matched = Some((published.clone(), matches));
                matches
            }
        };
        matches && !published.except.contains(key)
    }

    /// Records that `version` was written (or skipped as not meant for this stream).
    pub(in crate::registry) fn sent(&mut self, version: Version) {
        self.sent = Some(version);
        if self
            .start
            .as_ref()
            .is_some_and(|start| start.version <= version)
        {
            self.start = None;
        }
    }

    /// Whether a version of the topic meant for the stream under `key` is there to send (right
    /// after connecting: whether the stream starts with one).
    pub(in crate::registry) fn has_version(&self, key: &Key) -> bool {
        self.start.as_ref().is_some_and(|start| start.is_for(key))
            || self
                .slot
                .lock()
                .newest
                .as_ref()
                .is_some_and(|newest| newest.is_for(key))
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.slot.followers.fetch_sub(1, Ordering::Relaxed);
    }
}
