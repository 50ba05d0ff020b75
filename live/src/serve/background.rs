//! What a server runs beside its connections while it serves: the keep-alive timer, the
//! metrics listener, the memory trim, and, as configured, ACME, the certificate reload on
//! `SIGHUP` and the dev loop's file watcher. Each stops when this is dropped.

use std::{io, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::task::AbortOnDropHandle;

use super::{connection_limits::ConnectionLimits, prepare::AcmeDriver};
use crate::{registry::WeakRegistry, settings::Settings, state::Live, tls::Tls};

pub(super) struct Background {
    _tasks: Vec<AbortOnDropHandle<()>>,
    /// Stopped apart, with the public listener, when shutdown begins: the next process,
    /// started while this one drains, binds the same address.
    metrics: Option<AbortOnDropHandle<()>>,
    /// Debug builds: template and stylesheet changes pushed to open tabs.
    _watcher: Option<crate::dev::watcher::Watcher>,
}

impl Background {
    /// Starts them all for the app whose kit state is `live`, under `settings`: ACME's driver
    /// and the metrics port are taken (they run here from now on), the certificate shared.
    pub(super) fn start(
        live: &Live,
        settings: &Settings,
        acme: Option<AcmeDriver>,
        tls: Option<Tls>,
        metrics: Option<TcpListener>,
        limits: &ConnectionLimits,
    ) -> io::Result<Background> {
        let mut tasks = vec![
            // One timer for the keep-alive comments of every stream.
            spawn(keep_alive(live.registry.downgrade(), settings.keep_alive)),
            spawn(limits.trim_after_floods()),
        ];
        if let Some(driver) = acme {
            tasks.push(spawn(driver.0));
        }
        #[cfg(unix)]
        if let Some(tls) = tls {
            tasks.push(spawn(crate::tls::reload_on_hangup(tls)?));
        }
        let metrics = match (metrics, live.metrics()) {
            (Some(listener), Some(metrics)) => {
                Some(spawn(crate::metrics::serve(listener, Arc::clone(metrics))))
            }
            _ => None,
        };
        Ok(Background {
            _tasks: tasks,
            metrics,
            _watcher: settings
                .dev
                .watch
                .then(|| crate::dev::watch(live.clone()))
                .and_then(|watched| {
                    watched
                        .inspect_err(|error| {
                            tracing::warn!(%error, "cannot watch templates and static files");
                        })
                        .ok()
                }),
        })
    }

    /// Stops the metrics listener (shutdown has begun).
    pub(super) fn stop_metrics(&mut self) {
        self.metrics = None;
    }
}

/// Has the registry send a keep-alive comment to its quiet streams every `period`, for as long
/// as it exists.
async fn keep_alive(registry: WeakRegistry, period: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        registry.keep_alive();
    }
}

fn spawn(task: impl Future<Output = ()> + Send + 'static) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(task))
}
