//! The format of broadcasts published to Redis, small enough to read in `redis-cli`.
//!
//! One message per broadcast, on the channel `<prefix>:broadcast`:
//!
//! ```text
//! ascolais/2 <origin instance uuid> <sequence number>\n
//! <pattern>\n
//! <excluded keys, separated by spaces; empty line if none>\n
//! <topic> <version>\n           (latest-state events; an empty line for ordinary ones)
//! <the value as JSON>\n         (latest-state events; an empty line for ordinary ones)
//! <the encoded SSE event, exactly as streams send it>
//! ```
//!
//! The origin and its sequence number let the sender recognise its own broadcasts when they
//! come back, and deliver each to its own streams exactly once. The topic and version let every
//! receiver refuse a version older than one it has seen. Keys, patterns, topics and versions
//! never contain whitespace, and compact JSON never contains a raw line break, which is what
//! makes the line-based layout unambiguous.

use bytes::Bytes;
use uuid::Uuid;

use crate::{
    connections::{Key, LatestState, Outgoing, Pattern, Version, is_topic_name},
    sse::Frame,
};

const MAGIC: &str = "ascolais/2";

/// One broadcast as it travels between instances.
#[derive(Debug, Clone)]
pub struct WireBroadcast {
    /// The instance that published it.
    pub origin: Uuid,
    /// Its number among the origin's broadcasts.
    pub seq: u64,
    /// The broadcast itself.
    pub outgoing: Outgoing,
}

impl WireBroadcast {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let outgoing = &self.outgoing;
        let except: Vec<&str> = outgoing.except.iter().map(Key::as_str).collect();
        let (latest, value) = match &outgoing.latest {
            Some(latest) => (
                format!("{} {}", latest.topic, latest.version),
                latest.value.as_deref().unwrap_or("null"),
            ),
            None => (String::new(), ""),
        };
        let mut message = format!(
            "{MAGIC} {} {}\n{}\n{}\n{latest}\n{value}\n",
            self.origin,
            self.seq,
            outgoing.pattern,
            except.join(" "),
        )
        .into_bytes();
        message.extend_from_slice(outgoing.frame.as_bytes());
        message
    }

    /// Parses a message, saying what is wrong with a malformed one.
    pub fn decode(message: &[u8]) -> Result<WireBroadcast, String> {
        let mut parts = message.splitn(6, |&b| b == b'\n');
        let mut line = |what: &str| {
            parts
                .next()
                .map(|part| std::str::from_utf8(part).map_err(|_| format!("{what} is not UTF-8")))
                .unwrap_or_else(|| Err(format!("no {what}")))
        };
        let mut header = line("header")?.split(' ');
        if header.next() != Some(MAGIC) {
            return Err(format!("not an {MAGIC} message"));
        }
        let origin = header
            .next()
            .and_then(|id| id.parse().ok())
            .ok_or("no origin instance id")?;
        let seq = header
            .next()
            .and_then(|seq| seq.parse().ok())
            .ok_or("no sequence number")?;
        if header.next().is_some() {
            return Err("a header with extra fields".into());
        }
        let pattern = Pattern::new(line("pattern")?).map_err(|e| format!("bad pattern: {e}"))?;
        let except = line("excluded keys")?
            .split(' ')
            .filter(|key| !key.is_empty())
            .map(Key::new)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad excluded key: {e}"))?;
        let latest = line("topic")?;
        let value = line("value")?;
        let latest = if latest.is_empty() {
            if !value.is_empty() {
                return Err("a value without a topic".into());
            }
            None
        } else {
            let (topic, version) = latest.split_once(' ').ok_or("no version")?;
            if !is_topic_name(topic) {
                return Err(format!("bad topic name {topic:?}"));
            }
            let version: Version = version.parse().map_err(|e| format!("{e}"))?;
            serde_json::from_str::<serde::de::IgnoredAny>(value)
                .map_err(|e| format!("the value is not JSON: {e}"))?;
            Some(LatestState {
                topic: topic.into(),
                version,
                value: Some(value.into()),
            })
        };
        let frame = parts.next().ok_or("no event")?;
        let frame = Frame::from_wire(Bytes::copy_from_slice(frame))
            .ok_or("the event is not a complete SSE event")?;
        Ok(WireBroadcast {
            origin,
            seq,
            outgoing: Outgoing {
                pattern,
                except,
                frame,
                latest,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use datastar::prelude::PatchElements;

    use super::*;

    fn sample() -> WireBroadcast {
        WireBroadcast {
            origin: Uuid::new_v4(),
            seq: 42,
            outgoing: Outgoing {
                pattern: Pattern::new("page/home/*").unwrap(),
                except: vec![
                    Key::new("page/home/a").unwrap(),
                    Key::new("page/home/b").unwrap(),
                ],
                frame: Frame::from(PatchElements::new("<p id=\"x\">\nhi\n</p>")),
                latest: None,
            },
        }
    }

    fn latest() -> WireBroadcast {
        let mut message = sample();
        message.outgoing.except.clear();
        message.outgoing.latest = Some(LatestState {
            topic: "greeting".into(),
            version: Version::new(1_764_000_000_000, 7),
            value: Some(r#"{"name":"Ada\nLovelace","serial":7}"#.into()),
        });
        message
    }

    fn same(a: &WireBroadcast, b: &WireBroadcast) -> bool {
        a.encode() == b.encode()
    }

    #[test]
    fn round_trips() {
        for message in [sample(), latest()] {
            let decoded = WireBroadcast::decode(&message.encode()).unwrap();
            assert!(same(&decoded, &message));
            assert_eq!(decoded.seq, 42);
            assert_eq!(decoded.origin, message.origin);
        }
        let decoded = WireBroadcast::decode(&latest().encode()).unwrap();
        let state = decoded.outgoing.latest.unwrap();
        assert_eq!(state.version, Version::new(1_764_000_000_000, 7));
        assert_eq!(
            state.value.as_deref(),
            Some(r#"{"name":"Ada\nLovelace","serial":7}"#),
            "an escaped line break stays escaped"
        );
    }

    #[test]
    fn reads_like_the_documentation() {
        let message = latest();
        let text = String::from_utf8(message.encode()).unwrap();
        assert_eq!(
            text,
            format!(
                "ascolais/2 {} 42\npage/home/*\n\ngreeting {}\n{}\n{}",
                message.origin,
                Version::new(1_764_000_000_000, 7),
                r#"{"name":"Ada\nLovelace","serial":7}"#,
                message.outgoing.frame.as_str()
            )
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let origin = Uuid::new_v4();
        let version = Version::new(1, 1);
        let event = "event: x\ndata: y\n\n";
        for (bad, reason) in [
            ("".to_owned(), "not an"),
            ("hello".to_owned(), "not an"),
            (
                format!("ascolais/1 {origin} R\npage/*\n\n{event}"),
                "not an",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/home/*\n\n\n\n"),
                "SSE event",
            ),
            (
                format!("ascolais/2 nope 1\npage/*\n\n\n\n{event}"),
                "origin",
            ),
            (
                format!("ascolais/2 {origin} x\npage/*\n\n\n\n{event}"),
                "sequence",
            ),
            (
                format!("ascolais/2 {origin} 1 2\npage/*\n\n\n\n{event}"),
                "extra",
            ),
            (
                format!("ascolais/2 {origin} 1\npage//*\n\n\n\n{event}"),
                "pattern",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\npage/*\n\n\n{event}"),
                "excluded",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\ngreeting\n1\n{event}"),
                "version",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\ngreeting 12\n1\n{event}"),
                "version",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\na b {version}\n1\n{event}"),
                "version",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\nx/y {version}\n1\n{event}"),
                "topic",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\ngreeting {version}\n{{nope\n{event}"),
                "JSON",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\n\n1\n{event}"),
                "without a topic",
            ),
            (
                format!("ascolais/2 {origin} 1\npage/*\n\n\n\nevent: x\ndata: y"),
                "SSE event",
            ),
        ] {
            let error = WireBroadcast::decode(bad.as_bytes()).unwrap_err();
            assert!(error.contains(reason), "{bad:?}: {error}");
        }
    }
}
