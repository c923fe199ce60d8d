//! The Python peers in `tests/python/`, run with the test venv's interpreter: the grpcio
//! server and client, and the PyPI `thrift` and `dubbo-python` clients. Each client run
//! prints one JSON object with every call's outcome as the client library reported it.
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

/// Longest one run of a Python client may take (2,000 calls included).
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
    let json = run_client("grpc_peer.py", &["call"], target, args).await?;
    Ok(calls_of(&json).into_iter().map(GrpcCall).collect())
}

// === Thrift and Dubbo clients ===

/// One call made by `thrift_peer.py`, as the Apache Thrift client saw it.
#[derive(Debug, Clone)]
pub struct ThriftCall(pub Value);

impl ThriftCall {
    /// The method called.
    pub fn method(&self) -> &str {
        self.0["method"].as_str().unwrap_or("?")
    }

    /// The result of a two-way call that got a REPLY.
    pub fn value(&self) -> Option<&str> {
        self.0["value"].as_str()
    }

    /// The exception class the client raised (`TApplicationException`, ...), or "".
    pub fn error_type(&self) -> &str {
        self.0["error"]["type"].as_str().unwrap_or("")
    }

    /// The exception's message, or "".
    pub fn error_message(&self) -> &str {
        self.0["error"]["message"].as_str().unwrap_or("")
    }

    /// The exception's `type` field (a `TApplicationException` or `TTransportException`
    /// kind), if it has one.
    pub fn error_kind(&self) -> Option<i64> {
        self.0["error"]["kind"].as_i64()
    }

    /// The seqid the call was sent with, and the one its answer carried.
    pub fn seqids(&self) -> (Option<i64>, Option<i64>) {
        (self.0["seqid"].as_i64(), self.0["reply"]["seqid"].as_i64())
    }

    /// The protocol a THeader answer was written in (`binary`, `compact`), if THeader.
    pub fn header_protocol(&self) -> Option<&str> {
        self.0["header_protocol"].as_str()
    }

    /// A THeader header of the answer.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.0["headers"][key].as_str()
    }
}

/// Runs `thrift_peer.py --target <target> <args>` (one connection, the calls in `args`
/// in order) and returns every call it made; fails if it could not connect.
pub async fn thrift_client(target: SocketAddr, args: &[&str]) -> anyhow::Result<Vec<ThriftCall>> {
    let json = run_client("thrift_peer.py", &[], target, args).await?;
    if let Some(error) = json.get("connect_error") {
        bail!("thrift_peer.py could not connect to {target}: {error}");
    }
    Ok(calls_of(&json).into_iter().map(ThriftCall).collect())
}

/// One call made by `dubbo_peer.py`, as dubbo-python's client saw it.
#[derive(Debug, Clone)]
pub struct DubboCall(pub Value);

impl DubboCall {
    /// The result, when the call returned a string.
    pub fn value(&self) -> Option<&str> {
        self.0["value"].as_str()
    }

    /// The exception class the client raised (`DubboResponseException`, ...), or "".
    pub fn error_type(&self) -> &str {
        self.0["error"]["type"].as_str().unwrap_or("")
    }

    /// The exception's message, or "".
    pub fn error_message(&self) -> &str {
        self.0["error"]["message"].as_str().unwrap_or("")
    }
}

/// Runs `dubbo_peer.py --target <target> <args>` (all calls over one connection) and
/// returns every call it made.
pub async fn dubbo_client(target: SocketAddr, args: &[&str]) -> anyhow::Result<Vec<DubboCall>> {
    let json = run_client("dubbo_peer.py", &[], target, args).await?;
    Ok(calls_of(&json).into_iter().map(DubboCall).collect())
}

// === running a client ===

/// Runs `<script> <leading> --target <target> <args>` with the venv's Python and parses
/// the one JSON object it prints.
async fn run_client(
    script_name: &str,
    leading: &[&str],
    target: SocketAddr,
    args: &[&str],
) -> anyhow::Result<Value> {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script(script_name))
        .args(leading)
        .args(["--target", &target.to_string()])
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_PATIENCE, cmd.output())
        .await
        .with_context(|| format!("{script_name} timed out"))?
        .with_context(|| format!("running {script_name}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "{script_name} {args:?} failed ({}): {stdout}\n{stderr}",
            output.status
        );
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("{script_name} printed no JSON: {stdout}\n{stderr}"))
}

/// The `calls` array of a client's JSON.
fn calls_of(json: &Value) -> Vec<Value> {
    json["calls"].as_array().cloned().unwrap_or_default()
}
