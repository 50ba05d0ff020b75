//! Compressed streams (`--compression-clients`): the steady rounds — a greeting-sized note, an
//! ordinary event, and a fat morph (a 200-row region re-rendered with one row changed) — at N
//! streams, three ways in one run of the benchmark:
//!
//! - **plain**: `STREAM_COMPRESSION=off`, clients that do not ask for gzip;
//! - **gzip by the app**: clients that ask for gzip (and gunzip every stream as a browser
//!   does), each event compressed once for every stream (`src/gzip.rs`);
//! - **gzip by a proxy**, the usual fix: the plain app behind nginx's `gzip on` (one compressor
//!   per stream, flushed with every event), and behind Caddy's `encode gzip` as written in a
//!   Caddyfile (Caddy 2.6 leaves a stream whose first write is under its 512-byte minimum
//!   uncompressed; with the minimum lowered it holds the events back, so no stream goes live).
//!
//! For each: the bytes each stream read per event (HTTP/1.1 chunk framing included), delivery
//! latency, the CPU per round and the memory per stream of the app and of the proxy. A proxy
//! holds two sockets per stream, so its runs are at most what the open-files limit allows it.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use live::testing::{Process, free_port};
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
    Nginx,
    Caddy,
}

impl Gzip {
    fn label(self) -> &'static str {
        match self {
            Gzip::Off => "plain (STREAM_COMPRESSION=off)",
            Gzip::App => "gzip by the app, each event compressed once",
            Gzip::Nginx => "gzip by nginx in front, a compressor per stream",
            Gzip::Caddy => "Caddy's encode gzip in front",
        }
    }
}

/// The three runs at each N, their reports printed as each ends and side by side at the end.
pub async fn measure(sizes: &[usize], rounds: usize) {
    for &n in sizes {
        let mut reports = Vec::new();
        for gzip in [Gzip::Off, Gzip::App, Gzip::Nginx, Gzip::Caddy] {
            match run(n, rounds, gzip).await {
                Some(report) => reports.push(report),
                None => println!("N = {n} ({}): skipped, not installed here", gzip.label()),
            }
        }
        summary(n, &reports);
    }
}

/// What one run measured.
struct Report {
    n: usize,
    gzip: Gzip,
    live: usize,
    /// By kind: the rounds, and the bytes each stream read per event.
    kinds: Vec<(Kind, Steady, f64)>,
    /// KiB per stream: the app's, and the proxy's when one is in front.
    memory: (Option<f64>, Option<f64>),
    /// The proxy's CPU per round, by kind.
    proxy_cpu: Vec<Option<f64>>,
}

/// The most streams a proxy can carry here: it holds two descriptors for each.
fn proxy_fits(n: usize) -> usize {
    let limit = crate::options::open_files_limit();
    let most = (limit.saturating_sub(1_000) / 2 / 1_000 * 1_000).max(1_000) as usize;
    if n > most {
        println!("a proxy holds two sockets per stream: measuring it at N = {most}, not {n}");
    }
    n.min(most)
}

async fn run(n: usize, rounds: usize, gzip: Gzip) -> Option<Report> {
    let n = match gzip {
        Gzip::Nginx | Gzip::Caddy => proxy_fits(n),
        Gzip::Off | Gzip::App => n,
    };
    let app = Server::start_env(
        n + 1_000,
        &[(
            "STREAM_COMPRESSION",
            if gzip == Gzip::App { "gzip" } else { "off" },
        )],
    )
    .await;
    let proxy = match gzip {
        Gzip::Caddy => Some(Proxy::caddy(app.addr).await?),
        Gzip::Nginx => Some(Proxy::nginx(app.addr).await?),
        Gzip::Off | Gzip::App => None,
    };
    let addr = proxy.as_ref().map_or(app.addr, |proxy| proxy.addr);
    http(addr, "GET / HTTP/1.1", "").await; // warm up
    let pids = (app.pid(), proxy.as_ref().map(Proxy::pid));
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
    let mut proxy_cpu = Vec::new();
    for kind in [Kind::Latest, Kind::Ordinary, Kind::Fat] {
        let wire = shared.wire.load(Ordering::Relaxed);
        let proxy_before = pids.1.and_then(cpu_seconds);
        let steady = steady::rounds(&shared, kind, rounds, live, &poster, pids.0).await;
        let proxy_after = pids.1.and_then(cpu_seconds);
        proxy_cpu.push(match (proxy_before, proxy_after) {
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
        n,
        gzip,
        live,
        kinds,
        memory,
        proxy_cpu,
    };
    report.print();
    Some(report)
}

impl Report {
    fn print(&self) {
        println!("N = {} ({}): {} live", self.n, self.gzip.label(), self.live);
        let kib = |value: Option<f64>| value.map_or("n/a".into(), |kib| format!("{kib:.1} KiB"));
        match self.memory {
            (app, None) => println!("  memory per stream: {}", kib(app)),
            (app, proxy) => println!(
                "  memory per stream: app {}, proxy {}",
                kib(app),
                kib(proxy)
            ),
        }
        for ((kind, steady, bytes), proxy) in self.kinds.iter().zip(&self.proxy_cpu) {
            let cpu = |cpu: Option<f64>| cpu.map_or("n/a".into(), |cpu| format!("{cpu:.1} ms"));
            let proxy = match proxy {
                Some(_) => format!(", proxy {}", cpu(*proxy)),
                None => String::new(),
            };
            println!(
                "  {}: {bytes:.0} bytes per stream per event; all delivered in median {:.1} ms, \
                 max {:.1} ms; CPU per round: app {}{proxy}; delivered {}/{}",
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
    println!("N = {n}, compressed streams beside plain ones (a proxy's at its own N):");
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

/// A proxy in front of the app, compressing streams, on a port of its own; stopped when
/// dropped (with any worker it started).
struct Proxy {
    process: Process,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Proxy {
    /// Caddy with `encode gzip`, as a Caddyfile writes it; `None` without `caddy`.
    async fn caddy(app: SocketAddr) -> Option<Proxy> {
        let port = free_port();
        let dir = TempDir::new();
        let config = format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\
             :{port} {{\n\tencode gzip\n\treverse_proxy {app} {{\n\t\tflush_interval -1\n\t}}\n}}\n"
        );
        let caddyfile = dir.0.join("Caddyfile");
        std::fs::write(&caddyfile, config).unwrap();
        let mut command = Command::new("caddy");
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("HOME", &dir.0)
            .env("XDG_DATA_HOME", &dir.0)
            .env("XDG_CONFIG_HOME", &dir.0);
        Proxy::start(command, port, dir).await
    }

    /// nginx (one process, no master) with `gzip on` for event streams, buffering off, as a
    /// proxy in front of a stream is configured; `None` without `nginx`.
    async fn nginx(app: SocketAddr) -> Option<Proxy> {
        let port = free_port();
        let dir = TempDir::new();
        let path = |name: &str| dir.0.join(name).display().to_string();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\n\
             error_log {log} error;\nevents {{ worker_connections 60000; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n\
             proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n\
             uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
             upstream app {{ server {app}; keepalive 64; }}\n\
             server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    location / {{\n\
             proxy_pass http://app;\n      proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n      proxy_buffering off;\n\
             proxy_read_timeout 1h;\n      gzip on;\n      gzip_types text/event-stream;\n\
             gzip_min_length 0;\n    }}\n  }}\n}}\n",
            pid = path("nginx.pid"),
            log = path("error.log"),
            tmp = dir.0.display(),
        );
        let file = dir.0.join("nginx.conf");
        std::fs::write(&file, config).unwrap();
        let mut command = Command::new("nginx");
        command
            .arg("-c")
            .arg(&file)
            .arg("-e")
            .arg(path("error.log"));
        Proxy::start(command, port, dir).await
    }

    async fn start(mut command: Command, port: u16, dir: TempDir) -> Option<Proxy> {
        let process =
            Process::try_spawn(command.stdout(Stdio::null()).stderr(Stdio::null())).ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "the proxy did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Proxy {
            process,
            addr,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// A folder of the proxy's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("fanout-proxy-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
