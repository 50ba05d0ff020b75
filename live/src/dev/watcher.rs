//! Watches `templates/` and `static/` and tells every open tab what changed.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer,
    notify::{
        EventKind, RecommendedWatcher, RecursiveMode,
        event::{AccessKind, AccessMode, ModifyKind},
    },
};

use super::{ALL_PAGES, reload, stylesheets};
use crate::state::Live;

/// Saves arrive as bursts of events (editors write a temporary file, then rename it); this
/// gathers a burst into one change while staying well below what a person notices.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Watching goes on for as long as this lives.
pub type Watcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// What a batch of changed files asks of the open tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Only stylesheets changed: swap them in place.
    Stylesheets,
    /// Anything else changed (a template, a script, an image): reload.
    Reload,
}

/// Decides what `paths` ask for; `None` when they are only editor droppings (swap files,
/// backups, hidden files).
pub fn classify(paths: &[PathBuf]) -> Option<Change> {
    let relevant: Vec<&PathBuf> = paths.iter().filter(|path| !is_noise(path)).collect();
    if relevant.is_empty() {
        None
    } else if relevant
        .iter()
        .all(|path| path.extension().is_some_and(|ext| ext == "css"))
    {
        Some(Change::Stylesheets)
    } else {
        Some(Change::Reload)
    }
}

fn is_noise(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name.starts_with("#")
}

/// Whether an event is a change to a file's content or name. The watcher also reports reads
/// (inotify's open events, which every render causes) and metadata changes; acting on those
/// would reload tabs forever.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        // Closing a file opened for writing: the end of a save.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Starts watching the app's templates and static files (the folders `live`'s views read);
/// every change is pushed to every page stream. Watching stops when the returned debouncer is
/// dropped.
pub fn watch(live: Live) -> notify_debouncer_full::notify::Result<Watcher> {
    let dirs = [
        live.views.templates().dir().to_owned(),
        live.views.assets().dir().to_owned(),
    ];
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                tracing::warn!(?errors, "file watcher error");
                return;
            }
        };
        let mut paths: Vec<PathBuf> = events
            .into_iter()
            .filter(|event| changes_content(&event.kind))
            .flat_map(|event| event.event.paths)
            .filter(|path| !path.is_dir())
            .collect();
        paths.sort();
        paths.dedup();
        let frame = match classify(&paths) {
            None => return,
            Some(Change::Reload) => reload(),
            Some(Change::Stylesheets) => match stylesheets(&live.views) {
                Ok(frame) => frame,
                // The stylesheet partial itself is broken: a reload shows the error page.
                Err(_) => reload(),
            },
        };
        let reached = live.registry.broadcast(&ALL_PAGES, &frame);
        tracing::info!(?paths, reached, "files changed: tabs updated");
    })?;
    for dir in dirs {
        debouncer.watch(&dir, RecursiveMode::Recursive)?;
    }
    Ok(debouncer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn stylesheets_alone_are_swapped_anything_else_reloads() {
        assert_eq!(
            classify(&paths(&["static/app.css"])),
            Some(Change::Stylesheets)
        );
        assert_eq!(
            classify(&paths(&["static/app.css", "static/theme.css"])),
            Some(Change::Stylesheets)
        );
        assert_eq!(
            classify(&paths(&["templates/home.html"])),
            Some(Change::Reload)
        );
        assert_eq!(
            classify(&paths(&["static/app.css", "templates/home.html"])),
            Some(Change::Reload)
        );
        assert_eq!(classify(&paths(&["static/app.js"])), Some(Change::Reload));
    }

    #[test]
    fn editor_droppings_change_nothing() {
        assert_eq!(
            classify(&paths(&[
                "templates/.home.html.swp",
                "static/app.css~",
                "templates/#home.html#",
                "static/.goutputstream-X1"
            ])),
            None
        );
        assert_eq!(
            classify(&paths(&["static/.app.css.swp", "static/app.css"])),
            Some(Change::Stylesheets)
        );
    }
}
