//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    assets::Assets,
    config::Config,
    connections::{DEFAULT_OUTBOX_CAPACITY, Registry},
    greeting::Greetings,
    views::Views,
};

/// Shared application state, cheap to clone (everything is behind `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    /// Open persistent streams, by key.
    pub registry: Registry,
    /// The template renderer.
    pub views: Arc<Views>,
    /// The example domain's state.
    pub greetings: Arc<Greetings>,
    /// Quiet time after which a stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// This server process: tells instances apart (dev builds reload pages rendered by another).
    pub instance: Uuid,
}

impl AppState {
    /// Fresh state for `config`: an empty registry, no greeting yet.
    pub fn new(config: &Config) -> Self {
        let instance = Uuid::new_v4();
        #[cfg(not(debug_assertions))]
        let views = Views::new(config.datastar_url.clone(), Assets::default(), instance);
        #[cfg(debug_assertions)]
        let views = Views::new(
            config.datastar_url.clone(),
            Assets::from_dir(&config.dev.static_dir),
            instance,
        )
        .with_templates_dir(&config.dev.templates_dir);
        AppState {
            registry: Registry::new(DEFAULT_OUTBOX_CAPACITY, config.max_streams),
            views: Arc::new(views),
            greetings: Arc::default(),
            keep_alive: config.keep_alive,
            instance,
        }
    }
}
