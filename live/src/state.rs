//! What the kit's handlers — and the app's streams and actions — reach.

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    assets::{Assets, Files},
    metrics::Metrics,
    rate_limit::RateLimit,
    registry::{Limits, Registry},
    settings::Settings,
    views::{DatastarScript, Views},
};

/// The app, as the kit needs to know it.
#[derive(Debug, Clone)]
pub struct Site {
    /// Shown in page titles; the default Redis prefix. `env!("CARGO_PKG_NAME")`, usually.
    pub name: &'static str,
    /// `templates/`: the layout, pages and partials (`partials/notice.html` and `refused.html`
    /// are the kit's to render too).
    pub templates: Files,
    /// `static/`: stylesheets, images, scripts, served under `/static/`.
    pub static_files: Files,
}

impl Site {
    /// The site, reading its files from the folders `dev` names, if it names any (debug
    /// builds: a test or a tool may point the dev loop elsewhere).
    fn reading_from(mut self, dev: &crate::settings::DevSettings) -> Site {
        if let Some(dir) = &dev.templates_dir {
            self.templates = self.templates.read_from(dir);
        }
        if let Some(dir) = &dev.static_dir {
            self.static_files = self.static_files.read_from(dir);
        }
        self
    }
}

/// The kit's shared state: cheap to clone (everything is behind `Arc`s). An app with state of
/// its own keeps a `Live` in it and implements `FromRef` for it.
#[derive(Clone, Debug)]
pub struct Live {
    /// Open persistent streams, by key.
    pub registry: Registry,
    /// The template renderer.
    pub views: Arc<Views>,
    action_timeout: Duration,
    /// `ACTION_RATE_PER_SEC`, `ACTION_BURST`: one bucket per client, shared by every action.
    rate_limit: Option<Arc<RateLimit>>,
    instance: Uuid,
    /// With `METRICS_ADDR`: what the metrics listener serves.
    metrics: Option<Arc<Metrics>>,
    /// `STREAM_COMPRESSION`: whether streams are gzipped for clients that accept it.
    compress_streams: bool,
}

impl Live {
    /// The state for `site` under `settings`: an empty registry (relayed through Redis when
    /// `REDIS_URL` is set and the `redis` feature is on), and views on the site's files.
    pub fn new(settings: &Settings, site: Site) -> Self {
        let instance = Uuid::new_v4();
        let site = site.reading_from(&settings.dev);
        let datastar = DatastarScript {
            url: settings.datastar_url.clone(),
            integrity: settings.datastar_integrity(),
        };
        let assets = Assets::new(site.static_files);
        let views = Views::new(datastar, site.templates, assets, instance, site.name);
        let registry = Registry::new(Limits {
            max_connections: settings.max_streams,
            max_per_client: settings.max_streams_per_client,
            presence_per_client: settings.presence_per_client,
            queue_limit: settings.queue_limit,
        });
        match &settings.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => {
                // `Settings::validate` has made sure there is a secret.
                let secret = settings.redis_secret.as_deref().unwrap_or_default();
                let prefix = settings.redis_prefix.as_deref().unwrap_or(site.name);
                if let Err(error) = crate::redis::attach(
                    &registry,
                    url,
                    settings.redis_ca.as_deref(),
                    prefix,
                    secret,
                    settings.presence_expiry,
                ) {
                    let error = crate::redact::credentials(&error.to_string()).into_owned();
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
        let metrics = settings
            .metrics_addr
            .map(|_| Metrics::new(&registry, settings.max_streams));
        Live {
            registry,
            views: Arc::new(views),
            action_timeout: settings.action_timeout,
            rate_limit: settings
                .action_limit
                .map(|limit| Arc::new(RateLimit::new(limit))),
            instance,
            metrics,
            compress_streams: settings.compress_streams,
        }
    }

    /// Whether streams are gzipped for clients that accept it (`STREAM_COMPRESSION`).
    pub fn compresses_streams(&self) -> bool {
        self.compress_streams
    }

    /// The app's metrics, when `METRICS_ADDR` is set.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The longest an action may take (`ACTION_TIMEOUT_SECS`).
    pub fn action_timeout(&self) -> Duration {
        self.action_timeout
    }

    /// The buckets that limit each client's actions, unless `ACTION_RATE_PER_SEC=off`.
    pub fn rate_limit(&self) -> Option<&Arc<RateLimit>> {
        self.rate_limit.as_ref()
    }

    /// This server process: tells instances apart (dev builds reload pages rendered by
    /// another).
    pub fn instance(&self) -> Uuid {
        self.instance
    }
}
