//! Reads the configuration, sets up logging, and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use app::{
    config::Config,
    logging,
    server::{Server, shutdown_signal},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Never blocks a request on a slow log reader; flushes (briefly) on the way out.
    let _logging = logging::init();

    // Settings may come from a `.env` file in the working directory; real environment
    // variables win over it.
    match dotenvy::from_path(".env") {
        Ok(()) => tracing::info!("read settings from .env"),
        Err(error) if error.not_found() => {}
        Err(error) => anyhow::bail!("cannot read .env: {error}"),
    }
    let config = Config::from_env()?;
    raise_open_files_limit();
    let shutdown = shutdown_signal().context("cannot listen for shutdown signals")?;
    let server = Server::bind(config.clone())
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    tracing::info!("listening on http://{}", server.local_addr()?);
    server.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Every open stream holds a socket; the default soft limit (often 1024) would cap the server
/// far below what it can serve. Raise it to the hard limit the system allows.
fn raise_open_files_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
    }
}
