use serde_json::json;

use crate::helpers::{signals, spawn_app};

#[tokio::test]
async fn shutdown_ends_open_streams_and_returns() {
    // Arrange
    let mut app = spawn_app().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.open_live_home_stream().await);
    }

    // Act: `shut_down` fails the test if the server has not returned within its patience.
    app.shut_down().await.expect("a clean shutdown");

    // Assert: each stream's last event tells the page a restart is under way (so it does not
    // show "offline" while it reconnects), then the stream ends.
    for stream in &mut streams {
        let last = stream.next_event().await;
        assert_eq!(last.event, "datastar-patch-signals");
        assert_eq!(signals(&last), json!({ "_reconnecting": true }));
        assert_eq!(last.retry, Some(live::events::RECONNECT_AFTER_RESTART));
        stream.expect_end().await;
    }
    assert!(app.state.live.registry.is_empty());
}
