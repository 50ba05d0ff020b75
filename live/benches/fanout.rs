//! Fan-out benchmark: how fast one update reaches N open streams, and what they cost.
//!
//! ```sh
//! cargo bench -p live-kit --bench fanout                                # N = 1000, 5000, 10000
//! cargo bench -p live-kit --bench fanout -- --clients 2000 --rounds 50
//! cargo bench -p live-kit --bench fanout -- --clients 3000 --bursts 128,1024
//! cargo bench -p live-kit --bench fanout -- --addr 127.0.0.1:3000      # a server already running
//! cargo bench -p live-kit --bench fanout --features redis -- --redis   # also across two instances
//! ```
//!
//! The server is the kit's notes app (`tests/support/notes.rs`: a page stream following a
//! latest-state topic, an action that publishes it — the shape of every live page), run in a
//! process of its own: this benchmark's own binary, built in release mode by `cargo bench`, in
//! `--serve-notes` mode. For each N it opens N streams to `/sse/notes` with distinct session
//! ids in one burst over raw TCP, waits until every one has received its first event, then runs
//! R rounds of `POST /notes` (a Datastar form post) and measures, per round, the time from
//! sending the POST until the last of the N clients has the note. Then come bursts (`--bursts`,
//! default 128 and 1 024): that many notes posted at the same instant, each on its own
//! connection, and the time until every stream shows the newest one, with how many streams the
//! burst ended (it must end none). Finally it sends SIGTERM and times the shutdown. It prints
//! numbers and asserts nothing. The load generator shares the machine with the server.
//!
//! With `--raw` each N is also run against a bare tokio server written for this job alone (no
//! HTTP library, each event encoded once and shared): the lower bound to compare with.
//!
//! With `--redis` (build with `--features redis`; needs `redis-server` on the PATH) each N is
//! also run across instances: a `redis-server` and two app instances, the clients on one, the
//! notes posted to the other, so every event crosses Redis.
//!
//! A second part times the registry alone: a broadcast to a pattern matching 10 of 10 010
//! connections, and to one matching 10 000 of them.

#[allow(dead_code)]
#[path = "../tests/support/notes.rs"]
mod notes;

use std::{
    net::{SocketAddr, TcpListener as StdListener},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use datastar::prelude::PatchSignals;
use live::{
    Frame,
    registry::{Key, Limits, Pattern, Registry},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Options {
    clients: Vec<usize>,
    rounds: usize,
    bursts: Vec<usize>,
    addr: Option<SocketAddr>,
    redis: bool,
    raw: bool,
}

fn options() -> Options {
    let mut options = Options {
        clients: vec![1_000, 5_000, 10_000],
        rounds: 20,
        bursts: vec![128, 1_024],
        addr: None,
        redis: false,
        raw: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--clients" => {
                options.clients = args
                    .next()
                    .expect("--clients N[,N…]")
                    .split(',')
                    .map(|n| n.trim().parse().expect("a number of clients"))
                    .collect();
            }
            "--rounds" => options.rounds = args.next().expect("--rounds R").parse().unwrap(),
            "--bursts" => {
                options.bursts = args
                    .next()
                    .expect("--bursts B[,B…]")
                    .split(',')
                    .filter(|b| !b.trim().is_empty())
                    .map(|b| b.trim().parse().expect("a number of greets"))
                    .collect();
            }
            "--addr" => {
                options.addr = Some(args.next().expect("--addr HOST:PORT").parse().unwrap())
            }
            "--redis" => options.redis = true,
            "--raw" => options.raw = true,
            _ => {} // `cargo bench` passes `--bench`; ignore what is not ours
        }
    }
    options
}

/// Per-round delivery bookkeeping, shared by every client task.
struct Round {
    delivered: AtomicUsize,
    /// Nanoseconds since `Shared::epoch` at which the last client got this round.
    last: AtomicU64,
}

struct Shared {
    epoch: Instant,
    run: u64,
    live: AtomicUsize,
    last_live: AtomicU64,
    ended: AtomicUsize,
    rounds: Vec<Round>,
    /// The highest note number each client has seen ("Note #N").
    newest: Vec<AtomicU64>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        }
    }

    async fn start(max_streams: usize, redis_url: Option<&str>) -> Server {
        let port = free_port();
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .arg("--serve-notes")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("MAX_STREAMS", max_streams.to_string())
            // Every client of the benchmark comes from 127.0.0.1.
            .env("MAX_STREAMS_PER_CLIENT", max_streams.to_string())
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
            )
            .env_remove("REDIS_URL")
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
        let child = command.spawn().expect("start the app");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = Server {
            child: Some(child),
            addr,
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

async fn publish(addr: SocketAddr, text: &str) {
    let body = format!("text={text}");
    let rest = format!(
        "datastar-request: true\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http(addr, "POST /notes HTTP/1.1", &rest).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "publishing failed: {response}"
    );
}

/// One SSE client: connects, counts itself live at the first event, then records each round's
/// greeting as it arrives, until the server ends the stream.
async fn client(addr: SocketAddr, index: usize, shared: Arc<Shared>) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let request = format!(
        "GET /sse/notes?datastar=%7B%22sessionId%22%3A%22{}%22%7D HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\ndatastar-request: true\r\n\r\n",
        uuid::Uuid::new_v4()
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let marker = format!("<strong>{}r", shared.run);
    let mut live = false;
    let mut seen_rounds = 0usize;
    let mut buffer = vec![0u8; 8192];
    let mut carry = String::new();
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carry.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if carry.contains("\r\n0\r\n\r\n") {
            break; // the server ended the stream: the response's last chunk
        }
        for rest in carry.split("Note #").skip(1) {
            // The last piece may be cut short; a later read completes it.
            if let Some((serial, _)) = rest.split_once(':')
                && let Ok(serial) = serial.parse::<u64>()
            {
                shared.newest[index].fetch_max(serial, Ordering::Relaxed);
            }
        }
        if !live && carry.contains("\"connected\":true") {
            live = true;
            shared.live.fetch_add(1, Ordering::Relaxed);
            shared.last_live.fetch_max(shared.now(), Ordering::Relaxed);
        }
        while let Some(at) = carry.find(&marker) {
            let digits: String = carry[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let complete = carry[at + marker.len() + digits.len()..].starts_with('<');
            if !complete {
                break; // the rest of this event is in the next read
            }
            if let Ok(round) = digits.parse::<usize>()
                && round >= seen_rounds
                && let Some(slot) = shared.rounds.get(round)
            {
                seen_rounds = round + 1;
                slot.delivered.fetch_add(1, Ordering::Relaxed);
                slot.last.fetch_max(shared.now(), Ordering::Relaxed);
            }
            carry.drain(..at + marker.len());
        }
        // Keep only a tail that could hold the start of a split marker.
        if carry.len() > 512 {
            let cut = carry.len() - 256;
            let cut = (cut..carry.len())
                .find(|&i| carry.is_char_boundary(i))
                .unwrap();
            carry.drain(..cut);
        }
    }
    shared.ended.fetch_add(1, Ordering::Relaxed);
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Where the clients connect and where the greetings are posted.
enum Setup {
    /// One app started here.
    Local,
    /// A server someone else started.
    Remote(SocketAddr),
    /// Two apps sharing a `redis-server`: clients on one, greetings to the other.
    CrossInstance(String),
    /// The bare baseline server.
    Raw,
}

async fn run(n: usize, rounds: usize, bursts: &[usize], setup: &Setup) {
    let (server, sender, addr) = match setup {
        Setup::Remote(addr) => (None, None, *addr),
        Setup::Local => {
            let server = Server::start(n + 1_000, None).await;
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
    let greet_to = sender.as_ref().map_or(addr, |sender| sender.addr);
    let pid = server.as_ref().and_then(Server::pid);
    // Warm up (templates, allocator), then take the baseline.
    if !matches!(setup, Setup::Raw) {
        http(addr, "GET / HTTP/1.1", "").await;
    }
    let rss_before = pid.and_then(rss_kib);

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        run: std::process::id() as u64 * 1000 + n as u64,
        live: AtomicUsize::new(0),
        last_live: AtomicU64::new(0),
        ended: AtomicUsize::new(0),
        rounds: (0..rounds)
            .map(|_| Round {
                delivered: AtomicUsize::new(0),
                last: AtomicU64::new(0),
            })
            .collect(),
        newest: (0..n).map(|_| AtomicU64::new(0)).collect(),
    });

    // One burst: every client connects at once, like tabs reconnecting after a deploy.
    let start = shared.now();
    let mut tasks = Vec::with_capacity(n);
    for index in 0..n {
        tasks.push(tokio::spawn(client(addr, index, Arc::clone(&shared))));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.live.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = shared.live.load(Ordering::Relaxed);
    let all_live = (shared.last_live.load(Ordering::Relaxed) - start) as f64 / 1e6;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the server settle
    let rss_after = pid.and_then(rss_kib);

    // Rounds: POST, then wait for the last client to have the greeting.
    let cpu_before = pid.and_then(cpu_seconds);
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let slot = &shared.rounds[round];
        let sent = shared.now();
        publish(greet_to, &format!("{}r{round}", shared.run)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while slot.delivered.load(Ordering::Relaxed) < live && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let last = slot.last.load(Ordering::Relaxed);
        latencies.push(last.saturating_sub(sent) as f64 / 1e6);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_per_round = match (cpu_before, pid.and_then(cpu_seconds)) {
        (Some(before), Some(after)) => Some((after - before) / rounds as f64 * 1000.0),
        _ => None,
    };
    let delivered: usize = shared
        .rounds
        .iter()
        .map(|r| r.delivered.load(Ordering::Relaxed))
        .sum();

    // Bursts: B greets sent at the same instant, each on its own connection; then the time until
    // every stream shows the newest greeting, and how many streams the burst ended.
    let mut burst_results = Vec::new();
    for &burst in bursts {
        let base = shared
            .newest
            .iter()
            .map(|newest| newest.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let target = base + burst as u64;
        let ended_before = shared.ended.load(Ordering::Relaxed);
        let release = Arc::new(tokio::sync::Barrier::new(burst + 1));
        let greets: Vec<_> = (0..burst)
            .map(|i| {
                let release = Arc::clone(&release);
                let name = format!("{}b{i}", shared.run);
                tokio::spawn(async move {
                    release.wait().await;
                    publish(greet_to, &name).await;
                })
            })
            .collect();
        release.wait().await;
        let sent = Instant::now();
        for greet in greets {
            let _ = greet.await;
        }
        let replied = sent.elapsed();
        let deadline = sent + Duration::from_secs(60);
        let all_newest = loop {
            let behind = shared
                .newest
                .iter()
                .take(live)
                .filter(|newest| newest.load(Ordering::Relaxed) < target)
                .count();
            if behind == 0 {
                break Some(sent.elapsed());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let dropped = shared.ended.load(Ordering::Relaxed) - ended_before;
        burst_results.push((burst, replied, all_newest, dropped));
        tokio::time::sleep(Duration::from_millis(200)).await;
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

    let mut sorted = latencies.clone();
    let memory = match (rss_before, rss_after) {
        (Some(before), Some(after)) => format!(
            "{:.1} KiB ({} → {} MiB)",
            (after.saturating_sub(before)) as f64 / live.max(1) as f64,
            before / 1024,
            after / 1024
        ),
        _ => "n/a (remote server)".into(),
    };
    let label = match setup {
        Setup::Local => "one instance",
        Setup::Remote(_) => "remote server",
        Setup::CrossInstance(_) => "across instances through Redis",
        Setup::Raw => "raw tokio baseline",
    };
    println!("N = {n} ({label})");
    println!("  live: {live}/{n} in {all_live:.0} ms after the first connect");
    println!("  memory per stream: {memory}");
    println!(
        "  all-delivered latency: median {:.1} ms, max {:.1} ms over {rounds} rounds",
        median(&mut sorted),
        latencies.iter().cloned().fold(0.0, f64::max)
    );
    match cpu_per_round {
        Some(cpu) => println!("  server CPU per round: {cpu:.1} ms"),
        None => println!("  server CPU per round: n/a (remote server)"),
    }
    println!("  delivered/expected: {delivered}/{}", live * rounds);
    for (burst, replied, all_newest, dropped) in burst_results {
        let newest = match all_newest {
            Some(took) => format!(
                "all {live} show the newest in {:.0} ms",
                took.as_secs_f64() * 1000.0
            ),
            None => "NOT all on the newest within 60 s".to_owned(),
        };
        println!(
            "  burst of {burst} simultaneous greets: replies in {:.0} ms, {newest}, {dropped} streams dropped",
            replied.as_secs_f64() * 1000.0
        );
    }
    if let Some((exited, ended, count)) = shutdown {
        println!(
            "  shutdown: process exited {:.0} ms after SIGTERM; {count}/{n} streams ended within {:.0} ms",
            exited.as_secs_f64() * 1000.0,
            ended.as_secs_f64() * 1000.0
        );
    }
}

/// The registry alone: broadcast cost should follow the number of *matching* connections.
fn registry_benchmark() {
    // Nobody reads here: room for every frame the loop queues.
    let registry = Registry::new(Limits {
        queue_limit: 1 << 17,
        ..Limits::default()
    });
    let mut held = Vec::new();
    for i in 0..10_000 {
        held.push(
            registry
                .connect(Key::new(&format!("page/home/{i}")).unwrap())
                .unwrap(),
        );
    }
    for i in 0..10 {
        held.push(
            registry
                .connect(Key::new(&format!("page/other/{i}")).unwrap())
                .unwrap(),
        );
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
    drop(held);
}

/// The server under test: the notes app, configured from the environment like any app.
fn serve_notes() {
    let _logging = live::logging::init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let settings = live::Settings::from_env().expect("settings");
        let live = notes::live(&settings);
        let server = live::Server::bind(&settings, live.clone()).await.unwrap();
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
    registry_benchmark();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let redis = options.redis.then(RedisServer::start);
        for &n in &options.clients {
            match options.addr {
                Some(addr) => run(n, options.rounds, &options.bursts, &Setup::Remote(addr)).await,
                None => run(n, options.rounds, &options.bursts, &Setup::Local).await,
            }
            if let Some(redis) = &redis {
                let setup = Setup::CrossInstance(redis.url());
                run(n, options.rounds, &options.bursts, &setup).await;
            }
            if options.raw {
                // The raw server keeps one bounded queue per stream, like the registry used to:
                // bursts are not its job.
                run(n, options.rounds, &[], &Setup::Raw).await;
            }
        }
    });
}

/// The lower bound: a tokio server that speaks just enough HTTP/1.1 for this benchmark, with
/// no HTTP library and no framework. Each stream is a task owning its socket and a bounded
/// channel; a greeting is encoded once and the same bytes are queued for every stream.
mod raw {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpSocket, TcpStream},
        sync::mpsc,
    };

    type Streams = Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>;

    pub async fn serve(port: u16) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        let listener = socket.listen(4096).unwrap();
        let streams: Streams = Arc::default();
        let greetings = Arc::new(Mutex::new(0u64));
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(connection(
                socket,
                Arc::clone(&streams),
                Arc::clone(&greetings),
            ));
        }
    }

    async fn connection(mut socket: TcpStream, streams: Streams, greetings: Arc<Mutex<u64>>) {
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
            let (sender, mut receiver) = mpsc::channel::<Bytes>(32);
            streams.lock().unwrap().push(sender);
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\nevent: datastar-patch-signals\ndata: signals {\"connected\":true}\n\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while let Some(event) = receiver.recv().await {
                if socket.write_all(&event).await.is_err() {
                    return;
                }
            }
        } else if request.starts_with(b"POST /notes") {
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
            let name = String::from_utf8_lossy(&body)
                .trim_start_matches("text=")
                .to_owned();
            // The same event the app sends: the same HTML, the same encoding.
            let serial = {
                let mut count = greetings.lock().unwrap();
                *count += 1;
                *count
            };
            let event = Bytes::from(format!(
                "event: datastar-patch-elements\ndata: elements <p id=\"note\">Note #{serial}: <strong>{name}</strong></p>\n\n"
            ));
            {
                let mut streams = streams.lock().unwrap();
                streams.retain(|stream| stream.try_send(event.clone()).is_ok());
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    }
}
