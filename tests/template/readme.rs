//! Reading the generated README and its guides (`docs/`) the way a newcomer follows them: their
//! code blocks (files to paste, commands to run), the paths and links they name, and the
//! README's project tree. The template tests hold these to the generated project, so that docs
//! that drift from the code fail a test.

/// A fenced code block: its language and its lines (with the fence's indentation removed), and
/// the last non-blank line before it (where a file's name is given).
pub struct Block {
    pub lang: String,
    pub lines: Vec<String>,
    pub preceding: String,
}

/// Every fenced code block, in order.
pub fn blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut preceding = "";
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            let indent = line.len() - line.trim_start().len();
            let body = lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .map(|l| l.get(indent..).unwrap_or("").to_owned())
                .collect();
            blocks.push(Block {
                lang: lang.to_owned(),
                lines: body,
                preceding: preceding.to_owned(),
            });
        } else if !trimmed.is_empty() {
            preceding = line;
        }
    }
    blocks
}

/// A file a recipe says to create: every `rust` and `html` block follows a line that names its
/// file in backquotes ("`src/board.rs`:"), and the block is that file, whole.
pub fn recipe_files(readme: &str) -> Vec<(String, String)> {
    blocks(readme)
        .into_iter()
        .filter(|block| block.lang == "rust" || block.lang == "html")
        .map(|block| {
            let path = code_spans(&block.preceding)
                .into_iter()
                .rfind(|name| name.ends_with(".rs") || name.ends_with(".html"))
                .unwrap_or_else(|| panic!("a README example names no file: {:?}", block.preceding));
            (path, block.lines.join("\n") + "\n")
        })
        .collect()
}

/// One command of a `sh` block, and whether the README says what it needs.
#[derive(Debug)]
pub struct ShellCommand {
    /// The command, without its comment.
    pub command: String,
    /// The whole line, as a reader copies it.
    pub line: String,
    /// Marked as needing something the tests do not have: a trailing `# needs …` comment, or
    /// a block whose first line is one.
    pub says_what_it_needs: bool,
}

/// Every command in the README's `sh` blocks.
pub fn shell_commands(readme: &str) -> Vec<ShellCommand> {
    let needs = |comment: &str| comment.trim_start_matches('#').trim().starts_with("needs ");
    let mut commands = Vec::new();
    for block in blocks(readme)
        .into_iter()
        .filter(|block| block.lang == "sh")
    {
        let block_needs = block.lines.first().is_some_and(|first| needs(first));
        for line in &block.lines {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (command, comment) = match trimmed.split_once(" #") {
                Some((command, comment)) => (command.trim(), comment),
                None => (trimmed, ""),
            };
            commands.push(ShellCommand {
                command: command.to_owned(),
                line: trimmed.to_owned(),
                says_what_it_needs: block_needs || needs(comment),
            });
        }
    }
    commands
}

/// The targets of the Markdown links (`[text](target)`) that stay in the project: relative
/// paths, without their `#anchor`; web addresses and links within the page are left out.
pub fn local_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target))
        .filter(|target| !target.contains("://") && !target.starts_with('#'))
        .map(|target| target.split('#').next().unwrap_or_default().to_owned())
        .collect()
}

/// The backquoted spans of a piece of prose.
pub fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The backquoted spans of the README's prose (outside code blocks) that name a file or
/// folder of the project: relative paths, with a `/` or a file's extension. Routes (`/about`),
/// absolute paths, keys and patterns (`page/home/*`, `page/home/#1a2b3c4d`), URLs, media
/// types, calls and settings are not paths.
pub fn named_paths(readme: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut in_block = false;
    for line in readme.lines() {
        if line.trim().starts_with("```") {
            in_block = !in_block;
        } else if !in_block {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    const EXTENSIONS: &[&str] = &[
        ".rs", ".html", ".toml", ".md", ".yml", ".css", ".js", ".svg", ".service", ".socket",
        ".example", ".lock",
    ];
    let mut paths: Vec<String> = code_spans(&prose.replace('\n', " "))
        .into_iter()
        .filter(|span| {
            !span.is_empty()
                && !span.starts_with(['/', '~'])
                && !span.contains(|c: char| c.is_whitespace() || "*#<>{}()=:…\"'%$".contains(c))
                && !["text/", "application/", "image/"]
                    .iter()
                    .any(|media_type| span.starts_with(media_type))
                && (span.contains('/') || EXTENSIONS.iter().any(|ext| span.ends_with(ext)))
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The entries of the project tree under "Where your code goes" (the first block without a language
/// whose first line is the project's folder), as paths: `src/home/`, `tests/`, `live/src/`.
/// Nesting is by indentation, two spaces a level; an entry is a word ending in `/` or one with
/// an extension, as many as a line holds before its description.
pub fn tree_entries(readme: &str, project: &str) -> Vec<String> {
    let block = blocks(readme)
        .into_iter()
        .find(|block| block.lang.is_empty() && block.lines.first() == Some(&format!("{project}/")))
        .expect("a project tree in the README");
    let mut parents: Vec<(usize, String)> = Vec::new();
    let mut entries = Vec::new();
    for line in block.lines.iter().skip(1) {
        let indent = line.len() - line.trim_start().len();
        for word in line
            .split("  ")
            .map(str::trim)
            .filter(|word| !word.is_empty())
        {
            let is_entry = !word.contains(' ') && (word.ends_with('/') || word.contains('.'));
            if !is_entry {
                break; // the description, to the end of the line
            }
            parents.retain(|(level, _)| *level < indent);
            let parent = parents.last().map_or("", |(_, path)| path.as_str());
            let path = format!("{parent}{word}");
            if word.ends_with('/') {
                parents.push((indent, path.clone()));
            }
            entries.push(path);
        }
    }
    entries
}

/// The text after the tree entry `entry` on its line: its description.
pub fn tree_description<'a>(readme: &'a str, entry: &str) -> &'a str {
    readme
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(entry))
        .map(str::trim)
        .unwrap_or_default()
}
