use std::time::Duration;

use futures_util::StreamExt;
use uuid::Uuid;

use crate::helpers::{PATIENCE, elements, signals, spawn_app, spawn_app_with};

#[tokio::test]
async fn bad_signals_are_refused_with_a_plain_400() {
    let app = spawn_app().await;
    let cases = [
        (None, "missing Datastar signals"),
        (Some("{not json"), "Failed to parse JSON"),
        (Some("null"), "missing Datastar signals"),
        (Some(r#"{"connected":false}"#), "missing field `sessionId`"),
        (Some(r#"{"sessionId":"not-a-uuid"}"#), "UUID parsing failed"),
        (Some(r#"{"sessionId":42}"#), "invalid type"),
        (Some(r#"["a"]"#), "invalid signals"),
    ];

    for (signals, message) in cases {
        let response = app.get_home_stream_raw(signals).await;

        assert_eq!(response.status(), 400, "{signals:?}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{signals:?}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains(message), "{signals:?}: {body}");
    }
    assert_eq!(app.streams("*/*/*"), 0, "nothing was stored");
}

#[tokio::test]
async fn a_stream_says_connected_then_sends_the_current_greeting() {
    let app = spawn_app().await;
    let session_id = Uuid::new_v4();

    let mut stream = app.open_home_stream(session_id).await;

    // `{connected: true}` comes first (the helper checks), then the greeting.
    let initial = stream.read_initial_events().await;
    assert!(elements(&initial.state).contains("Nobody has been greeted yet."));
    let key = app::home::HOME.tab(session_id);
    assert_eq!(key.as_str(), format!("page/home/{session_id}"));
    assert_eq!(
        app.state.live.registry.keys(&app::home::HOME.tabs()),
        [key],
        "stored under page/home/<sessionId>"
    );
}

#[tokio::test]
async fn a_reconnecting_tab_is_sent_the_latest_greeting_first() {
    let app = spawn_app().await;
    app.greet_with_datastar("Ada").await;
    app.greet_with_datastar("Grace").await;

    let mut stream = app.open_home_stream(Uuid::new_v4()).await;

    let state = elements(&stream.read_initial_events().await.state);
    assert!(state.contains("Hello, <strong>Grace</strong>!"), "{state}");
    assert!(state.contains("Greeting #2"), "{state}");
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_the_registry() {
    let app = spawn_app().await;
    let stream = app.open_live_home_stream().await;
    app.wait_for_streams("page/home/*", 1).await;

    drop(stream); // closes the TCP connection

    app.wait_for_streams("page/home/*", 0).await;
}

#[tokio::test]
async fn a_second_stream_with_the_same_key_ends_the_first_and_moves_it_to_a_new_id() {
    let app = spawn_app().await;
    let session_id = Uuid::new_v4();
    let mut first = app.open_home_stream(session_id).await;
    first.read_initial_events().await;

    let mut second = app.open_home_stream(session_id).await;
    second.read_initial_events().await;

    // The first tab is told to use a new id (so it does not come back and replace the second
    // one), and its stream ends.
    let farewell = signals(&first.next_event().await);
    let new_id: Uuid = farewell["sessionId"].as_str().unwrap().parse().unwrap();
    assert_ne!(new_id, session_id);
    assert_eq!(farewell["connected"], false);
    first.expect_end().await;

    // The second stream is the one stored, and it still receives broadcasts.
    app.wait_for_streams("page/home/*", 1).await;
    app.greet_with_datastar("Ada").await;
    assert!(elements(&second.next_event().await).contains("Ada"));
}

#[tokio::test]
async fn quiet_streams_send_keep_alive_comments() {
    let app = spawn_app_with(|config| config.keep_alive = Duration::from_secs(1)).await;
    let signals = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();
    let response = app.get_home_stream_raw(Some(&signals)).await;
    let mut body = response.bytes_stream();

    let mut seen = String::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("\n: keep-alive\n\n") || seen.starts_with(": keep-alive") {
                return true;
            }
        }
        false
    })
    .await;

    assert_eq!(found, Ok(true), "no keep-alive comment in {seen:?}");
}

/// A stream is gzipped for a client that accepts gzip (every browser), each event compressed
/// once for all the streams it reaches; a client that does not gets plain text. Never cached.
#[tokio::test]
async fn streams_are_gzipped_for_clients_that_accept_it_and_never_cached() {
    let app = spawn_app().await;
    for (accepts, encoding, starts) in [
        (Some("gzip, br"), Some("gzip"), &[0x1f, 0x8b][..]), // gzip's magic number
        (None, None, b"event: "),
    ] {
        let signals = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();
        let mut request =
            live::testing::stream_get(app.client(), &app.url("/sse/home"), Some(&signals));
        if let Some(accepts) = accepts {
            request = request.header("accept-encoding", accepts);
        }
        let mut response = request.send().await.unwrap();

        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(
            headers
                .get("content-encoding")
                .map(|value| value.to_str().unwrap()),
            encoding
        );
        assert_eq!(headers["cache-control"], "no-cache");
        let first = response
            .chunk()
            .await
            .unwrap()
            .expect("the stream's first bytes");
        assert!(first.starts_with(starts), "{accepts:?}: {first:?}");
    }
}

#[tokio::test]
async fn streams_beyond_the_cap_are_told_why_and_when_to_come_back() {
    let app = spawn_app_with(|config| config.max_streams = 2).await;
    let _a = app.open_live_home_stream().await;
    let _b = app.open_live_home_stream().await;
    let signals_json = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();

    let refused = app.get_home_stream_raw(Some(&signals_json)).await;

    // A 200 event stream, since Datastar applies nothing else: when to retry (its `retry:`
    // field, which Datastar honours), offline, and why — then it ends.
    let body = refused_stream(refused).await;
    let retry: u64 = body
        .lines()
        .find_map(|line| line.strip_prefix("retry: "))
        .expect("a retry field")
        .parse()
        .unwrap();
    assert!((3_000..8_000).contains(&retry), "{retry} ms");
    assert!(body.contains(r#"signals {"connected":false}"#), "{body}");
    assert!(body.contains("too many open streams"), "{body}");
    assert_eq!(app.streams("page/home/*"), 2, "nothing stored");

    drop(_a);
    app.wait_for_streams("page/home/*", 1).await;
    app.open_live_home_stream().await; // room again
}

#[tokio::test]
async fn one_client_address_cannot_take_every_stream() {
    let app = spawn_app_with(|config| config.max_streams_per_client = 2).await;
    let _a = app.open_live_home_stream().await;
    let _b = app.open_live_home_stream().await;
    let signals_json = serde_json::json!({ "sessionId": Uuid::new_v4() }).to_string();

    let refused = app.get_home_stream_raw(Some(&signals_json)).await;

    let body = refused_stream(refused).await;
    assert!(
        body.contains("too many open streams from your address"),
        "{body}"
    );
    assert_eq!(app.streams("page/home/*"), 2);
}

/// The whole body of a refused stream, which must end by itself.
async fn refused_stream(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("a refusal ends")
        .unwrap()
}
