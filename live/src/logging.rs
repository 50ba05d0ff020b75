//! Logs that never hold up a request.
//!
//! Writing a log line straight to stdout blocks the writing task when whatever reads stdout
//! stops (a full pipe, a stuck log collector) — and every request writes a line, so the whole
//! server stops answering. Lines go through a bounded in-memory buffer instead, written out by
//! a thread of their own; when the buffer is full, a line is dropped and counted rather than
//! waited for. [`dropped_lines`] reports the count (on `/healthz`).
//!
//! And logs that let nobody in, at any level: the line of each request ([`RequestSpan`]) shows
//! its query without the signals Datastar sends there (a tab's session id among them), and the
//! kit logs a stream's key with its last segment hidden
//! ([`Key::redacted`](crate::registry::Key::redacted)).

use std::{
    io::IsTerminal,
    sync::{OnceLock, mpsc},
    time::Duration,
};

use axum::http::Request;
use tower_http::trace::MakeSpan;
use tracing::Span;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines held while the reader of stdout is slow: a few MB at most.
const BUFFERED_LINES: usize = 16 * 1024;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Flushes the buffered lines when dropped, for at most two seconds: a stuck reader must not
/// keep the process from exiting.
#[derive(Debug)]
pub struct Logging {
    guard: Option<WorkerGuard>,
}

impl Drop for Logging {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let (done, flushed) = mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            let _ = done.send(());
        });
        let _ = flushed.recv_timeout(Duration::from_secs(2));
    }
}

/// Sets up logging to stdout for the process: `RUST_LOG` filters (default `info`, which
/// includes a line per request); colours only at a terminal.
///
/// `RUST_LOG` is read like every setting: from the environment, else from `.env` (logging
/// starts before the settings are read, and must not miss a `RUST_LOG=debug` written there),
/// and an empty value means the default.
pub fn init() -> Logging {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .finish(std::io::stdout());
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_env_filter(
            rust_log()
                .and_then(|directives| EnvFilter::try_new(directives).ok())
                .unwrap_or_else(|| EnvFilter::new("info,tower_http=info")),
        )
        // Colours for people at a terminal, plain text for log collectors.
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer)
        .init();
    Logging { guard: Some(guard) }
}

/// `RUST_LOG` from the environment or, if it is not set there, from `.env` (a file that cannot
/// be read is reported by [`Settings::load`](crate::Settings::load) right after); `None` when
/// unset or empty.
fn rust_log() -> Option<String> {
    let value = match std::env::var("RUST_LOG") {
        Ok(value) => value,
        Err(_) => {
            dotenvy::from_path_iter(".env")
                .ok()?
                .map_while(Result::ok)
                .find(|(name, _)| name == "RUST_LOG")?
                .1
        }
    };
    Some(value).filter(|value| !value.is_empty())
}

/// Log lines dropped so far because stdout could not take them.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// The span of each request, at INFO, which its log lines carry (`request{method=GET
/// uri=/sse/home?datastar=[68B] version=HTTP/1.1}`): tower-http's default, but with the
/// `datastar` query parameter — the signals of a Datastar `GET`, which hold the tab's session id
/// — reduced to its size. Whoever can read the logs could otherwise open a stream in any tab's
/// place.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let uri = crate::redact::path_and_query(request.uri().path(), request.uri().query());
        tracing::info_span!(
            "request",
            method = %request.method(),
            uri = %uri,
            version = ?request.version(),
        )
    }
}
