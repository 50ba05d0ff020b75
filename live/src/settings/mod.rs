//! Settings, read from environment variables (and a `.env` file), each with a default that
//! works locally.
//!
//! Every value is checked at start, against what the app can actually use: a setting that
//! parses but would fail later (a keep-alive of 2⁶⁴ seconds overflows the first timer that
//! uses it) stops the app with a message naming the variable, rather than crash a connection
//! at the first request.

use std::{
    ffi::OsString,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

mod parse;
mod validate;
mod variables;

use self::parse::{
    Listed, Source, acme, action_limit, bounded, client_ip_header, compress_streams, is_integrity,
    parse, redis_ca, redis_url, seconds,
};
pub use self::variables::VARIABLES;
pub use crate::rate_limit::ActionLimit;
use crate::{
    client_addr::{ClientIpHeader, ClientNetworks},
    script::{DATASTAR_CDN_INTEGRITY, DATASTAR_CDN_URL},
};

/// The longest any of the `*_SECS` settings may be: a day. Longer would never be meant, and
/// unbounded ones overflow timers.
const MAX_SECS: u64 = 24 * 60 * 60;

/// Everything the app can be told from outside.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `HOST`: the address to listen on. Default `127.0.0.1` (use `0.0.0.0` in a container).
    pub host: IpAddr,
    /// `PORT`: the port to listen on; `0` picks a free one. Default `3000`.
    pub port: u16,
    /// `DATASTAR_URL`: where pages load Datastar from. Default [`DATASTAR_CDN_URL`].
    pub datastar_url: String,
    /// `DATASTAR_INTEGRITY`: the subresource-integrity hash of the file at `DATASTAR_URL`
    /// (`sha384-…`), so a browser refuses any other file; `none` for no check. Default: the
    /// known hash when `DATASTAR_URL` is the default, none otherwise.
    pub datastar_integrity: Integrity,
    /// `SSE_KEEP_ALIVE_SECS`: how often the streams that wrote nothing since the last time get a
    /// keep-alive comment (so a quiet stream gets one 1–2 periods after its last event).
    /// Default 15 s, below the 30–60 s idle timeouts common in proxies and load balancers.
    pub keep_alive: Duration,
    /// `ACTION_TIMEOUT_SECS`: the longest an action may take before it answers 408. Streams
    /// have no timeout. Default 10 s.
    pub action_timeout: Duration,
    /// `ACTION_RATE_PER_SEC` and `ACTION_BURST`: how many actions one client may send, as a
    /// token bucket (see [`crate::rate_limit`]): `ACTION_BURST` at once after a quiet spell,
    /// then `ACTION_RATE_PER_SEC` (decimals allowed: `0.5` is one every 2 s); more get a
    /// visible `429`. Default 10 a second and 50 at once: far above what a person clicking
    /// does, and room for a household or office behind one address, while a script posting
    /// thousands a second gets ten. `ACTION_RATE_PER_SEC=off`: no limit (`None`). Counted per
    /// instance.
    pub action_limit: Option<ActionLimit>,
    /// `SEND_TIMEOUT_SECS`: how long a write to a client may stay blocked (its socket
    /// unwritable: the client is not reading) before the client is disconnected. This is the
    /// only test of a slow client. Default 10 s: a tab reads whatever arrives, so a socket that
    /// takes nothing for that long belongs to a frozen or hostile client.
    pub send_timeout: Duration,
    /// `HEADER_READ_TIMEOUT_SECS`: how long a connection may take to send a complete request
    /// head, counted from when the server starts waiting for one — so it also bounds how long
    /// a kept-alive connection may sit idle. Default 10 s: a silent connection, or one that
    /// trickles a header byte every few seconds, is closed then.
    pub header_read_timeout: Duration,
    /// `KEEP_ALIVE_TIMEOUT_SECS`: how long a connection may sit idle between requests before
    /// it is closed. Default 5 s; at most `HEADER_READ_TIMEOUT_SECS`. Streams are never idle.
    pub keep_alive_timeout: Duration,
    /// `STREAM_COMPRESSION`: `gzip` (the default) gzips a stream for a client that accepts it,
    /// at the cost of one compression per event for all the streams it reaches, not one per
    /// stream (see `gzip.rs`): a greeting takes a fraction of its bytes on the wire, a
    /// re-rendered region little more than what changed. `off`: streams go as plain text.
    pub compress_streams: bool,
    /// `STREAM_QUEUE_LIMIT`: ordinary events one stream may have queued (latest-state events
    /// coalesce and do not count). Default 1 024: a tab that reads never gets near it; past
    /// it the stream is cut off instead of holding more memory.
    pub queue_limit: usize,
    /// `MAX_STREAMS`: open streams beyond which a new one is refused, and Datastar told to
    /// retry in a few seconds. Default 10 000: each stream costs a socket and some memory.
    pub max_streams: usize,
    /// `MAX_STREAMS_PER_CLIENT`: open streams one client may hold, so one client cannot take
    /// them all; HTTP/2 streams count like HTTP/1.1 ones. Default 256. The client is the
    /// network of its address (`client_networks`: an IPv6 client's /64), the TCP peer's unless
    /// `CLIENT_IP_HEADER` says otherwise: behind a proxy every client has the proxy's address.
    pub max_streams_per_client: usize,
    /// `CLIENT_IP_HEADER`: the request header the proxies in front of the app add the client's
    /// address to (`x-forwarded-for`, `x-real-ip`), and `CLIENT_IP_HOPS`: how many proxies
    /// there are, each adding the address it sees (default 1). The client's address is the one
    /// that many from the end, across every line of the header (see [`ClientIpHeader`]).
    /// Unset: the TCP peer's address. Set it only behind proxies: without one, clients can send
    /// any value.
    pub client_ip_header: Option<ClientIpHeader>,
    /// `CLIENT_IPV4_PREFIX` and `CLIENT_IPV6_PREFIX`: how client addresses are grouped into
    /// the networks every per-client limit counts. Default 32 and 64: one IPv4 address, one
    /// IPv6 /64 (what one subscriber is given; see [`ClientNetworks`]).
    pub client_networks: ClientNetworks,
    /// `MAX_CONNECTIONS_PER_CLIENT`: open connections one client network may hold, counted from
    /// accept (before any TLS handshake) by the TCP peer; beyond it a new one is closed at once.
    /// Default 512: every stream over HTTP/1.1 holds a connection, so twice
    /// `MAX_STREAMS_PER_CLIENT` leaves room for those tabs' posts. Not applied with
    /// `CLIENT_IP_HEADER`: there every connection comes from a proxy, which limits its own.
    pub max_connections_per_client: usize,
    /// `MAX_CONNECTIONS`: open connections beyond which a new one gets a `503` at once. Default
    /// (unset): what the open-files limit allows, less 512 kept for files, Redis and the
    /// refusals themselves, so the server never reaches "too many open files".
    pub max_connections: Option<usize>,
    /// `LISTEN_BACKLOG`: connections the kernel may queue before the server accepts them.
    /// Default 4096. After a deploy every client reconnects at once; with the usual 128, a
    /// burst of thousands waits on SYN retries for seconds. (Linux caps it at
    /// `net.core.somaxconn`.)
    pub listen_backlog: u32,
    /// `SHUTDOWN_TIMEOUT_SECS`: after SIGTERM, how long in-flight requests may take to finish
    /// before the server exits anyway. Default 15 s, above the action timeout.
    pub shutdown_timeout: Duration,
    /// `REDIS_URL`: Redis to share broadcasts and state with other instances through, e.g.
    /// `redis://127.0.0.1:6379`, or over TLS with a password (managed Redis, Valkey)
    /// `rediss://user:password@host:port`. Unset: everything stays in this process. Needs the
    /// `redis` cargo feature.
    pub redis_url: Option<String>,
    /// `REDIS_SECRET`: the key every message between instances is signed with (at least 32
    /// characters; the same on every instance). Required with `REDIS_URL`: anyone who can
    /// publish on the channel could otherwise patch every open tab.
    pub redis_secret: Option<String>,
    /// `REDIS_PREFIX`: the namespace of this app's keys and channel in Redis. Default (unset):
    /// the app's name, so several apps can share one Redis.
    pub redis_prefix: Option<String>,
    /// `REDIS_CA`: a PEM file of the certificate authorities to trust for a `rediss://`
    /// `REDIS_URL`, instead of the system's (a managed Redis with a private CA). Checked at
    /// start: a file that is missing or holds no certificate stops the app.
    pub redis_ca: Option<PathBuf>,
    /// `PRESENCE_EXPIRY_SECS`: with `REDIS_URL`, how long an instance's presence counts last
    /// in Redis unless it writes them again (it does every third of this): how long the tabs of
    /// an instance that was killed keep being counted on the others' pages.
    pub presence_expiry: Duration,
    /// `PRESENCE_PER_CLIENT`: how much one client (its address, as `ClientAddr` has it) may
    /// add to a presence count, however many streams it holds. Every stream key is a session
    /// id the client picks, so without a bound one client with 256 streams made every page say
    /// "257 people here". Visitors behind one shared address (an office, a school) count up to
    /// this many. Default 4; 1 to 10 000 000.
    pub presence_per_client: usize,
    /// `METRICS_ADDR`: where to serve Prometheus metrics (`GET /metrics`), say
    /// `127.0.0.1:9100`: a listener of its own, never the public port. Unset: no listener, and
    /// no counting that only metrics need.
    pub metrics_addr: Option<SocketAddr>,
    /// `TLS_CERT`: the certificate chain to serve HTTPS with (PEM, the server's certificate
    /// first: an ACME client's `fullchain.pem`). With `TLS_KEY`, the server speaks HTTPS and
    /// offers HTTP/2 and HTTP/1.1; `SIGHUP` re-reads both files. Unset: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// `TLS_KEY`: the private key of `TLS_CERT` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// `HTTP_REDIRECT_PORT`: with HTTPS, a plain-HTTP port (usually 80) that answers every
    /// request with a redirect to the same address over HTTPS. Unset: no such port.
    pub http_redirect_port: Option<u16>,
    /// `ACME_CHALLENGE_DIR`: with a redirect port, a folder whose files it serves at
    /// `/.well-known/acme-challenge/<token>` (ACME's HTTP-01 challenge: `certbot --webroot -w
    /// <folder>` writes them to `<folder>/.well-known/acme-challenge/`; give that inner folder),
    /// so that renewals need port 80 but never the app stopped. Unset: none served.
    pub acme_challenge_dir: Option<PathBuf>,
    /// `ACME_DOMAINS` and the rest of `ACME_*`: certificates from ACME (Let's Encrypt), got and
    /// renewed by the server itself (feature `acme`). Unset: none.
    pub acme: Option<AcmeSettings>,
    /// The dev loop (debug builds): where templates and static files are read from, and whether
    /// changes are pushed to open tabs. Release builds read both from inside the binary and
    /// watch nothing, whatever this says.
    pub dev: DevSettings,
}

/// Certificates from ACME, got and renewed by the server (see [`crate::tls`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeSettings {
    /// `ACME_DOMAINS`: the names to get a certificate for, comma-separated (`example.org,
    /// www.example.org`); their DNS must point at this server, and port 443 reach it (the
    /// TLS-ALPN-01 challenge is answered there).
    pub domains: Vec<String>,
    /// `ACME_CONTACT`: the account's email address (`ops@example.org`, or `mailto:…`).
    pub contact: String,
    /// `ACME_CACHE_DIR`: where the account and certificates are kept between runs, so that a
    /// restart asks nothing again. Default `acme-cache` (the systemd unit sets its
    /// `StateDirectory=`).
    pub cache_dir: PathBuf,
    /// `ACME_DIRECTORY`: the ACME server. Default Let's Encrypt's production directory; its
    /// staging one (`https://acme-staging-v02.api.letsencrypt.org/directory`) for trials.
    pub directory: String,
    /// `ACME_DIRECTORY_CA`: **for testing or a private CA only** — a PEM file of the CA that the
    /// ACME server's own HTTPS certificate chains to, trusted instead of the public roots.
    pub directory_ca: Option<PathBuf>,
}

/// Let's Encrypt's production ACME directory, the default `ACME_DIRECTORY`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Where the dev loop looks for files, and whether it watches them.
#[derive(Debug, Clone, PartialEq)]
pub struct DevSettings {
    /// Templates are read from here on every render. Default: the app's `templates/`.
    pub templates_dir: Option<PathBuf>,
    /// Static files are read from here on every request. Default: the app's `static/`.
    pub static_dir: Option<PathBuf>,
    /// Whether to watch both folders and push changes to open tabs. Default: yes in debug
    /// builds, no in release builds.
    pub watch: bool,
}

// Not derived: `watch` is on in debug builds (clippy, in a release build, sees only `false`).
#[allow(clippy::derivable_impls)]
impl Default for DevSettings {
    fn default() -> Self {
        DevSettings {
            templates_dir: None,
            static_dir: None,
            watch: cfg!(debug_assertions),
        }
    }
}

/// The defaults are the ones [`VARIABLES`] lists, read as if no variable were set: they are
/// declared there only.
impl Default for Settings {
    fn default() -> Self {
        Settings::from_lookup(|_| None).expect("the defaults VARIABLES lists are valid settings")
    }
}

/// Whether the browser checks the Datastar file against a hash (`DATASTAR_INTEGRITY`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Integrity {
    /// The known hash of `DATASTAR_URL`, if there is one (the default file's).
    #[default]
    Known,
    /// This hash (`sha384-…`).
    Hash(String),
    /// No check (`none`).
    Off,
}

impl Settings {
    /// The hash the page's `<script>` carries, if any.
    pub fn datastar_integrity(&self) -> Option<String> {
        match &self.datastar_integrity {
            Integrity::Known => {
                (self.datastar_url == DATASTAR_CDN_URL).then(|| DATASTAR_CDN_INTEGRITY.to_owned())
            }
            Integrity::Hash(hash) => Some(hash.clone()),
            Integrity::Off => None,
        }
    }
}

/// A setting that is present but unusable; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    /// The message shows the value, but never a secret in it: `REDIS_SECRET` not at all, and
    /// the password of any URL (`REDIS_URL`) as `***`. Errors end up in logs.
    fn new(name: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        let value = value.into();
        let value = if SECRET_VARIABLES.contains(&name) && !value.is_empty() {
            "(hidden)".to_owned()
        } else {
            crate::redact::credentials(&value).into_owned()
        };
        ConfigError {
            name,
            value,
            reason: crate::redact::credentials(&reason.into()).into_owned(),
        }
    }
}

/// Settings whose whole value is a secret, never shown.
const SECRET_VARIABLES: &[&str] = &["REDIS_SECRET"];

impl Settings {
    /// Reads a `.env` file in the working directory, if there is one, into the environment
    /// (variables already set win over it), then the environment.
    pub fn load() -> anyhow::Result<Self> {
        match dotenvy::from_path(".env") {
            Ok(()) => tracing::info!("read settings from .env"),
            Err(error) if error.not_found() => {}
            Err(error) => anyhow::bail!("cannot read .env: {error}"),
        }
        Ok(Settings::from_env()?)
    }

    /// Reads the process environment. A variable that is not valid UTF-8 is refused like any
    /// other unusable value (it is not taken for unset).
    pub fn from_env() -> Result<Self, ConfigError> {
        Settings::from_os_lookup(|name| std::env::var_os(name))
    }

    /// Reads settings through `lookup`, refusing a value that is not valid UTF-8 with its
    /// variable named.
    fn from_os_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        // `RUST_LOG` is read by `logging::init`, before the settings: refused here all the
        // same, rather than taken for unset.
        let names = VARIABLES.iter().map(|(name, ..)| name).chain([&"RUST_LOG"]);
        for name in names {
            if let Some(value) = lookup(name)
                && value.to_str().is_none()
            {
                return Err(ConfigError::new(
                    name,
                    value.to_string_lossy(),
                    "is not valid UTF-8",
                ));
            }
        }
        Settings::from_lookup(|name| lookup(name).and_then(|value| value.into_string().ok()))
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// An empty value means unset, for every variable: `NAME=` (a line of `.env.example`
    /// uncommented as shipped, or `NAME= cargo run`) takes the default. A variable not given
    /// takes the default [`VARIABLES`] lists for it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let source = Source::new(lookup);
        let datastar_url = match source.listed("DATASTAR_URL") {
            url if url.contains(|c: char| c.is_whitespace() || "\"';,<>".contains(c)) => {
                // It goes into a script tag and the Content-Security-Policy header.
                return Err(ConfigError::new(
                    "DATASTAR_URL",
                    url,
                    "must be a URL or path to datastar.js, without spaces, quotes, `;`, `,` or \
                     angle brackets",
                ));
            }
            url => url,
        };
        let datastar_integrity = match source.get("DATASTAR_INTEGRITY") {
            Some(none) if none == "none" => Integrity::Off,
            Some(hash) if is_integrity(&hash) => Integrity::Hash(hash),
            Some(hash) => {
                return Err(ConfigError::new(
                    "DATASTAR_INTEGRITY",
                    hash,
                    "must be `sha256-`, `sha384-` or `sha512-` and the file's base64 hash, or \
                     `none`",
                ));
            }
            None => Integrity::Known,
        };
        let config = Settings {
            host: parse(&source, "HOST").listed()?,
            port: parse(&source, "PORT").listed()?,
            datastar_url,
            datastar_integrity,
            keep_alive: seconds(&source, "SSE_KEEP_ALIVE_SECS").listed()?,
            action_timeout: seconds(&source, "ACTION_TIMEOUT_SECS").listed()?,
            action_limit: action_limit(&source)?,
            send_timeout: seconds(&source, "SEND_TIMEOUT_SECS").listed()?,
            header_read_timeout: seconds(&source, "HEADER_READ_TIMEOUT_SECS").listed()?,
            keep_alive_timeout: seconds(&source, "KEEP_ALIVE_TIMEOUT_SECS").listed()?,
            compress_streams: compress_streams(&source)?,
            queue_limit: bounded(&source, "STREAM_QUEUE_LIMIT", 1, 1_000_000).listed()?,
            max_streams: bounded(&source, "MAX_STREAMS", 1, 10_000_000).listed()?,
            max_streams_per_client: bounded(&source, "MAX_STREAMS_PER_CLIENT", 1, 10_000_000)
                .listed()?,
            client_ip_header: client_ip_header(&source)?,
            client_networks: ClientNetworks {
                ipv4_prefix: bounded(&source, "CLIENT_IPV4_PREFIX", 1, 32).listed()?,
                ipv6_prefix: bounded(&source, "CLIENT_IPV6_PREFIX", 1, 128).listed()?,
            },
            max_connections_per_client: bounded(
                &source,
                "MAX_CONNECTIONS_PER_CLIENT",
                1,
                10_000_000,
            )
            .listed()?,
            max_connections: bounded(&source, "MAX_CONNECTIONS", 1, 10_000_000)?,
            listen_backlog: bounded(&source, "LISTEN_BACKLOG", 1, 65_535).listed()?,
            shutdown_timeout: seconds(&source, "SHUTDOWN_TIMEOUT_SECS").listed()?,
            redis_url: redis_url(&source)?,
            redis_secret: source.get("REDIS_SECRET"),
            redis_prefix: match source.get("REDIS_PREFIX") {
                Some(prefix) if !prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'*') => {
                    return Err(ConfigError::new(
                        "REDIS_PREFIX",
                        prefix,
                        "must be a word of printable characters, without `*`",
                    ));
                }
                prefix => prefix,
            },
            redis_ca: redis_ca(&source)?,
            presence_expiry: Duration::from_secs(
                bounded(&source, "PRESENCE_EXPIRY_SECS", 3, 3600).listed()?,
            ),
            presence_per_client: bounded(&source, "PRESENCE_PER_CLIENT", 1, 10_000_000).listed()?,
            metrics_addr: parse(&source, "METRICS_ADDR")?,
            tls_cert: source.get("TLS_CERT").map(PathBuf::from),
            tls_key: source.get("TLS_KEY").map(PathBuf::from),
            http_redirect_port: bounded(&source, "HTTP_REDIRECT_PORT", 1, u16::MAX)?,
            acme_challenge_dir: source.get("ACME_CHALLENGE_DIR").map(PathBuf::from),
            acme: acme(&source)?,
            dev: DevSettings::default(),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_variables_read_are_the_variables_listed() {
        let asked = std::cell::RefCell::new(Vec::new());
        Settings::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        })
        .unwrap();
        let mut asked = asked.into_inner();
        asked.sort();
        let mut listed: Vec<String> = VARIABLES
            .iter()
            .map(|(name, ..)| name.to_string())
            .collect();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn the_listed_defaults_are_the_defaults() {
        let defaults: std::collections::HashMap<&str, &str> = VARIABLES
            .iter()
            .map(|(name, default, _)| (*name, *default))
            .collect();
        let from_list = config(
            &VARIABLES
                .iter()
                .filter(|(_, default, _)| !default.is_empty())
                .map(|(name, default, _)| (*name, *default))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(from_list, Settings::default());
        // The registry's own default, for a registry made without settings.
        assert_eq!(
            Settings::default().queue_limit,
            crate::registry::DEFAULT_QUEUE_LIMIT
        );
        for unset in [
            "CLIENT_IP_HEADER",
            "MAX_CONNECTIONS",
            "REDIS_URL",
            "REDIS_SECRET",
            "REDIS_PREFIX",
            "TLS_CERT",
            "TLS_KEY",
            "HTTP_REDIRECT_PORT",
            "ACME_CHALLENGE_DIR",
            "ACME_DOMAINS",
            "ACME_CONTACT",
            "ACME_DIRECTORY_CA",
        ] {
            assert_eq!(defaults[unset], "", "{unset} has no default value");
        }
    }

    #[test]
    fn an_empty_value_is_unset_for_every_variable() {
        // Each alone, as `NAME=` in `.env` or the environment…
        for (name, ..) in VARIABLES {
            assert_eq!(
                config(&[(name, "")]).map_err(|error| error.to_string()),
                Ok(Settings::default()),
                "{name}= is not the default"
            );
        }
        // …and all at once, as `.env.example` with every line uncommented.
        let all: Vec<_> = VARIABLES.iter().map(|(name, ..)| (*name, "")).collect();
        assert_eq!(config(&all).unwrap(), Settings::default());
    }

    #[test]
    fn defaults_work_locally() {
        let config = config(&[]).unwrap();
        assert_eq!(config.host.to_string(), "127.0.0.1");
        assert_eq!(config.port, 3000);
        assert_eq!(config.datastar_url, DATASTAR_CDN_URL);
        assert_eq!(
            config.datastar_integrity().as_deref(),
            Some(DATASTAR_CDN_INTEGRITY),
            "the default file is pinned by its hash"
        );
    }

    #[test]
    fn variables_override_defaults() {
        let config = config(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "8080"),
            ("DATASTAR_URL", "/static/datastar.js"),
            ("SSE_KEEP_ALIVE_SECS", "5"),
            ("MAX_STREAMS", "50000"),
            ("LISTEN_BACKLOG", "1024"),
            ("HEADER_READ_TIMEOUT_SECS", "30"),
            ("KEEP_ALIVE_TIMEOUT_SECS", "30"),
            ("MAX_CONNECTIONS", "60000"),
            ("CLIENT_IP_HEADER", "X-Forwarded-For"),
            ("CLIENT_IP_HOPS", "2"),
            ("PRESENCE_EXPIRY_SECS", "30"),
            ("CLIENT_IPV4_PREFIX", "24"),
            ("CLIENT_IPV6_PREFIX", "56"),
            ("MAX_CONNECTIONS_PER_CLIENT", "64"),
            ("PRESENCE_PER_CLIENT", "40"),
        ])
        .unwrap();
        assert_eq!(config.host.to_string(), "0.0.0.0");
        assert_eq!(config.port, 8080);
        assert_eq!(config.datastar_url, "/static/datastar.js");
        assert_eq!(
            config.datastar_integrity(),
            None,
            "no hash known for that URL"
        );
        assert_eq!(config.keep_alive, Duration::from_secs(5));
        assert_eq!(config.max_streams, 50_000);
        assert_eq!(config.listen_backlog, 1024);
        assert_eq!(config.keep_alive_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, Some(60_000));
        let header = config.client_ip_header.unwrap();
        assert_eq!(header.name, "x-forwarded-for");
        assert_eq!(header.hops, 2);
        assert_eq!(config.presence_expiry, Duration::from_secs(30));
        assert_eq!(
            config.client_networks,
            ClientNetworks {
                ipv4_prefix: 24,
                ipv6_prefix: 56
            }
        );
        assert_eq!(config.max_connections_per_client, 64);
        assert_eq!(config.presence_per_client, 40);
    }

    #[test]
    fn action_limits_can_be_set_or_turned_off() {
        let set = config(&[("ACTION_RATE_PER_SEC", "0.5"), ("ACTION_BURST", "5")]).unwrap();
        assert_eq!(
            set.action_limit,
            Some(ActionLimit {
                per_second: 0.5,
                burst: 5
            })
        );
        let off = config(&[("ACTION_RATE_PER_SEC", "off")]).unwrap();
        assert_eq!(off.action_limit, None);
        for (name, value) in [
            ("ACTION_RATE_PER_SEC", "0"),
            ("ACTION_RATE_PER_SEC", "-1"),
            ("ACTION_RATE_PER_SEC", "NaN"),
            ("ACTION_RATE_PER_SEC", "inf"),
            ("ACTION_RATE_PER_SEC", "1e400"),
            ("ACTION_RATE_PER_SEC", "fast"),
            ("ACTION_BURST", "0"),
            ("ACTION_BURST", "1.5"),
        ] {
            let error = config(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(&format!("invalid {name}=")), "{error}");
        }
        // A bucket size for a limit that is off is a mistake worth saying.
        let both = config(&[("ACTION_RATE_PER_SEC", "off"), ("ACTION_BURST", "5")])
            .unwrap_err()
            .to_string();
        assert!(both.starts_with("invalid ACTION_BURST="), "{both}");
        // Made in code, not read: checked all the same.
        let made = Settings {
            action_limit: Some(ActionLimit {
                per_second: f64::NAN,
                burst: 5,
            }),
            ..Settings::default()
        };
        assert!(made.validate().is_err());
    }

    #[test]
    fn an_integrity_hash_can_be_given_or_turned_off() {
        let hash = format!("sha384-{}", "A".repeat(64));
        let given = config(&[
            ("DATASTAR_URL", "https://cdn.example/datastar.js"),
            ("DATASTAR_INTEGRITY", &hash),
        ])
        .unwrap();
        assert_eq!(given.datastar_integrity(), Some(hash));
        let off = config(&[("DATASTAR_INTEGRITY", "none")]).unwrap();
        assert_eq!(off.datastar_integrity(), None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let secret = "s".repeat(32);
        for (name, value) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("HOST", "localhost:3000"),
            ("SSE_KEEP_ALIVE_SECS", "0"),
            // Parses, but overflows the first timer that uses it.
            ("SSE_KEEP_ALIVE_SECS", "18446744073709551615"),
            ("SSE_KEEP_ALIVE_SECS", "86401"),
            ("ACTION_TIMEOUT_SECS", "-1"),
            ("SEND_TIMEOUT_SECS", "99999999999"),
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("KEEP_ALIVE_TIMEOUT_SECS", "11"),
            // Under 3 s, the heartbeat (a third) would come every second or more often.
            ("PRESENCE_EXPIRY_SECS", "2"),
            ("PRESENCE_EXPIRY_SECS", "3601"),
            ("PRESENCE_PER_CLIENT", "0"),
            ("PRESENCE_PER_CLIENT", "10000001"),
            ("MAX_STREAMS", "0"),
            ("MAX_STREAMS", "lots"),
            ("MAX_STREAMS_PER_CLIENT", "0"),
            ("MAX_CONNECTIONS", "18446744073709551615"),
            ("STREAM_QUEUE_LIMIT", "0"),
            ("LISTEN_BACKLOG", "-5"),
            ("LISTEN_BACKLOG", "4294967295"),
            ("SHUTDOWN_TIMEOUT_SECS", "1.5"),
            ("STREAM_COMPRESSION", "brotli"),
            ("DATASTAR_URL", " "),
            ("DATASTAR_URL", "https://x/ds.js; script-src *"),
            ("DATASTAR_INTEGRITY", "md5-abc"),
            ("DATASTAR_INTEGRITY", "sha384-tooshort"),
            ("CLIENT_IP_HEADER", "not a header"),
            ("CLIENT_IP_HOPS", "0"),
            ("CLIENT_IP_HOPS", "2"), // without CLIENT_IP_HEADER
            // Everyone one client, or a prefix longer than the address.
            ("CLIENT_IPV4_PREFIX", "0"),
            ("CLIENT_IPV4_PREFIX", "33"),
            ("CLIENT_IPV6_PREFIX", "0"),
            ("CLIENT_IPV6_PREFIX", "129"),
            ("MAX_CONNECTIONS_PER_CLIENT", "0"),
            ("REDIS_PREFIX", "two words"),
            ("REDIS_PREFIX", "a*"),
            // One of the pair alone.
            ("TLS_CERT", "/etc/app/fullchain.pem"),
            ("TLS_KEY", "/etc/app/privkey.pem"),
            // Nothing to redirect to.
            ("HTTP_REDIRECT_PORT", "80"),
            ("HTTP_REDIRECT_PORT", "0"),
        ] {
            let error = config(&[(name, value), ("REDIS_SECRET", &secret)])
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(&format!("invalid {name}=")), "{error}");
        }
    }

    #[test]
    fn a_certificate_without_the_tls_feature_is_refused_naming_it() {
        let https = config(&[("TLS_CERT", "/c.pem"), ("TLS_KEY", "/k.pem")]);
        if cfg!(feature = "tls") {
            assert!(https.is_ok(), "{https:?}");
        } else {
            let error = https.unwrap_err().to_string();
            assert!(error.starts_with("invalid TLS_CERT=\"/c.pem\""), "{error}");
            assert!(error.contains("--features tls"), "{error}");
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_takes_both_files_and_a_redirect_port_apart_from_its_own() {
        let pair = [("TLS_CERT", "/c.pem"), ("TLS_KEY", "/k.pem")];
        let https = config(&pair).unwrap();
        assert_eq!(
            https.tls_cert.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        assert_eq!(
            https.tls_key.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
        let redirect = config(&[
            pair[0],
            pair[1],
            ("PORT", "443"),
            ("HTTP_REDIRECT_PORT", "80"),
        ])
        .unwrap();
        assert_eq!(redirect.http_redirect_port, Some(80));
        let same = config(&[
            pair[0],
            pair[1],
            ("PORT", "443"),
            ("HTTP_REDIRECT_PORT", "443"),
        ])
        .unwrap_err()
        .to_string();
        assert!(same.starts_with("invalid HTTP_REDIRECT_PORT="), "{same}");
        let half = config(&[pair[1]]).unwrap_err().to_string();
        assert!(half.contains("needs TLS_CERT too"), "{half}");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_not_taken_for_unset() {
        use std::os::unix::ffi::OsStringExt;

        for name in [
            "MAX_STREAMS_PER_CLIENT",
            "REDIS_URL",
            "REDIS_SECRET",
            "CLIENT_IP_HEADER",
            // Read by the logging, before the settings: refused here all the same.
            "RUST_LOG",
        ] {
            let lookup =
                |asked: &str| (asked == name).then(|| OsString::from_vec(b"1\xff".to_vec()));
            let error = Settings::from_os_lookup(lookup).unwrap_err().to_string();
            assert!(error.starts_with(&format!("invalid {name}=")), "{error}");
            assert!(error.ends_with("is not valid UTF-8"), "{error}");
        }
        let fine = |asked: &str| (asked == "MAX_STREAMS_PER_CLIENT").then(|| "3".into());
        assert_eq!(
            Settings::from_os_lookup(fine)
                .unwrap()
                .max_streams_per_client,
            3
        );
    }

    #[test]
    fn refusals_show_no_secret() {
        // Every value and reason goes through the same hiding, whichever setting it is.
        let error = ConfigError::new(
            "REDIS_URL",
            "redis2://user:secretpw@10.0.0.1/",
            "cannot parse redis2://user:secretpw@10.0.0.1/",
        )
        .to_string();
        assert!(!error.contains("secretpw"), "{error}");
        assert!(error.contains("redis2://user:***@10.0.0.1/"), "{error}");
        let error = ConfigError::new("REDIS_SECRET", "secretpw", "too short").to_string();
        assert!(!error.contains("secretpw"), "{error}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_url_that_does_not_parse_is_refused_without_its_password() {
        let error = config(&[
            ("REDIS_URL", "redis2://user:secretpw@10.0.0.1:6379/"),
            ("REDIS_SECRET", &"s".repeat(32)),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("invalid REDIS_URL="), "{error}");
        assert!(!error.contains("secretpw"), "{error}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_needs_a_secret_long_enough() {
        let url = ("REDIS_URL", "redis://127.0.0.1:6379");
        let missing = config(&[url]).unwrap_err().to_string();
        assert!(missing.starts_with("invalid REDIS_SECRET="), "{missing}");
        let short = config(&[url, ("REDIS_SECRET", "short")]).unwrap_err();
        assert!(
            !short.to_string().contains("short"),
            "the secret is not echoed"
        );
        let secret = "s".repeat(32);
        assert!(config(&[url, ("REDIS_SECRET", &secret)]).is_ok());
    }
}
