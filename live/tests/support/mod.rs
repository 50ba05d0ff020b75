//! The kit's test support: the notes app (`notes.rs`) served for real on an ephemeral port, and
//! one helper per endpoint.
//!
//! Set `TEST_LOG=1` to see the server's logs while the tests run.

#![allow(dead_code)] // each test binary uses its own share of these

#[cfg(feature = "tls")]
pub mod frames;
#[cfg(feature = "tls")]
pub mod https;
pub mod notes;

use std::{
    net::SocketAddr,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use live::{
    Server, Settings,
    testing::{TestServer, client_settings},
};

use uuid::Uuid;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,reqwest=info")
            .with_test_writer()
            .init();
    }
});

/// `GET /sse/notes` for a new tab, as raw HTTP/1.1 to write on a socket of the test's own.
pub fn raw_stream_request(addr: SocketAddr) -> String {
    let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", Uuid::new_v4());
    format!(
        "GET /sse/notes?datastar={signals} HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: text/event-stream\r\ndatastar-request: true\r\n\r\n"
    )
}

/// Thousands of sockets need more than the usual 1 024 descriptors.
pub fn raise_open_files_limit() {
    live::serve::raise_open_files_limit();
}

/// A running notes app and a client for it: the kit's [`TestServer`], and a helper per
/// endpoint of the notes app.
pub struct TestApp {
    /// With HTTPS: the test's certificate authority, and what the server serves.
    #[cfg(feature = "tls")]
    pub https: Option<https::Https>,
    server: TestServer,
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
    settings.dev.watch = false;
    customise(&mut settings);
    let live = notes::live(&settings);
    let server = Server::bind(&settings, live.clone())
        .await
        .expect("bind an ephemeral port");
    TestApp {
        #[cfg(feature = "tls")]
        https: None,
        server: TestServer::serve(server, live.clone(), notes::router(live)),
    }
}

/// Starts the app over HTTPS, with a certificate from a test authority, after `customise` has
/// adjusted the settings. Its client trusts that authority and speaks HTTP/2.
#[cfg(feature = "tls")]
pub async fn spawn_https_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let https = https::Https::new();
    let (cert, key) = https.certificate.write(&https.dir);
    let mut app = spawn_app_with(|settings| {
        settings.tls_cert = Some(cert);
        settings.tls_key = Some(key);
        customise(settings);
    })
    .await;
    app.set_client(client_settings(https.ca.client()).build().unwrap());
    app.https = Some(https);
    app
}

/// Everything the kit's [`TestServer`] offers (`url`, `get`, `streams`, `shut_down`, …); the
/// helpers below are this app's routes.
impl std::ops::Deref for TestApp {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl std::ops::DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut TestServer {
        &mut self.server
    }
}

impl TestApp {
    /// `GET /` and its body.
    pub async fn page(&self) -> String {
        self.server.page("/").await
    }

    /// `GET /sse/notes` with `signals` as Datastar sends them (JSON in `?datastar=`).
    pub async fn get_stream_raw(&self, signals: Option<&str>) -> reqwest::Response {
        self.server.stream_request("/sse/notes", signals).await
    }

    /// Opens the notes stream for `session_id`, as a page would.
    pub async fn open_stream(&self, session_id: Uuid) -> SseClient {
        self.server.open_stream("/sse/notes", session_id).await
    }

    /// Opens a notes stream and reads its initial events; returns the client ready for the
    /// events that follow.
    pub async fn open_live_stream(&self) -> SseClient {
        self.open_live_tab("/sse/notes").await
    }

    /// `POST /notes` as Datastar's `@post('/notes', {contentType: 'form'})` sends it.
    pub async fn publish_with_datastar(&self, text: &str) -> reqwest::Response {
        self.server
            .post_with_datastar("/notes", &[("text", text)])
            .await
    }

    /// `POST /notes` as a browser without JavaScript sends it.
    pub async fn publish_with_form(&self, text: &str) -> reqwest::Response {
        self.server
            .post_with_form("/notes", &[("text", text)])
            .await
    }
}

/// A client whose connections come from `from` (a loopback address other than `127.0.0.1`:
/// another client, as the server sees it).
pub fn client_from(from: std::net::IpAddr) -> reqwest::Client {
    client_settings(reqwest::Client::builder().local_address(from))
        .build()
        .unwrap()
}

/// What a flood of plain posts got ([`flood`]).
#[derive(Debug, Default)]
pub struct Flood {
    /// Answered `303`: done.
    pub accepted: usize,
    /// Answered `429` with the refusal page.
    pub refused: usize,
    /// Every `Retry-After` the refusals carried.
    pub retry_after: std::collections::BTreeSet<String>,
    /// Any other answer, or a refusal without its page or `Retry-After`.
    pub unexpected: Vec<String>,
    /// From the first post sent to the last answer read.
    pub elapsed: Duration,
}

/// Posts to `url` from `from` (a loopback address other than `127.0.0.1`: another client),
/// as a browser without JavaScript does, on `workers` connections at once, each sending its
/// next post as soon as it has the answer, until `duration` is up.
pub async fn flood(
    url: String,
    from: std::net::IpAddr,
    workers: usize,
    duration: Duration,
) -> Flood {
    let never = Arc::new(AtomicBool::new(false));
    flood_until(url, from, workers, never, duration).await
}

/// [`flood`], until `stop` is set or `duration` is up.
pub async fn flood_until(
    url: String,
    from: std::net::IpAddr,
    workers: usize,
    stop: Arc<AtomicBool>,
    duration: Duration,
) -> Flood {
    let client = client_from(from);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (client, url, stop) = (client.clone(), url.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut got = Flood::default();
                let mut n = 0;
                while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let response = client
                        .post(&url)
                        .form(&[("text", format!("spam {worker}.{n}"))])
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .map(|value| value.to_str().unwrap().to_owned());
                    let body = response.text().await.unwrap();
                    match (status.as_u16(), retry_after) {
                        (303, _) => got.accepted += 1,
                        (429, Some(retry_after)) if body.contains("sent a lot in a short time") => {
                            got.refused += 1;
                            got.retry_after.insert(retry_after);
                        }
                        (_, retry_after) => got
                            .unexpected
                            .push(format!("{status}, Retry-After {retry_after:?}: {body}")),
                    }
                }
                got
            })
        })
        .collect();
    let mut total = Flood::default();
    for task in tasks {
        let got = task.await.unwrap();
        total.accepted += got.accepted;
        total.refused += got.refused;
        total.retry_after.extend(got.retry_after);
        total.unexpected.extend(got.unexpected);
    }
    total.elapsed = started.elapsed();
    total
}

#[allow(unused_imports)] // each test binary uses its own share of these too
pub use live::testing::{PATIENCE, SseClient, elements, reply_events, signals};
