//! The dev loop, on in debug builds: edit a template or a stylesheet and every open tab
//! updates, without a rebuild.
//!
//! Release builds compile this module too, so that the kit's API is the same in `cargo test`
//! and `cargo test --release`, but nothing turns the loop on there: no dev routes or error
//! pages ([`crate::routes`], [`crate::layers`]), no watcher (`DevSettings::watch` is off), no
//! runner ([`runner::attached`]), templates and static files from inside the binary.
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
//!   restarted (under `cargo dev`, the kit's [`runner`], or any other watcher), tabs
//!   reconnect, see a new instance and reload. Under `cargo dev` they also show that a build is
//!   under way, or the compiler's first error while the last good build keeps serving.
//! - A template that fails to render shows as an error page with the file, the line and what is
//!   wrong ([`error_pages`]); it reloads by itself when the template is fixed.
//! - A page whose Datastar did not load (no network, a proxy, a wrong `DATASTAR_URL`, a file
//!   that failed its hash) says so on the page, naming the URL and the setting
//!   ([`datastar_check`]), instead of silently never going live.

mod error_page;
pub mod runner;
pub mod watcher;

use std::{
    sync::LazyLock,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{FromRef, Query, Request, State},
    http::header,
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
pub use crate::settings::DevSettings;
use crate::{
    error::{Error, RenderFailure},
    frame::Frame,
    registry::{Key, Pattern},
    state::Live,
    stream::Stream,
    views::Views,
};

/// Every page stream: keys are `page/<page>/<tab>`.
pub static ALL_PAGES: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("page/*/*").expect("a valid pattern"));

/// The dev-only routes.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Live: FromRef<S>,
{
    Router::new()
        .route("/sse/dev", get(stream))
        .route(crate::markup::DATASTAR_CHECK, get(datastar_check))
}

/// `GET /dev/datastar-check.js`: the script that shows a page's "Datastar has not loaded"
/// notice (`live/datastar_missing.html`) when Datastar never ran. A file of this origin, so the
/// page's Content-Security-Policy, which refuses inline scripts, allows it.
pub async fn datastar_check() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("datastar_check.js"),
    )
}

/// Which tab a dev-only stream belongs to.
#[derive(Debug, Deserialize)]
pub struct DevTab {
    /// Rendered into the page by the layout.
    pub tab: Uuid,
}

/// `GET /sse/dev?tab=<uuid>`: the stream of a page that has none of its own, stored under
/// `page/dev/<tab>` so that [`ALL_PAGES`] reaches it. It carries nothing but dev events (and
/// the first events of every stream, [`events::serving`](crate::events::serving) among them).
pub async fn stream(
    stream: Stream,
    Query(DevTab { tab }): Query<DevTab>,
) -> Result<Response, Error> {
    stream.open_key(Key::tab("dev", tab)?)
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
