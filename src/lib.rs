//! A real-time, server-rendered web app: axum, minijinja and Datastar, built on the
//! *persistent connection pattern*.
//!
//! A page opens one SSE stream when it loads; the server keeps it in a [`connections::Registry`]
//! under a key (`page/home/<session-id>`); every later action pushes its effects to the streams
//! it targets (`page/home/*`), so every open tab updates live. Without JavaScript the same forms
//! work as plain HTML posts.
//!
//! Map of the crate:
//!
//! - [`server`]: binds the listener, serves the [`router`] until a shutdown signal.
//! - [`config`]: settings from environment variables.
//! - [`connections`]: the registry of open streams — keys, patterns, broadcast, cleanup.
//! - [`sse`]: encoded events and the stream/reply responses that carry them.
//! - [`signals`]: Datastar signals read from a request, with clear errors.
//! - [`routes`]: [`routes::pages`], [`routes::streams`] and [`routes::actions`], kept apart.
//! - [`views`] and [`patches`]: templates, and the Datastar events built from them.
//! - [`assets`] and [`security`]: static files with versioned URLs; security headers.
//! - `dev` (debug builds only): the dev loop — file watcher, live reload, error pages.
//! - [`greeting`]: the example domain.
//! - `redis` (feature `redis`): the registry's relay to other instances, over Redis.

#![deny(missing_docs, unreachable_pub)]

pub mod assets;
pub mod config;
pub mod connections;
#[cfg(debug_assertions)]
pub mod dev;
pub mod error;
pub mod greeting;
pub mod logging;
pub mod patches;
#[cfg(feature = "redis")]
pub mod redis;
pub mod refusals;
pub mod routes;
pub mod security;
pub mod server;
pub mod signals;
pub mod sse;
pub mod state;
pub mod views;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    routing::{get, post},
};
use tower_http::{
    compression::CompressionLayer,
    csrf::CsrfLayer,
    timeout::TimeoutLayer,
    trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    routes::{actions, health, pages, static_files, streams},
    state::AppState,
};

/// The largest request body an action accepts. A greet form is a few dozen bytes; 4 KiB leaves
/// room for longer forms while refusing anything that is not a form with `413`.
pub const ACTION_BODY_LIMIT: usize = 4 * 1024;

/// Every route of the app.
///
/// Actions get a body limit, a timeout and CSRF protection (a cross-site post gets `403`), and
/// every refusal of theirs is shown to whoever caused it ([`refusals`]). Streams get neither a
/// timeout (they are meant to stay open) nor compression (tower-http's default predicate never
/// compresses `text/event-stream`, which would buffer events). Pages and assets are gzipped
/// when the client accepts it, and every response carries the [`security`] headers.
pub fn router(state: AppState, config: &config::Config) -> Router {
    let actions = Router::new()
        .route("/api/greet", post(actions::greet))
        .layer(DefaultBodyLimit::max(ACTION_BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.action_timeout,
        ))
        // Sec-Fetch-Site and Origin checks, no tokens. Behind a proxy, forward `Host` and
        // `Origin` unchanged, or same-origin posts may look cross-site.
        .layer(CsrfLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refusals::visible,
        ));

    let mut router = Router::new()
        .route("/", get(pages::home))
        .route("/about", get(pages::about))
        .route("/sse/home", get(streams::home))
        .route("/static/{*path}", get(static_files::asset))
        .route("/healthz", get(health::healthz))
        .merge(actions);
    #[cfg(debug_assertions)]
    {
        router = router
            .merge(dev::routes())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                dev::error_pages,
            ));
    }
    for header in security::headers(&config.datastar_url) {
        router = router.layer(header);
    }
    router
        .layer(CompressionLayer::new())
        .layer(
            // Outermost: one line per request at INFO with method, path, status, latency.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}
