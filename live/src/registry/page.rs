//! A page of the app, named once: the keys of its tabs' streams, the pattern that reaches all
//! of them and the presences counted on it all come from one [`Page`] value, so the name is
//! not spelled again in each (where a typo would silently reach no stream).

use std::fmt;

use super::key::{Key, Pattern};

/// A page, by the name its streams are stored under: tab `t` of page `home` is the key
/// `page/home/<t>`, and `page/home/*` reaches every open tab of it.
///
/// ```
/// use live::{Page, Presence};
///
/// /// The home page.
/// const HOME: Page = Page::new("home");
/// /// How many home pages are open.
/// static HERE: Presence = HOME.presence("here");
///
/// assert_eq!(HOME.tabs().as_str(), "page/home/*");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    name: &'static str,
}

impl Page {
    /// The page called `name`: one key segment of printable ASCII (not empty, without `/`,
    /// `*` or spaces). Any other name fails at compile time in a `const` or `static`.
    pub const fn new(name: &'static str) -> Self {
        assert!(
            is_segment(name),
            "a page's name is printable ASCII without `/`, `*` or spaces, at least one character"
        );
        Page { name }
    }

    /// The name, as in its keys.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The key of tab `tab`'s stream on this page: `page/<name>/<tab>`.
    pub fn tab(&self, tab: uuid::Uuid) -> Key {
        Key::tab(self.name, tab).expect("a page's name and a UUID are valid key segments")
    }

    /// Every open tab of this page: `page/<name>/*`, what a broadcast to the page targets.
    pub fn tabs(&self) -> Pattern {
        Pattern::page(self.name).expect("a page's name is a valid pattern segment")
    }

    // `presence`, the count of its open tabs, is with `Presence` (`presence.rs`).
}

/// So a page goes where its name did: `stream.open_tab(HOME, tab)`.
impl AsRef<str> for Page {
    fn as_ref(&self) -> &str {
        self.name
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Page({})", self.name)
    }
}

/// Whether `name` is one key segment of printable ASCII, in a `const fn`: stricter than
/// `Key::new` (which takes any text without whitespace or control characters), as Unicode's
/// whitespace cannot be told in a `const fn`, and a page's name goes into URLs and logs.
const fn is_segment(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if !byte.is_ascii_graphic() || byte == b'/' || byte == b'*' {
            return false;
        }
        at += 1;
    }
    !bytes.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Page = Page::new("home");

    #[test]
    fn a_page_makes_its_keys_and_pattern() {
        let tab = uuid::Uuid::new_v4();
        assert_eq!(HOME.tab(tab).as_str(), format!("page/home/{tab}"));
        assert_eq!(HOME.tabs().as_str(), "page/home/*");
        assert!(HOME.tabs().matches(&HOME.tab(tab)));
        assert!(!Page::new("board").tabs().matches(&HOME.tab(tab)));
        assert_eq!(HOME.as_ref(), "home");
    }

    #[test]
    fn a_page_name_is_one_segment() {
        for good in ["home", "board-2", "a.b_c"] {
            assert!(is_segment(good), "{good}");
            assert!(Key::tab(good, uuid::Uuid::nil()).is_ok(), "{good}");
        }
        for bad in [
            "", "a/b", "*", "a*", "a b", "a\tb", "a\u{7f}", "é", "a\u{a0}b",
        ] {
            assert!(!is_segment(bad), "{bad:?}");
        }
    }
}
