//! The connection registry: where persistent streams live, so actions can reach them.
//!
//! A stream handler stores its connection under a [`Key`] (`page/home/<session-id>`) with
//! [`Registry::connect`]; any later action pushes [`Frame`](crate::Frame)s to one key
//! ([`Registry::send`]) or to every key a [`Pattern`] matches ([`Registry::broadcast`]), or
//! publishes a new version of a latest-state [`Topic`] ([`Registry::publish_latest`]).
//!
//! What this gets right that a map of senders with a TTL does not:
//!
//! - **Cleanup is owned by drop.** The [`Connection`] handed to the stream is also its drop
//!   guard: when the client goes away, hyper drops the response body, the body drops the
//!   connection, and the entry leaves the registry at once. Code placed after a stream's loop
//!   would never run for a dropped stream; a timer would leak until it fires.
//! - **Same key, one connection.** Storing under a key that is taken replaces the old
//!   connection and ends its stream; the caller gets a [`Replaced`] handle to send it a last
//!   word first.
//! - **A healthy viewer is never dropped.** A broadcast never waits, and a long queue is not a
//!   reason to drop anyone: it only says the server is behind (`outbox.rs`). Ordinary events
//!   are all delivered, in order, up to a generous limit per stream. Clients that stop reading
//!   are found by the server's send timeout instead, which watches the socket itself.
//! - **A latest-state publish costs O(1).** A topic's newest version sits in one slot
//!   (`latest/slot.rs`, the shape of tokio's `watch`); publishing swaps it and wakes the
//!   streams that wait for it. A stream that wakes writes the newest version it has not sent,
//!   so a burst of 1 024 publishes costs about what one does: the work follows the frames
//!   written.
//! - **Encode once.** A broadcast clones one [`Frame`](crate::Frame) — a reference-counted
//!   byte buffer — into each outbox; a latest-state version is one frame in its slot, read by
//!   every stream.
//! - **Cost follows the matches.** Keys live in a trie of segments (`index.rs`), so a broadcast
//!   visits only the branches its pattern can match.
//! - **Never backwards.** Versions of a latest-state topic are totally ordered ([`Version`]),
//!   and the registry and every outbox refuse one older than what they have seen.
//! - **Several instances.** A [`Relay`] attached at start carries broadcasts to other
//!   instances (the `redis` module provides one); the registry itself stays in-process.
//!
//! The files (none imports this one; each folder and file below has its own doc):
//!
//! - what the registry is made of: `key.rs` (keys and patterns), `page.rs` (a page's keys),
//!   `index.rs` (the trie), `outbox.rs` (a connection's queue and waker), `latest/`
//!   (latest-state topics: their versions, their slots, and what the registry knows of each),
//!   `tally.rs` (a presence's count), `outgoing.rs` (a broadcast on its way), `stats.rs`,
//!   `probe.rs`, `stream_limits.rs`, `socket_control.rs` (what the registry may ask of a
//!   stream's TCP connection), `relay.rs` (what a relay counts, and the registry as a relay
//!   sees it);
//! - `shared.rs`: the [`Registry`] handle, the state under its lock, and the [`Relay`] it may
//!   hold;
//! - what it does, each over the handle: `connection.rs` (storing a stream, its end and its
//!   drop guard), `delivery.rs` (sending, broadcasting, publishing versions, keep-alive, a
//!   relay's deliveries), `presence.rs` (counting).
//!
//! This file only declares them and hands their names on.

mod connection;
mod delivery;
mod index;
mod key;
mod latest;
mod outbox;
mod outgoing;
mod page;
mod presence;
mod probe;
mod relay;
mod shared;
mod socket_control;
mod stats;
mod stream_limits;
mod tally;

pub use self::stream_limits::{ConnectError, DEFAULT_QUEUE_LIMIT, Limits};
// What the serving layer tells a stream's socket, and hears from it: not an app's concern.
pub(crate) use self::presence::is_name as is_presence_name;
pub(crate) use self::socket_control::{STREAM_SEND_BUFFER, SocketControl};
#[cfg(feature = "redis")]
pub(crate) use self::tally::PUBLISH_GAP as PRESENCE_PUBLISH_GAP;
pub use self::{
    connection::{ConnectOptions, Connection, Replaced},
    key::{Key, KeyError, Pattern, RedactedKey, WILDCARD},
    latest::{Topic, Version, VersionError, is_topic_name},
    outgoing::{LatestState, Outgoing},
    page::Page,
    presence::Presence,
    relay::{RelayCounts, RelayPort},
    shared::{Registry, Relay, WeakRegistry},
    stats::{CloseReason, Counts, REFUSALS},
};

#[cfg(test)]
mod tests;
