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

mod dev_loop;
mod offline;
mod scenarios;

use tokio::sync::{Semaphore, SemaphorePermit};

use live::{Settings, settings::Integrity};

use crate::helpers::{TestApp, spawn_app_on};

static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// The app, loading Datastar from a local copy of the real bundle, and this scenario's turn.
pub async fn app() -> (TestApp, SemaphorePermit<'static>) {
    app_with(|_| {}).await
}

/// Like [`app`], after `customise` has adjusted the configuration.
pub async fn app_with(
    customise: impl FnOnce(&mut Settings),
) -> (TestApp, SemaphorePermit<'static>) {
    let permit = turn().await;
    (app_on(None, customise).await, permit)
}

/// This scenario's turn to use the browser and the machine.
pub async fn turn() -> SemaphorePermit<'static> {
    ONE_AT_A_TIME.acquire().await.unwrap()
}

/// The app as [`app_with`] makes it, serving on `listener` if given; for a scenario that
/// takes its [`turn`] itself (one that starts a second server).
pub async fn app_on(
    listener: Option<std::net::TcpListener>,
    customise: impl FnOnce(&mut Settings),
) -> TestApp {
    let bundle = live::testing::bundle::serve().await;
    spawn_app_on(listener, |config| {
        // Pinned by its hash, as the default CDN copy is: the browser checks it.
        config.datastar_url = format!("http://{bundle}/datastar.js");
        config.datastar_integrity = Integrity::Hash(live::testing::bundle::integrity());
        customise(config);
    })
    .await
}
