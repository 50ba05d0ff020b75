//! A broadcast on its way: what, to whom, and whether it is a version of a latest-state topic
//! — what the registry delivers here and a [`Relay`](super::Relay) carries to other instances.

use std::sync::Arc;

use super::{
    key::{Key, Pattern},
    latest::{Published, Version},
    probe::Probe,
};
use crate::frame::Frame;

/// One broadcast: what, to whom, and whether it is a version of a latest-state topic.
///
/// Public for [`Relay`](super::Relay) implementations, which carry it to other instances and
/// deliver it with [`RelayPort::deliver`](super::RelayPort::deliver).
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Which keys it is for.
    pub pattern: Pattern,
    /// Keys to skip.
    pub except: Vec<Key>,
    /// The event.
    pub frame: Frame,
    /// Set when the event is a version of a latest-state topic.
    pub latest: Option<LatestState>,
}

/// The latest-state part of an [`Outgoing`] broadcast.
#[derive(Clone, Debug)]
pub struct LatestState {
    /// The topic's name.
    pub topic: Arc<str>,
    /// This version.
    pub version: Version,
    /// The value, as JSON (what pages render from).
    pub value: Option<Arc<str>>,
}

impl Outgoing {
    /// This broadcast as a published version of its topic, at place `seq` in the order of
    /// events.
    pub(super) fn published(
        &self,
        latest: &LatestState,
        seq: u64,
        probe: Option<Arc<Probe>>,
    ) -> Arc<Published> {
        Arc::new(Published {
            version: latest.version,
            value: latest.value.clone(),
            frame: self.frame.clone(),
            pattern: Some(self.pattern.clone()),
            except: self.except.clone(),
            seq,
            probe,
        })
    }

    /// The broadcast that delivered `published`, a version of the topic `topic` (for a relay
    /// bringing other instances up to date); `None` for a version meant for every stream (a
    /// presence count), which no broadcast carries.
    pub(super) fn from_published(topic: &Arc<str>, published: &Published) -> Option<Outgoing> {
        Some(Outgoing {
            pattern: published.pattern.clone()?,
            except: published.except.clone(),
            frame: published.frame.clone(),
            latest: Some(LatestState {
                topic: Arc::clone(topic),
                version: published.version,
                value: published.value.clone(),
            }),
        })
    }
}
