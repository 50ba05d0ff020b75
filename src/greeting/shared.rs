//! The latest greeting in Redis, shared by every instance.

use std::sync::Arc;

use redis::{AsyncCommands, RedisResult, Script};

use super::{Greeting, Name};
use crate::redis_conn::RedisConn;

/// Numbers the greeting and stores it as the latest in one atomic step, so the stored one is
/// always the highest-numbered, whichever instance recorded it.
const RECORD: &str = r"
local serial = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], serial .. '\n' .. ARGV[1])
return serial
";

#[derive(Debug)]
pub(super) struct SharedGreetings {
    redis: Arc<RedisConn>,
    serial_key: String,
    latest_key: String,
    record: Script,
}

impl SharedGreetings {
    pub(super) fn new(redis: Arc<RedisConn>, prefix: &str) -> Self {
        SharedGreetings {
            redis,
            serial_key: format!("{prefix}:greeting:serial"),
            latest_key: format!("{prefix}:greeting:latest"),
            record: Script::new(RECORD),
        }
    }

    pub(super) async fn record(&self, name: &Name) -> RedisResult<Greeting> {
        let mut connection = self.redis.get().await?;
        let serial: u64 = self
            .record
            .key(&self.serial_key)
            .key(&self.latest_key)
            .arg(name.as_str())
            .invoke_async(&mut connection)
            .await
            .inspect_err(|error| self.redis.failed(error))?;
        Ok(Greeting {
            name: name.clone(),
            serial,
        })
    }

    pub(super) async fn latest(&self) -> RedisResult<Option<Greeting>> {
        let mut connection = self.redis.get().await?;
        let stored: Option<String> = connection
            .get(&self.latest_key)
            .await
            .inspect_err(|error| self.redis.failed(error))?;
        Ok(stored.and_then(|stored| parse(&stored)))
    }
}

/// `<serial>\n<name>`, as the script stores it; anything else counts as no greeting.
fn parse(stored: &str) -> Option<Greeting> {
    let (serial, name) = stored.split_once('\n')?;
    Some(Greeting {
        serial: serial.parse().ok()?,
        name: Name::parse(name).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_greetings_parse_back() {
        let greeting = parse("7\nAda <b>").unwrap();
        assert_eq!((greeting.serial, greeting.name.as_str()), (7, "Ada <b>"));
        assert!(parse("x\nAda").is_none());
        assert!(parse("7").is_none());
        assert!(parse("7\n").is_none(), "an empty name is not a greeting");
    }
}
