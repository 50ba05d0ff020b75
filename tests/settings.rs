//! `.env.example` lists every setting the app reads, with its default: the kit's list of them
//! (which the kit's own tests hold to the code that reads them) is the reference.

use std::collections::BTreeMap;

/// `NAME=value` lines, commented out or not.
fn example() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example"))
        .expect("a .env.example beside Cargo.toml");
    text.lines()
        .map(|line| line.strip_prefix('#').unwrap_or(line))
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| {
            (name.chars()).all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn the_example_settings_are_the_settings_with_their_defaults() {
    let example = example();
    let mut expected: BTreeMap<String, String> = live::settings::VARIABLES
        .iter()
        .map(|(name, default, _)| (name.to_string(), default.to_string()))
        .collect();
    expected.insert("RUST_LOG".into(), "info".into());
    assert_eq!(example, expected);
}

#[test]
fn every_setting_in_the_example_is_explained() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    for (name, _, meaning) in live::settings::VARIABLES {
        assert!(
            text.contains(&format!("# {name}: {meaning}")),
            "{name} is not explained as the kit explains it"
        );
    }
}
