//! Streams: persistent SSE responses that live in the connection registry.
//!
//! A stream handler validates what the page sent, stores its connection under a key, sends the
//! page's current state first, and stays open: everything after that arrives from actions
//! through the registry. The keys and patterns are defined here, next to the streams that own
//! them, and actions import them to choose their targets.

use std::{sync::LazyLock, time::Duration};

use axum::{
    Extension,
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    connections::{ConnectError, ConnectOptions, Key, Pattern, SocketControl},
    error::AppError,
    greeting::GREETING,
    patches,
    server::ClientAddr,
    signals::Signals,
    sse::{self, EventStream, Frame},
    state::AppState,
    views::Views,
};

/// Every open home page: the target of a greeting.
pub static HOME_PAGES: LazyLock<Pattern> =
    LazyLock::new(|| Pattern::new("page/home/*").expect("a valid pattern"));

/// The key of the home page open in the tab with `session_id`.
pub fn home_key(session_id: Uuid) -> Key {
    Key::from_segments(["page", "home", &session_id.to_string()]).expect("a UUID is one segment")
}

/// The signals the home page sends when it opens its stream (as JSON in the `datastar` query
/// parameter, which is how Datastar sends signals on a `GET`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeSignals {
    /// The tab's id, rendered into the page by the server.
    pub session_id: Uuid,
}

/// `GET /sse/home`: the home page's stream, stored under `page/home/<sessionId>`.
///
/// First events: `{connected: true}` and the latest greeting, so a tab that reconnects (after
/// being hidden, or a server restart) catches up at once. When the registry is full or the
/// server is shutting down, the page is told so and when to try again ([`refused`]).
pub async fn home(
    State(state): State<AppState>,
    socket: Option<Extension<SocketControl>>,
    client: Option<Extension<ClientAddr>>,
    Signals(signals): Signals<HomeSignals>,
) -> Result<Response, AppError> {
    let options = ConnectOptions {
        socket: socket.map(|Extension(socket)| socket),
        topics: &[GREETING.name()],
        client: client.map(|Extension(ClientAddr(client))| client),
    };
    let (connection, replaced) = match state
        .registry
        .connect_with(home_key(signals.session_id), options)
    {
        Ok(connected) => connected,
        Err(refusal) => return refused(&state.views, refusal),
    };
    if let Some(replaced) = replaced {
        // Another tab is using this session id (a duplicated tab). Give the old tab a new id so
        // it reconnects under that instead of replacing the new one in turn, forever.
        tracing::debug!(key = %replaced.key(), "stream replaced by a newer one");
        replaced.farewell(patches::new_session());
    }
    // The registry queued the latest greeting when it stored the connection, so a greeting
    // arriving meanwhile is neither lost nor sent twice. Before the first one, say so.
    let mut initial = vec![patches::connected()];
    if !connection.has_version_of(GREETING.name()) {
        initial.push(patches::greeting(&state.views, None)?);
    }
    // This stream also carries the dev loop's events.
    #[cfg(debug_assertions)]
    initial.push(crate::dev::hello(&state));
    Ok(EventStream::new(connection, initial, state.keep_alive).into_response())
}

/// The answer to a stream the registry refused: a short event stream that shows the page why,
/// marks it offline, and tells Datastar when to try again (its `retry:` field, which Datastar
/// honours — unlike a `Retry-After` header on an error status, after which it retries on its
/// own schedule). The wait is spread over a few seconds so refused tabs do not all come back
/// at the same instant.
pub(crate) fn refused(views: &Views, refusal: ConnectError) -> Result<Response, AppError> {
    let (from, spread) = match refusal {
        ConnectError::ShuttingDown => (1_000, 2_000),
        ConnectError::Full(_) | ConnectError::ClientFull(_) => (3_000, 5_000),
    };
    let jitter = u64::from(Uuid::new_v4().as_u128() as u16) % spread;
    let retry = Frame::retry(Duration::from_millis(from + jitter));
    Ok(sse::reply([
        retry,
        patches::disconnected(),
        patches::notice(views, Some(&refusal.to_string()))?,
    ]))
}
