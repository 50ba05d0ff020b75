//! What to measure: the command line ([`HELP`]), and the sizes it asks for lowered to what the
//! open-files limit allows — a stream over the limit would be refused by the benchmark's own
//! machine, not by the server under test.

use std::net::SocketAddr;

use crate::stop;

/// What to measure, from the command line ([`HELP`]).
pub struct Options {
    pub steady: Vec<usize>,
    /// N for the HTTPS rows (TLS with HTTP/1.1, and HTTP/2), beside plain HTTP/1.1.
    pub https: Vec<usize>,
    pub burst_clients: Vec<usize>,
    pub rounds: usize,
    pub bursts: Vec<usize>,
    pub addr: Option<SocketAddr>,
    pub redis: bool,
    pub raw: bool,
    /// N for the cost of metrics: the app with `METRICS_ADDR` unset and set, scraped.
    pub metrics: Vec<usize>,
    /// N for presence: a storm of N joins, then of N / 2 leaves.
    pub presence: Vec<usize>,
    /// N for compressed streams: plain, gzipped by the app, gzipped by Caddy.
    pub compression: Vec<usize>,
    /// The registry alone, without a server.
    pub registry: bool,
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
    --compression-clients N[,N...] steady fan-out of a note, a shout and a fat morph (200
                               rows re-rendered, one changed) to N streams: plain, gzipped by
                               the app, and gzipped by Caddy's encode in front (needs caddy)
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

/// This process's open-files limit (its soft limit; servers it starts inherit it).
pub fn open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1_024, |(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        1_024
    }
}

/// The command line's options: the parts it names run (all of them when it names none), at
/// sizes that fit the open-files limit.
pub fn options() -> Options {
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
        compression: vec![10_000],
        registry: true,
    };
    let named = parse(&mut options);
    if !named.is_empty() {
        only(&mut options, &named);
    }
    if options.redis && !cfg!(feature = "redis") {
        stop("--redis needs the benchmark built with --features redis (see --help)");
    }
    fit(&mut options);
    options
}

/// Reads the arguments into `options`; returns the parts they name.
fn parse(options: &mut Options) -> Vec<&'static str> {
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
            "--compression-clients" => {
                options.compression = numbers(&value(&mut args, "--compression-clients"));
                named.push("compression");
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
    named
}

/// Turns off every part `named` leaves out.
fn only(options: &mut Options, named: &[&str]) {
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
    if off("compression") {
        options.compression.clear();
    }
}

/// Lowers each part's sizes to what the open-files limit allows beside what else it opens.
fn fit(options: &mut Options) {
    // A burst's posts are connections of their own, open at once beside the streams.
    let burst = options.bursts.iter().copied().max().unwrap_or(0);
    options.steady = fitted("--clients", std::mem::take(&mut options.steady), 0);
    options.burst_clients = fitted(
        "--burst-clients",
        std::mem::take(&mut options.burst_clients),
        burst,
    );
    options.https = fitted("--https-clients", std::mem::take(&mut options.https), 0);
    options.metrics = fitted("--metrics-clients", std::mem::take(&mut options.metrics), 0);
    options.compression = fitted(
        "--compression-clients",
        std::mem::take(&mut options.compression),
        0,
    );
    // The presence part's server is allowed 2 000 streams more than it is sent.
    options.presence = fitted(
        "--presence-clients",
        std::mem::take(&mut options.presence),
        2_000,
    );
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
