//! The machinery of a live, server-rendered app: axum, minijinja and Datastar, built on the
//! *persistent connection pattern*.
//!
//! A page opens one SSE stream when it loads; the server keeps it in a [`Registry`] under a key
//! (`page/home/<tab>`); every later action pushes its effects to the streams it targets
//! (`page/home/*`), so every open tab updates live. Without JavaScript the same forms work as
//! plain HTML posts. The app built on this kit holds its pages, streams, actions and domain;
//! everything else is here, and the kit never knows the app.
//!
//! # A live page
//!
//! A counter every open tab shows live: the page, its stream, and an action that pushes the
//! new count to every tab (the whole app; `templates/counter.html` puts `{{ live_stream(
//! "/sse/counter") }}` and `<span id="clicks">{{ clicks }}</span>` in a form posting to
//! `/api/click` with `data-on:submit="{{ live_submit("/api/click") }}"`):
//!
//! ```no_run
//! use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
//! use axum::{Router, extract::State, response::{Html, Response}, routing::{get, post}};
//! use datastar::prelude::PatchElements;
//! use live::{Caller, Error, Live, Page, Server, Settings, Signals, Site, Stream, Tab};
//! # use live::Files;
//!
//! static CLICKS: AtomicU64 = AtomicU64::new(0);
//! const COUNTER: Page = Page::new("counter"); // the page's name, given once
//!
//! async fn page(State(live): State<Live>) -> Result<Html<String>, Error> {
//!     let clicks = CLICKS.load(Relaxed);
//!     Ok(Html(live.views.render("counter.html", minijinja::context! { clicks })?))
//! }
//! async fn stream(stream: Stream, Signals(tab): Signals<Tab>) -> Result<Response, Error> {
//!     stream.open_tab(COUNTER, tab.session_id) // stored under page/counter/<tab>
//! }
//! async fn click(State(live): State<Live>, caller: Caller) -> Result<Response, Error> {
//!     let clicks = CLICKS.fetch_add(1, Relaxed) + 1;
//!     let count = PatchElements::new(format!(r#"<span id="clicks">{clicks}</span>"#));
//!     live.registry.broadcast(&COUNTER.tabs(), &count.into()); // every tab, encoded once
//!     caller.done(|| Ok::<_, Error>(vec![]), "/") // a plain form post: back to the page
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let settings = Settings::load()?;
//!     let live = Live::new(&settings, site()); // the app's templates and static files
//!     let actions = Router::new().route("/api/click", post(click));
//!     let router = Router::new().route("/", get(page)).route("/sse/counter", get(stream))
//!         .merge(live::actions(actions, &live)).merge(live::routes());
//!     let app = live::layers(router, &live).with_state(live.clone());
//!     Server::bind(&settings, live).await?.serve(app).await
//! }
//! # #[derive(rust_embed::RustEmbed)]
//! # #[folder = "templates/"]
//! # struct Embedded;
//! # fn site() -> Site {
//! #     let files = || Files::new::<Embedded>(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"));
//! #     Site { name: "counter", templates: files(), static_files: files() }
//! # }
//! ```
//!
//! # Map of the crate
//!
//! - [`Live`]: what every handler of the kit (and the app's streams and actions) reaches — the
//!   registry, the views — made from [`Settings`] and the app's [`Site`].
//! - [`registry`]: the connections — keys, patterns, broadcast, latest-state topics, cleanup —
//!   and the [`registry::Relay`] hook other instances are reached through.
//! - [`Stream`]: the one call a stream handler makes.
//! - [`Frame`]: one encoded event, shared by every stream it goes to; [`Signals`]: Datastar
//!   signals read from a request; [`Caller`]: who posted, and so how to answer;
//!   [`events`]: the events every live page understands.
//! - [`serve`]: the listener, the watched sockets, limits, graceful shutdown; [`tls`] (feature
//!   `tls`; without it, a `Tls` that cannot exist): HTTPS with HTTP/2, certificates re-read on
//!   `SIGHUP`; [`settings`]: the environment; [`logging`]; [`metrics`]: Prometheus metrics on
//!   an address of their own (`METRICS_ADDR`).
//! - [`views`] and [`assets`]: templates and static files, from disk while developing and
//!   embedded in release builds; [`rate_limit`]: how many actions one client may send.
//! - [`routes`], [`actions`] and [`layers`]: what the app's router takes from the kit.
//! - [`dev`]: the dev loop, on in debug builds (release builds have the same API, with the loop
//!   never started). `redis` (feature `redis`): the relay over Redis.
//! - `testing` (feature `testing`, for tests): an SSE client and Datastar event readers.

#![deny(missing_docs, unreachable_pub)]

pub mod assets;
mod caller;
pub mod client_addr;
pub mod dev;
mod error;
pub mod events;
mod files;
mod frame;
mod gzip;
mod health;
pub mod logging;
mod markup;
pub mod metrics;
pub mod rate_limit;
mod redact;
#[cfg(feature = "redis")]
pub mod redis;
mod refusals;
pub mod registry;
pub mod script;
mod security;
pub mod serve;
pub mod settings;
mod signals;
mod sse;
mod state;
mod static_files;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
// Without the feature `tls`: a `Tls` that cannot exist, so that serving reads the same in every
// build.
#[cfg(not(feature = "tls"))]
#[path = "tls/off.rs"]
pub mod tls;
pub mod views;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef},
    http::StatusCode,
    routing::get,
};
use tower_http::{
    compression::CompressionLayer,
    csrf::CsrfLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

pub use crate::{
    assets::Files,
    caller::Caller,
    error::Error,
    frame::Frame,
    registry::{Key, Page, Pattern, Presence, Registry, Topic},
    serve::Server,
    settings::Settings,
    signals::{Signals, Tab},
    state::{Live, Site},
    stream::Stream,
};

/// The largest request body an action accepts. A form is a few dozen bytes; 4 KiB leaves room
/// for longer forms while refusing anything that is not one.
pub const ACTION_BODY_LIMIT: usize = 4 * 1024;

/// The kit's own routes: `GET /static/*` (the app's static files), `GET /healthz`, and in debug
/// builds the dev loop's stream for pages that have none of their own.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Live: FromRef<S>,
{
    let routes = Router::new()
        .route("/static/{*path}", get(static_files::asset))
        .route("/healthz", get(health::healthz));
    if cfg!(debug_assertions) {
        routes.merge(dev::routes())
    } else {
        routes
    }
}

/// Wraps the app's actions: a body limit, a timeout, CSRF protection (a cross-site post gets
/// `403`), a rate limit per client ([`rate_limit`]: `429`), and every refusal shown to whoever
/// caused it (a notice in the page for Datastar, the refusal page for a plain post).
pub fn actions<S>(actions: Router<S>, live: &Live) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let actions = actions
        .layer(DefaultBodyLimit::max(ACTION_BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            live.action_timeout(),
        ))
        // Sec-Fetch-Site and Origin checks, no tokens. Behind a proxy, forward `Host` and
        // `Origin` unchanged, or same-origin posts may look cross-site.
        .layer(CsrfLayer::new());
    // Outside the rest, so that a flood is refused before any of it runs (cross-site and
    // oversized posts cost their sender tokens too); inside `visible`, which shows the `429`.
    let actions = match live.rate_limit() {
        Some(limit) => actions.layer(axum::middleware::from_fn_with_state(
            Arc::clone(limit),
            rate_limit::limit,
        )),
        None => actions,
    };
    actions.layer(axum::middleware::from_fn_with_state(
        live.clone(),
        refusals::visible,
    ))
}

/// What every response gets, outermost: one log line per request, gzip for pages and assets
/// (never for streams: tower-http's default predicate leaves `text/event-stream` alone), the
/// security headers (a Content-Security-Policy that allows the Datastar script and no inline
/// script, `nosniff`, no framing, same-origin referrers and opener), and in debug builds the
/// dev loop's error pages.
pub fn layers<S>(router: Router<S>, live: &Live) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = if cfg!(debug_assertions) {
        router.layer(axum::middleware::from_fn_with_state(
            live.clone(),
            dev::error_pages,
        ))
    } else {
        router
    };
    for header in security::headers(&live.views.datastar().url) {
        router = router.layer(header);
    }
    // Only with METRICS_ADDR: otherwise requests pay nothing for metrics.
    if let Some(metrics) = live.metrics() {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::clone(metrics),
            metrics::track,
        ));
    }
    router.layer(CompressionLayer::new()).layer(
        // Outermost: one line per request at INFO with method, path, status, latency — and
        // never a tab's signals (`logging::RequestSpan`).
        TraceLayer::new_for_http()
            .make_span_with(logging::RequestSpan)
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}
