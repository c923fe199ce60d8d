//! The chart's load-test Job, run for real: its container's arguments, rendered by the
//! Helm SDK from `loadTest` values (`tests/chart/rendered.py`), are handed to the built
//! `corridor-load` against a local backend of each protocol, and what it prints on stdout
//! (the Job's log) is one `corridor-load/summary/v1` object for that run. So the chart
//! and the CLI cannot drift apart unnoticed.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use corridor_tests::bin::{Process, binary};
use corridor_tests::python::python;
use corridor_tests::redis::{RedisOptions, RedisServer};
use serde_json::{Value, json};

/// Longest one run may take: its second, a start, and the drain at the end.
const RUN_PATIENCE: Duration = Duration::from_secs(30);

/// The Job's container arguments as the chart renders them for `values` (`loadTest`).
fn job_args(load: &Value) -> Vec<String> {
    let script = "import json, sys\n\
                  from rendered import render\n\
                  (job,) = render({'loadTest': json.loads(sys.argv[1])}).of_kind('Job')\n\
                  (c,) = job.pod_spec()['containers']\n\
                  print(json.dumps(c['command'] + c['args']))\n";
    let chart_tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chart");
    let output = std::process::Command::new(python())
        .args(["-c", script, &load.to_string()])
        .current_dir(chart_tests)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running python: {e}"));
    assert!(
        output.status.success(),
        "rendering the Job failed (helm_python missing? `tests/run` installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let argv: Vec<String> =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("the rendered argv: {e}"));
    assert_eq!(argv[0], "/usr/local/bin/corridor-load", "{argv:?}");
    argv[1..].to_vec()
}

/// Runs the Job's arguments with the built binary and returns the JSON it printed.
async fn run_job(args: &[String]) -> Value {
    let mut cmd = tokio::process::Command::new(binary("corridor-load"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_PATIENCE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("corridor-load {args:?} ran past {RUN_PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("running corridor-load: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "corridor-load {args:?} failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // The log is the report: one JSON object, nothing else on stdout.
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout of {args:?} is not one JSON object ({e}): {stdout}"))
}

/// Starts `corridor-load serve <protocol>` on a free loopback port.
async fn serve(protocol: &str) -> (Process, SocketAddr) {
    let mut cmd = std::process::Command::new(binary("corridor-load"));
    cmd.args(["serve", protocol, "--listen", "127.0.0.1:0"]);
    let mut process =
        Process::spawn(&format!("serve {protocol}"), cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let addr = process
        .wait_bound("corridor-load serve bound", protocol)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    (process, addr)
}

/// The Job for `protocol` with its own `values` (protocol flags) against `target`: the
/// summary of a second at 100 calls/s, every call answered.
async fn assert_job_runs(protocol: &str, target: SocketAddr, values: &[(&str, &str)]) {
    let mut load = json!({
        "enabled": true, "protocol": protocol, "target": target.to_string(),
        "rate": 100, "duration": "1s", "connections": 2,
    });
    for (key, value) in values {
        load[*key] = json!(value);
    }
    let args = job_args(&load);
    let summary = run_job(&args).await;
    assert_eq!(summary["schema"], "corridor-load/summary/v1", "{summary}");
    assert_eq!(summary["protocol"], protocol, "{summary}");
    assert_eq!(summary["rate_requested"], 100, "{summary}");
    assert_eq!(summary["connections"], 2, "{summary}");
    let requests = &summary["requests"];
    assert!(
        requests["ok"].as_u64().unwrap_or_default() >= 90,
        "{summary}"
    );
    assert_eq!(requests["errors"], 0, "{summary}");
}

#[tokio::test]
async fn http_job() {
    let (_serve, addr) = serve("http").await;
    assert_job_runs("http", addr, &[]).await;
}

#[tokio::test]
async fn grpc_job() {
    let (_serve, addr) = serve("grpc").await;
    assert_job_runs("grpc", addr, &[("method", "/corridor.Echo/Say")]).await;
}

#[tokio::test]
async fn dubbo_job() {
    let (_serve, addr) = serve("dubbo").await;
    let values = [("interface", "org.example.Echo"), ("method", "echo")];
    assert_job_runs("dubbo", addr, &values).await;
}

#[tokio::test]
async fn thrift_job() {
    let (_serve, addr) = serve("thrift").await;
    assert_job_runs("thrift", addr, &[("method", "echo")]).await;
}

#[tokio::test]
async fn redis_job_against_redis_server() {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let redis = RedisServer::start(any_port, RedisOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_job_runs("redis", redis.addr, &[]).await;
}
