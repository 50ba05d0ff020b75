//! Reads the settings, sets up logging, and serves until Ctrl-C or SIGTERM.

use app::{AppState, router};
use live::{Server, Settings, logging};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Never blocks a request on a slow log reader; flushes (briefly) on the way out.
    let _logging = logging::init();
    let settings = Settings::load()?;
    let state = AppState::new(&settings);
    let server = Server::bind(&settings, state.live.clone()).await?;
    server.serve(router(state)).await
}
