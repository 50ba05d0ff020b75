//! A real server on an ephemeral port, and one helper per endpoint.
//!
//! Set `TEST_LOG=1` to see the server's logs while the tests run.

use std::sync::LazyLock;

use app::{AppState, router};
use live::{Server, Settings, testing::TestServer};
use uuid::Uuid;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,reqwest=info")
            .with_test_writer()
            .init();
    }
});

/// A running app and a client for it: the kit's [`TestServer`], and a helper per endpoint.
pub struct TestApp {
    pub state: AppState,
    server: TestServer,
}

/// Starts the app with the default configuration on `127.0.0.1:0`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `customise` has adjusted the settings.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(None, customise).await
}

/// Like [`spawn_app_with`], serving on `listener` if given (as a service manager passes one:
/// a test that keeps a clone of it can start a second app on the same socket).
pub async fn spawn_app_on(
    listener: Option<std::net::TcpListener>,
    customise: impl FnOnce(&mut Settings),
) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = Settings {
        port: 0,
        ..Settings::default()
    };
    // Tests that want the dev loop's file watcher turn it on.
    settings.dev.watch = false;
    customise(&mut settings);
    let state = AppState::new(&settings);
    let server = match listener {
        Some(listener) => Server::from_listener(listener, &settings, state.live.clone())
            .expect("serve on the given socket"),
        None => Server::bind(&settings, state.live.clone())
            .await
            .expect("bind an ephemeral port"),
    };
    let server = TestServer::serve(server, state.live.clone(), router(state.clone()));
    TestApp { state, server }
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
    pub async fn home_page(&self) -> String {
        self.home_page_at("/").await
    }

    /// `GET path`, which must answer 200, and its body.
    pub async fn home_page_at(&self, path: &str) -> String {
        self.server.page(path).await
    }

    /// `GET /sse/home` with `signals` as Datastar sends them (JSON in `?datastar=`).
    pub async fn get_home_stream_raw(&self, signals: Option<&str>) -> reqwest::Response {
        self.server.stream_request("/sse/home", signals).await
    }

    /// Opens the home stream for `session_id`, as a page would.
    pub async fn open_home_stream(&self, session_id: Uuid) -> SseClient {
        self.server.open_stream("/sse/home", session_id).await
    }

    /// Opens a home stream and reads its initial events; returns the client ready for the
    /// events that follow.
    pub async fn open_live_home_stream(&self) -> SseClient {
        self.open_live_tab("/sse/home").await
    }

    /// `POST /api/greet` as Datastar's `@post('/api/greet', {contentType: 'form'})` sends it.
    pub async fn greet_with_datastar(&self, name: &str) -> reqwest::Response {
        self.server
            .post_with_datastar("/api/greet", &[("name", name)])
            .await
    }

    /// `POST /api/greet` as a browser without JavaScript sends it.
    pub async fn greet_with_form(&self, name: &str) -> reqwest::Response {
        self.server
            .post_with_form("/api/greet", &[("name", name)])
            .await
    }
}

#[allow(unused_imports)] // the browser tests share this file and use less of it
pub use live::testing::{PATIENCE, SseClient, elements, reply_events, signals};

/// The `sessionId` signal rendered into a home page.
pub fn session_id_in(page: &str) -> Uuid {
    let start = page
        .find("\"sessionId\":\"")
        .expect("the page carries a sessionId signal")
        + "\"sessionId\":\"".len();
    page[start..start + 36].parse().expect("a UUID")
}

/// A private copy of `templates/` and `static/` to edit, removed when dropped.
#[cfg(debug_assertions)]
pub struct Workspace {
    root: std::path::PathBuf,
    pub settings: live::dev::DevSettings,
}

#[cfg(debug_assertions)]
impl Workspace {
    pub fn new() -> Workspace {
        let root = std::env::temp_dir().join(format!("dev-test-{}", Uuid::new_v4()));
        let settings = live::dev::DevSettings {
            templates_dir: Some(root.join("templates")),
            static_dir: Some(root.join("static")),
            watch: true,
        };
        copy_dir(std::path::Path::new("templates"), &root.join("templates"));
        copy_dir(std::path::Path::new("static"), &root.join("static"));
        Workspace { root, settings }
    }

    pub fn template(&self, name: &str) -> std::path::PathBuf {
        self.root.join("templates").join(name)
    }

    pub fn asset(&self, name: &str) -> std::path::PathBuf {
        self.root.join("static").join(name)
    }
}

#[cfg(debug_assertions)]
impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(debug_assertions)]
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Starts the app on a [`Workspace`], with its file watcher on.
#[cfg(debug_assertions)]
pub async fn spawn_dev_app(workspace: &Workspace) -> TestApp {
    let settings = workspace.settings.clone();
    spawn_app_with(move |config| config.dev = settings).await
}
