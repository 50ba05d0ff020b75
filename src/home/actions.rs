//! `POST /api/greet`: the home page's action.
//!
//! An action parses its input, does its work, sends events to a target in the registry (one
//! key, or a pattern), answers the caller, and finishes. It never stores a connection. The same
//! handler serves a Datastar `@post` (header `datastar-request`) and a plain HTML form post, so
//! forms keep working without JavaScript.

use axum::{
    Form,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use live::{Error, events::notice, sse};
use serde::Deserialize;

use super::{HOME_PAGES, events, page};
use crate::{
    AppState,
    greeting::{GREETING, Greeting, Name},
};

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
/// - Invalid name, or a form that cannot be read (too large, a field twice): nothing is
///   broadcast. A Datastar caller gets a `200` patch showing the message (Datastar ignores the
///   body of a non-200 response); a plain post gets the page again with the message and what
///   was typed, as `422` (or `413` for too large).
pub async fn greet(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<GreetForm>, FormRejection>,
) -> Result<Response, Error> {
    let from_datastar = sse::from_datastar(&headers);
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            tracing::debug!(%rejection, "greet form refused");
            return if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                let message = "That is far too long to be a name.";
                refuse(
                    &state,
                    from_datastar,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    message,
                    "",
                )
                .await
            } else {
                let message = "The form could not be read. Please reload the page and try again.";
                refuse(
                    &state,
                    from_datastar,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    message,
                    "",
                )
                .await
            };
        }
    };
    let name = match Name::parse(&form.name) {
        Ok(name) => name,
        Err(error) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return refuse(
                &state,
                from_datastar,
                status,
                &error.to_string(),
                &form.name,
            )
            .await;
        }
    };

    // A latest-state topic: tabs that are behind skip to the newest greeting, and if another
    // greet overtook this one, tabs keep the newer one.
    let greeting = state
        .live
        .registry
        .publish_latest(&GREETING, &HOME_PAGES, |serial| {
            let greeting = Greeting { name, serial };
            let patch = events::greeting(&state.live.views, Some(&greeting))?;
            Ok::<_, Error>((greeting, patch))
        })
        .await?;
    tracing::debug!(serial = greeting.serial, "greeting pushed to home pages");

    Ok(if from_datastar {
        sse::reply([
            events::greet_error(&state.live.views, None)?,
            notice(&state.live.views, None)?,
            events::clear_draft(),
        ])
    } else {
        Redirect::to("/").into_response()
    })
}

/// Tells the caller why the greet was refused: a `200` patch of the form's message for Datastar,
/// or the home page again with the message and what was typed, as `status`.
async fn refuse(
    state: &AppState,
    from_datastar: bool,
    status: StatusCode,
    message: &str,
    draft: &str,
) -> Result<Response, Error> {
    Ok(if from_datastar {
        sse::reply([events::greet_error(&state.live.views, Some(message))?])
    } else {
        let page = page::render(state, Some(message), draft)?;
        (status, Html(page)).into_response()
    })
}
