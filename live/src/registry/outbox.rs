//! One connection's outbox: the frames waiting to be written to it.
//!
//! The registry pushes into it without ever waiting; the connection's stream drains it as fast
//! as its socket takes the bytes. How long the queue gets therefore says how far the server's
//! own tasks are behind, not whether the client reads — so a long queue never drops a
//! connection by itself. (A client that stops reading is dropped by the server's send timeout,
//! which sees its socket stay unwritable.) What keeps memory bounded instead:
//!
//! - **Latest-state events coalesce.** The outbox holds at most one frame per topic: a newer
//!   version replaces the queued one (and moves to the back, keeping the server's order). A
//!   version older than one already queued or sent is dropped, so a stream never goes back.
//! - **Ordinary events queue in order, up to a limit** (the registry's queue limit). Frames are
//!   shared, so a queued frame costs a pointer, not a copy. Going over the limit means the app
//!   sent this one stream more un-coalescable events than it could write — not a burst of
//!   updates, which coalesce — and the connection is aborted rather than growing without bound
//!   or losing an event silently; the tab reconnects and starts again from the current state.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
};

use super::latest::Version;
use crate::sse::Frame;

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    /// Queued (or merged into the queued version of its topic).
    Queued,
    /// A latest-state frame no newer than what the stream has queued or sent: skipped.
    Superseded,
    /// The queue is at its limit: the connection must be aborted.
    Overflow,
    /// The stream is ending or gone.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Open: frames keep coming.
    Open,
    /// Send what is queued, then end the stream (replaced, closed, shutting down).
    Finish,
    /// End now, dropping what is queued (the connection is being cut off).
    Abort,
}

struct Queued {
    frame: Frame,
    /// The latest-state topic this frame is a version of, if any.
    topic: Option<Arc<str>>,
}

struct Inner {
    queue: VecDeque<Queued>,
    /// The newest version queued or sent, per latest-state topic (few topics per stream: a
    /// vector beats a map).
    versions: Vec<(Arc<str>, Version)>,
    /// How many queued frames carry a topic: zero skips the search on a latest push.
    queued_latest: usize,
    /// The stream's task, when it is waiting for a frame.
    waker: Option<Waker>,
    end: End,
}

/// The shared outbox of one connection (the registry's entry and the stream both hold it).
pub(super) struct Outbox {
    inner: Mutex<Inner>,
    /// Ordinary frames that may be queued at once.
    limit: usize,
}

impl Outbox {
    pub(super) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Outbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                versions: Vec::new(),
                queued_latest: 0,
                waker: None,
                end: End::Open,
            }),
            limit: limit.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent before it can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an ordinary frame.
    pub(super) fn push(&self, frame: Frame) -> Push {
        let mut inner = self.lock();
        if inner.end != End::Open {
            return Push::Closed;
        }
        if inner.queue.len() - inner.queued_latest >= self.limit {
            return Push::Overflow;
        }
        inner.queue.push_back(Queued { frame, topic: None });
        wake(inner);
        Push::Queued
    }

    /// Queues version `version` of `topic`, replacing a queued older one.
    pub(super) fn push_latest(&self, topic: &Arc<str>, version: Version, frame: Frame) -> Push {
        let mut inner = self.lock();
        if inner.end != End::Open {
            return Push::Closed;
        }
        match inner.versions.iter_mut().find(|(t, _)| t == topic) {
            Some((_, newest)) if *newest >= version => return Push::Superseded,
            Some((_, newest)) => *newest = version,
            None => inner.versions.push((Arc::clone(topic), version)),
        }
        if inner.queued_latest > 0
            && let Some(at) = inner
                .queue
                .iter()
                .position(|queued| queued.topic.as_ref() == Some(topic))
        {
            inner.queue.remove(at);
            inner.queued_latest -= 1;
        }
        inner.queue.push_back(Queued {
            frame,
            topic: Some(Arc::clone(topic)),
        });
        inner.queued_latest += 1;
        wake(inner);
        Push::Queued
    }

    /// Whether a version of `topic` has been queued or sent.
    pub(super) fn has_version_of(&self, topic: &str) -> bool {
        self.lock().versions.iter().any(|(t, _)| &**t == topic)
    }

    /// Ends the stream once what is queued has been sent.
    pub(super) fn finish(&self) {
        let mut inner = self.lock();
        if inner.end == End::Open {
            inner.end = End::Finish;
            wake(inner);
        }
    }

    /// Ends the stream now, dropping what is queued.
    pub(super) fn abort(&self) {
        let mut inner = self.lock();
        inner.end = End::Abort;
        inner.queue = VecDeque::new();
        inner.queued_latest = 0;
        wake(inner);
    }

    /// The next frame to write; `None` once the stream has ended.
    pub(super) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let mut inner = self.lock();
        if inner.end == End::Abort {
            return Poll::Ready(None);
        }
        if let Some(queued) = inner.queue.pop_front() {
            if queued.topic.is_some() {
                inner.queued_latest -= 1;
            }
            if inner.queue.is_empty() && inner.queue.capacity() > 16 {
                // A burst is over: give back what it took.
                inner.queue = VecDeque::new();
            }
            return Poll::Ready(Some(queued.frame));
        }
        if inner.end == End::Finish {
            return Poll::Ready(None);
        }
        match &inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Frames queued right now (for tests and logs).
    pub(super) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

/// Wakes the stream's task, if it is waiting, after letting go of the lock.
fn wake(mut inner: MutexGuard<'_, Inner>) {
    let waker = inner.waker.take();
    drop(inner);
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use datastar::prelude::PatchSignals;
    use futures_util::task::noop_waker_ref;

    use super::*;

    fn frame(n: u64) -> Frame {
        Frame::from(PatchSignals::new(format!("{{\"n\":{n}}}")))
    }

    fn drain(outbox: &Outbox) -> Vec<Frame> {
        let mut cx = Context::from_waker(noop_waker_ref());
        std::iter::from_fn(|| match outbox.poll_next(&mut cx) {
            Poll::Ready(Some(frame)) => Some(frame),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn a_stream_that_is_behind_skips_to_the_newest_version() {
        let outbox = Outbox::new(4);
        let topic: Arc<str> = "greeting".into();
        outbox.push(frame(100));
        for n in 1..=1_000 {
            assert_eq!(
                outbox.push_latest(&topic, Version::new(1, n), frame(n)),
                Push::Queued
            );
        }
        outbox.push(frame(200));

        assert_eq!(
            outbox.len(),
            3,
            "one slot for the topic, whatever the burst"
        );
        assert_eq!(drain(&outbox), [frame(100), frame(1_000), frame(200)]);
    }

    #[test]
    fn a_newer_version_moves_behind_ordinary_frames_queued_before_it() {
        let outbox = Outbox::new(4);
        let topic: Arc<str> = "greeting".into();
        outbox.push_latest(&topic, Version::new(1, 1), frame(1));
        outbox.push(frame(100));
        outbox.push_latest(&topic, Version::new(1, 2), frame(2));

        assert_eq!(drain(&outbox), [frame(100), frame(2)], "the server's order");
    }

    #[test]
    fn a_stream_never_goes_back_to_an_older_version() {
        let outbox = Outbox::new(4);
        let topic: Arc<str> = "greeting".into();
        outbox.push_latest(&topic, Version::new(1, 5), frame(5));
        assert_eq!(drain(&outbox), [frame(5)]);

        assert_eq!(
            outbox.push_latest(&topic, Version::new(1, 4), frame(4)),
            Push::Superseded
        );
        assert_eq!(
            outbox.push_latest(&topic, Version::new(1, 5), frame(5)),
            Push::Superseded,
            "not twice either"
        );
        assert!(drain(&outbox).is_empty());
        assert!(outbox.has_version_of("greeting"));
        assert!(!outbox.has_version_of("other"));
    }

    #[test]
    fn ordinary_frames_are_all_kept_up_to_the_limit() {
        let outbox = Outbox::new(3);
        let topic: Arc<str> = "greeting".into();
        for n in 0..3 {
            assert_eq!(outbox.push(frame(n)), Push::Queued);
        }
        assert_eq!(
            outbox.push_latest(&topic, Version::new(1, 1), frame(9)),
            Push::Queued,
            "latest-state frames do not count against the limit"
        );
        assert_eq!(outbox.push(frame(3)), Push::Overflow);
        assert_eq!(drain(&outbox), [frame(0), frame(1), frame(2), frame(9)]);
    }

    #[test]
    fn finishing_sends_what_is_queued_and_aborting_does_not() {
        let finished = Outbox::new(4);
        finished.push(frame(1));
        finished.finish();
        assert_eq!(finished.push(frame(2)), Push::Closed);
        assert_eq!(drain(&finished), [frame(1)]);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert_eq!(finished.poll_next(&mut cx), Poll::Ready(None));

        let aborted = Outbox::new(4);
        aborted.push(frame(1));
        aborted.abort();
        assert_eq!(aborted.poll_next(&mut cx), Poll::Ready(None));
    }
}
