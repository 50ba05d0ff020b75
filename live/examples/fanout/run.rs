//! One run: the steps every part shares — start the server (or two), open N streams at once,
//! the steady rounds, the bursts, SIGTERM — and the report of what they measured. A part is a
//! set of runs that differ in where they run ([`Setup`]), how the clients connect
//! ([`Transport`]), and what they post; each run starts its own server, so that no run's
//! leftovers weigh on the next.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use live::testing::free_port;
use tokio::task::JoinHandle;

#[cfg(feature = "tls")]
use crate::https;
use crate::{
    burst,
    clients::{Kind, Poster, Shared, client, http},
    metrics,
    report::{self, Report},
    server::{Server, rss_kib},
    steady,
};

/// Where the clients connect and where the posts go.
pub enum Setup {
    /// One app started here.
    Local,
    /// A server someone else started.
    Remote(SocketAddr),
    /// Two apps sharing a `redis-server`: clients on one, posts to the other.
    CrossInstance(String),
    /// The bare baseline server.
    Raw,
    /// One app with `METRICS_ADDR` set, scraped every
    /// [`SCRAPE_EVERY`](metrics::SCRAPE_EVERY) while it runs.
    LocalWithMetrics,
}

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
pub enum Transport {
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

/// One run of `n` streams: `rounds` steady updates of each kind, then each of `bursts`; the
/// report is printed as the run ends, and returned for the summaries.
pub async fn run(
    n: usize,
    rounds: usize,
    bursts: &[usize],
    setup: &Setup,
    transport: Transport,
) -> Report {
    let mut servers = Servers::start(setup, transport, n).await;
    let poster = servers.poster(transport);
    let pid = servers.pid();
    let metrics = servers.metrics();
    // Scraped the whole run, as Prometheus would, and checked once to be what it claims.
    let _scraper = match metrics {
        Some(metrics) => Some(metrics::scraper(metrics).await),
        None => None,
    };
    warm_up(setup, transport, servers.addr).await;
    let rss_before = pid.and_then(rss_kib);
    let shared = Arc::new(Shared::new(n, rounds));
    let streams = Streams::open(servers.addr, n, transport, &shared).await;
    let rss_after = pid.and_then(rss_kib);
    let (live, all_live_ms) = (streams.live, streams.all_live_ms);

    let latest = steady::rounds(&shared, Kind::Latest, rounds, live, &poster, pid).await;
    let ordinary = steady::rounds(&shared, Kind::Ordinary, rounds, live, &poster, pid).await;
    // What the server's own sampled histogram says of the same rounds, beside the bench's.
    let sampled = match metrics {
        Some(metrics) => Some(metrics::sampled(metrics).await),
        None => None,
    };
    // A burst's posts are plain connections of their own, one per note.
    let bursts = match poster {
        Poster::Plain(post_to) => burst::bursts(&shared, bursts, live, post_to).await,
        #[cfg(feature = "tls")]
        Poster::Https(..) => Vec::new(),
    };
    // Shutdown: SIGTERM, then time until the process exits and every stream has ended.
    let shutdown = match servers.server.take() {
        Some(server) => Some(server.terminate(&shared.ended, n).await),
        None => None,
    };
    streams.abort();

    let (memory_kib, memory) = report::memory(rss_before, rss_after, live);
    let report = Report {
        n,
        label: label(setup, transport),
        live,
        all_live_ms,
        memory_kib,
        memory,
        latest,
        ordinary,
        bursts,
        shutdown,
        sampled,
    };
    report.print();
    report
}

/// What the report calls the run: its setup, and its transport unless plain.
fn label(setup: &Setup, transport: Transport) -> String {
    match transport {
        Transport::Plain => setup.label().to_owned(),
        _ => format!("{}, {}", setup.label(), transport.label()),
    }
}

/// The server processes of one run, stopped when dropped.
struct Servers {
    /// The one the clients connect to; `None` for a server someone else started.
    server: Option<Server>,
    /// Across instances, the other one: the posts go to it.
    sender: Option<Server>,
    /// Where the clients connect.
    addr: SocketAddr,
}

impl Servers {
    /// Starts what `setup` runs, allowed 1 000 streams more than the run's `n`.
    async fn start(setup: &Setup, transport: Transport, n: usize) -> Servers {
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
        Servers {
            server,
            sender,
            addr,
        }
    }

    /// Where the rounds' posts go, over the run's transport.
    fn poster(&self, transport: Transport) -> Poster {
        let post_to = self.sender.as_ref().map_or(self.addr, |sender| sender.addr);
        match transport {
            Transport::Plain => Poster::Plain(post_to),
            #[cfg(feature = "tls")]
            _ => Poster::Https(https::client(), post_to),
        }
    }

    /// The process whose memory and CPU are measured: the one the clients connect to.
    fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(Server::pid)
    }

    /// Its metrics address, when `METRICS_ADDR` is set.
    fn metrics(&self) -> Option<SocketAddr> {
        self.server.as_ref().and_then(|server| server.metrics)
    }
}

/// Warms the app up (templates, allocator) before its memory is read for the baseline.
async fn warm_up(setup: &Setup, transport: Transport, addr: SocketAddr) {
    if !matches!(setup, Setup::Raw) && transport == Transport::Plain {
        http(addr, "GET / HTTP/1.1", "").await;
    }
}

/// A run's streams, each read by a task of its own until the run aborts them.
struct Streams {
    tasks: Vec<JoinHandle<()>>,
    /// How many went live (had their first event).
    live: usize,
    /// From the first connect until the last stream went live.
    all_live_ms: f64,
}

impl Streams {
    /// Opens `n` streams in one burst — every client connects at once, like tabs reconnecting
    /// after a deploy — and waits until they have settled.
    async fn open(
        addr: SocketAddr,
        n: usize,
        transport: Transport,
        shared: &Arc<Shared>,
    ) -> Streams {
        let start = shared.now();
        let tasks = connect(addr, n, transport, shared);
        let live = settled(shared, n).await;
        let all_live_ms = (shared
            .last_live
            .load(Ordering::Relaxed)
            .saturating_sub(start)) as f64
            / 1e6;
        tokio::time::sleep(Duration::from_millis(300)).await; // let the server settle
        Streams {
            tasks,
            live,
            all_live_ms,
        }
    }

    fn abort(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A task for each client, all at once: one stream per connection, or over HTTP/2 several.
fn connect(
    addr: SocketAddr,
    n: usize,
    transport: Transport,
    shared: &Arc<Shared>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::with_capacity(n);
    match transport {
        Transport::Plain => {
            for index in 0..n {
                tasks.push(tokio::spawn(client(addr, index, Arc::clone(shared))));
            }
        }
        #[cfg(feature = "tls")]
        Transport::TlsHttp1 => {
            for index in 0..n {
                tasks.push(tokio::spawn(https::http1_client(
                    addr,
                    index,
                    Arc::clone(shared),
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
                    Arc::clone(shared),
                )));
            }
        }
    }
    tasks
}

/// Waits until every client is live or was turned away (a server's MAX_STREAMS, its per-client
/// cap, the open-files limit), or a minute has passed; says why any were turned away. Returns
/// how many are live.
pub async fn settled(shared: &Shared, n: usize) -> usize {
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
    live
}
