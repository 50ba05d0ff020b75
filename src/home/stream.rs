//! `GET /sse/home`: the home page's stream.

use axum::{extract::State, response::Response};
use live::{Error, Signals, Stream, Tab};

use super::{HERE, HOME, events};
use crate::{AppState, greeting::GREETING};

/// Opens the stream of the home page in tab `tab` (from the page's `sessionId` signal), stored
/// under `page/home/<tab>`. It starts with the latest greeting (or says there is none yet), and
/// then carries every greeting as it is made, and how many home pages are open.
pub async fn open(
    State(state): State<AppState>,
    stream: Stream,
    Signals(tab): Signals<Tab>,
) -> Result<Response, Error> {
    let none_yet = events::greeting(&state.live.views, None)?;
    stream
        .starting_with(&GREETING, none_yet)
        .counting(&HERE)
        .open_tab(HOME, tab.session_id)
}
