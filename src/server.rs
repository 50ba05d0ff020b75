//! Start-up and shutdown, shared by `main` and the tests so both run the same server.

use std::{future::Future, io, net::SocketAddr};

use tokio::net::TcpListener;

use crate::{config::Config, router, state::AppState};

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    config: Config,
}

impl Server {
    /// Binds `HOST:PORT` from `config` (port 0 picks a free port) and prepares the app state.
    pub async fn bind(config: Config) -> io::Result<Self> {
        let listener = TcpListener::bind((config.host, config.port)).await?;
        Ok(Server {
            listener,
            state: AppState::new(&config),
            config,
        })
    }

    /// The address actually bound (tells tests which port they got).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The app state, for tests that want to look inside (e.g. the registry).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then ends every open stream, lets in-flight requests
    /// finish, and returns.
    ///
    /// Ending the streams is what makes the graceful shutdown finish: axum waits for every
    /// response body to end, and a stream's body only ends when its connection leaves the
    /// registry.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let registry = self.state.registry.clone();
        let app = router(self.state, &self.config);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let closed = registry.shut_down();
                tracing::info!(closed, "shutting down: streams ended");
            })
            .await
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM (what orchestrators send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
