//! How many actions one client may send: a token bucket per client on every action
//! (`ACTION_RATE_PER_SEC`, `ACTION_BURST`).
//!
//! Why: an action is cheap to send and dear to serve — one post is rendered once and written
//! to every open tab. Without a limit, one address posted 20 000 greets in 7.4 s, all accepted,
//! and the tabs of everyone else spent their time on its broadcasts. [`crate::actions`] puts
//! [`limit`] in front of every action, so an app's actions get it without asking; it runs
//! before the body is read and before the CSRF check, so a flood of junk costs its sender
//! tokens too, and the refusal is cheap: no body read, no template, nothing broadcast.
//!
//! - **Keyed by [`ClientAddr`]**, the client the server found for the request (its network,
//!   or what `CLIENT_IP_HEADER` says behind proxies). Requests without one (a router called
//!   in a test without the kit's server) are not limited: there is nobody to count them
//!   against.
//! - **The `governor` crate**: GCRA, which is a token bucket kept as one number per client
//!   (the time the bucket will be full again), updated with one atomic compare-and-swap and no
//!   timer per client. Its keyed store is a `DashMap` hashed with SipHash (std's `RandomState`),
//!   so clients cannot pick addresses that collide. `tower_governor` wraps the same crate as
//!   a tower layer; it is not used because its answers are its own (a bare `429` that
//!   the kit's refusals would have to rewrite anyway), its key extractors read the socket or
//!   the forwarding headers themselves — the kit has already decided who the client is — and
//!   it leaves pruning to the app.
//! - **Memory stays bounded under an address flood.** A client's entry is worth keeping only
//!   while its bucket is not full; `governor`'s `retain_recent` drops the others. [`RateLimit`]
//!   runs it at most every [`PRUNE_EVERY`], on whichever request comes first after that
//!   (no task of its own to start or stop), so the map holds at most the clients seen in the
//!   last `PRUNE_EVERY` plus `ACTION_BURST / ACTION_RATE_PER_SEC` seconds — a number the
//!   server's own request rate bounds, each entry a few dozen bytes.
//! - **Counted per instance.** Behind a load balancer a client spread over `n` instances gets
//!   up to `n` times the rate. That is the price of asking nobody else (no Redis round trip
//!   on every action); what the limit is for — one client cannot take the instance it
//!   floods — holds anyway.
//!
//! Over the limit: `429 Too Many Requests` with `Retry-After` (whole seconds, at least 1),
//! which the kit's refusals (`refusals.rs`) show to the person who posted — a notice in the page
//! for Datastar, a page of its own with the `429` for a plain post — and counts under the
//! reason `rate_limited`.

use std::{
    fmt,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};

use crate::client_addr::ClientAddr;

/// How often the per-client state is pruned of clients whose buckets are full again.
pub const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// The limit on one client's actions (`ACTION_RATE_PER_SEC`, `ACTION_BURST`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionLimit {
    /// Actions a second a client may keep up for ever: the bucket's refill rate.
    pub per_second: f64,
    /// Actions a client may send at once after a quiet spell: the bucket's size.
    pub burst: u32,
}

impl ActionLimit {
    /// The fewest actions a second `ACTION_RATE_PER_SEC` may allow: one every 100 s.
    pub const MIN_PER_SECOND: f64 = 0.01;
    /// The most: past a million a second, nobody is being limited.
    pub const MAX_PER_SECOND: f64 = 1_000_000.0;

    fn quota(self) -> Quota {
        let per_second = self
            .per_second
            .clamp(Self::MIN_PER_SECOND, Self::MAX_PER_SECOND);
        let every = Duration::from_secs_f64(1.0 / per_second);
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        // `every` is at least a microsecond, so never zero.
        Quota::with_period(every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

/// One instance's buckets, one per client: see the [module docs](self).
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<ClientAddr>,
    clock: DefaultClock,
    /// When the buckets were made; `next_prune` counts from here.
    started: Instant,
    /// When the next pruning is due, in milliseconds since `started`: the request that finds
    /// it past claims it with a compare-and-swap, so one request prunes and none waits.
    next_prune: AtomicU64,
    limit: ActionLimit,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.limit)
            .field("clients", &self.limiter.len())
            .finish()
    }
}

impl RateLimit {
    /// Empty buckets for `limit`.
    pub fn new(limit: ActionLimit) -> Self {
        RateLimit {
            limiter: DefaultKeyedRateLimiter::dashmap(limit.quota()),
            clock: DefaultClock::default(),
            started: Instant::now(),
            next_prune: AtomicU64::new(millis(PRUNE_EVERY)),
            limit,
        }
    }

    /// The limit these buckets keep.
    pub fn limit(&self) -> ActionLimit {
        self.limit
    }

    /// Takes a token from `client`'s bucket; if it is empty, how long until it has one.
    pub fn check(&self, client: &ClientAddr) -> Result<(), Duration> {
        self.prune_when_due();
        self.limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// How many clients have state kept (the others' buckets are full).
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    /// Drops the clients whose buckets are full again, if [`PRUNE_EVERY`] has passed since
    /// the last time.
    fn prune_when_due(&self) {
        let now = millis(self.started.elapsed());
        let due = self.next_prune.load(Ordering::Relaxed);
        if now < due
            || self
                .next_prune
                .compare_exchange(
                    due,
                    now + millis(PRUNE_EVERY),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        self.prune();
    }

    /// Drops the clients whose buckets are full again (their state says nothing a missing
    /// entry would not), and gives memory back after a flood.
    pub fn prune(&self) {
        let before = self.limiter.len();
        self.limiter.retain_recent();
        let after = self.limiter.len();
        // A flood of addresses leaves a large table behind; shrinking costs a rehash, so only
        // when most of it went.
        if before > 1024 && after < before / 4 {
            self.limiter.shrink_to_fit();
        }
        if before != after {
            tracing::trace!(before, after, "action rate limits pruned");
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Middleware for actions: takes a token from the client's bucket, or answers `429` with
/// `Retry-After` (see the [module docs](self)).
pub async fn limit(State(limit): State<Arc<RateLimit>>, request: Request, next: Next) -> Response {
    let Some(client) = request.extensions().get::<ClientAddr>() else {
        return next.run(request).await;
    };
    match limit.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let seconds = seconds.max(1);
            tracing::debug!(seconds, "action refused: over the client's rate");
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                "Too many actions from your address: please wait and try again.",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn client(n: u32) -> ClientAddr {
        ClientAddr(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_are_untouched() {
        let limit = RateLimit::new(ActionLimit {
            per_second: 1.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(limit.check(&client(1)), Ok(()));
        }
        let wait = limit.check(&client(1)).unwrap_err();
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(
            limit.check(&client(2)),
            Ok(()),
            "another client has its own"
        );
    }

    #[test]
    fn clients_whose_buckets_refilled_are_pruned_so_an_address_flood_leaves_nothing() {
        // Arrange: a bucket refills in 2 ms.
        let limit = RateLimit::new(ActionLimit {
            per_second: 1000.0,
            burst: 2,
        });
        for n in 0..10_000 {
            limit.check(&client(n)).unwrap();
        }
        assert_eq!(limit.clients(), 10_000);

        // Act: once every bucket is full again.
        std::thread::sleep(Duration::from_millis(20));
        limit.prune();

        // Assert
        assert_eq!(limit.clients(), 0);
    }

    #[test]
    fn pruning_happens_on_its_own_once_due() {
        let limit = RateLimit::new(ActionLimit {
            per_second: 1000.0,
            burst: 1,
        });
        for n in 0..100 {
            limit.check(&client(n)).unwrap();
        }
        // Not yet due: kept.
        assert_eq!(limit.clients(), 100);
        std::thread::sleep(PRUNE_EVERY + Duration::from_millis(50));
        // The next check prunes the others before counting itself.
        limit.check(&client(1_000)).unwrap();
        assert_eq!(limit.clients(), 1);
    }
}
