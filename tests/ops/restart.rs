//! Restarts nobody notices: the app serves on a socket that outlives its process, the way
//! systemd passes one (socket activation), and a restart under load loses nothing.
//!
//! A launcher in this test plays systemd: it holds the listening socket (made with a queue of
//! 128, as a launcher that asks for nothing more gets) and passes it to each process it starts
//! as file descriptor 3, with `LISTEN_FDS=1`. Two thousand tabs hold streams, pages are fetched
//! and greetings posted without a pause; the app is stopped with SIGTERM and, once it has
//! exited, started again on the same socket (`systemctl restart`). The tabs reconnect either as
//! Datastar does, after the `retry:` the server asked for, or at once — as proxies, other SSE
//! clients and retry timers that fire early do. A page request sent in the instant after the
//! SIGTERM must be answered too. For comparison the same runs with a plain restart, where each
//! process binds its own socket. The latest greeting lives in Redis (feature `redis`), so the
//! next process starts from it.
//!
//! To measure rather than test: `RESTART_TABS=1000` changes the number of tabs, and
//! `RESTART_BINARY=target/release/<app>` runs a release build (`cargo build --release` first).

use std::{
    net::{SocketAddr, TcpListener},
    os::{fd::AsRawFd, unix::process::CommandExt},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use live::testing::{Process, RedisServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Tabs, unless `RESTART_TABS` says otherwise.
const DEFAULT_TABS: usize = 2_000;
const PATIENCE: Duration = Duration::from_secs(30);
const SECRET: &str = "the restart test's secret, 32+ characters";

fn tabs() -> usize {
    std::env::var("RESTART_TABS")
        .ok()
        .and_then(|tabs| tabs.parse().ok())
        .unwrap_or(DEFAULT_TABS)
}

/// The app's binary, or `RESTART_BINARY`'s, run apart from the developer's settings
/// ([`live::testing::app_command`]).
fn command() -> Command {
    let Some(binary) = std::env::var_os("RESTART_BINARY") else {
        return live::testing::app_command(env!("CARGO_PKG_NAME"));
    };
    let mut command = Command::new(binary);
    command.current_dir(live::testing::empty_dir());
    live::testing::without_settings(&mut command);
    command
}

/// How a new process gets its socket.
#[derive(Clone, Copy, Debug)]
enum Socket<'a> {
    /// From the launcher, which holds it the whole time (systemd's socket activation).
    Inherited(&'a TcpListener),
    /// Its own, bound to this address (once the old process has let go of it).
    Plain(SocketAddr),
}

/// One app process, stopped with the test.
struct App(Process);

impl App {
    fn start(socket: Socket<'_>, redis: &RedisServer) -> App {
        let mut command = command();
        command
            .env("RUST_LOG", "warn")
            .env("REDIS_URL", redis.url())
            .env("REDIS_SECRET", SECRET)
            .env("REDIS_PREFIX", format!("restart-test-{}", redis.port))
            .env("MAX_STREAMS_PER_CLIENT", "10000") // every tab is 127.0.0.1 here
            .env("MAX_CONNECTIONS_PER_CLIENT", "10000")
            .env("ACTION_RATE_PER_SEC", "off") // and so is the greeter, at 20 a second
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        match socket {
            Socket::Inherited(listener) => {
                let fd = listener.as_raw_fd();
                command.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
                // SAFETY: between fork and exec only async-signal-safe calls: dup2 and fcntl.
                unsafe {
                    command.pre_exec(move || {
                        if fd != 3 && libc::dup2(fd, 3) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        // The passed socket must survive exec.
                        if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            Socket::Plain(addr) => {
                command
                    .env("HOST", addr.ip().to_string())
                    .env("PORT", addr.port().to_string());
            }
        }
        App(Process::spawn(&mut command))
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// What the test saw.
#[derive(Default)]
struct Seen {
    /// Requests that failed: refused, reset, or answered with neither success nor redirect.
    failed: AtomicUsize,
    /// Greets answered with success; the highest number posted that was.
    greeted: AtomicU64,
    /// When the restart began (ms since `start`; 0 before).
    restarted_at: AtomicU64,
    /// Tabs live again on the new process.
    back: AtomicUsize,
    /// The last of them to come back (ms since `start`).
    last_back: AtomicU64,
    stop: AtomicBool,
}

/// How a tab reconnects once its stream has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reconnect {
    /// After the `retry:` the server last gave (1 s by default), as Datastar does.
    AsAsked,
    /// At once, whatever the server asked for.
    AtOnce,
}

/// One tab: holds the home stream, reconnecting `how`, and remembers the last greeting it
/// showed.
async fn tab(
    addr: SocketAddr,
    how: Reconnect,
    seen: Arc<Seen>,
    start: Instant,
    shown: Arc<Mutex<String>>,
) {
    let mut retry = Duration::from_secs(1);
    let mut counted_back = false;
    while !seen.stop.load(Ordering::Relaxed) {
        let signals = format!("%7B%22sessionId%22%3A%22{}%22%7D", uuid::Uuid::new_v4());
        let request = format!(
            "GET /sse/home?datastar={signals} HTTP/1.1\r\nHost: {addr}\r\n\
             Accept: text/event-stream\r\ndatastar-request: true\r\n\r\n"
        );
        // Only a stream opened after the restart began counts as back.
        let after_restart = seen.restarted_at.load(Ordering::Relaxed) > 0;
        let mut stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(_) => {
                seen.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry.min(Duration::from_millis(100))).await;
                continue;
            }
        };
        if stream.write_all(request.as_bytes()).await.is_err() {
            seen.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut text = String::new();
        let mut buffer = vec![0; 16 * 1024];
        let mut answered = false;
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buffer[..n])),
                Err(_) => {
                    if !answered {
                        seen.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
            }
            if !answered && text.contains("\r\n\r\n") {
                answered = true;
                if !text.starts_with("HTTP/1.1 200") {
                    seen.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            if after_restart && !counted_back && text.contains("\"connected\":true") {
                counted_back = true;
                seen.back.fetch_add(1, Ordering::Relaxed);
                seen.last_back
                    .fetch_max(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            for line in text.lines() {
                if let Some(ms) = line.strip_prefix("retry: ").and_then(|ms| ms.parse().ok()) {
                    retry = Duration::from_millis(ms);
                }
            }
            if let Some(name) = text
                .rsplit("<strong>")
                .next()
                .filter(|_| text.contains("<strong>"))
                .and_then(|rest| rest.split("</strong>").next())
            {
                *shown.lock().unwrap() = name.to_owned();
            }
            if text.contains("\r\n0\r\n\r\n") {
                break; // the server ended the stream
            }
            // Keep the tail only: enough for an event split between two reads.
            if text.len() > 8 * 1024 {
                let cut = text.len() - 4 * 1024;
                let cut = (cut..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap();
                text.drain(..cut);
            }
        }
        if how == Reconnect::AsAsked {
            tokio::time::sleep(retry).await;
        }
    }
}

/// One request on a fresh connection; whether it succeeded (2xx or 3xx).
async fn request(addr: SocketAddr, head: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).await.is_err() {
        return false;
    }
    response.starts_with(b"HTTP/1.1 2") || response.starts_with(b"HTTP/1.1 3")
}

/// Pages every 10 ms and a greet every 50 ms, each on a fresh connection, until told to stop.
async fn load(addr: SocketAddr, seen: Arc<Seen>) {
    let mut n = 0u64;
    while !seen.stop.load(Ordering::Relaxed) {
        n += 1;
        let page = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        if !request(addr, &page).await {
            seen.failed.fetch_add(1, Ordering::Relaxed);
        }
        if n.is_multiple_of(5) {
            let body = format!("name=g{n}");
            let greet = format!(
                "POST /api/greet HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 datastar-request: true\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if request(addr, &greet).await {
                seen.greeted.fetch_max(n, Ordering::Relaxed);
            } else {
                seen.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Outcome {
    failed: usize,
    /// From the new process's start until every tab was live again.
    all_back: Option<Duration>,
    /// From the SIGTERM until the new process started.
    gap: Duration,
    /// The page requested right after the SIGTERM: answered with success, and when.
    probe: (bool, Duration),
    tabs_on_the_latest: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed requests; new process started {} ms after the SIGTERM; all {} tabs \
             live again {} after it started; the page requested just after the SIGTERM {} \
             after {} ms; {} of {} tabs on the latest greeting",
            self.failed,
            self.gap.as_millis(),
            tabs(),
            self.all_back
                .map_or("never".to_owned(), |d| format!("{} ms", d.as_millis())),
            if self.probe.0 { "answered" } else { "FAILED" },
            self.probe.1.as_millis(),
            self.tabs_on_the_latest,
            tabs(),
        )
    }
}

/// How the restart is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// The socket outlives the process; the next process starts once the old one has exited.
    Inherited,
    /// Each process binds its own; the next starts once the old one has gone (a restart
    /// without socket activation).
    Plain,
}

/// A restart under load, done `how`, with tabs that reconnect `reconnect`.
async fn restart_under_load(how: Restart, reconnect: Reconnect) -> Outcome {
    live::serve::raise_open_files_limit();
    let redis = RedisServer::start().await;
    // The launcher's socket, with the queue a launcher gets when it asks for nothing more
    // (Python's `listen()`, say): far less than 2 000 tabs reconnecting at once. The app sets
    // its own (`LISTEN_BACKLOG`). A plain restart only takes its port: the app binds that itself.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(128).unwrap();
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().unwrap();
    let held = (how == Restart::Inherited).then_some(listener);
    let socket = || match &held {
        Some(listener) => Socket::Inherited(listener),
        None => Socket::Plain(addr),
    };

    let mut first = App::start(socket(), &redis);
    let health = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let deadline = Instant::now() + PATIENCE;
    while !request(addr, &health).await {
        assert!(Instant::now() < deadline, "the app did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = Arc::new(Seen::default());
    let start = Instant::now();
    let shown: Vec<Arc<Mutex<String>>> = (0..tabs()).map(|_| Arc::default()).collect();
    for shown in &shown {
        let seen = Arc::clone(&seen);
        tokio::spawn(tab(addr, reconnect, seen, start, Arc::clone(shown)));
    }
    tokio::spawn(load(addr, Arc::clone(&seen)));
    tokio::time::sleep(Duration::from_secs(2)).await; // every tab live, greets flowing
    let failed_before = seen.failed.load(Ordering::Relaxed);

    // The restart: SIGTERM, a page requested in the same instant, and the next process once
    // the old one has exited.
    seen.restarted_at
        .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    let restarted = Instant::now();
    first.terminate();
    let page = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let probe = tokio::spawn(async move {
        let answered = tokio::time::timeout(PATIENCE, request(addr, &page)).await;
        (answered == Ok(true), restarted.elapsed())
    });
    first.wait();
    let gap = restarted.elapsed();
    let second = App::start(socket(), &redis);
    let started = start.elapsed().as_millis() as u64;
    let deadline = restarted + PATIENCE;
    while seen.back.load(Ordering::Relaxed) < tabs() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_back = (seen.back.load(Ordering::Relaxed) == tabs()).then(|| {
        let last = seen.last_back.load(Ordering::Relaxed);
        Duration::from_millis(last.saturating_sub(started))
    });
    let probe = probe.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // the load goes on after the restart
    seen.stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await; // the last greets reach every tab

    let latest = format!("g{}", seen.greeted.load(Ordering::Relaxed));
    let tabs_on_the_latest = shown
        .iter()
        .filter(|shown| *shown.lock().unwrap() == latest)
        .count();
    drop(second);
    Outcome {
        failed: seen.failed.load(Ordering::Relaxed) - failed_before,
        all_back,
        gap,
        probe,
        tabs_on_the_latest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_an_inherited_socket_refuses_nothing_and_loses_no_greeting() {
    let scenarios = [
        (
            "inherited socket, tabs reconnect as asked",
            Restart::Inherited,
            Reconnect::AsAsked,
        ),
        (
            "inherited socket, tabs reconnect at once",
            Restart::Inherited,
            Reconnect::AtOnce,
        ),
        (
            "plain restart, tabs reconnect as asked",
            Restart::Plain,
            Reconnect::AsAsked,
        ),
    ];
    let mut outcomes = Vec::new();
    for (name, how, reconnect) in scenarios {
        let outcome = restart_under_load(how, reconnect).await;
        eprintln!("{name}: {outcome}");
        outcomes.push((name, how, outcome));
    }
    for (name, _, outcome) in outcomes
        .iter()
        .filter(|(_, how, _)| *how == Restart::Inherited)
    {
        assert_eq!(
            outcome.failed, 0,
            "{name}: a request was refused or cut off"
        );
        assert!(
            outcome.probe.0,
            "{name}: the page requested during the restart failed"
        );
        assert!(
            outcome.all_back.is_some(),
            "{name}: not every tab came back"
        );
        assert_eq!(
            outcome.tabs_on_the_latest,
            tabs(),
            "{name}: a greeting sent during the restart was lost for some tabs"
        );
    }
}
