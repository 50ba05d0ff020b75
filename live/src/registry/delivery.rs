//! How a frame reaches connections: to one key, to a pattern, as a new version of a
//! latest-state topic, through the relay or not, and the keep-alive comments of quiet streams.
//!
//! Ordinary frames are pushed into each matching stream's outbox; a version goes into its
//! topic's slot, which every following stream reads (what the registry knows of topics, and
//! its rules for them, are in `latest/`).

use std::{collections::HashSet, sync::Arc};

use serde::Serialize;

use super::{
    index::Entry,
    key::{Key, Pattern},
    latest::{Numbering, Topic, Version},
    outbox::{Push, next_seq},
    outgoing::{LatestState, Outgoing},
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
        self.shared.lock().topics.keep(&latest.topic, version, || {
            outgoing.published(&latest, next_seq(), None)
        });
        self.shared.stats.published(true);
        self.route(outgoing);
        Ok(value)
    }

    /// The next version of `topic`: from the relay's numbering, shared by every instance, or
    /// from this process's own.
    async fn next_version(&self, topic: &str) -> Version {
        let numbering = match self.shared.relay.get() {
            None => Numbering::Alone {
                epoch: self.shared.epoch,
            },
            Some(relay) => match relay
                .next_version(topic, self.newest_version_known(topic))
                .await
            {
                Some(version) => Numbering::Shared(version),
                None => Numbering::Unreachable {
                    origin: self.shared.origin,
                },
            },
        };
        self.shared.lock().topics.assign(topic, numbering)
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

    /// Puts a version into its topic's slot, and wakes the streams waiting for it. Returns how
    /// many streams follow the topic (0 if the version was superseded before it arrived).
    fn deliver_latest(&self, outgoing: &Outgoing, latest: &LatestState) -> usize {
        let delivered = self
            .shared
            .lock()
            .topics
            .deliver(&latest.topic, latest.version, || {
                // Taking its place in the order under the registry's lock keeps it in the same
                // place relative to ordinary broadcasts on every stream.
                let probe = self.shared.probes.sample(Kind::Latest);
                outgoing.published(latest, next_seq(), probe)
            });
        let Some((waiting, followers)) = delivered else {
            return 0;
        };
        // Outside the lock: waking a task is cheap, but ten thousand of them are not free.
        for outbox in waiting {
            outbox.wake();
        }
        followers
    }

    /// The newest version of every latest-state topic delivered here, as the broadcasts that
    /// delivered them (for a relay bringing other instances up to date).
    pub(crate) fn newest_versions(&self) -> Vec<Outgoing> {
        let state = self.shared.lock();
        state
            .topics
            .every_newest()
            .filter_map(|(topic, newest)| Outgoing::from_published(topic, newest))
            .collect()
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
