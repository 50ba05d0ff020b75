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
/// includes a line per request; see [`filter`]); colours only at a terminal.
///
/// `RUST_LOG` is read like every setting: from the environment, else from `.env` (logging
/// starts before the settings are read, and must not miss a `RUST_LOG=debug` written there),
/// and an empty value means the default. A value that is not UTF-8 is refused by
/// [`Settings::load`](crate::Settings::load), right after.
pub fn init() -> Logging {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .finish(std::io::stdout());
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_env_filter(filter(rust_log().as_deref()))
        // Colours for people at a terminal, plain text for log collectors.
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer)
        .init();
    Logging { guard: Some(guard) }
}

/// The libraries under the server whose debug and trace lines follow what clients send — a
/// line per HTTP/2 frame (`h2`), per TLS record or handshake step (`rustls`), per read and
/// write (`mio`, `tokio_util`'s codecs), per connection state change (`hyper`, `hyper_util`,
/// `want`, `tower`'s buffers). At `RUST_LOG=debug` 51 500 `WINDOW_UPDATE` frames from one
/// client wrote 7.7 MB of log: whoever can open a connection could fill the disk, or push the
/// lines that matter out of the buffer ([`dropped_lines`]).
pub const CLIENT_DRIVEN_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "mio",
    "rustls",
    "tokio_rustls",
    "tokio_util",
    "tower",
    "want",
];

/// The filter for the directives of `RUST_LOG` (`None`: the default, `info`).
///
/// Each of [`CLIENT_DRIVEN_TARGETS`] stays at `info` or quieter unless the directives name it
/// (`RUST_LOG=debug,h2=trace` to debug HTTP/2 itself): `RUST_LOG=debug` shows the app's and the
/// kit's debug lines (each stream's open and close), never a line per frame a client sends.
/// Directives that cannot be read give the default.
pub fn filter(directives: Option<&str>) -> EnvFilter {
    let Some(directives) = directives.filter(|directives| EnvFilter::try_new(directives).is_ok())
    else {
        return EnvFilter::new("info,tower_http=info");
    };
    let named: Vec<&str> = directives
        .split(',')
        .map(|directive| {
            directive
                .split(['[', '='])
                .next()
                .unwrap_or_default()
                .trim()
        })
        .collect();
    let mut capped = directives.to_owned();
    for target in CLIENT_DRIVEN_TARGETS {
        if !named.contains(target) {
            capped.push_str(&format!(",{target}=info"));
        }
    }
    EnvFilter::try_new(&capped).unwrap_or_else(|_| EnvFilter::new(directives))
}

/// `RUST_LOG` from the environment or, if it is not set there, from `.env` (a file that cannot
/// be read is reported by [`Settings::load`](crate::Settings::load) right after); `None` when
/// unset, empty or not UTF-8 (refused by the settings right after, too).
fn rust_log() -> Option<String> {
    let value = match std::env::var_os("RUST_LOG") {
        Some(value) => value.into_string().ok()?,
        None => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter's directives, as `EnvFilter` prints them, sorted.
    fn directives(filter: &EnvFilter) -> Vec<String> {
        let mut directives: Vec<String> =
            filter.to_string().split(',').map(str::to_owned).collect();
        directives.sort();
        directives
    }

    #[test]
    fn client_driven_libraries_stay_at_info_unless_named() {
        let debug = directives(&filter(Some("debug")));
        for target in CLIENT_DRIVEN_TARGETS {
            assert!(
                debug.contains(&format!("{target}=info")),
                "{target}: {debug:?}"
            );
        }
        assert!(debug.contains(&"debug".to_owned()), "{debug:?}");

        let named = directives(&filter(Some("debug,h2=trace,rustls=debug")));
        assert!(named.contains(&"h2=trace".to_owned()), "{named:?}");
        assert!(!named.contains(&"h2=info".to_owned()), "{named:?}");
        assert!(named.contains(&"rustls=debug".to_owned()), "{named:?}");
        assert!(named.contains(&"hyper=info".to_owned()), "{named:?}");
    }

    #[test]
    fn the_default_and_unreadable_directives_give_info() {
        for given in [None, Some("h2=[[")] {
            assert_eq!(
                directives(&filter(given)),
                ["info", "tower_http=info"],
                "{given:?}"
            );
        }
    }
}
