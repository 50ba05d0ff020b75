//! The hook through which broadcasts reach other instances.
//!
//! The registry holds this process's streams only. When several instances serve one app, a
//! [`Relay`] attached with [`Registry::attach_relay`] carries every broadcast to all of them
//! (the `redis` module implements one over Redis pub/sub). The registry knows nothing of how.
//!
//! One of two sides, named alike on purpose: this is the registry's side of the relay, and
//! `redis/relay.rs` the Redis side that implements it.

use std::fmt;

use futures_util::future::BoxFuture;

use std::future::Future;

use super::{Outgoing, Registry, Version};

/// What a [`Relay`] has done since it started.
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

/// Carries broadcasts between instances, and numbers latest-state versions for all of them.
pub trait Relay: Send + Sync + fmt::Debug {
    /// Takes one broadcast from this instance, to be delivered on every instance.
    ///
    /// The promise to keep: this instance's own matching streams get it exactly once, through
    /// [`Registry::deliver`] — whether it goes round through the other instances first or
    /// cannot be sent anywhere. Returns how many local streams got it right away.
    fn relay(&self, registry: &Registry, outgoing: Outgoing) -> usize;

    /// The next version of the latest-state topic called `topic`, from the numbering every
    /// instance shares, kept above `newest` (the newest version this instance knows, if any).
    /// `None` when the numbering cannot be reached now; the registry then numbers locally.
    fn next_version<'a>(
        &'a self,
        topic: &'a str,
        newest: Option<Version>,
    ) -> BoxFuture<'a, Option<Version>>;

    /// Whether broadcasts from other instances are arriving (for health checks).
    fn is_connected(&self) -> bool;

    /// Messages from other instances refused so far (unsigned, forged, too large, malformed,
    /// for another app, too old, copies), and shared state found not to be trusted.
    fn rejected(&self) -> u64;

    /// What it has done so far, for metrics. (A relay that counts nothing says zeros.)
    fn counts(&self) -> RelayCounts {
        RelayCounts::default()
    }

    /// The server serves at `addr`: where this instance is, which names what it shares with
    /// the others (a relay that shares nothing under a name ignores it).
    fn serving_at(&self, _addr: std::net::SocketAddr) {}

    /// Completes once every broadcast taken so far has been sent on (or given up on): the
    /// server waits for it, within its shutdown timeout, before the process exits.
    fn flush(&self) -> BoxFuture<'_, ()>;
}

/// The registry as a [`Relay`] sees it: what arrives from the other instances, and what this
/// instance shares with them. Apart from [`Registry`]'s own methods, which are what an app
/// calls, so that neither face crowds the other; only a relay imports this.
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
