//! Runs `cargo build` and reads its JSON messages: the binary it made, whether it changed, and
//! the compiler's first error.

use std::{
    ffi::{OsStr, OsString},
    io::{BufRead, BufReader, IsTerminal, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};
use serde_json::Value;

/// The workspace the runner serves.
pub struct Workspace {
    /// Where its root `Cargo.toml` is: the app runs here, and reads `.env` from here.
    pub root: PathBuf,
    /// Every package's folder but the runner's own.
    pub packages: Vec<PathBuf>,
}

/// Asks cargo for the workspace around the current directory.
pub fn workspace(cargo: &OsStr) -> anyhow::Result<Workspace> {
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let root = metadata["workspace_root"]
        .as_str()
        .context("cargo metadata names no workspace root")?
        .into();
    let packages = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| package["name"] != env!("CARGO_PKG_NAME"))
        .filter_map(|package| package["manifest_path"].as_str())
        .filter_map(|manifest| Path::new(manifest).parent().map(Path::to_owned))
        .collect();
    Ok(Workspace { root, packages })
}

/// What a build came to.
pub enum Outcome {
    Built {
        executable: PathBuf,
        /// Nothing needed building: the binary is the one already running.
        fresh: bool,
    },
    Failed {
        /// The compiler's first error as it prints it (file, line, the source around it),
        /// without colours; or, when the compiler said nothing (a broken manifest), the end of
        /// what cargo said.
        error: String,
    },
}

/// How much of cargo's own output a failure without a compiler error shows.
const TAIL_LINES: usize = 20;

/// Builds the workspace's root package with `args` added (features, `--bin`), printing what
/// cargo and the compiler say as a plain `cargo build` would.
pub fn run(cargo: &OsStr, args: &[OsString]) -> anyhow::Result<Outcome> {
    let colour = std::io::stderr().is_terminal();
    let mut child = Command::new(cargo)
        .arg("build")
        .arg(if colour {
            "--message-format=json-diagnostic-rendered-ansi"
        } else {
            "--message-format=json"
        })
        .arg(if colour {
            "--color=always"
        } else {
            "--color=never"
        })
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run cargo build")?;
    // cargo's own lines ("Compiling …", a manifest error) go to the terminal as they come; the
    // last few are kept for a failure the compiler did not explain.
    let stderr = child.stderr.take().expect("piped");
    let said = std::thread::spawn(move || {
        let mut tail = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            tail.push(line);
            if tail.len() > TAIL_LINES {
                tail.remove(0);
            }
        }
        tail
    });

    let mut first_error = None;
    let mut executables = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let message: Value = match serde_json::from_str(&line?) {
            Ok(message) => message,
            Err(_) => continue, // a build script's own output
        };
        match message["reason"].as_str() {
            Some("compiler-message") => {
                let diagnostic = &message["message"];
                let rendered = diagnostic["rendered"].as_str().unwrap_or_default();
                let _ = std::io::stderr().write_all(rendered.as_bytes());
                // "aborting due to …" is an error too, but one with no place in the source.
                let placed = diagnostic["spans"]
                    .as_array()
                    .is_some_and(|spans| !spans.is_empty());
                if diagnostic["level"] == "error" && placed && first_error.is_none() {
                    first_error = Some(strip_colours(rendered).trim_end().to_owned());
                }
            }
            Some("compiler-artifact") => {
                let is_binary = message["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"));
                if let (true, Some(executable)) = (is_binary, message["executable"].as_str()) {
                    executables.push((PathBuf::from(executable), message["fresh"] == true));
                }
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    let tail = said.join().unwrap_or_default();
    if !status.success() {
        let error = first_error.unwrap_or_else(|| strip_colours(&tail.join("\n")));
        return Ok(Outcome::Failed { error });
    }
    match executables.as_slice() {
        [(executable, fresh)] => Ok(Outcome::Built {
            executable: executable.clone(),
            fresh: *fresh,
        }),
        [] => bail!("the build made no binary to run: is the workspace's root package an app?"),
        several => bail!(
            "the build made {} binaries ({}): say which to run, as with cargo run: \
             cargo dev --bin NAME",
            several.len(),
            several
                .iter()
                .map(|(path, _)| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `text` without its ANSI escape sequences (the colours cargo adds for a terminal): the tabs
/// show the error as plain text.
pub fn strip_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
            continue;
        }
        // CSI: ESC [ parameters… final byte (@ to ~).
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stripped_and_the_text_kept() {
        let rendered = "\u{1b}[0m\u{1b}[1m\u{1b}[38;5;9merror[E0308]\u{1b}[0m\u{1b}[0m\u{1b}[1m: \
                        mismatched types\u{1b}[0m\n  --> src/lib.rs:3:5";
        assert_eq!(
            strip_colours(rendered),
            "error[E0308]: mismatched types\n  --> src/lib.rs:3:5"
        );
        assert_eq!(strip_colours("no colours"), "no colours");
    }
}
