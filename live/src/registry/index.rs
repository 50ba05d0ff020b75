//! The registry's index: a trie of key segments.
//!
//! A trie (rather than one flat map scanned per broadcast) makes a broadcast cost grow with the
//! number of connections the pattern can reach: `page/home/*` visits only the children of
//! `page/home`, so ten matching streams among ten thousand cost ten visits, not ten thousand
//! pattern comparisons.

use std::{collections::HashMap, fmt, net::IpAddr, sync::Arc};

use super::{
    key::{Key, Pattern, WILDCARD},
    outbox::Outbox,
    socket_control::SocketControl,
};

/// One stored connection: its outbox, and which connection it is.
///
/// Dropping an entry (it was removed: replaced, closed, shut down) lets its stream end once
/// what is queued has been sent.
pub(super) struct Entry {
    /// Tells this connection apart from an earlier or later one stored under the same key, so a
    /// replaced connection's drop guard does not remove its successor.
    pub(super) id: u64,
    pub(super) key: Key,
    pub(super) outbox: Arc<Outbox>,
    /// The TCP connection the stream is written to, when the server said which.
    pub(super) socket: Option<SocketControl>,
    /// Who opened it, when the server said.
    pub(super) client: Option<IpAddr>,
}

impl Entry {
    /// Ends the stream at once and cuts off its TCP connection, so the socket is freed even if
    /// the client stopped reading.
    pub(super) fn cut_off(&self) {
        if let Some(socket) = &self.socket {
            socket.hang_up();
        }
        self.outbox.abort();
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.outbox.finish();
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("queued", &self.outbox.len())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    entry: Option<Entry>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.entry.is_none() && self.children.is_empty()
    }
}

#[derive(Debug, Default)]
pub(super) struct Index {
    root: Node,
    len: usize,
    /// Connections per client address, for the per-client cap.
    per_client: HashMap<IpAddr, usize>,
}

impl Index {
    /// Number of stored connections.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Number of stored connections opened by `client`.
    pub(super) fn of_client(&self, client: IpAddr) -> usize {
        self.per_client.get(&client).copied().unwrap_or(0)
    }

    /// Stores `entry` under its key and hands back the entry it replaces, if any.
    pub(super) fn insert(&mut self, entry: Entry) -> Option<Entry> {
        self.count(entry.client, true);
        let mut node = &mut self.root;
        for segment in entry.key.segments() {
            node = node.children.entry(segment.into()).or_default();
        }
        let replaced = node.entry.replace(entry);
        match &replaced {
            Some(old) => self.count(old.client, false),
            None => self.len += 1,
        }
        replaced
    }

    /// Removes the entry under `key` — only if it is connection `id`, when `id` is given — and
    /// prunes the branches it leaves empty, so unique keys (one per page load) leave nothing
    /// behind.
    pub(super) fn remove(&mut self, key: &Key, id: Option<u64>) -> Option<Entry> {
        let segments: Vec<&str> = key.segments().collect();
        let removed = remove_in(&mut self.root, &segments, id);
        if let Some(entry) = &removed {
            self.len -= 1;
            self.count(entry.client, false);
        }
        removed
    }

    fn count(&mut self, client: Option<IpAddr>, added: bool) {
        let Some(client) = client else { return };
        if added {
            *self.per_client.entry(client).or_default() += 1;
        } else if let Some(count) = self.per_client.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&client);
            }
        }
    }

    /// The entry stored under exactly `key`.
    pub(super) fn get(&self, key: &Key) -> Option<&Entry> {
        let mut node = &self.root;
        for segment in key.segments() {
            node = node.children.get(segment)?;
        }
        node.entry.as_ref()
    }

    /// Calls `visit` with every entry.
    pub(super) fn for_each(&self, mut visit: impl FnMut(&Entry)) {
        fn all(node: &Node, visit: &mut impl FnMut(&Entry)) {
            if let Some(entry) = &node.entry {
                visit(entry);
            }
            for child in node.children.values() {
                all(child, visit);
            }
        }
        all(&self.root, &mut visit);
    }

    /// How many entries `pattern` matches.
    pub(super) fn matching(&self, pattern: &Pattern) -> usize {
        let mut count = 0;
        self.for_each_match(pattern, |_| count += 1);
        count
    }

    /// Calls `visit` with every entry whose key `pattern` matches.
    pub(super) fn for_each_match(&self, pattern: &Pattern, mut visit: impl FnMut(&Entry)) {
        let segments: Vec<&str> = pattern.segments().collect();
        walk(&self.root, &segments, &mut visit);
    }
}

fn walk(node: &Node, pattern: &[&str], visit: &mut impl FnMut(&Entry)) {
    match pattern.split_first() {
        None => {
            if let Some(entry) = &node.entry {
                visit(entry);
            }
        }
        Some((&WILDCARD, rest)) => {
            for child in node.children.values() {
                walk(child, rest, visit);
            }
        }
        Some((segment, rest)) => {
            if let Some(child) = node.children.get(*segment) {
                walk(child, rest, visit);
            }
        }
    }
}

fn remove_in(node: &mut Node, key: &[&str], id: Option<u64>) -> Option<Entry> {
    match key.split_first() {
        None => {
            if id.is_none_or(|id| node.entry.as_ref().is_some_and(|e| e.id == id)) {
                node.entry.take()
            } else {
                None
            }
        }
        Some((segment, rest)) => {
            let child = node.children.get_mut(*segment)?;
            let removed = remove_in(child, rest, id);
            if child.is_empty() {
                node.children.remove(*segment);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, id: u64) -> Entry {
        Entry {
            id,
            key: Key::new(key).unwrap(),
            outbox: Arc::new(Outbox::new(1)),
            socket: None,
            client: None,
        }
    }

    fn matches(index: &Index, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        index.for_each_match(&Pattern::new(pattern).unwrap(), |e| {
            keys.push(e.key.to_string())
        });
        keys.sort();
        keys
    }

    #[test]
    fn walks_only_matching_branches() {
        let mut index = Index::default();
        index.insert(entry("page/home/a", 1));
        index.insert(entry("page/home/b", 2));
        index.insert(entry("page/about/a", 3));
        index.insert(entry("page/home", 4));
        assert_eq!(
            matches(&index, "page/home/*"),
            ["page/home/a", "page/home/b"]
        );
        assert_eq!(matches(&index, "page/*/a"), ["page/about/a", "page/home/a"]);
        assert_eq!(matches(&index, "page/*"), ["page/home"]);
        assert_eq!(matches(&index, "page/home/a"), ["page/home/a"]);
        assert!(matches(&index, "page/home/a/*").is_empty());
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn removal_checks_the_id_and_prunes_empty_branches() {
        let mut index = Index::default();
        index.insert(entry("page/home/a", 1));
        let key = Key::new("page/home/a").unwrap();
        assert!(
            index.remove(&key, Some(2)).is_none(),
            "another connection's id"
        );
        assert!(index.get(&key).is_some());
        assert_eq!(index.remove(&key, Some(1)).map(|e| e.id), Some(1));
        assert_eq!(index.len(), 0);
        assert!(index.root.is_empty(), "no empty nodes are left behind");
    }

    #[test]
    fn insert_replaces_and_returns_the_previous_entry() {
        let mut index = Index::default();
        assert!(index.insert(entry("a/b", 1)).is_none());
        assert_eq!(index.insert(entry("a/b", 2)).map(|e| e.id), Some(1));
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(&Key::new("a/b").unwrap()).map(|e| e.id), Some(2));
    }
}
