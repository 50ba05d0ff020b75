//! Latest-state topics in the registry: numbering versions (with the relay, across instances),
//! keeping the newest for pages and new streams, and delivering a version through the topic's
//! slot — O(1) per publish, whatever the number of streams.

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use super::{
    key::Pattern,
    latest::{Topic, Version},
    outbox::next_seq,
    outgoing::{LatestState, Outgoing},
    probe::Kind,
    shared::{Registry, State},
    slot::TopicState,
};
use crate::frame::Frame;

impl State {
    /// The topic called `name`, created if it is new, with its shared name.
    pub(super) fn topic(&mut self, name: &str) -> (Arc<str>, &mut TopicState) {
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

impl Registry {
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
                known.newest = Some(outgoing.published(&latest, next_seq(), None));
            }
        }
        self.shared.stats.published(true);
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
    pub(crate) fn newest_versions(&self) -> Vec<Outgoing> {
        let state = self.shared.lock();
        state
            .topics
            .iter()
            .filter_map(|(topic, known)| {
                let newest = known.newest.as_ref()?;
                Some(Outgoing {
                    pattern: newest.pattern.clone()?,
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
    pub(crate) fn newest_version_known(&self, topic: &str) -> Option<Version> {
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
        match relay
            .next_version(topic, self.newest_version_known(topic))
            .await
        {
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

    pub(super) fn deliver_latest(&self, outgoing: &Outgoing, latest: &LatestState) -> usize {
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
            let probe = self.shared.probes.sample(Kind::Latest);
            let published = outgoing.published(latest, next_seq(), probe);
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
}
