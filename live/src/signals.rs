//! Reading Datastar signals from a request, with errors that say what is wrong.

use axum::{
    extract::{FromRequest, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use datastar::axum::ReadSignals;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The signals Datastar sent with the request, as `T`: from the `datastar` query parameter on a
/// `GET`, from the JSON body otherwise (the SDK's [`ReadSignals`] does the reading).
///
/// Unlike `ReadSignals<T>`, whose every failure reads "Failed to parse JSON value", a rejection
/// here is a `400` whose plain-text body says whether the signals are missing or which field is
/// wrong (`missing field `sessionId``, `UUID parsing failed: …`).
#[derive(Debug)]
pub struct Signals<T>(pub T);

impl<S, T> FromRequest<S> for Signals<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ReadSignals(value) = ReadSignals::<Value>::from_request(request, state).await?;
        if value.is_null() {
            return Err(bad_request(
                "missing Datastar signals: expected JSON in the `datastar` query parameter",
            ));
        }
        serde_json::from_value(value)
            .map(Signals)
            .map_err(|error| bad_request(&format!("invalid signals: {error}")))
    }
}

/// The signals every page with a stream sends: its tab's id, rendered into the page by the server
/// (`{"sessionId": "<uuid>"}`), under which the tab's stream is stored.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tab {
    /// The tab's id.
    pub session_id: uuid::Uuid,
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_owned()).into_response()
}
