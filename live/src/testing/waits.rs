//! How long a test waits for what it expects, and the waits every harness shares.

use std::time::Duration;

use crate::registry::{Pattern, Registry};

/// Long enough for a loaded CI machine, short enough that a hang fails the test quickly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until `registry` holds `expected` streams under `pattern`; fails the test otherwise.
pub async fn wait_for_streams(registry: &Registry, pattern: &str, expected: usize) {
    let pattern = Pattern::new(pattern).unwrap();
    let waited = tokio::time::timeout(PATIENCE, async {
        while registry.count(&pattern) != expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "expected {expected} streams under {}, found {}",
        pattern.as_str(),
        registry.count(&pattern)
    );
}
