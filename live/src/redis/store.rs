//! What the relay keeps in Redis besides the channel: the newest version of each latest-state
//! topic, and the counter that numbers versions for every instance.
//!
//! Whoever can write to Redis can change both, without the secret. So nothing stored there is
//! obeyed unless it is signed, and what is not signed is kept from doing harm:
//!
//! - **The newest version** of a topic is stored as the broadcast itself
//!   (`<prefix>:latest:<topic>`, field `message`): signed, with its version, value and topic
//!   inside the signature. A new version replaces it only after this instance has checked it —
//!   signature, app, channel, topic — and found it older, or not to be trusted: a script swaps
//!   the two only if the entry is still the one checked (compared by SHA-1, which Lua has). An
//!   entry that fails the check is counted, logged and replaced, never obeyed; an unsigned
//!   `version` field, which the relay once compared against, is no longer read at all.
//! - **The counter** (`<prefix>:version:<topic>`: an epoch and a number) cannot be signed:
//!   numbering must be one atomic step in Redis, so that two instances never take the same
//!   number, and Redis does not hold the secret (handing it over would show it to anyone who
//!   can watch Redis's commands). So its values are only taken within bounds: the version
//!   handed out is always newer than the newest this instance knows (an epoch behind it is
//!   raised, a number behind it skipped past), and a number more than [`MAX_AHEAD`] ahead of
//!   it, or one that is not a number, is put back right after it. Forging the counter can make
//!   the numbers jump ahead once, by at most [`MAX_AHEAD`]; it can never make a new version
//!   older than the last, which is what would stop every greeting. Each repair is counted.
//! - **Keys of the wrong type** (a string where a hash should be) would make every script
//!   fail: the scripts delete them first, and count that too.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use redis::{RedisResult, Script, aio::MultiplexedConnection};

use super::wire::{MAX_MESSAGE_BYTES, Signer, WireBroadcast};
use crate::registry::{Outgoing, Version};

/// How far ahead of the newest number an instance knows the counter may be. It can be ahead
/// legitimately: by the versions other instances numbered and have not published yet, or never
/// will (superseded in a burst). A thousand greets at once across instances stay below it.
pub(crate) const MAX_AHEAD: u64 = 1024;

/// How many times a publish looks again when another version was stored meanwhile.
const ATTEMPTS: usize = 4;

/// Deletes `KEYS[i]` if it holds another type than `ARGV[i]` (or nothing); returns how many.
/// Inlined at the top of the scripts below.
const REPAIR_TYPES: &str = r"
local repaired = 0
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= ARGV[i] then
    redis.call('DEL', key)
    repaired = repaired + 1
  end
end
";

/// Stores and publishes a latest-state broadcast if the topic's entry is still the one the
/// caller checked. `KEYS`: the entry, the set of topics. `ARGV`: their types, the SHA-1 of the
/// message checked (`none`: no message), the channel, the message, the topic, and the largest
/// message worth returning. Returns whether it was published, the SHA-1 of the entry's message
/// now, that message when it is not the caller's (empty when too large to be a broadcast), how
/// many subscribers got it, and how many keys had the wrong type.
const STORE_LATEST: &str = r"
local stored = redis.call('HGET', KEYS[1], 'message')
local digest = stored and redis.sha1hex(stored) or 'none'
if digest ~= ARGV[3] then
  if stored and #stored > tonumber(ARGV[7]) then stored = '' end
  return {0, digest, stored or '', 0, repaired}
end
redis.call('HSET', KEYS[1], 'message', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[6])
local receivers = redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, redis.sha1hex(ARGV[5]), '', receivers, repaired}
";

/// Hands out the next version of a topic. `KEYS[1]`: the counter; `ARGV`: its type, then the
/// newest epoch and number the caller knows, and how far ahead of that number the counter may
/// be. The epoch starts when the counter does (Redis's clock), so a Redis that lost its data
/// starts a later one. Returns the epoch, the number and how many values were put right.
const NEXT_VERSION: &str = r"
local known_epoch = tonumber(ARGV[2])
local seen = tonumber(ARGV[3])
local function whole(value)
  local n = tonumber(value or '')
  if n and n == math.floor(n) and n >= 0 and n <= 281474976710655 then return n end
  return nil
end
local epoch = whole(redis.call('HGET', KEYS[1], 'epoch'))
local number = whole(redis.call('HGET', KEYS[1], 'number'))
if not epoch or epoch < known_epoch then
  if redis.call('HEXISTS', KEYS[1], 'epoch') == 1 then repaired = repaired + 1 end
  local now = redis.call('TIME')
  epoch = math.max(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), known_epoch)
  number = seen
elseif not number then
  repaired = repaired + 1
  number = seen
end
number = number + 1
if number <= seen then
  number = seen + 1
elseif number > seen + tonumber(ARGV[4]) then
  number = seen + 1
  repaired = repaired + 1
end
redis.call('HSET', KEYS[1], 'epoch', string.format('%d', epoch), 'number', string.format('%d', number))
return {epoch, number, repaired}
";

/// Removes the topic's stored message if it is still the one with SHA-1 `ARGV[2]` (one that
/// failed the check). `KEYS[1]`: the entry.
const REMOVE_LATEST: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local stored = redis.call('HGET', KEYS[1], 'message')
  if stored and redis.sha1hex(stored) == ARGV[2] then
    redis.call('HDEL', KEYS[1], 'message')
    repaired = repaired + 1
  end
end
return repaired
";

/// Deletes the set of topics if it is not a set. `KEYS[1]`: the set.
const REPAIR_TOPICS: &str = "return repaired";

/// What became of a latest-state broadcast.
#[derive(Debug)]
pub(crate) enum Stored {
    /// Stored, and published to this many subscribers.
    Published(i64),
    /// A newer (or the same) version is stored, this one: not published.
    Superseded(Outgoing),
    /// The stored version changed each time it was looked at: not published.
    Contended,
}

/// The relay's keys in Redis, and what it last knew of them.
#[derive(Debug)]
pub(crate) struct Store {
    prefix: String,
    channel: String,
    signer: Signer,
    store_latest: Script,
    next_version: Script,
    remove_latest: Script,
    repair_topics: Script,
    /// The SHA-1 of the message each topic's entry holds, as far as this instance knows: what
    /// a publish expects to replace, so that it usually takes one round trip.
    stored: Mutex<HashMap<String, String>>,
}

impl Store {
    /// The keys of the app under `prefix`, whose broadcasts go to `channel`, signed by `signer`.
    pub(crate) fn new(prefix: &str, channel: &str, signer: Signer) -> Self {
        let script = |body: &str| Script::new(&format!("{REPAIR_TYPES}{body}"));
        Store {
            prefix: prefix.to_owned(),
            channel: channel.to_owned(),
            signer,
            store_latest: script(STORE_LATEST),
            next_version: script(NEXT_VERSION),
            remove_latest: script(REMOVE_LATEST),
            repair_topics: script(REPAIR_TOPICS),
            stored: Mutex::default(),
        }
    }

    /// The key of `topic`'s newest version.
    pub(crate) fn latest_key(&self, topic: &str) -> String {
        format!("{}:latest:{topic}", self.prefix)
    }

    /// The key of the set of topics that have a stored version.
    pub(crate) fn topics_key(&self) -> String {
        format!("{}:topics", self.prefix)
    }

    /// The stored broadcast `message` of `topic`, checked: signed, for this app and channel,
    /// and of this topic. Returns it, or why it is not to be trusted.
    pub(crate) fn check(&self, message: &[u8], topic: &str) -> Result<WireBroadcast, String> {
        let broadcast = WireBroadcast::decode(message, &self.signer)?;
        if broadcast.prefix != self.prefix || broadcast.channel != self.channel {
            return Err(format!(
                "meant for another app or channel ({} {})",
                broadcast.prefix, broadcast.channel
            ));
        }
        match &broadcast.outgoing.latest {
            Some(latest) if *latest.topic == *topic => Ok(broadcast),
            Some(latest) => Err(format!("a version of {:?}, not of {topic:?}", latest.topic)),
            None => Err("not a latest-state version".into()),
        }
    }

    /// Notes that the channel brought `message`, a version of `topic` newer than any seen here:
    /// its publisher has just stored it.
    pub(crate) fn saw(&self, topic: &str, message: &[u8]) {
        self.remember(topic, sha1(message));
    }

    /// Stores `message`, version `version` of `topic`, and publishes it — unless a newer
    /// version is stored. What is stored is checked first; `distrusted` is told about each
    /// entry or key found not to be trusted (and replaced).
    pub(crate) async fn publish_latest(
        &self,
        connection: &mut MultiplexedConnection,
        topic: &str,
        version: Version,
        message: &[u8],
        distrusted: impl Fn(String),
    ) -> RedisResult<Stored> {
        let mut expected = self.expected(topic);
        for _ in 0..ATTEMPTS {
            let (published, digest, stored, receivers, repaired): (i64, String, Vec<u8>, i64, i64) =
                self.store_latest
                    .key(self.latest_key(topic))
                    .key(self.topics_key())
                    .arg("hash")
                    .arg("set")
                    .arg(&expected)
                    .arg(&self.channel)
                    .arg(message)
                    .arg(topic)
                    .arg(MAX_MESSAGE_BYTES)
                    .invoke_async(connection)
                    .await?;
            if repaired > 0 {
                distrusted(format!("{topic}: keys of the wrong type in Redis, deleted"));
            }
            self.remember(topic, digest.clone());
            if published == 1 {
                return Ok(Stored::Published(receivers));
            }
            // Not what this instance thought was stored: look at it.
            if digest != "none" {
                match self.check(&stored, topic) {
                    Ok(stored) => {
                        let newer = (stored.outgoing.latest.as_ref())
                            .is_some_and(|stored| stored.version >= version);
                        if newer {
                            return Ok(Stored::Superseded(stored.outgoing));
                        }
                    }
                    Err(reason) => distrusted(format!(
                        "the stored version of {topic} is not to be trusted ({reason}): replaced"
                    )),
                }
            }
            expected = digest;
        }
        Ok(Stored::Contended)
    }

    /// Removes `topic`'s stored message `message`, found not to be trusted (unless it has been
    /// replaced meanwhile).
    pub(crate) async fn remove_latest(
        &self,
        connection: &mut MultiplexedConnection,
        topic: &str,
        message: &[u8],
    ) -> RedisResult<()> {
        self.remove_latest
            .key(self.latest_key(topic))
            .arg("hash")
            .arg(sha1(message))
            .invoke_async::<i64>(connection)
            .await?;
        self.forget(topic);
        Ok(())
    }

    /// Deletes the set of topics if it is not a set; returns whether it was not.
    pub(crate) async fn repair_topics(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> RedisResult<bool> {
        let repaired: i64 = self
            .repair_topics
            .key(self.topics_key())
            .arg("set")
            .invoke_async(connection)
            .await?;
        Ok(repaired > 0)
    }

    /// The next version of `topic`, above `newest` (the newest this instance knows), and
    /// whether the counter had to be put right.
    pub(crate) async fn next_version(
        &self,
        connection: &mut MultiplexedConnection,
        topic: &str,
        newest: Option<Version>,
    ) -> RedisResult<(Version, bool)> {
        let (epoch, seen) = newest.map_or((0, 0), |v| (v.epoch(), v.display_number()));
        let (epoch, number, repaired): (u64, u64, i64) = self
            .next_version
            .key(format!("{}:version:{topic}", self.prefix))
            .arg("hash")
            .arg(epoch)
            .arg(seen)
            .arg(MAX_AHEAD)
            .invoke_async(connection)
            .await?;
        Ok((Version::new(epoch, number), repaired > 0))
    }

    fn expected(&self, topic: &str) -> String {
        let stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        // Unknown: no digest matches, so the script returns what is stored.
        stored
            .get(topic)
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }

    fn remember(&self, topic: &str, digest: String) {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored.insert(topic.to_owned(), digest);
    }

    fn forget(&self, topic: &str) {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored.remove(topic);
    }
}

/// The SHA-1 of `bytes` in hex, as Lua's `redis.sha1hex` writes it.
fn sha1(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_written_as_redis_writes_them() {
        // `redis-cli EVAL "return redis.sha1hex(ARGV[1])" 0 hello`
        assert_eq!(sha1(b"hello"), "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
    }
}
