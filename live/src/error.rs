//! The error type at the HTTP boundary.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// What can go wrong inside a handler that is not the client's fault. The client gets a plain
/// 500; the details go to the log, never to the page. (An app with errors of its own converts
/// them into this, or wraps it.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template failed to render (a bug in a template, or a missing one).
    #[error("template error: {0:#}")]
    Render(#[from] minijinja::Error),
    /// A key or pattern built from a bad name (a bug: names in code are fixed).
    #[error(transparent)]
    Key(#[from] crate::registry::KeyError),
    /// Anything else unexpected.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        let mut response =
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        // Debug builds show template errors in the browser (`crate::dev::error_pages`).
        if cfg!(debug_assertions)
            && let Error::Render(error) = &self
        {
            response
                .extensions_mut()
                .insert(RenderFailure(format!("{error:#}")));
        }
        response
    }
}

/// A template error's full report (file, line, source excerpt), attached to the 500 response
/// in debug builds so the dev middleware can show it.
#[derive(Debug, Clone)]
pub(crate) struct RenderFailure(pub String);
