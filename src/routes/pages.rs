//! Pages: full HTML documents.

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse},
};
use minijinja::context;
use serde_json::json;
use uuid::Uuid;

use crate::{
    error::AppError,
    greeting::{GREETING, MAX_NAME_CHARS},
    state::AppState,
};

/// `GET /`: the home page, with a fresh session id for this tab's stream.
pub async fn home(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let html = render_home(&state, None, "").await?;
    // Every load must get a fresh session id: never serve this page from a cache.
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(html)))
}

/// `GET /about`.
pub async fn about(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    Ok(Html(state.views.render("about.html", context! {})?))
}

/// The home page, optionally showing a validation `error` and the `draft` the user typed (when
/// a plain form post is refused).
pub async fn render_home(
    state: &AppState,
    error: Option<&str>,
    draft: &str,
) -> Result<String, AppError> {
    let signals = json!({ "sessionId": Uuid::new_v4(), "connected": false });
    let html = state.views.render(
        "home.html",
        context! {
            signals,
            greeting => state.registry.latest(&GREETING),
            error,
            draft,
            max_name_chars => MAX_NAME_CHARS,
        },
    )?;
    Ok(html)
}
