//! The format of broadcasts published to Redis, small enough to read in `redis-cli`.
//!
//! One message per broadcast, on the channel `<prefix>:broadcast`:
//!
//! ```text
//! ascolais/1 <origin instance uuid> <R|L>\n
//! <pattern>\n
//! <excluded keys, separated by spaces; empty line if none>\n
//! <the encoded SSE event, exactly as streams send it>
//! ```
//!
//! `R` asks every instance, the origin included, to deliver the event to its matching streams.
//! `L` says the origin already delivered it locally (it published while its own subscription
//! was down), so the origin skips it. Keys and patterns never contain whitespace, which is
//! what makes the space-separated list unambiguous.

use bytes::Bytes;
use uuid::Uuid;

use super::{Key, Pattern};
use crate::sse::Frame;

const MAGIC: &str = "ascolais/1";

/// One broadcast as it travels between instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireBroadcast {
    /// The instance that published it.
    pub origin: Uuid,
    /// Whether the origin already delivered it to its own streams.
    pub delivered_by_origin: bool,
    /// Which keys it is for.
    pub pattern: Pattern,
    /// Keys to skip.
    pub except: Vec<Key>,
    /// The event.
    pub frame: Frame,
}

impl WireBroadcast {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let except: Vec<&str> = self.except.iter().map(Key::as_str).collect();
        let mut message = format!(
            "{MAGIC} {} {}\n{}\n{}\n",
            self.origin,
            if self.delivered_by_origin { "L" } else { "R" },
            self.pattern,
            except.join(" ")
        )
        .into_bytes();
        message.extend_from_slice(self.frame.as_bytes());
        message
    }

    /// Parses a message, saying what is wrong with a malformed one.
    pub fn decode(message: &[u8]) -> Result<WireBroadcast, String> {
        let mut parts = message.splitn(4, |&b| b == b'\n');
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
        let delivered_by_origin = match header.next() {
            Some("L") => true,
            Some("R") => false,
            _ => return Err("no delivery flag".into()),
        };
        let pattern = line("pattern")?;
        let except = line("excluded keys")?;
        let frame = parts.next().ok_or("no event")?;
        let pattern = Pattern::new(pattern).map_err(|e| format!("bad pattern: {e}"))?;
        let except = except
            .split(' ')
            .filter(|key| !key.is_empty())
            .map(Key::new)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad excluded key: {e}"))?;
        let frame = Frame::from_wire(Bytes::copy_from_slice(frame))
            .ok_or("the event is not a complete SSE event")?;
        Ok(WireBroadcast {
            origin,
            delivered_by_origin,
            pattern,
            except,
            frame,
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
            delivered_by_origin: false,
            pattern: Pattern::new("page/home/*").unwrap(),
            except: vec![
                Key::new("page/home/a").unwrap(),
                Key::new("page/home/b").unwrap(),
            ],
            frame: Frame::from(PatchElements::new("<p id=\"x\">\nhi\n</p>")),
        }
    }

    #[test]
    fn round_trips() {
        let message = sample();
        assert_eq!(WireBroadcast::decode(&message.encode()), Ok(message));
        let local = WireBroadcast {
            delivered_by_origin: true,
            except: vec![],
            ..sample()
        };
        assert_eq!(WireBroadcast::decode(&local.encode()), Ok(local));
    }

    #[test]
    fn reads_like_the_documentation() {
        let message = sample();
        let text = String::from_utf8(message.encode()).unwrap();
        assert_eq!(
            text,
            format!(
                "ascolais/1 {} R\npage/home/*\npage/home/a page/home/b\n{}",
                message.origin,
                message.frame.as_str()
            )
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let good = String::from_utf8(sample().encode()).unwrap();
        let origin = sample().origin;
        for (bad, reason) in [
            ("".to_owned(), "not an"),
            ("hello".to_owned(), "not an"),
            (
                format!("ascolais/1 {origin} R\npage/home/*\n\n"),
                "SSE event",
            ),
            (
                "ascolais/1 nope R\npage/home/*\n\nevent: x\ndata: y\n\n".to_owned(),
                "origin",
            ),
            (
                format!("ascolais/1 {origin} X\npage/home/*\n\nevent: x\ndata: y\n\n"),
                "flag",
            ),
            (
                format!("ascolais/1 {origin} R\npage//*\n\nevent: x\ndata: y\n\n"),
                "pattern",
            ),
            (
                format!("ascolais/1 {origin} R\npage/*\npage/*\nevent: x\ndata: y\n\n"),
                "excluded",
            ),
            (
                format!("ascolais/1 {origin} R\npage/*\n\nevent: x\ndata: y"),
                "SSE event",
            ),
            (good.replace("ascolais/1", "ascolais/2"), "not an"),
        ] {
            let error = WireBroadcast::decode(bad.as_bytes()).unwrap_err();
            assert!(error.contains(reason), "{bad:?}: {error}");
        }
    }
}
