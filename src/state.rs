//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use crate::{
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
}

impl AppState {
    /// Fresh state for `config`: an empty registry, no greeting yet.
    pub fn new(config: &Config) -> Self {
        AppState {
            registry: Registry::new(DEFAULT_OUTBOX_CAPACITY, config.max_streams),
            views: Arc::new(Views::new(config.datastar_url.clone())),
            greetings: Arc::default(),
            keep_alive: config.keep_alive,
        }
    }
}
