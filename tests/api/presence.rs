//! Presence on the home page: "N people here", right as tabs come and go by the thousand.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use live::testing::{PATIENCE, SseClient};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_with};

/// The presence the home page shows.
const HERE: &str = "here";

/// Room for the storm: every tab comes from 127.0.0.1, and each counts.
async fn roomy_app() -> TestApp {
    live::serve::raise_open_files_limit();
    spawn_app_with(|settings| {
        settings.max_streams_per_client = 10_000;
        settings.max_connections_per_client = 10_000;
        settings.presence_per_client = 10_000;
    })
    .await
}

/// Reads every tab until each shows `count`, at once; returns how long the last took.
async fn converge(tabs: &mut [SseClient], count: u64) -> Duration {
    let started = Instant::now();
    join_all(
        tabs.iter_mut()
            .map(|tab| tab.until_presence(HERE, count, 3 * PATIENCE)),
    )
    .await;
    started.elapsed()
}

#[tokio::test]
async fn two_thousand_tabs_opened_at_once_all_show_two_thousand_then_one_thousand() {
    // Arrange
    let app = roomy_app().await;

    // Act: 2 000 home streams at once.
    let opened = Instant::now();
    let mut tabs: Vec<SseClient> =
        join_all((0..2_000).map(|_| app.open_home_stream(Uuid::new_v4()))).await;
    join_all(tabs.iter_mut().map(SseClient::read_initial_events)).await;
    let connected = opened.elapsed();
    let all = converge(&mut tabs, 2_000).await;

    // Half of them close.
    tabs.truncate(1_000);
    let half = converge(&mut tabs, 1_000).await;

    // Assert (the waits above fail the test if a tab never gets there); the page agrees.
    let home = app.get("/").await.text().await.unwrap();
    assert!(
        home.contains("1001 people here"),
        "1 000 tabs, and this page"
    );
    let frames: usize = tabs.iter().map(SseClient::events_read).sum();
    println!(
        "presence: 2 000 streams live in {connected:?}; every tab on 2 000 {all:?} later; \
         1 000 closed, the rest on 1 000 within {half:?}; {:.1} events read per tab in all",
        frames as f64 / tabs.len() as f64
    );
    drop(tabs);
    drop(app);
}

#[tokio::test]
async fn a_duplicated_tab_is_counted_once() {
    // Arrange: two tabs.
    let app = roomy_app().await;
    let session = Uuid::new_v4();
    let mut first = app.open_home_stream(session).await;
    let mut other = app.open_live_home_stream().await;
    other.until_presence(HERE, 2, PATIENCE).await;
    first.read_initial_events().await;

    // Act: the first tab duplicated (its session id comes along).
    let mut duplicate = app.open_home_stream(session).await;
    duplicate.read_initial_events().await;

    // Assert: still two, on every stream that is open; and the page says so.
    duplicate.until_presence(HERE, 2, PATIENCE).await;
    assert_eq!(other.presence(HERE), Some(2));
    assert!(
        other
            .try_next_event(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing changed for the other tab"
    );
    assert_eq!(other.presence(HERE), Some(2));
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("3 people here"), "two tabs, and this page");

    // The replaced stream ends; the one that replaced it leaving counts.
    drop(duplicate);
    other.until_presence(HERE, 1, PATIENCE).await;
    drop(first);
    drop(app);
}
