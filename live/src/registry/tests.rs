//! Lifecycle tests of the registry: storing, replacing, dropping, back-pressure.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use datastar::prelude::{PatchElements, PatchSignals};
use futures_util::{FutureExt, StreamExt};
use prometheus_client::metrics::histogram::Histogram;

use super::*;
use crate::frame::Frame;

fn key(text: &str) -> Key {
    Key::new(text).unwrap()
}

fn pattern(text: &str) -> Pattern {
    Pattern::new(text).unwrap()
}

fn frame(n: u32) -> Frame {
    Frame::from(PatchSignals::new(format!("{{\"n\":{n}}}")))
}

/// Version `number` of `topic`, for the streams `pattern` matches.
fn latest(pattern: &Pattern, topic: &str, number: u64, frame: Frame) -> Outgoing {
    Outgoing {
        pattern: pattern.clone(),
        except: Vec::new(),
        frame,
        latest: Some(LatestState {
            topic: topic.into(),
            version: Version::new(1, number),
            value: None,
        }),
    }
}

/// A stream under `key` following the latest-state `topics`.
fn follower(registry: &Registry, key_text: &str, topics: &[&str]) -> Connection {
    let options = ConnectOptions {
        topics,
        ..ConnectOptions::default()
    };
    registry.connect_with(key(key_text), options).unwrap().0
}

/// The next frame if one is queued right now, `Some(None)` if the stream has ended, `None` if
/// it is still open with nothing queued.
fn poll_now(connection: &mut Connection) -> Option<Option<Frame>> {
    connection.next().now_or_never()
}

#[test]
fn a_dropped_client_leaves_the_registry_at_once() {
    let registry = Registry::default();
    let (connection, _) = registry.connect(key("page/home/a")).unwrap();
    assert_eq!(registry.count(&pattern("page/home/*")), 1);

    drop(connection);

    assert_eq!(registry.count(&pattern("page/home/*")), 0);
    assert!(registry.is_empty());
    assert!(!registry.send(&key("page/home/a"), frame(1)));
}

#[test]
fn broadcast_reaches_every_match_and_nothing_else_sharing_one_encoding() {
    let registry = Registry::default();
    let (mut a, _) = registry.connect(key("page/home/a")).unwrap();
    let (mut b, _) = registry.connect(key("page/home/b")).unwrap();
    let (mut other, _) = registry.connect(key("page/about/a")).unwrap();

    let delivered = registry.broadcast(&pattern("page/home/*"), &frame(1));

    assert_eq!(delivered, 2);
    let got_a = poll_now(&mut a).flatten().expect("a receives");
    let got_b = poll_now(&mut b).flatten().expect("b receives");
    assert_eq!(got_a, frame(1));
    assert_eq!(
        got_a.as_bytes().as_ptr(),
        got_b.as_bytes().as_ptr(),
        "both receivers share the same encoded bytes"
    );
    assert_eq!(
        poll_now(&mut other),
        None,
        "a non-matching key gets nothing"
    );
}

#[test]
fn broadcast_except_skips_the_excluded_keys() {
    let registry = Registry::default();
    let (mut a, _) = registry.connect(key("page/home/a")).unwrap();
    let (mut b, _) = registry.connect(key("page/home/b")).unwrap();

    let delivered =
        registry.broadcast_except(&pattern("page/home/*"), &[key("page/home/a")], &frame(1));

    assert_eq!(delivered, 1);
    assert_eq!(poll_now(&mut a), None);
    assert_eq!(poll_now(&mut b), Some(Some(frame(1))));
}

#[test]
fn send_targets_one_key() {
    let registry = Registry::default();
    let (mut a, _) = registry.connect(key("page/home/a")).unwrap();
    let (mut b, _) = registry.connect(key("page/home/b")).unwrap();

    assert!(registry.send(&key("page/home/b"), frame(7)));
    assert!(!registry.send(&key("page/home/c"), frame(7)));

    assert_eq!(poll_now(&mut a), None);
    assert_eq!(poll_now(&mut b), Some(Some(frame(7))));
}

#[test]
fn a_stream_that_is_behind_keeps_every_ordinary_frame_and_skips_to_the_newest_latest() {
    let registry = Registry::default();
    let mut behind = follower(&registry, "page/home/behind", &["greeting"]);
    let mut reading = follower(&registry, "page/home/reading", &["greeting"]);
    let home = pattern("page/home/*");

    // 200 updates of a latest-state topic and 20 ordinary events, while one stream reads as
    // they come and the other reads nothing until the end.
    let mut read = Vec::new();
    for n in 1..=200 {
        registry.deliver(&latest(&home, "greeting", n, frame(n as u32)));
        if n % 10 == 0 {
            registry.broadcast(&home, &frame(1_000 + n as u32));
        }
        read.extend(std::iter::from_fn(|| poll_now(&mut reading).flatten()));
    }

    assert_eq!(registry.len(), 2, "nobody was dropped");
    assert_eq!(read.len(), 220, "the reader got everything, in order");
    assert_eq!(read.last(), Some(&frame(1_200)));
    // Every ordinary event in order, and of the topic only the newest version, where the
    // server sent it (just before the last ordinary event).
    let caught_up: Vec<_> = std::iter::from_fn(|| poll_now(&mut behind).flatten()).collect();
    let mut expected: Vec<_> = (1..20).map(|n| frame(1_000 + n * 10)).collect();
    expected.extend([frame(200), frame(1_200)]);
    assert_eq!(caught_up, expected);
}

#[test]
fn a_stream_over_its_queue_limit_is_cut_off_with_its_socket_and_the_others_keep_receiving() {
    let registry = Registry::new(Limits {
        queue_limit: 3,
        ..Limits::default()
    });
    let socket = SocketControl::new();
    let (mut stuck, _) = registry
        .connect_with(
            key("page/home/stuck"),
            ConnectOptions {
                socket: Some(socket.clone()),
                topics: &[],
                client: None,
            },
        )
        .unwrap();
    let (mut healthy, _) = registry.connect(key("page/home/healthy")).unwrap();

    let mut delivered = Vec::new();
    for n in 0..5 {
        delivered.push(registry.broadcast(&pattern("page/home/*"), &frame(n)));
        assert_eq!(poll_now(&mut healthy), Some(Some(frame(n))));
    }

    assert_eq!(delivered, [2, 2, 2, 1, 1], "the fourth frame overflows");
    assert_eq!(
        registry.keys(&pattern("page/home/*")),
        [key("page/home/healthy")]
    );
    assert!(socket.is_hung_up(), "its TCP connection is cut off too");
    assert_eq!(poll_now(&mut stuck), Some(None), "the stream ends at once");
}
#[test]
fn the_same_key_replaces_and_ends_the_first_connection() {
    let registry = Registry::default();
    let (mut first, none) = registry.connect(key("page/home/a")).unwrap();
    assert!(none.is_none());

    let (mut second, replaced) = registry.connect(key("page/home/a")).unwrap();
    let replaced = replaced.expect("the first connection is handed back");
    assert_eq!(replaced.key(), &key("page/home/a"));
    assert!(replaced.farewell(frame(0)));

    assert_eq!(
        poll_now(&mut first),
        Some(Some(frame(0))),
        "the farewell arrives"
    );
    assert_eq!(
        poll_now(&mut first),
        Some(None),
        "then the first stream ends"
    );
    assert_eq!(registry.len(), 1);

    // The old connection's guard must not remove its successor.
    drop(first);
    assert_eq!(registry.len(), 1);
    assert!(registry.send(&key("page/home/a"), frame(1)));
    assert_eq!(poll_now(&mut second), Some(Some(frame(1))));
}

#[test]
fn count_keys_and_close_by_pattern() {
    let registry = Registry::default();
    let (mut a, _) = registry.connect(key("page/home/a")).unwrap();
    let (_b, _) = registry.connect(key("page/home/b")).unwrap();
    let (mut about, _) = registry.connect(key("page/about/a")).unwrap();

    assert_eq!(registry.count(&pattern("page/*/*")), 3);
    assert_eq!(registry.count(&pattern("page/*/a")), 2);
    assert_eq!(
        registry.keys(&pattern("page/home/*")),
        [key("page/home/a"), key("page/home/b")]
    );

    assert_eq!(registry.close(&pattern("page/home/*")), 2);

    assert_eq!(poll_now(&mut a), Some(None), "closed streams end");
    assert_eq!(poll_now(&mut about), None, "others stay open");
    assert_eq!(registry.keys(&pattern("*/*/*")), [key("page/about/a")]);
}

#[test]
fn shut_down_ends_every_stream_and_refuses_new_ones() {
    let registry = Registry::default();
    let (mut a, _) = registry.connect(key("page/home/a")).unwrap();

    assert_eq!(registry.shut_down(&frame(9)), 1);
    assert_eq!(
        poll_now(&mut a),
        Some(Some(frame(9))),
        "the last frame first"
    );
    assert_eq!(poll_now(&mut a), Some(None));

    assert!(registry.is_shut_down());
    assert_eq!(
        registry.connect(key("page/home/b")).err(),
        Some(ConnectError::ShuttingDown),
        "a late stream is refused"
    );
    assert!(registry.is_empty());
}

#[test]
fn a_full_registry_refuses_new_keys_but_allows_replacement() {
    let registry = Registry::new(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let (a, _) = registry.connect(key("page/home/a")).unwrap();
    let (_b, _) = registry.connect(key("page/home/b")).unwrap();

    assert_eq!(
        registry.connect(key("page/home/c")).err(),
        Some(ConnectError::Full(2))
    );
    let (_a2, replaced) = registry.connect(key("page/home/a")).unwrap();
    assert!(replaced.is_some(), "replacing a key adds no connection");
    assert_eq!(registry.len(), 2);

    drop(a); // the replaced connection's guard frees nothing
    assert!(registry.connect(key("page/home/c")).is_err());
    registry.close(&pattern("page/home/b"));
    assert!(registry.connect(key("page/home/c")).is_ok(), "room again");
}

#[tokio::test]
async fn a_stream_wakes_when_a_frame_is_broadcast() {
    let registry = Registry::default();
    let (mut connection, _) = registry.connect(key("page/home/a")).unwrap();
    let reader = tokio::spawn(async move { connection.next().await });
    tokio::task::yield_now().await;

    registry.broadcast(&pattern("page/home/*"), &frame(3));

    assert_eq!(reader.await.unwrap(), Some(frame(3)));
    assert!(
        registry.is_empty(),
        "the reader task dropped its connection"
    );
}

#[test]
fn an_older_version_of_a_latest_topic_is_never_delivered_after_a_newer_one() {
    let registry = Registry::default();
    let mut tab = follower(&registry, "page/home/a", &["greeting", "other"]);
    let home = pattern("page/home/*");
    let mut received = Vec::new();
    let mut deliver = |topic: &str, number: u64| {
        let reached = registry.deliver(&latest(&home, topic, number, frame(number as u32)));
        received.extend(std::iter::from_fn(|| poll_now(&mut tab).flatten()));
        reached
    };

    assert_eq!(deliver("greeting", 2), 1);
    assert_eq!(deliver("greeting", 1), 0, "1 lost the race to 2: dropped");
    assert_eq!(deliver("greeting", 2), 0, "the same version again: dropped");
    assert_eq!(deliver("other", 1), 1, "topics are apart");
    assert_eq!(deliver("greeting", 3), 1);

    assert_eq!(received, [frame(2), frame(1), frame(3)]);
}

#[test]
fn a_new_epoch_wins_over_any_number_of_an_old_one() {
    // A Redis that restarted empty numbers from 1 again, in a later epoch.
    let registry = Registry::default();
    let mut tab = follower(&registry, "page/home/a", &["greeting"]);
    let home = pattern("page/home/*");
    let mut outgoing = latest(&home, "greeting", 57, frame(57));
    registry.deliver(&outgoing);

    assert_eq!(poll_now(&mut tab), Some(Some(frame(57))));

    outgoing.latest.as_mut().unwrap().version = Version::new(2, 1);
    outgoing.frame = frame(1);
    assert_eq!(registry.deliver(&outgoing), 1);
    assert_eq!(poll_now(&mut tab), Some(Some(frame(1))));
}

#[test]
fn a_stream_starts_with_the_newest_version_of_its_topics() {
    let registry = Registry::default();
    let home = pattern("page/home/*");
    registry.deliver(&latest(&home, "greeting", 4, frame(4)));

    let (mut tab, _) = registry
        .connect_with(
            key("page/home/a"),
            ConnectOptions {
                socket: None,
                topics: &["greeting", "nothing-yet"],
                client: None,
            },
        )
        .unwrap();
    assert!(tab.has_version_of("greeting"));
    assert!(!tab.has_version_of("nothing-yet"));

    assert_eq!(poll_now(&mut tab), Some(Some(frame(4))));
    // What it was started with is not sent again, nor anything older.
    registry.deliver(&latest(&home, "greeting", 3, frame(3)));
    registry.deliver(&latest(&home, "greeting", 4, frame(4)));
    assert_eq!(poll_now(&mut tab), None);
    registry.deliver(&latest(&home, "greeting", 5, frame(5)));
    assert_eq!(poll_now(&mut tab), Some(Some(frame(5))));
}

#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Score {
    points: u64,
}

static SCORE: Topic<Score> = Topic::new("score");

#[tokio::test]
async fn published_versions_are_numbered_kept_and_delivered() {
    let registry = Registry::default();
    let mut tab = follower(&registry, "page/home/a", &["score"]);
    assert_eq!(registry.latest(&SCORE), None);

    for expected in 1..=3 {
        let score = registry
            .publish_latest(&SCORE, &pattern("page/home/*"), |number| {
                Ok::<_, std::convert::Infallible>((Score { points: number }, frame(number as u32)))
            })
            .await
            .unwrap();
        assert_eq!(score, Score { points: expected });
        assert_eq!(poll_now(&mut tab), Some(Some(frame(expected as u32))));
    }

    assert_eq!(registry.latest(&SCORE), Some(Score { points: 3 }));
}

#[test]
fn one_client_cannot_take_every_connection() {
    let registry = Registry::new(Limits {
        max_per_client: 2,
        ..Limits::default()
    });
    let from = |client: [u8; 4]| ConnectOptions {
        client: Some(IpAddr::from(client)),
        ..ConnectOptions::default()
    };
    let (a, _) = registry
        .connect_with(key("page/home/a"), from([10, 0, 0, 1]))
        .unwrap();
    let (_b, _) = registry
        .connect_with(key("page/home/b"), from([10, 0, 0, 1]))
        .unwrap();

    assert_eq!(
        registry
            .connect_with(key("page/home/c"), from([10, 0, 0, 1]))
            .err(),
        Some(ConnectError::ClientFull(2))
    );
    assert!(
        registry
            .connect_with(key("page/home/c"), from([10, 0, 0, 2]))
            .is_ok(),
        "another client is not affected"
    );
    let (_a2, replaced) = registry
        .connect_with(key("page/home/a"), from([10, 0, 0, 1]))
        .unwrap();
    assert!(replaced.is_some(), "replacing its own key adds nothing");

    drop(a); // replaced: frees nothing
    drop(replaced);
    assert!(
        registry
            .connect_with(key("page/home/d"), from([10, 0, 0, 1]))
            .is_err()
    );
    registry.close(&pattern("page/home/b"));
    assert!(
        registry
            .connect_with(key("page/home/d"), from([10, 0, 0, 1]))
            .is_ok(),
        "room again"
    );
}

/// A waker that counts how often it is woken.
#[derive(Default)]
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

#[test]
fn a_burst_of_publishes_wakes_each_waiting_stream_once_and_it_writes_only_the_newest() {
    let registry = Registry::default();
    let home = pattern("page/home/*");
    let mut tabs: Vec<Connection> = (0..100)
        .map(|i| follower(&registry, &format!("page/home/{i}"), &["greeting"]))
        .collect();
    let wakes = Arc::new(CountingWaker::default());
    let waker = std::task::Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    for tab in &mut tabs {
        assert!(tab.poll_next_unpin(&mut cx).is_pending(), "nothing yet");
    }

    // 1 024 versions while the streams wait, as when greets land at once.
    for n in 1..=1_024 {
        let followers = registry.deliver(&latest(&home, "greeting", n, frame(n as u32)));
        assert_eq!(followers, 100);
    }

    assert_eq!(
        wakes.count(),
        100,
        "one wake per stream for the whole burst, not one per publish"
    );
    for tab in &mut tabs {
        let mut written = Vec::new();
        while let Poll::Ready(Some(frame)) = tab.poll_next_unpin(&mut cx) {
            written.push(frame);
        }
        assert_eq!(written, [frame(1_024)], "one frame: the newest");
    }
    registry.deliver(&latest(&home, "greeting", 1_025, frame(1_025)));
    assert_eq!(wakes.count(), 200, "waiting again, woken again");
}

#[test]
fn a_follower_skips_versions_not_meant_for_its_key() {
    let registry = Registry::default();
    let mut about = follower(&registry, "page/about/a", &["greeting"]);
    let mut home = follower(&registry, "page/home/a", &["greeting"]);
    let mut excluded = follower(&registry, "page/home/b", &["greeting"]);
    let mut outgoing = latest(&pattern("page/home/*"), "greeting", 1, frame(1));
    outgoing.except = vec![key("page/home/b")];

    assert_eq!(registry.deliver(&outgoing), 3, "all three follow it");

    assert_eq!(poll_now(&mut home), Some(Some(frame(1))));
    assert_eq!(poll_now(&mut about), None, "another page");
    assert_eq!(poll_now(&mut excluded), None, "excluded");
    assert!(!about.has_version_of("greeting"));
}

#[test]
fn streams_that_left_a_quiet_topic_do_not_pile_up_in_its_slot() {
    let registry = Registry::default();
    let _staying = follower(&registry, "page/home/staying", &["quiet"]);
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    for i in 0..1_000 {
        let mut tab = follower(&registry, &format!("page/home/{i}"), &["quiet"]);
        assert!(tab.poll_next_unpin(&mut cx).is_pending());
    }

    let waiting = registry.shared.lock().topics.waiting("quiet");
    // Pruned whenever the list reaches twice the followers (two at most here) and a few.
    assert!(
        waiting <= 2 * 2 + 16 + 1,
        "{waiting} streams listed, with 1 follower left"
    );
}

/// A relay that holds every broadcast until the test delivers it (Redis, slow to echo).
#[derive(Debug, Default)]
struct HoldingRelay(Mutex<Vec<Outgoing>>);

impl Relay for HoldingRelay {
    fn relay(&self, _: &Registry, outgoing: Outgoing) -> usize {
        self.0.lock().unwrap().push(outgoing);
        0
    }

    fn next_version<'a>(
        &'a self,
        _: &'a str,
        _: Option<Version>,
    ) -> futures_util::future::BoxFuture<'a, Option<Version>> {
        Box::pin(async { None })
    }

    fn is_connected(&self) -> bool {
        true
    }

    fn rejected(&self) -> u64 {
        0
    }

    fn flush(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_stream_opened_before_the_echo_starts_with_the_newest_and_gets_it_once() {
    let registry = Registry::default();
    let relay = Arc::new(HoldingRelay::default());
    registry.attach_relay(Arc::clone(&relay) as Arc<dyn Relay>);
    let home = pattern("page/home/*");
    let publish = |points| {
        registry.publish_latest(&SCORE, &home, move |_| {
            Ok::<_, std::convert::Infallible>((Score { points }, frame(points as u32)))
        })
    };
    publish(1).await.unwrap();

    // The page shows it at once; a stream opened now starts with it, before Redis echoes it.
    assert_eq!(registry.latest(&SCORE), Some(Score { points: 1 }));
    let mut tab = follower(&registry, "page/home/a", &["score"]);
    assert!(tab.has_version_of("score"));
    assert_eq!(poll_now(&mut tab), Some(Some(frame(1))));

    let held = std::mem::take(&mut *relay.0.lock().unwrap());
    for outgoing in &held {
        registry.deliver(outgoing);
    }
    assert_eq!(poll_now(&mut tab), None, "the echo is not sent twice");

    publish(2).await.unwrap();
    assert_eq!(poll_now(&mut tab), None, "not before it comes back");
    let held = std::mem::take(&mut *relay.0.lock().unwrap());
    registry.deliver(&held[0]);
    assert_eq!(poll_now(&mut tab), Some(Some(frame(2))));
}

#[test]
fn keep_alive_comments_go_to_the_streams_quiet_since_the_last_round() {
    let registry = Registry::default();
    let (mut quiet, _) = registry.connect(key("page/home/quiet")).unwrap();
    let (mut busy, _) = registry.connect(key("page/home/busy")).unwrap();
    let mut follower = follower(&registry, "page/home/follower", &["greeting"]);

    assert_eq!(registry.keep_alive(), 3, "nothing written yet: all quiet");
    for stream in [&mut quiet, &mut busy, &mut follower] {
        assert_eq!(poll_now(stream), Some(Some(Frame::keep_alive())));
    }

    // One stream gets an ordinary frame, another a latest-state version.
    assert!(registry.send(&key("page/home/busy"), frame(1)));
    registry.deliver(&latest(&pattern("page/home/*"), "greeting", 1, frame(2)));
    assert_eq!(poll_now(&mut busy), Some(Some(frame(1))));
    assert_eq!(poll_now(&mut follower), Some(Some(frame(2))));

    assert_eq!(
        registry.keep_alive(),
        1,
        "only the stream that wrote nothing but a keep-alive since"
    );
    assert_eq!(poll_now(&mut quiet), Some(Some(Frame::keep_alive())));
    assert_eq!(poll_now(&mut busy), None);
    assert_eq!(registry.keep_alive(), 3, "a round later, all quiet again");
}

/// Two histograms to time deliveries into, and their counts of observations.
fn timed(registry: &Registry) -> (Histogram, Histogram) {
    let buckets = || [0.001, 0.01, 0.1, 1.0].into_iter();
    let (latest, ordinary) = (Histogram::new(buckets()), Histogram::new(buckets()));
    registry.time_deliveries(latest.clone(), ordinary.clone());
    (latest, ordinary)
}

#[test]
fn a_sampled_broadcast_is_timed_once_its_last_stream_wrote_it() {
    let registry = Registry::default();
    let (latest, ordinary) = timed(&registry);
    let mut tabs: Vec<Connection> = ["a", "b", "c"]
        .iter()
        .map(|tab| {
            registry
                .connect(key(&format!("page/home/{tab}")))
                .unwrap()
                .0
        })
        .collect();

    registry.broadcast(&pattern("page/home/*"), &frame(1));
    registry.broadcast(&pattern("page/home/*"), &frame(2)); // within the period: not sampled
    for tab in &mut tabs[..2] {
        assert_eq!(poll_now(tab), Some(Some(frame(1))));
    }
    assert_eq!(ordinary.count(), 0, "c has not written it yet");
    assert_eq!(poll_now(&mut tabs[2]), Some(Some(frame(1))));

    assert_eq!(ordinary.count(), 1, "observed at the last write");
    for tab in &mut tabs {
        assert_eq!(poll_now(tab), Some(Some(frame(2))));
    }
    assert_eq!(ordinary.count(), 1, "the second broadcast was not sampled");
    assert_eq!(latest.count(), 0);
}

#[test]
fn a_sampled_latest_version_is_timed_when_a_newer_one_replaces_it() {
    let registry = Registry::default();
    let (latest, _) = timed(&registry);
    let home = pattern("page/home/*");
    let mut a = follower(&registry, "page/home/a", &["greeting"]);
    let mut b = follower(&registry, "page/home/b", &["greeting"]);

    registry.deliver(&latest_version(&home, 1));
    assert_eq!(poll_now(&mut a), Some(Some(frame(1))));
    assert_eq!(poll_now(&mut b), Some(Some(frame(1))));
    assert_eq!(
        latest.count(),
        0,
        "the newest version: pages and new tabs still start from it"
    );
    registry.deliver(&latest_version(&home, 2));

    assert_eq!(latest.count(), 1);
    assert!(latest.sum() > 0.0);
}

fn latest_version(pattern: &Pattern, number: u32) -> Outgoing {
    latest(pattern, "greeting", u64::from(number), frame(number))
}

/// The home page's presence, as an app defines it.
static HERE: Presence = Presence::new("here", "page/home/*");

/// The count in a presence frame, if it is one.
fn presence_count(frame: &Frame) -> Option<usize> {
    let json = frame.as_str().split("signals ").nth(1)?.trim();
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["_presence"]["here"].as_u64().map(|n| n as usize)
}

/// A tab on the home page showing the presence, as `Stream::counting` opens it.
fn counting_tab(registry: &Registry, tab: &str) -> Connection {
    registry.presence(&HERE);
    follower(registry, &format!("page/home/{tab}"), &[&HERE.topic()])
}

/// Everything a stream has to write now.
fn drain(connection: &mut Connection) -> Vec<Frame> {
    std::iter::from_fn(|| poll_now(connection).flatten()).collect()
}

#[test]
fn presence_follows_keys_not_connections() {
    let registry = Registry::default();
    let _about = registry.connect(key("page/about/x")).unwrap();
    let mut a = counting_tab(&registry, "a");
    let b = counting_tab(&registry, "b");
    assert_eq!(registry.presence(&HERE), 2, "the about page is not counted");
    assert_eq!(
        drain(&mut a).iter().filter_map(presence_count).next_back(),
        Some(2)
    );

    // A duplicated tab replaces the stream under its key: still two.
    let (_a_again, replaced) = registry.connect(key("page/home/a")).unwrap();
    assert!(replaced.is_some());
    assert_eq!(registry.presence(&HERE), 2);

    drop(b);
    assert_eq!(registry.presence(&HERE), 1);
    assert_eq!(registry.close(&pattern("page/home/*")), 1);
    assert_eq!(registry.presence(&HERE), 0);
}

#[test]
fn a_storm_of_joins_wakes_each_tab_a_handful_of_times_and_every_tab_ends_on_the_exact_count() {
    let registry = Registry::default();
    let wakes = Arc::new(CountingWaker::default());
    let waker = std::task::Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);

    // 10 000 tabs join in a burst; each writes what it has when it opens, as a stream does,
    // and is not polled again until the storm is over.
    let mut tabs = Vec::new();
    let mut shown = Vec::new();
    let mut frames = 0;
    for i in 0..10_000 {
        let mut tab = counting_tab(&registry, &i.to_string());
        let mut count = None;
        while let Poll::Ready(Some(frame)) = tab.poll_next_unpin(&mut cx) {
            count = Some(presence_count(&frame).expect("a presence frame"));
            frames += 1;
        }
        tabs.push(tab);
        shown.push(count);
    }
    let woken_in_storm = wakes.count();

    // Then every tab writes what it was woken for.
    for (tab, count) in tabs.iter_mut().zip(&mut shown) {
        for frame in drain(tab) {
            *count = presence_count(&frame);
            frames += 1;
        }
    }

    assert_eq!(registry.presence(&HERE), 10_000);
    assert!(
        shown.iter().all(|count| *count == Some(10_000)),
        "every tab shows 10 000"
    );
    let per_tab = frames as f64 / 10_000.0;
    let wakes_per_tab = woken_in_storm as f64 / 10_000.0;
    println!("storm of 10 000 joins: {per_tab:.2} frames and {wakes_per_tab:.2} wakes per tab");
    assert!(per_tab <= 3.0, "{per_tab} presence frames per tab");
    assert!(wakes_per_tab <= 3.0, "{wakes_per_tab} wakes per tab");

    // Half of them leave: the rest end on 5 000.
    tabs.truncate(5_000);
    for tab in &mut tabs {
        assert_eq!(drain(tab).last().and_then(presence_count), Some(5_000));
    }
    assert_eq!(registry.presence(&HERE), 5_000);
}

#[tokio::test]
async fn presence_changes_within_the_gap_are_published_together_when_it_is_over() {
    let registry = Registry::default();
    let counts = |tab: &mut Connection| drain(tab).iter().filter_map(presence_count).collect();
    let mut watcher = counting_tab(&registry, "watcher");
    let first: Vec<usize> = counts(&mut watcher);
    assert_eq!(
        first,
        vec![0],
        "the count it joined; its own join waits for the gap"
    );

    // 999 more within the gap: counted at once, published once, when the gap is over.
    let _tabs: Vec<Connection> = (0..999)
        .map(|tab| counting_tab(&registry, &tab.to_string()))
        .collect();
    assert_eq!(registry.presence(&HERE), 1_000);
    let within: Vec<usize> = counts(&mut watcher);
    assert!(within.is_empty(), "{within:?}");
    tokio::time::sleep(tally::PUBLISH_GAP + Duration::from_millis(100)).await;
    let after: Vec<usize> = counts(&mut watcher);
    assert_eq!(after, vec![1_000]);

    // After a quiet gap, a change is published at once; one that is undone within the next
    // gap publishes nothing more.
    tokio::time::sleep(tally::PUBLISH_GAP).await;
    let late = counting_tab(&registry, "late");
    let at_once: Vec<usize> = counts(&mut watcher);
    assert_eq!(at_once, vec![1_001]);
    drop(late);
    let blip = counting_tab(&registry, "blip");
    tokio::time::sleep(tally::PUBLISH_GAP + Duration::from_millis(100)).await;
    let unchanged: Vec<usize> = counts(&mut watcher);
    assert!(unchanged.is_empty(), "{unchanged:?}");
    drop(blip);
}

#[test]
fn one_client_adds_at_most_its_share_to_a_presence_whatever_its_keys() {
    let registry = Registry::new(Limits {
        presence_per_client: 2,
        ..Limits::default()
    });
    let from = |client: [u8; 4], tab: &str| {
        let options = ConnectOptions {
            client: Some(IpAddr::from(client)),
            ..ConnectOptions::default()
        };
        registry
            .connect_with(key(&format!("page/home/{tab}")), options)
            .unwrap()
            .0
    };
    let (one, two) = ([192, 0, 2, 1], [192, 0, 2, 2]);
    // Counted from before: the bound holds for keys that were there first too.
    let mut early: Vec<Connection> = (0..3).map(|n| from(one, &format!("early{n}"))).collect();
    assert_eq!(registry.presence(&HERE), 2, "three keys, one client");

    let flood: Vec<Connection> = (0..50).map(|n| from(one, &format!("flood{n}"))).collect();
    let other = from(two, "other");
    assert_eq!(
        registry.presence(&HERE),
        3,
        "53 keys of one client, one of another"
    );

    drop(flood);
    early.truncate(1);
    assert_eq!(
        registry.presence(&HERE),
        2,
        "one key left of the first client"
    );

    // The other client's key taken over by the first: the first is at its bound already.
    let taken = from(one, "other");
    assert_eq!(registry.presence(&HERE), 2);
    drop(other); // the replaced connection: changes nothing
    assert_eq!(registry.presence(&HERE), 2);
    drop(taken);
    assert_eq!(registry.presence(&HERE), 1);
    drop(early);
    assert_eq!(registry.presence(&HERE), 0);
}

/// One gzipped stream as `sse.rs` writes it: its frames through its encoder, and what a plain
/// stream would have carried.
struct Gzipped {
    key: String,
    connection: Connection,
    encoder: crate::gzip::Encoder<Frame>,
    plain: Vec<u8>,
    /// Its pieces on the wire: the gzip header, each write, the trailer once ended.
    wire: Vec<Vec<u8>>,
    ended: bool,
}

impl Gzipped {
    fn open(registry: &Registry, key: String) -> Gzipped {
        registry.presence(&HERE);
        let topics = ["greeting", &HERE.topic()];
        let options = ConnectOptions {
            topics: &topics,
            ..ConnectOptions::default()
        };
        let (connection, replaced) = registry.connect_with(self::key(&key), options).unwrap();
        if let Some(replaced) = replaced {
            replaced.farewell(frame(999_999)); // as a duplicated tab's is sent a new session
        }
        Gzipped {
            key,
            connection,
            encoder: crate::gzip::Encoder::new(),
            plain: Vec::new(),
            wire: vec![crate::gzip::HEADER.to_vec()],
            ended: false,
        }
    }

    /// Writes what is queued now, and the trailer if the registry ended the stream.
    fn write(&mut self) {
        while !self.ended {
            match poll_now(&mut self.connection) {
                Some(Some(frame)) => {
                    if !frame.is_keep_alive() {
                        self.plain.extend_from_slice(frame.as_bytes());
                    }
                    self.wire.push(self.encoder.write(&frame).to_vec());
                }
                Some(None) => {
                    let encoder = std::mem::replace(&mut self.encoder, crate::gzip::Encoder::new());
                    self.wire.push(encoder.finish().to_vec());
                    self.ended = true;
                }
                None => return,
            }
        }
    }

    /// Decodes the bytes as a client does: as they arrived, and whole (CRC-32 and length
    /// checked) once the server ended the stream.
    fn check(&self, seed: u64) {
        let context = format!("seed {seed}, {}", self.key);
        crate::gzip::tests::assert_decodes(&self.plain, &self.wire, self.ended, &context);
    }
}

/// Gzipped streams decode byte-exact whatever the registry hands them, in whatever order:
/// latest-state versions skipped by streams that fall behind (or relayed, older ones refused),
/// ordinary broadcasts and sends, relayed broadcasts, presence counts, keep-alives, a
/// duplicated tab's replacement (and the farewell to the old one), clients that leave, and
/// the restart event at shutdown.
#[test]
fn gzipped_streams_decode_to_their_frames_under_every_interleaving() {
    for seed in 1..=40u64 {
        let mut random = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut below = move |n: usize| {
            random ^= random >> 12;
            random ^= random << 25;
            random ^= random >> 27;
            (random.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
        };
        let registry = Registry::default();
        let home = pattern("page/home/*");
        let mut tabs: Vec<Gzipped> = (0..6)
            .map(|n| Gzipped::open(&registry, format!("page/home/{n}")))
            .collect();
        let mut gone = Vec::new();
        let mut version = 0;
        let rows = |changed: usize, n: usize| {
            let rows: String = (0..150)
                .map(|row| {
                    format!(
                        "<li id=\"r{row}\">{}</li>",
                        if row == changed { n } else { row }
                    )
                })
                .collect();
            Frame::from(PatchElements::new(format!("<ul id=\"rows\">{rows}</ul>")))
        };
        for step in 0..80 {
            match below(10) {
                0 => {
                    registry.broadcast(&home, &frame(step));
                }
                1 => {
                    registry.broadcast(&home, &rows(below(150), step as usize));
                }
                2 => {
                    let tab = below(tabs.len().max(1));
                    registry.send(&key(&format!("page/home/{tab}")), frame(step));
                }
                3 => {
                    // A new version, some skipped over; now and then an old one relayed late.
                    version = if below(5) == 0 {
                        version.max(2) - 1
                    } else {
                        version + 1 + below(3) as u64
                    };
                    let update = if below(2) == 0 {
                        frame(step)
                    } else {
                        rows(below(150), step as usize)
                    };
                    registry.deliver(&latest(&home, "greeting", version, update));
                }
                4 => drop(registry.deliver(&Outgoing {
                    pattern: home.clone(),
                    except: Vec::new(),
                    frame: frame(step),
                    latest: None,
                })),
                5 => {
                    registry.keep_alive();
                }
                6 if tabs.len() < 9 => {
                    // A new tab, or a duplicate of one open (which replaces it).
                    let n = if below(2) == 0 {
                        10 + step as usize
                    } else {
                        below(6)
                    };
                    tabs.push(Gzipped::open(&registry, format!("page/home/{n}")));
                }
                7 if tabs.len() > 2 => gone.push(tabs.swap_remove(below(tabs.len()))),
                _ => {
                    for _ in 0..below(tabs.len()) {
                        let at = below(tabs.len());
                        tabs[at].write();
                    }
                }
            }
        }
        registry.shut_down(&frame(1_000_000));
        for tab in &mut tabs {
            tab.write();
            assert!(
                tab.ended,
                "seed {seed}: {} still open after shutdown",
                tab.key
            );
        }
        for tab in tabs.iter().chain(&gone) {
            tab.check(seed);
        }
    }
}
