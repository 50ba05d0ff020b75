//! The example domain: validated names and the latest greeting.
//!
//! Kept apart from the routes so the rules (what a valid name is, what the current state is)
//! have one home that pages, streams and actions all read.

use std::sync::{Mutex, PoisonError};

use serde::Serialize;

#[cfg(feature = "redis")]
mod shared;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A name that passed validation: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters,
/// no control characters. It may still contain markup; templates escape it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a submitted name was refused. The messages are shown to the user as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but whitespace.
    #[error("Please enter a name.")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error(
        "That name is too long: at most {} characters, please.",
        MAX_NAME_CHARS
    )]
    TooLong,
    /// Newlines, tabs and other control characters.
    #[error("Names can't contain line breaks or other control characters.")]
    ControlCharacter,
}

impl Name {
    /// Validates user input.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim();
        if name.is_empty() {
            Err(NameError::Empty)
        } else if name.chars().count() > MAX_NAME_CHARS {
            Err(NameError::TooLong)
        } else if name.chars().any(char::is_control) {
            Err(NameError::ControlCharacter)
        } else {
            Ok(Name(name.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One greeting, as the templates see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Greeting {
    /// Who was greeted.
    pub name: Name,
    /// 1 for the first greeting since the server started, then 2, 3…: tells repeats apart.
    pub serial: u64,
}

/// The latest greeting: what a page shows when it loads and what a (re)connecting stream is
/// sent first.
///
/// Kept in memory, or — with the `redis` feature and `REDIS_URL` — in Redis, so that every
/// instance shows the same one. If Redis is unreachable the in-memory copy (the last greeting
/// this instance saw) keeps the app serving.
#[derive(Debug, Default)]
pub struct Greetings {
    local: Mutex<Option<Greeting>>,
    #[cfg(feature = "redis")]
    shared: Option<shared::SharedGreetings>,
}

impl Greetings {
    /// Greetings kept in Redis (falling back to memory while Redis is unavailable).
    #[cfg(feature = "redis")]
    pub fn in_redis(redis: std::sync::Arc<crate::redis_conn::RedisConn>, prefix: &str) -> Self {
        Greetings {
            local: Mutex::default(),
            shared: Some(shared::SharedGreetings::new(redis, prefix)),
        }
    }

    /// Records a greeting for `name` and returns it, numbered after every earlier one.
    pub async fn record(&self, name: Name) -> Greeting {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared
            && let Ok(greeting) = shared.record(&name).await
        {
            self.remember(greeting.clone());
            return greeting;
        }
        let mut latest = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let serial = latest.as_ref().map_or(1, |g| g.serial + 1);
        let greeting = Greeting { name, serial };
        *latest = Some(greeting.clone());
        greeting
    }

    /// The latest greeting, if anyone has been greeted.
    pub async fn latest(&self) -> Option<Greeting> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared
            && let Ok(latest) = shared.latest().await
        {
            if let Some(greeting) = &latest {
                self.remember(greeting.clone());
            }
            return latest;
        }
        self.local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `greeting` as the in-memory copy unless a newer one is there already.
    #[cfg(feature = "redis")]
    fn remember(&self, greeting: Greeting) {
        let mut latest = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.as_ref().is_none_or(|g| g.serial < greeting.serial) {
            *latest = Some(greeting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(Name::parse("  Ada \t").unwrap().as_str(), "Ada");
    }

    #[test]
    fn empty_long_and_control_names_are_refused() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse(" \n "), Err(NameError::Empty));
        assert_eq!(Name::parse(&"x".repeat(65)), Err(NameError::TooLong));
        assert_eq!(Name::parse("a\nb"), Err(NameError::ControlCharacter));
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        assert!(Name::parse(&"é".repeat(64)).is_ok());
        assert_eq!(Name::parse(&"é".repeat(65)), Err(NameError::TooLong));
    }

    #[test]
    fn markup_is_a_valid_name_and_left_for_templates_to_escape() {
        assert_eq!(Name::parse("<b>").unwrap().as_str(), "<b>");
    }

    #[tokio::test]
    async fn greetings_count_up_and_keep_the_latest() {
        let greetings = Greetings::default();
        assert_eq!(greetings.latest().await, None);
        greetings.record(Name::parse("Ada").unwrap()).await;
        let second = greetings.record(Name::parse("Grace").unwrap()).await;
        assert_eq!(second.serial, 2);
        assert_eq!(greetings.latest().await, Some(second));
    }
}
