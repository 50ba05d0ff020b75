//! Reading one variable: parsed, bounded, and refused with a message naming it.

use std::{str::FromStr, time::Duration};

use super::{ConfigError, MAX_SECS};

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
        .map_err(|error: T::Err| ConfigError::new(name, value, error.to_string()))
}

pub(super) fn redis_url(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let Some(url) = lookup("REDIS_URL") else {
        return Ok(None);
    };
    #[cfg(feature = "redis")]
    if let Err(error) = redis::Client::open(url.as_str()) {
        return Err(ConfigError::new("REDIS_URL", url, error.to_string()));
    }
    Ok(Some(url))
}

/// An integer from `min` to `max`.
pub(super) fn bounded<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    min: T,
    max: T,
) -> Result<Option<T>, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    match parse::<T>(lookup, name)? {
        Some(value) if value < min || value > max => Err(ConfigError::new(
            name,
            value.to_string(),
            format!("must be from {min} to {max}"),
        )),
        other => Ok(other),
    }
}

pub(super) fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    Ok(bounded::<u64>(lookup, name, 1, MAX_SECS)?.map(Duration::from_secs))
}
