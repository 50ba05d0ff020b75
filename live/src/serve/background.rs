//! What a server runs beside its connections while it serves: the keep-alive timer, the
//! metrics listener, the memory trim, and, as configured, ACME, the certificate reload on
//! `SIGHUP` and the dev loop's file watcher. Each stops when this is dropped.

use std::{io, sync::Arc};

use tokio_util::task::AbortOnDropHandle;

use super::{Server, connection_limits::ConnectionLimits, keep_alive};

pub(super) struct Background {
    _tasks: Vec<AbortOnDropHandle<()>>,
    /// Stopped apart, with the public listener, when shutdown begins: the next process,
    /// started while this one drains, binds the same address.
    metrics: Option<AbortOnDropHandle<()>>,
    /// Debug builds: template and stylesheet changes pushed to open tabs.
    _watcher: Option<crate::dev::watcher::Watcher>,
}

impl Background {
    /// Starts them all for `server`.
    pub(super) fn start(server: &mut Server, limits: &ConnectionLimits) -> io::Result<Background> {
        let mut tasks = vec![
            // One timer for the keep-alive comments of every stream.
            spawn(keep_alive(
                server.live.registry.downgrade(),
                server.settings.keep_alive,
            )),
            spawn(limits.trim_after_floods()),
        ];
        if let Some(driver) = server.acme.take() {
            tasks.push(spawn(driver.0));
        }
        #[cfg(unix)]
        if let Some(tls) = server.tls.clone() {
            tasks.push(spawn(crate::tls::reload_on_hangup(tls)?));
        }
        let metrics = match (server.metrics.take(), server.live.metrics()) {
            (Some(listener), Some(metrics)) => {
                Some(spawn(crate::metrics::serve(listener, Arc::clone(metrics))))
            }
            _ => None,
        };
        Ok(Background {
            _tasks: tasks,
            metrics,
            _watcher: server
                .settings
                .dev
                .watch
                .then(|| crate::dev::watch(server.live.clone()))
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

fn spawn(task: impl Future<Output = ()> + Send + 'static) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(task))
}
