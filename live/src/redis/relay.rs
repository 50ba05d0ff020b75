//! Broadcasts across instances through Redis pub/sub.
//!
//! One of two sides, named alike on purpose: this is the Redis side of the relay, and
//! `registry/relay.rs` the hook the registry sends through.
//!
//! Each instance keeps its own streams; only broadcasts travel. A broadcast is published once
//! to `<prefix>:broadcast`, and every instance — the sender included — delivers what it
//! receives to its own matching streams. Routing the sender's own broadcasts through Redis too
//! means every instance sees them in the same order, so tabs everywhere end in the same state.
//!
//! The promise is *exactly once, never backwards*, and Redis trouble must not break it:
//!
//! - Every broadcast carries its origin and a sequence number. The sender keeps each one it
//!   published as *pending* until it comes back on the subscription, and delivers it to its own
//!   streams then. If it cannot come back — the publish failed, the subscription dropped while
//!   it was on its way, or it has not come back within `ECHO_TIMEOUT` — the sender delivers
//!   it itself, and remembers having done so, so a late echo is skipped, not delivered twice.
//! - While this instance is not subscribed, its broadcasts are delivered locally at once and
//!   still published for the other instances.
//! - Every latest-state broadcast carries its topic and version; the registry refuses a version
//!   older than one it has seen, wherever each came from.
//! - Versions are numbered in Redis together with an epoch (`store.rs`), so a Redis that
//!   restarts empty starts a later epoch instead of numbering from 1 below what tabs have.
//! - After every (re)subscription the instance reads the newest stored version of every topic
//!   and delivers it, so tabs that missed updates during an outage catch up at once.
//!
//! Only what is signed is trusted, and only as far as it says: a message is delivered if it is
//! signed (`wire.rs`), for this app and channel, recent by Redis's clock (`clock.rs`), and newer
//! than the last from its sender (`admission.rs`); what is stored in Redis is checked the same
//! way before it is delivered or replaced (`store.rs`). Everything refused or put right is
//! counted (`redis_rejected` on `/healthz`) and logged, a line per burst.
//!
//! Long on purpose: the exactly-once bookkeeping (pending broadcasts, settling, the sweep) and
//! the two tasks that drive it (publishing, subscribing) are one protocol, and each of its
//! promises above is kept by code in both halves; apart, neither half could be read alone.
//!
//! Redis going away never takes the app down: the subscriber reconnects with backoff, pinging
//! to notice a dead connection, and cross-instance delivery resumes by itself. Pub/sub keeps
//! nothing, so ordinary broadcasts sent during an outage reach only the sender's streams;
//! latest-state topics catch up on resubscription.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, future::BoxFuture};
use redis::{AsyncCommands, RedisError, aio::PubSub};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    admission::Admission,
    clock::RedisClock,
    conn::{FIRST_BACKOFF, RedisConn, TIMEOUT, next_backoff},
    link::Link,
    presence::Sharing,
    store::{Store, Stored},
    wire::{Signer, WireBroadcast},
};
use crate::registry::{
    Outgoing, Registry, Relay, RelayCounts, RelayPort, Version, WeakRegistry, is_topic_name,
};

/// Broadcasts waiting to be published. Publishing takes well under a millisecond on a healthy
/// Redis; if this many are waiting, Redis is too slow and broadcasts are delivered locally.
const QUEUE: usize = 4096;
/// How often an idle subscription checks that Redis still answers.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a published broadcast may take to come back before the sender delivers it to its
/// own streams itself (a subscription that died silently is noticed only at the next ping).
pub(crate) const ECHO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the sender remembers delivering a broadcast itself, to skip its echo if that still
/// comes (Redis ran a publish after the sender had given up on it).
const REMEMBER: Duration = Duration::from_secs(60);
/// How often pending broadcasts are checked for a missing echo.
const SWEEP_EVERY: Duration = Duration::from_millis(200);
/// The most topics caught up on at resubscription (protects against a flood of forged ones).
const MAX_TOPICS: usize = 1000;

/// The registry's link to Redis.
#[derive(Debug)]
pub struct RedisRelay {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    link: Arc<Link>,
    queue: mpsc::Sender<Publish>,
    next_seq: AtomicU64,
    pending: Mutex<Pending>,
    /// Mirrors `Pending::subscribed`, readable without the lock.
    subscribed: AtomicBool,
    /// Cancelled when the relay is dropped: its tasks end and let go of their connections.
    stop: CancellationToken,
    /// Broadcasts queued or being published, for [`Relay::flush`].
    unpublished: Unpublished,
    /// This instance's presence counts in Redis, withdrawn by [`Relay::flush`].
    presence: Arc<Sharing>,
}

/// Counts the broadcasts queued for publishing and not yet done with.
#[derive(Debug, Default)]
struct Unpublished {
    count: AtomicUsize,
    none_left: Notify,
}

impl Unpublished {
    /// Queues `publish`, counting it while it is on its way.
    fn queue(&self, queue: &mpsc::Sender<Publish>, publish: Publish) -> Result<(), ()> {
        self.count.fetch_add(1, Ordering::AcqRel);
        queue.try_send(publish).map_err(|_| self.done())
    }

    /// One broadcast published, or given up on.
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none_left.notify_waiters();
        }
    }

    async fn flushed(&self) {
        loop {
            let none_left = self.none_left.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            none_left.await;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug, Default)]
struct Pending {
    /// Whether the subscription is up. Read and changed under the same lock as `items`, so a
    /// broadcast either sees the subscription down (and is delivered at once) or is pending
    /// when the subscription drops (and is delivered then).
    subscribed: bool,
    /// This instance's broadcasts not yet back from Redis, or delivered by the sender itself
    /// (kept for [`REMEMBER`] to skip a late echo). Ordered by sequence number, which is also
    /// the order they were sent in.
    items: BTreeMap<u64, Item>,
}

#[derive(Debug)]
struct Item {
    /// The broadcast, until it has been delivered here.
    undelivered: Option<Outgoing>,
    /// When it was published, once Redis has acknowledged it.
    published: Option<Instant>,
    created: Instant,
}

/// A broadcast to publish: it is signed when it is sent, dated by Redis's clock then.
#[derive(Debug)]
struct Publish {
    seq: u64,
    outgoing: Outgoing,
}

impl RedisRelay {
    /// Relays `registry`'s broadcasts through Redis at `redis`, under key `prefix`. Returns at
    /// once: connecting happens in the background, and until it succeeds broadcasts stay local.
    /// Presence counts last `presence_expiry` in Redis (`presence.rs`).
    pub fn start(
        registry: &Registry,
        redis: Arc<RedisConn>,
        prefix: &str,
        signer: Signer,
        presence_expiry: Duration,
    ) -> Arc<Self> {
        let (queue, outgoing) = mpsc::channel(QUEUE);
        let channel = format!("{prefix}:broadcast");
        let link = Arc::new(Link {
            instance: Uuid::new_v4(),
            prefix: prefix.to_owned(),
            admission: Admission::new(prefix, &channel),
            store: Store::new(prefix, &channel, signer.clone()),
            channel,
            redis,
            signer,
            clock: RedisClock::default(),
            epoch: OnceLock::new(),
            rejected: AtomicU64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            lag_ms: AtomicU64::new(u64::MAX),
            rejection_logged: Mutex::new(None),
        });
        let inner = Arc::new(Inner {
            link: Arc::clone(&link),
            queue,
            next_seq: AtomicU64::new(1),
            pending: Mutex::default(),
            subscribed: AtomicBool::new(false),
            unpublished: Unpublished::default(),
            presence: Arc::new(Sharing::new(presence_expiry)),
            stop: CancellationToken::new(),
        });
        tokio::spawn(super::presence::share(
            Arc::clone(&inner.presence),
            registry.downgrade(),
            Arc::clone(&link),
            inner.stop.clone(),
        ));
        tokio::spawn(publish(
            Arc::downgrade(&inner),
            registry.downgrade(),
            link,
            inner.stop.clone(),
            outgoing,
        ));
        tokio::spawn(subscribe(
            Arc::downgrade(&inner),
            registry.downgrade(),
            Arc::clone(&inner.link),
            inner.stop.clone(),
        ));
        Arc::new(RedisRelay { inner })
    }
}

impl Relay for RedisRelay {
    fn relay(&self, registry: &Registry, outgoing: Outgoing) -> usize {
        let inner = &self.inner;
        let mut delivered = 0;
        let (seq, queued) = {
            let mut pending = inner.lock();
            let now = Instant::now();
            pending.forget_older_than(now);
            let undelivered = if pending.subscribed {
                Some(outgoing.clone())
            } else {
                // Our own subscription is down: serve our streams now, still tell the others.
                delivered = registry.deliver(&outgoing);
                None
            };
            // Numbered and queued under one lock, so that broadcasts are published in the order
            // of their numbers: receivers refuse a number below one they have delivered.
            let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
            pending.items.insert(
                seq,
                Item {
                    undelivered,
                    published: None,
                    created: now,
                },
            );
            let publish = Publish { seq, outgoing };
            (seq, inner.unpublished.queue(&inner.queue, publish))
        };
        if queued.is_err() {
            tracing::warn!("redis publishing is backed up: delivering locally only");
            delivered += inner.settle(seq, registry, Settle::DeliverHere);
        }
        delivered
    }

    fn next_version<'a>(
        &'a self,
        topic: &'a str,
        newest: Option<Version>,
    ) -> BoxFuture<'a, Option<Version>> {
        Box::pin(async move {
            let link = &self.inner.link;
            let result = async {
                let mut connection = link.redis.get().await?;
                (link
                    .store
                    .next_version(&mut connection, topic, newest)
                    .await)
                    .inspect_err(|error| link.redis.failed(error))
            }
            .await;
            match result {
                Ok((version, repaired)) => {
                    if repaired {
                        link.refused(&format!(
                            "the counter of {topic} held values that cannot be right: put right"
                        ));
                    }
                    Some(version)
                }
                Err(error) => {
                    tracing::debug!(%error, %topic, "cannot number in redis: numbering locally");
                    None
                }
            }
        })
    }

    fn is_connected(&self) -> bool {
        self.inner.subscribed.load(Ordering::Relaxed)
    }

    fn rejected(&self) -> u64 {
        self.inner.link.rejected.load(Ordering::Relaxed)
    }

    fn counts(&self) -> RelayCounts {
        let link = &self.inner.link;
        RelayCounts {
            published: link.published.load(Ordering::Relaxed),
            received: link.received.load(Ordering::Relaxed),
            connects: link.connects.load(Ordering::Relaxed),
            lag_ms: Some(link.lag_ms.load(Ordering::Relaxed)).filter(|lag| *lag != u64::MAX),
        }
    }

    fn serving_at(&self, addr: std::net::SocketAddr) {
        self.inner.presence.serving_at(addr);
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            self.inner.unpublished.flushed().await;
            // A clean shutdown: this instance's tabs leave every page's count at once.
            self.inner.presence.withdraw(&self.inner.link).await;
        })
    }
}

/// What to do with one pending broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// It came back from Redis: deliver it unless already delivered.
    Echoed,
    /// It will not come back (or not in time): deliver it here unless already delivered, and
    /// remember that, to skip its echo if it comes after all.
    DeliverHere,
    /// Redis refused it as older than the stored version: nobody gets it.
    Superseded,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles pending broadcast `seq`; returns how many local streams got it.
    fn settle(&self, seq: u64, registry: &Registry, how: Settle) -> usize {
        let mut pending = self.lock();
        let Some(item) = pending.items.get_mut(&seq) else {
            return 0; // settled and forgotten long ago
        };
        let outgoing = item.undelivered.take();
        match how {
            Settle::Echoed | Settle::Superseded => {
                pending.items.remove(&seq);
            }
            Settle::DeliverHere => {}
        }
        match (how, outgoing) {
            (Settle::Echoed | Settle::DeliverHere, Some(outgoing)) => registry.deliver(&outgoing),
            _ => 0,
        }
    }

    /// The subscription went up or down. Going down, every broadcast still on its way back is
    /// delivered here, in order: its echo went to a connection that no longer exists.
    fn set_subscribed(&self, subscribed: bool, registry: &Registry) {
        let mut pending = self.lock();
        pending.subscribed = subscribed;
        self.subscribed.store(subscribed, Ordering::Relaxed);
        if !subscribed {
            let lost: usize = pending
                .items
                .values_mut()
                .filter_map(|item| item.undelivered.take())
                .map(|outgoing| registry.deliver(&outgoing))
                .sum();
            tracing::debug!(lost, "subscription lost: pending broadcasts delivered here");
        }
    }

    /// Delivers here what was published but has not come back in time, and forgets what was
    /// settled long ago.
    fn sweep(&self, registry: &Registry) {
        let now = Instant::now();
        let mut pending = self.lock();
        pending.forget_older_than(now);
        let mut late = 0;
        for item in pending.items.values_mut() {
            if item
                .published
                .is_some_and(|published| now.duration_since(published) >= ECHO_TIMEOUT)
                && let Some(outgoing) = item.undelivered.take()
            {
                registry.deliver(&outgoing);
                late += 1;
            }
        }
        if late > 0 {
            tracing::warn!(
                late,
                "broadcasts did not come back from redis in time: delivered here"
            );
        }
    }

    /// Publishes a broadcast this instance has delivered already (its echo is skipped).
    fn republish(&self, outgoing: Outgoing) {
        let now = Instant::now();
        let queued = {
            let mut pending = self.lock();
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            pending.items.insert(
                seq,
                Item {
                    undelivered: None,
                    published: None,
                    created: now,
                },
            );
            self.unpublished
                .queue(&self.queue, Publish { seq, outgoing })
        };
        if queued.is_err() {
            tracing::warn!("redis publishing is backed up: not sharing a latest state");
        }
    }

    fn published(&self, seq: u64) {
        if let Some(item) = self.lock().items.get_mut(&seq) {
            item.published = Some(Instant::now());
        }
    }
}

impl Pending {
    /// Drops delivered items older than [`REMEMBER`]. Items are in creation order, so this
    /// stops at the first young one.
    fn forget_older_than(&mut self, now: Instant) {
        while let Some(entry) = self.items.first_entry() {
            let item = entry.get();
            if item.undelivered.is_none() && now.duration_since(item.created) > REMEMBER {
                entry.remove();
            } else {
                break;
            }
        }
    }
}

/// Publishes queued broadcasts in order. One that cannot be published is delivered locally.
async fn publish(
    inner: Weak<Inner>,
    registry: WeakRegistry,
    link: Arc<Link>,
    stop: CancellationToken,
    mut queue: mpsc::Receiver<Publish>,
) {
    loop {
        let item = tokio::select! {
            item = queue.recv() => match item {
                Some(item) => item,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        let result = async {
            let mut connection = link.redis.get().await?;
            if link.clock.is_stale() {
                link.clock.read(&mut connection).await?;
            }
            let now = link.clock.now().unwrap_or_default();
            let message = WireBroadcast {
                prefix: link.prefix.clone(),
                channel: link.channel.clone(),
                origin: link.instance,
                epoch: *link.epoch.get_or_init(|| now),
                seq: item.seq,
                sent_at: now,
                outgoing: item.outgoing.clone(),
            }
            .encode(&link.signer);
            match &item.outgoing.latest {
                None => redis::cmd("PUBLISH")
                    .arg(&link.channel)
                    .arg(&message)
                    .query_async::<i64>(&mut connection)
                    .await
                    .map(Stored::Published),
                Some(latest) => {
                    let distrusted = |reason: String| link.refused(&reason);
                    (link.store)
                        .publish_latest(
                            &mut connection,
                            &latest.topic,
                            latest.version,
                            &message,
                            distrusted,
                        )
                        .await
                }
            }
        }
        .await;
        let (Some(inner), Some(registry)) = (inner.upgrade(), registry.upgrade()) else {
            return;
        };
        match result {
            Ok(Stored::Published(receivers)) => {
                tracing::trace!(receivers, "broadcast published");
                inner.link.published.fetch_add(1, Ordering::Relaxed);
                inner.published(item.seq);
            }
            Ok(Stored::Superseded(newer)) => {
                tracing::debug!("broadcast superseded by a newer one: not published");
                inner.settle(item.seq, &registry, Settle::Superseded);
                // The newer one is stored, checked: if it never reached this instance (it was
                // published while this one was not listening), its tabs get it now.
                registry.deliver(&newer);
            }
            Ok(Stored::Contended) => {
                tracing::warn!("the stored latest state kept changing: delivering locally");
                inner.settle(item.seq, &registry, Settle::DeliverHere);
            }
            Err(error) => {
                link.redis.failed(&error);
                tracing::debug!(%error, "cannot publish: delivering locally");
                inner.settle(item.seq, &registry, Settle::DeliverHere);
            }
        }
        inner.unpublished.done();
    }
}

/// Keeps a subscription to the broadcast channel and delivers what arrives, reconnecting with
/// backoff until the relay is dropped.
async fn subscribe(
    inner: Weak<Inner>,
    registry: WeakRegistry,
    link: Arc<Link>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut reported = false;
    loop {
        let connected = tokio::select! {
            connected = connect(&link) => connected,
            () = stop.cancelled() => return,
        };
        match connected {
            Ok(pubsub) => {
                backoff = FIRST_BACKOFF;
                reported = false;
                link.redis.answering();
                let (Some(relay), Some(live)) = (inner.upgrade(), registry.upgrade()) else {
                    return;
                };
                relay.set_subscribed(true, &live);
                link.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(channel = %link.channel, "redis relay connected");
                catch_up(&relay, &live).await;
                drop((relay, live));
                let end = tokio::select! {
                    end = receive(&inner, &registry, &link, pubsub) => end,
                    () = stop.cancelled() => End::RelayGone,
                };
                if let (Some(relay), Some(live)) = (inner.upgrade(), registry.upgrade()) {
                    relay.set_subscribed(false, &live);
                }
                if end == End::RelayGone {
                    return;
                }
                tracing::warn!("redis relay lost: delivering locally, reconnecting");
            }
            Err(error) if !reported => {
                reported = true;
                match super::rediss::diagnosis(&error) {
                    Some(diagnosis) => tracing::error!(
                        %error,
                        "redis relay cannot subscribe: {diagnosis}; delivering locally, retrying"
                    ),
                    None => tracing::warn!(
                        %error,
                        "redis relay cannot subscribe: delivering locally, retrying"
                    ),
                }
            }
            Err(error) => tracing::debug!(%error, "redis relay still unavailable"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = next_backoff(backoff);
    }
}

/// Subscribes to the channel, and reads Redis's clock: a message's age cannot be told without
/// it. (A clock read before will do if Redis cannot be asked now.)
async fn connect(link: &Link) -> redis::RedisResult<PubSub> {
    let connecting = async {
        let mut pubsub = link.redis.client().get_async_pubsub().await?;
        pubsub.subscribe(&link.channel).await?;
        match link.read_clock().await {
            Ok(now) => link.admission.listening(now),
            Err(error) if link.clock.now().is_none() => return Err(error),
            Err(error) => tracing::debug!(%error, "cannot read redis's clock: counting on"),
        }
        Ok(pubsub)
    };
    tokio::time::timeout(TIMEOUT * 2, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "subscribing timed out",
            )))
        })
}

/// Whether `error` is Redis saying a key holds another type than the command works on.
fn is_wrong_type(error: &RedisError) -> bool {
    error.code() == Some("WRONGTYPE")
}

/// Delivers the newest stored version of every topic: whatever this instance missed while it
/// was not subscribed, its tabs see now. (Versions make this harmless when nothing was missed.)
/// A stored version that fails the checks is counted and removed, never delivered.
async fn catch_up(relay: &Inner, registry: &Registry) {
    let link = &relay.link;
    let store = &link.store;
    let result = async {
        let mut connection = link.redis.get().await?;
        let topics: Vec<String> = match connection.smembers(store.topics_key()).await {
            Ok(topics) => topics,
            Err(error) if is_wrong_type(&error) => {
                store.repair_topics(&mut connection).await?;
                link.refused("the set of topics is not a set: deleted");
                Vec::new()
            }
            Err(error) => return Err(error),
        };
        let mut caught_up = 0;
        let mut stored = HashMap::new();
        for topic in topics.iter().filter(|t| is_topic_name(t)).take(MAX_TOPICS) {
            let message: Option<Vec<u8>> =
                match connection.hget(store.latest_key(topic), "message").await {
                    Ok(message) => message,
                    Err(error) if is_wrong_type(&error) => {
                        store.remove_latest(&mut connection, topic, b"").await?;
                        link.refused(&format!("the entry of {topic} is not a hash: deleted"));
                        continue;
                    }
                    Err(error) => return Err(error),
                };
            let Some(message) = message else { continue };
            match store.check(&message, topic) {
                Ok(broadcast) => {
                    if let Some(latest) = &broadcast.outgoing.latest {
                        stored.insert(topic.clone(), latest.version);
                    }
                    store.saw(topic, &message);
                    caught_up += registry.deliver(&broadcast.outgoing);
                }
                Err(reason) => {
                    store
                        .remove_latest(&mut connection, topic, &message)
                        .await?;
                    link.refused(&format!("the stored version of {topic}: {reason}: removed"));
                }
            }
        }
        // The other way round: what this instance has that Redis does not (updates made here
        // while Redis was out of reach, or a Redis that lost its data) goes out to the others.
        let mut shared = 0;
        for outgoing in registry.latest_broadcasts() {
            let Some(latest) = &outgoing.latest else {
                continue;
            };
            if stored
                .get(&*latest.topic)
                .is_none_or(|version| *version < latest.version)
            {
                relay.republish(outgoing);
                shared += 1;
            }
        }
        Ok::<_, redis::RedisError>((caught_up, shared))
    }
    .await;
    match result {
        Ok((caught_up, shared)) => {
            tracing::debug!(caught_up, shared, "caught up on latest-state topics");
        }
        Err(error) => {
            link.redis.failed(&error);
            tracing::warn!(%error, "cannot catch up on latest-state topics");
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    ConnectionLost,
    RelayGone,
}

async fn receive(inner: &Weak<Inner>, registry: &WeakRegistry, link: &Link, pubsub: PubSub) -> End {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return End::ConnectionLost };
                let (Some(relay), Some(registry)) = (inner.upgrade(), registry.upgrade()) else {
                    return End::RelayGone;
                };
                let payload = message.get_payload_bytes();
                let admitted = WireBroadcast::decode(payload, &link.signer).and_then(|broadcast| {
                    // The clock has been read: subscribing does that first.
                    let now = link.clock.now().unwrap_or_default();
                    link.admission.admit(&broadcast, now).map(|()| broadcast)
                });
                match admitted {
                    Ok(broadcast) => {
                        link.received.fetch_add(1, Ordering::Relaxed);
                        let now = link.clock.now().unwrap_or_default();
                        link.lag_ms.store(now.saturating_sub(broadcast.sent_at), Ordering::Relaxed);
                        if let Some(latest) = &broadcast.outgoing.latest {
                            link.store.saw(&latest.topic, payload);
                        }
                        if broadcast.origin == link.instance {
                            relay.settle(broadcast.seq, &registry, Settle::Echoed);
                        } else {
                            registry.deliver(&broadcast.outgoing);
                        }
                    }
                    Err(reason) => link.refused(&reason),
                }
            }
            _ = sweep.tick() => {
                let (Some(relay), Some(registry)) = (inner.upgrade(), registry.upgrade()) else {
                    return End::RelayGone;
                };
                relay.sweep(&registry);
            }
            _ = ping.tick() => {
                let answered = tokio::time::timeout(
                    TIMEOUT,
                    // Subscribed, the reply is a message (`["pong", ""]`), not `PONG`: any
                    // reply will do.
                    sink.ping::<redis::Value>(),
                )
                .await;
                if !matches!(answered, Ok(Ok(_))) {
                    return End::ConnectionLost;
                }
                if link.clock.is_stale()
                    && let Err(error) = link.read_clock().await
                {
                    tracing::debug!(%error, "cannot read redis's clock: counting on");
                }
            }
        }
    }
}
