//! What names a latest-state topic and orders its versions: [`Topic`], a name with the type of
//! its value, and [`Version`].
//!
//! A [`Version`] is `(epoch, number, local, origin)`, compared in that order. Versions are
//! handed out by one numbering authority: this process, or Redis when instances share it. The
//! *epoch* is when that authority started counting (a Redis that restarts empty starts a new,
//! later epoch, so its fresh numbers still sort after everything seen before). *local* counts
//! updates an instance made on its own while the authority was unreachable, after the last
//! number it knew; *origin* tells two such instances apart.

use std::{fmt, marker::PhantomData, str::FromStr};

/// The version of one state of a latest-state topic. See [`Topic`](crate::registry::Topic).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    epoch: u64,
    number: u64,
    local: u16,
    origin: u16,
}

/// Epochs and numbers travel as 12 hex digits each.
const MAX_48_BITS: u64 = (1 << 48) - 1;

impl Version {
    /// Number `number` of the authority that started counting at `epoch` (milliseconds since the
    /// Unix epoch). Both are kept to 48 bits: enough for the year 10 000 and 2.8 × 10¹⁴ updates.
    pub fn new(epoch: u64, number: u64) -> Self {
        Version {
            epoch: epoch.min(MAX_48_BITS),
            number: number.min(MAX_48_BITS),
            local: 0,
            origin: 0,
        }
    }

    /// The next version an instance hands out on its own while the numbering authority is out
    /// of reach: after `self`, before the authority's next number.
    pub fn next_local(self, origin: u16) -> Self {
        Version {
            local: self.local.saturating_add(1),
            origin,
            ..self
        }
    }

    /// The number to show people ("greeting #7"): the authority's number plus the updates made
    /// locally after it.
    pub fn display_number(&self) -> u64 {
        self.number + u64::from(self.local)
    }

    /// The numbering authority's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// As 32 hex digits, which sort as the versions do (Redis compares them as strings).
    pub fn to_hex(&self) -> String {
        format!(
            "{:012x}{:012x}{:04x}{:04x}",
            self.epoch, self.number, self.local, self.origin
        )
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Version({}:{}+{}@{})",
            self.epoch, self.number, self.local, self.origin
        )
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Text that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a version (32 hex digits): {0:?}")]
pub struct VersionError(String);

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, VersionError> {
        let error = || VersionError(text.chars().take(40).collect());
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error());
        }
        let field = |range: std::ops::Range<usize>| u64::from_str_radix(&text[range], 16);
        let (Ok(epoch), Ok(number), Ok(local), Ok(origin)) =
            (field(0..12), field(12..24), field(24..28), field(28..32))
        else {
            return Err(error());
        };
        Ok(Version {
            epoch,
            number,
            local: local as u16,
            origin: origin as u16,
        })
    }
}

/// The name of a latest-state topic, typed by the value it holds.
///
/// ```
/// # use live::Topic;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Greeting;
/// /// The latest greeting, shown on every home page.
/// pub static GREETING: Topic<Greeting> = Topic::new("greeting");
/// ```
pub struct Topic<T> {
    name: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> Topic<T> {
    /// A topic called `name`: letters, digits, `-`, `_`, `.` or `:`. The name goes into Redis
    /// keys and messages, so anything else is refused — at compile time in a `static`.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "a topic needs a name");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b':',
                "topic names are letters, digits, `-`, `_`, `.` and `:`"
            );
            i += 1;
        }
        Topic {
            name,
            value: PhantomData,
        }
    }

    /// The topic's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({:?})", self.name)
    }
}

/// Whether `name` could be a topic name (for names that arrive from elsewhere, such as Redis).
pub fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_epoch_then_number_then_local_updates() {
        let old_epoch = Version::new(1_000, 57);
        let new_epoch = Version::new(2_000, 1);
        assert!(
            new_epoch > old_epoch,
            "a new epoch beats any number of an old one"
        );
        assert!(Version::new(2_000, 2) > new_epoch);

        let local = new_epoch.next_local(7);
        assert!(
            local > new_epoch,
            "a local update follows what it was based on"
        );
        assert!(
            Version::new(2_000, 2) > local,
            "the authority's next number follows it"
        );
        assert!(local.next_local(7) > local);
        assert_ne!(
            new_epoch.next_local(8),
            local,
            "two instances' local updates differ"
        );
        assert_eq!(local.display_number(), 2);
    }

    #[test]
    fn hex_sorts_like_versions_and_parses_back() {
        let versions = [
            Version::default(),
            Version::new(1, 0xffff_ffff),
            Version::new(1, 0xffff_ffff).next_local(3),
            Version::new(2, 1),
            Version::new(1_764_000_000_000, 12_345).next_local(65_535),
        ];
        for pair in versions.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_hex() < pair[1].to_hex(), "{pair:?}");
        }
        for version in versions {
            assert_eq!(version.to_hex().parse::<Version>(), Ok(version));
        }
        for bad in ["", "12", &"g".repeat(32), &"0".repeat(33)] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topic_names_are_checked() {
        assert!(is_topic_name("greeting"));
        assert!(is_topic_name("score:team-1"));
        assert!(!is_topic_name(""));
        assert!(!is_topic_name("two words"));
        assert!(!is_topic_name("line\nbreak"));
    }
}
