//! What passes between the registry and the hook through which broadcasts reach other
//! instances: what a relay counts ([`RelayCounts`]), and the registry as a relay sees it
//! ([`RelayPort`]). The hook itself, the [`Relay`](super::Relay) trait, is with the registry
//! that holds it (`shared.rs`), as it is handed that registry.
//!
//! The registry holds this process's streams only. When several instances serve one app, a
//! relay attached with `Registry::attach_relay` carries every broadcast to all of them (the
//! `redis` module implements one over Redis pub/sub). The registry knows nothing of how.
//!
//! One of two sides, named alike on purpose: this is the registry's side of the relay, and
//! `redis/relay.rs` the Redis side that implements it.

use std::future::Future;

use super::{latest::Version, outgoing::Outgoing};

/// What a [`Relay`](super::Relay) has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounts {
    /// Broadcasts this instance published to the other instances.
    pub published: u64,
    /// Messages from the channel taken in (this instance's own echoes included).
    pub received: u64,
    /// Times it (re)connected to receive: one at start, one more after each loss.
    pub connects: u64,
    /// How old the last message taken in was when it arrived, in milliseconds (by the clock
    /// messages are dated with): how far behind the relay is.
    pub lag_ms: Option<u64>,
}

/// The registry as a [`Relay`](super::Relay) sees it: what arrives from the other instances, and
/// what this instance shares with them. Apart from [`Registry`](super::Registry)'s own methods,
/// which are what an app calls, so that neither face crowds the other; only a relay imports this.
pub trait RelayPort {
    /// Delivers a broadcast (from this instance or another) to this instance's streams: how
    /// many got it. Every broadcast must reach each instance's `deliver` once.
    ///
    /// An ordinary broadcast is queued for every connection its pattern matches. A latest-state
    /// version is stored once, in its topic's slot, and wakes the streams that follow the topic
    /// (each then writes it if the pattern matches its key); it returns how many follow it. A
    /// version older than (or as old as) the newest delivered here is dropped, and returns 0.
    fn deliver(&self, outgoing: &Outgoing) -> usize;

    /// The newest version of every latest-state topic delivered here, as the broadcasts that
    /// delivered them (for bringing other instances up to date).
    fn latest_broadcasts(&self) -> Vec<Outgoing>;

    /// The newest version of `topic` seen or handed out here (what a shared numbering must
    /// stay above).
    fn newest_known(&self, topic: &str) -> Option<Version>;

    /// Each presence counted here, with the streams it matches on this instance alone: what a
    /// relay shares with the other instances.
    fn local_presences(&self) -> Vec<(&'static str, usize)>;

    /// Completes at the next change of a count here (one may have happened since the last
    /// call: a change while nobody waits is kept for the next one).
    fn local_presence_changed(&self) -> impl Future<Output = ()> + Send + use<Self>;

    /// Sets how many streams the presence `name` matches on the other instances; pages then
    /// show this instance's count plus `remote`. An unknown name changes nothing.
    fn set_remote_presence(&self, name: &str, remote: usize);
}
