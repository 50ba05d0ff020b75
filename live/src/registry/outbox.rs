//! One connection's outbox: the ordinary frames waiting to be written to it, and the one waker
//! that tells its stream there is something to write.
//!
//! The registry pushes into it without ever waiting; the connection's stream drains it as fast
//! as its socket takes the bytes. How long the queue gets therefore says how far the server's
//! own tasks are behind, not whether the client reads — so a long queue never drops a
//! connection by itself. (A client that stops reading is dropped by the server's send timeout,
//! which sees its socket stay unwritable.) Memory stays bounded all the same:
//!
//! - **Latest-state events are not queued here at all.** A stream reads them from its topics'
//!   slots (`latest/slot.rs`), newest only, so a burst of updates costs a stream nothing but a
//!   wake.
//! - **Ordinary events queue in order, up to a limit** (the registry's queue limit). Frames are
//!   shared, so a queued frame costs a pointer, not a copy. Going over the limit means the app
//!   sent this one stream more un-coalescable events than it could write, and the connection is
//!   aborted rather than growing without bound or losing an event silently; the tab reconnects
//!   and starts again from the current state.
//!
//! Every frame carries its place in the process's order of events ([`next_seq`]), so a stream
//! that follows topics writes each newest version after the ordinary frames queued before it
//! and before those queued after it: the server's order, on every stream.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    task::Waker,
};

use futures_util::task::AtomicWaker;

use super::{probe::Probe, stats::CloseReason};
use crate::frame::Frame;

/// The next place in the order of every event this process sends: ordinary frames take one
/// when they are queued, latest-state versions when they are published. One counter for the
/// whole process, so it is the same order on every stream.
pub(super) fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    /// Queued.
    Queued,
    /// The queue is at its limit: the connection must be aborted.
    Overflow,
    /// The stream is ending or gone.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// Send what is queued, then end the stream (replaced, closed, shutting down). Latest-state
    /// versions published before the end (`end_seq`) are still sent.
    Finish,
    /// End now, dropping what is queued (the connection is being cut off).
    Abort,
}

/// A queued ordinary frame: its place in the order of events, and the probe that times it if
/// it is the one sampled (see `probe.rs`).
type Queued = (u64, Frame, Option<Arc<Probe>>);

struct Inner {
    queue: VecDeque<Queued>,
    end: End,
    /// The place in the order at which the stream was finished.
    end_seq: u64,
}

/// What a stream should do next (see [`Outbox::next`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Write this ordinary frame (and tell its probe, if it has one).
    Frame(Frame, Option<Arc<Probe>>),
    /// Write the latest-state version it offered: nothing queued comes before it.
    Latest,
    /// Wait: nothing to write now.
    Pending,
    /// The stream has ended.
    End,
}

/// The shared outbox of one connection (the registry's entry and the stream both hold it).
pub(super) struct Outbox {
    inner: Mutex<Inner>,
    /// The stream's task, woken by pushes here and by publishes of the topics it follows.
    waker: AtomicWaker,
    /// Ordinary frames that may be queued at once.
    limit: usize,
    /// Whether anything is queued or the stream is ending: when not, the stream needs no lock
    /// to know it (the usual case when it looks, since it writes what it finds at once). Set
    /// under the lock; cleared only by the stream, under the lock.
    busy: AtomicBool,
    /// Set when the stream's side is dropped: nobody will read this any more.
    abandoned: AtomicBool,
    /// Whether the stream has written anything since the last keep-alive round.
    written: AtomicBool,
    /// Why the registry ended it ([`CloseReason`]'s index), if it did: the first reason wins.
    reason: AtomicU8,
}

/// [`Outbox::reason`] before the registry ends the stream.
const NO_REASON: u8 = u8::MAX;

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("abandoned", &self.is_abandoned())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub(super) fn new(limit: usize) -> Self {
        Outbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                end: End::Open,
                end_seq: u64::MAX,
            }),
            waker: AtomicWaker::new(),
            limit: limit.max(1),
            busy: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            written: AtomicBool::new(false),
            reason: AtomicU8::new(NO_REASON),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent before it can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an ordinary frame, at place `seq` in the order of events.
    pub(super) fn push(&self, seq: u64, frame: Frame) -> Push {
        self.push_probed(seq, frame, None)
    }

    /// Queues an ordinary frame with the probe that times its delivery, if it has one.
    pub(super) fn push_probed(&self, seq: u64, frame: Frame, probe: Option<Arc<Probe>>) -> Push {
        {
            let mut inner = self.lock();
            if inner.end != End::Open {
                return Push::Closed;
            }
            if inner.queue.len() >= self.limit {
                return Push::Overflow;
            }
            inner.queue.push_back((seq, frame, probe));
            self.busy.store(true, Ordering::Release);
        }
        self.wake();
        Push::Queued
    }

    /// Ends the stream once what is queued has been sent.
    pub(super) fn finish(&self) {
        {
            let mut inner = self.lock();
            if inner.end != End::Open {
                return;
            }
            inner.end = End::Finish;
            inner.end_seq = next_seq();
            self.busy.store(true, Ordering::Release);
        }
        self.wake();
    }

    /// Ends the stream now, dropping what is queued.
    pub(super) fn abort(&self) {
        {
            let mut inner = self.lock();
            inner.end = End::Abort;
            inner.queue = VecDeque::new();
            self.busy.store(true, Ordering::Release);
        }
        self.wake();
    }

    /// Wakes the stream's task (if it waits) to look for something to write.
    pub(super) fn wake(&self) {
        self.waker.wake();
    }

    /// Says which task to wake. Called before the stream looks for something to write, so that
    /// a push or publish that happens while it looks wakes it.
    pub(super) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// What to write next, given the place `latest` of the newest unsent latest-state version
    /// the stream follows, if it has one: the oldest queued frame if it comes before that
    /// version, else the version (if the stream has not ended before it was published).
    pub(super) fn next(&self, latest: Option<u64>) -> Next {
        if !self.busy.load(Ordering::Acquire) {
            return latest.map_or(Next::Pending, |_| Next::Latest);
        }
        let mut inner = self.lock();
        if inner.end == End::Abort {
            return Next::End;
        }
        if let Some(&(seq, _, _)) = inner.queue.front()
            && latest.is_none_or(|latest| seq < latest)
        {
            let (_, frame, probe) = inner.queue.pop_front().expect("a front frame");
            if inner.queue.is_empty() {
                if inner.end == End::Open {
                    self.busy.store(false, Ordering::Release);
                }
                if inner.queue.capacity() > 16 {
                    // A burst is over: give back what it took.
                    inner.queue = VecDeque::new();
                }
            }
            return Next::Frame(frame, probe);
        }
        match latest {
            Some(latest) if inner.end == End::Open || latest < inner.end_seq => Next::Latest,
            _ if inner.end == End::Finish => Next::End,
            _ => Next::Pending,
        }
    }

    /// Notes that the stream wrote a frame (it is not quiet).
    pub(super) fn wrote(&self) {
        // A load first: a stream that writes often does not dirty the line every time.
        if !self.written.load(Ordering::Relaxed) {
            self.written.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the stream has written nothing since the last call.
    pub(super) fn was_quiet(&self) -> bool {
        !self.written.swap(false, Ordering::Relaxed)
    }

    /// Notes why the registry is ending the stream (before it does); a later reason does not
    /// replace the first.
    pub(super) fn ended_by(&self, reason: CloseReason) {
        let _ = self.reason.compare_exchange(
            NO_REASON,
            reason.index(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Why the registry ended the stream; [`CloseReason::ClientLeft`] if it never said.
    pub(super) fn end_reason(&self) -> CloseReason {
        match self.reason.load(Ordering::Relaxed) {
            NO_REASON => CloseReason::ClientLeft,
            index => CloseReason::from_index(index),
        }
    }

    /// Marks the outbox as no longer read (its stream was dropped).
    pub(super) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    /// Whether its stream was dropped.
    pub(super) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Frames queued right now (for tests and logs).
    pub(super) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use datastar::prelude::PatchSignals;

    use super::*;

    fn frame(n: u64) -> Frame {
        Frame::from(PatchSignals::new(format!("{{\"n\":{n}}}")))
    }

    fn drain(outbox: &Outbox) -> Vec<Frame> {
        std::iter::from_fn(|| match outbox.next(None) {
            Next::Frame(frame, _) => Some(frame),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn ordinary_frames_are_all_kept_in_order_up_to_the_limit() {
        let outbox = Outbox::new(3);
        for n in 0..3 {
            assert_eq!(outbox.push(n, frame(n)), Push::Queued);
        }
        assert_eq!(outbox.push(3, frame(3)), Push::Overflow);
        assert_eq!(drain(&outbox), [frame(0), frame(1), frame(2)]);
    }

    #[test]
    fn a_latest_version_goes_between_the_frames_queued_before_and_after_it() {
        let outbox = Outbox::new(4);
        outbox.push(10, frame(10));
        outbox.push(30, frame(30));

        assert_eq!(
            outbox.next(Some(20)),
            Next::Frame(frame(10), None),
            "older first"
        );
        assert_eq!(outbox.next(Some(20)), Next::Latest, "then the version");
        assert_eq!(outbox.next(None), Next::Frame(frame(30), None));
        assert_eq!(outbox.next(None), Next::Pending);
        assert_eq!(outbox.next(Some(40)), Next::Latest);
    }

    #[test]
    fn finishing_sends_what_is_queued_and_what_was_published_before_the_end() {
        let finished = Outbox::new(4);
        let before = next_seq();
        finished.push(next_seq(), frame(1));
        finished.finish();
        let after = next_seq();
        assert_eq!(finished.push(next_seq(), frame(2)), Push::Closed);

        assert_eq!(finished.next(Some(before)), Next::Latest);
        assert_eq!(finished.next(Some(after)), Next::Frame(frame(1), None));
        assert_eq!(
            finished.next(Some(after)),
            Next::End,
            "published after the end: not sent"
        );
    }

    #[test]
    fn aborting_drops_what_is_queued() {
        let aborted = Outbox::new(4);
        aborted.push(1, frame(1));
        aborted.abort();
        assert_eq!(aborted.next(Some(0)), Next::End);
        assert_eq!(aborted.len(), 0);
    }
}
