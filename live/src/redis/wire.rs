//! The format of broadcasts published to Redis, small enough to read in `redis-cli`.
//!
//! One message per broadcast, on the channel `<prefix>:broadcast`:
//!
//! ```text
//! ascolais/3 <signature>\n
//! <prefix> <channel>\n          (whom it is for: the app's REDIS_PREFIX and the channel)
//! <origin> <epoch> <sequence number> <sent at>\n
//! <pattern>\n
//! <excluded keys, separated by spaces; empty line if none>\n
//! <topic> <version>\n           (latest-state events; an empty line for ordinary ones)
//! <the value as JSON>\n         (latest-state events; an empty line for ordinary ones)
//! <the encoded SSE event, exactly as streams send it>
//! ```
//!
//! The signature is an HMAC-SHA256 of the format's name and everything after the first line,
//! made with the secret every instance shares (`REDIS_SECRET`). Whoever can publish on the
//! channel could otherwise send a well-formed patch — with `data-*` expressions, which Datastar
//! runs — to every open tab; a message that is not signed with the secret is refused before
//! anything of it is read. So are messages over [`MAX_MESSAGE_BYTES`], and lists of excluded
//! keys over [`MAX_EXCLUDED`].
//!
//! A valid signature only says that an instance made the message, once, for some app: whoever
//! can read the channel can publish the same bytes again, on any channel, or store them
//! anywhere. So the signature covers everything a receiver relies on, and the receiver checks
//! it (`admission.rs`): whom the message is for (another app sharing the secret and the Redis,
//! or another channel, is refused), who sent it — the instance (a random id), the epoch it
//! started numbering in and the message's number among its own, which only goes up — and when,
//! in milliseconds by Redis's clock (`TIME`), not the sender's own.
//!
//! The topic and version let every receiver refuse a version older than one it has seen. Keys,
//! patterns, prefixes, channels, topics and versions never contain whitespace, and compact JSON
//! never contains a raw line break, which is what makes the line-based layout unambiguous.

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    frame::Frame,
    registry::{Key, LatestState, Outgoing, Pattern, Version, is_topic_name},
};

const MAGIC: &str = "ascolais/3";

/// The largest message accepted. A greeting is under a kilobyte; a 10 MB message held up
/// every request while it was parsed.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The most excluded keys one message may carry.
pub const MAX_EXCLUDED: usize = 256;

/// Signs and checks messages with the secret every instance shares.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)") // never the secret
    }
}

impl Signer {
    /// A signer for `secret` (any length; the configuration asks for 32 characters or more).
    pub fn new(secret: &str) -> Self {
        Signer {
            mac: Hmac::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length"),
        }
    }

    /// The MAC of `body` under this format's name, so that no other format's signed bytes can
    /// pass for this one's.
    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(MAGIC.as_bytes());
        mac.update(b"\n");
        mac.update(body);
        mac
    }

    pub(crate) fn sign(&self, body: &[u8]) -> String {
        self.mac(body)
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Whether `signature` (hex) is `body`'s, compared in constant time.
    pub(crate) fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Some(bytes) = from_hex(signature) else {
            return false;
        };
        self.mac(body).verify_slice(&bytes).is_ok()
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `word` can stand in a message's address line: printable, no space (the
/// `REDIS_PREFIX` rule, which channels built from it follow too).
fn is_word(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_graphic())
}

/// One broadcast as it travels between instances.
#[derive(Debug, Clone)]
pub struct WireBroadcast {
    /// The app it is for (its `REDIS_PREFIX`).
    pub prefix: String,
    /// The channel it is for.
    pub channel: String,
    /// The instance that published it.
    pub origin: Uuid,
    /// When the origin started numbering its broadcasts (milliseconds, Redis's clock).
    pub epoch: u64,
    /// Its number among the origin's broadcasts of that epoch.
    pub seq: u64,
    /// When it was sent (milliseconds since the Unix epoch, Redis's clock).
    pub sent_at: u64,
    /// The broadcast itself.
    pub outgoing: Outgoing,
}

impl WireBroadcast {
    /// The message bytes, signed with `signer`.
    pub fn encode(&self, signer: &Signer) -> Vec<u8> {
        let outgoing = &self.outgoing;
        let except: Vec<&str> = outgoing.except.iter().map(Key::as_str).collect();
        let (latest, value) = match &outgoing.latest {
            Some(latest) => (
                format!("{} {}", latest.topic, latest.version),
                latest.value.as_deref().unwrap_or("null"),
            ),
            None => (String::new(), ""),
        };
        let mut body = format!(
            "{} {}\n{} {} {} {}\n{}\n{}\n{latest}\n{value}\n",
            self.prefix,
            self.channel,
            self.origin,
            self.epoch,
            self.seq,
            self.sent_at,
            outgoing.pattern,
            except.join(" "),
        )
        .into_bytes();
        body.extend_from_slice(outgoing.frame.as_bytes());
        let mut message = format!("{MAGIC} {}\n", signer.sign(&body)).into_bytes();
        message.extend_from_slice(&body);
        message
    }

    /// Parses a message signed with `signer`, saying what is wrong with a refused one. (Whether
    /// it is meant for this app, fresh, and new comes after: see `admission.rs`.)
    pub fn decode(message: &[u8], signer: &Signer) -> Result<WireBroadcast, String> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(format!("{} bytes, over the limit", message.len()));
        }
        let (header, body) = match message.iter().position(|&b| b == b'\n') {
            Some(end) => (&message[..end], &message[end + 1..]),
            None => return Err(format!("not an {MAGIC} message")),
        };
        let header = std::str::from_utf8(header).map_err(|_| format!("not an {MAGIC} message"))?;
        let signature = match header.split_once(' ') {
            Some((MAGIC, signature)) => signature,
            _ => return Err(format!("not an {MAGIC} message")),
        };
        if !signer.verify(body, signature) {
            return Err("bad signature (not signed with this app's REDIS_SECRET)".into());
        }
        let mut parts = body.splitn(7, |&b| b == b'\n');
        let mut line = |what: &str| {
            parts
                .next()
                .map(|part| std::str::from_utf8(part).map_err(|_| format!("{what} is not UTF-8")))
                .unwrap_or_else(|| Err(format!("no {what}")))
        };
        let (prefix, channel) = match line("address")?.split(' ').collect::<Vec<_>>()[..] {
            [prefix, channel] if is_word(prefix) && is_word(channel) => (prefix, channel),
            _ => return Err("no prefix and channel".into()),
        };
        let (prefix, channel) = (prefix.to_owned(), channel.to_owned());
        let sender: Vec<&str> = line("sender")?.split(' ').collect();
        let [origin, epoch, seq, sent_at] = sender[..] else {
            return Err("not a sender line (origin, epoch, sequence number, time)".into());
        };
        let origin = origin.parse().map_err(|_| "no origin instance id")?;
        let number = |field: &str, what: &str| -> Result<u64, String> {
            field.parse().map_err(|_| format!("no {what}"))
        };
        let epoch = number(epoch, "epoch")?;
        let seq = number(seq, "sequence number")?;
        let sent_at = number(sent_at, "time sent")?;
        let pattern = Pattern::new(line("pattern")?).map_err(|e| format!("bad pattern: {e}"))?;
        let except = line("excluded keys")?
            .split(' ')
            .filter(|key| !key.is_empty())
            .take(MAX_EXCLUDED + 1)
            .map(Key::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad excluded key: {e}"))?;
        if except.len() > MAX_EXCLUDED {
            return Err(format!("more than {MAX_EXCLUDED} excluded keys"));
        }
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
            prefix,
            channel,
            origin,
            epoch,
            seq,
            sent_at,
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

    fn signer() -> Signer {
        Signer::new("a secret of at least thirty-two characters")
    }

    fn sample() -> WireBroadcast {
        WireBroadcast {
            prefix: "app".into(),
            channel: "app:broadcast".into(),
            origin: Uuid::new_v4(),
            epoch: 1_764_000_000_000,
            seq: 42,
            sent_at: 1_764_000_123_456,
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

    /// A message with `body` (everything after the first line) signed by `signer`.
    fn signed(body: &str, signer: &Signer) -> String {
        format!("{MAGIC} {}\n{body}", signer.sign(body.as_bytes()))
    }

    #[test]
    fn round_trips() {
        let signer = signer();
        for message in [sample(), latest()] {
            let decoded = WireBroadcast::decode(&message.encode(&signer), &signer).unwrap();
            assert_eq!(decoded.encode(&signer), message.encode(&signer));
            assert_eq!(
                (decoded.prefix.as_str(), decoded.channel.as_str()),
                ("app", "app:broadcast")
            );
            assert_eq!(decoded.origin, message.origin);
            assert_eq!(
                (decoded.epoch, decoded.seq, decoded.sent_at),
                (1_764_000_000_000, 42, 1_764_000_123_456)
            );
        }
        let decoded = WireBroadcast::decode(&latest().encode(&signer), &signer).unwrap();
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
        let text = String::from_utf8(message.encode(&signer())).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        assert!(
            header.starts_with("ascolais/3 ") && header.len() == 11 + 64,
            "{header}"
        );
        assert_eq!(
            body,
            format!(
                "app app:broadcast\n{} 1764000000000 42 1764000123456\npage/home/*\n\n\
                 greeting {}\n{}\n{}",
                message.origin,
                Version::new(1_764_000_000_000, 7),
                r#"{"name":"Ada\nLovelace","serial":7}"#,
                message.outgoing.frame.as_str()
            )
        );
    }

    #[test]
    fn messages_not_signed_with_the_secret_are_refused() {
        let message = latest().encode(&signer());
        let other = Signer::new("another secret, also long enough for the rule");
        let error = WireBroadcast::decode(&message, &other).unwrap_err();
        assert!(error.contains("bad signature"), "{error}");

        // A forged patch with a changed body, a changed address or sender, or no signature.
        let text = String::from_utf8(message).unwrap();
        for tampered in [
            text.replace("Ada", "Eve"),
            text.replace("app app:broadcast", "other other:broadcast"),
            text.replace(" 42 ", " 43 "),
            text.replace("1764000123456", "1764000999999"),
        ] {
            assert_ne!(tampered, text);
            let error = WireBroadcast::decode(tampered.as_bytes(), &signer()).unwrap_err();
            assert!(error.contains("bad signature"), "{error}");
        }
        let (_, body) = text.split_once('\n').unwrap();
        for unsigned in [
            format!("{MAGIC}\n{body}"),
            format!("{MAGIC} \n{body}"),
            format!("{MAGIC} zz\n{body}"),
        ] {
            let error = WireBroadcast::decode(unsigned.as_bytes(), &signer()).unwrap_err();
            assert!(
                error.contains("not an") || error.contains("signature"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_older_formats_signed_body_does_not_pass_for_this_one() {
        // The same body, signed the way `ascolais/2` signed (the body alone).
        let message = String::from_utf8(sample().encode(&signer())).unwrap();
        let (_, body) = message.split_once('\n').unwrap();
        let mut mac = signer().mac.clone();
        mac.update(body.as_bytes());
        let old: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let relabelled = format!("{MAGIC} {old}\n{body}");
        let error = WireBroadcast::decode(relabelled.as_bytes(), &signer()).unwrap_err();
        assert!(error.contains("bad signature"), "{error}");
    }

    #[test]
    fn oversized_messages_and_key_lists_are_refused() {
        let signer = signer();
        let huge = vec![b'x'; MAX_MESSAGE_BYTES + 1];
        assert!(
            WireBroadcast::decode(&huge, &signer)
                .unwrap_err()
                .contains("over the limit")
        );

        let mut many = sample();
        many.outgoing.except = (0..=MAX_EXCLUDED)
            .map(|i| Key::new(&format!("page/home/{i}")).unwrap())
            .collect();
        let error = WireBroadcast::decode(&many.encode(&signer), &signer).unwrap_err();
        assert!(error.contains("excluded keys"), "{error}");
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let signer = signer();
        let origin = Uuid::new_v4();
        let to = "app app:broadcast";
        let from = format!("{origin} 1 1 1");
        let version = Version::new(1, 1);
        let event = "event: x\ndata: y\n\n";
        assert!(
            WireBroadcast::decode(b"", &signer)
                .unwrap_err()
                .contains("not an")
        );
        assert!(
            WireBroadcast::decode(b"hello", &signer)
                .unwrap_err()
                .contains("not an")
        );
        let old = format!("ascolais/2 {origin} R\npage/*\n\n{event}");
        assert!(
            WireBroadcast::decode(old.as_bytes(), &signer)
                .unwrap_err()
                .contains("not an")
        );
        for (body, reason) in [
            (format!("{to}\n{from}\npage/home/*\n\n\n\n"), "SSE event"),
            (format!("app\n{from}\npage/*\n\n\n\n{event}"), "prefix"),
            (format!("app a b\n{from}\npage/*\n\n\n\n{event}"), "prefix"),
            (format!("{to}\nnope 1 1 1\npage/*\n\n\n\n{event}"), "origin"),
            (
                format!("{to}\n{origin} 1 x 1\npage/*\n\n\n\n{event}"),
                "sequence",
            ),
            (
                format!("{to}\n{origin} x 1 1\npage/*\n\n\n\n{event}"),
                "epoch",
            ),
            (
                format!("{to}\n{origin} 1 1 -1\npage/*\n\n\n\n{event}"),
                "time",
            ),
            (
                format!("{to}\n{origin} 1 1\npage/*\n\n\n\n{event}"),
                "sender",
            ),
            (format!("{to}\n{from} 2\npage/*\n\n\n\n{event}"), "sender"),
            (format!("{to}\n{from}\npage//*\n\n\n\n{event}"), "pattern"),
            (
                format!("{to}\n{from}\npage/*\npage/*\n\n\n{event}"),
                "excluded",
            ),
            (
                format!("{to}\n{from}\npage/*\n\ngreeting\n1\n{event}"),
                "version",
            ),
            (
                format!("{to}\n{from}\npage/*\n\ngreeting 12\n1\n{event}"),
                "version",
            ),
            (
                format!("{to}\n{from}\npage/*\n\nx/y {version}\n1\n{event}"),
                "topic",
            ),
            (
                format!("{to}\n{from}\npage/*\n\ngreeting {version}\n{{nope\n{event}"),
                "JSON",
            ),
            (
                format!("{to}\n{from}\npage/*\n\n\n1\n{event}"),
                "without a topic",
            ),
            (
                format!("{to}\n{from}\npage/*\n\n\n\nevent: x\ndata: y"),
                "SSE event",
            ),
            (
                format!("{to}\n{from}\npage/*\n\n\n\nretry: 1\n\n"),
                "SSE event",
            ),
        ] {
            let error =
                WireBroadcast::decode(signed(&body, &signer).as_bytes(), &signer).unwrap_err();
            assert!(error.contains(reason), "{body:?}: {error}");
        }
    }
}
