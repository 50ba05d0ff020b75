//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    assets::Assets,
    config::Config,
    connections::{Limits, Registry},
    views::{DatastarScript, Views},
};

/// Shared application state, cheap to clone (everything is behind `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    /// Open persistent streams, by key.
    pub registry: Registry,
    /// The template renderer.
    pub views: Arc<Views>,
    /// Quiet time after which a stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// This server process: tells instances apart (dev builds reload pages rendered by another).
    pub instance: Uuid,
}

impl AppState {
    /// Fresh state for `config`: an empty registry, no greeting yet.
    pub fn new(config: &Config) -> Self {
        let instance = Uuid::new_v4();
        let datastar = DatastarScript {
            url: config.datastar_url.clone(),
            integrity: config.datastar_integrity(),
        };
        #[cfg(not(debug_assertions))]
        let views = Views::new(datastar, Assets::default(), instance);
        #[cfg(debug_assertions)]
        let views = Views::new(datastar, Assets::from_dir(&config.dev.static_dir), instance)
            .with_templates_dir(&config.dev.templates_dir);
        let registry = Registry::new(Limits {
            max_connections: config.max_streams,
            max_per_client: config.max_streams_per_client,
            queue_limit: config.queue_limit,
        });
        match &config.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => {
                // `Config::validate` has made sure there is a secret.
                let secret = config.redis_secret.as_deref().unwrap_or_default();
                if let Err(error) =
                    crate::redis::attach(&registry, url, &config.redis_prefix, secret)
                {
                    tracing::error!(%error, "invalid REDIS_URL: staying local");
                }
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => tracing::warn!(
                "REDIS_URL is set, but this build has no `redis` feature: staying local \
                 (build with `--features redis`)"
            ),
            None => {}
        }
        AppState {
            registry,
            views: Arc::new(views),
            keep_alive: config.keep_alive,
            instance,
        }
    }
}
