//! The server under test, from both sides: the process the benchmark starts for each run (the
//! notes app, or the raw baseline), what it reads of that process from `/proc` (memory, CPU
//! time) and how it stops it; and what the process runs in `--serve-notes` mode. A process of
//! its own, so that its memory and CPU are its own and not the load generator's.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use live::testing::free_port;
use tokio::net::TcpStream;

use crate::{clients::http, notes, stop};

/// The command that runs this binary as a server: itself, or under `BENCH_SERVER_WRAPPER` (a
/// profiler: `heaptrack`, `perf record -g -o perf.data --`), split on spaces.
pub fn server_command() -> Command {
    let exe = std::env::current_exe().unwrap();
    match std::env::var("BENCH_SERVER_WRAPPER") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut words = wrapper.split_whitespace();
            let mut command = Command::new(words.next().unwrap());
            command.args(words).arg(exe);
            command
        }
        _ => Command::new(exe),
    }
}

/// The notes app on 127.0.0.1:`port`, allowed `max_streams`, with no Redis and its stderr shown
/// (HTTPS, Redis, metrics and the log level are each caller's).
pub fn notes_command(port: u16, max_streams: usize) -> Command {
    let mut command = server_command();
    command
        .arg("--serve-notes")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("MAX_STREAMS", max_streams.to_string())
        // Every client of the benchmark comes from 127.0.0.1.
        .env("MAX_STREAMS_PER_CLIENT", max_streams.to_string())
        .env("MAX_CONNECTIONS_PER_CLIENT", (2 * max_streams).to_string())
        .env("PRESENCE_PER_CLIENT", max_streams.to_string())
        .env_remove("REDIS_URL")
        .stderr(Stdio::inherit());
    command
}

/// The resident memory of `pid`, in KiB: what its streams cost it.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0) // USER_HZ is 100 on Linux
}

/// A server process of the benchmark's own, killed when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    /// `METRICS_ADDR`, when set.
    pub metrics: Option<SocketAddr>,
}

impl Server {
    /// The bare baseline server: this benchmark's own binary in `--serve-raw` mode.
    pub async fn start_raw() -> Server {
        let port = free_port();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--serve-raw", &port.to_string()])
            .spawn()
            .expect("start the raw server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "the raw server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Server {
            child: Some(child),
            addr,
            metrics: None,
        }
    }

    /// The notes app, allowed `max_streams`, sharing `redis_url` if given.
    pub async fn start(max_streams: usize, redis_url: Option<&str>) -> Server {
        Server::start_with(max_streams, redis_url, None).await
    }

    /// The notes app, with its metrics on `metrics_port` if given.
    pub async fn start_with(
        max_streams: usize,
        redis_url: Option<&str>,
        metrics_port: Option<u16>,
    ) -> Server {
        Server::start_configured(max_streams, redis_url, metrics_port, &[]).await
    }

    /// The notes app, with these variables set besides.
    pub async fn start_env(max_streams: usize, env: &[(&str, &str)]) -> Server {
        Server::start_configured(max_streams, None, None, env).await
    }

    async fn start_configured(
        max_streams: usize,
        redis_url: Option<&str>,
        metrics_port: Option<u16>,
        env: &[(&str, &str)],
    ) -> Server {
        let port = free_port();
        let mut command = notes_command(port, max_streams);
        command.envs(env.iter().copied());
        command
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
            )
            .env_remove("METRICS_ADDR")
            .stdout(if std::env::var_os("BENCH_SERVER_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if let Some(url) = redis_url {
            command
                .env("REDIS_URL", url)
                .env(
                    "REDIS_SECRET",
                    "the fan-out benchmark's secret, 32+ characters",
                )
                .env("REDIS_PREFIX", "fanout-bench");
        }
        let metrics = metrics_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        if let Some(metrics) = metrics {
            command.env("METRICS_ADDR", metrics.to_string());
        }
        let child = command.spawn().expect("start the app");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = Server {
            child: Some(child),
            addr,
            metrics,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !http(addr, "GET /healthz HTTP/1.1", "")
            .await
            .starts_with("HTTP/1.1 200")
        {
            assert!(Instant::now() < deadline, "the app did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, as a deploy sends it; then the time until the process has exited, and until
    /// the run's `n` streams have ended (`ended` counts them), with how many had.
    pub async fn terminate(mut self, ended: &AtomicUsize, n: usize) -> (Duration, Duration, usize) {
        let sent = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.pid().unwrap().to_string()])
            .status()
            .unwrap();
        let child = self.child.as_mut().unwrap();
        let exited = loop {
            if child.try_wait().unwrap().is_some() {
                break sent.elapsed();
            }
            if sent.elapsed() > Duration::from_secs(30) {
                break Duration::MAX;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        while ended.load(Ordering::Relaxed) < n && sent.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let shutdown = (exited, sent.elapsed(), ended.load(Ordering::Relaxed));
        self.child = None;
        shutdown
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server under test: the notes app, configured from the environment like any app.
pub fn serve_notes() {
    let _logging = live::logging::init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut settings =
            live::Settings::from_env().unwrap_or_else(|error| stop(&error.to_string()));
        // Every client of the benchmark comes from one address.
        if std::env::var("MAX_STREAMS_PER_CLIENT").map_or(true, |value| value.is_empty()) {
            settings.max_streams_per_client = settings.max_streams;
        }
        if std::env::var("MAX_CONNECTIONS_PER_CLIENT").map_or(true, |value| value.is_empty()) {
            settings.max_connections_per_client = 2 * settings.max_streams;
        }
        // …and so does every post: bursts of 1 024 at once are what is measured.
        if std::env::var("ACTION_RATE_PER_SEC").map_or(true, |value| value.is_empty()) {
            settings.action_limit = None;
        }
        // And each of its tabs counts in presence.
        if std::env::var("PRESENCE_PER_CLIENT").map_or(true, |value| value.is_empty()) {
            settings.presence_per_client = settings.max_streams;
        }
        // The benchmark opens every stream in one burst from this same machine: at 17 000 on
        // two cores the server reached some requests, already sent, only after the 5 s the
        // first one may take (KEEP_ALIVE_TIMEOUT_SECS caps it) and closed them unanswered —
        // refusals the benchmark caused itself. A minute each, unless set.
        let unset = |name: &str| std::env::var(name).map_or(true, |value| value.is_empty());
        if unset("HEADER_READ_TIMEOUT_SECS") && unset("KEEP_ALIVE_TIMEOUT_SECS") {
            settings.header_read_timeout = Duration::from_secs(60);
            settings.keep_alive_timeout = Duration::from_secs(60);
        }
        let live = notes::live(&settings);
        let server = live::Server::bind(&settings, live.clone())
            .await
            .unwrap_or_else(|error| stop(&format!("--serve-notes: {error:#}")));
        server.serve(notes::router(live)).await.unwrap();
    });
}
