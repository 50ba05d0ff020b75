//! What the runs print: each run's report as it ends, and at the end the summaries that set
//! the app beside the baseline (and HTTPS beside plain, metrics set beside unset) with their
//! ratios — figures from one run only, since the machine's speed drifts between runs.

use std::time::Duration;

use crate::{burst::Burst, metrics::SCRAPE_EVERY, steady::Steady};

/// What one run measured.
pub struct Report {
    pub n: usize,
    pub label: String,
    pub live: usize,
    pub all_live_ms: f64,
    pub memory_kib: Option<f64>,
    pub memory: String,
    pub latest: Steady,
    pub ordinary: Steady,
    pub bursts: Vec<Burst>,
    pub shutdown: Option<(Duration, Duration, usize)>,
    /// With metrics: the mean of the server's `live_delivery_seconds`, by kind.
    pub sampled: Option<String>,
}

impl Report {
    /// The run's lines, printed as it ends: a long run shows its figures as it goes.
    pub fn print(&self) {
        let (n, live) = (self.n, self.live);
        println!("N = {n} ({})", self.label);
        println!(
            "  live: {live}/{n} in {:.0} ms after the first connect",
            self.all_live_ms
        );
        println!("  memory per stream: {}", self.memory);
        for (what, steady) in [("latest-state", &self.latest), ("ordinary", &self.ordinary)] {
            if steady.latencies.is_empty() {
                continue;
            }
            let cpu = steady
                .cpu_per_round
                .map_or("n/a".to_owned(), |cpu| format!("{cpu:.1} ms"));
            println!(
                "  {what} rounds: all delivered in median {:.1} ms, max {:.1} ms over {} rounds; \
                 server CPU per round {cpu}; delivered {}/{}",
                steady.median(),
                steady.max(),
                steady.latencies.len(),
                steady.delivered,
                steady.expected
            );
        }
        if let Some(sampled) = &self.sampled {
            println!("  the server's live_delivery_seconds after the rounds: {sampled}");
        }
        for burst in &self.bursts {
            println!(
                "  burst of {} simultaneous notes: {}",
                burst.greets,
                burst.describe(live)
            );
        }
        if let Some((exited, ended, count)) = self.shutdown {
            println!(
                "  shutdown: process exited {:.0} ms after SIGTERM; {count}/{n} streams ended within {:.0} ms",
                exited.as_secs_f64() * 1000.0,
                ended.as_secs_f64() * 1000.0
            );
        }
    }
}

/// The server's memory per stream, from its resident memory before the `live` streams opened
/// and after: the figure, and the line that shows it. Nothing to read of a remote server.
pub fn memory(before: Option<u64>, after: Option<u64>, live: usize) -> (Option<f64>, String) {
    match (before, after) {
        (Some(before), Some(after)) => {
            let per_stream = after.saturating_sub(before) as f64 / live.max(1) as f64;
            let text = format!(
                "{per_stream:.1} KiB ({} → {} MiB)",
                before / 1024,
                after / 1024
            );
            (Some(per_stream), text)
        }
        _ => (None, "n/a (remote server)".into()),
    }
}

/// The app's figure against the baseline's, and their ratio.
fn versus(app: Option<f64>, raw: Option<f64>, unit: &str) -> String {
    match (app, raw) {
        (Some(app), Some(raw)) if raw > 0.0 => {
            format!("{app:>7.1} {unit} vs {raw:>6.1} {unit} ({:.2}×)", app / raw)
        }
        (Some(app), _) => format!("{app:>7.1} {unit}"),
        _ => "n/a".to_owned(),
    }
}

/// The side-by-side summary of every run.
pub fn summary(steady: &[(Report, Option<Report>)], bursts: &[(Report, Option<Report>)]) {
    println!();
    println!("Summary: the app vs the raw tokio baseline, same bytes, same run");
    for (app, raw) in steady {
        let raw_latest = raw.as_ref().map(|raw| &raw.latest);
        let raw_ordinary = raw.as_ref().map(|raw| &raw.ordinary);
        println!("  steady, N = {}:", app.n);
        for (what, ours, theirs) in [
            ("latest-state", &app.latest, raw_latest),
            ("ordinary    ", &app.ordinary, raw_ordinary),
        ] {
            println!(
                "    {what}  median delivery {}   CPU per round {}",
                versus(Some(ours.median()), theirs.map(Steady::median), "ms"),
                versus(
                    ours.cpu_per_round,
                    theirs.and_then(|s| s.cpu_per_round),
                    "ms"
                ),
            );
        }
        println!(
            "    memory per stream {}",
            versus(
                app.memory_kib,
                raw.as_ref().and_then(|raw| raw.memory_kib),
                "KiB"
            )
        );
    }
    for (app, raw) in bursts {
        for (at, burst) in app.bursts.iter().enumerate() {
            println!(
                "  burst, N = {} × {} notes: app {}",
                app.n,
                burst.greets,
                burst.describe(app.live)
            );
            if let Some(theirs) = raw.as_ref().and_then(|raw| raw.bursts.get(at)) {
                println!(
                    "  {:>w$}  raw {}",
                    "",
                    theirs.describe(raw.as_ref().map_or(0, |raw| raw.live)),
                    w = format!("burst, N = {} × {} notes:", app.n, burst.greets).len()
                );
            }
        }
    }
}

/// HTTPS beside plain HTTP/1.1, same N, same run: each transport's figures and their ratio to
/// plain's (the goals: within 1.1× on latency and CPU; memory per stream at most 1.5× for TLS
/// with HTTP/1.1, at most plain's for HTTP/2 with 8 streams per connection).
pub fn https_summary(runs: &[Vec<Report>]) {
    for rows in runs {
        let Some((plain, secure)) = rows.split_first() else {
            continue;
        };
        println!();
        println!("HTTPS vs plain HTTP/1.1, N = {}:", plain.n);
        for report in secure {
            println!("  {}:", report.label);
            for (what, ours, theirs) in [
                ("latest-state", &report.latest, &plain.latest),
                ("ordinary    ", &report.ordinary, &plain.ordinary),
            ] {
                println!(
                    "    {what}  median delivery {}   CPU per round {}",
                    versus(Some(ours.median()), Some(theirs.median()), "ms"),
                    versus(ours.cpu_per_round, theirs.cpu_per_round, "ms"),
                );
            }
            println!(
                "    memory per stream {}",
                versus(report.memory_kib, plain.memory_kib, "KiB")
            );
        }
    }
}

/// Metrics set and scraped beside unset, same N, same run: the mean of each pair of runs.
pub fn metrics_summary(runs: &[(Vec<Report>, Vec<Report>)]) {
    let mean = |values: Vec<Option<f64>>| -> Option<f64> {
        let values: Option<Vec<f64>> = values.into_iter().collect();
        let values = values?;
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    for (unset, set) in runs {
        let Some(n) = unset.first().map(|report| report.n) else {
            continue;
        };
        println!();
        println!(
            "METRICS_ADDR set (scraped every {SCRAPE_EVERY:?}) vs unset, N = {n}, mean of {} runs each:",
            unset.len()
        );
        for (what, steady) in [
            (
                "latest-state",
                (|report: &Report| &report.latest) as fn(&Report) -> &Steady,
            ),
            ("ordinary    ", |report: &Report| &report.ordinary),
        ] {
            let median = |reports: &[Report]| {
                mean(reports.iter().map(|r| Some(steady(r).median())).collect())
            };
            let cpu = |reports: &[Report]| {
                mean(reports.iter().map(|r| steady(r).cpu_per_round).collect())
            };
            println!(
                "  {what}  median delivery {}   CPU per round {}",
                versus(median(set), median(unset), "ms"),
                versus(cpu(set), cpu(unset), "ms"),
            );
        }
        println!(
            "  memory per stream {}",
            versus(
                mean(set.iter().map(|r| r.memory_kib).collect()),
                mean(unset.iter().map(|r| r.memory_kib).collect()),
                "KiB"
            )
        );
    }
}
