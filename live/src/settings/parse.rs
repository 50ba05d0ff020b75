//! Reading one variable: parsed, bounded, and refused with a message naming it.

use std::{str::FromStr, time::Duration};

use std::path::PathBuf;

use super::{AcmeSettings, ActionLimit, ConfigError, MAX_SECS, VARIABLES};
use crate::client_addr::ClientIpHeader;

/// Where a setting's value comes from: what was given (the environment, `.env`, a map in
/// tests), else the default [`VARIABLES`] lists for it. The defaults are declared there and
/// nowhere else, so the list, `.env.example` and the values the app runs with cannot disagree.
pub(super) struct Source<F> {
    given: F,
}

impl<F: Fn(&str) -> Option<String>> Source<F> {
    pub(super) fn new(given: F) -> Self {
        Source { given }
    }

    /// The value given, if any. An empty value is unset, for every variable: `NAME=` (a line
    /// of `.env.example` uncommented as shipped) takes the default.
    pub(super) fn given(&self, name: &'static str) -> Option<String> {
        (self.given)(name).filter(|value| !value.is_empty())
    }

    /// The value given, else the listed default; `None` when neither.
    pub(super) fn get(&self, name: &'static str) -> Option<String> {
        self.given(name).or_else(|| {
            VARIABLES
                .iter()
                .find(|(listed, ..)| *listed == name)
                .map(|(_, default, _)| default.to_string())
                .filter(|default| !default.is_empty())
        })
    }

    /// The value given, else the listed default, for a variable [`VARIABLES`] lists one for
    /// (see [`Listed`]).
    #[track_caller]
    pub(super) fn listed(&self, name: &'static str) -> String {
        self.get(name)
            .expect("VARIABLES lists a default for this setting")
    }
}

/// A value that is always there because [`VARIABLES`] lists a default for it.
pub(super) trait Listed<T> {
    /// Panics when the default is missing from the list: a mistake in the kit, which
    /// `Settings::default()` (read from nothing but the list) finds in every test run.
    fn listed(self) -> Result<T, ConfigError>;
}

impl<T> Listed<T> for Result<Option<T>, ConfigError> {
    #[track_caller]
    fn listed(self) -> Result<T, ConfigError> {
        self.map(|value| value.expect("VARIABLES lists a default for this setting"))
    }
}

/// `sha256-…`, `sha384-…` or `sha512-…` with a base64 hash of the right length.
pub(super) fn is_integrity(value: &str) -> bool {
    let Some((algorithm, hash)) = value.split_once('-') else {
        return false;
    };
    let length = match algorithm {
        "sha256" => 44,
        "sha384" => 64,
        "sha512" => 88,
        _ => return false,
    };
    hash.len() == length
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

pub(super) fn parse<T>(
    source: &Source<impl Fn(&str) -> Option<String>>,
    name: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let Some(value) = source.get(name) else {
        return Ok(None);
    };
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|error: T::Err| ConfigError::new(name, value, error.to_string()))
}

pub(super) fn redis_url(
    source: &Source<impl Fn(&str) -> Option<String>>,
) -> Result<Option<String>, ConfigError> {
    let Some(url) = source.get("REDIS_URL") else {
        return Ok(None);
    };
    #[cfg(feature = "redis")]
    if let Err(error) = redis::Client::open(url.as_str()) {
        return Err(ConfigError::new("REDIS_URL", url, error.to_string()));
    }
    Ok(Some(url))
}

/// `REDIS_CA`: read and parsed now, so that a wrong path stops the app at start rather than
/// leaving every instance on its own, retrying a TLS handshake that cannot succeed. (Whether
/// `REDIS_URL` goes with it is [`Settings::validate`](super::Settings::validate)'s check.)
pub(super) fn redis_ca(
    source: &Source<impl Fn(&str) -> Option<String>>,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = source.get("REDIS_CA") else {
        return Ok(None);
    };
    #[cfg(feature = "redis")]
    if let Err(reason) = crate::redis::rediss::read_ca(std::path::Path::new(&path)) {
        return Err(ConfigError::new("REDIS_CA", path, reason));
    }
    Ok(Some(PathBuf::from(path)))
}

/// `CLIENT_IP_HEADER` and `CLIENT_IP_HOPS`, which means nothing without it.
pub(super) fn client_ip_header(
    source: &Source<impl Fn(&str) -> Option<String>>,
) -> Result<Option<ClientIpHeader>, ConfigError> {
    let hops = bounded::<usize>(source, "CLIENT_IP_HOPS", 1, 32)?;
    let Some(name) = source.get("CLIENT_IP_HEADER") else {
        return match hops {
            Some(hops) if hops > 1 => Err(ConfigError::new(
                "CLIENT_IP_HOPS",
                hops.to_string(),
                "counts the proxies that add to CLIENT_IP_HEADER, so it needs CLIENT_IP_HEADER",
            )),
            _ => Ok(None),
        };
    };
    let header: ClientIpHeader = name
        .parse()
        .map_err(|_| ConfigError::new("CLIENT_IP_HEADER", name, "must be a header name"))?;
    Ok(Some(ClientIpHeader {
        hops: hops.unwrap_or(header.hops),
        ..header
    }))
}

/// `ACTION_RATE_PER_SEC` (a number, decimals allowed, or `off`) and `ACTION_BURST`, which means
/// nothing with the limit off.
pub(super) fn action_limit(
    source: &Source<impl Fn(&str) -> Option<String>>,
) -> Result<Option<ActionLimit>, ConfigError> {
    let (min, max) = (ActionLimit::MIN_PER_SECOND, ActionLimit::MAX_PER_SECOND);
    let burst = bounded::<u32>(source, "ACTION_BURST", 1, 1_000_000).listed()?;
    let value = source.listed("ACTION_RATE_PER_SEC");
    let per_second = match value.trim().parse::<f64>() {
        _ if value.trim().eq_ignore_ascii_case("off") => {
            return match source.given("ACTION_BURST") {
                Some(burst) => Err(ConfigError::new(
                    "ACTION_BURST",
                    burst,
                    "sizes the bucket that ACTION_RATE_PER_SEC=off turns off: set one or neither",
                )),
                None => Ok(None),
            };
        }
        // `NaN`, `inf` and `1e400` parse too.
        Ok(rate) if (min..=max).contains(&rate) => rate,
        _ => {
            return Err(ConfigError::new(
                "ACTION_RATE_PER_SEC",
                value,
                format!(
                    "must be actions a second from {min} to {max} (0.5: one every 2 s), or off"
                ),
            ));
        }
    };
    Ok(Some(ActionLimit { per_second, burst }))
}

/// `STREAM_COMPRESSION`: `gzip` or `off`.
pub(super) fn compress_streams(
    source: &Source<impl Fn(&str) -> Option<String>>,
) -> Result<bool, ConfigError> {
    match source.listed("STREAM_COMPRESSION").trim() {
        gzip if gzip.eq_ignore_ascii_case("gzip") => Ok(true),
        off if off.eq_ignore_ascii_case("off") => Ok(false),
        other => Err(ConfigError::new(
            "STREAM_COMPRESSION",
            other,
            "must be gzip or off",
        )),
    }
}

/// An integer from `min` to `max`.
pub(super) fn bounded<T>(
    source: &Source<impl Fn(&str) -> Option<String>>,
    name: &'static str,
    min: T,
    max: T,
) -> Result<Option<T>, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    match parse::<T>(source, name)? {
        Some(value) if value < min || value > max => Err(ConfigError::new(
            name,
            value.to_string(),
            format!("must be from {min} to {max}"),
        )),
        other => Ok(other),
    }
}

pub(super) fn seconds(
    source: &Source<impl Fn(&str) -> Option<String>>,
    name: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    Ok(bounded::<u64>(source, name, 1, MAX_SECS)?.map(Duration::from_secs))
}

/// `ACME_DOMAINS` and the settings that go with it; `None` without it.
pub(super) fn acme(
    source: &Source<impl Fn(&str) -> Option<String>>,
) -> Result<Option<AcmeSettings>, ConfigError> {
    // All read, whether or not they are used: a setting given without ACME_DOMAINS is not
    // one the code never looks at.
    let (list, contact, cache_dir, directory, directory_ca) = (
        source.get("ACME_DOMAINS"),
        source.get("ACME_CONTACT"),
        source.listed("ACME_CACHE_DIR"),
        source.listed("ACME_DIRECTORY"),
        source.get("ACME_DIRECTORY_CA"),
    );
    let Some(list) = list else {
        return Ok(None);
    };
    let domains: Vec<String> = list
        .split(',')
        .map(|domain| domain.trim().to_ascii_lowercase())
        .filter(|domain| !domain.is_empty())
        .collect();
    let is_name = |name: &str| {
        name.contains('.')
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if domains.is_empty() || !domains.iter().all(|domain| is_name(domain)) {
        return Err(ConfigError::new(
            "ACME_DOMAINS",
            list,
            "must be DNS names, comma-separated (example.org,www.example.org)",
        ));
    }
    let contact = match contact {
        Some(contact) if contact.trim_start_matches("mailto:").contains('@') => contact,
        Some(contact) => {
            return Err(ConfigError::new(
                "ACME_CONTACT",
                contact,
                "must be an email address",
            ));
        }
        None => {
            return Err(ConfigError::new(
                "ACME_CONTACT",
                "",
                "must be set with ACME_DOMAINS: the ACME account's email address",
            ));
        }
    };
    if !directory.starts_with("https://") {
        return Err(ConfigError::new(
            "ACME_DIRECTORY",
            directory,
            "must be an https:// URL",
        ));
    }
    Ok(Some(AcmeSettings {
        domains,
        contact,
        cache_dir: PathBuf::from(cache_dir),
        directory,
        directory_ca: directory_ca.map(PathBuf::from),
    }))
}
