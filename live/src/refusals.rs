//! Every refusal of an action is seen by the person who caused it.
//!
//! Refusals come from many places — the CSRF check (403), the body limit (413), an unreadable form
//! (400, 415, 422), the action timeout (408), the client's rate limit (429) — and most answer with
//! an empty or plain-text body. A browser without JavaScript would show that bare text; Datastar
//! shows *nothing*, because it applies only the events of a `200` answer. So [`visible`] turns each
//! such refusal into something the person sees: for Datastar, a `200` event stream that puts the
//! message in the page's notice area; for a plain form post, a page with the message, keeping the
//! status code and `Retry-After`. Answers that already speak for themselves (HTML pages, event
//! streams) pass through untouched.

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
};
use minijinja::context;

use crate::{caller::Refused, events, sse, state::Live};

/// Middleware for actions: see the [module docs](self).
pub(crate) async fn visible(State(live): State<Live>, request: Request, next: Next) -> Response {
    let from_datastar = sse::from_datastar(request.headers());
    let response = next.run(request).await;
    let status = response.status();
    let failed = status.is_client_error() || status.is_server_error();
    if let Some(metrics) = live.metrics() {
        // The action's own refusals (`Caller::refuse`) are marked, whatever their status.
        match response.extensions().get::<Refused>() {
            Some(Refused(refused)) => metrics.refused(*refused),
            None if failed => metrics.refused(status),
            None => {}
        }
    }
    if !failed || speaks_for_itself(&response) {
        return response;
    }
    let (title, message) = explain(status);
    tracing::debug!(%status, from_datastar, "action refused: shown to the caller");
    let shown = if from_datastar {
        events::notice(&live.views, Some(message)).map(|frame| sse::reply([frame]))
    } else {
        // When to try again (a rate limit's), for whatever reads it besides the person.
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        live.views
            .render("refused.html", context! { title, message })
            .map(|page| {
                let mut page = (status, Html(page)).into_response();
                if let Some(retry_after) = retry_after {
                    page.headers_mut().insert(header::RETRY_AFTER, retry_after);
                }
                page
            })
    };
    // A template that fails here must not hide the refusal itself.
    shown.unwrap_or(response)
}

/// Whether the response is already something a person can read where it lands.
fn speaks_for_itself(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("text/html") || kind.starts_with("text/event-stream"))
}

/// A title and a sentence for a refusal, in the words of the person who sees it.
pub(crate) fn explain(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::FORBIDDEN => (
            "Refused",
            "This form was sent from another site, so it was refused. Please use the form on \
             this site.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Too much to send",
            "That was too much to send at once. Please shorten it and try again.",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "Too slow",
            "The server took too long to answer. Please try again.",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "Too fast",
            "You sent a lot in a short time, so this was not done. Please wait a moment and try \
             again.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "Busy",
            "The server is busy right now. Please try again in a moment.",
        ),
        status if status.is_client_error() => (
            "Could not read the form",
            "The form could not be read. Please reload the page and try again.",
        ),
        _ => (
            "Something went wrong",
            "Something went wrong on the server. Please try again.",
        ),
    }
}
