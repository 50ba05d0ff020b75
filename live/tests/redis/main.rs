//! Scale-out tests: several app instances sharing a real `redis-server` (Debian package
//! `redis-server`), started on a free port by each test. Run with `--features redis`.
//!
//! `faults.rs` puts a misbehaving proxy (`proxy.rs`) between an instance and Redis, and pauses,
//! kills and empties Redis, to check that every broadcast still reaches every tab exactly once
//! and that no tab goes back to an older note.
//!
//! `rate.rs` floods one instance with actions from one address while a person posts to it,
//! and follows the person's posts to a tab on the other instance.
//!
//! The tests of delivery and faults run twice ([`over_tcp_and_tls!`]): against a plain Redis,
//! and against one that speaks only TLS and wants a password, as managed Redis does
//! (`rediss://`, `REDIS_CA`).

#![cfg(feature = "redis")]

mod faults;
mod presence;
mod proxy;
mod rate;
#[path = "../support/mod.rs"]
mod support;
mod tls;
mod trust;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use live::testing::RedisServer;
use support::{PATIENCE, SseClient, TestApp, elements, spawn_app_with};

pub(crate) const PREFIX: &str = "scaleout-test";
/// What the instances of these tests sign their messages with.
pub(crate) const SECRET: &str = "the scale-out tests' secret, 32+ characters";

/// How the instances reach Redis.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    Tcp,
    /// TLS, with a password (`rediss://`), trusting the tests' CA (`REDIS_CA`).
    Tls,
}

impl Transport {
    pub(crate) async fn start(self) -> RedisServer {
        match self {
            Transport::Tcp => RedisServer::start().await,
            Transport::Tls => RedisServer::start_tls().await,
        }
    }
}

/// Runs each named `async fn(Transport)` as two tests, `<name>::over_tcp` and
/// `<name>::over_tls`.
macro_rules! over_tcp_and_tls {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn over_tcp() {
                super::$name(crate::Transport::Tcp).await;
            }

            #[tokio::test]
            async fn over_tls() {
                super::$name(crate::Transport::Tls).await;
            }
        }
    )+};
}
pub(crate) use over_tcp_and_tls;

pub(crate) async fn instance(redis_url: &str) -> TestApp {
    instance_with_prefix(redis_url, PREFIX).await
}

/// An instance of the app whose keys and channel are under `prefix`; for a `rediss://` URL,
/// one that trusts the tests' CA, which every TLS Redis of theirs has its certificate from.
pub(crate) async fn instance_with_prefix(redis_url: &str, prefix: &str) -> TestApp {
    let url = redis_url.to_owned();
    let prefix = prefix.to_owned();
    let ca = url.starts_with("rediss://").then(|| {
        static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        FILE.get_or_init(|| {
            let file = std::env::temp_dir().join(format!(
                "redis-tests-ca-{}-{}.pem",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&file, RedisServer::test_ca().pem()).unwrap();
            file
        })
        .clone()
    });
    spawn_app_with(move |config| {
        config.redis_ca = ca;
        config.redis_url = Some(url);
        config.redis_secret = Some(SECRET.into());
        config.redis_prefix = Some(prefix);
        // These tests post from one address as fast as they check delivery (60 notes in a
        // row, say): the action rate limit has a test of its own, `rate.rs`.
        config.action_limit = None;
    })
    .await
}

/// Waits until `/healthz` reports the relay `connected` (or not).
pub(crate) async fn wait_redis(app: &TestApp, connected: bool) {
    let wanted = if connected {
        "connected"
    } else {
        "disconnected"
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let health: serde_json::Value = app.get("/healthz").await.json().await.unwrap();
        if health["redis"] == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "redis never {wanted}: {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `redis-server` and two app instances already receiving from it.
pub(crate) async fn two_connected_instances() -> (RedisServer, TestApp, TestApp) {
    two_connected_instances_over(Transport::Tcp).await
}

/// The same, with Redis reached over `transport`.
pub(crate) async fn two_connected_instances_over(
    transport: Transport,
) -> (RedisServer, TestApp, TestApp) {
    let redis = transport.start().await;
    let a = instance(&redis.url()).await;
    let b = instance(&redis.url()).await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;
    (redis, a, b)
}

/// The notes page once it contains `text`.
pub(crate) async fn wait_for_page(app: &TestApp, text: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let page = app.page().await;
        if page.contains(text) {
            return page;
        }
        assert!(Instant::now() < deadline, "no {text:?} in {page}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn next_note(tab: &mut SseClient) -> String {
    elements(&tab.next_event().await)
}

over_tcp_and_tls!(
    a_note_published_on_one_instance_reaches_streams_on_every_instance_exactly_once,
    losing_redis_keeps_the_app_serving_and_delivery_resumes_when_it_is_back,
    redis_down_at_start_does_not_stop_the_app,
);

async fn a_note_published_on_one_instance_reaches_streams_on_every_instance_exactly_once(
    transport: Transport,
) {
    // Arrange
    let (_redis, a, b) = two_connected_instances_over(transport).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    // Act
    a.publish_with_datastar("Ada").await;

    // Assert: each stream gets the note, and the next event is the next note — no
    // duplicate in between.
    for tab in [&mut on_a, &mut on_b] {
        assert!(next_note(tab).await.contains("<strong>Ada</strong>"));
    }
    b.publish_with_form("Grace").await;
    for tab in [&mut on_a, &mut on_b] {
        let next = next_note(tab).await;
        assert!(next.contains("<strong>Grace</strong>"), "{next}");
    }

    // Counted for metrics: one published by each, both taken in by each (its own echo
    // too), one connection each, and how far behind each is.
    for app in [&a, &b] {
        let counts = relay_counts_when(app, |counts| counts.received == 2).await;
        assert_eq!((counts.published, counts.connects), (1, 1), "{counts:?}");
        assert!(counts.lag_ms.is_some_and(|lag| lag < 10_000), "{counts:?}");
    }
}

/// The relay's counts once `reached` says so; fails the test if they never do.
pub(crate) async fn relay_counts_when(
    app: &TestApp,
    reached: impl Fn(&live::registry::RelayCounts) -> bool,
) -> live::registry::RelayCounts {
    let relay = app.live().registry.relay().expect("a relay");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let counts = relay.counts();
        if reached(&counts) {
            return counts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay's counts stayed at {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn every_instance_shows_the_same_latest_greeting() {
    let (_redis, a, b) = two_connected_instances().await;

    a.publish_with_datastar("Ada").await;
    b.publish_with_datastar("Grace").await;

    for app in [&a, &b] {
        // A note posted on one instance reaches the other within moments.
        let page = wait_for_page(app, "<strong>Grace</strong>").await;
        assert!(
            page.contains("Note #2:"),
            "numbered across instances: {page}"
        );
        let mut reconnecting = app.open_stream(uuid::Uuid::new_v4()).await;
        let first = reconnecting.read_initial_events().await;
        assert!(elements(&first.state).contains("Grace"));
    }
}

#[tokio::test]
async fn racing_notes_on_two_instances_leave_every_tab_on_the_latest() {
    let (_redis, a, b) = two_connected_instances().await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    let names: Vec<String> = (0..20).map(|i| format!("racer{i}")).collect();
    let notes = names.iter().enumerate().map(|(i, name)| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.publish_with_datastar(name)
    });
    join_all(notes).await;

    // Whatever got published, the serials each tab saw only go up, and each tab ends on #20.
    for tab in [&mut on_a, &mut on_b] {
        let mut last = 0;
        while last < 20 {
            let patch = next_note(tab).await;
            let serial: u64 = patch
                .split("Note #")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no serial in {patch}"));
            assert!(serial > last, "went back from #{last} to #{serial}");
            last = serial;
        }
    }
}

async fn losing_redis_keeps_the_app_serving_and_delivery_resumes_when_it_is_back(
    transport: Transport,
) {
    let (mut redis, a, b) = two_connected_instances_over(transport).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    // Redis goes away mid-run.
    redis.stop();
    wait_redis(&a, false).await;
    wait_redis(&b, false).await;

    // Pages still serve, and a publish still reaches the streams of its own instance.
    assert_eq!(a.get("/").await.status(), 200);
    a.publish_with_datastar("Ada").await;
    assert!(next_note(&mut on_a).await.contains("Ada"));

    // Redis comes back: B catches up with the note it missed, and cross-instance delivery
    // resumes, all without restarting the apps.
    redis.restart().await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;
    let caught_up = next_note(&mut on_b).await;
    assert!(caught_up.contains("Ada"), "B catches up: {caught_up}");
    a.publish_with_datastar("Grace").await;
    assert!(next_note(&mut on_a).await.contains("Grace"));
    let on_b_next = next_note(&mut on_b).await;
    assert!(on_b_next.contains("Grace"), "{on_b_next}");
    // Counted for metrics: each connected twice, and is connected now.
    for app in [&a, &b] {
        relay_counts_when(app, |counts| counts.connects == 2).await;
        assert!(app.live().registry.relay().unwrap().is_connected());
    }
}

async fn redis_down_at_start_does_not_stop_the_app(transport: Transport) {
    let mut redis = transport.start().await;
    redis.stop();
    let a = instance(&redis.url()).await;
    let b = instance(&redis.url()).await;
    let mut on_a = a.open_live_stream().await;

    // Serving, locally, from the start.
    wait_redis(&a, false).await;
    a.publish_with_form("Ada").await;
    assert!(next_note(&mut on_a).await.contains("Ada"));

    // And across instances once Redis is up.
    redis.restart().await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;
    let mut on_b = b.open_live_stream().await;
    a.publish_with_datastar("Grace").await;
    // A's local "Ada" may reach B first, as A puts its newer state back into Redis: what
    // matters is that "Grace" arrives, within a few notes.
    for tab in [&mut on_b, &mut on_a] {
        let mut seen = Vec::new();
        while !seen
            .last()
            .is_some_and(|note: &String| note.contains("Grace"))
        {
            assert!(seen.len() < 4, "no Grace after {seen:?}");
            seen.push(next_note(tab).await);
        }
    }
}

#[tokio::test]
async fn forged_unsigned_oversized_and_malformed_messages_are_refused_and_counted() {
    use datastar::prelude::PatchElements;
    use live::{
        Frame,
        redis::wire::{Signer, WireBroadcast},
        registry::{Outgoing, Pattern},
    };

    let redis = RedisServer::start().await;
    let a = instance(&redis.url()).await;
    wait_redis(&a, true).await;
    let mut tab = a.open_live_stream().await;
    let channel = format!("{PREFIX}:broadcast");

    // A well-formed patch that would run script in every tab, signed with the wrong secret.
    let attack = WireBroadcast {
        prefix: PREFIX.into(),
        channel: channel.clone(),
        origin: uuid::Uuid::new_v4(),
        epoch: 1,
        seq: 1,
        sent_at: 1,
        outgoing: Outgoing {
            pattern: Pattern::new("page/notes/*").unwrap(),
            except: Vec::new(),
            frame: Frame::from(PatchElements::new(
                r#"<p id="note" data-init="window.pwned = true">pwned</p>"#,
            )),
            latest: None,
        },
    };
    let forged = attack.encode(&Signer::new("not the app's secret, but long enough too"));
    let text = String::from_utf8(forged.clone()).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let unsigned = format!("ascolais/3\n{body}");
    // Signed with the right secret, but not a broadcast.
    let signed_nonsense = {
        let mut message = attack.clone();
        message.outgoing.frame = Frame::from(PatchElements::new("x"));
        String::from_utf8(message.encode(&Signer::new(SECRET)))
            .unwrap()
            .replace("event: datastar-patch-elements\n", "")
    };
    let huge = "x".repeat(10 * 1024 * 1024);
    let messages: Vec<&[u8]> = vec![
        b"garbage",
        &forged,
        unsigned.as_bytes(),
        signed_nonsense.as_bytes(),
        huge.as_bytes(),
    ];
    let started = Instant::now();
    for message in &messages {
        publish_bytes(&redis, &channel, message).await;
    }
    let health = a.get("/healthz").await;
    eprintln!(
        "/healthz answered {:?} after a 10 MB message",
        started.elapsed()
    );
    assert_eq!(health.status(), 200);

    // None of it reached the tab; each was counted; the relay kept going.
    a.publish_with_datastar("Ada").await;
    let next = next_note(&mut tab).await;
    assert!(next.contains("Ada") && !next.contains("pwned"), "{next}");
    let health: serde_json::Value = a.get("/healthz").await.json().await.unwrap();
    assert_eq!(health["redis_rejected"], messages.len(), "{health}");
    wait_redis(&a, true).await;
}

/// Publishes `message` on `channel` as anyone with access to Redis could.
pub(crate) async fn publish_bytes(redis: &RedisServer, channel: &str, message: &[u8]) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(message)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(receivers > 0, "nobody subscribed to {channel}");
}
