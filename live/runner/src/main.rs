//! `cargo dev` (an alias in the project's `.cargo/config.toml`): the whole dev loop in one
//! command.
//!
//! - It holds the app's listening socket for as long as it runs, and hands it to each app
//!   process it starts (descriptor 3, `LISTEN_FDS=1`: the systemd convention the kit already
//!   serves on). While the app rebuilds or restarts, tabs' reconnects wait in the socket's queue
//!   instead of being refused, so a page never shows "offline" for a restart.
//! - It watches the Rust sources and manifests of every package in the workspace (the app and
//!   the kit), rebuilds on a save, and replaces the app process when the binary changed. The
//!   tabs reload themselves: their streams reconnect to a new instance.
//! - A build under way, and a build that failed (the compiler's first error, with file and
//!   line), show on every open tab, while the last good build keeps serving
//!   (`live::dev::runner` is the app's side).
//! - A change to `.env` restarts the app without a build: the app reads `.env` at start only.
//! - Templates and static files are not its business: a debug build reads them from disk, and
//!   its own watcher updates the tabs without a restart.
//!
//! Everything after `cargo dev` goes to `cargo build` (`cargo dev --features redis`).

mod app;
mod build;
mod changes;
mod listen;

use std::{
    ffi::OsString,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::{
    app::{App, Message},
    build::Outcome,
    changes::{Change, Watch},
};

const HELP: &str = "\
cargo dev: builds and runs the app, rebuilds and restarts it on every change to its Rust code,
and shows each build (and its first error) in the open tabs.

usage: cargo dev [options for cargo build]
       cargo dev --features redis

The app listens where HOST and PORT say (the environment, else .env; default 127.0.0.1:3000).
Ctrl-C stops the runner and the app.";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cargo dev: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What to do next.
enum Next {
    Build(Vec<String>),
    Restart,
}

fn run(build_args: &[OsString]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = build::workspace(&cargo)?;
    std::env::set_current_dir(&workspace.root)
        .with_context(|| format!("cannot enter {}", workspace.root.display()))?;
    let listener = listen::bind(&workspace.root)?;
    let address = listener.local_addr()?;
    let watch = Watch::start(&workspace)?;
    eprintln!(
        "cargo dev: the app will listen on {address}; watching {}. Ctrl-C stops.",
        watch.describe()
    );

    let mut app: Option<App> = None;
    let mut binary: Option<PathBuf> = None;
    let mut next = Next::Build(Vec::new());
    loop {
        let since = Instant::now();
        match next {
            Next::Build(changed) => {
                if let Some(app) = &mut app
                    && !changed.is_empty()
                {
                    app.tell(&Message::Started { changed });
                }
                match build::run(&cargo, build_args)? {
                    Outcome::Built { executable, fresh } => {
                        if fresh && let Some(app) = &mut app {
                            app.tell(&Message::Ok);
                        } else {
                            restart(&mut app, &executable, &listener)?;
                            eprintln!(
                                "cargo dev: built and started in {}",
                                seconds(since.elapsed())
                            );
                        }
                        binary = Some(executable);
                    }
                    Outcome::Failed { error } => {
                        let serving = match &mut app {
                            Some(app) => {
                                app.tell(&Message::Failed { error });
                                "the last good build keeps serving"
                            }
                            None => "nothing is serving yet",
                        };
                        eprintln!("cargo dev: the build failed ({serving}); fix it and save");
                    }
                }
            }
            Next::Restart => {
                if let Some(executable) = &binary {
                    restart(&mut app, executable, &listener)?;
                    eprintln!("cargo dev: .env changed: restarted");
                }
            }
        }
        next = wait(&watch, &mut app);
    }
}

/// Stops the app that runs (if any), then starts `executable` on `listener`.
fn restart(
    app: &mut Option<App>,
    executable: &std::path::Path,
    listener: &std::net::TcpListener,
) -> anyhow::Result<()> {
    if let Some(old) = app.take() {
        old.stop();
    }
    *app = Some(App::start(executable, listener)?);
    Ok(())
}

/// Waits for a change worth acting on; says so once if the app exits meanwhile (a panic, a
/// setting it refused), and keeps waiting: the next save tries again.
fn wait(watch: &Watch, app: &mut Option<App>) -> Next {
    loop {
        match watch.next(Duration::from_millis(250)) {
            Some(Change::Rust(changed)) => return Next::Build(changed),
            Some(Change::Env) => return Next::Restart,
            None => {}
        }
        if let Some(status) = app.as_mut().and_then(App::exited) {
            eprintln!("cargo dev: the app exited ({status}); waiting for a change");
            *app = None;
        }
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}
