//! A real SSE client for tests: it reads a stream's events as they arrive, keeps the newest
//! presence counts apart, and knows what a page's stream starts with; and readers for the
//! Datastar events a test looks into.

use std::{pin::Pin, time::Duration};

pub use eventsource_stream::Event;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};

use super::waits::PATIENCE;

type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// What a page's stream starts with, after `{connected: true}`.
#[derive(Debug)]
pub struct InitialEvents {
    /// The page's current state: the first patch of its elements (e.g. the latest greeting).
    pub state: Event,
    /// Debug builds: the dev loop's instance id.
    pub dev_server: Option<Event>,
}

/// A real SSE client reading a real response over TCP.
///
/// Presence counts (`_presence` signal patches, see [`crate::Presence`]) arrive whenever a tab
/// opens or closes anywhere, so the client keeps the newest of each ([`SseClient::presence`],
/// [`SseClient::until_presence`]) and hands every other event to the test.
pub struct SseClient {
    events: Events,
    /// The newest count of each presence seen.
    presence: serde_json::Map<String, serde_json::Value>,
    /// Every event read, presence counts included.
    read: usize,
}

impl SseClient {
    /// Reads the events of `response`, a stream's answer.
    pub fn new(response: reqwest::Response) -> Self {
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|event| event.map_err(|error| error.to_string()));
        SseClient {
            events: Box::pin(events),
            presence: serde_json::Map::new(),
            read: 0,
        }
    }

    /// The next event, whatever it is, or what ended the wait: the stream's end (`None`), a
    /// failure, or `deadline`.
    async fn next_any(&mut self, deadline: tokio::time::Instant) -> Result<Event, Option<String>> {
        match tokio::time::timeout_at(deadline, self.events.next()).await {
            Ok(Some(Ok(event))) => {
                self.read += 1;
                Ok(event)
            }
            Ok(Some(Err(error))) => Err(Some(error)),
            Ok(None) => Err(None),
            Err(_) => Err(Some("no SSE event in time".to_owned())),
        }
    }

    /// The next event but presence counts, or what ended the wait.
    async fn next_or(&mut self, patience: Duration) -> Result<Event, Option<String>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let event = self.next_any(deadline).await?;
            if !self.took_presence(&event) {
                return Ok(event);
            }
        }
    }

    /// Keeps the counts of a presence patch; whether `event` was one.
    fn took_presence(&mut self, event: &Event) -> bool {
        if event.event != "datastar-patch-signals" {
            return false;
        }
        let patch = signals(event);
        let Some(counts) = patch.get("_presence").and_then(|p| p.as_object()) else {
            return false;
        };
        self.presence.extend(
            counts
                .iter()
                .map(|(name, count)| (name.clone(), count.clone())),
        );
        patch.as_object().is_some_and(|patch| patch.len() == 1)
    }

    /// The next event (presence counts aside); fails the test if none comes in time or the
    /// stream ends.
    pub async fn next_event(&mut self) -> Event {
        match self.next_or(PATIENCE).await {
            Ok(event) => event,
            Err(Some(error)) => panic!("SSE stream failed: {error}"),
            Err(None) => panic!("SSE stream ended while an event was expected"),
        }
    }

    /// The next event (presence counts aside), or `None` once the stream has ended (or failed)
    /// or none came within `patience`.
    pub async fn try_next_event(&mut self, patience: Duration) -> Option<Event> {
        self.next_or(patience).await.ok()
    }

    /// The newest count of the presence `name` the stream has shown, if any.
    pub fn presence(&self, name: &str) -> Option<u64> {
        self.presence.get(name)?.as_u64()
    }

    /// Reads until the stream shows `count` for the presence `name`; fails the test if it
    /// does not within `patience`, or another event comes first.
    pub async fn until_presence(&mut self, name: &str, count: u64, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        while self.presence(name) != Some(count) {
            match self.next_any(deadline).await {
                Ok(event) if self.took_presence(&event) => {}
                Ok(event) => panic!("waiting for {name} = {count}, got {event:?}"),
                Err(error) => panic!(
                    "{name} is {:?}, not {count}, after {patience:?}: {error:?}",
                    self.presence(name)
                ),
            }
        }
    }

    /// How many events the client has read, presence counts included.
    pub fn events_read(&self) -> usize {
        self.read
    }

    /// Reads what a stream with no state of its own starts with (a page that shows only
    /// presence counts): `{connected: true}`, then, in debug builds, the dev loop's instance
    /// id. Counts that arrive meanwhile are kept, as always.
    pub async fn read_connected(&mut self) {
        let connected = self.next_event().await;
        assert_eq!(signals(&connected)["connected"], true, "{connected:?}");
        if cfg!(debug_assertions) {
            let dev_server = self.next_event().await;
            assert!(
                signals(&dev_server).get("_devServer").is_some(),
                "{dev_server:?}"
            );
        }
    }

    /// Reads what a page's stream opened with [`Stream`](crate::Stream) starts with:
    /// `{connected: true}` first, then the page's current state and, in debug builds, the dev
    /// loop's instance id, in either order.
    pub async fn read_initial_events(&mut self) -> InitialEvents {
        let connected = self.next_event().await;
        assert_eq!(signals(&connected)["connected"], true, "{connected:?}");
        let (mut state, mut dev_server) = (None, None);
        while state.is_none() || (cfg!(debug_assertions) && dev_server.is_none()) {
            let event = self.next_event().await;
            if event.event == "datastar-patch-elements" && state.is_none() {
                state = Some(event);
            } else if signals(&event).get("_devServer").is_some() && dev_server.is_none() {
                dev_server = Some(event);
            } else {
                panic!("unexpected initial event {event:?}");
            }
        }
        InitialEvents {
            state: state.unwrap(),
            dev_server,
        }
    }

    /// Waits for the server to end the stream; fails the test on any further event.
    pub async fn expect_end(&mut self) {
        match self.next_or(PATIENCE).await {
            Err(None) => {}
            Ok(event) => panic!("expected the stream to end, got {event:?}"),
            Err(Some(error)) => panic!("expected a clean end, got {error}"),
        }
    }
}

/// The HTML lines of a `datastar-patch-elements` event, joined as Datastar joins them.
pub fn elements(event: &Event) -> String {
    assert_eq!(event.event, "datastar-patch-elements", "{event:?}");
    event
        .data
        .lines()
        .filter_map(|line| line.strip_prefix("elements "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON of a `datastar-patch-signals` event.
pub fn signals(event: &Event) -> serde_json::Value {
    assert_eq!(event.event, "datastar-patch-signals", "{event:?}");
    let json: String = event
        .data
        .lines()
        .filter_map(|line| line.strip_prefix("signals "))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("signals are JSON ({e}): {json}"))
}

/// The events of a short SSE reply (an action's answer to Datastar), read to the end.
pub async fn reply_events(response: reqwest::Response) -> Vec<Event> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events: Vec<_> = tokio::time::timeout(
        PATIENCE,
        response.bytes_stream().eventsource().collect::<Vec<_>>(),
    )
    .await
    .expect("a reply ends by itself");
    events.into_iter().map(|e| e.unwrap()).collect()
}
