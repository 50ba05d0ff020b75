//! Presence across instances: tabs on two instances, every page showing the total; a clean
//! shutdown taking its share away at once; counts that are forged, copied or flooded refused;
//! a Redis that restarts empty. (A killed instance, and one restarted in its place, are the
//! app's tests, with real processes: `tests/scale_out.rs` in a generated project.)

use std::time::Duration;

use futures_util::future::join_all;
use live::testing::{RedisServer, open_tab};

use crate::{
    PREFIX, SECRET,
    support::{PATIENCE, SseClient, TestApp, spawn_app_with},
    wait_redis,
};

/// The presence the notes app's `/sse/present` streams count.
const PRESENT: &str = "present";

/// An instance whose presence counts last `expiry` in Redis.
async fn instance(redis: &RedisServer, expiry: Duration) -> TestApp {
    let url = redis.url();
    let app = spawn_app_with(move |config| {
        config.redis_url = Some(url);
        config.redis_secret = Some(SECRET.into());
        config.redis_prefix = Some(PREFIX.into());
        config.presence_expiry = expiry;
    })
    .await;
    wait_redis(&app, true).await;
    app
}

/// `count` tabs on `app`'s `/sse/present`, each past its first events.
async fn tabs(app: &TestApp, count: usize) -> Vec<SseClient> {
    join_all((0..count).map(|_| async {
        let mut tab = open_tab(app.client(), &app.url("/sse/present")).await;
        tab.read_connected().await;
        tab
    }))
    .await
}

/// Waits until every one of `tabs` shows `count`.
async fn all_show(tabs: &mut [SseClient], count: u64, patience: Duration) {
    join_all(
        tabs.iter_mut()
            .map(|tab| tab.until_presence(PRESENT, count, patience)),
    )
    .await;
}

async fn rejected(app: &TestApp) -> u64 {
    let health: serde_json::Value = app.get("/healthz").await.json().await.unwrap();
    health["redis_rejected"].as_u64().unwrap()
}

/// The instances listed for [`PRESENT`] in Redis.
async fn listed(redis: &RedisServer) -> Vec<String> {
    redis
        .command(&["SMEMBERS", &format!("{PREFIX}:presence:{PRESENT}")])
        .await
}

fn count_key(instance: &str) -> String {
    format!("{PREFIX}:presence:{PRESENT}:{instance}")
}

#[tokio::test]
async fn every_page_shows_the_total_and_a_clean_shutdown_takes_its_share_away_at_once() {
    // Arrange: the default expiry, so that only a withdrawal can take a share away quickly.
    let redis = RedisServer::start().await;
    let a = instance(&redis, Duration::from_secs(15)).await;
    let mut b = instance(&redis, Duration::from_secs(15)).await;
    let mut on_a = tabs(&a, 3).await;
    let mut on_b = tabs(&b, 2).await;

    // Act + Assert: every tab shows the total…
    all_show(&mut on_a, 5, PATIENCE).await;
    all_show(&mut on_b, 5, PATIENCE).await;
    assert_eq!(listed(&redis).await.len(), 2, "each instance lists itself");

    // …and once b shuts down cleanly, a's tabs show their own three, long before b's count
    // could have expired.
    b.shut_down().await.unwrap();
    all_show(&mut on_a, 3, Duration::from_secs(5)).await;
    assert_eq!(listed(&redis).await.len(), 1, "b took itself off the list");

    // A tab more on a: its pages count it, and only it.
    let mut more = tabs(&a, 1).await;
    all_show(&mut more, 4, PATIENCE).await;
    all_show(&mut on_a, 4, PATIENCE).await;
}

#[tokio::test]
async fn forged_copied_and_flooded_counts_are_refused_and_put_right() {
    // Arrange: a short expiry, so that a genuine count copied back without one is soon stale.
    let redis = RedisServer::start().await;
    let expiry = Duration::from_secs(3);
    let a = instance(&redis, expiry).await;
    let mut b = instance(&redis, expiry).await;
    let mut on_a = tabs(&a, 2).await;
    let _on_b = tabs(&b, 1).await;
    all_show(&mut on_a, 3, PATIENCE).await;
    let listing = format!("{PREFIX}:presence:{PRESENT}");
    // b's count is the one of 1 (a's is 2): its name, and its signed value.
    let mut b_name = None;
    for name in listed(&redis).await {
        let value: String = redis.command(&["GET", &count_key(&name)]).await;
        if value.starts_with("1 ") {
            b_name = Some((name, value));
        }
    }
    let (b_name, genuine) = b_name.expect("b's count is in Redis");
    let before = rejected(&a).await;

    // Act 1: a count of a thousand, not signed with the secret; and b's genuine count, copied
    // under another instance's name.
    let _: () = redis
        .command(&["SADD", &listing, "forger", "copycat"])
        .await;
    let signature = "ab".repeat(32);
    let forged = format!("1000 {} {signature}", u64::MAX / 4);
    let _: () = redis.command(&["SET", &count_key("forger"), &forged]).await;
    let _: () = redis
        .command(&["SET", &count_key("copycat"), &genuine])
        .await;

    // Assert 1: refused, deleted, and counted; the tabs never showed them.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while redis
        .command::<usize>(&["EXISTS", &count_key("forger"), &count_key("copycat")])
        .await
        > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejected(&a).await >= before + 2, "each refusal counted");
    for tab in &mut on_a {
        let read = tab.events_read();
        assert!(
            tab.try_next_event(Duration::from_millis(700))
                .await
                .is_none()
        );
        assert_eq!(
            tab.events_read(),
            read,
            "no count but the true one reached a tab"
        );
        assert_eq!(tab.presence(PRESENT), Some(3));
    }

    // Act 2: b shuts down; its genuine count is written back, with no expiry, as it was.
    b.shut_down().await.unwrap();
    all_show(&mut on_a, 2, PATIENCE).await;
    let _: () = redis.command(&["SADD", &listing, &b_name]).await;
    let _: () = redis.command(&["SET", &count_key(&b_name), &genuine]).await;

    // Assert 2: it counts at most until it is older than the expiry (plus the clock's slack),
    // then it is refused and deleted, and the tabs show their own two again.
    all_show(&mut on_a, 2, expiry + PATIENCE).await;
    let deadline = tokio::time::Instant::now() + expiry + PATIENCE;
    while redis
        .command::<usize>(&["EXISTS", &count_key(&b_name)])
        .await
        > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "the copy was kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Act 3: a flood of names on the list.
    let flood: Vec<String> = (0..1500).map(|n| format!("fake{n}")).collect();
    let mut command = vec!["SADD", listing.as_str()];
    command.extend(flood.iter().map(String::as_str));
    let _: () = redis.command(&command).await;

    // Assert 3: the list is put right — a lists itself again — and the count stays true.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while listed(&redis).await.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the flood stayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for tab in &mut on_a {
        assert_eq!(tab.presence(PRESENT), Some(2));
    }
}

#[tokio::test]
async fn a_redis_that_restarts_empty_converges_on_the_total() {
    // Arrange
    let mut redis = RedisServer::start().await;
    let a = instance(&redis, Duration::from_secs(15)).await;
    let b = instance(&redis, Duration::from_secs(15)).await;
    let mut on_a = tabs(&a, 2).await;
    let mut on_b = tabs(&b, 3).await;
    all_show(&mut on_a, 5, PATIENCE).await;

    // Act: Redis is killed and comes back with nothing; meanwhile a tab opens on b.
    redis.stop();
    let mut more = tabs(&b, 1).await;
    redis.restart().await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;

    // Assert: both instances write their counts again, and every tab shows the total.
    all_show(&mut on_a, 6, PATIENCE).await;
    all_show(&mut on_b, 6, PATIENCE).await;
    all_show(&mut more, 6, PATIENCE).await;
    assert_eq!(listed(&redis).await.len(), 2);
}
