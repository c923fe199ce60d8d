//! Finding and running the project's binaries (and other programs) as child processes.
//!
//! Every child gets piped stdout/stderr; two threads copy the lines into buffers the test
//! can search (e.g. "the controller's log says why") and echo them, prefixed, on the test's
//! own stderr so that a failing test shows what the binaries said. Children are killed when
//! their [`Process`] is dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// How long a binary may take to print its `bound` line.
const BOUND_PATIENCE: Duration = Duration::from_secs(20);

/// The directory holding the built binaries: `$CORRIDOR_BIN_DIR`, else the cargo profile
/// directory of the running test executable (`target/<profile>/deps/<test>` → `target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORRIDOR_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of the binary `name`; panics with the command to run when it has not been built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} not found: run `cargo build --workspace --bins` first (or set CORRIDOR_BIN_DIR)",
            path.display()
        );
    }
    path
}

/// Lines a child wrote on one of its streams, shared with the thread that reads them.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// All lines so far, joined with newlines.
    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }

    /// A copy of all lines so far.
    pub fn snapshot(&self) -> Vec<String> {
        match self.0.lock() {
            Ok(lines) => lines.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The first line containing every one of `needles`.
    pub fn find(&self, needles: &[&str]) -> Option<String> {
        self.snapshot()
            .into_iter()
            .find(|line| needles.iter().all(|n| line.contains(n)))
    }

    fn push(&self, line: String) {
        match self.0.lock() {
            Ok(mut lines) => lines.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }
}

/// A running child process with captured output; killed on drop.
pub struct Process {
    /// Short label used as the prefix of echoed log lines.
    pub label: String,
    child: Child,
    exit: Option<ExitStatus>,
    /// Lines written on stdout.
    pub stdout: Lines,
    /// Lines written on stderr.
    pub stderr: Lines,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("label", &self.label)
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Process {
    /// Spawns `cmd` with piped stdout and stderr.
    pub fn spawn(label: &str, mut cmd: Command) -> anyhow::Result<Process> {
        // Plain log lines: easier to read in a failed test's output, and to search.
        // Its own process group, so that killing it also kills whatever it started
        // (`corridor up`'s redis-server), which a SIGKILLed parent cannot stop itself.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {label}: {cmd:?}"))?;
        eprintln!("[{label}] started pid {}: {cmd:?}", child.id());
        let stdout = Lines::default();
        let stderr = Lines::default();
        if let Some(out) = child.stdout.take() {
            pump(format!("{label} out"), out, stdout.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(label.to_string(), err, stderr.clone());
        }
        Ok(Process {
            label: label.to_string(),
            child,
            exit: None,
            stdout,
            stderr,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stdout line starting with `prefix` and returns the value of
    /// its `key=` field, parsed as a socket address. Fails early if the child exits.
    pub async fn wait_bound(&mut self, prefix: &str, key: &str) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + BOUND_PATIENCE;
        let field = format!("{key}=");
        loop {
            if let Some(line) = self
                .stdout
                .snapshot()
                .into_iter()
                .find(|l| l.starts_with(prefix))
            {
                let value = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix(field.as_str()))
                    .ok_or_else(|| {
                        anyhow!("{}: no `{field}` in bound line {line:?}", self.label)
                    })?;
                return value
                    .parse()
                    .with_context(|| format!("{}: bad address in {line:?}", self.label));
            }
            if let Some(status) = self.try_exit()? {
                bail!(
                    "{} exited ({status}) before printing `{prefix}`; stderr:\n{}",
                    self.label,
                    self.stderr.text()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} printed no `{prefix}` line within {BOUND_PATIENCE:?}; stderr:\n{}",
                    self.label,
                    self.stderr.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exit status, if the child has exited.
    pub fn try_exit(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().context("try_wait")?;
        }
        Ok(self.exit)
    }

    /// Waits (bounded) for the child to exit and returns its status.
    pub async fn wait_exit(&mut self, patience: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {patience:?}", self.label);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends SIGKILL to the child and everything it started (its process group), and
    /// reaps the child.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.child.id()).context("pid out of range")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .with_context(|| format!("sending {signal} to {}", self.label))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `stream` line by line into `lines`, echoing each on stderr with a `[label]` prefix.
fn pump(label: String, stream: impl Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    eprintln!("[{label}] {line}");
                    lines.push(line);
                }
            }
        }
    });
}
