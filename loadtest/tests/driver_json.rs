//! `--json` output of real runs of the `corridor-load` binary validates against its
//! documented schema (loadtest/schema/summary.schema.json): a run in open and closed
//! loop, a comparison and a capacity search, against `corridor-load serve http`
//! backends in-process. The schema itself is checked against the draft 2020-12
//! meta-schema, and shown to reject what it should.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use corridor_load::serve::{self, EchoConfig, Protocol};
use jsonschema::Validator;
use serde_json::{Value, json};

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/summary.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validator() -> Validator {
    let schema = schema();
    jsonschema::meta::validate(&schema).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

/// Panics with every violation of the schema by `value`.
fn assert_valid(value: &Value) {
    let v = validator();
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {value:#}");
}

/// An HTTP echo backend answering `error_rate` of the calls with an error.
async fn backend(error_rate: f64) -> (serve::Echo, SocketAddr) {
    let echo = serve::start(EchoConfig {
        error_rate,
        ..EchoConfig::new(Protocol::Http)
    })
    .await
    .unwrap();
    let addr = echo.addr();
    (echo, addr)
}

/// Runs the binary with `args` and parses what it printed.
async fn load(args: &[&str]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_corridor-load"))
        .args(args)
        .args(["--json", "--progress", "never"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_summary_validates() {
    let (_echo, addr) = backend(0.2).await;
    let target = addr.to_string();
    let v = load(&[
        "http",
        "--target",
        &target,
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--connections",
        "4",
    ])
    .await;
    assert_valid(&v);
    assert_eq!(v["schema"], "corridor-load/summary/v1");
    assert_eq!(v["mode"], "open");
    assert_eq!(v["rate_requested"], 200);
    assert_eq!(v["target"], target.as_str());
    // Every call due in the second was sent; the warm-up's were not counted.
    assert_eq!(v["requests"]["sent"], 200);
    assert_eq!(v["requests"]["completed"], 200);
    // A fifth of the answers are injected errors: status errors, with their status.
    let status_errors = v["errors"]["status"].as_u64().unwrap();
    assert!((10..=90).contains(&status_errors), "{status_errors}");
    assert_eq!(v["requests"]["errors"], status_errors);
    assert!(v["first_error"].is_string());
    let statuses = v["statuses"].as_object().unwrap();
    assert_eq!(
        statuses.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        200
    );
    // The distribution climbs to 100 % and counts every answer.
    let points = v["percentiles"].as_array().unwrap();
    assert!(points.windows(2).all(|w| {
        w[0]["percentile"].as_f64() <= w[1]["percentile"].as_f64()
            && w[0]["latency_ms"].as_f64() <= w[1]["latency_ms"].as_f64()
    }));
    let last = points.last().unwrap();
    assert_eq!(last["percentile"], 100.0);
    assert_eq!(last["count"], 200);
    assert_eq!(v["timeseries"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_summary_validates() {
    let (_echo, addr) = backend(0.0).await;
    let v = load(&[
        "http",
        "--target",
        &addr.to_string(),
        "--duration",
        "1500ms",
        "--connections",
        "2",
    ])
    .await;
    assert_valid(&v);
    assert_eq!(v["mode"], "closed");
    assert_eq!(v["rate_requested"], Value::Null);
    assert_eq!(v["requests"]["errors"], 0);
    assert_eq!(v["first_error"], Value::Null);
    assert_eq!(v["timeseries"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comparison_validates() {
    let (_direct, direct) = backend(0.0).await;
    let (_gateway, gateway) = backend(0.0).await;
    let direct = direct.to_string();
    let v = load(&[
        "http",
        "--target",
        &gateway.to_string(),
        "--rate",
        "100",
        "--duration",
        "500ms",
        "--connections",
        "2",
        "--compare",
        &direct,
        "--rounds",
        "2",
    ])
    .await;
    assert_valid(&v);
    assert_eq!(v["schema"], "corridor-load/compare/v1");
    assert_eq!(v["rounds"], 2);
    assert_eq!(v["direct"]["target"], direct.as_str());
    // Two rounds merged on each side.
    assert_eq!(v["direct"]["requests"]["sent"], 100);
    assert_eq!(v["gateway"]["requests"]["sent"], 100);
    assert!(v["ratios"]["rate"].as_f64().unwrap() > 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_search_validates() {
    let (_echo, addr) = backend(0.0).await;
    let v = load(&[
        "capacity",
        "--slo",
        "p99<1s",
        "--start-rate",
        "50",
        "--max-rate",
        "100",
        "--step-duration",
        "400ms",
        "http",
        "--target",
        &addr.to_string(),
        "--connections",
        "2",
    ])
    .await;
    assert_valid(&v);
    assert_eq!(v["schema"], "corridor-load/capacity/v1");
    assert_eq!(v["slo"], json!({"percentile": 99.0, "max_ms": 1000.0}));
    let rates: Vec<u64> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rate_requested"].as_u64().unwrap())
        .collect();
    assert_eq!(rates, [50, 100]);
    assert_eq!(v["max_rate_meeting_slo"], 100);
}

#[test]
fn the_schema_rejects_what_it_should() {
    let v = validator();
    let summary = |mode: &str, rate: Value| {
        json!({
            "schema": "corridor-load/summary/v1", "protocol": "http", "target": "a:1",
            "mode": mode, "rate_requested": rate, "connections": 1, "concurrency": 1,
            "duration_s": 1.0, "warmup_s": 0.0, "elapsed_s": 1.0,
            "requests": {"sent": 1, "completed": 1, "ok": 1, "errors": 0},
            "achieved_rate": 1.0,
            "errors": {"connect": 0, "timeout": 0, "protocol": 0, "status": 0},
            "statuses": {"200": 1},
            "latency_ms": {"min": 1.0, "mean": 1.0, "stddev": 0.0, "p50": 1.0, "p90": 1.0,
                           "p99": 1.0, "p999": 1.0, "max": 1.0},
            "percentiles": [{"percentile": 100.0, "latency_ms": 1.0, "count": 1}],
            "timeseries": [{"t_s": 1.0, "rate": 1.0, "p50_ms": null, "p99_ms": null, "errors": 0}],
            "first_error": null
        })
    };
    assert!(v.is_valid(&summary("open", json!(10))));
    assert!(v.is_valid(&summary("closed", Value::Null)));
    // A rate in closed loop, none in open loop, an unknown mode.
    assert!(!v.is_valid(&summary("closed", json!(10))));
    assert!(!v.is_valid(&summary("open", Value::Null)));
    assert!(!v.is_valid(&summary("burst", Value::Null)));
    // A field too many, one missing, a negative count, a status that is not a count.
    let mut extra = summary("open", json!(10));
    extra["non_2xx"] = json!(0);
    assert!(!v.is_valid(&extra));
    let mut missing = summary("open", json!(10));
    missing.as_object_mut().unwrap().remove("timeseries");
    assert!(!v.is_valid(&missing));
    let mut negative = summary("open", json!(10));
    negative["requests"]["sent"] = json!(-1);
    assert!(!v.is_valid(&negative));
    let mut status = summary("open", json!(10));
    status["statuses"]["200"] = json!("many");
    assert!(!v.is_valid(&status));
    // A capacity step in closed loop.
    let capacity = json!({
        "schema": "corridor-load/capacity/v1",
        "slo": {"percentile": 99.0, "max_ms": 5.0},
        "steps": [summary("closed", Value::Null)],
        "max_rate_meeting_slo": null
    });
    assert!(!v.is_valid(&capacity));
}
