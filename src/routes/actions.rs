//! Actions: ordinary request/response handlers that push their effects to streams.
//!
//! An action parses its input, does its work, sends events to a target in the registry (one
//! key, or a pattern), answers the caller, and finishes. It never stores a connection. The same
//! handler serves a Datastar `@post` (header `datastar-request`) and a plain HTML form post, so
//! forms keep working without JavaScript.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::{
    error::AppError,
    greeting::{GREETING, Greeting, Name},
    patches,
    routes::{pages, streams::HOME_PAGES},
    sse,
    state::AppState,
};

/// The header Datastar puts on every request it makes (the SDK keeps its constant private).
const DATASTAR_REQUEST: &str = "datastar-request";

/// The greet form, as both the plain post and `@post(…, {contentType: 'form'})` send it.
#[derive(Debug, Deserialize)]
pub struct GreetForm {
    /// What the user typed; a missing field counts as empty.
    #[serde(default)]
    pub name: String,
}

/// `POST /api/greet`: greets `name` on every open home page.
///
/// - Valid name: the greeting is rendered once and pushed to every `page/home/*` stream. A
///   Datastar caller gets a short SSE reply that clears the form (never a redirect: Datastar
///   would follow it); a plain post gets `303 See Other` to the home page, which shows the
///   greeting.
/// - Invalid name: nothing is broadcast. A Datastar caller gets a `200` patch showing the
///   message (Datastar ignores the body of a non-200 response); a plain post gets the page
///   again with the message and what was typed, as `422`.
pub async fn greet(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<GreetForm>,
) -> Result<Response, AppError> {
    let from_datastar = headers.contains_key(DATASTAR_REQUEST);
    let name = match Name::parse(&form.name) {
        Ok(name) => name,
        Err(error) => {
            let message = error.to_string();
            return Ok(if from_datastar {
                sse::reply([patches::greet_error(&state.views, Some(&message))?])
            } else {
                let page = pages::render_home(&state, Some(&message), &form.name).await?;
                (StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response()
            });
        }
    };

    // A latest-state topic: tabs that are behind skip to the newest greeting, and if another
    // greet overtook this one, tabs keep the newer one.
    let greeting = state
        .registry
        .publish_latest(&GREETING, &HOME_PAGES, |serial| {
            let greeting = Greeting { name, serial };
            let patch = patches::greeting(&state.views, Some(&greeting))?;
            Ok::<_, AppError>((greeting, patch))
        })
        .await?;
    tracing::debug!(serial = greeting.serial, "greeting pushed to home pages");

    Ok(if from_datastar {
        sse::reply([
            patches::greet_error(&state.views, None)?,
            patches::clear_draft(),
        ])
    } else {
        Redirect::to("/").into_response()
    })
}
