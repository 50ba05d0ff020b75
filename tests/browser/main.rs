//! Browser tests: the pages in real headless Chromium, with and without JavaScript, running
//! the real Datastar 1.x bundle against a real server.
//!
//! Run with `cargo test --features browser-tests` (needs `chromium` and `chromium-driver`).
//! Each scenario waits on conditions, never on fixed sleeps, and a failure prints what the page
//! showed. Scenarios run one at a time: each starts one or two Chromiums, and on a small
//! machine several at once only make every one of them slow.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod bundle;
mod dev_loop;
mod harness;
mod scenarios;

use tokio::sync::{Semaphore, SemaphorePermit};

use live::{Settings, settings::Integrity};

use crate::helpers::{TestApp, spawn_app_with};

static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// The app, loading Datastar from a local copy of the real bundle, and this scenario's turn.
pub async fn app() -> (TestApp, SemaphorePermit<'static>) {
    app_with(|_| {}).await
}

/// Like [`app`], after `customise` has adjusted the configuration.
pub async fn app_with(
    customise: impl FnOnce(&mut Settings),
) -> (TestApp, SemaphorePermit<'static>) {
    let permit = ONE_AT_A_TIME.acquire().await.unwrap();
    let bundle = bundle::serve().await;
    let app = spawn_app_with(|config| {
        // Pinned by its hash, as the default CDN copy is: the browser checks it.
        config.datastar_url = format!("http://{bundle}/datastar.js");
        config.datastar_integrity = Integrity::Hash(bundle::integrity());
        customise(config);
    })
    .await;
    (app, permit)
}
