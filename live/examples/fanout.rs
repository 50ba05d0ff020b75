//! Fan-out benchmark: how fast one update reaches N open streams, what they cost, and how a
//! burst of simultaneous updates is absorbed — side by side with a bare tokio server that sends
//! the same bytes.
//!
//! ```sh
//! cargo run --release -p live-kit --example fanout            # the whole set (minutes)
//! cargo run --release -p live-kit --example fanout -- --help  # every option
//! cargo run --release -p live-kit --example fanout -- --clients 2000 --rounds 50   # steady only
//! cargo run --release -p live-kit --example fanout -- --burst-clients 3000 --bursts 128,1024
//! cargo run --release -p live-kit --example fanout --features redis -- --redis  # also across two instances
//! ```
//!
//! A command that names a part (`--registry`, `--clients`, `--burst-clients`/`--bursts`,
//! `--https-clients`, `--metrics-clients`, `--presence-clients`) runs only the parts it names;
//! with none named, every part runs. Sizes above what the open-files limit allows are lowered
//! to fit (both processes hold one descriptor per stream), and the run says so.
//!
//! Or against a notes app started apart (on another machine, behind a proxy):
//!
//! ```sh
//! MAX_STREAMS=12000 cargo run --release -p live-kit --example fanout -- --serve-notes  # 127.0.0.1:3000
//! cargo run --release -p live-kit --example fanout -- --addr 127.0.0.1:3000 --clients 10000
//! ```
//!
//! `--addr` first checks, within seconds, that the server there is the notes app (a stream
//! opens and a note reaches it), and stops with a message saying what to start if not: a
//! generated app has other routes. `--serve-notes` reads its settings from the environment like
//! any app, except that one client address may hold every stream (and twice as many
//! connections) and count that many in presence unless `MAX_STREAMS_PER_CLIENT`,
//! `MAX_CONNECTIONS_PER_CLIENT` and `PRESENCE_PER_CLIENT` say otherwise (all the benchmark's
//! clients share one).
//!
//! The server is the kit's notes app (`tests/support/notes.rs`: a page stream following a
//! latest-state topic, an action that publishes it, an action that broadcasts an ordinary
//! event — the shapes of every live page), run in a process of its own: this benchmark's own
//! binary, built in release mode by `cargo run --release`, in `--serve-notes` mode. The baseline is
//! the same binary in `--serve-raw` mode: no HTTP library, no framework, a `watch` channel for
//! the latest note and an `mpsc` queue per stream for ordinary events, each event encoded once.
//!
//! For each N it opens N streams (`/sse/notes`, distinct session ids) in one burst over raw TCP
//! and waits until every one has its first event. Then:
//!
//! - **steady fan-out** (`--clients`, default 2 500, 10 000 and the largest N the open-files
//!   limit allows): R rounds (`--rounds`, default 20) of `POST /notes` (a new latest-state
//!   note), then R of `POST /shouts` (an ordinary event), each measured from sending the POST
//!   until the last of the N clients has it; the server's CPU time per round; its memory per
//!   stream;
//! - **bursts** (`--burst-clients`, default 3 000 and 10 000; `--bursts`, default 128 and
//!   1 024): that many notes posted at the same instant, each on its own connection, then the
//!   time until every stream shows the newest, how many streams the burst ended (it must end
//!   none), and how many note events each stream was written (the work a burst costs);
//! - shutdown: SIGTERM, and the time until the process has exited and every stream ended;
//! - **the cost of metrics** (`--metrics-clients`, default 10 000): the steady rounds four more
//!   times, `METRICS_ADDR` unset, set, set, unset; set, `/metrics` is scraped every second
//!   through the run. The summary sets the means side by side;
//! - **presence** (`--presence-clients`, default 10 000): N tabs of a page that shows how many
//!   are open join at once, then half of them leave at once: how long until every tab shows the
//!   exact count, and the presence frames each tab was written (`fanout/presence.rs`).
//!
//! It prints numbers and asserts nothing. The load generator shares the machine with the
//! server. `--no-raw` skips the baseline; `--redis` (build with `--features redis`, needs
//! `redis-server` on the PATH) also runs each N across two instances sharing a `redis-server`,
//! clients on one, posts to the other, so every event crosses Redis.
//!
//! A first part times the registry alone: a broadcast to a pattern matching 10 of 10 010
//! connections and to one matching 10 000 of them, and a latest-state publish with 10 000
//! followers waiting for it and with none waiting (a burst's later publishes).

#[allow(dead_code)]
#[path = "../tests/support/notes.rs"]
mod notes;
#[path = "fanout/presence.rs"]
mod presence;
#[path = "fanout/probe.rs"]
mod probe;

use live::testing::free_port;
use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::Context,
    time::{Duration, Instant},
};

use datastar::prelude::PatchSignals;
use futures_util::StreamExt;
use live::{
    Frame,
    registry::{ConnectOptions, Key, LatestState, Limits, Outgoing, Pattern, Registry, Version},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

/// What to measure, from the command line ([`HELP`]).
struct Options {
    steady: Vec<usize>,
    /// N for the HTTPS rows (TLS with HTTP/1.1, and HTTP/2), beside plain HTTP/1.1.
    https: Vec<usize>,
    burst_clients: Vec<usize>,
    rounds: usize,
    bursts: Vec<usize>,
    addr: Option<SocketAddr>,
    redis: bool,
    raw: bool,
    /// N for the cost of metrics: the app with `METRICS_ADDR` unset and set, scraped.
    metrics: Vec<usize>,
    /// N for presence: a storm of N joins, then of N / 2 leaves.
    presence: Vec<usize>,
    /// The registry alone, without a server.
    registry: bool,
}

/// `--help`: every option. A command that names a part runs that part only, so that a small
/// command stays small: before, `--clients 2000` still ran the HTTPS, metrics and presence
/// parts at 10 000 streams (minutes).
const HELP: &str = "\
The kit's fan-out benchmark: the notes app and a bare tokio server, side by side.

USAGE:
    cargo run --release -p live-kit --example fanout -- [OPTIONS]

With no part named, every part runs at its default sizes (minutes). Name one or more parts and
only those run. Each N is a number of open streams (a comma-separated list runs each); an empty
list ('') turns a part off. Sizes above what the open-files limit allows (ulimit -n) are
lowered to fit, and the run says so.

PARTS:
    --registry                 the registry alone, no server: broadcasts and publishes to
                               10 000 connections
    --clients N[,N...]         steady fan-out, one update at a time to N streams
                               (default 2500,10000 and the most the open-files limit allows)
    --burst-clients N[,N...]   bursts of simultaneous updates to N streams (default 3000,10000)
    --bursts B[,B...]          the updates per burst (default 128,1024); names the burst part
    --https-clients N[,N...]   steady fan-out over TLS with HTTP/1.1 and over HTTP/2, beside
                               plain HTTP/1.1 (default 10000)
    --metrics-clients N[,N...] the cost of metrics: steady fan-out with METRICS_ADDR unset,
                               set, set, unset, scraped every second (default 10000)
    --presence-clients N[,N...] N tabs join a page that counts them, then half leave
                               (default 10000)

MODIFIERS:
    --rounds R                 updates of each kind per steady run (default 20)
    --no-raw                   without the bare tokio baseline
    --redis                    also across two instances sharing a redis-server
                               (build with --features redis; needs redis-server)
    --addr HOST:PORT           measure the notes app started apart (--serve-notes) with the
                               steady and burst parts, instead of one started here
    -h, --help                 this text

SERVERS (run by the benchmark itself, or by hand for --addr):
    --serve-notes              serve the notes app, configured from the environment
                               (HOST, PORT, MAX_STREAMS...), on 127.0.0.1:3000 by default
    --serve-raw PORT           serve the bare tokio baseline on 127.0.0.1:PORT
";

fn numbers(list: &str) -> Vec<usize> {
    list.split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| stop(&format!("{n:?} is not a number (see --help)")))
        })
        .collect()
}

/// Descriptors each process keeps beside its streams: the server's headroom (512, which its
/// connection cap leaves for everything else), and as many again for the load generator's own
/// (its runtime, the posting connections).
const FD_HEADROOM: u64 = 1_024;

/// The most streams this machine's open-files limit allows one server (and the load generator,
/// which holds the other end of each), with room for the rest ([`FD_HEADROOM`]) and for the
/// `extra` connections a part opens at the same time (a burst's posts, each on its own).
fn largest_n(extra: usize) -> usize {
    let limit = open_files_limit();
    let room = limit.saturating_sub(FD_HEADROOM + extra as u64);
    (room / 1_000 * 1_000).max(1_000) as usize
}

/// `sizes`, each lowered to what the open-files limit allows beside `extra` connections: a
/// stream over the limit would be refused by the benchmark's own machine, not the server.
fn fitted(part: &str, sizes: Vec<usize>, extra: usize) -> Vec<usize> {
    let largest = largest_n(extra);
    let mut fitted: Vec<usize> = sizes
        .into_iter()
        .map(|n| {
            if n > largest {
                println!(
                    "{part}: N = {n} does not fit the open-files limit ({}): measuring {largest} \
                     (raise it with `ulimit -n`)",
                    open_files_limit()
                );
            }
            n.min(largest)
        })
        .collect();
    fitted.dedup();
    fitted
}

fn open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1_024, |(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        1_024
    }
}

fn options() -> Options {
    let mut options = Options {
        steady: vec![2_500, 10_000, largest_n(0)],
        https: vec![10_000],
        burst_clients: vec![3_000, 10_000],
        rounds: 20,
        bursts: vec![128, 1_024],
        addr: None,
        redis: false,
        raw: true,
        metrics: vec![10_000],
        presence: vec![10_000],
        registry: true,
    };
    // The parts the command names; none: all of them.
    let mut named = Vec::new();
    let mut args = std::env::args().skip(1);
    let value = |args: &mut std::iter::Skip<std::env::Args>, option: &str| {
        args.next()
            .unwrap_or_else(|| stop(&format!("{option} wants a value (see --help)")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--registry" => named.push("registry"),
            "--clients" => {
                options.steady = numbers(&value(&mut args, "--clients"));
                named.push("steady");
            }
            "--burst-clients" => {
                options.burst_clients = numbers(&value(&mut args, "--burst-clients"));
                named.push("bursts");
            }
            "--bursts" => {
                options.bursts = numbers(&value(&mut args, "--bursts"));
                named.push("bursts");
            }
            "--https-clients" => {
                options.https = numbers(&value(&mut args, "--https-clients"));
                named.push("https");
            }
            "--metrics-clients" => {
                options.metrics = numbers(&value(&mut args, "--metrics-clients"));
                named.push("metrics");
            }
            "--presence-clients" => {
                options.presence = numbers(&value(&mut args, "--presence-clients"));
                named.push("presence");
            }
            "--rounds" => {
                let rounds = value(&mut args, "--rounds");
                options.rounds = rounds
                    .parse()
                    .unwrap_or_else(|_| stop(&format!("--rounds {rounds:?}: want a number")));
            }
            "--addr" => options.addr = Some(address(args.next())),
            "--redis" => options.redis = true,
            "--no-raw" => options.raw = false,
            other => stop(&format!("unknown option {other:?} (see --help)")),
        }
    }
    if !named.is_empty() {
        let off = |part: &str| !named.contains(&part);
        if off("registry") {
            options.registry = false;
        }
        if off("steady") {
            options.steady.clear();
        }
        if off("bursts") {
            options.burst_clients.clear();
        }
        if off("https") {
            options.https.clear();
        }
        if off("metrics") {
            options.metrics.clear();
        }
        if off("presence") {
            options.presence.clear();
        }
    }
    // A burst's posts are connections of their own, open at once beside the streams.
    let burst = options.bursts.iter().copied().max().unwrap_or(0);
    options.steady = fitted("--clients", options.steady, 0);
    options.burst_clients = fitted("--burst-clients", options.burst_clients, burst);
    options.https = fitted("--https-clients", options.https, 0);
    options.metrics = fitted("--metrics-clients", options.metrics, 0);
    // The presence part's server is allowed 2 000 streams more than it is sent.
    options.presence = fitted("--presence-clients", options.presence, 2_000);
    options
}

/// `--addr`'s value, resolved; a bad one stops the benchmark with a message.
fn address(value: Option<String>) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let value = value.unwrap_or_default();
    match value.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => stop(&format!("--addr {value:?}: the name has no address")),
        Err(error) => stop(&format!("--addr {value:?}: want HOST:PORT ({error})")),
    }
}

/// Ends the benchmark with `message` on stderr.
fn stop(message: &str) -> ! {
    eprintln!("fanout: {message}");
    std::process::exit(2)
}

/// Per-round delivery bookkeeping, shared by every client task.
struct Round {
    delivered: AtomicUsize,
    /// Nanoseconds since `Shared::epoch` at which the last client got this round.
    last: AtomicU64,
}

/// The two kinds of steady rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `POST /notes`: a new version of the latest-state note.
    Latest,
    /// `POST /shouts`: an ordinary event, every one delivered.
    Ordinary,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Latest => "/notes",
            Kind::Ordinary => "/shouts",
        }
    }

    /// What tells this kind's rounds apart in the text: `<run>r<round>` or `<run>o<round>`.
    fn letter(self) -> char {
        match self {
            Kind::Latest => 'r',
            Kind::Ordinary => 'o',
        }
    }
}

struct Shared {
    epoch: Instant,
    run: u64,
    live: AtomicUsize,
    last_live: AtomicU64,
    ended: AtomicUsize,
    /// Clients whose stream never went live: refused, closed, or never connected.
    refused: AtomicUsize,
    /// Why they were, counted by reason: so that a refusal says whose it was.
    why_refused: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    latest_rounds: Vec<Round>,
    ordinary_rounds: Vec<Round>,
    /// The highest note number each client has seen ("Note #N").
    newest: Vec<AtomicU64>,
    /// How many note events each client has been written.
    notes_seen: Vec<AtomicU64>,
    /// What marks each kind's rounds in an event: `<strong><run>r` and `<strong><run>o`.
    markers: [(Kind, String); 2],
}

impl Shared {
    /// Counts a client turned away, and why.
    fn refuse(&self, why: String) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        *self.why_refused.lock().unwrap().entry(why).or_default() += 1;
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn rounds(&self, kind: Kind) -> &[Round] {
        match kind {
            Kind::Latest => &self.latest_rounds,
            Kind::Ordinary => &self.ordinary_rounds,
        }
    }

    /// Counts one complete event for client `index`.
    fn event(&self, index: usize, event: &str) {
        if let Some((_, rest)) = event.split_once("Note #")
            && let Some((number, _)) = rest.split_once(':')
            && let Ok(number) = number.parse::<u64>()
        {
            self.newest[index].fetch_max(number, Ordering::Relaxed);
            self.notes_seen[index].fetch_add(1, Ordering::Relaxed);
        }
        for (kind, marker) in &self.markers {
            let kind = *kind;
            if let Some((_, rest)) = event.split_once(marker.as_str())
                && let Some((round, _)) = rest.split_once('<')
                && let Ok(round) = round.parse::<usize>()
                && let Some(slot) = self.rounds(kind).get(round)
            {
                slot.delivered.fetch_add(1, Ordering::Relaxed);
                slot.last.fetch_max(self.now(), Ordering::Relaxed);
            }
        }
    }
}

/// The command that runs this binary as a server: itself, or under `BENCH_SERVER_WRAPPER` (a
/// profiler: `heaptrack`, `perf record -g -o perf.data --`), split on spaces.
fn server_command() -> Command {
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

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0) // USER_HZ is 100 on Linux
}

struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    /// `METRICS_ADDR`, when set.
    metrics: Option<SocketAddr>,
}

impl Server {
    /// The bare baseline server: this benchmark's own binary in `--serve-raw` mode.
    async fn start_raw() -> Server {
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

    async fn start(max_streams: usize, redis_url: Option<&str>) -> Server {
        Server::start_with(max_streams, redis_url, None).await
    }

    /// The notes app, with its metrics on `metrics_port` if given.
    async fn start_with(
        max_streams: usize,
        redis_url: Option<&str>,
        metrics_port: Option<u16>,
    ) -> Server {
        let port = free_port();
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
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
            )
            .env_remove("REDIS_URL")
            .env_remove("METRICS_ADDR")
            .stdout(if std::env::var_os("BENCH_SERVER_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit());
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

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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

/// One request over a fresh connection; returns the whole response (`Connection: close`).
async fn http(addr: SocketAddr, request_line: &str, body_and_headers: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let request =
        format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n{body_and_headers}");
    let request = if body_and_headers.is_empty() {
        format!("{request}\r\n")
    } else {
        request
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// Where the rounds' posts go: a fresh plain connection each, or one kept HTTPS connection (a
/// handshake per post would be counted in the server's CPU per round).
enum Poster {
    Plain(SocketAddr),
    #[cfg(feature = "tls")]
    Https(reqwest::Client, SocketAddr),
}

impl Poster {
    async fn publish(&self, kind: Kind, text: &str) {
        match self {
            Poster::Plain(addr) => publish(*addr, kind, text).await,
            #[cfg(feature = "tls")]
            Poster::Https(client, addr) => {
                let response = client
                    .post(format!("https://{addr}{}", kind.path()))
                    .header("datastar-request", "true")
                    .form(&[("text", text)])
                    .send()
                    .await
                    .expect("publishing over HTTPS");
                assert_eq!(response.status(), 200, "publishing over HTTPS");
            }
        }
    }
}

async fn publish(addr: SocketAddr, kind: Kind, text: &str) {
    let body = format!("text={text}");
    let rest = format!(
        "datastar-request: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http(addr, &format!("POST {} HTTP/1.1", kind.path()), &rest).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "publishing failed: {response}"
    );
}

/// One SSE client: connects, counts itself live at the first event, then counts every complete
/// event as it arrives, until the server ends the stream.
async fn client(addr: SocketAddr, index: usize, shared: Arc<Shared>) {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(error) => return shared.refuse(format!("connect: {}", error.kind())),
    };
    let _ = stream.set_nodelay(true);
    read_http1_stream(stream, addr, index, shared).await;
}

/// Sends a stream's request over `stream` (HTTP/1.1, plain or TLS) and reads its events.
async fn read_http1_stream<S>(mut stream: S, addr: SocketAddr, index: usize, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET /sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\ndatastar-request: true\r\n\r\n",
        uuid::Uuid::new_v4()
    );
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return shared.refuse(format!("sending the request: {}", error.kind()));
    }
    if let Err(error) = stream.flush().await {
        return shared.refuse(format!("sending the request: {}", error.kind()));
    }
    let mut events = Events::default();
    let mut buffer = vec![0u8; 8192];
    let mut ended = "closed".to_owned();
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) => break,
            Err(error) => {
                ended = error.kind().to_string();
                break;
            }
            Ok(n) => n,
        };
        if !events.live && events.pending.is_empty() {
            // The status line, for a refusal's reason.
            let head = String::from_utf8_lossy(&buffer[..n.min(64)]);
            ended = head.lines().next().unwrap_or_default().to_owned();
        }
        events.feed(&buffer[..n], index, &shared);
        if events.pending.contains("\r\n0\r\n\r\n") {
            break; // the server ended the stream: the response's last chunk
        }
    }
    if !events.live {
        shared.refuse(format!("ended before the first event: {ended}"));
    }
    shared.ended.fetch_add(1, Ordering::Relaxed);
}

/// What one client has read and not yet counted.
#[derive(Default)]
struct Events {
    live: bool,
    pending: String,
}

impl Events {
    /// Counts the complete events in what has arrived (an event ends with a blank line); the
    /// rest waits for the next read. Chunk-size lines between events do not matter to what is
    /// looked for.
    fn feed(&mut self, bytes: &[u8], index: usize, shared: &Shared) {
        self.pending.push_str(&String::from_utf8_lossy(bytes));
        if !self.live && self.pending.contains("\"connected\":true") {
            self.live = true;
            shared.live.fetch_add(1, Ordering::Relaxed);
            shared.last_live.fetch_max(shared.now(), Ordering::Relaxed);
        }
        let mut start = 0;
        while let Some(end) = self.pending[start..].find("\n\n") {
            shared.event(index, &self.pending[start..start + end]);
            start += end + 2;
        }
        self.pending.drain(..start);
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Where the clients connect and where the posts go.
enum Setup {
    /// One app started here.
    Local,
    /// A server someone else started.
    Remote(SocketAddr),
    /// Two apps sharing a `redis-server`: clients on one, posts to the other.
    CrossInstance(String),
    /// The bare baseline server.
    Raw,
    /// One app with `METRICS_ADDR` set, scraped every [`SCRAPE_EVERY`] while it runs.
    LocalWithMetrics,
}

/// How often the metrics of [`Setup::LocalWithMetrics`] are scraped: Prometheus's usual
/// interval is 15 s to a minute, so this is the costly end.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

impl Setup {
    fn label(&self) -> &'static str {
        match self {
            Setup::Local => "one instance",
            Setup::Remote(_) => "remote server",
            Setup::CrossInstance(_) => "across instances through Redis",
            Setup::Raw => "raw tokio baseline",
            Setup::LocalWithMetrics => "one instance, METRICS_ADDR set and scraped",
        }
    }
}

/// How the clients reach a local app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// Plain HTTP/1.1, one stream per connection.
    Plain,
    /// HTTPS with HTTP/1.1, one stream per connection.
    #[cfg(feature = "tls")]
    TlsHttp1,
    /// HTTPS with HTTP/2, this many streams per connection (a browser's tabs on one site).
    #[cfg(feature = "tls")]
    Http2(usize),
}

impl Transport {
    fn label(self) -> String {
        match self {
            Transport::Plain => "plain HTTP/1.1".into(),
            #[cfg(feature = "tls")]
            Transport::TlsHttp1 => "HTTPS, HTTP/1.1".into(),
            #[cfg(feature = "tls")]
            Transport::Http2(per) => format!("HTTPS, HTTP/2 × {per} streams per connection"),
        }
    }
}

/// Steady rounds of one kind: delivery latency of each, and the server's CPU per round.
struct Steady {
    latencies: Vec<f64>,
    cpu_per_round: Option<f64>,
    delivered: usize,
    expected: usize,
}

impl Steady {
    fn median(&self) -> f64 {
        median(&mut self.latencies.clone())
    }

    fn max(&self) -> f64 {
        self.latencies.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// One burst of simultaneous posts.
struct Burst {
    greets: usize,
    replied: Duration,
    all_newest: Option<Duration>,
    dropped: usize,
    /// Note events written per stream during the burst: mean and most.
    frames: (f64, u64),
}

/// What one run measured.
struct Report {
    n: usize,
    label: String,
    live: usize,
    all_live_ms: f64,
    memory_kib: Option<f64>,
    memory: String,
    latest: Steady,
    ordinary: Steady,
    bursts: Vec<Burst>,
    shutdown: Option<(Duration, Duration, usize)>,
    /// With metrics: the mean of the server's `live_delivery_seconds`, by kind.
    sampled: Option<String>,
}

async fn steady(
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

/// B notes posted at the same instant, each on its own connection; then the time until every
/// stream shows the newest, how many streams the burst ended, and what it cost them in frames.
async fn burst(shared: &Arc<Shared>, greets: usize, live: usize, post_to: SocketAddr) -> Burst {
    let newest = |client: &AtomicU64| client.load(Ordering::Relaxed);
    let base = shared.newest.iter().map(newest).max().unwrap_or(0);
    let target = base + greets as u64;
    let ended_before = shared.ended.load(Ordering::Relaxed);
    let seen_before: Vec<u64> = shared.notes_seen.iter().map(newest).collect();
    let release = Arc::new(tokio::sync::Barrier::new(greets + 1));
    let posts: Vec<_> = (0..greets)
        .map(|i| {
            let release = Arc::clone(&release);
            let text = format!("{}b{i}", shared.run);
            tokio::spawn(async move {
                release.wait().await;
                publish(post_to, Kind::Latest, &text).await;
            })
        })
        .collect();
    release.wait().await;
    let sent = Instant::now();
    for post in posts {
        let _ = post.await;
    }
    let replied = sent.elapsed();
    let deadline = sent + Duration::from_secs(60);
    let all_newest = loop {
        let behind = shared
            .newest
            .iter()
            .take(live)
            .filter(|client| newest(client) < target)
            .count();
        if behind == 0 {
            break Some(sent.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let written: Vec<u64> = shared
        .notes_seen
        .iter()
        .zip(&seen_before)
        .take(live)
        .map(|(now, before)| newest(now) - before)
        .collect();
    let frames = (
        written.iter().sum::<u64>() as f64 / written.len().max(1) as f64,
        written.iter().copied().max().unwrap_or(0),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    Burst {
        greets,
        replied,
        all_newest,
        dropped: shared.ended.load(Ordering::Relaxed) - ended_before,
        frames,
    }
}

async fn run(
    n: usize,
    rounds: usize,
    bursts: &[usize],
    setup: &Setup,
    transport: Transport,
) -> Report {
    let (server, sender, addr) = match setup {
        Setup::Remote(addr) => (None, None, *addr),
        Setup::Local => {
            let server = match transport {
                Transport::Plain => Server::start(n + 1_000, None).await,
                #[cfg(feature = "tls")]
                _ => https::start(n + 1_000).await,
            };
            let addr = server.addr;
            (Some(server), None, addr)
        }
        Setup::LocalWithMetrics => {
            let server = Server::start_with(n + 1_000, None, Some(free_port())).await;
            let addr = server.addr;
            (Some(server), None, addr)
        }
        Setup::Raw => {
            let server = Server::start_raw().await;
            let addr = server.addr;
            (Some(server), None, addr)
        }
        Setup::CrossInstance(url) => {
            let receiver = Server::start(n + 1_000, Some(url)).await;
            let sender = Server::start(1_000, Some(url)).await;
            let addr = receiver.addr;
            (Some(receiver), Some(sender), addr)
        }
    };
    let post_to = sender.as_ref().map_or(addr, |sender| sender.addr);
    let post_to = match transport {
        Transport::Plain => Poster::Plain(post_to),
        #[cfg(feature = "tls")]
        _ => Poster::Https(https::client(), post_to),
    };
    let pid = server.as_ref().and_then(Server::pid);
    // Scraped the whole run, as Prometheus would, and checked once to be what it claims.
    let _scraper = match server.as_ref().and_then(|server| server.metrics) {
        Some(metrics) => {
            let exposition = http(metrics, "GET /metrics HTTP/1.1", "").await;
            assert!(
                exposition.contains("live_streams_open"),
                "the metrics address serves metrics: {exposition}"
            );
            Some(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                async move {
                    let mut every = tokio::time::interval(SCRAPE_EVERY);
                    loop {
                        every.tick().await;
                        http(metrics, "GET /metrics HTTP/1.1", "").await;
                    }
                },
            )))
        }
        None => None,
    };
    // Warm up (templates, allocator), then take the baseline.
    if !matches!(setup, Setup::Raw) && transport == Transport::Plain {
        http(addr, "GET / HTTP/1.1", "").await;
    }
    let rss_before = pid.and_then(rss_kib);

    let run = std::process::id() as u64 * 1000 + n as u64;
    let round = || Round {
        delivered: AtomicUsize::new(0),
        last: AtomicU64::new(0),
    };
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        run,
        live: AtomicUsize::new(0),
        last_live: AtomicU64::new(0),
        ended: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        why_refused: Default::default(),
        latest_rounds: (0..rounds).map(|_| round()).collect(),
        ordinary_rounds: (0..rounds).map(|_| round()).collect(),
        newest: (0..n).map(|_| AtomicU64::new(0)).collect(),
        notes_seen: (0..n).map(|_| AtomicU64::new(0)).collect(),
        markers: [
            (Kind::Latest, format!("<strong>{run}r")),
            (Kind::Ordinary, format!("<strong>{run}o")),
        ],
    });

    // One burst: every client connects at once, like tabs reconnecting after a deploy.
    let start = shared.now();
    let mut tasks = Vec::with_capacity(n);
    match transport {
        Transport::Plain => {
            for index in 0..n {
                tasks.push(tokio::spawn(client(addr, index, Arc::clone(&shared))));
            }
        }
        #[cfg(feature = "tls")]
        Transport::TlsHttp1 => {
            for index in 0..n {
                tasks.push(tokio::spawn(https::http1_client(
                    addr,
                    index,
                    Arc::clone(&shared),
                )));
            }
        }
        #[cfg(feature = "tls")]
        Transport::Http2(per) => {
            for first in (0..n).step_by(per) {
                let indexes = first..(first + per).min(n);
                tasks.push(tokio::spawn(https::h2_clients(
                    addr,
                    indexes,
                    Arc::clone(&shared),
                )));
            }
        }
    }
    // Until every client is live or was turned away (a server's MAX_STREAMS, its per-client
    // cap, the open-files limit), or a minute has passed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = || shared.live.load(Ordering::Relaxed) + shared.refused.load(Ordering::Relaxed);
    while settled() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = shared.live.load(Ordering::Relaxed);
    let refused = shared.refused.load(Ordering::Relaxed);
    if refused > 0 {
        let why = shared.why_refused.lock().unwrap();
        let why: Vec<String> = why.iter().map(|(why, n)| format!("{n} {why}")).collect();
        println!(
            "N = {n}: {refused} streams refused or closed before their first event: {}",
            why.join("; ")
        );
    }
    let all_live_ms = (shared
        .last_live
        .load(Ordering::Relaxed)
        .saturating_sub(start)) as f64
        / 1e6;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the server settle
    let rss_after = pid.and_then(rss_kib);

    let latest = steady(&shared, Kind::Latest, rounds, live, &post_to, pid).await;
    let ordinary = steady(&shared, Kind::Ordinary, rounds, live, &post_to, pid).await;
    // What the server's own sampled histogram says of the same rounds, beside the bench's.
    let sampled = match server.as_ref().and_then(|server| server.metrics) {
        Some(metrics) => Some(sampled_delivery(
            &http(metrics, "GET /metrics HTTP/1.1", "").await,
        )),
        None => None,
    };
    let mut burst_results = Vec::new();
    if let Poster::Plain(post_to) = post_to {
        for &greets in bursts {
            burst_results.push(burst(&shared, greets, live, post_to).await);
        }
    }

    // Shutdown: SIGTERM, then time until the process exits and every stream has ended.
    let mut shutdown = None;
    if let Some(mut server) = server {
        let sent = Instant::now();
        Command::new("kill")
            .args(["-TERM", &server.pid().unwrap().to_string()])
            .status()
            .unwrap();
        let child = server.child.as_mut().unwrap();
        let exited = loop {
            if child.try_wait().unwrap().is_some() {
                break sent.elapsed();
            }
            if sent.elapsed() > Duration::from_secs(30) {
                break Duration::MAX;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        while shared.ended.load(Ordering::Relaxed) < n && sent.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        shutdown = Some((exited, sent.elapsed(), shared.ended.load(Ordering::Relaxed)));
        server.child = None;
    }
    for task in tasks {
        task.abort();
    }

    let (memory_kib, memory) = match (rss_before, rss_after) {
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
    };
    let report = Report {
        n,
        label: match transport {
            Transport::Plain => setup.label().to_owned(),
            _ => format!("{}, {}", setup.label(), transport.label()),
        },
        live,
        all_live_ms,
        memory_kib,
        memory,
        latest,
        ordinary,
        bursts: burst_results,
        shutdown,
        sampled,
    };
    report.print();
    report
}

impl Report {
    fn print(&self) {
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

impl Burst {
    fn describe(&self, live: usize) -> String {
        let newest = match self.all_newest {
            Some(took) => format!(
                "all {live} on the newest {:.0} ms after it began",
                took.as_secs_f64() * 1000.0
            ),
            None => "NOT all on the newest within 60 s".to_owned(),
        };
        format!(
            "replies in {:.0} ms, {newest}, {} streams dropped, {:.1} note frames per stream (at most {})",
            self.replied.as_secs_f64() * 1000.0,
            self.dropped,
            self.frames.0,
            self.frames.1
        )
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
fn summary(steady: &[(Report, Option<Report>)], bursts: &[(Report, Option<Report>)]) {
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
fn https_summary(runs: &[Vec<Report>]) {
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

/// The mean time to the last write of the events the server sampled, by kind, from its
/// `/metrics` response.
fn sampled_delivery(exposition: &str) -> String {
    let sample = |series: String| {
        exposition.lines().find_map(|line| {
            let value = line.strip_prefix(series.as_str())?.strip_prefix(' ')?;
            value.trim().parse::<f64>().ok()
        })
    };
    ["latest", "ordinary"]
        .map(|kind| {
            let sum = sample(format!("live_delivery_seconds_sum{{kind=\"{kind}\"}}"));
            let count = sample(format!("live_delivery_seconds_count{{kind=\"{kind}\"}}"));
            match (sum, count) {
                (Some(sum), Some(count)) if count > 0.0 => format!(
                    "{kind} mean {:.1} ms over {count} sampled events",
                    sum / count * 1000.0
                ),
                _ => format!("{kind}: none sampled"),
            }
        })
        .join("; ")
}

/// Metrics set and scraped beside unset, same N, same run: the mean of each pair of runs.
fn metrics_summary(runs: &[(Vec<Report>, Vec<Report>)]) {
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

/// The registry alone: a broadcast's cost should follow the number of *matching* connections,
/// and a latest-state publish's the number of streams *waiting* for it.
fn registry_benchmark() {
    // Nobody reads here: room for every frame the loop queues.
    let registry = Registry::new(Limits {
        queue_limit: 1 << 17,
        ..Limits::default()
    });
    let follow = ConnectOptions {
        topics: &["tick"],
        ..ConnectOptions::default()
    };
    let mut held = Vec::new();
    for i in 0..10_000 {
        let key = Key::new(&format!("page/home/{i}")).unwrap();
        held.push(registry.connect_with(key, follow.clone()).unwrap().0);
    }
    for i in 0..10 {
        let key = Key::new(&format!("page/other/{i}")).unwrap();
        held.push(registry.connect(key).unwrap().0);
    }
    let frame = Frame::from(PatchSignals::new(r#"{"tick":1}"#));
    for (pattern, iterations) in [("page/other/*", 20_000), ("page/home/*", 50)] {
        let pattern = Pattern::new(pattern).unwrap();
        let start = Instant::now();
        let mut reached = 0;
        for _ in 0..iterations {
            reached = registry.broadcast(&pattern, &frame);
        }
        let each = start.elapsed() / iterations;
        println!(
            "registry: broadcast to {pattern} reaches {reached} of {} connections in {each:?}",
            registry.len()
        );
    }
    // Every follower polls once, as a stream that has written everything does: it waits.
    let mut context = Context::from_waker(futures_util::task::noop_waker_ref());
    for connection in &mut held {
        while let std::task::Poll::Ready(Some(_)) = connection.poll_next_unpin(&mut context) {}
    }
    let home = Pattern::new("page/home/*").unwrap();
    let publish = |number: u64| Outgoing {
        pattern: home.clone(),
        except: Vec::new(),
        frame: frame.clone(),
        latest: Some(LatestState {
            topic: "tick".into(),
            version: Version::new(1, number),
            value: None,
        }),
    };
    let start = Instant::now();
    registry.deliver(&publish(1));
    let first = start.elapsed();
    let start = Instant::now();
    for number in 2..=1_024 {
        registry.deliver(&publish(number));
    }
    let each = start.elapsed() / 1_023;
    println!(
        "registry: a latest-state publish wakes 10000 waiting followers in {first:?}; \
         the next 1023 (nobody waiting) take {each:?} each"
    );
    drop(held);
}

/// The HTTPS transports: a certificate authority of the benchmark's own, the app started with
/// a certificate from it, and clients that trust it.
#[cfg(feature = "tls")]
mod https {
    use std::{
        net::SocketAddr,
        ops::Range,
        path::PathBuf,
        process::Stdio,
        sync::{Arc, LazyLock},
        time::{Duration, Instant},
    };

    use live::testing::https::TestCa;
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;

    use super::{Events, Server, Shared, free_port, read_http1_stream};

    struct Material {
        ca: TestCa,
        cert: PathBuf,
        key: PathBuf,
        http1: TlsConnector,
        h2: TlsConnector,
    }

    static MATERIAL: LazyLock<Material> = LazyLock::new(|| {
        let ca = TestCa::new();
        let dir = std::env::temp_dir().join(format!("fanout-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = ca.issue().write(&dir);
        Material {
            http1: ca.connector(&[b"http/1.1"]),
            h2: ca.connector(&[b"h2"]),
            ca,
            cert,
            key,
        }
    });

    /// An HTTPS client that trusts the benchmark's authority (HTTP/2, one kept connection).
    pub(super) fn client() -> reqwest::Client {
        MATERIAL.ca.client().build().unwrap()
    }

    /// The notes app over HTTPS, allowed `max_streams`.
    pub(super) async fn start(max_streams: usize) -> Server {
        let port = free_port();
        let child = super::server_command()
            .arg("--serve-notes")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("MAX_STREAMS", max_streams.to_string())
            .env("MAX_STREAMS_PER_CLIENT", max_streams.to_string())
            .env("MAX_CONNECTIONS_PER_CLIENT", (2 * max_streams).to_string())
            .env("PRESENCE_PER_CLIENT", max_streams.to_string())
            .env("TLS_CERT", &MATERIAL.cert)
            .env("TLS_KEY", &MATERIAL.key)
            .env("RUST_LOG", "warn")
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the app");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = Server {
            child: Some(child),
            addr,
            metrics: None,
        };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let health = client.get(format!("https://{addr}/healthz")).send().await;
            if health.is_ok_and(|health| health.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "the app did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Warm up (templates, allocator), as the plain runs do.
        let _ = client.get(format!("https://{addr}/")).send().await;
        server
    }

    async fn handshake(
        addr: SocketAddr,
        connector: &TlsConnector,
    ) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        connector
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await
            .ok()
    }

    /// One stream on a TLS connection of its own, over HTTP/1.1.
    pub(super) async fn http1_client(addr: SocketAddr, index: usize, shared: Arc<Shared>) {
        if let Some(tls) = handshake(addr, &MATERIAL.http1).await {
            read_http1_stream(tls, addr, index, shared).await;
        }
    }

    /// One HTTP/2 connection carrying a stream for each of `indexes`, with the windows a
    /// browser asks for (Chromium: 6 MiB per stream, 15 MiB for the connection).
    pub(super) async fn h2_clients(addr: SocketAddr, indexes: Range<usize>, shared: Arc<Shared>) {
        let Some(tls) = handshake(addr, &MATERIAL.h2).await else {
            return;
        };
        let Ok((send, connection)) = h2::client::Builder::new()
            .initial_window_size(6 * 1024 * 1024)
            .initial_connection_window_size(15 * 1024 * 1024)
            .handshake::<_, bytes::Bytes>(tls)
            .await
        else {
            return;
        };
        let driver = tokio::spawn(connection);
        let mut streams = Vec::new();
        for index in indexes {
            let uri = format!(
                "https://{addr}/sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D",
                uuid::Uuid::new_v4()
            );
            let request = axum::http::Request::get(uri)
                .header("datastar-request", "true")
                .body(())
                .unwrap();
            let Ok(mut send) = send.clone().ready().await else {
                break;
            };
            let Ok((response, _)) = send.send_request(request, true) else {
                break;
            };
            let shared = Arc::clone(&shared);
            streams.push(tokio::spawn(async move {
                if let Ok(response) = response.await {
                    let mut body = response.into_body();
                    let mut events = Events::default();
                    while let Some(Ok(chunk)) = body.data().await {
                        let _ = body.flow_control().release_capacity(chunk.len());
                        events.feed(&chunk, index, &shared);
                    }
                }
                shared
                    .ended
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }));
        }
        for stream in streams {
            let _ = stream.await;
        }
        driver.abort();
    }
}

/// The server under test: the notes app, configured from the environment like any app.
fn serve_notes() {
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

/// A `redis-server` for the cross-instance runs.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        RedisServer { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--serve-notes") {
        serve_notes();
        return;
    }
    if first.as_deref() == Some("--serve-raw") {
        let port: u16 = args.next().expect("--serve-raw PORT").parse().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(raw::serve(port));
        return;
    }
    let options = options();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Some(addr) = options.addr {
        // The registry's figures are this machine's, not the server's: not measured here.
        if let Err(message) = runtime.block_on(probe::check(addr)) {
            stop(&message);
        }
        println!("{addr} serves the notes app: a stream opened and a note reached it");
    } else if options.registry {
        registry_benchmark();
    }
    runtime.block_on(async {
        if let Some(addr) = options.addr {
            for &n in &options.steady {
                run(
                    n,
                    options.rounds,
                    &options.bursts,
                    &Setup::Remote(addr),
                    Transport::Plain,
                )
                .await;
            }
            return;
        }
        let redis = options.redis.then(RedisServer::start);
        let mut steady = Vec::new();
        for &n in &options.steady {
            let app = run(n, options.rounds, &[], &Setup::Local, Transport::Plain).await;
            let raw = match options.raw {
                true => Some(run(n, options.rounds, &[], &Setup::Raw, Transport::Plain).await),
                false => None,
            };
            steady.push((app, raw));
            if let Some(redis) = &redis {
                let setup = Setup::CrossInstance(redis.url());
                run(n, options.rounds, &[], &setup, Transport::Plain).await;
            }
        }
        let mut bursts = Vec::new();
        if !options.bursts.is_empty() {
            for &n in &options.burst_clients {
                let app = run(n, 0, &options.bursts, &Setup::Local, Transport::Plain).await;
                let raw = match options.raw {
                    true => Some(run(n, 0, &options.bursts, &Setup::Raw, Transport::Plain).await),
                    false => None,
                };
                bursts.push((app, raw));
                if let Some(redis) = &redis {
                    let setup = Setup::CrossInstance(redis.url());
                    run(n, 0, &options.bursts, &setup, Transport::Plain).await;
                }
            }
        }
        let mut secure = Vec::new();
        #[cfg(feature = "tls")]
        for &n in &options.https {
            let mut rows = Vec::new();
            for transport in [Transport::Plain, Transport::TlsHttp1, Transport::Http2(8)] {
                rows.push(run(n, options.rounds, &[], &Setup::Local, transport).await);
            }
            secure.push(rows);
        }
        // The cost of metrics: unset, set, set, unset (so that a drift over the run weighs on
        // both alike).
        let mut metrics = Vec::new();
        for &n in &options.metrics {
            let mut unset = Vec::new();
            let mut set = Vec::new();
            for with in [false, true, true, false] {
                let setup = if with {
                    Setup::LocalWithMetrics
                } else {
                    Setup::Local
                };
                let report = run(n, options.rounds, &[], &setup, Transport::Plain).await;
                if with {
                    set.push(report)
                } else {
                    unset.push(report)
                }
            }
            metrics.push((unset, set));
        }
        // Presence: join and leave storms on a page that shows how many are there.
        for &n in &options.presence {
            let server = Server::start(n + 2_000, None).await;
            presence::storms(server.addr, n).await;
        }
        summary(&steady, &bursts);
        https_summary(&secure);
        metrics_summary(&metrics);
    });
}

/// The lower bound: a tokio server that speaks just enough HTTP/1.1 for this benchmark, with no
/// HTTP library and no framework. Each stream is a task owning its socket; the latest note is a
/// `watch` channel (a stream that is behind skips to the newest), ordinary events an `mpsc`
/// queue per stream; each event is encoded once and its bytes shared by every stream.
mod raw {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    };

    use bytes::Bytes;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpSocket, TcpStream},
        sync::{mpsc, watch},
    };

    struct Hub {
        /// The latest note's event, and how many notes there have been (the lock keeps the
        /// numbering and the publishing in one order).
        notes: Mutex<u64>,
        latest: watch::Sender<Option<Bytes>>,
        shouts: AtomicU64,
        streams: Mutex<Vec<mpsc::Sender<Bytes>>>,
    }

    pub async fn serve(port: u16) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        let listener = socket.listen(4096).unwrap();
        let hub = Arc::new(Hub {
            notes: Mutex::new(0),
            latest: watch::Sender::new(None),
            shouts: AtomicU64::new(0),
            streams: Mutex::default(),
        });
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(connection(socket, Arc::clone(&hub)));
        }
    }

    async fn connection(mut socket: TcpStream, hub: Arc<Hub>) {
        let mut request = Vec::with_capacity(1024);
        let mut buffer = [0u8; 1024];
        let head_end = loop {
            let Ok(n) = socket.read(&mut buffer).await else {
                return;
            };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buffer[..n]);
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        if request.starts_with(b"GET /sse/") {
            let (sender, mut shouts) = mpsc::channel::<Bytes>(32);
            let mut latest = hub.latest.subscribe();
            hub.streams.lock().unwrap().push(sender);
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\nevent: datastar-patch-signals\ndata: signals {\"connected\":true}\n\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                let event = tokio::select! {
                    changed = latest.changed() => match changed {
                        Ok(()) => latest.borrow_and_update().clone(),
                        Err(_) => return,
                    },
                    shout = shouts.recv() => match shout {
                        Some(shout) => Some(shout),
                        None => return,
                    },
                };
                if let Some(event) = event
                    && socket.write_all(&event).await.is_err()
                {
                    return;
                }
            }
        }
        let post_notes = request.starts_with(b"POST /notes");
        if !post_notes && !request.starts_with(b"POST /shouts") {
            return;
        }
        let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut body = request[head_end..].to_vec();
        while body.len() < length {
            let Ok(n) = socket.read(&mut buffer).await else {
                return;
            };
            if n == 0 {
                return;
            }
            body.extend_from_slice(&buffer[..n]);
        }
        let text = String::from_utf8_lossy(&body)
            .trim_start_matches("text=")
            .to_owned();
        // The same events the app sends: the same HTML, the same encoding.
        if post_notes {
            let mut notes = hub.notes.lock().unwrap();
            *notes += 1;
            let event = Bytes::from(format!(
                "event: datastar-patch-elements\ndata: elements <p id=\"note\">Note #{}: <strong>{text}</strong></p>\n\n",
                *notes
            ));
            hub.latest.send_replace(Some(event));
        } else {
            let number = hub.shouts.fetch_add(1, Ordering::Relaxed) + 1;
            let event = Bytes::from(format!(
                "event: datastar-patch-elements\ndata: elements <p id=\"shout\">Shout #{number}: <strong>{text}</strong></p>\n\n"
            ));
            let mut streams = hub.streams.lock().unwrap();
            streams.retain(|stream| stream.try_send(event.clone()).is_ok());
        }
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    }
}
