//! Operations tests: the app's real binary run the way it is run in production — signals and
//! shutdown (`process`), restarts on a kept socket (`restart`), behind the shipped Caddy and
//! nginx configurations (`proxies`, `proxy`), scraped by the real Prometheus (`metrics`), and
//! two instances sharing a real Redis (`scale_out`).
//!
//! They live in the template repository only (`cargo-generate.toml` leaves `tests/ops/` out of
//! generated projects): they test the kit's serving machinery through the example app, which a
//! project may delete, and they need Caddy, nginx, Redis and Prometheus installed. A generated
//! project's own tests are `tests/api/` and `tests/browser/`.

// Each module uses what it needs of the app's test helpers.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod metrics;
mod process;
mod proxies;
// The proxies speak HTTPS to browsers: with the feature `tls` (which `proxies` needs too).
#[cfg(feature = "tls")]
#[allow(dead_code)]
mod proxy;
#[cfg(feature = "redis")]
mod restart;
#[cfg(feature = "redis")]
mod scale_out;
