//! `GET /`: the home page.

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse},
};
use live::Error;
use minijinja::context;
use serde_json::json;
use uuid::Uuid;

use crate::{
    AppState,
    greeting::{GREETING, MAX_NAME_CHARS},
};

/// The home page, with a fresh session id for this tab's stream.
pub async fn show(State(state): State<AppState>) -> Result<impl IntoResponse, Error> {
    let html = render(&state, None, "")?;
    // Every load must get a fresh session id: never serve this page from a cache.
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)))
}

/// The home page, optionally showing a validation `error` and the `draft` the user typed (when
/// a plain form post is refused).
pub fn render(state: &AppState, error: Option<&str>, draft: &str) -> Result<String, Error> {
    let signals =
        json!({ "sessionId": Uuid::new_v4(), "connected": false, "_reconnecting": false });
    let html = state.live.views.render(
        "home.html",
        context! {
            signals,
            greeting => state.live.registry.latest(&GREETING),
            error,
            draft,
            max_name_chars => MAX_NAME_CHARS,
        },
    )?;
    Ok(html)
}
