//! Someone who can write to Redis but does not hold `REDIS_SECRET`: what they try, and what
//! each instance does about it. They can read every message and every key, publish anything on
//! any channel, and rewrite any key; they cannot sign.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use live::testing::RedisServer;

use crate::{
    PREFIX, instance_with_prefix, next_note, publish_bytes,
    support::{PATIENCE, SseClient, TestApp, elements},
    two_connected_instances, wait_for_page, wait_redis,
};

/// A subscriber of the attacker's own on `channel`: it sees every message as Redis sends it.
async fn spy(redis: &RedisServer, channel: &str) -> redis::aio::PubSub {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel).await.unwrap();
    pubsub
}

/// The next message the spy sees whose payload contains `needle`.
async fn captured(spy: &mut redis::aio::PubSub, needle: &str) -> Vec<u8> {
    let mut messages = spy.on_message();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, messages.next())
            .await
            .expect("the message went through Redis")
            .unwrap();
        let payload = message.get_payload_bytes().to_vec();
        if String::from_utf8_lossy(&payload).contains(needle) {
            return payload;
        }
    }
}

/// `POST /shouts`: an ordinary broadcast (every one is delivered, none coalesces).
async fn shout(app: &TestApp, text: &str) {
    let response = app
        .client()
        .post(app.url("/shouts"))
        .header("datastar-request", "true")
        .form(&[("text", text)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The text of the next shout the tab shows.
async fn next_shout(tab: &mut SseClient) -> String {
    let patch = elements(&tab.next_event().await);
    let from = patch.find("<strong>").expect("a shout") + "<strong>".len();
    let to = from + patch[from..].find("</strong>").unwrap();
    patch[from..to].to_owned()
}

/// Messages refused so far by `app`, as its health probe reports them.
async fn rejected(app: &TestApp) -> u64 {
    let health: serde_json::Value = app.get("/healthz").await.json().await.unwrap();
    health["redis_rejected"].as_u64().unwrap()
}

/// Waits until `app` has refused `count` messages in all.
async fn wait_rejected(app: &TestApp, count: u64) {
    let deadline = Instant::now() + PATIENCE;
    while rejected(app).await < count {
        assert!(Instant::now() < deadline, "fewer than {count} refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rejected(app).await, count);
}

#[tokio::test]
async fn a_broadcast_published_again_is_shown_once_and_the_copies_are_counted() {
    // Arrange: the attacker listens on the channel and catches one signed broadcast.
    let (redis, a, b) = two_connected_instances().await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;
    let mut spy = spy(&redis, &format!("{PREFIX}:broadcast")).await;
    shout(&a, "Once").await;
    let signed = captured(&mut spy, "Once").await;
    assert_eq!(next_shout(&mut on_a).await, "Once");
    assert_eq!(next_shout(&mut on_b).await, "Once");

    // Act: the same bytes, published three more times.
    for _ in 0..3 {
        publish_bytes(&redis, &format!("{PREFIX}:broadcast"), &signed).await;
    }
    shout(&a, "Next").await;

    // Assert: no tab sees the first shout again, and every copy was refused and counted.
    assert_eq!(next_shout(&mut on_a).await, "Next");
    assert_eq!(next_shout(&mut on_b).await, "Next");
    wait_rejected(&a, 3).await;
    wait_rejected(&b, 3).await;
}

#[tokio::test]
async fn another_apps_signed_state_is_refused_on_the_channel_and_in_the_store() {
    // Arrange: two apps that share a Redis and a secret, not a prefix (say, staging and
    // production), each with a tab open.
    let redis = RedisServer::start().await;
    let app_a = instance_with_prefix(&redis.url(), "appa").await;
    let app_b = instance_with_prefix(&redis.url(), "appb").await;
    wait_redis(&app_a, true).await;
    wait_redis(&app_b, true).await;
    let mut on_b = app_b.open_live_stream().await;
    app_a.publish_with_datastar("Meant for A").await;
    wait_for_page(&app_a, "Meant for A").await;
    let stolen: Vec<u8> = redis
        .command(&["HGET", "appa:latest:note", "message"])
        .await;

    // Act: app A's signed note, published on app B's channel and stored as app B's note.
    publish_bytes(&redis, "appb:broadcast", &stolen).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("appb:latest:note")
        .arg("message")
        .arg(&stolen)
        .cmd("SADD")
        .arg("appb:topics")
        .arg("note")
        .query_async(&mut connection)
        .await
        .unwrap();
    let late_b = instance_with_prefix(&redis.url(), "appb").await;
    wait_redis(&late_b, true).await;

    // Assert: each was refused and counted — the published copy by the instance that was
    // listening, the stored one by the instance that caught up from it...
    wait_rejected(&app_b, 1).await;
    wait_rejected(&late_b, 1).await;
    for app in [&app_b, &late_b] {
        assert!(!app.page().await.contains("Meant for A"));
    }
    // ...and app B goes on with its own notes, on every tab and page.
    app_b.publish_with_datastar("Meant for B").await;
    let next = next_note(&mut on_b).await;
    assert!(next.contains("Meant for B"), "{next}");
    wait_for_page(&late_b, "Meant for B").await;
    assert!(
        app_a.page().await.contains("Meant for A"),
        "app A keeps its own"
    );
    assert_eq!(rejected(&app_b).await, 1, "nothing else was refused");
}

#[tokio::test]
async fn forged_versions_and_counters_in_redis_never_stop_a_greeting() {
    // Arrange
    let (redis, a, b) = two_connected_instances().await;
    let mut on_a = a.open_live_stream().await;
    let mut on_b = b.open_live_stream().await;
    a.publish_with_datastar("First").await;
    for tab in [&mut on_a, &mut on_b] {
        assert!(next_note(tab).await.contains("First"));
    }
    let latest = format!("{PREFIX}:latest:note");
    let counter = format!("{PREFIX}:version:note");

    // Each forgery below, then a greeting from one instance or the other: every tab on both
    // instances shows it, and both pages do.
    let forgeries: Vec<(&str, Vec<Vec<String>>)> = vec![
        // The highest version there can be, next to the stored (signed) message.
        (
            "Second",
            vec![vec![
                "HSET".into(),
                latest.clone(),
                "version".into(),
                "f".repeat(32),
            ]],
        ),
        // A message that is not signed at all.
        (
            "Third",
            vec![vec![
                "HSET".into(),
                latest.clone(),
                "message".into(),
                "ascolais/3 forged\nnothing".into(),
            ]],
        ),
        // The counter at the end of its range, from an epoch long gone.
        (
            "Fourth",
            vec![vec![
                "HSET".into(),
                counter.clone(),
                "epoch".into(),
                "1".into(),
                "number".into(),
                ((1u64 << 48) - 1).to_string(),
            ]],
        ),
        // A counter that is not a number, in an epoch far in the future.
        (
            "Fifth",
            vec![vec![
                "HSET".into(),
                counter.clone(),
                "epoch".into(),
                "99999999999999".into(),
                "number".into(),
                "many".into(),
            ]],
        ),
        // Keys of the wrong type.
        (
            "Sixth",
            vec![
                vec!["DEL".into(), latest.clone(), counter.clone()],
                vec!["SET".into(), latest.clone(), "x".into()],
                vec!["SET".into(), counter.clone(), "x".into()],
            ],
        ),
    ];
    for (i, (name, commands)) in forgeries.into_iter().enumerate() {
        for command in commands {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let _: redis::Value = redis.command(&args).await;
        }
        let sender = if i % 2 == 0 { &a } else { &b };

        let response = sender.publish_with_datastar(name).await;

        assert_eq!(response.status(), 200);
        for (tab, which) in [(&mut on_a, "A"), (&mut on_b, "B")] {
            let next = next_note(tab).await;
            assert!(next.contains(name), "{which} after the forgery: {next}");
        }
        for app in [&a, &b] {
            wait_for_page(app, &format!("<strong>{name}</strong>")).await;
        }
    }
    // What could be noticed was: the unsigned message, and each counter put right.
    let counted = rejected(&a).await + rejected(&b).await;
    assert!(counted >= 4, "{counted} forgeries counted");
}

#[tokio::test]
async fn signed_messages_for_another_channel_or_another_time_are_refused() {
    use datastar::prelude::PatchElements;
    use live::{
        Frame,
        redis::wire::{Signer, WireBroadcast},
        registry::{Outgoing, Pattern},
    };

    // Arrange: messages signed with the app's own secret (as only an instance could make
    // them), each wrong in one way, and one that is right.
    let redis = RedisServer::start().await;
    let app = crate::instance(&redis.url()).await;
    wait_redis(&app, true).await;
    let mut tab = app.open_live_stream().await;
    let (seconds, micros): (u64, u64) = redis.command(&["TIME"]).await;
    let now = seconds * 1000 + micros / 1000;
    let channel = format!("{PREFIX}:broadcast");
    let message = |text: &str, to: &str, sent_at: u64| {
        WireBroadcast {
            prefix: PREFIX.into(),
            channel: to.into(),
            origin: uuid::Uuid::new_v4(),
            epoch: now,
            seq: 1,
            sent_at,
            outgoing: Outgoing {
                pattern: Pattern::new("page/notes/*").unwrap(),
                except: Vec::new(),
                frame: Frame::from(PatchElements::new(format!(
                    r#"<p id="shout">Shout #0: <strong>{text}</strong></p>"#
                ))),
                latest: None,
            },
        }
        .encode(&Signer::new(crate::SECRET))
    };
    let refused = [
        message("Elsewhere", &format!("{PREFIX}:other"), now),
        message("Long ago", &channel, now - 31_000),
        message("From the future", &channel, now + 60_000),
    ];

    // Act
    for bytes in &refused {
        publish_bytes(&redis, &channel, bytes).await;
    }
    publish_bytes(&redis, &channel, &message("Right", &channel, now)).await;

    // Assert: only the right one is shown; the others were counted.
    assert_eq!(next_shout(&mut tab).await, "Right");
    wait_rejected(&app, 3).await;
}
