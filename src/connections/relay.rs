//! Broadcasts across instances through Redis pub/sub (cargo feature `redis`).
//!
//! Each instance keeps its own streams; only broadcasts travel. With a relay attached, a
//! broadcast is published once to `<prefix>:broadcast`, and every instance — the sender
//! included — delivers what it receives to its own matching streams. Routing the sender's own
//! broadcasts through Redis too means every instance sees broadcasts in the same order, so
//! tabs on different instances end in the same state.
//!
//! Redis going away never takes the app down:
//!
//! - while this instance is not subscribed, its broadcasts are delivered to its own streams
//!   directly and still published (marked as delivered) for the other instances;
//! - a publish that fails is delivered locally instead;
//! - the subscriber reconnects with backoff, pinging to notice a dead connection, and
//!   cross-instance delivery resumes by itself.
//!
//! A broadcast published while Redis is down reaches only the local streams: pub/sub keeps
//! nothing for later. A tab that reconnects is sent the current state anyway.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use redis::{Script, aio::PubSub};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Outgoing, Registry, WeakRegistry, wire::WireBroadcast};
use crate::redis_conn::{FIRST_BACKOFF, RedisConn, next_backoff};

/// Broadcasts waiting to be published. Publishing takes well under a millisecond on a healthy
/// Redis; if this many are waiting, Redis is too slow and broadcasts are delivered locally.
const QUEUE: usize = 4096;
/// How often an idle subscription checks that Redis still answers.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Publishes only if `version` is newer than the last one published for the topic, and records
/// it: broadcasts of a "latest" state can then never go backwards, whichever instance sends
/// them and in whatever order they reach Redis.
const PUBLISH_IF_NEWER: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= current then
  return -1
end
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('PUBLISH', ARGV[2], ARGV[3])
";

/// The registry's link to Redis.
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    instance: Uuid,
    channel: String,
    prefix: String,
    subscribed: AtomicBool,
    queue: mpsc::Sender<Outgoing>,
}

impl Relay {
    /// Starts relaying `registry`'s broadcasts through Redis at `redis`, under key `prefix`.
    /// Returns at once: connecting happens in the background, and until it succeeds
    /// broadcasts stay local.
    pub fn start(registry: &Registry, redis: Arc<RedisConn>, prefix: &str, instance: Uuid) -> Self {
        let (queue, outgoing) = mpsc::channel(QUEUE);
        let relay = Relay {
            inner: Arc::new(Inner {
                instance,
                channel: format!("{prefix}:broadcast"),
                prefix: prefix.to_owned(),
                subscribed: AtomicBool::new(false),
                queue,
            }),
        };
        tokio::spawn(publish(
            relay.clone(),
            registry.downgrade(),
            Arc::clone(&redis),
            outgoing,
        ));
        tokio::spawn(subscribe(relay.clone(), registry.downgrade(), redis));
        relay
    }

    /// Whether this instance is currently receiving broadcasts from Redis.
    pub fn is_connected(&self) -> bool {
        self.inner.subscribed.load(Ordering::Relaxed)
    }

    /// Routes one broadcast; returns how many local connections got it right away (none when
    /// it goes round through Redis first).
    pub(super) fn broadcast(&self, registry: &Registry, mut outgoing: Outgoing) -> usize {
        let mut delivered = 0;
        if !self.is_connected() {
            // Our own subscription is down: serve our streams now, still tell the others.
            delivered = registry.deliver_local(&outgoing);
            outgoing.delivered_locally = true;
        }
        if let Err(error) = self.inner.queue.try_send(outgoing) {
            let outgoing = error.into_inner();
            tracing::warn!("redis publishing is backed up: delivering locally only");
            if !outgoing.delivered_locally {
                delivered = registry.deliver_local(&outgoing);
            }
        }
        delivered
    }

    fn wire(&self, outgoing: &Outgoing) -> WireBroadcast {
        WireBroadcast {
            origin: self.inner.instance,
            delivered_by_origin: outgoing.delivered_locally,
            pattern: outgoing.pattern.clone(),
            except: outgoing.except.clone(),
            frame: outgoing.frame.clone(),
        }
    }
}

/// Publishes queued broadcasts in order; one that cannot be published is delivered locally.
async fn publish(
    relay: Relay,
    registry: WeakRegistry,
    redis: Arc<RedisConn>,
    mut outgoing: mpsc::Receiver<Outgoing>,
) {
    let script = Script::new(PUBLISH_IF_NEWER);
    while let Some(item) = outgoing.recv().await {
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let message = relay.wire(&item).encode();
        let result = async {
            let mut connection = redis.get().await?;
            match &item.latest {
                None => {
                    redis::cmd("PUBLISH")
                        .arg(&relay.inner.channel)
                        .arg(&message)
                        .query_async::<i64>(&mut connection)
                        .await
                }
                Some((topic, version)) => {
                    script
                        .key(format!("{}:latest:{topic}", relay.inner.prefix))
                        .arg(*version)
                        .arg(&relay.inner.channel)
                        .arg(&message)
                        .invoke_async::<i64>(&mut connection)
                        .await
                }
            }
        }
        .await;
        match result {
            Ok(-1) => tracing::debug!("broadcast superseded by a newer one: not published"),
            Ok(receivers) => tracing::trace!(receivers, "broadcast published"),
            Err(error) => {
                redis.failed(&error);
                tracing::debug!(%error, "cannot publish: delivering locally");
                if !item.delivered_locally {
                    registry.deliver_local(&item);
                }
            }
        }
    }
}

/// Keeps a subscription to the broadcast channel and delivers what arrives, reconnecting with
/// backoff for as long as the registry exists.
async fn subscribe(relay: Relay, registry: WeakRegistry, redis: Arc<RedisConn>) {
    let mut backoff = FIRST_BACKOFF;
    let mut reported = false;
    loop {
        if registry.upgrade().is_none_or(|r| r.is_shut_down()) {
            return;
        }
        match connect(&redis, &relay.inner.channel).await {
            Ok(pubsub) => {
                backoff = FIRST_BACKOFF;
                reported = false;
                redis.answering();
                relay.inner.subscribed.store(true, Ordering::Relaxed);
                tracing::info!(channel = %relay.inner.channel, "redis relay connected");
                let end = receive(&relay, &registry, pubsub).await;
                relay.inner.subscribed.store(false, Ordering::Relaxed);
                if end == End::RegistryGone {
                    return;
                }
                tracing::warn!("redis relay lost: delivering locally, reconnecting");
            }
            Err(error) if !reported => {
                reported = true;
                tracing::warn!(%error, "redis relay cannot subscribe: delivering locally, retrying");
            }
            Err(error) => tracing::debug!(%error, "redis relay still unavailable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
    }
}

async fn connect(redis: &RedisConn, channel: &str) -> redis::RedisResult<PubSub> {
    let connecting = async {
        let mut pubsub = redis.client().get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(crate::redis_conn::TIMEOUT * 2, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing timed out",
            )))
        })
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    ConnectionLost,
    RegistryGone,
}

async fn receive(relay: &Relay, registry: &WeakRegistry, pubsub: PubSub) -> End {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return End::ConnectionLost };
                let Some(registry) = registry.upgrade() else { return End::RegistryGone };
                match WireBroadcast::decode(message.get_payload_bytes()) {
                    Ok(broadcast) => {
                        let own_and_done = broadcast.origin == relay.inner.instance
                            && broadcast.delivered_by_origin;
                        if !own_and_done {
                            registry.deliver_local(&Outgoing {
                                pattern: broadcast.pattern,
                                except: broadcast.except,
                                frame: broadcast.frame,
                                latest: None,
                                delivered_locally: false,
                            });
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "malformed message on the broadcast channel: skipped");
                    }
                }
            }
            _ = ping.tick() => {
                if registry.upgrade().is_none_or(|r| r.is_shut_down()) {
                    return End::RegistryGone;
                }
                let answered = tokio::time::timeout(
                    crate::redis_conn::TIMEOUT,
                    // Subscribed, the reply is a message (`["pong", ""]`), not `PONG`: any
                    // reply will do.
                    sink.ping::<redis::Value>(),
                )
                .await;
                if !matches!(answered, Ok(Ok(_))) {
                    return End::ConnectionLost;
                }
            }
        }
    }
}
