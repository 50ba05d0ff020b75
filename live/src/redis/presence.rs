//! Presence across instances: each instance's own counts in Redis, and on every page the total.
//!
//! One of two sides, named alike on purpose: this is the Redis side of presence, and
//! `registry/presence.rs` the count this instance keeps.
//!
//! For each presence it counts (`registry/presence.rs`), an instance keeps its count in
//! `<prefix>:presence:<name>:<instance>` with an expiry (`PRESENCE_EXPIRY_SECS`, 15 s by
//! default) — written again every third of it, and soon after each change — and lists itself
//! in the set `<prefix>:presence:<name>`. Every [`READ_EVERY`] it reads the others' counts, and
//! its pages show its own count plus theirs.
//!
//! - **A clean shutdown** deletes the instance's counts at once (`Sharing::withdraw`, which
//!   the relay's flush runs before the process exits).
//! - **An instance killed outright** stops writing, and Redis's expiry — Redis's clock, not an
//!   instance's — removes its counts: the others stop showing them at their next read, within
//!   the expiry plus [`READ_EVERY`] (and the 200 ms a page's count may wait, `PUBLISH_GAP`).
//! - **An instance restarted in its own place** (the same host, address and port: its name,
//!   see [`instance_name`]) writes over the count it left, so its tabs, reconnecting, are never
//!   counted twice while the old count expires.
//! - **Counts are signed** with `REDIS_SECRET`, for this app's prefix, this presence and this
//!   instance, and dated by Redis's clock (`TIME`). A count not signed so — or signed for
//!   another key, or older than the expiry (a copy written back without one) — is refused,
//!   counted in `redis_rejected`, and deleted; so is a list of instances too long to be real.
//! - **Redis going away** leaves pages on the last total read. Once it is back, an instance
//!   whose count is missing (a Redis that restarted empty) writes it at once, and the totals
//!   converge within a read or two.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{RedisResult, aio::MultiplexedConnection};
use tokio_util::sync::CancellationToken;

use super::link::Link;
use crate::registry::{RelayPort, WeakRegistry};

/// How often an instance reads the others' counts.
pub const READ_EVERY: Duration = Duration::from_millis(500);
/// The most instances one presence may list; more is a flood of forged names, not a fleet.
const MAX_INSTANCES: usize = 1000;
/// How far a count's date may be off from Redis's time now, either way, before the expiry is
/// even considered: each reading of Redis's clock is off by half a round trip.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// The name an instance shares its counts under: its machine's name and the address it serves
/// at (the socket it was given, or bound), so that one restarted in its place takes over its
/// counts (see the module docs), and two on one machine never share one.
pub fn instance_name(serving_at: SocketAddr) -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let machine: String = machine.chars().filter(char::is_ascii_graphic).collect();
    format!("{machine}/{serving_at}")
}

/// This instance's share: what it wrote, and whether it has withdrawn.
#[derive(Debug)]
pub(super) struct Sharing {
    /// How long a count lasts in Redis unless written again (`PRESENCE_EXPIRY_SECS`).
    expiry: Duration,
    /// This instance's name ([`instance_name`]), once the server serves: nothing is shared
    /// before.
    instance: OnceLock<String>,
    /// Set by [`Sharing::withdraw`]: nothing is written from then on.
    withdrawn: AtomicBool,
    /// What was last written for each presence, and when.
    written: Mutex<HashMap<&'static str, (usize, Instant)>>,
    /// Held for a whole round of reading and writing, so that withdrawing waits for one under
    /// way instead of deleting what it is about to write.
    round: tokio::sync::Mutex<()>,
}

impl Sharing {
    pub(super) fn new(expiry: Duration) -> Self {
        Sharing {
            expiry,
            instance: OnceLock::new(),
            withdrawn: AtomicBool::new(false),
            written: Mutex::default(),
            round: tokio::sync::Mutex::new(()),
        }
    }

    /// Names this instance after the address it serves at; the first name given stays.
    pub(super) fn serving_at(&self, addr: SocketAddr) {
        let _ = self.instance.set(instance_name(addr));
    }

    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, (usize, Instant)>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes this instance's counts, and writes none from now on (a clean shutdown).
    pub(super) async fn withdraw(&self, link: &Link) {
        self.withdrawn.store(true, Ordering::Release);
        let _round = self.round.lock().await;
        let names: Vec<&str> = self.written().keys().copied().collect();
        let Some(me) = self.instance.get().filter(|_| !names.is_empty()) else {
            return;
        };
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.del(count_key(&link.prefix, name, me))
                .ignore()
                .srem(instances_key(&link.prefix, name), me)
                .ignore();
        }
        let result = async {
            let mut connection = link.redis.get().await?;
            pipe.query_async::<()>(&mut connection).await
        }
        .await;
        match result {
            Ok(()) => tracing::debug!(?names, "presence counts withdrawn from redis"),
            Err(error) => tracing::warn!(%error, "presence counts left in redis to expire"),
        }
    }
}

/// Shares `registry`'s counts and reads the others' until `stop` or the registry is gone: a
/// round every [`READ_EVERY`], and one a moment after a change here (changes come in storms,
/// so the moment is the gap a page's count waits anyway).
pub(super) async fn share(
    sharing: Arc<Sharing>,
    registry: WeakRegistry,
    link: Arc<Link>,
    stop: CancellationToken,
) {
    let mut reads = tokio::time::interval(READ_EVERY);
    reads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(changed) = registry.upgrade().map(|r| r.local_presence_changed()) else {
            return;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            _ = reads.tick() => {}
            () = changed => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(crate::registry::PRESENCE_PUBLISH_GAP) => {}
                }
            }
        }
        if let Err(error) = round(&sharing, &registry, &link).await {
            tracing::debug!(%error, "presence counts not shared this time");
            link.redis.failed(&error);
        }
    }
}

/// One round: for each presence, the others' counts read (and what cannot be trusted put
/// right), this instance's written if due, and the total set for pages.
async fn round(sharing: &Sharing, registry: &WeakRegistry, link: &Link) -> RedisResult<()> {
    let _round = sharing.round.lock().await;
    let Some(me) = sharing.instance.get() else {
        return Ok(());
    };
    if sharing.withdrawn.load(Ordering::Acquire) {
        return Ok(());
    }
    let Some(counts) = registry.upgrade().map(|r| r.local_presences()) else {
        return Ok(());
    };
    if counts.is_empty() {
        return Ok(());
    }
    let mut connection = link.redis.get().await?;
    if link.clock.is_stale() {
        link.clock.read(&mut connection).await?;
    }
    let Some(now) = link.clock.now() else {
        return Ok(());
    };
    for (name, count) in counts {
        let (remote, listed) = others(sharing, link, me, &mut connection, name, now).await?;
        let due = {
            let written = sharing.written();
            !listed
                || written
                    .get(name)
                    .is_none_or(|(last, at)| *last != count || at.elapsed() >= sharing.expiry / 3)
        };
        if due {
            write(sharing, link, me, &mut connection, name, count, now).await?;
        }
        if let Some(registry) = registry.upgrade() {
            registry.set_remote_presence(name, remote);
        }
    }
    link.redis.answering();
    Ok(())
}

/// The sum of the other instances' trusted counts of `name`, and whether this instance's own
/// count is there.
async fn others(
    sharing: &Sharing,
    link: &Link,
    me: &str,
    connection: &mut MultiplexedConnection,
    name: &str,
    now: u64,
) -> RedisResult<(usize, bool)> {
    let prefix = &link.prefix;
    let listing = instances_key(prefix, name);
    let (listed, members): (usize, Vec<String>) = redis::pipe()
        .scard(&listing)
        .srandmember_multiple(&listing, MAX_INSTANCES as isize)
        .query_async(connection)
        .await?;
    if listed > MAX_INSTANCES {
        link.refused(&format!(
            "{listing} lists {listed} instances: deleted (each lists itself again)"
        ));
        redis::cmd("DEL")
            .arg(&listing)
            .query_async::<()>(connection)
            .await?;
        return Ok((0, false));
    }
    if members.is_empty() {
        return Ok((0, false));
    }
    let keys: Vec<String> = members
        .iter()
        .map(|member| count_key(prefix, name, member))
        .collect();
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(connection)
        .await?;
    let expiry = sharing.expiry;
    let (mut remote, mut mine, mut gone) = (0usize, false, Vec::new());
    for ((member, key), value) in members.iter().zip(&keys).zip(values) {
        if member == me {
            mine = value.is_some();
            continue;
        }
        let Some(value) = value else {
            gone.push(member.as_str()); // expired: its instance stopped
            continue;
        };
        match check(link, name, member, &value, now, expiry) {
            Ok(count) => remote = remote.saturating_add(count),
            Err(reason) => {
                link.refused(&format!("presence count at {key}: {reason}: deleted"));
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(connection)
                    .await?;
                gone.push(member.as_str());
            }
        }
    }
    if !gone.is_empty() {
        redis::cmd("SREM")
            .arg(&listing)
            .arg(&gone)
            .query_async::<()>(connection)
            .await?;
    }
    Ok((remote, mine))
}

/// Writes this instance's `count` of `name`, dated `now` by Redis's clock, to last the expiry.
async fn write(
    sharing: &Sharing,
    link: &Link,
    me: &str,
    connection: &mut MultiplexedConnection,
    name: &'static str,
    count: usize,
    now: u64,
) -> RedisResult<()> {
    let prefix = &link.prefix;
    let expiry = sharing.expiry;
    let body = signed_body(prefix, name, me, count, now);
    let value = format!("{count} {now} {}", link.signer.sign(body.as_bytes()));
    let listing = instances_key(prefix, name);
    let millis = expiry.as_millis() as u64;
    redis::pipe()
        .cmd("SET")
        .arg(count_key(prefix, name, me))
        .arg(value)
        .arg("PX")
        .arg(millis)
        .ignore()
        .sadd(&listing, me)
        .ignore()
        // The list outlives every count in it, and goes when every instance has.
        .cmd("PEXPIRE")
        .arg(&listing)
        .arg(millis * 3)
        .ignore()
        .query_async::<()>(connection)
        .await?;
    sharing.written().insert(name, (count, Instant::now()));
    Ok(())
}

/// The count in `value`, stored for `instance`'s count of `name`, if it can be trusted.
fn check(
    link: &Link,
    name: &str,
    instance: &str,
    value: &str,
    now: u64,
    expiry: Duration,
) -> Result<usize, &'static str> {
    let mut words = value.split(' ');
    let (Some(count), Some(at), Some(signature), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err("malformed");
    };
    let (Ok(count), Ok(at)) = (count.parse::<usize>(), at.parse::<u64>()) else {
        return Err("malformed");
    };
    let body = signed_body(&link.prefix, name, instance, count, at);
    if !link.signer.verify(body.as_bytes(), signature) {
        return Err("not signed with the secret for this app, presence and instance");
    }
    let slack = CLOCK_SLACK.as_millis() as u64;
    if at > now + slack {
        return Err("dated later than Redis's time");
    }
    if now.saturating_sub(at) > expiry.as_millis() as u64 + slack {
        return Err("older than the expiry (a copy written back)");
    }
    Ok(count)
}

/// What a count's signature covers: whose count it is (app, presence, instance), the count,
/// and when it was written. Its first word keeps it from passing for a signed broadcast's body.
fn signed_body(prefix: &str, name: &str, instance: &str, count: usize, at: u64) -> String {
    format!("presence {prefix} {name} {instance}\n{count} {at}")
}

fn count_key(prefix: &str, name: &str, instance: &str) -> String {
    format!("{prefix}:presence:{name}:{instance}")
}

fn instances_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:presence:{name}")
}
