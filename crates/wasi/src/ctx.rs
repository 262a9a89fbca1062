//! The per-store WASI state: arguments, environment, and the descriptor table.
//!
//! Descriptors 0, 1 and 2 are stdin, stdout and stderr; preopened directories follow
//! from 3 in the order they were added (wasi-libc scans upward from 3 with
//! `fd_prestat_get` until `EBADF`). New descriptors take the lowest free number.
//!
//! All file system access goes through a `cap_std::fs::Dir` of a preopened directory
//! (or one opened below it), so a guest path can never leave its preopen: cap-std
//! resolves `..` and symbolic links inside the sandbox and refuses to escape.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;

/// A shared in-memory sink for a guest's stdout or stderr; clone it, hand one clone to
/// [`WasiCtxBuilder::stdout_capture`] and read the other after the guest ran.
#[derive(Clone, Default, Debug)]
pub struct OutputBuffer(Arc<Mutex<Vec<u8>>>);

impl OutputBuffer {
    pub fn new() -> OutputBuffer {
        OutputBuffer::default()
    }

    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Everything written so far, as (lossy) UTF-8.
    pub fn contents_string(&self) -> String {
        String::from_utf8_lossy(&self.contents()).into_owned()
    }

    /// Takes everything written so far, leaving the buffer empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn append(&self, data: &[u8]) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(data);
    }
}

/// Where a guest's stdin comes from.
pub(crate) enum Input {
    /// End of file at once.
    Empty,
    /// The host process's stdin.
    Inherit,
    /// Fixed bytes.
    Bytes(io::Cursor<Vec<u8>>),
}

/// Where a guest's stdout or stderr goes.
pub(crate) enum Output {
    /// Discarded.
    Null,
    /// The host process's stdout.
    Stdout,
    /// The host process's stderr.
    Stderr,
    /// An in-memory buffer.
    Capture(OutputBuffer),
}

impl Output {
    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Output::Null => Ok(()),
            // Flushed at once: the guest's libc buffers, and the host may exit with
            // `process::exit` right after the guest returns.
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(data)?;
                out.flush()
            }
            Output::Stderr => io::stderr().lock().write_all(data),
            Output::Capture(buf) => {
                buf.append(data);
                Ok(())
            }
        }
    }

    pub(crate) fn is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        match self {
            Output::Stdout => io::stdout().is_terminal(),
            Output::Stderr => io::stderr().is_terminal(),
            Output::Null | Output::Capture(_) => false,
        }
    }
}

/// A regular file (or anything else that is not a directory) opened by `path_open`.
pub(crate) struct OpenFile {
    pub(crate) file: std::fs::File,
    /// The `$fdflags` it was opened with (only `APPEND` has an effect).
    pub(crate) flags: u16,
}

/// A directory: a preopen (with its guest name) or one opened by `path_open`.
pub(crate) struct OpenDir {
    pub(crate) dir: cap_std::fs::Dir,
    pub(crate) preopen: Option<String>,
}

/// One entry of the descriptor table.
pub(crate) enum Descriptor {
    Stdin(Input),
    Output(Output),
    File(OpenFile),
    Dir(OpenDir),
}

/// The WASI preview1 state of one store. Build it with [`WasiCtx::builder`].
pub struct WasiCtx {
    /// Arguments, without their NUL terminators.
    pub(crate) args: Vec<Vec<u8>>,
    /// `NAME=VALUE` pairs, without NUL terminators.
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: Vec<Option<Descriptor>>,
}

impl WasiCtx {
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::new()
    }

    /// A context with no arguments, no environment and no descriptors; left in the store
    /// while a host call borrows the real one (see `linker.rs`).
    pub(crate) fn placeholder() -> WasiCtx {
        WasiCtx { args: Vec::new(), env: Vec::new(), fds: Vec::new() }
    }

    pub(crate) fn get(&self, fd: u32) -> Result<&Descriptor, crate::Errno> {
        self.fds.get(fd as usize).and_then(Option::as_ref).ok_or(crate::Errno::BADF)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, crate::Errno> {
        self.fds.get_mut(fd as usize).and_then(Option::as_mut).ok_or(crate::Errno::BADF)
    }

    /// Puts `d` at the lowest free descriptor number.
    pub(crate) fn insert(&mut self, d: Descriptor) -> Result<u32, crate::Errno> {
        let fd = match self.fds.iter().position(Option::is_none) {
            Some(i) => {
                self.fds[i] = Some(d);
                i
            }
            None => {
                self.fds.push(Some(d));
                self.fds.len() - 1
            }
        };
        u32::try_from(fd).map_err(|_| crate::Errno::MFILE)
    }
}

impl core::fmt::Debug for WasiCtx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WasiCtx")
            .field("args", &self.args.len())
            .field("env", &self.env.len())
            .field("fds", &self.fds.iter().filter(|d| d.is_some()).count())
            .finish()
    }
}

/// Builds a [`WasiCtx`]. By default the guest has no arguments, no environment, an
/// empty stdin, discarded stdout/stderr and no directories.
pub struct WasiCtxBuilder {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    stdin: Input,
    stdout: Output,
    stderr: Output,
    preopens: Vec<(cap_std::fs::Dir, String)>,
}

impl Default for WasiCtxBuilder {
    fn default() -> Self {
        WasiCtxBuilder::new()
    }
}

impl WasiCtxBuilder {
    pub fn new() -> WasiCtxBuilder {
        WasiCtxBuilder {
            args: Vec::new(),
            env: Vec::new(),
            stdin: Input::Empty,
            stdout: Output::Null,
            stderr: Output::Null,
            preopens: Vec::new(),
        }
    }

    /// Appends one argument (the first is the program name, `argv[0]`).
    pub fn arg(&mut self, arg: impl AsRef<[u8]>) -> &mut Self {
        self.args.push(arg.as_ref().to_vec());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(&mut self, args: I) -> &mut Self {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Adds one environment variable.
    pub fn env(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let mut pair = name.as_ref().to_vec();
        pair.push(b'=');
        pair.extend_from_slice(value.as_ref());
        self.env.push(pair);
        self
    }

    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    pub fn inherit_stdin(&mut self) -> &mut Self {
        self.stdin = Input::Inherit;
        self
    }

    pub fn inherit_stdout(&mut self) -> &mut Self {
        self.stdout = Output::Stdout;
        self
    }

    pub fn inherit_stderr(&mut self) -> &mut Self {
        self.stderr = Output::Stderr;
        self
    }

    /// The host's stdin, stdout and stderr.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.inherit_stdin().inherit_stdout().inherit_stderr()
    }

    /// Stdin reads these bytes, then end of file.
    pub fn stdin_bytes(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.stdin = Input::Bytes(io::Cursor::new(bytes.into()));
        self
    }

    /// Stdout goes into `buf`.
    pub fn stdout_capture(&mut self, buf: OutputBuffer) -> &mut Self {
        self.stdout = Output::Capture(buf);
        self
    }

    /// Stderr goes into `buf`.
    pub fn stderr_capture(&mut self, buf: OutputBuffer) -> &mut Self {
        self.stderr = Output::Capture(buf);
        self
    }

    /// Gives the guest `dir` under the name `guest_path` (for example `"."` or `"/data"`).
    pub fn preopened_dir(&mut self, dir: cap_std::fs::Dir, guest_path: impl Into<String>) -> &mut Self {
        self.preopens.push((dir, guest_path.into()));
        self
    }

    /// Opens the host directory `host_path` and gives it to the guest as `guest_path`.
    pub fn preopened_dir_path(
        &mut self,
        host_path: impl AsRef<Path>,
        guest_path: impl Into<String>,
    ) -> anyhow::Result<&mut Self> {
        let host_path = host_path.as_ref();
        let dir = cap_std::fs::Dir::open_ambient_dir(host_path, cap_std::ambient_authority())
            .with_context(|| format!("failed to open directory `{}`", host_path.display()))?;
        Ok(self.preopened_dir(dir, guest_path))
    }

    /// The context; the builder is left with the defaults.
    pub fn build(&mut self) -> WasiCtx {
        let b = std::mem::take(self);
        let mut fds = vec![
            Some(Descriptor::Stdin(b.stdin)),
            Some(Descriptor::Output(b.stdout)),
            Some(Descriptor::Output(b.stderr)),
        ];
        for (dir, name) in b.preopens {
            fds.push(Some(Descriptor::Dir(OpenDir { dir, preopen: Some(name) })));
        }
        WasiCtx { args: b.args, env: b.env, fds }
    }
}
