//! The scenario across instances: one address floods an instance with actions while a
//! person posts at a human pace; the action rate limit keeps the flood to its share, and each
//! of the person's posts reaches a tab on the other instance.
//!
//! The person's posts are shouts — ordinary broadcasts, every one delivered in order — not
//! notes: a tab following a latest-state topic skips to the newest note when it is behind, so
//! whether a given note was ever shown depends on the flood's timing, not on the limit.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{PATIENCE, SseClient, elements, flood_until, reply_events, spawn_app_with};
use live::rate_limit::ActionLimit;

use crate::{PREFIX, SECRET, wait_redis};

/// How many posts the person makes.
const POSTS: usize = 24;

/// The person's post `n`: what the tab must show.
fn posted(n: usize) -> String {
    format!("person {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_one_instance_is_held_to_its_rate_and_every_post_of_a_person_reaches_the_other()
{
    // Arrange: two instances on one Redis, each with 10 actions a second and 20 at once per
    // client; a tab on the second.
    const LIMIT: ActionLimit = ActionLimit {
        per_second: 10.0,
        burst: 20,
    };
    let redis = live::testing::RedisServer::start().await;
    let instance = || {
        let url = redis.url();
        spawn_app_with(move |config| {
            config.redis_url = Some(url);
            config.redis_secret = Some(SECRET.into());
            config.redis_prefix = Some(PREFIX.into());
            config.action_limit = Some(LIMIT);
        })
    };
    let (flooded, other) = (instance().await, instance().await);
    wait_redis(&flooded, true).await;
    wait_redis(&other, true).await;
    let tab = other.open_live_stream().await;
    // The tab reads every event as it comes, as a browser does, while the rest goes on; once
    // the flood is over it is told how many of the spammer's shouts to expect.
    let (spam_accepted, told) = tokio::sync::oneshot::channel();
    let reading = tokio::spawn(read_posts(tab, told));

    // Act: 127.0.0.2 posts shouts to the first instance on 16 connections at once, as fast as
    // it is answered, for as long as the person (127.0.0.1) posts 24, one every 150 ms,
    // through Datastar as a page does.
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let spam = tokio::spawn(flood_until(
        flooded.url("/shouts"),
        [127, 0, 0, 2].into(),
        16,
        Arc::clone(&stop),
        PATIENCE * 3,
    ));
    let mut refused = Vec::new();
    for n in 0..POSTS {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let reply = flooded
            .client()
            .post(flooded.url("/shouts"))
            .header("datastar-request", "true")
            .form(&[("text", posted(n))])
            .send()
            .await
            .unwrap();
        // Accepted: an empty reply. Refused: a notice.
        if let Some(notice) = reply_events(reply).await.first() {
            refused.push(elements(notice));
        }
    }
    let posting = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let spam = spam.await.unwrap();
    let _ = spam_accepted.send(spam.accepted);
    let (seen, spam_seen) = reading.await.unwrap();

    // Assert: the flood got its burst and the rate, the rest refused; the person got every
    // post accepted, and the tab on the other instance showed each, in order.
    let most = f64::from(LIMIT.burst) + LIMIT.per_second * spam.elapsed.as_secs_f64() + 1.0;
    eprintln!(
        "spammer: {} accepted, {} refused in {:?} ({:.1} accepted a second after its burst of \
         {}, against {} a second); the person: {} of {POSTS} accepted in {posting:?}, {} of \
         {POSTS} shown on the other instance's tab (with {spam_seen} of the spammer's)",
        spam.accepted,
        spam.refused,
        spam.elapsed,
        (spam.accepted as f64 - f64::from(LIMIT.burst)) / spam.elapsed.as_secs_f64(),
        LIMIT.burst,
        LIMIT.per_second,
        POSTS - refused.len(),
        seen.len(),
    );
    assert!(spam.unexpected.is_empty(), "{:?}", spam.unexpected.first());
    assert!(
        (f64::from(LIMIT.burst)..=most).contains(&(spam.accepted as f64)),
        "{} accepted, at most {most}",
        spam.accepted
    );
    assert!(spam.refused > spam.accepted, "a flood: {spam:?}");
    assert!(refused.is_empty(), "the person was refused: {refused:?}");
    let expected: Vec<String> = (0..POSTS).map(posted).collect();
    assert_eq!(seen, expected, "each post, once, in order");
    assert_eq!(
        spam_seen, spam.accepted,
        "every accepted shout, nothing else"
    );
}

/// Reads the tab until it has shown the person's last post and as many of the spammer's
/// shouts as it is `told` were accepted (or the test's patience is out): the person's posts
/// in the order shown, and how many of the spammer's came with them.
async fn read_posts(
    mut tab: SseClient,
    mut told: tokio::sync::oneshot::Receiver<usize>,
) -> (Vec<String>, usize) {
    let last = posted(POSTS - 1);
    let deadline = Instant::now() + PATIENCE * 3;
    let (mut seen, mut spam, mut expected_spam) = (Vec::new(), 0, None);
    loop {
        if expected_spam.is_none() {
            expected_spam = told.try_recv().ok();
        }
        if seen.last() == Some(&last) && expected_spam.is_some_and(|expected| spam >= expected) {
            break;
        }
        // Short waits, so that the count the test sends is noticed.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Some(event) = tab
            .try_next_event(left.min(Duration::from_millis(200)))
            .await
        else {
            continue;
        };
        let patch = elements(&event);
        let Some(from) = patch.find("<strong>") else {
            continue;
        };
        let text = &patch[from + "<strong>".len()..];
        let text = &text[..text.find("</strong>").unwrap_or(text.len())];
        if text.starts_with("spam ") {
            spam += 1;
        } else {
            seen.push(text.to_owned());
        }
    }
    (seen, spam)
}
