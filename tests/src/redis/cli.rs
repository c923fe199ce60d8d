//! The Redis command-line peers from Debian `redis-tools`: `redis-cli` (one command per
//! run, optionally cluster-aware with `-c`) and `redis-benchmark` (requests/s per test).

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail};

/// Longest one `redis-cli` run may take; a hung proxy must fail the test, not hang it.
const CLI_PATIENCE: Duration = Duration::from_secs(20);

/// Default bound on one `redis-benchmark` run, enforced by coreutils `timeout` (as PEERS.md
/// advises: redis-benchmark waits forever for replies that never come).
const BENCH_PATIENCE: Duration = Duration::from_secs(120);

/// A `redis-cli` invocation against one address.
#[derive(Debug, Clone)]
pub struct RedisCli {
    addr: SocketAddr,
    user: Option<String>,
    password: Option<String>,
    cluster: bool,
    typed: bool,
    resp3: bool,
}

/// What one `redis-cli` run printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Standard output, with the final newline removed.
    pub stdout: String,
    /// Standard error (connection and AUTH failures land here).
    pub stderr: String,
    /// Whether it exited with status 0 (redis-cli exits 0 after an error *reply*).
    pub success: bool,
}

impl RedisCli {
    /// `redis-cli -h <ip> -p <port>`, raw output (values as they are, one per line; an
    /// error reply prints as its text, e.g. `NOAUTH Authentication required.`).
    pub fn new(addr: SocketAddr) -> RedisCli {
        RedisCli {
            addr,
            user: None,
            password: None,
            cluster: false,
            typed: false,
            resp3: false,
        }
    }

    /// Authenticates with `-a <password>` (and `--user` if [`RedisCli::user`] is set).
    pub fn password(mut self, password: &str) -> RedisCli {
        self.password = Some(password.to_string());
        self
    }

    /// Authenticates as an ACL user (needs a password too).
    pub fn user(mut self, user: &str) -> RedisCli {
        self.user = Some(user.to_string());
        self
    }

    /// `-c`: follow `-MOVED` and `-ASK` redirections like a cluster-aware client.
    pub fn cluster(mut self) -> RedisCli {
        self.cluster = true;
        self
    }

    /// `--no-raw`: typed output (`"bar"`, `(integer) 1`, `(nil)`, `(error) ERR ...`), to
    /// tell an error reply or a nil from a string.
    pub fn typed(mut self) -> RedisCli {
        self.typed = true;
        self
    }

    /// `-3`: speak RESP3 (redis-cli sends `HELLO 3` first).
    pub fn resp3(mut self) -> RedisCli {
        self.resp3 = true;
        self
    }

    /// Runs one command; fails if redis-cli exits non-zero (e.g. connection refused) or
    /// runs longer than its patience. Returns stdout without the final newline.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args).await?;
        if !out.success {
            bail!(
                "redis-cli {args:?} against {} failed: {}{}",
                self.addr,
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }

    /// Runs one command and returns everything it printed, whatever its exit status.
    pub async fn output(&self, args: &[&str]) -> anyhow::Result<CliOutput> {
        let mut cmd = tokio::process::Command::new("redis-cli");
        cmd.args([
            "-h",
            &self.addr.ip().to_string(),
            "-p",
            &self.addr.port().to_string(),
        ]);
        if let Some(user) = &self.user {
            cmd.args(["--user", user]);
        }
        if let Some(password) = &self.password {
            cmd.args(["--no-auth-warning", "-a", password]);
        }
        if self.cluster {
            cmd.arg("-c");
        }
        if self.typed {
            cmd.arg("--no-raw");
        }
        if self.resp3 {
            cmd.arg("-3");
        }
        cmd.args(args).kill_on_drop(true);
        let output = run_bounded(cmd, CLI_PATIENCE, "redis-cli").await?;
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(CliOutput {
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            success: output.status.success(),
        })
    }
}

/// `redis-cli -h <ip> -p <port> <args>` (raw output); see [`RedisCli`] for AUTH, `-c` and
/// typed output.
pub async fn redis_cli(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    RedisCli::new(addr).run(args).await
}

async fn run_bounded(
    mut cmd: tokio::process::Command,
    patience: Duration,
    what: &str,
) -> anyhow::Result<Output> {
    let command = format!("{cmd:?}");
    tokio::time::timeout(patience, cmd.output())
        .await
        .with_context(|| format!("{what} did not finish within {patience:?}: {command}"))?
        .with_context(|| {
            format!("running {command} (is redis-tools installed? tests/run installs it)")
        })
}

/// One test's result from `redis-benchmark -q`.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The test name as printed (`SET`, `GET`, `MSET (10 keys)`, ...).
    pub test: String,
    /// Requests per second.
    pub rps: f64,
    /// Median latency in milliseconds, when printed.
    pub p50_ms: Option<f64>,
}

/// Runs `redis-benchmark -h <ip> -p <port> -q <args>` under coreutils `timeout` (default
/// patience two minutes) and returns one result per test, in output order. `args` picks
/// the tests and load, e.g. `["-t", "get,set", "-n", "100000", "-P", "16", "-c", "50"]`;
/// `-a <password>` works as for redis-benchmark. Fails if no test printed a result.
pub async fn redis_benchmark(addr: SocketAddr, args: &[&str]) -> anyhow::Result<Vec<BenchResult>> {
    redis_benchmark_within(addr, args, BENCH_PATIENCE).await
}

/// [`redis_benchmark`] with an explicit bound on the run.
pub async fn redis_benchmark_within(
    addr: SocketAddr,
    args: &[&str],
    patience: Duration,
) -> anyhow::Result<Vec<BenchResult>> {
    let mut cmd = tokio::process::Command::new("timeout");
    cmd.args([
        format!("{}", patience.as_secs().max(1)),
        "redis-benchmark".to_string(),
    ])
    .args([
        "-h",
        &addr.ip().to_string(),
        "-p",
        &addr.port().to_string(),
        "-q",
    ])
    .args(args)
    .kill_on_drop(true);
    // A little longer than `timeout` itself, so its verdict (status 124) is what we see.
    let output = run_bounded(cmd, patience + Duration::from_secs(5), "redis-benchmark").await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(124) {
        bail!("redis-benchmark {args:?} against {addr} ran past {patience:?}: {stdout}{stderr}");
    }
    let results = parse_benchmark(&stdout);
    if results.is_empty() || !output.status.success() {
        bail!(
            "redis-benchmark {args:?} against {addr} failed ({}): {stdout}{stderr}",
            output.status
        );
    }
    Ok(results)
}

/// Parses `redis-benchmark -q` output: progress lines end in `\r` and are overwritten, the
/// final line of each test reads `GET: 81234.57 requests per second, p50=0.287 msec`.
pub fn parse_benchmark(text: &str) -> Vec<BenchResult> {
    text.split(['\r', '\n'])
        .filter_map(|line| {
            let (head, tail) = line.trim().split_once(" requests per second")?;
            let (test, rps) = head.rsplit_once(": ")?;
            let p50_ms = tail
                .split_once("p50=")
                .and_then(|(_, v)| v.split_whitespace().next())
                .and_then(|v| v.parse().ok());
            Some(BenchResult {
                test: test.to_string(),
                rps: rps.trim().parse().ok()?,
                p50_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quiet_output_with_progress_lines() {
        let text = "SET: rps=0.0 (overall: 0.0) avg_msec=-nan (overall: -nan)\r                    \r\
                    SET: 266666.66 requests per second, p50=1.919 msec\n\
                    GET: rps=151000.0 (overall: 151000.0) avg_msec=0.2\r\
                    GET: 303030.31 requests per second, p50=1.743 msec\n\
                    MSET (10 keys): 9000.00 requests per second\n\n";
        let results = parse_benchmark(text);
        assert_eq!(
            results,
            vec![
                BenchResult {
                    test: "SET".into(),
                    rps: 266_666.66,
                    p50_ms: Some(1.919)
                },
                BenchResult {
                    test: "GET".into(),
                    rps: 303_030.31,
                    p50_ms: Some(1.743)
                },
                BenchResult {
                    test: "MSET (10 keys)".into(),
                    rps: 9_000.0,
                    p50_ms: None
                },
            ]
        );
    }
}
