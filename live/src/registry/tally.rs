//! A presence's count as the registry keeps it: the keys its pattern matches, bounded per
//! client, and the count published as a latest-state version to the pages that show it — at
//! once after a quiet spell, else once per gap (what `presence.rs` counts, and how).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use datastar::prelude::PatchSignals;
use tokio::sync::Notify;

use super::{
    key::Pattern,
    latest::{Published, Slot, Version},
    outbox::next_seq,
};
use crate::frame::Frame;

/// Changes closer together than this are published together, when the gap is over: a storm
/// of joins then costs each tab a count every [`PUBLISH_GAP`] at most, not one per change it
/// manages to write. The first change after a quiet spell is published at once.
pub(crate) const PUBLISH_GAP: Duration = Duration::from_millis(200);

/// One presence the registry counts. The count changes under the registry's lock; publishing
/// it needs only its own, so a change published later (at the end of a gap) takes no lock of
/// the registry's.
pub(super) struct Counted {
    pub(super) pattern: Pattern,
    /// The keys the pattern matches here, per client that opened them (the registry's
    /// `ClientAddr`); the count is the sum over clients of `min(keys, per-client bound)`, kept
    /// up to date one key at a time.
    pub(super) clients: HashMap<IpAddr, usize>,
    pub(super) shared: Arc<CountedShared>,
}

pub(super) struct CountedShared {
    pub(super) name: &'static str,
    pub(super) slot: Arc<Slot>,
    pub(super) epoch: u64,
    /// The streams the pattern matches here (changed under the registry's lock).
    pub(super) count: AtomicUsize,
    /// The streams it matches on other instances, as the relay last read them.
    pub(super) remote: AtomicUsize,
    /// Told of every change of `count`: what shares it with other instances waits on it.
    pub(super) changed: Arc<Notify>,
    pub(super) publishing: Mutex<Publishing>,
}

#[derive(Default)]
pub(super) struct Publishing {
    /// Versions so far: the number of the next one.
    pub(super) changes: u64,
    /// When the last version was published.
    pub(super) last: Option<Instant>,
    /// Whether a publish at the end of the gap is on its way.
    pub(super) deferred: bool,
    /// The count last published.
    pub(super) published: Option<usize>,
}

impl Counted {
    /// The streams matched here.
    pub(super) fn count(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// A key the pattern matches was stored by `client`: counts it, unless the client has
    /// `bound` keys counted already. O(1).
    pub(super) fn join(&mut self, client: Option<IpAddr>, bound: usize) {
        let counts = match client {
            Some(client) => {
                let keys = self.clients.entry(client).or_default();
                *keys += 1;
                *keys <= bound
            }
            // The registry used without a server: nobody to bound.
            None => true,
        };
        if counts {
            self.set(self.count() + 1);
        }
    }

    /// A key `client` stored was removed: counts it out, unless the client still has `bound`
    /// keys or more. O(1).
    pub(super) fn leave(&mut self, client: Option<IpAddr>, bound: usize) {
        let counted = match client
            .and_then(|client| self.clients.get_mut(&client).map(|keys| (client, keys)))
        {
            Some((client, keys)) => {
                let counted = *keys <= bound;
                *keys -= 1;
                if *keys == 0 {
                    self.clients.remove(&client);
                }
                counted
            }
            None => true,
        };
        if counted {
            self.set(self.count().saturating_sub(1));
        }
    }

    /// Sets the count here, and publishes the total now or at the end of the gap.
    pub(super) fn set(&self, count: usize) {
        self.shared.count.store(count, Ordering::Relaxed);
        self.shared.changed.notify_one();
        CountedShared::changed(&self.shared);
    }
}

impl CountedShared {
    /// What pages show: the streams matched here and on the other instances.
    pub(super) fn total(&self) -> usize {
        self.count
            .load(Ordering::Relaxed)
            .saturating_add(self.remote.load(Ordering::Relaxed))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Publishing> {
        self.publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the count at once if the last publish is a gap ago; else makes sure one
    /// follows when the gap is over. Outside a tokio runtime (the registry used on its own),
    /// at once.
    pub(super) fn changed(this: &Arc<CountedShared>) {
        let mut publishing = this.lock();
        if publishing.deferred {
            return; // the coming publish reads the count then
        }
        let wait = publishing.last.map_or(Duration::ZERO, |last| {
            PUBLISH_GAP.saturating_sub(last.elapsed())
        });
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(runtime) if !wait.is_zero() => {
                publishing.deferred = true;
                let this = Arc::clone(this);
                runtime.spawn(async move {
                    tokio::time::sleep(wait).await;
                    let mut publishing = this.lock();
                    publishing.deferred = false;
                    // Tabs that came and went within the gap change nothing.
                    if publishing.published != Some(this.total()) {
                        this.publish(&mut publishing);
                    }
                });
            }
            _ => this.publish(&mut publishing),
        }
    }

    /// Publishes the count as the topic's next version, and wakes the streams waiting for it.
    pub(super) fn publish(&self, publishing: &mut Publishing) {
        publishing.changes += 1;
        publishing.last = Some(Instant::now());
        let count = self.total();
        publishing.published = Some(count);
        let signals = format!(r#"{{"_presence":{{"{}":{count}}}}}"#, self.name);
        let published = Arc::new(Published {
            version: Version::new(self.epoch, publishing.changes),
            value: Some(count.to_string().into()),
            frame: Frame::from(PatchSignals::new(signals)),
            pattern: None,
            except: Vec::new(),
            seq: next_seq(),
            probe: None,
        });
        // The streams listed since the last publish are few (each lists itself once per
        // version it sees), and waking one is a few atomic operations.
        for outbox in self.slot.publish(published).unwrap_or_default() {
            outbox.wake();
        }
    }
}
