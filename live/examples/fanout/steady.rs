//! Steady fan-out (`--clients`): one update at a time, each measured from sending its POST
//! until the last of N streams has it — what a page's readers wait for in ordinary use — and
//! the server's CPU time per update.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use crate::{
    clients::{Kind, Poster, Shared},
    options::Options,
    report::Report,
    run::{Setup, Transport, run},
    server::cpu_seconds,
};

/// The steady part: for each N, the app's run, the baseline's (unless `--no-raw`), and with
/// `redis_url` the same across two instances — whose report the summary leaves out, as it
/// has no baseline to stand beside.
pub async fn measure(options: &Options, redis_url: Option<&str>) -> Vec<(Report, Option<Report>)> {
    let mut steady = Vec::new();
    for &n in &options.steady {
        let app = run(n, options.rounds, &[], &Setup::Local, Transport::Plain).await;
        let raw = match options.raw {
            true => Some(run(n, options.rounds, &[], &Setup::Raw, Transport::Plain).await),
            false => None,
        };
        steady.push((app, raw));
        if let Some(url) = redis_url {
            let setup = Setup::CrossInstance(url.to_owned());
            run(n, options.rounds, &[], &setup, Transport::Plain).await;
        }
    }
    steady
}

/// Steady rounds of one kind: delivery latency of each, and the server's CPU per round.
pub struct Steady {
    pub latencies: Vec<f64>,
    pub cpu_per_round: Option<f64>,
    pub delivered: usize,
    pub expected: usize,
}

impl Steady {
    pub fn median(&self) -> f64 {
        median(&mut self.latencies.clone())
    }

    pub fn max(&self) -> f64 {
        self.latencies.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// `rounds` updates of `kind`, one at a time: each waits until every one of the `live`
/// streams has it (or 10 s), then 50 ms, so that no round overlaps the next.
pub async fn rounds(
    shared: &Shared,
    kind: Kind,
    rounds: usize,
    live: usize,
    post_to: &Poster,
    pid: Option<u32>,
) -> Steady {
    let cpu_before = pid.and_then(cpu_seconds);
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let slot = &shared.rounds(kind)[round];
        let sent = shared.now();
        let text = format!("{}{}{round}", shared.run, kind.letter());
        post_to.publish(kind, &text).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while slot.delivered.load(Ordering::Relaxed) < live && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let last = slot.last.load(Ordering::Relaxed);
        latencies.push(last.saturating_sub(sent) as f64 / 1e6);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_per_round = match (cpu_before, pid.and_then(cpu_seconds)) {
        (Some(before), Some(after)) => Some((after - before) / rounds.max(1) as f64 * 1000.0),
        _ => None,
    };
    Steady {
        latencies,
        cpu_per_round,
        delivered: shared
            .rounds(kind)
            .iter()
            .map(|round| round.delivered.load(Ordering::Relaxed))
            .sum(),
        expected: live * rounds,
    }
}

/// The middle value (the upper of the two middle ones): one slow round does not move it.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
