//! Memory given back to the system after a flood of connections has gone.
//!
//! glibc's `malloc` keeps what a closed connection freed: each thread allocates from an arena
//! of its own, and an arena only returns the free memory at its very top. After 5 000 TLS
//! connections from one network opened and closed three times, the notes app kept 98 MB with
//! no connection open (9 MB before); `malloc_trim(0)` brought it to 16 MB. jemalloc keeps it
//! too unless its background thread runs (then 16–22 MB after 15 s), and mimalloc kept
//! 50–82 MB. So rather than ship another allocator, the server asks glibc to trim once the
//! connections open have fallen well below their peak: a flood costs its memory while it lasts,
//! not for the rest of the process's life. A steady load never falls that far, so the fan-out
//! path never pays for a trim.
//!
//! Other C libraries (musl) and systems have no `malloc_trim`; there this does nothing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::Semaphore;

/// How often the open connections are compared with their peak.
const EVERY: Duration = Duration::from_secs(10);

/// Connections that must have closed since the peak for a trim to be worth it: about 16 KiB
/// each (hyper's buffers, more over TLS), so some 16 MB or more to give back.
const CLOSED_SINCE_PEAK: usize = 1024;

/// The most connections open at once since the last trim.
#[derive(Debug, Default)]
pub(super) struct Peak(AtomicUsize);

impl Peak {
    /// Notes that `open` connections are open now.
    pub(super) fn opened(&self, open: usize) {
        self.0.fetch_max(open, Ordering::Relaxed);
    }
}

/// Every [`EVERY`], trims the heap if at least [`CLOSED_SINCE_PEAK`] of the connections
/// counted by `permits` (out of `cap`) have closed since `peak`. Runs until dropped.
pub(super) async fn after_floods(peak: Arc<Peak>, permits: Arc<Semaphore>, cap: usize) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let open = cap.saturating_sub(permits.available_permits());
        let highest = peak.0.load(Ordering::Relaxed);
        if highest.saturating_sub(open) < CLOSED_SINCE_PEAK {
            continue;
        }
        peak.0.store(open, Ordering::Relaxed);
        // It walks every arena under its lock: a few milliseconds on a large heap, off the
        // runtime's worker threads.
        let trimmed = tokio::task::spawn_blocking(|| {
            let started = std::time::Instant::now();
            trim();
            started.elapsed()
        })
        .await;
        if let Ok(took) = trimmed {
            tracing::debug!(highest, open, ?took, "connections gone: memory trimmed");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    unsafe extern "C" {
        /// glibc: gives free memory at the top of the heap and in every arena back to the
        /// system; `pad` bytes are kept at the top.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes the allocator's own locks and touches no memory of
    // the caller's; any thread may call it at any time.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
