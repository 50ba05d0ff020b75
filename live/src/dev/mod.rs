//! The dev loop, compiled into debug builds only: edit a template or a stylesheet and every
//! open tab updates, without a rebuild.
//!
//! - Templates and static files are read from disk on every request ([`crate::views`],
//!   [`crate::assets`]).
//! - A [`watcher`] on `templates/` and `static/` pushes, through the ordinary connection
//!   registry, a stylesheet swap (CSS changed: the `<link>` elements are patched to their new
//!   versioned URLs, so the page keeps its state) or a reload (anything else changed) to every
//!   stream: [`ALL_PAGES`] matches every `page/<name>/<tab>` key.
//! - Every tab holds exactly one stream. Pages with a stream of their own carry the dev events on
//!   it (a [`crate::Stream`] adds them); the layout gives every other page a dev-only stream
//!   ([`stream`]). The app's handlers never call into the dev loop.
//! - Each server process has an instance id. Pages are rendered with it, and every stream's
//!   first event says which instance is serving: when the Rust code changed and the server
//!   restarted (under `cargo watch` or `bacon`), tabs reconnect, see a new instance and reload.
//! - A template that fails to render shows as an error page with the file, the line and what is
//!   wrong ([`error_pages`]); it reloads by itself when the template is fixed.

mod error_page;
pub mod watcher;

use std::{
    path::PathBuf,
    sync::LazyLock,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{FromRef, Query, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use datastar::prelude::{PatchElements, PatchSignals};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

pub use self::watcher::watch;
use crate::{
    Live, Site,
    error::RenderFailure,
    registry::{Key, Pattern},
    sse::{EventStream, Frame},
    stream::refused,
    views::Views,
};

/// Every page stream: keys are `page/<page>/<tab>`.
pub static ALL_PAGES: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("page/*/*").expect("a valid pattern"));

/// Where the dev loop looks for files, and whether it watches them.
#[derive(Debug, Clone, PartialEq)]
pub struct DevSettings {
    /// Templates are read from here on every render. Default: the app's `templates/`.
    pub templates_dir: Option<PathBuf>,
    /// Static files are read from here on every request. Default: the app's `static/`.
    pub static_dir: Option<PathBuf>,
    /// Whether to watch both folders and push changes to open tabs. Default: yes.
    pub watch: bool,
}

impl Default for DevSettings {
    fn default() -> Self {
        DevSettings {
            templates_dir: None,
            static_dir: None,
            watch: true,
        }
    }
}

impl DevSettings {
    /// `site`, reading its files from the folders these settings name, if they name any.
    pub fn apply(&self, mut site: Site) -> Site {
        if let Some(dir) = &self.templates_dir {
            site.templates = site.templates.read_from(dir);
        }
        if let Some(dir) = &self.static_dir {
            site.static_files = site.static_files.read_from(dir);
        }
        site
    }
}

/// The dev-only routes.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Live: FromRef<S>,
{
    Router::new().route("/sse/dev", get(stream))
}

/// Which tab a dev-only stream belongs to.
#[derive(Debug, Deserialize)]
pub struct DevTab {
    /// Rendered into the page by the layout.
    pub tab: Uuid,
}

/// `GET /sse/dev?tab=<uuid>`: the stream of a page that has none of its own, stored under
/// `page/dev/<tab>` so that [`ALL_PAGES`] reaches it. It carries nothing but dev events.
pub async fn stream(State(live): State<Live>, Query(DevTab { tab }): Query<DevTab>) -> Response {
    let key = Key::tab("dev", tab).expect("a UUID is one segment");
    match live.registry.connect(key) {
        Ok((connection, _replaced)) => EventStream::new(connection, [hello(&live)]).into_response(),
        Err(refusal) => refused(&live.views, refusal).into_response(),
    }
}

/// The first event of every stream in a debug build: which server instance is serving. A page
/// rendered by another instance reloads itself.
pub fn hello(live: &Live) -> Frame {
    PatchSignals::new(json!({ "_devServer": live.instance() }).to_string()).into()
}

/// Makes every page that receives it reload.
pub fn reload() -> Frame {
    // A new value each time: only a changed signal counts as patched.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    PatchSignals::new(json!({ "_devReload": now.to_string() }).to_string()).into()
}

/// Patches the layout's `<link rel="stylesheet">` elements to their current versioned URLs:
/// the browser loads the new stylesheet and swaps it in, and the page keeps its state.
pub fn stylesheets(views: &Views) -> Result<Frame, minijinja::Error> {
    let html = views.render("partials/stylesheets.html", context! {})?;
    Ok(PatchElements::new(html).into())
}

/// Middleware: turns a failed template render into a page that says what is wrong (the file,
/// the line, the message, the source around it) instead of a bare 500. The page carries a dev
/// stream, so it reloads by itself once the template is fixed.
pub async fn error_pages(State(live): State<Live>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    match response.extensions().get::<RenderFailure>() {
        Some(RenderFailure(details)) => error_page::render(&live, details),
        None => response,
    }
}
