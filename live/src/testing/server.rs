//! The app served for real, by the kit's server, for a test to talk to over TCP.

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::oneshot;

use super::SseClient;
use crate::{Live, Server, Settings};

/// The app served by the same server `main` runs, on 127.0.0.1 and a free port, until dropped.
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
    live: Live,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// Serves `router` (the app whose kit state is `live`) under `settings`, on a free port of
    /// 127.0.0.1. Debug builds leave the dev loop's file watcher off.
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
        let addr = server.local_addr().expect("a bound address");
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(server.run(router, async {
            let _ = stop.await;
        }));
        TestServer {
            addr,
            live,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The app's kit state (its registry, its views).
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// An HTTP client for it.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Opens the stream at `path` as a page's `live_stream` does, for a new tab ([`open_tab`]).
    pub async fn open_tab(&self, path: &str) -> SseClient {
        super::open_tab(&self.client, &self.url(path)).await
    }

    /// Posts `form` (form-urlencoded) to `path` as Datastar's `@post(…, {contentType: 'form'})`
    /// does.
    pub async fn post_with_datastar(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        super::post_with_datastar(&self.client, &self.url(path), form).await
    }

    /// Posts `form` to `path` as a browser without JavaScript does.
    pub async fn post_with_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        super::post_with_form(&self.client, &self.url(path), form).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
