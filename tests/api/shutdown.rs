use crate::helpers::spawn_app;

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

    // Assert
    for stream in &mut streams {
        stream.expect_end().await;
    }
    assert!(app.state.live.registry.is_empty());
}
