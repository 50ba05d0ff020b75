//! Lifecycle tests of the registry: storing, replacing, dropping, back-pressure.

use datastar::prelude::PatchSignals;
use futures_util::{FutureExt, StreamExt};

use super::*;

fn key(text: &str) -> Key {
    Key::new(text).unwrap()
}

fn pattern(text: &str) -> Pattern {
    Pattern::new(text).unwrap()
}

fn frame(n: u32) -> Frame {
    Frame::from(PatchSignals::new(format!("{{\"n\":{n}}}")))
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
fn a_slow_client_is_cut_off_while_the_others_keep_receiving() {
    let registry = Registry::new(2, usize::MAX);
    let (mut stalled, _) = registry.connect(key("page/home/stalled")).unwrap();
    let (mut healthy, _) = registry.connect(key("page/home/healthy")).unwrap();

    let mut delivered = Vec::new();
    for n in 0..5 {
        delivered.push(registry.broadcast(&pattern("page/home/*"), &frame(n)));
        // The healthy client reads as it goes; the stalled one never does.
        assert_eq!(poll_now(&mut healthy), Some(Some(frame(n))));
    }

    assert_eq!(
        delivered,
        [2, 2, 1, 1, 1],
        "the third broadcast overflows and evicts"
    );
    assert_eq!(
        registry.keys(&pattern("page/home/*")),
        [key("page/home/healthy")]
    );
    // The stalled stream yields what was queued before the cut, then ends.
    assert_eq!(poll_now(&mut stalled), Some(Some(frame(0))));
    assert_eq!(poll_now(&mut stalled), Some(Some(frame(1))));
    assert_eq!(poll_now(&mut stalled), Some(None));
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

    assert_eq!(registry.shut_down(), 1);
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
    let registry = Registry::new(DEFAULT_OUTBOX_CAPACITY, 2);
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
fn an_older_version_of_a_latest_topic_is_never_broadcast_after_a_newer_one() {
    let registry = Registry::default();
    let (mut tab, _) = registry.connect(key("page/home/a")).unwrap();
    let home = pattern("page/home/*");

    assert_eq!(
        registry.broadcast_latest(&home, &frame(2), "greeting", 2),
        1
    );
    assert_eq!(
        registry.broadcast_latest(&home, &frame(1), "greeting", 1),
        0,
        "version 1 lost the race to version 2: dropped"
    );
    assert_eq!(
        registry.broadcast_latest(&home, &frame(1), "other", 1),
        1,
        "topics are apart"
    );
    assert_eq!(
        registry.broadcast_latest(&home, &frame(3), "greeting", 3),
        1
    );

    let received: Vec<_> = std::iter::from_fn(|| poll_now(&mut tab).flatten()).collect();
    assert_eq!(received, [frame(2), frame(1), frame(3)]);
}
