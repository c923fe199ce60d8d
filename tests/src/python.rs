//! The Python peers in `tests/python/`, run with the test venv's interpreter.
//!
//! The venv lives at `$CORRIDOR_VENV` (default `~/.cache/corridor/venv`); `tests/run`
//! creates it from `tests/requirements.txt`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bin::Process;

/// Longest one run of the gRPC client may take.
const CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// The test venv.
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORRIDOR_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/corridor/venv")
}

/// The venv's Python; panics with the command to run when the venv is missing.
pub fn python() -> PathBuf {
    let python = venv_dir().join("bin/python");
    if !python.exists() {
        panic!(
            "{} not found: run `tests/run` (it creates the test venv)",
            python.display()
        );
    }
    python
}

/// A script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A running `grpc_peer.py serve`: a gRPC server implementing `corridor.test.Echo`.
#[derive(Debug)]
pub struct GrpcServer {
    /// The name it reports in `x-served-by`.
    pub name: String,
    /// The server process (its log is in `process.stderr`).
    pub process: Process,
    /// The bound address.
    pub addr: SocketAddr,
}

impl GrpcServer {
    /// Starts a server called `name` on `addr` (port 0 picks a free port).
    pub async fn start(name: &str, addr: SocketAddr) -> anyhow::Result<GrpcServer> {
        let mut cmd = Command::new(python());
        cmd.arg(script("grpc_peer.py"))
            .args(["serve", "--name", name, "--host", &addr.ip().to_string()])
            .args(["--port", &addr.port().to_string()])
            .env("PYTHONUNBUFFERED", "1");
        let mut process = Process::spawn(&format!("grpc {name}"), cmd)?;
        let addr = process.wait_bound("grpc_peer bound", "addr").await?;
        Ok(GrpcServer {
            name: name.to_string(),
            process,
            addr,
        })
    }
}

impl crate::mesh::Upstream for GrpcServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One call made by `grpc_peer.py call`, as the client saw it.
#[derive(Debug, Clone)]
pub struct GrpcCall(pub Value);

impl GrpcCall {
    /// The status code name (`OK`, `NOT_FOUND`, ...).
    pub fn code(&self) -> &str {
        self.0["code"].as_str().unwrap_or("?")
    }

    /// The status message.
    pub fn details(&self) -> &str {
        self.0["details"].as_str().unwrap_or("")
    }

    /// The response messages, as text.
    pub fn messages(&self) -> Vec<String> {
        self.0["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A trailing metadata value, or "".
    pub fn trailer(&self, key: &str) -> &str {
        self.0["trailing_metadata"][key].as_str().unwrap_or("")
    }
}

/// Runs `grpc_peer.py call --target <target> <args>` and returns every call it made.
pub async fn grpc_client(target: SocketAddr, args: &[&str]) -> anyhow::Result<Vec<GrpcCall>> {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script("grpc_peer.py"))
        .args(["call", "--target", &target.to_string()])
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_PATIENCE, cmd.output())
        .await
        .context("grpc_peer.py call timed out")?
        .context("running grpc_peer.py call")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "grpc_peer.py call {args:?} failed ({}): {stdout}\n{stderr}",
            output.status
        );
    }
    let json: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("grpc_peer.py call printed no JSON: {stdout}\n{stderr}"))?;
    let calls = json["calls"].as_array().cloned().unwrap_or_default();
    Ok(calls.into_iter().map(GrpcCall).collect())
}
