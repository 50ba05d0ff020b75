//! Reads the configuration, sets up logging, and serves until Ctrl-C or SIGTERM.

use std::io::IsTerminal;

use anyhow::Context;
use app::{
    config::Config,
    server::{Server, shutdown_signal},
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info")),
        )
        // Colours for people at a terminal, plain text for log collectors.
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let config = Config::from_env()?;
    let server = Server::bind(config.clone())
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    tracing::info!("listening on http://{}", server.local_addr()?);
    server.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
