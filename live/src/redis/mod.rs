//! Several instances, one app: broadcasts and latest-state numbering shared through Redis
//! (cargo feature `redis`, on when `REDIS_URL` is set).
//!
//! - [`conn`]: one lazily (re)connected command connection, failing fast while Redis is down.
//! - [`relay`]: the registry's [`Relay`](crate::registry::Relay) over pub/sub.
//! - [`wire`]: the message format on the channel.
//!
//! The registry knows nothing of Redis: [`attach`] plugs a relay into it at start.

pub mod conn;
pub mod relay;
pub mod wire;

use std::sync::Arc;

use crate::registry::Registry;

/// Relays `registry`'s broadcasts through the Redis at `url`, under key `prefix`, signing
/// every message with `secret`. Connecting happens in the background; until it succeeds,
/// broadcasts stay local.
pub fn attach(
    registry: &Registry,
    url: &str,
    prefix: &str,
    secret: &str,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let redis = Arc::new(conn::RedisConn::new(client));
    let signer = wire::Signer::new(secret);
    registry.attach_relay(relay::RedisRelay::start(registry, redis, prefix, signer));
    Ok(())
}
