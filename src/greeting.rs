//! The example domain: validated names and the latest greeting.
//!
//! Kept apart from the routes so the rules (what a valid name is, what the current state is)
//! have one home that pages, streams and actions all read.

use serde::{Deserialize, Serialize};

use live::Topic;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A name that passed validation: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters,
/// no control characters. It may still contain markup; templates escape it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Name(String);

/// Why a submitted name was refused. The messages are shown to the user as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but whitespace, or nothing visible at all.
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
    /// Characters that reorder the text around them (bidirectional overrides and isolates):
    /// they can make a name display as something else, and spill over what follows it.
    #[error("Names can't contain characters that change the direction of text.")]
    DirectionOverride,
}

impl Name {
    /// Validates user input.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim();
        if name.chars().count() > MAX_NAME_CHARS {
            Err(NameError::TooLong)
        } else if name.chars().any(char::is_control) {
            Err(NameError::ControlCharacter)
        } else if name.chars().any(is_direction_override) {
            Err(NameError::DirectionOverride)
        } else if !name.chars().any(is_visible) {
            // Empty, or only spaces and invisible characters (zero-width spaces, joiners,
            // fillers): a greeting to nobody anyone can see.
            Err(NameError::Empty)
        } else {
            Ok(Name(name.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bidirectional embeddings, overrides, isolates and marks (Unicode's `Bidi_Control`).
fn is_direction_override(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` shows as something: not whitespace, and not one of the characters Unicode says
/// to draw as nothing (`Default_Ignorable_Code_Point`) or that fonts draw blank.
fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;

    /// Names read back (from another instance, say) pass the same checks as typed ones.
    fn try_from(input: String) -> Result<Self, NameError> {
        Name::parse(&input)
    }
}

/// One greeting, as the templates see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// Who was greeted.
    pub name: Name,
    /// 1 for the first greeting, then 2, 3…: tells repeats apart. Shared by every instance
    /// when they share Redis.
    pub serial: u64,
}

/// The latest greeting: what a page shows when it loads and what a (re)connecting stream is
/// sent first. A latest-state topic, so a tab that falls behind skips straight to the newest
/// greeting, and racing greets — on any instance — never leave a tab on an older one.
pub static GREETING: Topic<Greeting> = Topic::new("greeting");

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
    fn names_nobody_can_see_are_refused() {
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200D}\u{FEFF}",
            " \u{3164} ",
            "\u{2800}",
            "\u{E0041}",
        ] {
            assert_eq!(
                Name::parse(invisible),
                Err(NameError::Empty),
                "{invisible:?}"
            );
        }
        assert!(
            Name::parse("Ada\u{200D}").is_ok(),
            "invisible beside visible is fine"
        );
    }

    #[test]
    fn direction_overrides_are_refused_anywhere() {
        for sneaky in [
            "\u{202E}",
            "Ada\u{202E}gnp.exe",
            "\u{2066}Ada\u{2069}",
            "\u{200F}",
        ] {
            assert_eq!(
                Name::parse(sneaky),
                Err(NameError::DirectionOverride),
                "{sneaky:?}"
            );
        }
        assert!(
            Name::parse("שלום").is_ok(),
            "right-to-left text itself is fine"
        );
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

    #[test]
    fn greetings_read_back_only_with_valid_names() {
        let greeting = Greeting {
            name: Name::parse("Ada").unwrap(),
            serial: 7,
        };
        let json = serde_json::to_string(&greeting).unwrap();
        assert_eq!(serde_json::from_str::<Greeting>(&json).unwrap(), greeting);
        assert!(serde_json::from_str::<Greeting>(r#"{"name":"a\nb","serial":1}"#).is_err());
    }
}
