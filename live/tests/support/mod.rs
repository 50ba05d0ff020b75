//! The kit's test support: the notes app (`notes.rs`) served for real on an ephemeral port, and
//! one helper per endpoint.
//!
//! Set `TEST_LOG=1` to see the server's logs while the tests run.

#![allow(dead_code)] // each test binary uses its own share of these

pub mod notes;

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{LazyLock, OnceLock},
    time::Duration,
};

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use live::{Live, Server, Settings, registry::Pattern};
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

/// Long enough for a loaded CI machine, short enough that a hang fails the test quickly.
pub const PATIENCE: Duration = Duration::from_secs(10);

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,reqwest=info")
            .with_test_writer()
            .init();
    }
});

/// Thousands of sockets need more than the usual 1 024 descriptors.
pub fn raise_open_files_limit() {
    live::serve::raise_open_files_limit();
}

/// A running notes app and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub live: Live,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the app with the default configuration on `127.0.0.1:0`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `customise` has adjusted the settings.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = Settings {
        port: 0,
        ..Settings::default()
    };
    // Tests that want the dev loop's file watcher turn it on.
    #[cfg(debug_assertions)]
    {
        settings.dev.watch = false;
    }
    customise(&mut settings);
    let live = notes::live(&settings);
    let server = Server::bind(&settings, live.clone())
        .await
        .expect("bind an ephemeral port");
    let addr = server.local_addr().unwrap();
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(server.run(notes::router(live.clone()), async {
        let _ = stop.await;
    }));
    TestApp {
        addr,
        live,
        client: client(),
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                // Tests look at redirects themselves.
                .redirect(reqwest::redirect::Policy::none())
                // A hang fails the test instead of stalling the suite; no test holds a
                // request, streams included, for this long.
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
        })
        .clone()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `GET /` and its body.
    pub async fn page(&self) -> String {
        let response = self.get("/").await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// `GET /sse/notes` with `signals` as Datastar sends them (JSON in `?datastar=`).
    pub async fn get_stream_raw(&self, signals: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .get(self.url("/sse/notes"))
            .header("datastar-request", "true")
            .header("accept", "text/event-stream");
        if let Some(signals) = signals {
            request = request.query(&[("datastar", signals)]);
        }
        request.send().await.unwrap()
    }

    /// Opens the notes stream for `session_id`, as a page would.
    pub async fn open_stream(&self, session_id: Uuid) -> SseClient {
        let signals = serde_json::json!({ "sessionId": session_id, "connected": false });
        let response = self.get_stream_raw(Some(&signals.to_string())).await;
        assert_eq!(response.status(), 200, "the stream opens");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE response"
        );
        SseClient::new(response)
    }

    /// Opens a notes stream and reads its initial events; returns the client ready for the
    /// events that follow.
    pub async fn open_live_stream(&self) -> SseClient {
        let mut stream = self.open_stream(Uuid::new_v4()).await;
        stream.read_initial_events().await;
        stream
    }

    /// `POST /notes` as Datastar's `@post('/notes', {contentType: 'form'})` sends it.
    pub async fn publish_with_datastar(&self, text: &str) -> reqwest::Response {
        self.client
            .post(self.url("/notes"))
            .header("datastar-request", "true")
            .header("accept", "text/event-stream, text/html, application/json")
            .form(&[("text", text)])
            .send()
            .await
            .unwrap()
    }

    /// `POST /notes` as a browser without JavaScript sends it.
    pub async fn publish_with_form(&self, text: &str) -> reqwest::Response {
        self.client
            .post(self.url("/notes"))
            .header("accept", "text/html")
            .form(&[("text", text)])
            .send()
            .await
            .unwrap()
    }

    /// Number of streams the registry holds under `pattern`.
    pub fn streams(&self, pattern: &str) -> usize {
        self.live.registry.count(&Pattern::new(pattern).unwrap())
    }

    /// Waits until the registry holds `expected` streams under `pattern`.
    pub async fn wait_for_streams(&self, pattern: &str, expected: usize) {
        let waited = tokio::time::timeout(PATIENCE, async {
            while self.streams(pattern) != expected {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "expected {expected} streams under {pattern}, found {}",
            self.streams(pattern)
        );
    }

    /// Triggers a graceful shutdown and waits for the server to return.
    pub async fn shut_down(&mut self) -> std::io::Result<()> {
        let _ = self.shutdown.take().expect("not yet shut down").send(());
        let server = self.server.take().unwrap();
        tokio::time::timeout(PATIENCE, server)
            .await
            .expect("the server stops promptly")
            .expect("the server task does not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// What a notes stream starts with, after `{connected: true}`.
pub struct InitialEvents {
    /// The current note (or "no note yet").
    pub note: Event,
    /// Debug builds: the dev loop's instance id.
    pub dev_server: Option<Event>,
}

/// A real SSE client reading a real response over TCP.
pub struct SseClient {
    events: Events,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|event| event.map_err(|error| error.to_string()));
        SseClient {
            events: Box::pin(events),
        }
    }

    /// The next event; fails the test if none comes in time or the stream ends.
    pub async fn next_event(&mut self) -> Event {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(error))) => panic!("SSE stream failed: {error}"),
            Ok(None) => panic!("SSE stream ended while an event was expected"),
            Err(_) => panic!("no SSE event within {PATIENCE:?}"),
        }
    }

    /// Reads what every notes stream starts with: `{connected: true}` first, then the current
    /// note and, in debug builds, the dev loop's instance id, in either order.
    pub async fn read_initial_events(&mut self) -> InitialEvents {
        let connected = self.next_event().await;
        assert_eq!(signals(&connected)["connected"], true, "{connected:?}");
        let (mut note, mut dev_server) = (None, None);
        while note.is_none() || (cfg!(debug_assertions) && dev_server.is_none()) {
            let event = self.next_event().await;
            if event.event == "datastar-patch-elements" && note.is_none() {
                note = Some(event);
            } else if signals(&event).get("_devServer").is_some() && dev_server.is_none() {
                dev_server = Some(event);
            } else {
                panic!("unexpected initial event {event:?}");
            }
        }
        InitialEvents {
            note: note.unwrap(),
            dev_server,
        }
    }

    /// Waits for the server to end the stream; fails the test on any further event.
    pub async fn expect_end(&mut self) {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(None) => {}
            Ok(Some(Ok(event))) => panic!("expected the stream to end, got {event:?}"),
            Ok(Some(Err(error))) => panic!("expected a clean end, got {error}"),
            Err(_) => panic!("the stream did not end within {PATIENCE:?}"),
        }
    }
}

/// The HTML lines of a `datastar-patch-elements` event, joined as Datastar joins them.
pub fn elements(event: &Event) -> String {
    assert_eq!(event.event, "datastar-patch-elements", "{event:?}");
    event
        .data
        .lines()
        .filter_map(|line| line.strip_prefix("elements "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON of a `datastar-patch-signals` event.
pub fn signals(event: &Event) -> serde_json::Value {
    assert_eq!(event.event, "datastar-patch-signals", "{event:?}");
    let json: String = event
        .data
        .lines()
        .filter_map(|line| line.strip_prefix("signals "))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("signals are JSON ({e}): {json}"))
}

/// The events of a short SSE reply (an action's answer to Datastar), read to the end.
pub async fn reply_events(response: reqwest::Response) -> Vec<Event> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events: Vec<_> = tokio::time::timeout(
        PATIENCE,
        response.bytes_stream().eventsource().collect::<Vec<_>>(),
    )
    .await
    .expect("a reply ends by itself");
    events.into_iter().map(|e| e.unwrap()).collect()
}
