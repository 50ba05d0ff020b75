//! The one call a stream handler makes.
//!
//! A stream stores its connection in the registry under its key, refuses when full or shutting
//! down, starts with the newest state of what it shows, stays open with keep-alive comments,
//! and — in debug builds — carries the dev loop's events, so a page needs no second connection.
//! [`Stream`] does all of it; the handler names the key and what the page starts with:
//!
//! ```
//! use axum::response::Response;
//! use datastar::prelude::PatchElements;
//! use live::{Error, Signals, Stream, Tab, Topic};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Score;
//!
//! /// The latest score, shown on every board page.
//! static SCORE: Topic<Score> = Topic::new("score");
//!
//! /// `GET /sse/board`: the stream of a board page, under `page/board/<tab>`.
//! async fn board(stream: Stream, Signals(tab): Signals<Tab>) -> Result<Response, Error> {
//!     let none_yet = PatchElements::new(r#"<p id="score">No score yet.</p>"#).into();
//!     stream
//!         .starting_with(&SCORE, none_yet)
//!         .open_tab("board", tab.session_id)
//! }
//! ```

use std::{convert::Infallible, net::IpAddr, time::Duration};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use crate::{
    client_addr::ClientAddr,
    error::Error,
    events,
    frame::Frame,
    gzip,
    registry::{ConnectError, ConnectOptions, Key, Presence, SocketControl, Topic},
    sse::{self, EventStream},
    state::Live,
    views::Views,
};

/// A stream about to be opened: an extractor for stream handlers. It knows the request's
/// connection (to size its socket for a stream and cut it off if the stream must be dropped)
/// and its client (for the per-client cap).
#[derive(Debug)]
pub struct Stream {
    live: Live,
    socket: Option<SocketControl>,
    client: Option<IpAddr>,
    /// Latest-state topics the stream starts with, and what to send when one has no version yet.
    topics: Vec<(&'static str, Frame)>,
    /// The topics of the presences it shows (they always have a version).
    presences: Vec<String>,
    /// Whether to gzip the stream: the client accepts it and `STREAM_COMPRESSION` allows it.
    gzipped: bool,
}

impl<S> FromRequestParts<S> for Stream
where
    S: Send + Sync,
    Live: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let live = Live::from_ref(state);
        Ok(Stream {
            gzipped: live.compresses_streams() && gzip::accepted(&parts.headers),
            live,
            socket: parts.extensions.get::<SocketControl>().cloned(),
            client: parts
                .extensions
                .get::<ClientAddr>()
                .map(|ClientAddr(ip)| *ip),
            topics: Vec::new(),
            presences: Vec::new(),
        })
    }
}

impl Stream {
    /// Starts the stream with the newest version of `topic`, or `none_yet` if it has none;
    /// every later version follows as it is published. Reading the newest version and storing
    /// the connection are one step, so no version can fall in between.
    pub fn starting_with<T>(mut self, topic: &Topic<T>, none_yet: Frame) -> Self {
        self.topics.push((topic.name(), none_yet));
        self
    }

    /// Shows `presence` live: the stream starts with its count and gets every change (the
    /// page renders it with `live_presence`). Counting starts here if it had not.
    pub fn counting(mut self, presence: &Presence) -> Self {
        self.live.registry.presence(presence);
        self.presences.push(presence.topic());
        self
    }

    /// Opens the stream of the tab `tab` on page `page` (a [`Page`](crate::Page), or its
    /// name), stored under `page/<page>/<tab>` — the key shape the dev loop's `page/*/*`
    /// reaches. If another stream holds that key (a duplicated tab), it is replaced and sent a
    /// fresh session id to reconnect under.
    pub fn open_tab(self, page: impl AsRef<str>, tab: Uuid) -> Result<Response, Error> {
        self.open(Key::tab(page.as_ref(), tab)?, true)
    }

    /// Opens the stream under `key`. A stream already stored there is replaced and ends.
    pub fn open_key(self, key: Key) -> Result<Response, Error> {
        self.open(key, false)
    }

    fn open(self, key: Key, tab: bool) -> Result<Response, Error> {
        let Stream {
            live,
            socket,
            client,
            topics,
            presences,
            gzipped,
        } = self;
        let names: Vec<&str> = topics
            .iter()
            .map(|(name, _)| *name)
            .chain(presences.iter().map(String::as_str))
            .collect();
        let options = ConnectOptions {
            socket,
            topics: &names,
            client,
        };
        let (connection, replaced) = match live.registry.connect_with(key, options) {
            Ok(connected) => connected,
            Err(refusal) => return refused(&live.views, refusal),
        };
        if let Some(replaced) = replaced {
            tracing::debug!(key = %replaced.key().redacted(), "stream replaced by a newer one");
            if tab {
                replaced.farewell(events::new_session());
            }
        }
        let mut first = vec![events::connected()];
        first.extend(
            topics
                .into_iter()
                .filter(|(name, _)| !connection.has_version_of(name))
                .map(|(_, none_yet)| none_yet),
        );
        if cfg!(debug_assertions) {
            first.push(events::serving(live.instance()));
            // Under `cargo dev`: a build under way or failed shows on tabs opened meanwhile.
            first.extend(events::build_banner());
        }
        Ok(EventStream::new(connection, first, gzipped).into_response())
    }
}

/// The answer to a stream the registry refused: a short event stream that shows the page why,
/// marks it offline, and tells Datastar when to try again (its `retry:` field, which Datastar
/// honours — unlike a `Retry-After` header on an error status, after which it retries on its
/// own schedule). The wait is spread over a few seconds so refused tabs do not all come back
/// at the same instant.
///
/// A stream asked for while the server shuts down gets what every open stream got as its
/// last event instead: reconnect soon, without showing "offline". It comes on a connection
/// the server drains — a browser sends its reconnect on the keep-alive connection it has — and
/// is answered with `Connection: close`, so the next try opens a connection of its own, which
/// waits in the socket's queue for the server taking over (if none does, it fails, and the
/// page shows offline as usual).
pub(crate) fn refused(views: &Views, refusal: ConnectError) -> Result<Response, Error> {
    let (from, spread) = match refusal {
        ConnectError::ShuttingDown => return Ok(sse::reply([events::restarting()])),
        ConnectError::Full(_) | ConnectError::ClientFull(_) => (3_000, 5_000),
    };
    let jitter = u64::from(Uuid::new_v4().as_u128() as u16) % spread;
    let retry = Frame::retry(Duration::from_millis(from + jitter));
    Ok(sse::reply([
        retry,
        events::disconnected(),
        events::notice(views, Some(&refusal.to_string()))?,
    ]))
}
