//! The page shown for a template that fails to render, in debug builds.
//!
//! It cannot use `templates/` (the broken template may be the layout), so its own template is
//! compiled into the binary.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use minijinja::{Environment, context};

use crate::state::Live;

const TEMPLATE: &str = include_str!("error_page.html");

/// A 500 page showing `details` (minijinja's error with its source excerpt), which reloads
/// itself when a watched file changes.
pub(super) fn render(live: &Live, details: &str) -> Response {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    let page = env.render_str(
        TEMPLATE,
        context! {
            details,
            datastar_url => live.views.datastar().url,
            datastar_integrity => live.views.datastar().integrity,
            stylesheet => live.views.assets().url("app.css"),
            favicon => live.views.assets().url("favicon.svg"),
            instance => live.instance().to_string(),
            tab => uuid::Uuid::new_v4().to_string(),
        },
    );
    match page {
        Ok(page) => (StatusCode::INTERNAL_SERVER_ERROR, Html(page)).into_response(),
        // Only if the page's own template were broken: fall back to plain text.
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{details}\n\n{error}"),
        )
            .into_response(),
    }
}
