//! `POST /api/greet`: the home page's action.
//!
//! An action parses its input, does its work, sends events to a target in the registry (one
//! key, or a pattern), answers the caller, and finishes. It never stores a connection. The same
//! handler serves a Datastar `@post` (header `datastar-request`) and a plain HTML form post, so
//! forms keep working without JavaScript.

use axum::{
    Form,
    extract::{State, rejection::FormRejection},
    http::StatusCode,
    response::Response,
};
use live::{Caller, Error, events::notice};
use serde::Deserialize;

use super::{HOME, events, page};
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
///   Datastar caller gets a short reply that clears the form; a plain post is redirected to the
///   home page, which shows the greeting.
/// - Invalid name, or a form that cannot be read (too large, a field twice): nothing is
///   broadcast. The caller sees why: Datastar in the form's message, a plain post on the page
///   again with what was typed, as `422` (or `413` for too large).
pub async fn greet(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Form<GreetForm>, FormRejection>,
) -> Result<Response, Error> {
    let views = &state.live.views;
    let refuse = |status, message: &str, draft: &str| {
        caller.refuse(
            status,
            || events::greet_error(views, Some(message)),
            || page::render(&state, Some(message), draft),
        )
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(rejection.status(), "That is far too long to be a name.", "");
        }
        Err(rejection) => {
            tracing::debug!(%rejection, "greet form refused");
            let message = "The form could not be read. Please reload the page and try again.";
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, message, "");
        }
    };
    let name = match Name::parse(&form.name) {
        Ok(name) => name,
        Err(error) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &error.to_string(),
                &form.name,
            );
        }
    };

    // A latest-state topic: tabs that are behind skip to the newest greeting, and if another
    // greet overtook this one, tabs keep the newer one.
    let greeting = state
        .live
        .registry
        .publish_latest(&GREETING, &HOME.tabs(), |serial| {
            let greeting = Greeting { name, serial };
            let patch = events::greeting(views, Some(&greeting))?;
            Ok::<_, Error>((greeting, patch))
        })
        .await?;
    tracing::debug!(serial = greeting.serial, "greeting pushed to home pages");

    caller.done(
        || {
            Ok::<_, Error>(vec![
                events::greet_error(views, None)?,
                notice(views, None)?,
                events::clear_draft(),
            ])
        },
        "/",
    )
}
