//! The app served for real, by the kit's server, for a test to talk to over TCP: the one
//! harness under the app's tests, the kit's tests and the guides' recipes (each adds helpers
//! named for its own routes on top).

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use axum::Router;
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

use super::{sse_client::SseClient, waits::PATIENCE};
use crate::{registry::Pattern, serve::Server, settings::Settings, state::Live, tls::Tls};

/// The app served by the same server `main` runs, on 127.0.0.1 and a free port, until dropped
/// (or [`shut_down`](Self::shut_down)).
///
/// ```no_run
/// # async fn example(live: live::Live, router: axum::Router) {
/// use live::{Settings, testing::TestServer};
///
/// let server = TestServer::start(Settings::default(), live, router).await;
/// let mut tab = server.open_tab("/sse/home").await;
/// tab.read_initial_events().await;
/// # }
/// ```
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    scheme: &'static str,
    metrics_addr: Option<SocketAddr>,
    tls: Option<Tls>,
    live: Live,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Serves `router` (the app whose kit state is `live`) under `settings`, on a free port of
    /// 127.0.0.1. The dev loop's file watcher stays off.
    pub async fn start(settings: Settings, live: Live, router: Router) -> TestServer {
        let mut settings = Settings {
            host: [127, 0, 0, 1].into(),
            port: 0,
            ..settings
        };
        settings.dev.watch = false;
        let server = Server::bind(&settings, live.clone())
            .await
            .expect("the test server binds");
        TestServer::serve(server, live, router)
    }

    /// Serves `router` on `server`, bound by the caller (on a socket it keeps, say, as a
    /// service manager would, through [`Server::from_listener`]).
    pub fn serve(server: Server, live: Live, router: Router) -> TestServer {
        let addr = server.local_addr().expect("a bound address");
        let scheme = server.scheme();
        let metrics_addr = server.metrics_addr();
        let tls = server.tls().cloned();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(router, async {
            let _ = stop.await;
        }));
        TestServer {
            addr,
            scheme,
            metrics_addr,
            tls,
            live,
            client: client(),
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http`, or `https` when the settings gave a certificate.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// `<scheme>://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Where Prometheus scrapes `/metrics`, when the settings gave `METRICS_ADDR`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The certificate in use, with HTTPS (to reload it as `SIGHUP` does).
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// The app's kit state (its registry, its views).
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The HTTP client every helper here uses ([`client_settings`]).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Uses `client` from now on: one that trusts a test's certificate authority, say.
    pub fn set_client(&mut self, client: reqwest::Client) {
        self.client = client;
    }

    /// `GET path`, whatever it answers.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the server answers")
    }

    /// `GET path`, which must answer 200, and its body.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("a body")
    }

    /// `GET path` as Datastar opens a stream, with `signals` (JSON) if given; whatever it
    /// answers.
    pub async fn stream_request(&self, path: &str, signals: Option<&str>) -> reqwest::Response {
        super::requests::stream_request(&self.client, &self.url(path), signals).await
    }

    /// Opens the stream at `path` for tab `session_id`, as a page does.
    pub async fn open_stream(&self, path: &str, session_id: Uuid) -> SseClient {
        super::requests::open_stream(&self.client, &self.url(path), session_id).await
    }

    /// Opens the stream at `path` as a page's `live_stream` does, for a new tab
    /// ([`open_tab`](super::open_tab)).
    pub async fn open_tab(&self, path: &str) -> SseClient {
        super::requests::open_tab(&self.client, &self.url(path)).await
    }

    /// Opens the stream at `path` for a new tab and reads its initial events
    /// ([`SseClient::read_initial_events`]): what follows is what the test caused.
    pub async fn open_live_tab(&self, path: &str) -> SseClient {
        let mut tab = self.open_tab(path).await;
        tab.read_initial_events().await;
        tab
    }

    /// Posts `form` (form-urlencoded) to `path` as Datastar's `@post(…, {contentType: 'form'})`
    /// does.
    pub async fn post_with_datastar(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        super::requests::post_with_datastar(&self.client, &self.url(path), form).await
    }

    /// Posts `form` to `path` as a browser without JavaScript does.
    pub async fn post_with_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        super::requests::post_with_form(&self.client, &self.url(path), form).await
    }

    /// How many streams the registry holds under `pattern`.
    pub fn streams(&self, pattern: &str) -> usize {
        let pattern = Pattern::new(pattern).expect("a valid pattern");
        self.live.registry.count(&pattern)
    }

    /// Waits until the registry holds `expected` streams under `pattern`.
    pub async fn wait_for_streams(&self, pattern: &str, expected: usize) {
        super::waits::wait_for_streams(&self.live.registry, pattern, expected).await;
    }

    /// Shuts the server down as SIGTERM does, and waits (at most [`PATIENCE`]) for it to
    /// return.
    pub async fn shut_down(&mut self) -> std::io::Result<()> {
        let _ = self.shutdown.take().expect("not yet shut down").send(());
        let task = self.task.take().expect("still serving");
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the server stops promptly")
            .expect("the server task does not panic")
    }
}

/// Dropped: the server stops at once (a test's runtime ends with it anyway).
impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What every test's HTTP client is set to, [`TestServer::client`] and any a test builds (one
/// from a certain address, one that trusts a test authority): it follows no redirect (tests
/// look at them) and gives up on a request after a minute (a hang fails the test instead of
/// stalling the suite; no test holds a request, streams included, that long).
pub fn client_settings(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
}

/// What [`TestServer::client`] is: built once, shared (reqwest clients are handles).
fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            client_settings(reqwest::Client::builder())
                .build()
                .expect("an HTTP client")
        })
        .clone()
}
