//! What logs and error messages may show of values that carry secrets.
//!
//! Whoever reads the logs must learn nothing that lets them in: not a Redis password (an error
//! that prints `REDIS_URL`), and not a tab's session id — the key its stream is stored under,
//! which Datastar sends in the `datastar` query parameter of every stream request and which is
//! the last segment of the stream's key. Logs still say which request or stream a line is
//! about: the path, the size of the signals, a short digest of a key's hidden segment.

use std::{
    borrow::Cow,
    hash::{DefaultHasher, Hash, Hasher},
};

/// The query parameter Datastar puts a `GET`'s signals in.
const SIGNALS_PARAMETER: &str = "datastar";

/// `text` with the password of every URL in it (`scheme://user:password@host`, or a `pass=` /
/// `password=` query parameter, as in `redis+unix:///run/redis.sock?pass=…`) replaced by `***`.
/// A user name without a password is hidden whole: Redis reads `redis://secret@host` as one.
pub(crate) fn credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?` or `#`; its user information before the
        // last `@` in it.
        let end = after
            .find(|c: char| "/?#\"'".contains(c) || c.is_whitespace())
            .unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        match authority.rfind('@') {
            Some(at) => {
                let (user_info, host) = authority.split_at(at);
                match user_info.split_once(':') {
                    Some((user, _)) => out.push_str(&format!("{user}:***")),
                    None => out.push_str("***"),
                }
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = tail;
        // The query of this URL, up to whatever follows it.
        let url_end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let (url_rest, after_url) = rest.split_at(url_end);
        out.push_str(&query_without_passwords(url_rest));
        rest = after_url;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `path_and_query` with the values of `pass` and `password` parameters replaced by `***`.
fn query_without_passwords(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if matches!(name, "pass" | "password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A request's path and query as a log shows them: the `datastar` parameter (a tab's signals,
/// its session id among them) reduced to its size, as `datastar=[68B]`.
pub(crate) fn path_and_query(path: &str, query: Option<&str>) -> String {
    let Some(query) = query else {
        return path.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            // Compared decoded: `%64atastar` reaches the app as `datastar` too.
            let decoded = form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(name, _)| name.into_owned())
                .unwrap_or_default();
            if decoded == SIGNALS_PARAMETER {
                format!("{name}=[{}B]", value.len())
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A short digest of `secret`, so that log lines about the same one can be matched without
/// showing it. Eight hex digits of a 64-bit hash: nothing of a random id can be recovered from
/// them.
pub(crate) fn digest(secret: &str) -> String {
    let mut hasher = DefaultHasher::new();
    secret.hash(&mut hasher);
    format!("{:08x}", hasher.finish() >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        for (text, shown) in [
            (
                "invalid REDIS_URL=\"redis://user:secretpw@10.0.0.1:6379/0\": bad",
                "invalid REDIS_URL=\"redis://user:***@10.0.0.1:6379/0\": bad",
            ),
            ("rediss://:secretpw@host", "rediss://:***@host"),
            ("redis://secretpw@host/", "redis://***@host/"),
            ("redis://us:er:secretpw@host", "redis://us:***@host"),
            ("redis://a:b@c@host", "redis://a:***@host"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=secretpw",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "two: redis://a:secretpw@x and redis://b:secretpw@y?password=secretpw done",
                "two: redis://a:***@x and redis://b:***@y?password=*** done",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("no url at all", "no url at all"),
        ] {
            assert_eq!(credentials(text), shown);
            assert!(!credentials(text).contains("secretpw"));
        }
    }

    #[test]
    fn the_signals_parameter_is_reduced_to_its_size() {
        let signals = "%7B%22sessionId%22%3A%22425c97bd-d7af-458a-81e3-e50efe5e6330%22%7D";
        assert_eq!(
            path_and_query("/sse/home", Some(&format!("datastar={signals}"))),
            format!("/sse/home?datastar=[{}B]", signals.len())
        );
        assert_eq!(
            path_and_query("/sse/home", Some(&format!("a=1&%64atastar={signals}&b"))),
            format!("/sse/home?a=1&%64atastar=[{}B]&b", signals.len())
        );
        assert_eq!(path_and_query("/about", None), "/about");
        assert_eq!(path_and_query("/x", Some("page=2")), "/x?page=2");
    }

    #[test]
    fn digests_tell_secrets_apart_without_showing_them() {
        let id = "425c97bd-d7af-458a-81e3-e50efe5e6330";
        assert_eq!(digest(id), digest(id));
        assert_ne!(digest(id), digest("425c97bd-d7af-458a-81e3-e50efe5e6331"));
        assert_eq!(digest(id).len(), 8);
    }
}
