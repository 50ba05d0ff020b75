//! What the registry knows of every latest-state topic, and its rules for them: how the next
//! version is numbered, which version is the newest known (what pages render and new streams
//! start with), and when a delivered version goes into the topic's slot.
//!
//! It lives in the registry's state, under the registry's lock: a version takes its place in
//! the order of events there, beside ordinary broadcasts. The registry's calls (`publish_latest`,
//! `latest`, a relay's deliveries) only lock, call in here, and wake whom it returns.

use std::{collections::HashMap, sync::Arc};

use super::{
    slot::{Follow, Published, Slot},
    version::Version,
};
use crate::registry::outbox::Outbox;

/// Every latest-state topic the registry has heard of, by name.
#[derive(Default)]
pub(in crate::registry) struct Topics(HashMap<Arc<str>, Known>);

/// What the registry knows of one latest-state topic.
#[derive(Default)]
struct Known {
    /// The newest version known here, with its value and event: what pages render and new
    /// streams start with. A version published here is known at once, before it has gone round
    /// through the relay, so a page loaded right after the post that made it shows it.
    newest: Option<Arc<Published>>,
    /// The newest version delivered to the streams, and the streams that follow the topic.
    slot: Arc<Slot>,
    /// The newest version handed out here (it may not be published yet).
    assigned: Option<Version>,
}

impl Known {
    fn newest_known(&self) -> Option<Version> {
        let delivered = self.newest.as_ref().map(|newest| newest.version);
        delivered.max(self.assigned)
    }

    /// Keeps `published` (made only if needed) as the newest version known, unless one at
    /// least as new is.
    fn keep(&mut self, version: Version, published: impl FnOnce() -> Arc<Published>) {
        if self
            .newest
            .as_ref()
            .is_none_or(|newest| newest.version < version)
        {
            self.newest = Some(published());
        }
    }
}

/// Who numbers a new version, and what they said.
#[derive(Clone, Copy, Debug)]
pub(in crate::registry) enum Numbering {
    /// This process numbers on its own, from its start time (`epoch`) on.
    Alone { epoch: u64 },
    /// The numbering every instance shares handed out this version.
    Shared(Version),
    /// The shared numbering is out of reach: this instance (`origin`) numbers after the newest
    /// version it knows, until it is back.
    Unreachable { origin: u16 },
}

impl Topics {
    /// The topic called `name`, created if it is new, with its shared name.
    fn topic(&mut self, name: &str) -> (Arc<str>, &mut Known) {
        let name: Arc<str> = match self.0.get_key_value(name) {
            Some((name, _)) => Arc::clone(name),
            None => {
                let name: Arc<str> = name.into();
                self.0.insert(Arc::clone(&name), Known::default());
                name
            }
        };
        let known = self.0.get_mut(&name).expect("the topic is there");
        (name, known)
    }

    /// The slot of the topic called `name` (for a presence, which publishes its counts there
    /// itself).
    pub(in crate::registry) fn slot(&mut self, name: &str) -> Arc<Slot> {
        Arc::clone(&self.topic(name).1.slot)
    }

    /// A stream's hold on the topic called `name`. It starts from the newest version known
    /// here when the slot does not hold it yet (published here, still on its way round through
    /// the relay), so a stream opened right after a post shows what the post made.
    pub(in crate::registry) fn follow(&mut self, name: &str) -> Follow {
        let (name, known) = self.topic(name);
        let slot = Arc::clone(&known.slot);
        let delivered = slot.newest().map(|newest| newest.version);
        let start = known
            .newest
            .as_ref()
            .filter(|newest| Some(newest.version) > delivered)
            .cloned();
        Follow::new(slot, name, start)
    }

    /// Hands out the next version of the topic called `name`, as `numbering` says.
    pub(in crate::registry) fn assign(&mut self, name: &str, numbering: Numbering) -> Version {
        let (_, known) = self.topic(name);
        let newest = known.newest_known();
        let version = match numbering {
            Numbering::Alone { epoch } => {
                Version::new(epoch, newest.map_or(0, |v| v.display_number()) + 1)
            }
            Numbering::Shared(version) => version,
            Numbering::Unreachable { origin } => newest.unwrap_or_default().next_local(origin),
        };
        known.assigned = known.assigned.max(Some(version));
        version
    }

    /// The newest version of the topic called `name` seen or handed out here (what a relay's
    /// numbering must stay above).
    pub(in crate::registry) fn newest_known(&self, name: &str) -> Option<Version> {
        self.0.get(name)?.newest_known()
    }

    /// The newest version of the topic called `name` known here, if any.
    pub(in crate::registry) fn newest(&self, name: &str) -> Option<&Arc<Published>> {
        self.0.get(name)?.newest.as_ref()
    }

    /// The newest version of every topic known here, with the topic's name.
    pub(in crate::registry) fn every_newest(
        &self,
    ) -> impl Iterator<Item = (&Arc<str>, &Arc<Published>)> {
        self.0
            .iter()
            .filter_map(|(name, known)| Some((name, known.newest.as_ref()?)))
    }

    /// Keeps version `version` of the topic called `name`, just published here, as its newest
    /// known, unless a newer one is known; `published` makes it.
    pub(in crate::registry) fn keep(
        &mut self,
        name: &str,
        version: Version,
        published: impl FnOnce() -> Arc<Published>,
    ) {
        self.topic(name).1.keep(version, published);
    }

    /// Delivers version `version` of the topic called `name` (made by `published`) through the
    /// topic's slot. Returns the streams to wake (outside the registry's lock) and how many
    /// follow the topic; `None` if a newer version was known or delivered already.
    pub(in crate::registry) fn deliver(
        &mut self,
        name: &str,
        version: Version,
        published: impl FnOnce() -> Arc<Published>,
    ) -> Option<(Vec<Arc<Outbox>>, usize)> {
        let (_, known) = self.topic(name);
        if known
            .newest
            .as_ref()
            .is_some_and(|newest| newest.version > version)
        {
            return None; // superseded before it arrived
        }
        let published = published();
        let waiting = known.slot.publish(Arc::clone(&published))?;
        known.keep(version, || published);
        Some((waiting, known.slot.followers()))
    }

    /// How many streams are listed to be woken by the next version of the topic called `name`
    /// (for tests).
    #[cfg(test)]
    pub(in crate::registry) fn waiting(&self, name: &str) -> usize {
        self.0.get(name).map_or(0, |known| known.slot.waiting())
    }
}
