//! The app's side of `cargo dev` (the runner in `live/runner/`): what the runner says about its
//! builds reaches every open tab, and the app stops when the runner goes away.
//!
//! The runner starts the app with [`ENV`] set and a pipe on its stdin, and writes one JSON line
//! per build event ([`Build`]). A pipe, rather than a file or a route: only the runner holds
//! it, nothing on the network can write to it, and its end (EOF) says the runner is gone — so
//! an app whose runner was killed stops too, instead of holding the port.
//!
//! The last good build keeps serving while the next one compiles or fails: the tabs show
//! "rebuilding", or the compiler's first error, over their streams ([`ALL_PAGES`]), and a tab
//! opened meanwhile gets the same banner as one of its first events
//! ([`events::build_banner`]). A good build
//! replaces the process, and the tabs reload as they do after any restart.

use std::io::BufRead;

use datastar::prelude::PatchElements;
use minijinja::context;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::ALL_PAGES;
use crate::{events, frame::Frame, state::Live};

/// Set (to anything) by the runner in the environment of the app it starts.
pub const ENV: &str = "LIVE_DEV_RUNNER";

/// The template of the banner (`live/templates/live/build.html`; an app may override it).
const TEMPLATE: &str = "live/build.html";

/// One line from the runner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "build", rename_all = "lowercase")]
pub enum Build {
    /// A change was saved and a build started.
    Started {
        /// The files saved, relative to the workspace.
        changed: Vec<String>,
    },
    /// The build failed. The app serving is the last good build.
    Failed {
        /// The compiler's first error (file, line, the source around it), without colours.
        error: String,
    },
    /// The build succeeded and changed nothing this process runs (say, a test file): the banner
    /// goes. A build that changed the binary restarts the app instead.
    Ok,
}

/// Whether this process was started by the runner (never a release build: the runner builds
/// and runs debug builds only).
pub fn attached() -> bool {
    cfg!(debug_assertions) && std::env::var_os(ENV).is_some()
}

/// Completes with `shutdown`, or, when the runner started this process, as soon as the runner
/// is gone; meanwhile shows the runner's messages ([`follow`]).
pub async fn or_gone(shutdown: impl Future<Output = ()>, live: Live) {
    if !attached() {
        return shutdown.await;
    }
    tokio::select! {
        () = shutdown => {}
        () = follow(live) => {}
    }
}

/// Reads the runner's lines from stdin and shows each on every open tab; returns when stdin
/// ends (the runner is gone). stdin is read on a thread of its own: a read blocked on a pipe
/// would hold up the runtime's shutdown if it were on the runtime's blocking pool.
pub async fn follow(live: Live) {
    let (lines, mut received) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("dev-runner".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        })
        .expect("a thread to read the runner's messages");
    while let Some(line) = received.recv().await {
        match serde_json::from_str::<Build>(&line) {
            Ok(build) => show(&live, &build),
            Err(error) => tracing::warn!(%error, line, "not a message from the dev runner"),
        }
    }
    tracing::info!("the dev runner is gone: stopping");
}

/// Shows `build` on every open tab, and on every tab that opens until the next message.
pub fn show(live: &Live, build: &Build) {
    let frame = match render(live, build) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::warn!(%error, "cannot render the build banner");
            return;
        }
    };
    let keep = !matches!(build, Build::Ok);
    events::set_build_banner(keep.then(|| frame.clone()));
    live.registry.broadcast(&ALL_PAGES, &frame);
}

fn render(live: &Live, build: &Build) -> Result<Frame, minijinja::Error> {
    let html = match build {
        Build::Started { changed } => live
            .views
            .render(TEMPLATE, context! { state => "building", changed }),
        Build::Failed { error } => live
            .views
            .render(TEMPLATE, context! { state => "failed", error }),
        Build::Ok => live.views.render(TEMPLATE, context! { state => "ok" }),
    }?;
    Ok(PatchElements::new(html).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_lines_parse() {
        assert_eq!(
            serde_json::from_str::<Build>(r#"{"build":"started","changed":["src/lib.rs"]}"#)
                .unwrap(),
            Build::Started {
                changed: vec!["src/lib.rs".into()]
            }
        );
        assert_eq!(
            serde_json::from_str::<Build>(r#"{"build":"failed","error":"error[E0308]"}"#).unwrap(),
            Build::Failed {
                error: "error[E0308]".into()
            }
        );
        assert_eq!(
            serde_json::from_str::<Build>(r#"{"build":"ok"}"#).unwrap(),
            Build::Ok
        );
        assert!(serde_json::from_str::<Build>(r#"{"build":"exploded"}"#).is_err());
    }
}
