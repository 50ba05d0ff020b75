//! `GET /`: the home page.

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse},
};
use live::Error;
use minijinja::context;

use crate::{
    AppState,
    greeting::{GREETING, MAX_NAME_CHARS},
};

/// The home page. Its stream (`live_stream` in the template) gets a fresh session id on every
/// render.
pub async fn show(State(state): State<AppState>) -> Result<impl IntoResponse, Error> {
    let html = render(&state, None, "")?;
    // Every load must get a fresh session id: never serve this page from a cache.
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)))
}

/// The home page, optionally showing a validation `error` and the `draft` the user typed (when
/// a plain form post is refused).
pub fn render(state: &AppState, error: Option<&str>, draft: &str) -> Result<String, Error> {
    let html = state.live.views.render(
        "home.html",
        context! {
            greeting => state.live.registry.latest(&GREETING),
            // This page too: its stream, once open, counts it.
            here => state.live.registry.presence(&super::HERE) + 1,
            error,
            draft,
            max_name_chars => MAX_NAME_CHARS,
        },
    )?;
    Ok(html)
}
