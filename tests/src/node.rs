//! The npm peers in `tests/node/`, run with `node` against the modules `tests/run`
//! installs into `$CORRIDOR_NODE` (default `~/.cache/corridor/node`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// Longest one run of the Dubbo client may take (2,000 calls included).
const CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// The directory holding the npm peers' `node_modules`.
pub fn node_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORRIDOR_NODE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/corridor/node")
}

/// `node_modules` with the npm peers; panics with the command to run when dubbo2.js is
/// not installed.
pub fn node_modules() -> PathBuf {
    let modules = node_dir().join("node_modules");
    if !modules.join("dubbo2.js").is_dir() {
        panic!(
            "{} has no dubbo2.js: run `tests/run` (it installs tests/node/package.json)",
            modules.display()
        );
    }
    modules
}

/// The `node` executable on `PATH` (Debian's older packages call it `nodejs`); panics
/// with the command to run when there is none.
pub fn node() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["node", "nodejs"].map(|name| dir.join(name)))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| panic!("no node on PATH: run `tests/run` (it installs nodejs)"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A script in `tests/node/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node").join(name)
}

/// One call made by `dubbo_peer.js`, as dubbo2.js delivered its outcome.
#[derive(Debug, Clone)]
pub struct DubboCall(pub Value);

impl DubboCall {
    /// The argument it was made with.
    pub fn arg(&self) -> &str {
        self.0["arg"].as_str().unwrap_or("")
    }

    /// The answer, when it was a string.
    pub fn value(&self) -> Option<&str> {
        self.0["value"].as_str()
    }

    /// The class of the error dubbo2.js raised (`DubboDecodeError` for a Dubbo error
    /// response, `Error` for its own timeout or a closed socket), if any.
    pub fn error_type(&self) -> Option<&str> {
        self.0["error"]["type"].as_str()
    }

    /// The error's message, or "".
    pub fn error_message(&self) -> &str {
        self.0["error"]["message"].as_str().unwrap_or("")
    }
}

/// Everything one run of `dubbo_peer.js` reported.
#[derive(Debug, Clone)]
pub struct DubboRun {
    /// TCP connections dubbo2.js opened.
    pub connections: u64,
    /// Every call, in argument order.
    pub calls: Vec<DubboCall>,
    /// Indices into `calls` in the order their outcomes arrived.
    pub completed: Vec<usize>,
}

/// Runs `dubbo_peer.js --target <target> <args>` (see the script for its flags) and
/// returns what it reported; fails if it does not finish within [`CLIENT_PATIENCE`].
pub async fn dubbo_client(target: SocketAddr, args: &[&str]) -> anyhow::Result<DubboRun> {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(script("dubbo_peer.js"))
        .args(["--target", &target.to_string()])
        .args(args)
        .env("NODE_PATH", node_modules())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_PATIENCE, cmd.output())
        .await
        .context("dubbo_peer.js timed out")?
        .context("running dubbo_peer.js")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // dubbo2.js's trace (connects, closes), shown with a failing test's output.
    for line in stderr.lines() {
        eprintln!("[dubbo_peer.js] {line}");
    }
    if !output.status.success() {
        bail!("dubbo_peer.js {args:?} failed ({}): {stdout}\n{stderr}", output.status);
    }
    let json: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("dubbo_peer.js printed no JSON: {stdout}\n{stderr}"))?;
    let calls = json["calls"].as_array().cloned().unwrap_or_default();
    let completed = json["completed"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_u64).map(|i| i as usize).collect())
        .unwrap_or_default();
    Ok(DubboRun {
        connections: json["connections"].as_u64().unwrap_or(0),
        calls: calls.into_iter().map(DubboCall).collect(),
        completed,
    })
}

/// Longest one run of the ioredis client may take (the script gives up on its own after
/// 20 s by default, or its `--timeout`, and still reports).
const REDIS_CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// One command `redis_peer.js` ran, as ioredis delivered its outcome.
#[derive(Debug, Clone)]
pub struct RedisCall(pub Value);

impl RedisCall {
    /// The command and its arguments.
    pub fn command(&self) -> Vec<&str> {
        self.0["command"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The reply as ioredis decoded it (`null` for a nil reply or an error).
    pub fn value(&self) -> &Value {
        &self.0["value"]
    }

    /// The reply, when it was a string (simple or bulk).
    pub fn text(&self) -> Option<&str> {
        self.0["value"].as_str()
    }

    /// The class of the error (`ReplyError` for an error reply, `Timeout` when no reply
    /// came before the script's deadline, others for a closed connection), if any.
    pub fn error_name(&self) -> Option<&str> {
        self.0["error"]["name"].as_str()
    }

    /// The error's message (for a reply error, its text: `ERR ...`, `WRONGPASS ...`), or "".
    pub fn error_message(&self) -> &str {
        self.0["error"]["message"].as_str().unwrap_or("")
    }
}

/// Everything one run of `redis_peer.js` reported.
#[derive(Debug, Clone)]
pub struct RedisRun {
    /// TCP connections ioredis opened (1 unless something dropped a connection, or with
    /// `--cluster`, one per node it talked to plus its discovery connections).
    pub connections: u64,
    /// Every command, in the order given.
    pub calls: Vec<RedisCall>,
    /// The client's events in order, as `(event, message)`: `ready`, `error`, `close`,
    /// `reconnecting`.
    pub events: Vec<(String, String)>,
}

impl RedisRun {
    /// The events named `event`, their messages.
    pub fn events_named(&self, event: &str) -> Vec<&str> {
        self.events.iter().filter(|(e, _)| e == event).map(|(_, m)| m.as_str()).collect()
    }
}

/// Runs `redis_peer.js --host <ip> --port <port> <args> --commands <json>` (see the
/// script for its flags: `--password`, `--username`, `--protocol 2`, `--cluster`,
/// `--pipeline`, `--no-reconnect`, `--timeout`) with ioredis's default options otherwise,
/// so the connection starts with `HELLO 3` and `CLIENT SETINFO`.
pub async fn redis_client(target: SocketAddr, args: &[&str], commands: &[&[&str]]) -> anyhow::Result<RedisRun> {
    let modules = node_modules();
    if !modules.join("ioredis").is_dir() {
        bail!("{} has no ioredis: run `tests/run` (it installs tests/node/package.json)", modules.display());
    }
    let commands = serde_json::to_string(commands).context("encoding the commands")?;
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(script("redis_peer.js"))
        .args(["--host", &target.ip().to_string(), "--port", &target.port().to_string()])
        .args(args)
        .args(["--commands", &commands])
        .env("NODE_PATH", modules)
        .kill_on_drop(true);
    let output = tokio::time::timeout(REDIS_CLIENT_PATIENCE, cmd.output())
        .await
        .context("redis_peer.js timed out")?
        .context("running redis_peer.js")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines() {
        eprintln!("[redis_peer.js] {line}");
    }
    if !output.status.success() {
        bail!("redis_peer.js {args:?} failed ({}): {stdout}\n{stderr}", output.status);
    }
    let json: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("redis_peer.js printed no JSON: {stdout}\n{stderr}"))?;
    let calls = json["replies"].as_array().cloned().unwrap_or_default();
    let events = json["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    (field("event"), field("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(RedisRun {
        connections: json["connections"].as_u64().unwrap_or(0),
        calls: calls.into_iter().map(RedisCall).collect(),
        events,
    })
}
