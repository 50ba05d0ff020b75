//! The processes a test starts: the app's own binary run apart from the developer's settings
//! ([`app_command`]), every program started by a test stopped, helpers and workers included,
//! when the test ends however it ends ([`Process`]), and a free port to tell one
//! ([`free_port`]).
//!
//! Two rules, held here once so that no test has to remember them:
//!
//! - **No test reads the developer's settings.** The app reads `.env` from its working
//!   directory, so a binary started in the project folder picked up the developer's `.env` (a
//!   `METRICS_ADDR` there made two instances fight over one port) and every variable they had
//!   exported. [`app_command`] starts it in an empty folder of its own, with every setting's
//!   variable removed from its environment; a test that means to test `.env` writes one into
//!   a folder of its own and says so with `current_dir`.
//! - **Nothing outlives its test.** Killing a program's first process is not enough: nginx's
//!   workers outlived their master (34 of them, listening on 0.0.0.0, after one run of the
//!   proxy tests). [`Process`] stops the whole tree under the process it started when it is
//!   dropped, and a failing or panicking test drops it too.

use std::{
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::settings::VARIABLES;

/// The variables the app reads at start besides [`VARIABLES`]: the log filter (read before the
/// settings) and systemd's socket passing, which a test sets only when it passes a socket.
const ALSO_READ: &[&str] = &[
    "RUST_LOG",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    // `cargo dev` started it (`live::dev::runner::ENV`, in debug builds only).
    "LIVE_DEV_RUNNER",
];

/// A command for the app `package`'s own binary ([`app_binary`]) that reads none of the
/// developer's settings: it runs in [`empty_dir`] (so no `.env`), with every variable the app
/// reads removed from its environment ([`without_settings`]: so no exported `METRICS_ADDR`),
/// and stdin closed. The test adds what it means to set; `current_dir` overrides the folder
/// for a test of `.env` itself.
///
/// Start it with [`Process::spawn`], so that it is stopped when the test ends.
pub fn app_command(package: &str) -> Command {
    let mut command = Command::new(app_binary(package));
    command.current_dir(empty_dir()).stdin(Stdio::null());
    without_settings(&mut command);
    command
}

/// A `.env` that sets every setting the kit reads ([`VARIABLES`](crate::settings::VARIABLES))
/// to a value the app refuses, and silences its log: written where a test's app could find it,
/// it proves the app never reads it (an app that did would not start).
pub fn hostile_dotenv() -> String {
    crate::settings::VARIABLES
        .iter()
        .map(|(name, ..)| format!("{name}=\"{name} from a .env no test may read; <>\"\n"))
        .chain(["RUST_LOG=off\n".to_owned()])
        .collect()
}

/// Removes from `command`'s environment every variable the app reads at start (every setting,
/// `RUST_LOG`, systemd's socket passing), for a command that runs the app where it cannot be
/// given [`app_command`]'s folder (`cargo run` in a project).
pub fn without_settings(command: &mut Command) -> &mut Command {
    for name in VARIABLES
        .iter()
        .map(|(name, ..)| *name)
        .chain(ALSO_READ.iter().copied())
    {
        command.env_remove(name);
    }
    command
}

/// The binary of the app `package` that cargo built for the running integration test, beside
/// it (`target/<profile>/<package>`), for tests that run the real process. Start it through
/// [`app_command`], which keeps the developer's settings out.
pub fn app_binary(package: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let dir = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let binary = dir.join(package);
    assert!(binary.is_file(), "no binary at {binary:?}");
    binary
}

/// A folder with no `.env` in it, for processes that must read none: the system's temporary
/// folder's `live-tests-no-dotenv`, made on first use and shared by every test (none writes
/// into it). Outside any project, so that no `.env` of one is near it either.
///
/// Fails the test if a `.env` has appeared there: then whoever put it there is reading it.
pub fn empty_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("live-tests-no-dotenv");
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot make {dir:?}: {error}"));
    assert!(
        !dir.join(".env").exists(),
        "{dir:?} must hold no .env: remove it"
    );
    dir
}

/// A program a test started, stopped with everything it started in turn when dropped —
/// when the test passes, fails or panics. It derefs to its [`Child`] for the test's own use
/// (its pid, its pipes, signals, `try_wait`).
///
/// The tree is found by parent, not by process group: a program left in the test's own group
/// still gets the terminal's Ctrl-C with the test (in a group of its own it would outlive an
/// interrupted `cargo test`), and a helper that starts a session of its own is still found.
#[derive(Debug)]
pub struct Process {
    /// `None` only once [`Process::wait_with_output`] has taken it.
    child: Option<Child>,
}

impl Process {
    /// Starts `command`; fails the test, naming the program, if it cannot start.
    pub fn spawn(command: &mut Command) -> Process {
        Process::try_spawn(command)
            .unwrap_or_else(|error| panic!("cannot start {:?}: {error}", command.get_program()))
    }

    /// Starts `command`, for a test that says more than [`Process::spawn`] when it cannot
    /// (which package brings the program).
    pub fn try_spawn(command: &mut Command) -> std::io::Result<Process> {
        command.spawn().map(|child| Process { child: Some(child) })
    }

    /// Waits for the process to exit and collects what it wrote to its piped stdout and
    /// stderr, as [`Child::wait_with_output`]. For a process that exits by itself, or after
    /// [`Process::kill_all`]: this waits as long as it runs.
    pub fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        let child = self.child.take().expect("not yet waited for");
        child.wait_with_output()
    }

    /// Kills the process and every process under it (`SIGKILL`: no shutdown, nothing
    /// withdrawn). Its own exit status stays to be collected (`wait`, `try_wait`,
    /// [`Process::wait_with_output`]); dropping it collects it.
    pub fn kill_all(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            kill_tree(child.id());
        }
        let _ = child.kill();
    }
}

impl Deref for Process {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.child.as_ref().expect("not yet waited for")
    }
}

impl DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("not yet waited for")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (a name `kill` knows: `STOP`, `KILL`) to each of `pids`.
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills `root` and every process under it. Each is stopped (`SIGSTOP`) before its children
/// are looked for, so that none can start another unseen, nor be handed to init when its
/// parent dies first; then all are killed at once.
fn kill_tree(root: u32) {
    let mut found = vec![root];
    signal("STOP", &found);
    // Bounded: a tree deeper than this is not one a test starts.
    for _ in 0..32 {
        let new: Vec<u32> = children_of(&found)
            .into_iter()
            .filter(|pid| !found.contains(pid))
            .collect();
        if new.is_empty() {
            break;
        }
        signal("STOP", &new);
        found.extend(new);
    }
    signal("KILL", &found);
}

/// The processes whose parent is one of `parents` (from `/proc`; none elsewhere, where only
/// the process itself is killed).
fn children_of(parents: &[u32]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid).is_some_and(|parent| parents.contains(&parent)))
        .collect()
}

/// The parent of `pid`, from `/proc/<pid>/stat` (the field after the name, which is in
/// parentheses and may itself hold spaces and parentheses).
pub(crate) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// A port on the loopback that nothing listens on now, for a program a test starts (a proxy, a
/// Redis, an ACME server) that must be told its port. Another process could take it before the
/// program binds it; on a test machine that is rare, and the program then fails loudly.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on the loopback")
        .port()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_process_kills_what_it_started_too() {
        // Arrange: a shell that starts a grandchild (sleeping) and waits on it, as nginx's
        // master waits on its workers.
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 300 & echo $! ; wait"])
            .stdout(Stdio::piped());
        let mut process = Process::spawn(&mut command);
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(process.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        assert_eq!(parent_of(grandchild), Some(process.id()));

        // Act
        drop(process);

        // Assert: the grandchild is gone (or a zombie on its way, reaped by init).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while alive(grandchild) {
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild {grandchild} outlived its parent's drop"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Whether `pid` exists and is not a zombie.
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            state != Some("Z")
        })
    }

    #[test]
    fn commands_that_run_the_app_read_no_setting_of_the_developer() {
        // The folder: apart from the project, and without a `.env`.
        let dir = empty_dir();
        assert!(!dir.join(".env").exists());
        let project = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(
            !dir.starts_with(project) && !project.starts_with(&dir),
            "{dir:?} is apart from {project:?}"
        );

        // The environment: every setting removed, whatever the test process has.
        let mut command = Command::new("true");
        without_settings(&mut command);
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_str().unwrap().to_owned())
            .collect();
        for (name, ..) in VARIABLES {
            assert!(
                removed.iter().any(|gone| gone == name),
                "{name} is inherited"
            );
        }
        assert!(removed.iter().any(|gone| gone == "RUST_LOG"));
    }
}
