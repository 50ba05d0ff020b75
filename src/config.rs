//! Settings, read from environment variables, each with a default that works locally.

use std::{net::IpAddr, str::FromStr, time::Duration};

use crate::views::DATASTAR_CDN_URL;

/// Everything the app can be told from outside.
#[derive(Clone, Debug)]
pub struct Config {
    /// `HOST`: the address to listen on. Default `127.0.0.1` (use `0.0.0.0` in a container).
    pub host: IpAddr,
    /// `PORT`: the port to listen on; `0` picks a free one. Default `3000`.
    pub port: u16,
    /// `DATASTAR_URL`: where pages load Datastar from. Default [`DATASTAR_CDN_URL`].
    pub datastar_url: String,
    /// `SSE_KEEP_ALIVE_SECS`: quiet time after which a stream sends a keep-alive comment.
    /// Default 15 s, below the 30–60 s idle timeouts common in proxies and load balancers.
    pub keep_alive: Duration,
    /// `ACTION_TIMEOUT_SECS`: the longest an action may take before it answers 408. Streams
    /// have no timeout. Default 10 s.
    pub action_timeout: Duration,
    /// `SEND_TIMEOUT_SECS`: how long a write to a client may stay blocked (its socket
    /// unwritable: the client is not reading) before the client is disconnected. This is the
    /// only test of a slow client. Default 10 s: a tab reads whatever arrives, so a socket that
    /// takes nothing for that long belongs to a frozen or hostile client.
    pub send_timeout: Duration,
    /// `STREAM_QUEUE_LIMIT`: ordinary events one stream may have queued (latest-state events
    /// coalesce and do not count). Default 1 024: a tab that reads never gets near it; past
    /// it the stream is cut off instead of holding more memory.
    pub queue_limit: usize,
    /// `MAX_STREAMS`: open streams beyond which a new one is refused with 503 (and Datastar
    /// retries later). Default 10 000: each stream costs a socket and some memory.
    pub max_streams: usize,
    /// `LISTEN_BACKLOG`: connections the kernel may queue before the server accepts them.
    /// Default 4096. After a deploy every client reconnects at once; with the usual 128, a
    /// burst of thousands waits on SYN retries for seconds. (Linux caps it at
    /// `net.core.somaxconn`.)
    pub listen_backlog: u32,
    /// `SHUTDOWN_TIMEOUT_SECS`: after SIGTERM, how long in-flight requests may take to finish
    /// before the server exits anyway. Default 15 s, above the action timeout.
    pub shutdown_timeout: Duration,
    /// `REDIS_URL`: Redis to share broadcasts and state with other instances through, e.g.
    /// `redis://127.0.0.1:6379`. Unset: everything stays in this process. Needs the `redis`
    /// cargo feature.
    pub redis_url: Option<String>,
    /// `REDIS_PREFIX`: the namespace of this app's keys and channel in Redis. Default: the
    /// package name, so several apps can share one Redis.
    pub redis_prefix: String,
    /// Debug builds only: where templates and static files are read from, and whether changes
    /// are pushed to open tabs.
    #[cfg(debug_assertions)]
    pub dev: crate::dev::DevSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 3000,
            datastar_url: DATASTAR_CDN_URL.to_owned(),
            keep_alive: Duration::from_secs(15),
            action_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            queue_limit: crate::connections::DEFAULT_QUEUE_LIMIT,
            max_streams: 10_000,
            listen_backlog: 4096,
            shutdown_timeout: Duration::from_secs(15),
            redis_url: None,
            redis_prefix: env!("CARGO_PKG_NAME").to_owned(),
            #[cfg(debug_assertions)]
            dev: crate::dev::DevSettings::default(),
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

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Config::default();
        Ok(Config {
            host: parse(&lookup, "HOST")?.unwrap_or(defaults.host),
            port: parse(&lookup, "PORT")?.unwrap_or(defaults.port),
            datastar_url: match lookup("DATASTAR_URL") {
                Some(url)
                    if url.is_empty()
                        || url.contains(|c: char| c.is_whitespace() || "\"';,<>".contains(c)) =>
                {
                    // It goes into a script tag and the Content-Security-Policy header.
                    return Err(ConfigError {
                        name: "DATASTAR_URL",
                        value: url,
                        reason: "must be a URL or path to datastar.js, without spaces, quotes, \
                                 `;`, `,` or angle brackets"
                            .into(),
                    });
                }
                Some(url) => url,
                None => defaults.datastar_url,
            },
            keep_alive: seconds(&lookup, "SSE_KEEP_ALIVE_SECS")?.unwrap_or(defaults.keep_alive),
            action_timeout: seconds(&lookup, "ACTION_TIMEOUT_SECS")?
                .unwrap_or(defaults.action_timeout),
            send_timeout: seconds(&lookup, "SEND_TIMEOUT_SECS")?.unwrap_or(defaults.send_timeout),
            queue_limit: positive(&lookup, "STREAM_QUEUE_LIMIT")?.unwrap_or(defaults.queue_limit),
            max_streams: positive(&lookup, "MAX_STREAMS")?.unwrap_or(defaults.max_streams),
            listen_backlog: positive(&lookup, "LISTEN_BACKLOG")?.unwrap_or(defaults.listen_backlog),
            shutdown_timeout: seconds(&lookup, "SHUTDOWN_TIMEOUT_SECS")?
                .unwrap_or(defaults.shutdown_timeout),
            redis_url: redis_url(&lookup)?,
            redis_prefix: match lookup("REDIS_PREFIX") {
                Some(prefix) if prefix.is_empty() || prefix.contains(char::is_whitespace) => {
                    return Err(ConfigError {
                        name: "REDIS_PREFIX",
                        value: prefix,
                        reason: "must be a non-empty word".into(),
                    });
                }
                Some(prefix) => prefix,
                None => defaults.redis_prefix,
            },
            #[cfg(debug_assertions)]
            dev: defaults.dev,
        })
    }
}

fn parse<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let Some(value) = lookup(name) else {
        return Ok(None);
    };
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|error: T::Err| ConfigError {
            name,
            value,
            reason: error.to_string(),
        })
}

fn redis_url(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = lookup("REDIS_URL").filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    #[cfg(feature = "redis")]
    if let Err(error) = redis::Client::open(url.as_str()) {
        return Err(ConfigError {
            name: "REDIS_URL",
            value: url,
            reason: error.to_string(),
        });
    }
    Ok(Some(url))
}

fn positive<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T: FromStr + Default + PartialEq,
    T::Err: std::fmt::Display,
{
    match parse::<T>(lookup, name)? {
        Some(zero) if zero == T::default() => Err(ConfigError {
            name,
            value: "0".into(),
            reason: "must be at least 1".into(),
        }),
        other => Ok(other),
    }
}

fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    Ok(positive::<u64>(lookup, name)?.map(Duration::from_secs))
}
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_work_locally() {
        let config = config(&[]).unwrap();
        assert_eq!(config.host.to_string(), "127.0.0.1");
        assert_eq!(config.port, 3000);
        assert_eq!(config.datastar_url, DATASTAR_CDN_URL);
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
        ])
        .unwrap();
        assert_eq!(config.host.to_string(), "0.0.0.0");
        assert_eq!(config.port, 8080);
        assert_eq!(config.datastar_url, "/static/datastar.js");
        assert_eq!(config.keep_alive, Duration::from_secs(5));
        assert_eq!(config.max_streams, 50_000);
        assert_eq!(config.listen_backlog, 1024);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("HOST", "localhost:3000"),
            ("SSE_KEEP_ALIVE_SECS", "0"),
            ("ACTION_TIMEOUT_SECS", "-1"),
            ("MAX_STREAMS", "0"),
            ("MAX_STREAMS", "lots"),
            ("LISTEN_BACKLOG", "-5"),
            ("SHUTDOWN_TIMEOUT_SECS", "1.5"),
            ("DATASTAR_URL", " "),
            ("DATASTAR_URL", "https://x/ds.js; script-src *"),
        ] {
            let error = config(&[(name, value)]).unwrap_err().to_string();
            assert!(error.starts_with(&format!("invalid {name}=")), "{error}");
        }
    }
}
