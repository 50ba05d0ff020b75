//! The benchmark's `--addr` check (`examples/fanout/probe.rs`): it accepts the notes app, and
//! refuses anything else — nothing listening, another app, a server that never answers, a
//! notes app that turns streams away — with a message that says what to start.

mod support;

#[path = "../examples/fanout/probe.rs"]
mod probe;

use std::net::SocketAddr;

use axum::Router;
use live::{Server, Settings};
use tokio::net::TcpListener;

use support::{PATIENCE, notes, spawn_app, spawn_app_with};

/// Runs the check, bounded (it has its own, shorter, bound on each step).
async fn check(addr: SocketAddr) -> Result<(), String> {
    tokio::time::timeout(PATIENCE, probe::check(addr))
        .await
        .expect("the check answers")
}

/// The refusal of `addr`, which must name it, say what went wrong, and what to start.
async fn refusal(addr: SocketAddr, what: &str) -> String {
    let message = check(addr).await.expect_err("refused");
    assert!(message.starts_with(&format!("{addr}: ")), "{message}");
    assert!(message.contains(what), "{what:?} not in: {message}");
    assert!(message.contains("--serve-notes"), "how to start: {message}");
    message
}

#[tokio::test]
async fn the_notes_app_passes() {
    let app = spawn_app().await;
    assert_eq!(check(app.addr()).await, Ok(()));
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap(); // and closed again
    refusal(addr, "cannot connect").await;
}

#[tokio::test]
async fn another_app_is_refused_with_what_it_answered() {
    // Arrange: an app on the kit with none of the notes app's routes, as a generated app is
    // to this benchmark (it answers `/healthz`, and 404 to `/sse/notes`).
    let settings = Settings {
        port: 0,
        ..Settings::default()
    };
    let live = notes::live(&settings);
    let server = Server::bind(&settings, live.clone()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let router = live::layers(Router::new().merge(live::routes()), &live).with_state(live);
    tokio::spawn(server.serve(router));

    // Act, Assert
    refusal(addr, "GET /sse/notes answered \"HTTP/1.1 404 Not Found\"").await;
}

#[tokio::test]
async fn a_server_that_never_answers_is_refused() {
    // Arrange: connections accepted and held, never read or answered.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    // Act, Assert
    refusal(addr, "nothing more within").await;
}

#[tokio::test]
async fn a_notes_app_that_turns_streams_away_is_refused() {
    // Arrange: room for one stream, taken.
    let app = spawn_app_with(|settings| settings.max_streams = 1).await;
    let _taken = app.open_live_stream().await;

    // Act, Assert
    let message = refusal(app.addr(), "GET /sse/notes").await;
    assert!(message.contains("no first event"), "{message}");
}
