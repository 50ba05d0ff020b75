//! Several instances, one app: broadcasts and latest-state numbering shared through Redis
//! (cargo feature `redis`, on when `REDIS_URL` is set).
//!
//! - [`conn`]: one lazily (re)connected command connection, failing fast while Redis is down.
//! - [`relay`]: the registry's [`Relay`](crate::registry::Relay) over pub/sub.
//! - [`wire`]: the message format on the channel, signed with `REDIS_SECRET`.
//! - `admission.rs`: which signed messages a receiver takes (this app's, recent, new).
//! - `clock.rs`: Redis's clock, which dates every message.
//! - `link.rs`: what the relay and presence sharing hold of the link to Redis.
//! - [`presence`]: each instance's presence counts, shared so that pages show the total.
//! - [`rediss`]: `rediss://` (managed Redis), `REDIS_CA`, and naming what no retry can fix.
//! - `store.rs`: the newest version of each latest-state topic, and the counter that numbers
//!   them, in Redis — checked before they are obeyed.
//!
//! The registry knows nothing of Redis: [`attach`] plugs a relay into it at start.
//!
//! What the relay trusts: only what is signed with the secret, and only for what the signature
//! covers. Someone who can write to Redis without the secret can stop the relay (delete keys,
//! drop messages, flood the channel with refused ones), which is logged and counted
//! (`redis_rejected` on `/healthz`); they cannot make a tab show anything an instance did not
//! send, show it twice, or keep a greeting from reaching tabs.

mod admission;
mod clock;
pub mod conn;
mod link;
pub mod presence;
pub mod rediss;
pub mod relay;
mod store;
pub mod wire;

use std::sync::Arc;

use crate::registry::Registry;

/// Relays `registry`'s broadcasts through the Redis at `url` (over TLS for `rediss://`,
/// trusting the CAs in the PEM file `ca` if given), under key `prefix`, signing every message
/// with `secret`; presence counts last `presence_expiry` there unless written again.
/// Connecting happens in the background; until it succeeds, broadcasts and counts stay local.
pub fn attach(
    registry: &Registry,
    url: &str,
    ca: Option<&std::path::Path>,
    prefix: &str,
    secret: &str,
    presence_expiry: std::time::Duration,
) -> redis::RedisResult<()> {
    let client = rediss::client(url, ca)?;
    let redis = Arc::new(conn::RedisConn::new(client));
    let signer = wire::Signer::new(secret);
    registry.attach_relay(relay::RedisRelay::start(
        registry,
        redis,
        prefix,
        signer,
        presence_expiry,
    ));
    Ok(())
}
