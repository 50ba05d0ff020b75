//! `GET /about`: a page without a stream of its own.

use axum::{extract::State, response::Html};
use live::Error;
use minijinja::context;

use crate::AppState;

/// The about page.
pub async fn show(State(state): State<AppState>) -> Result<Html<String>, Error> {
    Ok(Html(state.live.views.render("about.html", context! {})?))
}
