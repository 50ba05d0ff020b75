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
//!   exact count, and the presence frames each tab was written (`fanout/presence.rs`);
//! - **compressed streams** (`--compression-clients`, default 10 000): the steady rounds of a
//!   note, a shout and a fat morph (200 rows re-rendered, one changed), plain, gzipped by the
//!   app, and gzipped by Caddy's `encode` in front (one compressor per stream): bytes per event
//!   on the wire, latency, CPU per round and memory per stream of each (`fanout/compression.rs`).
//!
//! It prints numbers and asserts nothing. The load generator shares the machine with the
//! server. `--no-raw` skips the baseline; `--redis` (build with `--features redis`, needs
//! `redis-server` on the PATH) also runs each N across two instances sharing a `redis-server`,
//! clients on one, posts to the other, so every event crosses Redis.
//!
//! A first part times the registry alone: a broadcast to a pattern matching 10 of 10 010
//! connections and to one matching 10 000 of them, and a latest-state publish with 10 000
//! followers waiting for it and with none waiting (a burst's later publishes).
//!
//! Where each part lives, under `fanout/`:
//!
//! - `options.rs`: the command line (`--help`), and sizes fitted to the open-files limit;
//! - `run.rs`: one run — the steps every part shares (start the server, open the streams, the
//!   rounds, the bursts, SIGTERM);
//! - `steady.rs`, `burst.rs`, `https.rs`, `metrics.rs`, `presence.rs`, `compression.rs`,
//!   `registry.rs`: the parts, each named for what it measures;
//! - `clients.rs`: the load generator's stream readers and posters;
//! - `server.rs`: the server process — started, read from `/proc`, stopped — and what it runs
//!   with `--serve-notes`;
//! - `raw.rs`: the bare tokio baseline (`--serve-raw`);
//! - `report.rs`: each run's lines and the summaries;
//! - `probe.rs`: `--addr`'s check that the server there is the notes app.
//!
//! `--redis` runs on the kit's test `redis-server` (`live::testing::RedisServer`).

// A crate root's modules are looked for beside it (`examples/`), not in `fanout/`: each names
// its file.
#[path = "fanout/burst.rs"]
mod burst;
#[path = "fanout/clients.rs"]
mod clients;
#[path = "fanout/compression.rs"]
mod compression;
#[cfg(feature = "tls")]
#[path = "fanout/https.rs"]
mod https;
#[path = "fanout/metrics.rs"]
mod metrics;
#[allow(dead_code)]
#[path = "../tests/support/notes.rs"]
mod notes;
#[path = "fanout/options.rs"]
mod options;
#[path = "fanout/presence.rs"]
mod presence;
#[path = "fanout/probe.rs"]
mod probe;
#[path = "fanout/raw.rs"]
mod raw;
#[path = "fanout/registry.rs"]
mod registry;
#[path = "fanout/report.rs"]
mod report;
#[path = "fanout/run.rs"]
mod run;
#[path = "fanout/server.rs"]
mod server;
#[path = "fanout/steady.rs"]
mod steady;

use std::net::SocketAddr;

use crate::{
    options::Options,
    run::{Setup, Transport, run},
    server::Server,
};

fn main() {
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--serve-notes") {
        server::serve_notes();
        return;
    }
    if first.as_deref() == Some("--serve-raw") {
        let port: u16 = args.next().expect("--serve-raw PORT").parse().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(raw::serve(port));
        return;
    }
    let options = options::options();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match options.addr {
        Some(addr) => runtime.block_on(remote(addr, &options)),
        None => {
            if options.registry {
                registry::benchmark();
            }
            runtime.block_on(local(&options));
        }
    }
}

/// `--addr`: the steady and burst rounds against a server started apart, once it is known to
/// be the notes app. The registry's figures would be this machine's, not the server's: not
/// measured here; nor is there a baseline to set beside, so no summary.
async fn remote(addr: SocketAddr, options: &Options) {
    if let Err(message) = probe::check(addr).await {
        stop(&message);
    }
    println!("{addr} serves the notes app: a stream opened and a note reached it");
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
}

/// Every part the options name, against servers started here, then the summaries.
async fn local(options: &Options) {
    // `--redis`'s server, shared by the cross-instance runs of every part.
    #[cfg(feature = "redis")]
    let redis = match options.redis {
        true => Some(live::testing::RedisServer::start().await),
        false => None,
    };
    #[cfg(feature = "redis")]
    let redis_url = redis.as_ref().map(live::testing::RedisServer::url);
    #[cfg(not(feature = "redis"))]
    let redis_url: Option<String> = None; // without the feature, `--redis` stops at the options
    let steady = steady::measure(options, redis_url.as_deref()).await;
    let bursts = burst::measure(options, redis_url.as_deref()).await;
    #[cfg(feature = "tls")]
    let secure = https::measure(options).await;
    #[cfg(not(feature = "tls"))]
    let secure = Vec::new();
    let metrics = metrics::measure(options).await;
    // Presence: join and leave storms on a page that shows how many are there.
    for &n in &options.presence {
        let server = Server::start(n + 2_000, None).await;
        presence::storms(server.addr, n).await;
    }
    // Compressed streams: plain, gzipped by the app, gzipped by Caddy.
    compression::measure(&options.compression, options.rounds).await;
    report::summary(&steady, &bursts);
    report::https_summary(&secure);
    report::metrics_summary(&metrics);
}

/// Ends the benchmark with `message` on stderr.
fn stop(message: &str) -> ! {
    eprintln!("fanout: {message}");
    std::process::exit(2)
}
