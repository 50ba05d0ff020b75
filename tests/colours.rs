//! The stylesheet's colours meet WCAG 2.1 AA contrast: 4.5:1 for text, wherever the page puts
//! it. Reads the custom properties of `static/app.css`, so a colour changed there is checked
//! here; the browser tests run axe-core on the rendered pages as well.

use std::collections::HashMap;

/// WCAG 2.1 AA, normal-size text.
const TEXT: f64 = 4.5;

type Rgb = [f64; 3];

/// `--name: #rrggbb;` declarations of `:root`.
fn colours() -> HashMap<String, Rgb> {
    let css = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/app.css"))
        .expect("static/app.css");
    let root = css
        .split(":root {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("a :root block");
    root.lines()
        .filter_map(|line| {
            let (name, value) = line.trim().strip_prefix("--")?.split_once(':')?;
            let hex = value.trim().trim_end_matches(';').strip_prefix('#')?;
            Some((name.to_owned(), parse(hex)?))
        })
        .collect()
}

fn parse(hex: &str) -> Option<Rgb> {
    if hex.len() != 6 {
        return None;
    }
    let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).ok().map(f64::from);
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// `color-mix(in srgb, top share%, under)`: what the browser paints.
fn mix(top: Rgb, share: f64, under: Rgb) -> Rgb {
    [0, 1, 2].map(|i| top[i] * share + under[i] * (1.0 - share))
}

/// WCAG relative luminance.
fn luminance(rgb: Rgb) -> f64 {
    let linear = |c: f64| {
        let c = c / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
}

fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[test]
fn the_formula_agrees_with_known_ratios() {
    let white = [255.0; 3];
    assert!((contrast([0.0; 3], white) - 21.0).abs() < 0.01);
    // #6b7280 on white: 4.83:1, the figure contrast checkers give.
    assert!((contrast(parse("6b7280").unwrap(), white) - 4.83).abs() < 0.01);
}

#[test]
fn text_colours_meet_wcag_aa_on_every_background_they_appear_on() {
    let c = colours();
    let colour = |name: &str| *c.get(name).unwrap_or_else(|| panic!("--{name} in app.css"));
    let white = [255.0; 3];
    let page = colour("page");
    // Where each colour is used as text (see app.css), on what.
    let pairs = [
        ("body text", colour("text"), page),
        ("links", colour("accent"), page),
        ("muted text", colour("muted"), page),
        (
            "muted text in the greeting box",
            colour("muted"),
            mix(colour("accent"), 0.08, page),
        ),
        ("errors", colour("error"), page),
        (
            "the notice",
            colour("error"),
            mix(colour("error"), 0.08, white),
        ),
        ("the button", white, colour("accent")),
        ("the live badge", white, colour("live")),
        ("the offline badge", white, colour("offline")),
    ];
    let failing: Vec<String> = pairs
        .iter()
        .map(|(what, text, background)| (what, contrast(*text, *background)))
        .filter(|(_, ratio)| *ratio < TEXT)
        .map(|(what, ratio)| format!("{what}: {ratio:.2}:1"))
        .collect();
    assert!(failing.is_empty(), "below {TEXT}:1: {failing:?}");
}
