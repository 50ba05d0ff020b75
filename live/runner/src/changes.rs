//! What the runner watches, and what a change asks for.

use std::{
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::Duration,
};

use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer,
    notify::{
        EventKind, RecommendedWatcher, RecursiveMode,
        event::{AccessKind, AccessMode, ModifyKind},
    },
};

use crate::build::Workspace;

/// Editors save in bursts (a temporary file, then a rename): one build per save.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// What a batch of saved files asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Rust code or a manifest changed: build. The files, relative to the workspace.
    Rust(Vec<String>),
    /// Only `.env` changed: restart the app, which reads it at start.
    Env,
}

pub struct Watch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    changes: Receiver<Vec<PathBuf>>,
    root: PathBuf,
    watched: Vec<PathBuf>,
}

impl Watch {
    /// Watches each package's `src/` (recursively) and folder (its `Cargo.toml`, `build.rs`),
    /// and the workspace root (`Cargo.lock`, `.env`). Never `target/`: tens of thousands of
    /// folders, and the build's own writes.
    pub fn start(workspace: &Workspace) -> anyhow::Result<Watch> {
        let (sender, changes) = mpsc::channel();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let paths: Vec<PathBuf> = events
                .into_iter()
                .filter(|event| changes_content(&event.kind))
                .flat_map(|event| event.event.paths)
                .collect();
            if !paths.is_empty() {
                let _ = sender.send(paths);
            }
        })?;
        let mut watched = Vec::new();
        let mut add = |path: PathBuf, mode| -> anyhow::Result<()> {
            if path.is_dir() && !watched.contains(&path) {
                debouncer.watch(&path, mode)?;
                watched.push(path);
            }
            Ok(())
        };
        add(workspace.root.clone(), RecursiveMode::NonRecursive)?;
        for package in &workspace.packages {
            add(package.clone(), RecursiveMode::NonRecursive)?;
            add(package.join("src"), RecursiveMode::Recursive)?;
        }
        Ok(Watch {
            _debouncer: debouncer,
            changes,
            root: workspace.root.clone(),
            watched,
        })
    }

    /// The watched folders, for a person.
    pub fn describe(&self) -> String {
        self.watched
            .iter()
            .map(|dir| match dir.strip_prefix(&self.root) {
                Ok(relative) if relative.as_os_str().is_empty() => "./".to_owned(),
                Ok(relative) => format!("{}/", relative.display()),
                Err(_) => dir.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The next change worth acting on, waiting at most `patience`.
    pub fn next(&self, patience: Duration) -> Option<Change> {
        match self.changes.recv_timeout(patience) {
            Ok(mut paths) => {
                // Saves that came in while the last build ran are one change.
                while let Ok(more) = self.changes.try_recv() {
                    paths.extend(more);
                }
                classify(&self.root, &paths)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}

/// What `paths` ask for; `None` when nothing that matters changed (editor droppings, a README
/// beside a manifest, a template: the app reloads templates itself).
pub fn classify(root: &Path, paths: &[PathBuf]) -> Option<Change> {
    let mut rust: Vec<String> = paths
        .iter()
        .filter(|path| builds(path))
        .map(|path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    rust.sort();
    rust.dedup();
    if !rust.is_empty() {
        Some(Change::Rust(rust))
    } else if paths.iter().any(|path| path == &root.join(".env")) {
        Some(Change::Env)
    } else {
        None
    }
}

/// Whether a change to `path` needs a build.
fn builds(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let noise = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    !noise && (name.ends_with(".rs") || name == "Cargo.toml" || name == "Cargo.lock")
}

/// Whether an event changed a file's content or name (not a read, not its metadata: the build
/// reads every source, and acting on reads would build forever).
///
/// The kit's own watcher has the same rule (`live/src/dev/watcher.rs`). The runner does not
/// depend on the kit for it: `cargo dev --features redis` would then build the kit twice, once
/// with the app's features and once with the runner's.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_names(names: &[&str]) -> Option<Change> {
        let root = Path::new("/app");
        let paths: Vec<PathBuf> = names.iter().map(|name| root.join(name)).collect();
        classify(root, &paths)
    }

    #[test]
    fn rust_and_manifests_build_env_restarts_the_rest_waits() {
        assert_eq!(
            classify_names(&["src/lib.rs", "live/src/sse.rs", "src/lib.rs"]),
            Some(Change::Rust(vec![
                "live/src/sse.rs".into(),
                "src/lib.rs".into()
            ]))
        );
        assert_eq!(
            classify_names(&["Cargo.toml", "Cargo.lock"]),
            Some(Change::Rust(vec!["Cargo.lock".into(), "Cargo.toml".into()]))
        );
        assert_eq!(classify_names(&[".env"]), Some(Change::Env));
        assert_eq!(
            classify_names(&[".env", "src/main.rs"]),
            Some(Change::Rust(vec!["src/main.rs".into()]))
        );
        assert_eq!(
            classify_names(&["src/.lib.rs.swp", "src/lib.rs~", "README.md", "live/.env"]),
            None
        );
    }
}
