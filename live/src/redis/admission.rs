//! What a receiver takes of a message that is correctly signed.
//!
//! A signature says an instance of some app holding the secret made the message; whoever can
//! read Redis can still publish those bytes again, later, or on another app's channel. So each
//! message says whom it is for, who sent it and when (`wire.rs`), and a receiver delivers it only
//! if all of these hold:
//!
//! - it is for this app's prefix and this channel (two apps, or staging and production, that
//!   share a secret and a Redis must not show each other's broadcasts);
//! - it was sent at most [`MAX_AGE`] ago by Redis's clock (and not as far in the future), and
//!   no more than [`BEFORE_LISTENING`] before this instance first subscribed: pub/sub delivers
//!   only what is published to a subscriber, so anything older is a copy;
//! - its number is above the last one delivered here from the same sender and epoch. A sender
//!   publishes its broadcasts one after another, in the order of their numbers, so a number at
//!   or below the last is a copy — or, after a publish that timed out and ran late, a broadcast
//!   overtaken by a later one, which its sender has delivered to its own tabs already.
//!
//! What is remembered per sender is forgotten once nothing of the sender could pass the age
//! check any more, so the memory follows the instances alive, not the messages.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::wire::WireBroadcast;

/// The oldest a message may be when it arrives. A broadcast takes milliseconds through Redis;
/// this leaves room for a Redis that stalls for seconds and for clocks read half a round trip
/// apart, and bounds for how long a copy could be sent again to an instance that has just
/// started.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30);

/// How long before this instance first subscribed a message it receives may have been sent: the
/// time between a sender signing a message and Redis publishing it.
pub(crate) const BEFORE_LISTENING: Duration = Duration::from_secs(5);

/// A receiver's checks, and what it remembers of each sender.
#[derive(Debug)]
pub(crate) struct Admission {
    prefix: String,
    channel: String,
    /// Redis's time when this instance first subscribed.
    listening_since: OnceLock<u64>,
    /// The last number delivered from each sender (instance and epoch).
    senders: Mutex<HashMap<(Uuid, u64), Last>>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    at: Instant,
}

impl Admission {
    /// The checks of an instance of the app under `prefix`, receiving on `channel`.
    pub(crate) fn new(prefix: &str, channel: &str) -> Self {
        Admission {
            prefix: prefix.to_owned(),
            channel: channel.to_owned(),
            listening_since: OnceLock::new(),
            senders: Mutex::default(),
        }
    }

    /// This instance subscribed at Redis time `now` (only the first call counts).
    pub(crate) fn listening(&self, now: u64) {
        let _ = self.listening_since.set(now);
    }

    /// Whether `message` is for this app and channel.
    pub(crate) fn addressed_here(&self, message: &WireBroadcast) -> Result<(), String> {
        if message.prefix == self.prefix && message.channel == self.channel {
            Ok(())
        } else {
            Err(format!(
                "meant for another app or channel ({} {})",
                message.prefix, message.channel
            ))
        }
    }

    /// Whether to deliver `message`, which arrived on the channel at Redis time `now`: see the
    /// [module docs](self). Taking it counts it as the last from its sender.
    pub(crate) fn admit(&self, message: &WireBroadcast, now: u64) -> Result<(), String> {
        self.addressed_here(message)?;
        let max_age = MAX_AGE.as_millis() as u64;
        if message.sent_at.saturating_add(max_age) < now {
            return Err(format!(
                "sent {} s ago, more than {} s (a copy?)",
                (now - message.sent_at) / 1000,
                MAX_AGE.as_secs()
            ));
        }
        if message.sent_at > now.saturating_add(max_age) {
            return Err(format!(
                "dated {} s ahead of Redis's clock",
                (message.sent_at - now) / 1000
            ));
        }
        if let Some(since) = self.listening_since.get()
            && message.sent_at + (BEFORE_LISTENING.as_millis() as u64) < *since
        {
            return Err("sent before this instance subscribed (a copy?)".into());
        }
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = (message.origin, message.epoch);
        match senders.get_mut(&sender) {
            Some(last) if message.seq <= last.seq => Err(format!(
                "number {} from its sender, not above the last one delivered ({}): a copy, or \
                 overtaken",
                message.seq, last.seq
            )),
            Some(last) => {
                *last = Last {
                    seq: message.seq,
                    at: Instant::now(),
                };
                Ok(())
            }
            None => {
                // A sender not heard from in twice the age limit can send nothing that would
                // pass the age check: forget it.
                senders.retain(|_, last| last.at.elapsed() < MAX_AGE * 2);
                senders.insert(
                    sender,
                    Last {
                        seq: message.seq,
                        at: Instant::now(),
                    },
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use datastar::prelude::PatchElements;

    use super::*;
    use crate::{
        frame::Frame,
        registry::{Outgoing, Pattern},
    };

    const NOW: u64 = 1_764_000_000_000;

    fn message(origin: Uuid, seq: u64, sent_at: u64) -> WireBroadcast {
        WireBroadcast {
            prefix: "app".into(),
            channel: "app:broadcast".into(),
            origin,
            epoch: NOW - 60_000,
            seq,
            sent_at,
            outgoing: Outgoing {
                pattern: Pattern::new("page/home/*").unwrap(),
                except: Vec::new(),
                frame: Frame::from(PatchElements::new("<p id=\"x\">hi</p>")),
                latest: None,
            },
        }
    }

    fn admission() -> Admission {
        let admission = Admission::new("app", "app:broadcast");
        admission.listening(NOW - 10_000);
        admission
    }

    #[test]
    fn each_message_of_a_sender_is_taken_once_and_in_order() {
        let admission = admission();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(admission.admit(&message(a, 1, NOW), NOW).is_ok());
        assert!(admission.admit(&message(a, 1, NOW), NOW).is_err(), "again");
        assert!(admission.admit(&message(b, 1, NOW), NOW).is_ok(), "another");
        assert!(admission.admit(&message(a, 3, NOW), NOW).is_ok(), "a gap");
        let error = admission.admit(&message(a, 2, NOW), NOW).unwrap_err();
        assert!(error.contains("not above the last"), "{error}");
        // The same instance id in another epoch numbers afresh.
        let mut later = message(a, 1, NOW);
        later.epoch += 1;
        assert!(admission.admit(&later, NOW).is_ok());
    }

    #[test]
    fn old_and_early_messages_are_refused() {
        let admission = admission();
        let max_age = MAX_AGE.as_millis() as u64;
        let sender = Uuid::new_v4();
        let old = message(sender, 1, NOW - max_age - 1);
        assert!(admission.admit(&old, NOW).unwrap_err().contains("ago"));
        let ahead = message(sender, 2, NOW + max_age + 1);
        assert!(admission.admit(&ahead, NOW).unwrap_err().contains("ahead"));
        // Sent well before this instance subscribed, though still young.
        let early = message(sender, 3, NOW - 10_000 - 5_001);
        let error = admission.admit(&early, NOW).unwrap_err();
        assert!(error.contains("before this instance subscribed"), "{error}");
        assert!(
            admission
                .admit(&message(sender, 4, NOW - 1_000), NOW)
                .is_ok()
        );
    }

    #[test]
    fn messages_for_another_app_or_channel_are_refused() {
        let admission = admission();
        let mut other_app = message(Uuid::new_v4(), 1, NOW);
        other_app.prefix = "other".into();
        let mut other_channel = message(Uuid::new_v4(), 1, NOW);
        other_channel.channel = "app:other".into();
        for refused in [other_app, other_channel] {
            let error = admission.admit(&refused, NOW).unwrap_err();
            assert!(error.contains("another app or channel"), "{error}");
            assert!(admission.addressed_here(&refused).is_err());
        }
    }
}
