//! Registry keys (`page/home/<uuid>`) and patterns (`page/home/*`).
//!
//! Both are paths of `/`-separated, non-empty segments. In a pattern a segment that is exactly
//! `*` matches any one segment; a pattern matches a key only when *every* segment matches and
//! the two have the same number of segments, so `page/*` never matches `page/home/x`.

use std::{fmt, str::FromStr, sync::Arc};

/// The segment that matches any one segment in a [`Pattern`].
pub const WILDCARD: &str = "*";

/// Why a string is not a valid [`Key`] or [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing at all, or a `//`, leading or trailing `/`.
    #[error("`{0}` has an empty segment (keys look like `page/home/<id>`)")]
    EmptySegment(String),
    /// A `*` inside a key, or a pattern segment like `a*` that mixes `*` with text.
    #[error("`{0}`: `*` may only stand alone as a whole pattern segment, never in a key")]
    MisplacedWildcard(String),
    /// A segment given to `from_segments` that contains `/` (it would silently become two).
    #[error("segment `{0}` contains `/`")]
    SlashInSegment(String),
    /// Whitespace or a control character: keys travel between instances in a line-based
    /// format, separated by spaces.
    #[error("`{0}` contains whitespace or a control character")]
    InvalidCharacter(String),
}

fn validate(text: &str, wildcards_allowed: bool) -> Result<(), KeyError> {
    if text.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(KeyError::InvalidCharacter(text.to_owned()));
    }
    for segment in text.split('/') {
        if segment.is_empty() {
            return Err(KeyError::EmptySegment(text.to_owned()));
        }
        let is_wildcard = segment == WILDCARD;
        if segment.contains('*') && !(is_wildcard && wildcards_allowed) {
            return Err(KeyError::MisplacedWildcard(text.to_owned()));
        }
    }
    Ok(())
}

/// The address of one stored connection, e.g. `page/home/4f1c…`.
///
/// Cheap to clone (a shared string), because the registry keeps one copy per connection.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(Arc<str>);

impl Key {
    /// Parses `page/home/<id>`-style text.
    pub fn new(text: &str) -> Result<Self, KeyError> {
        validate(text, false)?;
        Ok(Key(text.into()))
    }

    /// Joins segments with `/`, validating each one.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Key::new(&join(segments)?)
    }

    /// The key of the stream of tab `tab` on page `page`: `page/<page>/<tab>`, the shape every
    /// page stream has (the dev loop reaches them all with `page/*/*`).
    pub fn tab(page: &str, tab: uuid::Uuid) -> Result<Self, KeyError> {
        Key::from_segments(["page", page, &tab.to_string()])
    }

    /// The key's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as logs show it: its last segment — a tab's session id, in the keys of page
    /// streams, which lets whoever knows it open a stream in that tab's place — as a short
    /// digest: `page/home/#1a2b3c4d`. Lines about the same stream still match.
    pub fn redacted(&self) -> RedactedKey<'_> {
        RedactedKey(self)
    }
}

/// A [`Key`] with its last segment hidden: see [`Key::redacted`].
#[derive(Clone, Copy, Debug)]
pub struct RedactedKey<'a>(&'a Key);

impl fmt::Display for RedactedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.as_str();
        let (kept, hidden) = match text.rsplit_once('/') {
            Some((kept, hidden)) => (Some(kept), hidden),
            None => (None, text),
        };
        if let Some(kept) = kept {
            write!(f, "{kept}/")?;
        }
        write!(f, "#{}", crate::redact::digest(hidden))
    }
}

/// A set of keys: `*` segments match anything, other segments match themselves.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern(Arc<str>);

impl Pattern {
    /// Parses `page/home/*`-style text. A pattern without `*` matches exactly one key.
    pub fn new(text: &str) -> Result<Self, KeyError> {
        validate(text, true)?;
        Ok(Pattern(text.into()))
    }

    /// Joins segments with `/`, validating each one.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Pattern::new(&join(segments)?)
    }

    /// The pattern that matches every key with exactly this many segments.
    pub fn any(segments: usize) -> Self {
        Pattern(vec![WILDCARD; segments.max(1)].join("/").into())
    }

    /// Every open tab of page `page`: `page/<page>/*`.
    pub fn page(page: &str) -> Result<Self, KeyError> {
        Pattern::from_segments(["page", page, WILDCARD])
    }

    /// The pattern's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether `key` is in this pattern's set: same length, every segment matching.
    pub fn matches(&self, key: &Key) -> bool {
        let mut pattern = self.segments();
        let mut key = key.segments();
        loop {
            match (pattern.next(), key.next()) {
                (None, None) => return true,
                (Some(p), Some(k)) if p == WILDCARD || p == k => continue,
                _ => return false,
            }
        }
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this very pattern (a clone of it), not merely an equal one: one
    /// pointer comparison.
    pub(super) fn is_same(&self, other: &Pattern) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<&Key> for Pattern {
    /// A key seen as the pattern that matches only itself.
    fn from(key: &Key) -> Self {
        Pattern(key.0.clone())
    }
}

fn join<I, S>(segments: I) -> Result<String, KeyError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut text = String::new();
    for (i, segment) in segments.into_iter().enumerate() {
        let segment = segment.as_ref();
        if segment.contains('/') {
            return Err(KeyError::SlashInSegment(segment.to_owned()));
        }
        if i > 0 {
            text.push('/');
        }
        text.push_str(segment);
    }
    Ok(text)
}

macro_rules! text_impls {
    ($ty:ident) => {
        impl FromStr for $ty {
            type Err = KeyError;
            fn from_str(text: &str) -> Result<Self, KeyError> {
                $ty::new(text)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), &*self.0)
            }
        }
    };
}

text_impls!(Key);
text_impls!(Pattern);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        Key::new(text).unwrap()
    }

    fn pattern(text: &str) -> Pattern {
        Pattern::new(text).unwrap()
    }

    #[test]
    fn logs_show_a_key_without_its_last_segment() {
        let id = "425c97bd-d7af-458a-81e3-e50efe5e6330";
        let shown = key(&format!("page/home/{id}")).redacted().to_string();
        assert!(shown.starts_with("page/home/#"), "{shown}");
        assert!(!shown.contains(id), "{shown}");
        assert_eq!(
            shown,
            key(&format!("page/home/{id}")).redacted().to_string()
        );
        assert_ne!(shown, key("page/home/other").redacted().to_string());
        let alone = key(id).redacted().to_string();
        assert!(alone.starts_with('#') && !alone.contains(id), "{alone}");
    }

    #[test]
    fn wildcards_match_any_single_segment() {
        assert!(pattern("page/home/*").matches(&key("page/home/abc")));
        assert!(pattern("page/*/abc").matches(&key("page/home/abc")));
        assert!(pattern("*/*/*").matches(&key("page/home/abc")));
        assert!(!pattern("page/about/*").matches(&key("page/home/abc")));
    }

    #[test]
    fn every_segment_is_compared_not_just_the_first_two() {
        // The original Clojure store compared only the first two segments.
        assert!(!pattern("page/home/abc").matches(&key("page/home/xyz")));
        assert!(!pattern("page/home/*/x").matches(&key("page/home/abc/y")));
    }

    #[test]
    fn lengths_must_agree() {
        assert!(!pattern("page/*").matches(&key("page/home/abc")));
        assert!(!pattern("page/home/abc/*").matches(&key("page/home/abc")));
        assert!(!pattern("*").matches(&key("page/home")));
    }

    #[test]
    fn a_pattern_without_wildcards_is_one_key() {
        let k = key("page/home/abc");
        assert!(Pattern::from(&k).matches(&k));
        assert!(!Pattern::from(&k).matches(&key("page/home/abd")));
    }

    #[test]
    fn malformed_keys_and_patterns_are_refused() {
        for bad in ["", "/", "page//home", "/page", "page/"] {
            assert!(
                matches!(Key::new(bad), Err(KeyError::EmptySegment(_))),
                "{bad:?}"
            );
            assert!(Pattern::new(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Key::new("page/*"),
            Err(KeyError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            Pattern::new("page/ho*"),
            Err(KeyError::MisplacedWildcard(_))
        ));
        for bad in ["page/home/a b", "page/home/a\nb", "page/\thome"] {
            assert!(
                matches!(Key::new(bad), Err(KeyError::InvalidCharacter(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tabs_and_pages_have_the_shape_the_dev_loop_reaches() {
        let tab = uuid::Uuid::new_v4();
        let key = Key::tab("home", tab).unwrap();
        assert_eq!(key.as_str(), format!("page/home/{tab}"));
        assert!(Pattern::page("home").unwrap().matches(&key));
        assert!(Pattern::new("page/*/*").unwrap().matches(&key));
        assert!(Key::tab("a/b", tab).is_err(), "one segment per page name");
    }

    #[test]
    fn segments_join_and_split() {
        let k = Key::from_segments(["page", "home", "abc"]).unwrap();
        assert_eq!(k.as_str(), "page/home/abc");
        assert_eq!(k.segments().collect::<Vec<_>>(), ["page", "home", "abc"]);
        assert_eq!(Pattern::any(3).as_str(), "*/*/*");
        assert!(matches!(
            Key::from_segments(["page", "a/b"]),
            Err(KeyError::SlashInSegment(_))
        ));
        assert!(Key::from_segments(["page", ""]).is_err());
    }
}
