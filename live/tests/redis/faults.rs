//! Redis trouble, caused on purpose: every broadcast must still reach every tab exactly once,
//! and no tab may ever go back to an older note.
//!
//! Instance A talks to Redis through a [`Proxy`] that the test makes misbehave; instance B
//! talks to Redis directly. Each runs over plain TCP and over TLS.

use std::time::{Duration, Instant};

use live::testing::RedisServer;

use crate::{
    Transport, instance, over_tcp_and_tls,
    proxy::{Proxy, Then},
    support::{PATIENCE, SseClient, TestApp, elements},
    wait_redis,
};

over_tcp_and_tls!(
    a_broadcast_whose_echo_is_lost_with_the_subscription_reaches_the_senders_tabs_once,
    a_broadcast_whose_echo_hangs_reaches_the_senders_tabs_in_time_and_once,
    a_publish_that_times_out_but_runs_later_is_shown_once,
    an_older_greeting_whose_publish_fails_never_replaces_a_newer_one,
    a_tab_that_connects_while_redis_commands_fail_starts_from_the_newest_greeting,
    every_tab_ends_on_the_newest_greeting_while_subscriptions_keep_dropping,
    greetings_after_redis_restarts_empty_reach_every_tab,
    a_stopped_instance_lets_go_of_its_redis_connections,
);

/// A `redis-server`, instance A behind a proxy, instance B not, both receiving.
async fn setup(transport: Transport) -> (RedisServer, Proxy, TestApp, TestApp) {
    let redis = transport.start().await;
    let proxy = Proxy::start(&redis).await;
    let a = instance(&proxy.url()).await;
    let b = instance(&redis.url()).await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;
    (redis, proxy, a, b)
}

/// One note as a tab shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    name: String,
    serial: u64,
}

fn shown(patch: &str) -> Shown {
    let between = |start: &str, end: &str| {
        let from = patch
            .find(start)
            .unwrap_or_else(|| panic!("no {start:?} in {patch}"))
            + start.len();
        let to = from + patch[from..].find(end).unwrap();
        patch[from..to].to_owned()
    };
    Shown {
        name: between("<strong>", "</strong>"),
        serial: between("Note #", ":").parse().unwrap(),
    }
}

/// The next note the tab shows.
async fn next(tab: &mut SseClient) -> Shown {
    shown(&elements(&tab.next_event().await))
}

/// Reads notes until one called `last` arrives; returns the names shown, in order.
async fn names_until(tab: &mut SseClient, last: &str) -> Vec<String> {
    let mut names = Vec::new();
    while names.last().is_none_or(|name| name != last) {
        names.push(next(tab).await.name);
    }
    names
}

async fn a_broadcast_whose_echo_is_lost_with_the_subscription_reaches_the_senders_tabs_once(
    transport: Transport,
) {
    // Arrange
    let (_redis, proxy, a, b) = setup(transport).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    // Act: A publishes, but its copy coming back is stuck, and then the subscription drops.
    proxy.hold_subscriptions();
    a.publish_with_datastar("Ada").await;
    assert_eq!(
        next(&mut on_b).await.name,
        "Ada",
        "published for the others"
    );
    proxy.cut_subscriptions();
    proxy.release();

    // Assert: A's tab gets it all the same, and once.
    assert_eq!(next(&mut on_a).await.name, "Ada");
    wait_redis(&a, true).await;
    b.publish_with_datastar("Grace").await;
    assert_eq!(names_until(&mut on_a, "Grace").await, ["Grace"]);
    assert_eq!(names_until(&mut on_b, "Grace").await, ["Grace"]);
}

async fn a_broadcast_whose_echo_hangs_reaches_the_senders_tabs_in_time_and_once(
    transport: Transport,
) {
    let (_redis, proxy, a, b) = setup(transport).await;
    let mut on_a = a.open_live_stream().await;

    // A's subscription hangs without dropping: its copy of A's post does not come back.
    proxy.hold_subscriptions();
    a.publish_with_datastar("Ada").await;
    let waited = Instant::now();
    assert_eq!(next(&mut on_a).await.name, "Ada");
    eprintln!(
        "delivered locally after {:?} without an echo",
        waited.elapsed()
    );

    // The echo comes back after all: it is not shown a second time.
    proxy.release();
    b.publish_with_datastar("Grace").await;
    assert_eq!(names_until(&mut on_a, "Grace").await, ["Grace"]);
}

async fn a_publish_that_times_out_but_runs_later_is_shown_once(transport: Transport) {
    let (_redis, proxy, a, b) = setup(transport).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    // Once normally, so that Redis has the publishing script (a late call to a script Redis
    // does not know yet would fail rather than run).
    a.publish_with_datastar("Warm-up").await;
    assert_eq!(next(&mut on_a).await.name, "Warm-up");
    assert_eq!(next(&mut on_b).await.name, "Warm-up");

    // A's post reaches Redis only after A has given up on it (1.5 s > the 1 s timeout).
    proxy.delay_command(":latest:", Duration::from_millis(1_500), Then::Forward);
    a.publish_with_datastar("Ada").await;
    assert_eq!(
        next(&mut on_a).await.name,
        "Ada",
        "delivered locally at once"
    );
    assert_eq!(
        next(&mut on_b).await.name,
        "Ada",
        "and to B when Redis runs it"
    );

    a.publish_with_datastar("Grace").await;
    assert_eq!(
        names_until(&mut on_a, "Grace").await,
        ["Grace"],
        "no second Ada"
    );
    assert_eq!(names_until(&mut on_b, "Grace").await, ["Grace"]);
}

async fn an_older_greeting_whose_publish_fails_never_replaces_a_newer_one(transport: Transport) {
    let (_redis, proxy, a, b) = setup(transport).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    // A numbers "Old" first, but its publish hangs and then fails; meanwhile B's newer "New"
    // goes round.
    proxy.delay_command(":latest:", Duration::from_millis(1_000), Then::Cut);
    a.publish_with_datastar("Old").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.publish_with_datastar("New").await;
    assert_eq!(next(&mut on_a).await.name, "New");
    assert_eq!(next(&mut on_b).await.name, "New");
    tokio::time::sleep(Duration::from_millis(1_500)).await; // A's post has failed by now

    b.publish_with_datastar("Last").await;
    assert_eq!(
        names_until(&mut on_a, "Last").await,
        ["Last"],
        "never back to Old"
    );
    assert_eq!(names_until(&mut on_b, "Last").await, ["Last"]);
    assert!(a.page().await.contains("<strong>Last</strong>"));
}

async fn a_tab_that_connects_while_redis_commands_fail_starts_from_the_newest_greeting(
    transport: Transport,
) {
    let (_redis, proxy, a, b) = setup(transport).await;
    let mut on_a = a.open_live_stream().await;
    b.publish_with_datastar("Grace").await;
    assert_eq!(next(&mut on_a).await.name, "Grace");

    // A can still receive from Redis, but none of its commands get through.
    proxy.refuse_commands();

    let mut late = a.open_stream(uuid::Uuid::new_v4()).await;
    let first = late.read_initial_events().await;
    assert!(
        elements(&first.state).contains("<strong>Grace</strong>"),
        "{:?}",
        first.state
    );
    assert!(a.page().await.contains("<strong>Grace</strong>"));
}

async fn every_tab_ends_on_the_newest_greeting_while_subscriptions_keep_dropping(
    transport: Transport,
) {
    let redis = transport.start().await;
    let a = instance(&redis.url()).await;
    let b = instance(&redis.url()).await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;

    // Kill every subscription every 50 ms while A notes 60 times.
    let killer = {
        let client = redis.client();
        tokio::spawn(async move {
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            loop {
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query_async(&mut connection)
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    for i in 1..=60 {
        a.publish_with_datastar(&format!("racer{i}")).await;
    }
    killer.abort();

    // Every tab catches up with the newest note, never going back on the way.
    for (tab, instance) in [(&mut on_a, "A"), (&mut on_b, "B")] {
        let mut last = 0;
        while last < 60 {
            let note = next(tab).await;
            assert!(
                note.serial > last,
                "{instance}: back from #{last} to {note:?}"
            );
            last = note.serial;
        }
        assert_eq!(last, 60, "{instance}");
    }
    for app in [&a, &b] {
        assert!(app.page().await.contains("Note #60:"));
    }
}

async fn greetings_after_redis_restarts_empty_reach_every_tab(transport: Transport) {
    let mut redis = transport.start().await;
    let a = instance(&redis.url()).await;
    let b = instance(&redis.url()).await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;
    for i in 1..=20 {
        a.publish_with_datastar(&format!("before{i}")).await;
    }
    names_until(&mut on_a, "before20").await;
    names_until(&mut on_b, "before20").await;

    // Redis dies and comes back with nothing: its counters start again.
    redis.stop();
    redis.restart().await;
    wait_redis(&a, true).await;
    wait_redis(&b, true).await;

    for i in 1..=16 {
        a.publish_with_datastar(&format!("after{i}")).await;
    }
    for tab in [&mut on_a, &mut on_b] {
        let names = names_until(tab, "after16").await;
        assert!(!names.is_empty() && names.iter().all(|n| n.starts_with("after")));
    }
    for app in [&a, &b] {
        assert!(app.page().await.contains("<strong>after16</strong>"));
    }
}

async fn a_stopped_instance_lets_go_of_its_redis_connections(transport: Transport) {
    let redis = transport.start().await;
    let baseline = redis_clients(&redis).await;
    let mut a = instance(&redis.url()).await;
    wait_redis(&a, true).await;
    a.publish_with_datastar("Ada").await; // opens the command connection too
    assert!(redis_clients(&redis).await > baseline);

    a.shut_down().await.unwrap();
    drop(a);

    let deadline = Instant::now() + PATIENCE;
    while redis_clients(&redis).await > baseline {
        assert!(
            Instant::now() < deadline,
            "connections left behind: {}",
            redis.command::<String>(&["CLIENT", "LIST"]).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clients connected to `redis`, not counting the one asking.
async fn redis_clients(redis: &RedisServer) -> usize {
    let list: String = redis.command(&["CLIENT", "LIST"]).await;
    list.lines().count() - 1
}
