//! Latest-state topics: state that every tab shows the newest version of (the latest greeting,
//! a score, a presence count): their versions, their slots, and what the registry knows of
//! each topic and decides for it. (A presence's count is one, kept by `tally.rs`, which
//! numbers its own versions and publishes into its topic's slot directly.)
//!
//! An event of a latest-state topic replaces the one before it, so the registry can treat it
//! differently from an ordinary event:
//!
//! - a stream that is behind skips to the newest version instead of queueing every one (it
//!   reads the topic's one slot), so a burst of updates costs a slow tab nothing;
//! - the registry remembers the newest version, its value and its encoded event, so a page or a
//!   (re)connecting stream starts from it;
//! - versions are totally ordered, so updates that race each other — across instances too — can
//!   never leave a tab on an older state.
//!
//! The files, from the bottom up:
//!
//! - `version.rs`: a [`Topic`]'s name and value type, and the [`Version`]s that order its states;
//! - `slot.rs`: one topic's newest delivered version and the streams waiting for a newer one
//!   (the shape of tokio's `watch`), and a stream's hold on it;
//! - `topics.rs`: what the registry knows of every topic, under its lock — numbering a new
//!   version, the newest one known, delivering one into the slot.
//!
//! The registry's own calls on topics are thin, and sit with the calls of their kind over the
//! handle: reading the newest value (`Registry::latest`) in `shared.rs`, publishing and a
//! relay's deliveries in `delivery.rs`. This folder sits below the handle, so it cannot name
//! it: that keeps the registry's files free of import circles.

mod slot;
mod topics;
mod version;

pub use self::version::{Topic, Version, VersionError, is_topic_name};
pub(in crate::registry) use self::{
    slot::{Follow, Published, Slot},
    topics::{Numbering, Topics},
};
