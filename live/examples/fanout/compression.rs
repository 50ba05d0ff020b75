//! Compressed streams (`--compression-clients`): the steady rounds — a greeting-sized note, an
//! ordinary event, and a fat morph (a 200-row region re-rendered with one row changed) — at N
//! streams, three ways in one run of the benchmark:
//!
//! - **plain**: `STREAM_COMPRESSION=off`, clients that do not ask for gzip;
//! - **gzip by the app**: clients that ask for gzip (and gunzip every stream as a browser
//!   does), each event compressed once for every stream (`src/gzip.rs`);
//! - **gzip by Caddy**: the plain app behind Caddy's `encode gzip`, the usual fix: one
//!   compressor per stream, in the proxy.
//!
//! For each: the bytes each stream read per event (HTTP/1.1 chunk framing included), delivery
//! latency, the CPU per round and the memory per stream of the app and, behind Caddy, of Caddy.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use live::testing::free_port;
use tokio::net::TcpStream;

use crate::{
    clients::{Kind, Poster, Shared, client, http},
    server::{Server, cpu_seconds, rss_kib},
    steady::{self, Steady},
};

/// Who compresses the streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gzip {
    Off,
    App,
    Caddy,
}

impl Gzip {
    fn label(self) -> &'static str {
        match self {
            Gzip::Off => "plain (STREAM_COMPRESSION=off)",
            Gzip::App => "gzip by the app, each event compressed once",
            Gzip::Caddy => "gzip by Caddy's encode, a compressor per stream",
        }
    }
}

/// The three runs at each N, their reports printed as each ends and side by side at the end.
pub async fn measure(sizes: &[usize], rounds: usize) {
    for &n in sizes {
        let mut reports = Vec::new();
        for gzip in [Gzip::Off, Gzip::App, Gzip::Caddy] {
            match run(n, rounds, gzip).await {
                Some(report) => reports.push(report),
                None => println!("N = {n} ({}): skipped, no `caddy` here", gzip.label()),
            }
        }
        summary(n, &reports);
    }
}

/// What one run measured.
struct Report {
    gzip: Gzip,
    live: usize,
    /// By kind: the rounds, and the bytes each stream read per event.
    kinds: Vec<(Kind, Steady, f64)>,
    /// KiB per stream: the app's, and Caddy's when in front.
    memory: (Option<f64>, Option<f64>),
    /// Caddy's CPU per round, by kind.
    caddy_cpu: Vec<Option<f64>>,
}

async fn run(n: usize, rounds: usize, gzip: Gzip) -> Option<Report> {
    let app = Server::start_env(
        n + 1_000,
        &[(
            "STREAM_COMPRESSION",
            if gzip == Gzip::App { "gzip" } else { "off" },
        )],
    )
    .await;
    let caddy = match gzip {
        Gzip::Caddy => Some(Caddy::start(app.addr).await?),
        _ => None,
    };
    let addr = caddy.as_ref().map_or(app.addr, |caddy| caddy.addr);
    http(addr, "GET / HTTP/1.1", "").await; // warm up
    let pids = (app.pid(), caddy.as_ref().map(Caddy::pid));
    let rss = |pid: Option<u32>| pid.and_then(rss_kib);
    let before = (rss(pids.0), rss(pids.1));

    let shared = Arc::new(Shared::with_gzip(n, rounds, gzip != Gzip::Off));
    let tasks: Vec<_> = (0..n)
        .map(|index| tokio::spawn(client(addr, index, Arc::clone(&shared))))
        .collect();
    let live = crate::run::settled(&shared, n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = (rss(pids.0), rss(pids.1));
    let per_stream = |before: Option<u64>, after: Option<u64>| {
        Some((after? as f64 - before? as f64) / live.max(1) as f64)
    };
    let memory = (per_stream(before.0, after.0), per_stream(before.1, after.1));

    // Posts go to the app itself: only the streams pass through Caddy.
    let poster = Poster::Plain(app.addr);
    let mut kinds = Vec::new();
    let mut caddy_cpu = Vec::new();
    for kind in [Kind::Latest, Kind::Ordinary, Kind::Fat] {
        let wire = shared.wire.load(Ordering::Relaxed);
        let caddy_before = pids.1.and_then(cpu_seconds);
        let steady = steady::rounds(&shared, kind, rounds, live, &poster, pids.0).await;
        let caddy_after = pids.1.and_then(cpu_seconds);
        caddy_cpu.push(match (caddy_before, caddy_after) {
            (Some(before), Some(after)) => Some((after - before) / rounds as f64 * 1000.0),
            _ => None,
        });
        let read = shared.wire.load(Ordering::Relaxed) - wire;
        let per_event = read as f64 / (rounds * live.max(1)) as f64;
        kinds.push((kind, steady, per_event));
    }
    for task in tasks {
        task.abort();
    }
    let report = Report {
        gzip,
        live,
        kinds,
        memory,
        caddy_cpu,
    };
    report.print(n);
    Some(report)
}

impl Report {
    fn print(&self, n: usize) {
        println!("N = {n} ({}): {} live", self.gzip.label(), self.live);
        let kib = |value: Option<f64>| value.map_or("n/a".into(), |kib| format!("{kib:.1} KiB"));
        match self.memory {
            (app, None) => println!("  memory per stream: {}", kib(app)),
            (app, caddy) => println!(
                "  memory per stream: app {}, Caddy {}",
                kib(app),
                kib(caddy)
            ),
        }
        for ((kind, steady, bytes), caddy) in self.kinds.iter().zip(&self.caddy_cpu) {
            let cpu = |cpu: Option<f64>| cpu.map_or("n/a".into(), |cpu| format!("{cpu:.1} ms"));
            let caddy = match caddy {
                Some(_) => format!(", Caddy {}", cpu(*caddy)),
                None => String::new(),
            };
            println!(
                "  {}: {bytes:.0} bytes per stream per event; all delivered in median {:.1} ms, \
                 max {:.1} ms; CPU per round: app {}{caddy}; delivered {}/{}",
                name(*kind),
                steady.median(),
                steady.max(),
                cpu(steady.cpu_per_round),
                steady.delivered,
                steady.expected
            );
        }
    }
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Latest => "note (a greeting)",
        Kind::Ordinary => "shout (ordinary)",
        Kind::Fat => "fat morph (200 rows, one changed)",
    }
}

/// The runs side by side: bytes per event, latency and CPU relative to plain.
fn summary(n: usize, reports: &[Report]) {
    let Some(plain) = reports.iter().find(|report| report.gzip == Gzip::Off) else {
        return;
    };
    println!("N = {n}, compressed streams beside plain ones:");
    for report in reports.iter().filter(|report| report.gzip != Gzip::Off) {
        for ((kind, steady, bytes), (_, plain_steady, plain_bytes)) in
            report.kinds.iter().zip(&plain.kinds)
        {
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "n/a".into(),
            };
            println!(
                "  {} — {}: {bytes:.0} bytes per event ({:.1} % of {plain_bytes:.0}); latency \
                 {}, app CPU {} of plain",
                report.gzip.label(),
                name(*kind),
                bytes / plain_bytes * 100.0,
                ratio(Some(steady.median()), Some(plain_steady.median())),
                ratio(steady.cpu_per_round, plain_steady.cpu_per_round),
            );
        }
        let delta = match (report.memory.0, plain.memory.0) {
            (Some(app), Some(plain)) => format!("{:+.1} KiB", app - plain),
            _ => "n/a".into(),
        };
        println!(
            "  {}: memory per stream {delta} beside plain",
            report.gzip.label()
        );
    }
}

/// Caddy in front of the app with `encode gzip`, on a port of its own; stopped when dropped.
struct Caddy {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Caddy {
    /// `None` when this machine has no `caddy`.
    async fn start(app: SocketAddr) -> Option<Caddy> {
        let port = free_port();
        let dir = TempDir::new();
        let config = format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\
             :{port} {{\n\tencode gzip {{\n\t\tminimum_length 1\n\t}}\n\treverse_proxy {app} {{\n\t\tflush_interval -1\n\t}}\n}}\n"
        );
        let caddyfile = dir.0.join("Caddyfile");
        std::fs::write(&caddyfile, config).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", &dir.0)
            .env("XDG_DATA_HOME", &dir.0)
            .env("XDG_CONFIG_HOME", &dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "caddy did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Caddy {
            child,
            addr,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder of Caddy's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("fanout-caddy-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
