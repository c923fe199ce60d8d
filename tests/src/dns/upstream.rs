//! The dnspython peer `tests/python/dns_upstream.py`: an upstream DNS server for
//! corridor-dns to forward to (it counts the queries it gets, per transport), and a second
//! DNS client with structured (JSON) output.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bin::Process;
use crate::python::{python, script};

/// Longest one run of the client may take (its own timeout is 3 s).
const CLIENT_PATIENCE: Duration = Duration::from_secs(20);

/// A running `dns_upstream.py serve`; killed on drop.
#[derive(Debug)]
pub struct Upstream {
    /// The server process (one `query <proto> <name> <type>` line per query on stderr).
    pub process: Process,
    /// Where it answers, on UDP and TCP.
    pub addr: SocketAddr,
}

impl Upstream {
    /// Starts a server for `records` (`"NAME TTL TYPE RDATA"`) and a ~5 KB TXT record at
    /// each of `big_txt` (too large for any UDP reply). Other names answer NXDOMAIN.
    pub async fn start(records: &[&str], big_txt: &[&str]) -> Upstream {
        let mut cmd = Command::new(python());
        cmd.arg(script("dns_upstream.py"))
            .arg("serve")
            .env("PYTHONUNBUFFERED", "1");
        for record in records {
            cmd.args(["--record", record]);
        }
        for name in big_txt {
            cmd.args(["--big-txt", name]);
        }
        let mut process = Process::spawn("upstream", cmd).unwrap_or_else(|e| panic!("{e:#}"));
        let addr = process
            .wait_bound("dns_upstream bound", "addr")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        Upstream { process, addr }
    }

    /// How often `name` (any type, any case) was asked so far: `(udp, tcp)`. Asks the
    /// server itself (`count.<name>` TXT), never through a cache.
    pub async fn counts(&self, name: &str) -> (u64, u64) {
        let reply = super::dig::dig(self.addr, &[&format!("count.{name}"), "TXT"])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let text = reply.data("TXT").join(" ");
        let number = |key: &str| -> u64 {
            text.trim_matches('"')
                .split_whitespace()
                .find_map(|w| w.trim_matches('"').strip_prefix(key))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in the upstream's count reply {text:?}"))
        };
        (number("udp="), number("tcp="))
    }

    /// How often `name` was asked, over both transports.
    pub async fn asked(&self, name: &str) -> u64 {
        let (udp, tcp) = self.counts(name).await;
        udp + tcp
    }
}

/// One query with dnspython (`dns_upstream.py query --server <server> <args>`), returning
/// its JSON: `rcode`, `flags`, `answer`/`authority`/`additional` (lists of
/// `[name, ttl, type, rdata]`), `edns` (-1 without OPT), `payload`, `options`.
pub async fn query(server: SocketAddr, args: &[&str]) -> anyhow::Result<Value> {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script("dns_upstream.py"))
        .args(["query", "--server", &server.to_string()])
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_PATIENCE, cmd.output())
        .await
        .context("dns_upstream.py query timed out")?
        .context("running dns_upstream.py query")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "dns_upstream.py query {args:?} failed ({}): {stdout}\n{stderr}",
            output.status
        );
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("dns_upstream.py query printed no JSON: {stdout}\n{stderr}"))
}
