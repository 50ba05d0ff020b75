//! How a frame reaches connections: to one key, to a pattern, through the relay or not, and the
//! keep-alive comments of quiet streams. (Latest-state versions take `topics.rs`'s way.)

use std::{collections::HashSet, sync::Arc};

use super::{
    index::Entry,
    key::{Key, Pattern},
    latest::Version,
    outbox::{Push, next_seq},
    outgoing::Outgoing,
    probe::{Kind, Probe},
    relay::RelayPort,
    shared::Registry,
    stats::CloseReason,
};
use crate::frame::Frame;

impl Registry {
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
        self.shared.stats.published(false);
        self.deliver_to_streams(&outgoing) > 0
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
        self.shared.stats.published(false);
        self.route(Outgoing {
            pattern: pattern.clone(),
            except: except.to_vec(),
            frame: frame.clone(),
            latest: None,
        })
    }

    pub(super) fn route(&self, outgoing: Outgoing) -> usize {
        match self.shared.relay.get() {
            Some(relay) => relay.relay(self, outgoing),
            None => self.deliver_to_streams(&outgoing),
        }
    }

    /// [`RelayPort::deliver`](super::RelayPort::deliver): what a relay hands this instance.
    pub(crate) fn deliver_to_streams(&self, outgoing: &Outgoing) -> usize {
        match &outgoing.latest {
            Some(latest) => self.deliver_latest(outgoing, latest),
            None => self.deliver_queued(outgoing),
        }
    }

    fn deliver_queued(&self, outgoing: &Outgoing) -> usize {
        let to = Some(&outgoing.pattern);
        let probe = self.shared.probes.sample(Kind::Ordinary);
        self.push(to, &outgoing.except, &outgoing.frame, probe, |_| true)
    }

    /// Sends [`Frame::keep_alive`] to every stream that has written nothing since the last
    /// call, and returns how many. The server calls it every `SSE_KEEP_ALIVE_SECS`, so a quiet
    /// stream gets a comment one to two periods after its last event: one timer for every
    /// stream, instead of one per stream reset at each event.
    pub(crate) fn keep_alive(&self) -> usize {
        self.push(None, &[], &Frame::keep_alive(), None, |entry| {
            entry.outbox.was_quiet()
        })
    }

    /// Queues `frame` for the connections `pattern` matches (every one, without a pattern)
    /// but those under `except`, that `only` accepts, with its `probe` if it is sampled; cuts
    /// off those whose queue overflows.
    fn push(
        &self,
        pattern: Option<&Pattern>,
        except: &[Key],
        frame: &Frame,
        probe: Option<Arc<Probe>>,
        only: impl Fn(&Entry) -> bool,
    ) -> usize {
        // Excluded keys are few (the sender's own tab): a list is fastest. A long list, from
        // whoever can publish to a relay, must not make every match a linear scan.
        let except_set: Option<HashSet<&Key>> = (except.len() > 8).then(|| except.iter().collect());
        let excluded = |key: &Key| match &except_set {
            Some(set) => set.contains(key),
            None => except.contains(key),
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
            match entry.outbox.push_probed(seq, frame.clone(), probe.clone()) {
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
            .filter_map(|(key, id)| state.remove(key, *id))
            .collect();
        drop(state);
        for entry in &removed {
            if overflowed.iter().any(|(_, id)| *id == entry.id) {
                entry.outbox.ended_by(CloseReason::QueueFull);
                tracing::warn!(
                    key = %entry.key.redacted(),
                    limit = self.shared.queue_limit,
                    "stream more than its queue limit of events behind: cut off"
                );
                entry.cut_off();
            }
        }
        drop(removed); // outside the lock: ending a stream wakes its task
        delivered
    }
}

/// Each call is one of the registry's crate-private methods.
impl RelayPort for Registry {
    fn deliver(&self, outgoing: &Outgoing) -> usize {
        Registry::deliver_to_streams(self, outgoing)
    }

    fn latest_broadcasts(&self) -> Vec<Outgoing> {
        Registry::newest_versions(self)
    }

    fn newest_known(&self, topic: &str) -> Option<Version> {
        Registry::newest_version_known(self, topic)
    }

    fn local_presences(&self) -> Vec<(&'static str, usize)> {
        Registry::presence_counts_here(self)
    }

    fn local_presence_changed(&self) -> impl Future<Output = ()> + Send + use<> {
        Registry::presence_count_changed(self)
    }

    fn set_remote_presence(&self, name: &str, remote: usize) {
        Registry::set_presence_elsewhere(self, name, remote)
    }
}
