//! `quickbeam watch`: run a module, and run it again on every change of its file.
//!
//! One engine lives for the whole watch, so its in-process stencil cache is warm: a
//! reload compiles only what changed (and, with a persistent store, even the first load
//! may come from the cache). Each load prints, on stderr,
//! `loaded in 1.3 ms: N functions, R reused, P patched, C compiled` (`reloaded` after
//! the first), where the time is that of `Module::new`.
//!
//! The file's directory is watched, not the file, and events are filtered by file name:
//! that sees both in-place writes and editors that write a temporary file and rename it
//! over the original (which would end a watch on the file itself). Events are debounced,
//! so one save is one reload.
//!
//! Nothing that goes wrong with the module ends the watch: a file that cannot be read,
//! parsed, validated, compiled or instantiated, a trap or a non-zero exit status is
//! printed, and the next change is waited for. A reload waits for the current run of
//! the guest to end.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use quickbeam::Engine;

use crate::compile::{counts, millis};
use crate::run::{load, run_module, RunEnd, RunOptions};

/// How long the file must stay unchanged after a change before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Watches `opts.file` and runs it as `opts` asks on start and after every change.
/// Returns only on an error of the watch itself (the file's directory cannot be
/// watched, the file does not exist at the start).
///
/// # Errors
/// `failed to read `FILE``, `failed to watch `DIR``.
pub fn watch(opts: &RunOptions) -> Result<()> {
    let path = opts.file.as_path();
    let shown = path.display().to_string();
    std::fs::metadata(path).with_context(|| format!("failed to read `{shown}`"))?;
    let name = path.file_name().ok_or_else(|| anyhow!("`{shown}` names no file"))?.to_os_string();
    let dir = directory_of(path);

    let engine = Engine::new(&opts.engine_config())?;
    let (tx, rx) = channel();
    let mut debouncer = new_debouncer(DEBOUNCE, None, tx).map_err(|e| anyhow!("failed to start watching: {e}"))?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| anyhow!("failed to watch `{}`: {e}", dir.display()))?;

    eprintln!("watching {shown} (Ctrl-C to stop)");
    let mut verb = "loaded";
    loop {
        load_and_run(&engine, opts, verb);
        verb = "reloaded";
        wait_for_change(&rx, &name)?;
    }
}

/// Loads the module, reports the load, and runs it; prints whatever goes wrong.
fn load_and_run(engine: &Engine, opts: &RunOptions, verb: &str) {
    let module = match load(engine, &opts.file) {
        Ok(module) => module,
        Err(e) => {
            eprintln!("error: {e:#}");
            return;
        }
    };
    let report = module.compile_report();
    eprintln!("{verb} in {} ms: {}", millis(report.seconds), counts(&report));
    match run_module(engine, &module, opts) {
        RunEnd::Exit(0) => {}
        RunEnd::Exit(code) => eprintln!("`{}` exited with status {code}", opts.file.display()),
        RunEnd::Error(e, _) => eprintln!("error: {e:#}"),
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

/// Blocks until the file named `name` changed (then drops the events queued meanwhile).
fn wait_for_change(rx: &Receiver<DebounceEventResult>, name: &OsStr) -> Result<()> {
    loop {
        match rx.recv().map_err(|_| anyhow!("the file watcher stopped"))? {
            Ok(events) => {
                if events.iter().any(|e| is_change_of(&e.event, name)) {
                    break;
                }
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("warning: while watching: {e}");
                }
            }
        }
    }
    while rx.try_recv().is_ok() {}
    Ok(())
}

/// Whether `event` may have changed the contents of the file named `name`. Reads (which
/// the watch itself does) are not changes; a rename away from the name is not either
/// (the file is gone; its replacement's arrival is the change).
pub fn is_change_of(event: &notify::Event, name: &OsStr) -> bool {
    let named = |p: &PathBuf| p.file_name() == Some(name);
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => false,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1).is_some_and(named),
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            event.paths.iter().any(named)
        }
        _ => false,
    }
}

/// The directory to watch for `path` (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// On Ctrl-C (SIGINT), exits the process at once with status 130 (128 + SIGINT, as a
/// shell reports a process ended by Ctrl-C), even while the guest runs.
///
/// # Errors
/// If the handler cannot be installed.
pub fn exit_on_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(crate::EXIT_INTERRUPTED)
    })
    .map_err(|e| anyhow!("failed to handle Ctrl-C: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange};
    use notify::Event;

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn changes_are_writes_and_arrivals_of_the_name() {
        let name = OsStr::new("app.wat");
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(is_change_of(&event(write, &["/d/app.wat"]), name));
        assert!(!is_change_of(&event(write, &["/d/other.wat"]), name));
        assert!(is_change_of(&event(EventKind::Create(CreateKind::File), &["./app.wat"]), name));
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(is_change_of(&event(close, &["app.wat"]), name));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!is_change_of(&event(open, &["/d/app.wat"]), name));
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(is_change_of(&event(both, &["/d/.app.wat.tmp", "/d/app.wat"]), name));
        assert!(!is_change_of(&event(both, &["/d/app.wat", "/d/app.wat~"]), name));
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert!(!is_change_of(&event(from, &["/d/app.wat"]), name));
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(is_change_of(&event(to, &["/d/app.wat"]), name));
        assert!(!is_change_of(&event(EventKind::Remove(notify::event::RemoveKind::File), &["/d/app.wat"]), name));
    }

    #[test]
    fn bare_names_are_watched_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("app.wat")), PathBuf::from("."));
        assert_eq!(directory_of(Path::new("src/app.wat")), PathBuf::from("src"));
    }
}
